//! `matador replay`: analyse stored captures.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use matador::analysis::replay::{
    ReplayOptions, StreamedReport, TOP_FLOWS, collect_inputs, stream_file,
};
use matador::analysis::replay_shard;
use matador::analysis::spill::SpillConfig;
use matador::scenario::apps::AppProfiles;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Captures with more records than this also get per-record JSONL files under `--out`.
const LARGE_RECORDS: u64 = 10_000;
/// Write buffer of the JSON outputs (stdout, `--out` files).
const OUT_BUFFER: usize = 256 * 1024;

/// Arguments of `matador replay`.
#[derive(Debug, Args)]
#[command(
    after_help = "Output: without --json, a block per capture (largest flows, servers \
per app with their evidence, warnings, errors) and then a summary table with one row per \
capture (packets, flows, DNS responses, distinct SNIs, servers per app, errors). A progress \
bar is drawn on stderr only when stderr is a terminal. Read errors are also printed on \
stderr, naming the file, the byte offset and the frame number.

Exit status:
  0  every capture was read completely
  1  some capture could not be read, or only partly (the others, and everything \
before the error, are still reported)
  2  usage error (bad option, no capture found, unreadable --apps or --out)"
)]
pub struct ReplayArgs {
    /// Capture files or directories. Directories are searched recursively for
    /// pcap/pcapng files, recognised by their magic number, not their name.
    /// Files given by name are always read (and reported if they are not captures).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Print one JSON object per capture (JSON Lines) on stdout instead of
    /// tables, in the order the captures were given/found. The schema is
    /// documented in docs/replay.md.
    #[arg(long)]
    pub json: bool,

    /// Number of captures analysed in parallel (default: the number of CPUs).
    /// Each capture is read by one thread, so this speeds up many files, not one.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,

    /// Write each capture's JSON object to DIR/<name>.json instead of stdout;
    /// captures with more than 10000 flows/DNS/TLS records also get
    /// <name>.flows.jsonl, <name>.dns.jsonl and <name>.tls.jsonl.
    /// Without --json the tables are still printed on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print only the summary table, not the block per capture (ignored with --json).
    #[arg(long)]
    pub summary: bool,

    /// Load app profiles (the `network:` fingerprints used for attribution)
    /// from every *.yaml in DIR instead of the built-in device-profiles/apps
    /// (for a campaign folder: instead of the copy of the profiles it ran
    /// with, in its app-profiles/).
    #[arg(long, value_name = "DIR")]
    pub apps: Option<PathBuf>,

    /// The captures come from matador's virtual lab: its address space
    /// (198.18.0.0/15, fd00::/8) is not reported as bogon answers. A
    /// campaign folder passes its own exemption: the virtual lab's space
    /// when it holds lab-topology.yaml, and the `exempt_networks` of its
    /// recorded scenario.yaml.
    #[arg(long)]
    pub lab: bool,

    /// Analyse only shard k of n of the captures found (k counts from 0,
    /// like SLURM_ARRAY_TASK_ID): capture i of the list (paths in the order
    /// given, directories walked in name order) goes to shard i mod n.
    /// Needs --out DIR, which also gets replay-shard.json; join the shards'
    /// folders with `matador merge OUT DIR…` (docs/slurm.md).
    #[arg(long, value_name = "K/N", requires = "out")]
    pub shard: Option<matador::campaign::plan::ShardSpec>,
}

