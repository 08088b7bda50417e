//! matador: measure where mobile messaging traffic travels.
//!
//! The crate is organised by pipeline stage, with data flowing one way:
//!
//! ```text
//! scenario → campaign → device / net / capture → analysis → paths → geo → report
//! ```
//!
//! Each stage lives in its own module with its own error type. Two other
//! crates of the workspace build on this library and are not part of it:
//! `matador-lab`, the virtual lab that stands in for phones, router and
//! remote nodes on one Linux machine, and the `matador` binary (the
//! command-line front end, the only place that uses `anyhow`), which
//! drives both. The library never depends on the simulator.
//!
//! Boundaries worth keeping (see `docs/architecture.md`):
//! - [`analysis`] works on stored files alone (captures + `events.jsonl`);
//! - [`campaign`] reaches the virtual lab only through real interfaces
//!   (ADB wire protocol, SSH, network namespaces), never by calling the lab;
//! - [`capture`] reads packets, it does not interpret them;
//! - [`geo`] is a leaf: lookups and region logic, no I/O beyond its databases.

pub mod analysis;
pub mod atomic_file;
pub mod campaign;
pub mod capture;
pub mod device;
pub mod geo;
pub mod net;
pub mod paths;
pub mod probes;
pub mod report;
pub mod scenario;

/// The repository's top folder (where `scenarios/`, `device-profiles/`,
/// `captures/` and `lab/` live), as known when this library was built: the
/// library's manifest sits two levels down, in `crates/matador/`.
pub fn source_dir() -> &'static std::path::Path {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest)
}
