//! A line-based control socket (Unix domain) for fault injection in running
//! simulator processes: `unplug`, `replug`, `unplug-for MS`, `status` for
//! phones; `fail on|off`, `delay MS`, `status` for backends.

use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Handles one command line, returning the reply line.
pub type Handler = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Serves the control socket at `path` (replacing a stale socket file).
pub async fn serve(path: &Path, handler: Handler) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = h(line.trim());
                    if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    }))
}

/// Sends one command and returns the reply.
pub async fn request(path: &Path, line: &str) -> std::io::Result<String> {
    let s = UnixStream::connect(path).await?;
    let (r, mut w) = s.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    Ok(lines.next_line().await?.unwrap_or_default())
}
