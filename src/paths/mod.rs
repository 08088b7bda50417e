//! Path measurements: in-protocol traceroutes from the remote nodes.
//!
//! The seed (MATAdOR, PAM 2016) compares the *application path* (node → the
//! app's backend server, probed with the app's own protocol and port) with
//! the *direct network path* (node A → node B) to show how messaging
//! services distort traffic locality. This module measures both:
//!
//! - [`engine`]: a raw-socket Paris traceroute (TCP SYN, UDP, ICMP echo;
//!   IPv4 and IPv6) over many targets at once under one packets-per-second
//!   budget, optionally from inside a network namespace;
//! - [`mda`]: MDA-style enumeration of load-balanced paths (many flow ids);
//! - [`packet`]: probe construction and reply parsing (quoted headers,
//!   RFC 4884 / RFC 4950 MPLS extensions);
//! - [`model`]: the RIPE-Atlas-like JSON result;
//! - [`scamper`]: import of `scamper -O json` / `sc_warts2json` output into
//!   the same types, so scamper can serve as an alternative engine;
//! - [`geo`]: per-hop geolocation with RTT plausibility, and the locality
//!   comparison of an application path with a direct path;
//! - [`targets`]: application-path targets from the analysis' servers, the
//!   direct-path target;
//! - [`record`]: `traces/<node>--<target>.json` in a measurement folder.
//!
//! Entry point for the node agent: [`record::trace_and_store`] (blocking) or
//! [`trace_async`]; see `docs/paths.md`.

pub mod engine;
pub mod geo;
pub mod mda;
pub mod model;
pub mod packet;
pub mod record;
pub mod scamper;
mod sys;
pub mod targets;

pub use engine::{Target, TraceConfig, trace};
pub use model::{Proto, StopReason, Trace};

use std::net::IpAddr;
use std::path::PathBuf;

/// Errors of the paths module.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// The process may not open raw sockets.
    #[error(
        "cannot open a {what}: {source}; traceroutes need raw sockets: run as root or grant the binary CAP_NET_RAW (setcap cap_net_raw+ep $(command -v matador))"
    )]
    RawSocketDenied {
        /// Which socket.
        what: String,
        /// OS error (EPERM / EACCES).
        source: std::io::Error,
    },
    /// Another socket operation failed.
    #[error("{what}: {source}")]
    Socket {
        /// What was attempted.
        what: String,
        /// OS error.
        source: std::io::Error,
    },
    /// Entering the network namespace failed.
    #[error("network namespace {netns}: {source}")]
    Netns {
        /// The namespace asked for.
        netns: String,
        /// OS error.
        source: std::io::Error,
    },
    /// Lab mode and a target outside 198.18.0.0/15 and fd00::/8.
    #[error("{0} is outside the virtual lab (198.18.0.0/15, fd00::/8); refused in lab mode")]
    OutsideLab(IpAddr),
    /// Invalid settings.
    #[error("bad trace settings: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A scamper JSON line (or a stored trace) is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Geolocation failed.
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
}

/// [`trace`] on tokio's blocking pool, for async callers (the node agent).
pub async fn trace_async(cfg: TraceConfig, targets: Vec<Target>) -> Result<Vec<Trace>, PathsError> {
    tokio::task::spawn_blocking(move || trace(&cfg, &targets))
        .await
        .unwrap_or_else(|e| {
            Err(PathsError::Socket {
                what: "trace task".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}
