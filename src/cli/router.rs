//! `matador router config|check`: a real lab router's configuration from
//! its description, and the checks of a running router.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use matador::scenario::LoadedScenario;
use matador::scenario::types::Scenario;
use matador_net::router::check::{self, Status};
use matador_net::router::{RealLab, generate, load_for_check, scenario_sections};
use std::path::PathBuf;
use std::process::ExitCode;

use matador::net as matador_net;

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
    /// Scenario to run in this lab: its phones, countries, `nodes:` and `router:`
    /// sections must agree with the lab (differences are listed with the right values).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
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
            if let Some(sp) = &a.scenario {
                let s = LoadedScenario::load(sp)?;
                let bad = scenario_mismatches(&lab, &s.scenario);
                if !bad.is_empty() {
                    anyhow::bail!(
                        "scenario {} does not match lab {}:\n  {}\n(the right nodes:/router: sections: `matador router config` writes them to OUT/scenario-sections.yaml)",
                        sp.display(),
                        a.lab.display(),
                        bad.join("\n  ")
                    );
                }
            }
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
            let sections = a.out.join("scenario-sections.yaml");
            std::fs::write(&sections, scenario_sections(&lab))
                .with_context(|| sections.display().to_string())?;
            println!("  644  scenario-sections.yaml  (nodes:/router: for the scenario)");
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
                super::router::print_checks(&results, 28);
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

/// Differences between a scenario's `phones`, `countries`, `nodes` and
/// `router` sections and the real lab it will run in (each names the item
/// and the value the scenario should have). Empty: they agree.
fn scenario_mismatches(lab: &RealLab, s: &Scenario) -> Vec<String> {
    let mut v = Vec::new();
    let tunnels = lab.tunnels();
    let plans = lab.phone_plans();
    for p in &s.phones {
        if lab.phones.iter().all(|x| x.name != p.id) {
            v.push(format!("phone {}: not in the lab description", p.id));
        }
    }
    for (country, nodes) in &s.countries {
        for n in nodes {
            match lab.nodes.iter().find(|x| &x.name == n) {
                None => v.push(format!("node {n} ({country}): not in the lab description")),
                Some(x) if x.country != country.as_str() => v.push(format!(
                    "node {n}: scenario says {country}, the lab says {}",
                    x.country
                )),
                Some(_) => {}
            }
        }
    }
    for (name, spec) in &s.nodes {
        let Some(i) = lab.nodes.iter().position(|x| &x.name == name) else {
            v.push(format!("nodes.{name}: not in the lab description"));
            continue;
        };
        let (n, t) = (&lab.nodes[i], &tunnels[i]);
        if spec.host != n.host {
            v.push(format!(
                "nodes.{name}.host: {} (lab: {})",
                spec.host, n.host
            ));
        }
        if spec.table.is_some_and(|x| x != t.table) {
            v.push(format!("nodes.{name}.table: should be {}", t.table));
        }
        if spec.tunnel_if.as_ref().is_some_and(|x| x != &t.router_if) {
            v.push(format!("nodes.{name}.tunnel_if: should be {}", t.router_if));
        }
        if spec
            .tunnel_peer
            .is_some_and(|x| x != std::net::IpAddr::V4(t.node_addr))
        {
            v.push(format!(
                "nodes.{name}.tunnel_peer: should be {}",
                t.node_addr
            ));
        }
    }
    if let Some(r) = &s.router {
        for (name, rp) in &r.phones {
            let Some(i) = lab.phones.iter().position(|x| &x.name == name) else {
                v.push(format!("router.phones.{name}: not in the lab description"));
                continue;
            };
            if rp.addr != std::net::IpAddr::V4(lab.phones[i].addr) {
                v.push(format!(
                    "router.phones.{name}.addr: should be {}",
                    lab.phones[i].addr
                ));
            }
            if rp.priority != plans[i].priority {
                v.push(format!(
                    "router.phones.{name}.priority: should be {}",
                    plans[i].priority
                ));
            }
            let cap = generate::capture_if(name);
            if rp.interface != cap {
                v.push(format!(
                    "router.phones.{name}.interface: should be {cap} (its capture interface)"
                ));
            }
            if rp
                .resolver
                .is_some_and(|x| x.ip() != std::net::IpAddr::V4(lab.router.resolver))
            {
                v.push(format!(
                    "router.phones.{name}.resolver: should be {}:53",
                    lab.router.resolver
                ));
            }
        }
    }
    v
}

/// Prints check results a line each (`ok  `/`WARN`/`FAIL`, name padded to
/// `width`, detail) with the fix under each failure; shared by `router
/// check` and `node check`.
pub(super) fn print_checks(results: &[check::CheckResult], width: usize) {
    for r in results {
        let mark = match r.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("{mark} {:<width$} {}", r.name, r.detail);
        if let Some(f) = &r.fix {
            println!("     fix: {f}");
        }
    }
}
