//! Server identification by timestamp correlation (what the paper did by
//! hand): which server endpoints carry the messages.
//!
//! Every send and receive event of a phone opens a window on that phone's
//! captures, widened by the event's own uncertainty (`uncertainty_ns` /
//! `uncertainty_s`), its clock uncertainty and a residual clock slack. An
//! endpoint *explains* an event when at least the message's size in
//! payload went the right way (to the server after a send, from it before
//! a receipt) inside the window. Chance is measured, not assumed: the same
//! window, slid over the quiet parts of the measurement and over the
//! campaign's empty baseline runs, gives per event and endpoint the
//! probability `p` of explaining it by accident. Each event then adds to
//! the endpoint's log-odds that it carries the messages rather than
//! meeting them by chance (`log10(0.95/p)` when explained,
//! `log10(0.05/(1-p))` when not), per direction, summed over the campaign
//! (the same server across measurements and pairs). An endpoint is a
//! messaging server of a measurement when it explains (almost) every
//! message of the phones that used it there *and* its posterior odds —
//! a prior over the eligible endpoints (attribution shifts it), times the
//! campaign's timing odds, against its rivals on the same phones — reach
//! 100:1, with no direction against it, explaining at least 80 % of the
//! campaign's events beyond chance. See docs/correlation.md for the prior
//! and a worked example.
//!
//! DNS names, SNI and the app [`attribution`](super::attribution) are
//! supporting evidence (names, a veto for servers of *another* app, roles of
//! the non-messaging servers), never the decision, so the identification
//! works with the DNS packets removed.
//!
//! Everything works on stored files alone: a measurement folder holds any
//! number of `*.pcap`/`*.pcapng` files and `events.jsonl` (see
//! `docs/campaign-record.md`), so `matador replay` reproduces the live run.
//! Each capture is decoded once: the replay report and the correlation's
//! packet series come from the same pass.
//!
//! Layout: [`folder`] (discovery), [`events`] (both spellings of
//! `events.jsonl`), [`orient`] (which side of a flow is the server),
//! [`capture`] (one pass per capture), [`evidence`] (statistics),
//! [`decide`] (roles), [`campaign`] (measurements, baselines, pooling),
//! [`record`] (`analysis.json`, the file these write).

pub mod campaign;
pub mod capture;
pub mod decide;
pub mod events;
pub mod evidence;
pub mod folder;
pub mod orient;
pub mod record;

pub use campaign::{
    BaselineCache, Baselines, LivePool, Prepared, Scanned, analyze_measurement,
    analyze_measurement_cached, campaign_servers, finish, prepare, replay_campaign, scan_baselines,
    scan_measurement, write_analysis,
};
pub use capture::{CaptureLog, Endpoint, scan_capture};
pub use decide::{Pool, classify, pool_add};
pub use events::{Event, EventKind, read_events};
pub use evidence::{Counts, Tallied, tally};
pub use folder::{MeasurementFiles, Meta, is_campaign, is_measurement, measurement_dirs};
pub use record::{ANALYSIS_SCHEMA, CorrelatedServer, MeasurementAnalysis};

pub use super::model::Role;
use std::path::PathBuf;

/// Errors of the correlation stage, naming the file (and line) concerned.
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    /// A file could not be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of `events.jsonl` is not a valid event (only a torn *last* line is ignored).
    #[error("{}:{line}: {message}", file.display())]
    Event {
        /// The events file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A JSON file of the record is invalid.
    #[error("{}: {message}", file.display())]
    Json {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Tunables of the correlation (seconds unless said otherwise).
#[derive(Debug, Clone)]
pub struct CorrelateConfig {
    /// Before a send tap that still counts (the tap is logged as it lands).
    pub send_before: f64,
    /// After a send tap in which the message must leave the phone (the
    /// app's own delay; reconnects included).
    pub send_after: f64,
    /// Before a receive event in which the message must arrive, on top of
    /// the event's detection lag (`uncertainty.before`).
    pub recv_before: f64,
    /// After a receive event that still counts.
    pub recv_after: f64,
    /// Detection lag assumed for a receive event that carries no
    /// uncertainty: real phones notice receipts 0.1–6 s late.
    pub default_recv_lag: f64,
    /// Residual clock error of a phone beyond its stated clock uncertainty
    /// (docs/real-lab.md asks for ±0.5 s at most).
    pub clock_slack: f64,
    /// Posterior log10 odds an endpoint needs to be `messaging`: the
    /// campaign's timing evidence plus the prior
    /// ([`decide::prior_log10_odds`]). 2 = 99:1, the precision target.
    pub min_log10_odds: f64,
    /// Prior probability that a measurement's messages travelled outside
    /// every captured endpoint (capture started late, another network).
    pub outside_share: f64,
    /// Prior probability that the messaging server is among the endpoints
    /// attribution gives to the app, when it gives it any: an even chance
    /// (profiles do not cover every carrier: relays by IP only, ports
    /// outside `prefix_ports`); docs/correlation.md.
    pub attributed_share: f64,
    /// Share of a measurement's events (per direction) a messaging server
    /// may leave unexplained (rounded down: none below 10 events).
    pub miss_share: f64,
    /// Campaign score (share of the pooled events explained beyond chance,
    /// the lower direction) a messaging server needs: a decoy that shows up
    /// near some messages only (an analytics call after some sends) has
    /// strong odds where it appears but explains too few of them.
    pub min_share: f64,
    /// Payload bytes above which an app server is called `media`.
    pub media_bytes: u64,
    /// Corrected score above which an app's receive-only server is `push`.
    pub threshold: f64,
    /// Address ranges the caller declares its own, never bogons for the
    /// captures' interference detection ([`crate::analysis::replay::ReplayOptions::exempt`]):
    /// the virtual lab's, passed explicitly; empty by default.
    pub exempt: Vec<ipnetwork::IpNetwork>,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        CorrelateConfig {
            send_before: 0.2,
            send_after: 3.0,
            recv_before: 0.5,
            recv_after: 0.2,
            default_recv_lag: 6.0,
            clock_slack: 0.5,
            min_log10_odds: 2.0,
            outside_share: 0.05,
            attributed_share: 0.5,
            miss_share: 0.1,
            min_share: 0.8,
            media_bytes: 200_000,
            threshold: 0.6,
            exempt: Vec::new(),
        }
    }
}
