//! `matador agent`: the remote node agent. Started over SSH by the campaign
//! (`ssh node matador agent --dir DIR`), it speaks the line protocol of
//! `docs/agent.md` on stdin/stdout until stdin closes or `shutdown`.
//! Run it inside a network namespace to capture there
//! (`ip netns exec NS matador agent …`).

use anyhow::Result;
use clap::Args;
use matador::net::agent::server::{AgentConfig, DEFAULT_ALLOWED, serve};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Directory for captures (one sub-directory per capture).
    #[arg(long, default_value = "/var/tmp/matador-agent")]
    pub dir: PathBuf,
    /// Program `run` may execute (repeatable; replaces the default list:
    /// ping, ping6, traceroute, tracepath, scamper, ip, uname).
    #[arg(long = "allow")]
    pub allow: Vec<String>,
    /// Allow no program at all.
    #[arg(long, conflicts_with = "allow")]
    pub allow_none: bool,
}

/// Runs the agent on stdin/stdout.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let allowed = if args.allow_none {
        Vec::new()
    } else if args.allow.is_empty() {
        DEFAULT_ALLOWED.iter().map(|s| s.to_string()).collect()
    } else {
        args.allow
    };
    let cfg = AgentConfig {
        dir: args.dir,
        allowed,
    };
    let stdin = std::io::stdin().lock();
    serve(cfg, stdin, Box::new(std::io::stdout()))?;
    Ok(ExitCode::SUCCESS)
}
