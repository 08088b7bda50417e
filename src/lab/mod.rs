//! The virtual lab: network namespaces for phones, router, nodes, hops, app servers and a censor, plus the phone simulator.
//!
//! A lab is built from a topology file ([`topology`]) with the same
//! mechanisms a real lab uses ([`crate::net`]: WireGuard tunnels, policy
//! routing, NAT, state file with guaranteed teardown), and described for
//! campaigns by a `lab.json` ([`desc`]) exactly like a real lab.
//!
//! - [`topology`]: the YAML schema and the address plan (198.18.0.0/15 only);
//! - [`build`]: bring-up and teardown ([`build::Lab`]);
//! - [`desc`]: `lab.json` (schema `matador/lab/1`);
//! - [`geo`]: the lab mmdb geolocating every lab prefix;
//! - [`censor`]: the censor's on-path injector (DNS races, keyword RSTs);
//! - [`noise`]: Android background-service hosts (connectivity check, NTP, push);
//! - [`phone`]: the phone simulator and app backends.

pub mod build;
pub mod censor;
pub mod delay;
pub mod desc;
pub mod geo;
pub mod noise;
pub mod phone;
pub mod topology;

use std::path::PathBuf;

/// Errors of the virtual lab, naming the file, namespace or process concerned.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A topology file is invalid.
    #[error("{path}: {message}")]
    Topology {
        /// File concerned.
        path: PathBuf,
        /// What is wrong (with line/column for YAML errors).
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// A lab process failed to start.
    #[error("{what}: {message}")]
    Process {
        /// Which process.
        what: String,
        /// What happened (with its log's last lines).
        message: String,
    },
    /// No such lab, or several when one was expected.
    #[error("{0}")]
    Select(String),
    /// The lab mmdb could not be built.
    #[error("lab mmdb {path}: {message}")]
    Mmdb {
        /// File concerned.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Not running as root.
    #[error(
        "the virtual lab needs root (network namespaces, veth, TUN): run as root, e.g. with sudo"
    )]
    NotRoot,
}