/// `matador merge OUT DIR…` on replay shards ([`replay_shard::merge`]).
pub fn merge_replay_shards(
    out: &Path,
    dirs: &[PathBuf],
    partial: bool,
) -> anyhow::Result<ExitCode> {
    let m = replay_shard::merge(out, dirs, partial)?;
    println!(
        "merged {} replay shard(s) of {} into {}: {} of {} captures{}",
        m.shards,
        m.n,
        out.display(),
        m.captures,
        m.total,
        if m.missing.is_empty() {
            ""
        } else {
            " (incomplete)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Captures to read with their output names, or the exit code to end with.
type Selected = Result<(Vec<PathBuf>, Vec<String>), ExitCode>;

/// The captures to read and their output names: every capture found, or
/// with `--shard` this shard's part (its `replay-shard.json` written into
/// `--out`). `Err`: the exit code of a usage error or an empty shard.
fn select_inputs(args: &ReplayArgs) -> anyhow::Result<Selected> {
    let inputs = collect_inputs(&args.paths);
    // Output names come from the whole list, so shards name their files
    // as one unsharded run would and merged shards never collide.
    let names = output_names(&inputs);
    let (inputs, names) = match args.shard {
        None => (inputs, names),
        Some(spec) => {
            let (record, inputs, names) = replay_shard::split(inputs, names, spec);
            if let Some(dir) = &args.out {
                replay_shard::write(dir, &record)?;
            }
            eprintln!(
                "shard {spec}: {} of {} captures",
                record.inputs.len(),
                record.inputs_total
            );
            if inputs.is_empty() {
                return Ok(Err(ExitCode::SUCCESS));
            }
            (inputs, names)
        }
    };
    if inputs.is_empty() {
        eprintln!(
            "error: no pcap or pcapng files found under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(Err(ExitCode::from(2)));
    }
    Ok(Ok((inputs, names)))
}

/// The app profiles of `--apps`, or the built-in ones.
fn load_apps(apps: Option<&Path>) -> Result<AppProfiles, ExitCode> {
    match apps {
        None => Ok(AppProfiles::builtin()),
        Some(dir) => AppProfiles::load_dir(dir).map_err(|e| {
            eprintln!("error: --apps {}: {e}", dir.display());
            ExitCode::from(2)
        }),
    }
}

/// Runs `matador replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    // Campaign and measurement folders: correlation (owned by cli/run.rs).
    if args.shard.is_some()
        && args
            .paths
            .iter()
            .any(|p| matador::analysis::correlate::is_campaign(p))
    {
        eprintln!(
            "error: --shard splits capture files; a campaign is split with `matador run --shard k/n`"
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(code) = super::run::replay_record(&args.paths, args.json, args.apps.as_deref())? {
        return Ok(code);
    }
    let (inputs, names) = match select_inputs(&args)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let apps = match load_apps(args.apps.as_deref()) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    if let Some(dir) = &args.out
        && let Err(e) = fs::create_dir_all(dir)
    {
        eprintln!("error: --out: cannot create {}: {e}", dir.display());
        return Ok(ExitCode::from(2));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = (args.jobs.map_or(cpus, |j| j as usize))
        .min(inputs.len())
        .max(1);
    let opts = ReplayOptions {
        apps: Arc::new(apps),
        exempt: if args.lab {
            matador_lab::topology::lab_networks()
        } else {
            Vec::new()
        },
        ..ReplayOptions::default()
    };
    // Finished records spill to unnamed temporary files (under --out when
    // given), so memory follows the concurrent flows, not the capture size.
    let spill = SpillConfig {
        dir: args.out.clone().unwrap_or_else(std::env::temp_dir),
        ..SpillConfig::temp()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("replay-{i}"))
        .build()
        .context("cannot start worker threads")?;

    let bar = progress_bar(&inputs);
    let stdout = std::io::stdout();
    // Flushed after each capture; a large buffer writes a big JSON object in
    // a few hundred system calls instead of ~100 per megabyte.
    let mut out = BufWriter::with_capacity(OUT_BUFFER, stdout.lock());
    let mut rows = Vec::with_capacity(inputs.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, StreamedReport)>();

    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        let (next, inputs, opts, bar, spill) = (&next, &inputs, &opts, &bar, &spill);
        let pool = &pool;
        scope.spawn(move || {
            // Workers take captures in input order (not rayon's split
            // halves), so reports arrive nearly in the order they are
            // printed and few wait in `pending`.
            pool.scope(|s| {
                for _ in 0..jobs {
                    let tx = tx.clone();
                    s.spawn(move |_| {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(path) = inputs.get(i) else { break };
                            let report = stream_file(path, opts, Some(spill), &|n| bar.inc(n));
                            if tx.send((i, report)).is_err() {
                                break;
                            }
                        }
                    });
                }
                drop(tx);
            });
        });
        let mut pending = BTreeMap::new();
        let mut emitted = 0usize;
        for (i, report) in rx {
            pending.insert(i, report);
            while let Some(mut report) = pending.remove(&emitted) {
                emitted += 1;
                for e in &report.report.errors {
                    bar.suspend(|| eprintln!("error: {}", e.message));
                }
                if let Some(dir) = &args.out {
                    write_out(dir, &mut report, &names[emitted - 1])?;
                }
                bar.suspend(|| -> anyhow::Result<()> {
                    if args.json {
                        if args.out.is_none() {
                            report.write_json(&mut out, None)?;
                            out.write_all(b"\n")?;
                        }
                    } else if !args.summary {
                        write_block(&mut out, &report)?;
                    }
                    out.flush()?;
                    Ok(())
                })?;
                rows.push(SummaryRow::of(&report));
            }
        }
        bar.finish_and_clear();
        if !args.json {
            write_summary(&mut out, &rows)?;
            out.flush()?;
        }
        Ok(())
    });
    bar.finish_and_clear();
    if let Err(e) = result {
        // A closed pipe (`matador replay … | head`) is not a failure to report.
        let broken_pipe = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe);
        if !broken_pipe {
            return Err(e);
        }
    }
    let failed = rows.iter().filter(|r| r.errors > 0).count();
    if failed > 0 {
        eprintln!(
            "{failed} of {} capture(s) could not be read completely",
            inputs.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A byte-based progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(inputs: &[PathBuf]) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// One line of the summary table.
#[derive(Debug, Clone)]
struct SummaryRow {
    capture: String,
    format: String,
    packets: u64,
    flows: usize,
    dns: usize,
    snis: usize,
    /// Servers per app id, in app order of first appearance.
    servers: Vec<(String, usize)>,
    errors: usize,
}

impl SummaryRow {
    fn of(s: &StreamedReport) -> SummaryRow {
        let r = &s.report;
        let mut servers: Vec<(String, usize)> = Vec::new();
        for s in &r.servers {
            match servers.iter_mut().find(|(a, _)| *a == s.app) {
                Some((_, n)) => *n += 1,
                None => servers.push((s.app.clone(), 1)),
            }
        }
        SummaryRow {
            capture: r.capture.clone(),
            format: if r.format.is_empty() {
                "-".into()
            } else {
                r.format.clone()
            },
            packets: r.packets,
            flows: s.flows.len() as usize,
            dns: s.dns_answered as usize,
            snis: s.snis.len(),
            servers,
            errors: r.errors.len(),
        }
    }

    fn servers_cell(&self) -> String {
        if self.servers.is_empty() {
            return "-".into();
        }
        self.servers
            .iter()
            .map(|(a, n)| format!("{a}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The summary table: one row per capture, then totals.
fn write_summary(out: &mut impl Write, rows: &[SummaryRow]) -> std::io::Result<()> {
    let mut total_servers: Vec<(String, usize)> = Vec::new();
    for r in rows {
        for (a, n) in &r.servers {
            match total_servers.iter_mut().find(|(t, _)| t == a) {
                Some((_, m)) => *m += n,
                None => total_servers.push((a.clone(), *n)),
            }
        }
    }
    let total = SummaryRow {
        capture: format!(
            "total ({} capture{})",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        ),
        format: String::new(),
        packets: rows.iter().map(|r| r.packets).sum(),
        flows: rows.iter().map(|r| r.flows).sum(),
        dns: rows.iter().map(|r| r.dns).sum(),
        snis: rows.iter().map(|r| r.snis).sum(),
        servers: total_servers,
        errors: rows.iter().map(|r| r.errors).sum(),
    };
    let header = [
        "capture",
        "format",
        "packets",
        "flows",
        "dns",
        "snis",
        "errors",
        "servers per app",
    ];
    let cells = |r: &SummaryRow| -> [String; 8] {
        [
            r.capture.clone(),
            r.format.clone(),
            r.packets.to_string(),
            r.flows.to_string(),
            r.dns.to_string(),
            r.snis.to_string(),
            r.errors.to_string(),
            r.servers_cell(),
        ]
    };
    let all: Vec<[String; 8]> = rows.iter().chain([&total]).map(cells).collect();
    let mut width = header.map(|h| h.chars().count());
    for row in &all {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: &[&str]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            let pad = width[i].saturating_sub(c.chars().count());
            match i {
                // Text columns left-aligned, counts right-aligned.
                0 | 1 => {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
                7 => s.push_str(c),
                _ => {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            if i + 1 < row.len() {
                s.push_str("  ");
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
    for (i, row) in all.iter().enumerate() {
        if i + 1 == all.len() {
            line(out, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        line(out, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// A file name for a capture's output, unique within this run.
/// The `--out` file name of each capture: its file name made safe, with
/// `-2`, `-3`… for names already taken earlier in the list.
fn output_names(inputs: &[PathBuf]) -> Vec<String> {
    let mut used = HashSet::new();
    inputs
        .iter()
        .map(|p| out_name(&p.display().to_string(), &mut used))
        .collect()
}

fn out_name(capture: &str, used: &mut HashSet<String>) -> String {
    let base = Path::new(capture)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = base.clone();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn write_out(dir: &Path, report: &mut StreamedReport, name: &str) -> anyhow::Result<()> {
    let create = |path: PathBuf| -> anyhow::Result<BufWriter<fs::File>> {
        Ok(BufWriter::with_capacity(
            OUT_BUFFER,
            fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?,
        ))
    };
    let mut f = create(dir.join(format!("{name}.json")))?;
    let records = report.flows.len() + report.dns.len() + report.tls.len();
    if records > LARGE_RECORDS {
        // One merge pass writes the object and the per-record files.
        let mut fl = create(dir.join(format!("{name}.flows.jsonl")))?;
        let mut dl = create(dir.join(format!("{name}.dns.jsonl")))?;
        let mut tl = create(dir.join(format!("{name}.tls.jsonl")))?;
        report.write_json(&mut f, Some([&mut fl, &mut dl, &mut tl]))?;
        for l in [&mut fl, &mut dl, &mut tl] {
            l.flush()?;
        }
    } else {
        report.write_json(&mut f, None)?;
    }
    f.write_all(b"\n")?;
    f.flush()?;
    Ok(())
}

fn write_block(out: &mut impl Write, s: &StreamedReport) -> std::io::Result<()> {
    let r = &s.report;
    writeln!(out, "== {}", r.capture)?;
    let span = match (r.first_ts, r.last_ts) {
        (Some(a), Some(b)) => format!("{a} .. {b} ({:.3} s)", b.since(&a)),
        _ => "no timestamps".into(),
    };
    writeln!(
        out,
        "   {} [{}]  {} packets  {} bytes  {}",
        if r.format.is_empty() { "?" } else { &r.format },
        r.link_types.join(", "),
        r.packets,
        r.bytes,
        span
    )?;
    writeln!(
        out,
        "   flows {}  dns {}  tls {}  http {}  servers {}  interference {}",
        s.flows.len(),
        s.dns.len(),
        s.tls.len(),
        s.http.len(),
        r.servers.len(),
        r.interference.len()
    )?;
    if !s.flows.is_empty() {
        writeln!(
            out,
            "   {:<6} {:<40} {:<40} {:>7} {:>10}  {:<20} name/app",
            "proto", "initiator", "responder", "packets", "bytes", "tcp flags"
        )?;
        // The largest flows, kept while streaming.
        for f in s.top_flows() {
            let name = [f.sni.as_deref(), f.app.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let line = format!(
                "   {:<6} {:<40} {:<40} {:>7} {:>10}  {:<20} {}",
                f.proto,
                endpoint(&f.src, f.sport),
                endpoint(&f.dst, f.dport),
                f.packets,
                f.bytes,
                f.tcp_flags,
                name
            );
            writeln!(out, "{}", line.trim_end())?;
        }
        if s.flows.len() > TOP_FLOWS as u64 {
            writeln!(
                out,
                "   … {} more flows (use --json for all)",
                s.flows.len() - TOP_FLOWS as u64
            )?;
        }
    }
    for s in &r.servers {
        let names = if s.names.is_empty() {
            "-".to_string()
        } else {
            s.names.join(",")
        };
        writeln!(
            out,
            "   server {:<9} {:<3} {:<24} {}  evidence: {}",
            s.app,
            s.proto,
            endpoint(&s.ip, s.port),
            names,
            s.evidence.join("; ")
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "   warning: {w}")?;
    }
    for e in &r.errors {
        writeln!(out, "   ERROR: {}", e.message)?;
    }
    writeln!(out)
}

fn endpoint(ip: &std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}
