//! The remote node agent: `matador agent` runs on a node (started over SSH)
//! and answers a small line-delimited JSON protocol on stdin/stdout
//! (`docs/agent.md`): hello, health, clock, capture start/stop/list/fetch,
//! allow-listed programs, probes, traces, shutdown. No port is opened on
//! the node.
//!
//! - [`protocol`]: the wire types, shared by both sides;
//! - [`server`]: the agent loop (blocking, captures on their own threads);
//! - [`client`]: the campaign side, a typed async API over `ssh`;
//! - [`trace`]: the `trace` op (paths engine on the node) and its limits.

pub mod client;
pub mod protocol;
pub mod server;
pub mod trace;

pub use client::{Agent, AgentError, ClockOffset, FetchedCapture, NodeConfig};
pub use protocol::{ErrorKind, Op, PROTOCOL_VERSION};
pub use trace::{TraceReply, TraceRequest, TraceTarget};
