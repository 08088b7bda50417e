//! Command-line front end (clap). The only place that uses `anyhow`: each
//! subcommand lives in its own file and turns library errors into messages
//! and exit codes.
//!
//! Exit codes: 0 success, 1 the job ran but something failed (e.g. a capture
//! could not be read; the others are still reported), 2 usage error.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod agent;
mod devices;
mod geo;
mod lab;
mod labsim;
mod merge;
mod node;
mod probe;
mod replay;
mod report;
mod router;
mod run;
mod scenario;
mod trace;

/// matador: where does a messaging app's traffic really travel?
#[derive(Debug, Parser)]
#[command(name = "matador", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands (one file each under `src/cli/`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse stored captures (files, directories, campaign folders).
    Replay(replay::ReplayArgs),
    /// Geolocation: lookups, ASN import, database diffs, plausibility.
    Geo(geo::GeoArgs),
    /// Tables and plots from a stored campaign record (md, csv, json, html).
    Report(report::ReportArgs),
    /// A publishable, anonymized copy of a campaign folder.
    Export(report::ExportArgs),
    /// Lists connected phones: model, Android, battery, screen, Wi-Fi, root, app versions.
    Devices(devices::DevicesArgs),
    /// The virtual lab: up, down, status, exec (network namespaces; needs root).
    Lab(lab::LabArgs),
    /// Runs a measurement campaign from a scenario (or prints its plan with --dry-run).
    Run(run::RunArgs),
    /// Joins shard folders (`run --shard k/n`, `replay --shard k/n`) into one.
    Merge(merge::MergeArgs),
    /// Checks scenario files; prints their JSON Schema.
    Scenario(scenario::ScenarioArgs),
    /// Paris traceroutes (TCP/UDP/ICMP, IPv4/IPv6), RIPE-Atlas-like JSON; scamper import.
    Trace(trace::TraceArgs),
    /// Active app reachability and censorship probes from vantages vs a control (read the safety note in --help).
    Probe(probe::ProbeArgs),
    /// Real lab router: generate its configuration, check it while running.
    Router(router::RouterArgs),
    /// Remote nodes: install, check, upgrade over SSH.
    Node(node::NodeArgs),
    /// Runs a simulated phone, app backend or DNS server (virtual lab).
    #[command(hide = true, name = "lab-sim")]
    LabSim(labsim::LabSimArgs),
    /// Remote node agent: line-delimited JSON on stdin/stdout (run over SSH).
    Agent(agent::AgentArgs),
}

/// Parses the command line, runs the subcommand and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version with exit 0 and usage errors with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Geo(args) => geo::run(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => report::run_export(args),
        Command::Devices(args) => devices::run(args),
        Command::Lab(args) => lab::run(args),
        Command::LabSim(args) => labsim::run(args),
        Command::Run(args) => run::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Scenario(args) => scenario::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Router(args) => router::run(args),
        Command::Node(args) => node::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
