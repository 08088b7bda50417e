//! Waiting in tests on a condition, never on a fixed sleep: poll the
//! condition until it holds, and fail after a generous deadline naming what
//! was awaited and the last state seen. A loaded machine (CI's 2 cores)
//! then only makes the wait longer, never the test wrong.
#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Ok`; panics after `limit` with `what`
/// and the last `Err` (the state seen).
pub fn wait_until<T, S: Debug>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return v,
            Err(state) => assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; last seen: {state:?}"
            ),
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for a condition that is checked asynchronously.
pub async fn wait_until_async<T, S: Debug, F: Future<Output = Result<T, S>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(state) => assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; last seen: {state:?}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}
