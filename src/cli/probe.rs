//! `matador probe`: active app reachability and censorship tests from
//! vantages (lab namespaces or remote nodes through their agent), judged
//! against a control vantage; optional monitoring rounds.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use matador::net::labdesc::LabDesc;
use matador::probes::ProbeError;
use matador::probes::limit::Limits;
use matador::probes::monitor::{self, Round};
use matador::probes::session::{self, RoundResult};
use matador::probes::spec::{AppTargets, EndpointSpec, ProbeSpec, app_targets};
use matador::probes::vantage::{VantageResult, run_in_netns};
use matador::probes::verdict::{Knowledge, VantageMeta, ooni_measurements};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const SAFETY: &str = "SAFETY: running probes from a country that censors the network can put \
the operator at risk (legal and physical): the requests are visible to the censor and \
identify themselves (User-Agent: matador-probe). Follow OONI's informed-consent practice \
(https://ooni.org/about/risks/): know the local laws, get the consent of whoever operates \
the vantage, and probe only the endpoints you name. matador probes only the apps and \
endpoints given on the command line, within --rate and --max-requests.";

/// How vantages are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// A thread inside the node's network namespace (virtual lab).
    Netns,
    /// The node agent over SSH (`probe` op).
    Agent,
}

/// Arguments of `matador probe`.
#[derive(Debug, Args)]
#[command(after_help = SAFETY)]
pub struct ProbeArgs {
    /// App to probe (its profile's `probe:` endpoints), repeatable.
    #[arg(long = "app", required = true)]
    pub apps: Vec<String>,
    /// Probe only these endpoints (`host:port[,port]`) instead of the
    /// profile's list; repeatable; applies to the single --app given.
    #[arg(long = "endpoint")]
    pub endpoints: Vec<String>,
    /// Directory of app profiles (default: the shipped ones).
    #[arg(long)]
    pub profiles: Option<PathBuf>,
    /// Vantage (node name, or a lab phone's name to probe through its
    /// tunnel path), repeatable.
    #[arg(long = "vantage", required = true)]
    pub vantages: Vec<String>,
    /// Control vantage (node name).
    #[arg(long)]
    pub control: String,
    /// lab.json of the lab whose nodes are the vantages (virtual or real).
    #[arg(long)]
    pub lab_desc: Option<PathBuf>,
    /// Node configurations (JSON map name → agent NodeConfig) for --via agent
    /// without a lab.json.
    #[arg(long)]
    pub nodes: Option<PathBuf>,
    /// How to reach the vantages.
    #[arg(long, value_enum, default_value = "netns")]
    pub via: Via,
    /// Resolver of every vantage (default: the lab's, else each vantage's
    /// /etc/resolv.conf).
    #[arg(long)]
    pub resolver: Option<SocketAddr>,
    /// Neutral, reachable address for the HTTP Host-header keyword test.
    #[arg(long)]
    pub neutral: Option<SocketAddr>,
    /// Bulk source (sends bytes on connect) for the throughput test.
    #[arg(long)]
    pub bulk: Option<SocketAddr>,
    /// Bytes to read from --bulk.
    #[arg(long, default_value_t = 200_000)]
    pub bulk_bytes: u64,
    /// Requests per second per vantage.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Requests per vantage and round.
    #[arg(long, default_value_t = 1000)]
    pub max_requests: u32,
    /// Per-operation timeout in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Milliseconds a UDP query keeps listening for racing replies.
    #[arg(long, default_value_t = 250)]
    pub race_window_ms: u64,
    /// Do not isolate keywords after a Host-header reset.
    #[arg(long)]
    pub no_isolation: bool,
    /// Lab mode: refuse targets outside 198.18.0.0/15 and fd00::/8
    /// (implied by a virtual lab's lab.json).
    #[arg(long)]
    pub lab: bool,
    /// Capture on the vantages' uplinks and feed the interference rules.
    #[arg(long)]
    pub capture: bool,
    /// ASN mmdb for the DNS consistency rule (default: the lab's mmdb).
    #[arg(long)]
    pub asn_db: Option<PathBuf>,
    /// Rounds (monitoring mode).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 60.0)]
    pub interval: f64,
    /// Output directory: round-NNNN.json, ooni.jsonl, series.jsonl, changes.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the verdicts as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct Vantage {
    netns: Option<String>,
    uplink: Option<String>,
    agent: Option<matador::net::agent::client::NodeConfig>,
    meta: VantageMeta,
}

