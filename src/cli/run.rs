//! `matador run`: run a campaign (or print its plan with `--dry-run`).

use clap::Args;
use matador::campaign::plan::{Kind, Plan};
use matador::campaign::runner::{Env, RunOptions, Runner};
use matador::scenario::LoadedScenario;
use std::path::PathBuf;
use std::process::ExitCode;

mod lab_env;
mod lab_topology;

/// The virtual lab's topology as built, in the campaign folder.
const LAB_TOPOLOGY: &str = "lab-topology.yaml";

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
    /// Where the virtual lab keeps its state (default /run/matador/lab, as
    /// `matador lab`). A lab brought up sweeps the stale labs of its folder
    /// (their owner killed): runs that must not sweep each other's, such as
    /// tests running side by side, use folders of their own.
    #[arg(long, value_name = "DIR", requires = "lab")]
    pub lab_state_dir: Option<PathBuf>,
    /// Folder under which the campaign folder is created.
    #[arg(long, value_name = "DIR", default_value = "campaigns")]
    pub out: PathBuf,
    /// Device-profiles folder (holding apps/ and phones/) for what the
    /// scenario does not name itself; default: the nearest
    /// device-profiles/ beside the scenario or above it, else the installed
    /// data directory (docs/campaign.md#files).
    #[arg(long, value_name = "DIR")]
    pub profiles: Option<PathBuf>,
    /// Run only shard k of n of the plan (k counts from 0, like
    /// SLURM_ARRAY_TASK_ID) into its own campaign folder; join the shards
    /// with `matador merge` (docs/slurm.md has the rule and a recipe).
    #[arg(long, value_name = "K/N", conflicts_with = "resume")]
    pub shard: Option<matador::campaign::plan::ShardSpec>,
}

/// Runs `matador run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    use matador::campaign::record::Record;
    let (record, plan, ls) = if let Some(dir) = &args.resume {
        let (record, plan) = Record::open(dir)?;
        (
            Some(record),
            plan,
            resumed_scenario(dir, args.profiles.as_deref())?,
        )
    } else {
        let Some(path) = &args.scenario else {
            anyhow::bail!("a scenario file is required (or --resume DIR)");
        };
        let ls = LoadedScenario::load_with(path, args.profiles.as_deref())?;
        let mut plan = Plan::expand(&ls);
        if let Some(spec) = args.shard {
            plan = plan.shard(spec);
            if !args.dry_run
                && let Some(sh) = &plan.shard
            {
                eprintln!(
                    "shard {spec}: {} of {} measurements (plan {})",
                    plan.measurements.len(),
                    sh.plan_measurements,
                    sh.plan_sha256
                );
            }
        }
        if args.dry_run {
            print!("{}", dry_run_text(&ls, &plan));
            return Ok(ExitCode::SUCCESS);
        }
        (None, plan, ls)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut opts = RunOptions::from_scenario(&ls.scenario, ls.profiles.clone());
    if args.lab {
        // The virtual lab's own address space, passed explicitly.
        opts.exempt.extend(matador_lab::topology::lab_networks());
    }
    watch_ctrl_c(&rt, opts.stop.clone());
    // The virtual lab lives until the end of this function: dropping it
    // (error, panic) tears it down; normally `down` is called explicitly.
    let mut lab = None;
    let mut lab_topology = None;
    let (env, lab_desc) = if args.lab {
        let t = std::time::Instant::now();
        let state_dir = args
            .lab_state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(matador_lab::build::DEFAULT_STATE_DIR));
        let (l, topology) =
            lab_env::up(&ls, args.resume.as_deref(), &state_dir, opts.stop.clone())?;
        lab_topology = Some(topology);
        let desc = matador::net::labdesc::LabDesc::read(&l.desc_path)?;
        eprintln!(
            "lab {} up in {:.1} s ({} phones, {} nodes)",
            desc.id,
            t.elapsed().as_secs_f64(),
            desc.phones.len(),
            desc.nodes.iter().filter(|n| n.kind == "node").count()
        );
        let env = lab_env::env(&ls, &desc, &l.dir, &rt)?;
        lab = Some(l);
        (env, Some(desc))
    } else {
        (build_env(&ls, &rt)?, None)
    };
    let (env, agents) = env;
    let resumed = record.is_some();
    let record = match record {
        Some(r) => r,
        None => new_record(
            &args.out,
            &plan,
            &ls,
            lab_desc.as_ref(),
            lab_topology.as_ref(),
        )?,
    };
    append_provenance(&rt, &record, resumed, &ls, &agents)?;
    let pb = progress_bar(plan.measurements.len());
    opts.progress = Some(pb.clone());
    let t0 = std::time::Instant::now();
    let mut runner = Runner::new(record, plan, env, opts);
    let dir = runner.dir().to_path_buf();
    let summary = runner.run();
    drop(runner);
    pb.finish_and_clear();
    if let Some(l) = lab.take() {
        lab_down(l);
    }
    let summary = summary?;
    println!(
        "campaign {}: {} complete, {} failed, {} skipped, {} remaining in {:.0} s",
        dir.display(),
        summary.complete,
        summary.failed,
        summary.skipped,
        summary.remaining,
        t0.elapsed().as_secs_f64()
    );
    for line in summary.pair_lines() {
        println!("  {line}");
    }
    if summary.interrupted {
        println!(
            "interrupted: continue with `matador run --resume {}`",
            dir.display()
        );
        return Ok(ExitCode::from(130));
    }
    println!("analysis: {}/measurements/*/analysis.json", dir.display());
    // Every campaign ends with its report, real lab or virtual.
    let report_ok = report(&dir);
    // Last line: where the report is (the markdown above scrolls away).
    println!("\nreport: {}", dir.join("report.html").display());
    Ok(if summary.failed + summary.skipped > 0 || !report_ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Ctrl-C: finish the current step, tear down, leave a resumable record
/// (during `--lab` bring-up it cancels the lab, which removes itself); a
/// second Ctrl-C aborts — a second one a person presses: SIGINTs within
/// [`CTRL_C_AGAIN`] of the first are one. `timeout -s INT` (coreutils)
/// signals the command and then its whole process group, so matador got
/// two SIGINTs a few microseconds apart and aborted without tearing down
/// (the paper-sized lab run lost its in-flight measurements and left its
/// lab behind that way).
fn watch_ctrl_c(rt: &tokio::runtime::Runtime, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let first = std::time::Instant::now();
            eprintln!("\nstopping after the current step (Ctrl-C again to abort)...");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            while tokio::signal::ctrl_c().await.is_ok() {
                if first.elapsed() >= CTRL_C_AGAIN {
                    std::process::exit(130);
                }
            }
        }
    });
}

