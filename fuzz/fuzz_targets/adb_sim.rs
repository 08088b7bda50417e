//! The phone simulator's side of ADB: messages from the host as the
//! simulated adbd reads them (header, magic, length), the OPEN service
//! names and the shell command lines it interprets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador_lab::phone::adbd::Service;
use matador_lab::phone::shell::parse::parse;
use matador_lab::phone::wire::{MAX_PAYLOAD, read_message};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Polls a future over an in-memory reader (always ready) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    // Every message: stops at the first error or the end.
    while let Ok(Some(m)) = block_on(read_message(&mut r)) {
        assert!(m.data.len() <= MAX_PAYLOAD as usize);
        let _ = m.name();
        let text = String::from_utf8_lossy(&m.data);
        let dest = text.trim_end_matches('\0');
        if let Some(s) = Service::parse(dest) {
            let _ = format!("{s:?}");
        }
        if let Ok(script) = parse(dest) {
            let _ = format!("{script:?}");
        }
    }
});
