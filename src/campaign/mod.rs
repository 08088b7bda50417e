//! Campaigns: the measurement state machine, journal, record and resume.
//!
//! - [`plan`]: scenario → ordered measurement list (stable ids);
//! - [`record`]: the campaign folder (docs/campaign-record.md): journal,
//!   index, per-measurement files, reading them back for `--resume`;
//! - [`env`]: what the campaign needs from phones, tunnels and captures, as
//!   traits (real implementations over `device/` and `net/`);
//! - [`world`]: the one builder of that environment for a real lab and the
//!   virtual one (they differ only in where phones, router and nodes are);
//! - [`agents`]: the connections to the node agents (captures, paths, probes);
//! - [`runner`]: the state machine (steps, timeouts, retries, node
//!   failover, clean stop, resume);
//! - [`schedule`]: which measurement a free phone pair takes (node
//!   slots), shared by the runner and the duration estimate;
//! - [`sqlite`]: `index.sqlite`, the queryable twin of `index.json`;
//! - [`provenance`]: `provenance.json` (build, geo databases, nodes' OS);
//! - [`merge`]: shard folders (`run --shard k/n`) joined into one campaign.

pub mod agents;
pub mod captures;
pub mod devices;
pub mod env;
pub mod merge;
pub mod pathstep;
pub mod plan;
pub mod provenance;
pub mod record;
pub mod runner;
pub mod schedule;
pub mod sqlite;
pub mod vantage;
pub mod world;

use std::path::PathBuf;

/// Errors of the campaign layer (the record on disk; step failures are
/// recorded per measurement, not raised).
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// A file of the record could not be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file of the record is invalid.
    #[error("{}: {message}", file.display())]
    Record {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The disk holding the record is full: the campaign stops (the
    /// interrupted measurement's files are removed; it is redone on resume).
    #[error(
        "disk full: {message}; the record in {} is intact: free space, then `matador run --resume {}`",
        dir.display(),
        dir.display()
    )]
    DiskFull {
        /// The campaign folder.
        dir: PathBuf,
        /// The failing step and its error (names the file being written).
        message: String,
    },
    /// The campaign's world cannot be set up (profile, lab description,
    /// router or node settings); names the file, phone or node.
    #[error("{0}")]
    Setup(String),
    /// The scenario turns a step on that the environment cannot run
    /// (refused before the first measurement).
    #[error("steps.{step} is on in the scenario but cannot run: {reason}")]
    StepUnavailable {
        /// The step (`paths`, `probes`).
        step: String,
        /// Why.
        reason: String,
    },
    /// The scenario of a resumed campaign is invalid.
    #[error("{0}")]
    Scenario(#[from] crate::scenario::ScenarioError),
}