/// How long after a first SIGINT another one is taken as the same Ctrl-C
/// (see [`watch_ctrl_c`]); a person's second press comes later.
const CTRL_C_AGAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// A new campaign record under `out` with its lab: the virtual lab's
/// description made self-contained and its topology as built (for
/// `--resume --lab`), else the scenario's real lab.
fn new_record(
    out: &std::path::Path,
    plan: &Plan,
    ls: &LoadedScenario,
    lab_desc: Option<&matador::net::labdesc::LabDesc>,
    lab_topology: Option<&matador_lab::topology::Topology>,
) -> anyhow::Result<matador::campaign::record::Record> {
    let r = matador::campaign::record::Record::create(out, plan, &ls.source)?;
    match (lab_desc, lab_topology) {
        (Some(d), Some(t)) => {
            r.write_lab(&self_contained_lab(d, &r.dir)?)?;
            // Without the phones' numbers (secrets kept out of the
            // record; a resume takes them from the lab base/profiles).
            let mut t = t.clone();
            for ph in &mut t.phones {
                ph.accounts.clear();
            }
            let yaml = serde_yaml_ng::to_string(&t)?;
            matador::campaign::record::write_atomic(&r.dir.join(LAB_TOPOLOGY), yaml.as_bytes())?;
        }
        _ => r.write_lab(&lab_json(ls))?,
    }
    Ok(r)
}

/// Appends this run's provenance to the record: geolocation files (the
/// lab mmdb is in the folder by now) and the nodes' facts.
fn append_provenance(
    rt: &tokio::runtime::Runtime,
    record: &matador::campaign::record::Record,
    resumed: bool,
    ls: &LoadedScenario,
    agents: &Agents,
) -> anyhow::Result<()> {
    let scenario_dir = if resumed {
        record.dir.clone()
    } else {
        ls.path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf()
    };
    let geo =
        matador::campaign::provenance::geo_files(&record.dir, &scenario_dir, &ls.scenario.geo);
    let nodes = matador::campaign::provenance::node_facts(
        rt.handle(),
        agents,
        std::time::Duration::from_secs(30),
    );
    for n in nodes.iter().filter(|n| n.error.is_some()) {
        eprintln!(
            "warning: provenance of node {}: {}",
            n.node,
            n.error.as_deref().unwrap_or("")
        );
    }
    matador::campaign::provenance::append(
        &record.dir,
        matador::campaign::provenance::run_provenance(resumed, geo, nodes),
    )?;
    Ok(())
}

