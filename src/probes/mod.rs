//! Active probes: app reachability and censorship tests from a vantage
//! (a remote node through its agent, or a lab namespace), compared with a
//! control vantage.
//!
//! The method follows the Citizen Lab's LINE/KakaoTalk study and OONI's
//! `web_connectivity` and messaging experiments:
//!
//! - [`dns`]: the vantage's resolver vs the control's; OONI consistency
//!   (address overlap or same ASN), known forged answers and bogons, a
//!   random non-existent subdomain (wildcard forging), UDP vs TCP, racing
//!   duplicate replies;
//! - [`conn`]: TCP reachability by name and by control-resolved address,
//!   TLS handshakes with the SNI, without SNI and with a decoy SNI, HTTP
//!   `Host` header requests to a neutral address, bulk throughput;
//! - [`keyword`]: isolation of the keyword that triggers resets, by
//!   bisection (at most `2·⌈log2 n⌉ + 1` requests per keyword);
//! - [`vantage`]: everything one vantage runs (blocking sockets, so it runs
//!   in a namespace thread or in the node agent), with a packet capture fed
//!   to the interference rules as evidence;
//! - [`verdict`]: verdicts per app, endpoint and vantage and OONI-style JSON;
//! - [`session`]: one round, control first, then the vantages;
//! - [`matrix`]: the vantage × app verdict matrix (Markdown) with links to
//!   the evidence and same-country differences;
//! - [`monitor`]: repeated rounds, time series and "blocked since /
//!   unblocked at" changes;
//! - [`step`]: the campaign's probe step (a [`crate::campaign::env::StepHook`]);
//! - [`spec`] and [`limit`]: what to probe (app profiles' `probe:` lists),
//!   request budget and target guard.
//!
//! Probing from a censoring country can put the operator at risk: see
//! `docs/probes.md` (OONI's informed-consent practice).

pub mod conn;
pub mod dns;
pub mod keyword;
pub mod limit;
pub mod matrix;
pub mod monitor;
pub mod session;
pub mod spec;
pub mod step;
pub mod vantage;
pub mod verdict;

use std::path::PathBuf;

/// Errors of the probes, naming the file, target or vantage concerned.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// An app profile's `probe:` section is invalid.
    #[error("{file}: {message}")]
    Profile {
        /// Profile file (`builtin:<id>.yaml` for shipped ones).
        file: String,
        /// What is wrong (with line/column for YAML errors).
        message: String,
    },
    /// A target was refused by the target guard.
    #[error("target {target} refused: {reason}")]
    Refused {
        /// Address or name concerned.
        target: String,
        /// Why.
        reason: String,
    },
    /// The request budget is spent.
    #[error("probe request budget spent: {limit} requests")]
    Budget {
        /// The configured total.
        limit: u32,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A vantage could not run its probes.
    #[error("vantage {vantage}: {message}")]
    Vantage {
        /// Vantage name.
        vantage: String,
        /// What failed.
        message: String,
    },
    /// Invalid arguments.
    #[error("{0}")]
    Invalid(String),
}
