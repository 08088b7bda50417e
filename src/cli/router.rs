//! `matador router config|check`: a real lab router's configuration from
//! its description, and the checks of a running router.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use matador_net::router::check::{self, Status};
use matador_net::router::{RealLab, generate, load_for_check};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::net as matador_net;

/// Arguments of `matador router`.
#[derive(Debug, Args)]
pub struct RouterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RouterCommand,
}

/// `matador router` subcommands.
#[derive(Debug, Subcommand)]
pub enum RouterCommand {
    /// Generates hostapd, dnsmasq, sysctl, nftables/iptables, policy routing and WireGuard files.
    Config(ConfigArgs),
    /// Verifies a running router; explains each failure with a fix (exit 1 on failure).
    Check(CheckArgs),
}

/// Arguments of `matador router config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Real-lab description (schema matador/real-lab/1, see docs/real-lab.md) or a virtual lab's lab.json.
    #[arg(long)]
    pub lab: PathBuf,
    /// Output directory (keys are generated once under OUT/keys and reused).
    #[arg(long)]
    pub out: PathBuf,
    /// Where the files will be installed on the router (paths inside the files).
    #[arg(long, default_value = generate::INSTALL_DIR)]
    pub install_dir: PathBuf,
}

/// Arguments of `matador router check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Real-lab description, or a virtual lab's lab.json (checks its router namespace).
    #[arg(long)]
    pub lab: PathBuf,
    /// A name the phones' resolver must answer (through each node).
    #[arg(long, default_value = "example.org")]
    pub dns_name: String,
    /// dnsmasq lease file (real router).
    #[arg(long)]
    pub leases: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `matador router`.
pub fn run(args: RouterArgs) -> Result<ExitCode> {
    match args.command {
        RouterCommand::Config(a) => {
            let lab = RealLab::load(&a.lab)?;
            let files = generate::generate(&lab, &a.out, &a.install_dir)
                .with_context(|| format!("generating into {}", a.out.display()))?;
            println!(
                "lab {} ({}): {} phones, {} nodes → {}",
                lab.name,
                lab.country,
                lab.phones.len(),
                lab.nodes.len(),
                a.out.display()
            );
            for f in &files {
                println!(
                    "  {:o}  {}{}",
                    f.mode,
                    f.rel.display(),
                    if f.secret { "  (secret)" } else { "" }
                );
            }
            println!(
                "install: copy {} to {} on the router, then see docs/real-lab.md (\"Order of steps\")",
                a.out.display(),
                a.install_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        RouterCommand::Check(a) => {
            let (lab, mut site) = load_for_check(&a.lab)?;
            site.dns_name = a.dns_name.clone();
            if let Some(l) = a.leases {
                site.leases = Some(l);
            }
            let results = check::check(&lab, &site);
            let failed = results.iter().filter(|r| r.status == Status::Fail).count();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for r in &results {
                    let mark = match r.status {
                        Status::Ok => "ok  ",
                        Status::Warn => "WARN",
                        Status::Fail => "FAIL",
                    };
                    println!("{mark} {:<28} {}", r.name, r.detail);
                    if let Some(f) = &r.fix {
                        println!("     fix: {f}");
                    }
                }
                println!(
                    "{} checks, {failed} failed, {} warnings",
                    results.len(),
                    results.iter().filter(|r| r.status == Status::Warn).count()
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
