//! `matador node install|check|upgrade`: provisions a remote node over
//! OpenSSH (key auth, host-key checking on).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use matador_net::provision::{self, NodeSpec};
use matador_net::router::check::Status;
use matador_net::ssh::SshTarget;
use std::path::PathBuf;
use std::process::ExitCode;

use matador::net as matador_net;

/// Arguments of `matador node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// `matador node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Installs packages, the matador binary, permissions and (with --tunnel) the tunnel + NAT; idempotent.
    Install(NodeOpts),
    /// Checks a node: packages, binary, permissions, disk, clock, tunnel, NAT (exit 1 on failure).
    Check(NodeOpts),
    /// Copies this matador binary to the node when it differs.
    Upgrade(NodeOpts),
}

/// Options shared by the node subcommands.
#[derive(Debug, Args)]
pub struct NodeOpts {
    /// The node: USER@HOST[:PORT].
    #[arg(long)]
    pub node: String,
    /// SSH private key.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// known_hosts file with the node's host key (default ~/.ssh/known_hosts; never updated).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Node name in messages (default: the host).
    #[arg(long)]
    pub name: Option<String>,
    /// The user `matador agent` runs as on the node (default: the SSH user).
    #[arg(long)]
    pub agent_user: Option<String>,
    /// The tunnel to configure: nodes/<node>.json from `matador router config`.
    #[arg(long)]
    pub tunnel: Option<PathBuf>,
    /// The matador binary to install (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn spec(o: &NodeOpts) -> Result<NodeSpec> {
    let Some((user, host, port)) = provision::parse_node(&o.node) else {
        bail!("--node {:?}: expected USER@HOST[:PORT]", o.node);
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    let identity = o
        .identity
        .clone()
        .unwrap_or_else(|| home.join(".ssh/id_ed25519"));
    let known = o
        .known_hosts
        .clone()
        .unwrap_or_else(|| home.join(".ssh/known_hosts"));
    let mut ssh = SshTarget::new(
        o.name.clone().unwrap_or_else(|| host.clone()),
        host,
        user.clone(),
        identity,
        known,
    );
    ssh.port = port;
    let tunnel = match &o.tunnel {
        Some(p) => Some(provision::read_tunnel(p)?),
        None => None,
    };
    let binary = match &o.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating this matador binary")?,
    };
    Ok(NodeSpec {
        ssh,
        agent_user: o.agent_user.clone().unwrap_or(user),
        binary,
        tunnel,
    })
}

/// Runs `matador node`.
pub fn run(args: NodeArgs) -> Result<ExitCode> {
    match args.command {
        NodeCommand::Install(o) => changes(&o, provision::install(&spec(&o)?)?),
        NodeCommand::Upgrade(o) => changes(&o, provision::upgrade(&spec(&o)?)?),
        NodeCommand::Check(o) => {
            let s = spec(&o)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let results = rt.block_on(provision::check(&s))?;
            let failed = results.iter().filter(|r| r.status == Status::Fail).count();
            if o.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                super::router::print_checks(&results, 22);
                println!(
                    "node {}: {} checks, {failed} failed",
                    s.ssh.node,
                    results.len()
                );
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn changes(o: &NodeOpts, c: provision::Changes) -> Result<ExitCode> {
    if o.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        for l in &c.changed {
            println!("changed: {l}");
        }
        println!(
            "node {}: {} change(s) in {:.1} s{}",
            o.node,
            c.changed.len(),
            c.secs,
            if c.changed.is_empty() {
                " (nothing to do)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
