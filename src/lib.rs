//! matador: measure where mobile messaging traffic travels.
//!
//! The crate is organised by pipeline stage, with data flowing one way:
//!
//! ```text
//! scenario → campaign → device / net / capture → analysis → paths → geo → report
//! ```
//!
//! plus [`lab`], the virtual lab that stands in for phones, router and remote
//! nodes on one Linux machine. Each stage lives in its own module with its own
//! error type; only the command-line front end ([`cli`]) uses `anyhow`.
//!
//! Boundaries worth keeping (see `docs/architecture.md`):
//! - [`analysis`] works on stored files alone (captures + `events.jsonl`);
//! - [`campaign`] reaches the virtual lab only through real interfaces
//!   (ADB wire protocol, SSH, network namespaces), never by calling [`lab`];
//! - [`capture`] reads packets, it does not interpret them;
//! - [`geo`] is a leaf: lookups and region logic, no I/O beyond its databases.

pub mod analysis;
pub mod atomic_file;
pub mod campaign;
pub mod capture;
pub mod cli;
pub mod device;
pub mod geo;
pub mod lab;
pub mod net;
pub mod paths;
pub mod probes;
pub mod report;
pub mod scenario;