fn vantages(args: &ProbeArgs, desc: Option<&LabDesc>) -> anyhow::Result<BTreeMap<String, Vantage>> {
    let file_nodes: BTreeMap<String, matador::net::agent::client::NodeConfig> = match &args.nodes {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?,
        )
        .with_context(|| format!("{}", p.display()))?,
        None => BTreeMap::new(),
    };
    let mut out = BTreeMap::new();
    for name in args.vantages.iter().chain([&args.control]) {
        let n = desc.and_then(|d| d.node(name));
        // A phone of the lab: probes take its tunnel path through its node.
        let phone = desc.and_then(|d| d.phone(name));
        let phone_node = phone.and_then(|p| desc.and_then(|d| d.node(&p.node)));
        let mut v = Vantage {
            netns: n
                .and_then(|n| n.netns.clone())
                .or_else(|| phone.and_then(|p| p.netns.clone())),
            uplink: n
                .and_then(|n| n.tunnel.as_ref())
                .map(|t| t.node_uplink.clone()),
            agent: file_nodes.get(name).cloned(),
            meta: VantageMeta {
                cc: n.or(phone_node).map(|n| n.country.clone()),
                asn: n.or(phone_node).and_then(|n| n.asn),
            },
        };
        if v.agent.is_none()
            && let (Some(d), Some(n)) = (desc, n)
        {
            // Beside lab.json (the lab's own folder, removed with the lab).
            let dir = args
                .lab_desc
                .as_deref()
                .and_then(std::path::Path::parent)
                .map(|p| p.join("agent").join(&n.name))
                .unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("matador-probe-agent-{}", n.name))
                });
            v.agent = matador::campaign::world::lab_agent(d, n, &dir);
        }
        match args.via {
            Via::Netns if v.netns.is_none() => {
                bail!(
                    "vantage {name}: no network namespace (give --lab-desc of a virtual lab, or --via agent)"
                )
            }
            Via::Agent if v.agent.is_none() => {
                bail!("vantage {name}: no SSH endpoint (give --lab-desc or --nodes)")
            }
            _ => {}
        }
        out.insert(name.clone(), v);
    }
    Ok(out)
}

