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

/// `matador replay` on campaign or measurement folders (every path must be
/// one; otherwise `None` and replay handles the paths as captures): re-runs
/// the correlation from the stored files, rewrites each campaign
/// measurement's `analysis.json`, and prints (with `--json`) one object per
/// capture, then one per measurement (`measurement`: the folder, `servers`:
/// the correlation result).
pub fn replay_record(paths: &[PathBuf], json: bool) -> anyhow::Result<Option<ExitCode>> {
    use crate::analysis::correlate::{
        CorrelateConfig, analyze_measurement, is_campaign, is_measurement, replay_campaign,
    };
    if paths.is_empty()
        || !paths
            .iter()
            .all(|p| p.is_dir() && (is_campaign(p) || is_measurement(p)))
    {
        return Ok(None);
    }
    let profiles = std::sync::Arc::new(crate::scenario::apps::AppProfiles::builtin());
    let cfg = CorrelateConfig::default();
    let mut results = Vec::new();
    for p in paths {
        if is_measurement(p) && !is_campaign(p) {
            results.push((p.clone(), analyze_measurement(p, None, &profiles, &cfg)?));
        } else {
            results.extend(replay_campaign(p, &profiles, &cfg)?);
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    use std::io::Write;
    for (dir, a) in &results {
        failed |= a.captures.iter().any(|c| !c.errors.is_empty());
        if json {
            for c in &a.captures {
                serde_json::to_writer(&mut out, c)?;
                out.write_all(b"\n")?;
            }
            let obj = serde_json::json!({
                "measurement": dir.display().to_string(),
                "id": a.measurement,
                "servers": a.servers,
                "warnings": a.warnings,
            });
            serde_json::to_writer(&mut out, &obj)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "== {} ({} captures)", dir.display(), a.captures.len())?;
            for w in &a.warnings {
                writeln!(out, "   warning: {w}")?;
            }
            for s in &a.servers {
                writeln!(
                    out,
                    "   {:<10} {:<9} {:>5.3}  {}:{}/{}  {}  [{}]",
                    s.app,
                    s.role,
                    s.score,
                    s.ip,
                    s.port,
                    s.proto,
                    s.names.join(","),
                    s.evidence.join(" ")
                )?;
            }
        }
    }
    out.flush()?;
    Ok(Some(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }))
}
