//! The virtual lab: network namespaces for phones, router, nodes, hops, app servers and a censor, plus the phone simulator.
//!
//! A lab is built from a topology file ([`topology`]) with the same
//! mechanisms a real lab uses ([`matador::net`]: WireGuard tunnels, policy
//! routing, NAT, state file with guaranteed teardown), and described for
//! campaigns by a `lab.json` ([`matador::net::labdesc`], a format of the
//! product) exactly like a real lab.
//!
//! This crate depends on the `matador` library, never the other way round:
//! the product holds no simulator code. The `matador` binary links both and
//! runs the lab as `matador lab …`, `matador run --lab` and the hidden
//! `matador lab-sim …`.
//!
//! - [`topology`]: the YAML schema and the address plan (198.18.0.0/15 only);
//! - [`build`]: bring-up and teardown ([`build::Lab`]);
//! - [`geo`]: the lab mmdb geolocating every lab prefix;
//! - [`censor`]: the censor's on-path injector (DNS races, keyword RSTs);
//! - [`noise`]: Android background-service hosts (connectivity check, NTP, push);
//! - [`phone`]: the phone simulator and app backends.

pub mod build;
pub mod censor;
pub mod delay;
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
    /// The lab description could not be written or read.
    #[error(transparent)]
    Desc(#[from] matador::net::labdesc::LabDescError),
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] matador::net::NetError),
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