fn targets(args: &ProbeArgs) -> anyhow::Result<Vec<AppTargets>> {
    if !args.endpoints.is_empty() && args.apps.len() != 1 {
        bail!("--endpoint needs exactly one --app");
    }
    // The one app-profile loader (a folder, else the shipped profiles).
    let profiles = match &args.profiles {
        Some(d) => matador::scenario::apps::AppProfiles::load_dir(d)?,
        None => matador::scenario::apps::AppProfiles::builtin(),
    };
    let mut out = Vec::new();
    for app in &args.apps {
        let mut t = app_targets(app, &profiles)?;
        if !args.endpoints.is_empty() {
            t.endpoints = args
                .endpoints
                .iter()
                .map(|e| EndpointSpec::parse(e).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?;
        }
        out.push(t);
    }
    Ok(out)
}

/// Runs `matador probe`.
pub fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    eprintln!("{SAFETY}\n");
    check_args(&args)?;
    let desc = match &args.lab_desc {
        Some(p) => Some(LabDesc::read(p)?),
        None => None,
    };
    let lab = args.lab || desc.as_ref().is_some_and(|d| d.virtual_lab);
    // Apps are checked before vantages (the first error is reported).
    let spec = probe_spec(&args, desc.as_ref(), lab)?;
    let vs = vantages(&args, desc.as_ref())?;
    let knowledge = knowledge(&args, desc.as_ref(), lab)?;
    let out_dir = args.out.clone();
    if let Some(d) = &out_dir {
        std::fs::create_dir_all(d).with_context(|| format!("{}", d.display()))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let meta: BTreeMap<String, VantageMeta> = vs
        .iter()
        .map(|(k, v)| (k.clone(), v.meta.clone()))
        .collect();
    let mut rounds: Vec<Round> = Vec::new();
    let mut failed = false;
    for i in 1..=args.repeat {
        if i > 1 {
            std::thread::sleep(Duration::from_secs_f64(args.interval));
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut runner = |name: &str, s: &ProbeSpec| {
            probe_vantage(&args, &vs, &rt, out_dir.as_deref(), i, name, s)
        };
        let r: RoundResult = match session::round(
            &spec,
            &args.control,
            &args.vantages,
            &knowledge,
            &mut runner,
        ) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("round {i}: {e}");
                failed = true;
                continue;
            }
        };
        print_round(i, &r, args.json)?;
        if !args.json {
            print_disagreements(&r, &meta);
        }
        if let Some(d) = &out_dir {
            write_round(d, i, &r, &vs, &meta)?;
        }
        let round = Round {
            round: i,
            time: started,
            vantages: r.verdicts.clone(),
        };
        if let Some(d) = &out_dir {
            append(
                &d.join("series.jsonl"),
                &format!("{}\n", serde_json::to_string(&round)?),
            )?;
        }
        rounds.push(round);
    }
    let changes = monitor::changes(&rounds);
    if args.repeat > 1 {
        for line in monitor::describe(&changes) {
            println!("{line}");
        }
    }
    if let Some(d) = &out_dir {
        let cf = d.join("changes.json");
        matador::atomic_file::write(&cf, &serde_json::to_vec_pretty(&changes)?)
            .with_context(|| cf.display().to_string())?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The rate, repeat and interval bounds.
fn check_args(args: &ProbeArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 1000.0) {
        bail!("--rate must be in (0, 1000] requests/s");
    }
    if args.repeat == 0
        || !(args.interval.is_finite() && (0.0..=604_800.0).contains(&args.interval))
    {
        bail!("--repeat must be at least 1 and --interval between 0 and 604800 s");
    }
    Ok(())
}

/// What each vantage probes: the apps' targets, the resolver (the lab's
/// when not given), the options and the rate limits.
fn probe_spec(args: &ProbeArgs, desc: Option<&LabDesc>, lab: bool) -> anyhow::Result<ProbeSpec> {
    let apps = targets(args)?;
    let resolver = args.resolver.or_else(|| {
        desc.and_then(|d| d.resolver.parse().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    });
    let mut spec = ProbeSpec::new(apps, resolver);
    spec.neutral = args.neutral;
    spec.bulk = args.bulk;
    spec.bulk_bytes = args.bulk_bytes;
    spec.isolate_keywords = !args.no_isolation;
    spec.timeout_ms = args.timeout_ms;
    spec.race_window_ms = args.race_window_ms;
    spec.limits = Limits {
        rate_per_s: args.rate,
        max_requests: args.max_requests,
    };
    spec.lab = lab;
    Ok(spec)
}

/// What the verdicts know: the shipped lists, the lab's own space as an
/// explicit exemption in lab mode, and the ASN database (`--asn-db`, else
/// the lab's mmdb).
fn knowledge(args: &ProbeArgs, desc: Option<&LabDesc>, lab: bool) -> anyhow::Result<Knowledge> {
    let exempt = if lab {
        matador_lab::topology::lab_networks()
    } else {
        Vec::new()
    };
    let mut knowledge = Knowledge::shipped(&exempt);
    let mmdb = args
        .asn_db
        .clone()
        .or_else(|| desc.and_then(|d| d.mmdb.clone()));
    if let Some(p) = mmdb {
        let db = matador::geo::db::MmdbFile::open(&p, "ASN database", "--asn-db")?;
        knowledge.asn = Some(Arc::new(db));
    }
    Ok(knowledge)
}

/// Runs one vantage's probes of round `i` (in its namespace or through its
/// node agent), capturing under `out_dir` with `--capture`.
fn probe_vantage(
    args: &ProbeArgs,
    vs: &BTreeMap<String, Vantage>,
    rt: &tokio::runtime::Runtime,
    out_dir: Option<&std::path::Path>,
    i: u32,
    name: &str,
    s: &ProbeSpec,
) -> Result<VantageResult, ProbeError> {
    let Some(v) = vs.get(name) else {
        return Err(ProbeError::Vantage {
            vantage: name.to_string(),
            message: "not configured".into(),
        });
    };
    let mut s = s.clone();
    if args.capture {
        s.capture_iface = v.uplink.clone().or_else(|| Some("any".into()));
        s.capture_dir = out_dir.map(|d| d.join(format!("round-{i:04}-{name}")));
    }
    match (args.via, &v.netns, &v.agent) {
        (Via::Netns, Some(ns), _) => run_in_netns(name, ns, &s),
        (Via::Agent, _, Some(cfg)) => rt.block_on(async {
            let err = |e: &dyn std::fmt::Display| ProbeError::Vantage {
                vantage: name.to_string(),
                message: e.to_string(),
            };
            let agent = matador::net::agent::client::Agent::connect(cfg)
                .await
                .map_err(|e| err(&e))?;
            let r = agent
                .probe(name, &s, s.time_bound())
                .await
                .map_err(|e| err(&e));
            let _ = agent.shutdown().await;
            r
        }),
        _ => Err(ProbeError::Vantage {
            vantage: name.to_string(),
            message: "not reachable this way".into(),
        }),
    }
}

/// Where vantages of one country disagree about an app.
fn print_disagreements(r: &RoundResult, meta: &BTreeMap<String, VantageMeta>) {
    for (cc, app, diff) in matador::probes::matrix::country_differences(r, meta) {
        let parts: Vec<String> = diff
            .iter()
            .map(|(v, x)| {
                let n: Vec<&str> = x.iter().map(|y| y.name()).collect();
                format!("{v}: {}", n.join(", "))
            })
            .collect();
        println!("  {cc} vantages disagree on {app}: {}", parts.join("; "));
    }
}

/// Round `i`'s files under `d`: `round-NNNN.json`, its section of
/// `matrix.md` and its OONI measurements in `ooni.jsonl`.
fn write_round(
    d: &std::path::Path,
    i: u32,
    r: &RoundResult,
    vs: &BTreeMap<String, Vantage>,
    meta: &BTreeMap<String, VantageMeta>,
) -> anyhow::Result<()> {
    let round_file = d.join(format!("round-{i:04}.json"));
    matador::atomic_file::write(&round_file, &serde_json::to_vec_pretty(r)?)
        .with_context(|| round_file.display().to_string())?;
    append(
        &d.join("matrix.md"),
        &matador::probes::matrix::markdown(r, i, meta, Some(&round_file), Some(d)),
    )?;
    let mut ooni = String::new();
    for (v, verd) in r.vantages.iter().zip(&r.verdicts) {
        let meta = vs
            .get(&v.vantage)
            .map(|x| x.meta.clone())
            .unwrap_or_default();
        for m in ooni_measurements(v, verd, &meta) {
            ooni.push_str(&serde_json::to_string(&m)?);
            ooni.push('\n');
        }
    }
    append(&d.join("ooni.jsonl"), &ooni)
}

fn append(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn print_round(i: u32, r: &RoundResult, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&r.verdicts)?);
        return Ok(());
    }
    println!("round {i} (control {})", r.control.vantage);
    for (v, res) in r.verdicts.iter().zip(&r.vantages) {
        println!(
            "vantage {} ({} requests, {:.1} s)",
            v.vantage, res.requests, res.runtime_s
        );
        for a in &v.apps {
            let names: Vec<&str> = a.verdicts.iter().map(|x| x.name()).collect();
            println!("  {:<10} {}", a.app, names.join(", "));
            for e in &a.endpoints {
                let names: Vec<&str> = e.verdicts.iter().map(|x| x.name()).collect();
                let kw = if e.keywords.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  keywords {:?} ({} requests)",
                        e.keywords, e.keyword_requests
                    )
                };
                println!("    {:<32} {}{kw}", e.host, names.join(", "));
            }
        }
        if let Some(t) = &v.throttle {
            println!(
                "  throughput {:.0} kbit/s vs control {:.0} kbit/s (ratio {:.2}){}",
                t.vantage_kbit_s,
                t.control_kbit_s,
                t.ratio,
                if t.throttled { ": throttled" } else { "" }
            );
        }
    }
    Ok(())
}