/// The campaign's progress bar over `n` measurements.
fn progress_bar(n: usize) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} measurements, ETA {eta} | {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// Tears the virtual lab down after the campaign, reporting problems.
fn lab_down(l: matador_lab::build::Lab) {
    let t = std::time::Instant::now();
    let problems = l.down();
    for p in &problems {
        eprintln!("warning: lab down: {p}");
    }
    eprintln!("lab down in {:.1} s", t.elapsed().as_secs_f64());
}

/// The scenario of a campaign being resumed, from its folder: the copy of
/// the scenario file (its own settings; the plan already holds the resolved
/// texts) and the copy of the app profiles the campaign used (for the
/// analysis and the device layer alike; a campaign made before copies were
/// kept has none: the defaults then). The copy sits away from the files the
/// scenario named, so phone profiles come from `--profiles` or the nearest
/// device-profiles/ above the campaign folder or the data directory.
fn resumed_scenario(
    dir: &std::path::Path,
    profiles: Option<&std::path::Path>,
) -> anyhow::Result<LoadedScenario> {
    use matador::campaign::record::APP_PROFILES_DIR;
    use matador::scenario::apps::AppProfiles;
    let sp = dir.join("scenario.yaml");
    let text =
        std::fs::read_to_string(&sp).map_err(|e| anyhow::anyhow!("{}: {e}", sp.display()))?;
    let mut scenario: matador::scenario::Scenario =
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", sp.display()))?;
    let profiles_dir = matador::scenario::data::profiles_dir(&sp, profiles);
    let copy = dir.join(APP_PROFILES_DIR);
    let apps = if copy.is_dir() {
        scenario.app_profiles = Some(PathBuf::from(APP_PROFILES_DIR));
        AppProfiles::load_copy(&copy)?
    } else {
        match profiles_dir.as_ref().map(|d| d.join("apps")) {
            Some(d) if d.is_dir() && scenario.app_profiles.is_none() => {
                scenario.app_profiles = Some(d.clone());
                AppProfiles::load_dir(&d)?
            }
            _ => AppProfiles::builtin(),
        }
    };
    Ok(LoadedScenario {
        scenario,
        path: sp,
        source: text,
        texts: Vec::new(),
        profiles: apps,
        profiles_dir,
    })
}

/// The app profiles to analyse a campaign's record with: `apps` when
/// given, else the campaign's copy ([`matador::campaign::record::APP_PROFILES_DIR`]),
/// else (a folder made before copies were kept, or none) the built-in ones.
pub fn record_profiles(
    campaign: Option<&std::path::Path>,
    apps: Option<&std::path::Path>,
) -> anyhow::Result<matador::scenario::apps::AppProfiles> {
    use matador::scenario::apps::AppProfiles;
    let copy = campaign.map(|c| c.join(matador::campaign::record::APP_PROFILES_DIR));
    Ok(match (apps, copy) {
        (Some(d), _) => AppProfiles::load_dir(d)?,
        (None, Some(c)) if c.is_dir() => AppProfiles::load_copy(&c)?,
        _ => AppProfiles::builtin(),
    })
}

/// The lab description as the record keeps it: the lab mmdb copied into
/// the campaign folder (the lab folder goes away with the lab), so the
/// report geolocates from the record alone.
fn self_contained_lab(
    d: &matador::net::labdesc::LabDesc,
    dir: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let mut d = d.clone();
    if let Some(m) = &d.mmdb {
        let to = dir.join("lab.mmdb");
        std::fs::copy(m, &to)
            .map_err(|e| anyhow::anyhow!("copy {} to {}: {e}", m.display(), to.display()))?;
        d.mmdb = Some(PathBuf::from("lab.mmdb"));
    }
    Ok(serde_json::to_value(&d)?)
}

/// The campaign's report: markdown on stdout, `report.html` and the Parquet
/// dataset (`dataset/`) in the folder (the code of `matador report`). False when it could not be made whole.
pub(crate) fn report(dir: &std::path::Path) -> bool {
    use super::report::{FormatArg, ReportArgs, run};
    let args = |format, out| ReportArgs {
        campaigns: vec![dir.to_path_buf()],
        compare: false,
        format,
        groups: None,
        geo_db: None,
        asn_db: None,
        geo_changes: None,
        out,
        // With out = the campaign folder: CAMPAIGN/dataset/*.parquet.
        dataset: None,
        redact: false,
    };
    let mut ok = true;
    for (format, out) in [
        (FormatArg::Html, Some(dir.to_path_buf())),
        (FormatArg::Md, None),
    ] {
        match run(args(format, out)) {
            Ok(code) => ok &= code == ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: report: {e:#}");
                ok = false;
            }
        }
    }
    ok
}

/// The real lab's world from the scenario (`router:`, `nodes:`), built by
/// the campaign's one builder ([`matador::campaign::world`]; `--lab` uses the
/// same with the lab's description).
fn build_env(ls: &LoadedScenario, rt: &tokio::runtime::Runtime) -> anyhow::Result<(Env, Agents)> {
    let sc = &ls.scenario;
    let state = matador::net::state::StateFile::create(
        &PathBuf::from("/run/matador").join(format!(
            "campaign-{}-{}.json",
            sc.name,
            std::process::id()
        )),
        &sc.name,
        serde_json::json!({"scenario": sc.name}),
    )?;
    let world = matador::campaign::world::World::from_scenario(ls, state)?;
    Ok(world.build(ls, rt.handle())?)
}

/// Agent configuration per node name.
pub(crate) type Agents = matador::campaign::world::Agents;

/// `lab.json` (schema matador/lab/1) of a real lab: the nodes with their
/// countries and the phones with their router addresses.
pub fn lab_json(ls: &LoadedScenario) -> serde_json::Value {
    let sc = &ls.scenario;
    let mut nodes = Vec::new();
    for (c, list) in &sc.countries {
        for n in list {
            let addr = sc.nodes.get(n).map(|x| x.host.clone());
            nodes.push(
                serde_json::json!({"name": n, "country": c.as_str(), "addr": addr, "kind": "node"}),
            );
        }
    }
    let phones: Vec<serde_json::Value> = sc
        .phones
        .iter()
        .map(|p| {
            let r = sc.router.as_ref().and_then(|r| r.phones.get(&p.id));
            serde_json::json!({"name": p.id, "serial": null, "addr": r.map(|r| r.addr), "node": null})
        })
        .collect();
    serde_json::json!({"schema": "matador/lab/1", "nodes": nodes, "phones": phones})
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
    if let Some(sh) = &plan.shard {
        s.push_str(&format!(
            "\nshard {}/{} of plan {} ({} measurements in all)",
            sh.k, sh.n, sh.plan_sha256, sh.plan_measurements
        ));
    }
    s.push_str(&format!(
        "\n{} measurements ({} message, {} baseline), {} messages, estimated duration {}\n",
        plan.measurements.len(),
        plan.count_kind(Kind::Message),
        plan.count_kind(Kind::Baseline),
        plan.total_messages(),
        plan.duration_text(sc.node_capacity)
    ));
    s
}

/// `matador replay` on campaign or measurement folders (every path must be
/// one; otherwise `None` and replay handles the paths as captures): re-runs
/// the correlation from the stored files, rewrites each campaign
/// measurement's `analysis.json`, and prints (with `--json`) one object per
/// capture, then one per measurement (`measurement`: the folder, `servers`:
/// the correlation result). App profiles: `apps` (`--apps DIR`) when given,
/// else the copy the campaign kept of those it ran with
/// ([`record_profiles`]).
pub fn replay_record(
    paths: &[PathBuf],
    json: bool,
    apps: Option<&std::path::Path>,
) -> anyhow::Result<Option<ExitCode>> {
    use matador::analysis::correlate::{
        CorrelateConfig, analyze_measurement, is_campaign, is_measurement, replay_campaign,
    };
    if paths.is_empty()
        || !paths
            .iter()
            .all(|p| p.is_dir() && (is_campaign(p) || is_measurement(p)))
    {
        return Ok(None);
    }
    let mut results = Vec::new();
    for p in paths {
        // A virtual-lab campaign (or a measurement inside one) passes the
        // lab's address space as its explicit exemption.
        let campaign = if is_campaign(p) {
            p.as_path()
        } else {
            p.ancestors().nth(2).unwrap_or(p)
        };
        let cfg = CorrelateConfig {
            exempt: matador::net::addrspace::recorded_exemption(campaign),
            ..CorrelateConfig::default()
        };
        if is_measurement(p) && !is_campaign(p) {
            // measurements/<id> of a campaign, or a standalone folder.
            let campaign = p.parent().and_then(std::path::Path::parent);
            let profiles = std::sync::Arc::new(record_profiles(campaign, apps)?);
            results.push((p.clone(), analyze_measurement(p, None, &profiles, &cfg)?));
        } else {
            let profiles = std::sync::Arc::new(record_profiles(Some(p), apps)?);
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
