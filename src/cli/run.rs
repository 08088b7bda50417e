//! `matador run`: run a campaign (or print its plan with `--dry-run`).

use crate::campaign::plan::{Kind, Plan, human_secs};
use crate::scenario::LoadedScenario;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `matador run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (not needed with --resume).
    #[arg(value_name = "SCENARIO", required_unless_present = "resume")]
    pub scenario: Option<PathBuf>,
    /// Print the plan (measurements, nodes, estimated duration) and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue an interrupted campaign folder: finished measurements are
    /// kept, the interrupted one is redone, nothing is duplicated.
    #[arg(long, value_name = "DIR", conflicts_with = "scenario")]
    pub resume: Option<PathBuf>,
    /// Run in the virtual lab (brought up and torn down by matador).
    #[arg(long)]
    pub lab: bool,
    /// Folder under which the campaign folder is created.
    #[arg(long, value_name = "DIR", default_value = "campaigns")]
    pub out: PathBuf,
}

/// Runs `matador run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = &args.scenario else {
        anyhow::bail!("a scenario file is required");
    };
    let ls = LoadedScenario::load(path)?;
    let plan = Plan::expand(&ls);
    if args.dry_run {
        print!("{}", dry_run_text(&ls, &plan));
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::bail!("running campaigns is not wired yet; use --dry-run")
}

/// What `--dry-run` prints.
pub fn dry_run_text(ls: &LoadedScenario, plan: &Plan) -> String {
    let sc = &ls.scenario;
    let mut s = format!(
        "scenario {} ({}): phones A={} B={}, apps {}\n",
        sc.name,
        ls.path.display(),
        plan.phones[0],
        plan.phones[1],
        sc.apps.join(", ")
    );
    s.push_str("nodes (failover order):\n");
    for (c, nodes) in &sc.countries {
        let hosts: Vec<String> = nodes
            .iter()
            .map(|n| match sc.nodes.get(n) {
                Some(spec) => format!("{n} ({}@{}:{})", spec.user, spec.host, spec.port),
                None => format!("{n} (virtual lab)"),
            })
            .collect();
        s.push_str(&format!("  {c}: {}\n", hosts.join(", ")));
    }
    let pairs: Vec<String> = plan.pairs.iter().map(|[a, b]| format!("{a}-{b}")).collect();
    s.push_str(&format!("pairs: {}\n\n", pairs.join(" ")));
    s.push_str(&plan.table());
    s.push_str(&format!(
        "\n{} measurements ({} message, {} baseline), {} messages, estimated duration {}\n",
        plan.measurements.len(),
        plan.count_kind(Kind::Message),
        plan.count_kind(Kind::Baseline),
        plan.total_messages(),
        human_secs(plan.estimated_secs())
    ));
    s
}
