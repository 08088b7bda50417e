//! `matador replay`: analyse stored captures.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `matador replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files or directories (searched recursively for .pcap/.pcapng/.cap files).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `matador replay`.
pub fn run(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("replay engine not built yet")
}
