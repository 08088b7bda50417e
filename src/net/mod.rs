//! Real-lab network mechanisms: tunnels, policy routing, live capture, the node agent over SSH.
//!
//! Everything here drives the standard Linux tools (`ip`, `wg`,
//! `wireguard-go`, `iptables`, `ping`) through one checked command runner
//! ([`cmd`]), either on the local machine (a real lab router) or inside a
//! named network namespace (the virtual lab uses the very same code):
//!
//! - [`addrspace`]: the test-bed networks (RFC 2544, RFC 4193) and the
//!   exemption a campaign record declares;
//! - [`cmd`]: argv-only command runner (no shell), naming the command on failure;
//! - [`netns`]: namespaces, veth links, addresses, routes, sysctls;
//! - [`wg`]: WireGuard tunnels (kernel module when present, else `wireguard-go`),
//!   per-campaign keys in 0600 files, never logged;
//! - [`routing`]: per-phone policy routing on the router, NAT on the node;
//! - [`health`]: handshake age, ping through the tunnel, DNS through the node;
//! - [`labdesc`]: `lab.json`, the description of a lab (real or virtual) that
//!   campaigns and `matador router` read;
//! - [`router`]: a real router's configuration (hostapd, dnsmasq, nftables,
//!   policy routing, WireGuard) and `matador router check`;
//! - [`provision`]: `matador node install|check|upgrade` over SSH;
//! - [`state`]: a state file listing everything created, so teardown is
//!   guaranteed (Drop guard, Ctrl-C, and stale state after a crash).

pub mod addrspace;
pub mod agent;
pub mod cmd;
pub mod health;
pub mod labdesc;
pub mod netns;
pub mod provision;
pub mod router;
pub mod routing;
pub mod ssh;
pub mod state;
pub mod wg;

use std::path::PathBuf;

/// Errors of the network layer. Each names the command, namespace, node or
/// file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A program is not installed.
    #[error("{program} not found (install it: {hint})")]
    Missing {
        /// Program name.
        program: String,
        /// Install hint.
        hint: &'static str,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line (argv joined by spaces, for humans only).
        command: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// Its standard error (trimmed).
        stderr: String,
    },
    /// A command did not finish in time.
    #[error("`{command}` timed out after {secs} s")]
    Timeout {
        /// The command line.
        command: String,
        /// Timeout.
        secs: u64,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A state file is not valid.
    #[error("state file {path}: {message}")]
    State {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value given to the network layer is invalid (name, address).
    #[error("invalid {what} {value:?}: {message}")]
    Invalid {
        /// What kind of value.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        message: String,
    },
    /// A tunnel or node is not healthy.
    #[error("node {node}: {message}")]
    Unhealthy {
        /// Node name.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// A started process did not become ready.
    #[error("{what} did not become ready within {secs} s: {detail}")]
    NotReady {
        /// What was started.
        what: String,
        /// Waited seconds.
        secs: u64,
        /// Last log lines or cause.
        detail: String,
    },
    /// The operation was cancelled (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
}
