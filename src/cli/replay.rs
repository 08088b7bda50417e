//! `matador replay`: analyse stored captures.

use crate::analysis::model::CaptureReport;
use crate::analysis::replay::{ReplayOptions, analyze_file, collect_inputs};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Captures with more records than this also get per-record JSONL files under `--out`.
const LARGE_RECORDS: usize = 10_000;

/// Arguments of `matador replay`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every capture was read completely, 1 when some capture \
could not be read (or only partly: the others, and everything before the error, are still \
reported), 2 on a usage error."
)]
pub struct ReplayArgs {
    /// Capture files or directories. Directories are searched recursively for
    /// pcap/pcapng files, recognised by their magic number, not their name.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Print one JSON object per capture (JSON Lines) on stdout instead of
    /// tables. The schema is documented in docs/replay-json.md.
    #[arg(long)]
    pub json: bool,

    /// Number of captures analysed in parallel (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,

    /// Write each capture's JSON object to DIR/<name>.json instead of stdout;
    /// captures with more than 10000 flows/DNS/TLS records also get
    /// <name>.flows.jsonl, <name>.dns.jsonl and <name>.tls.jsonl.
    /// Without --json the tables are still printed.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `matador replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    // Campaign and measurement folders: correlation (owned by cli/run.rs).
    if let Some(code) = super::run::replay_record(&args.paths, args.json)? {
        return Ok(code);
    }
    let inputs = collect_inputs(&args.paths);
    if inputs.is_empty() {
        anyhow::bail!(
            "no pcap or pcapng files found under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(dir) = &args.out {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = (args.jobs.map_or(cpus, |j| j as usize))
        .min(inputs.len())
        .max(1);
    let opts = ReplayOptions::default();

    let bar = if inputs.len() > 1 {
        let b = ProgressBar::new(inputs.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} captures {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut used_names = HashSet::new();
    let mut failed = 0usize;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, CaptureReport)>();

    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, inputs, opts) = (&next, &inputs, &opts);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = inputs.get(i) else { break };
                    if tx.send((i, analyze_file(path, opts))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Emit in input order whatever order the workers finish in.
        let mut pending = BTreeMap::new();
        let mut emitted = 0usize;
        for (i, report) in rx {
            pending.insert(i, report);
            while let Some(report) = pending.remove(&emitted) {
                emitted += 1;
                bar.inc(1);
                if !report.errors.is_empty() {
                    failed += 1;
                }
                if let Some(dir) = &args.out {
                    write_out(dir, &report, &mut used_names)?;
                }
                bar.suspend(|| -> anyhow::Result<()> {
                    if args.json {
                        if args.out.is_none() {
                            serde_json::to_writer(&mut out, &report)?;
                            out.write_all(b"\n")?;
                        }
                    } else {
                        write_table(&mut out, &report)?;
                    }
                    out.flush()?;
                    Ok(())
                })?;
            }
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
    if failed > 0 {
        eprintln!(
            "{failed} of {} capture(s) could not be read completely",
            inputs.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A file name for a capture's output, unique within this run.
fn out_name(report: &CaptureReport, used: &mut HashSet<String>) -> String {
    let base = Path::new(&report.capture)
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

fn write_out(dir: &Path, report: &CaptureReport, used: &mut HashSet<String>) -> anyhow::Result<()> {
    let name = out_name(report, used);
    let path = dir.join(format!("{name}.json"));
    let mut f = BufWriter::new(
        fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    serde_json::to_writer(&mut f, report)?;
    f.write_all(b"\n")?;
    f.flush()?;
    if report.flows.len() + report.dns.len() + report.tls.len() > LARGE_RECORDS {
        write_jsonl(&dir.join(format!("{name}.flows.jsonl")), &report.flows)?;
        write_jsonl(&dir.join(format!("{name}.dns.jsonl")), &report.dns)?;
        write_jsonl(&dir.join(format!("{name}.tls.jsonl")), &report.tls)?;
    }
    Ok(())
}

fn write_jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let mut f = BufWriter::new(
        fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    for item in items {
        serde_json::to_writer(&mut f, item)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Flows shown per capture in the table (largest first).
const TABLE_FLOWS: usize = 15;

fn write_table(out: &mut impl Write, r: &CaptureReport) -> std::io::Result<()> {
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
        r.flows.len(),
        r.dns.len(),
        r.tls.len(),
        r.http.len(),
        r.servers.len(),
        r.interference.len()
    )?;
    if !r.flows.is_empty() {
        let mut idx: Vec<usize> = (0..r.flows.len()).collect();
        idx.sort_by_key(|&i| std::cmp::Reverse(r.flows[i].bytes));
        writeln!(
            out,
            "   {:<6} {:<40} {:<40} {:>7} {:>10}  {:<20} name/app",
            "proto", "initiator", "responder", "packets", "bytes", "tcp flags"
        )?;
        for &i in idx.iter().take(TABLE_FLOWS) {
            let f = &r.flows[i];
            let name = [f.sni.as_deref(), f.app.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            writeln!(
                out,
                "   {:<6} {:<40} {:<40} {:>7} {:>10}  {:<20} {}",
                f.proto,
                endpoint(&f.src, f.sport),
                endpoint(&f.dst, f.dport),
                f.packets,
                f.bytes,
                f.tcp_flags,
                name
            )?;
        }
        if r.flows.len() > TABLE_FLOWS {
            writeln!(
                out,
                "   … {} more flows (use --json for all)",
                r.flows.len() - TABLE_FLOWS
            )?;
        }
    }
    for s in &r.servers {
        writeln!(
            out,
            "   server {:<10} {} {} {}  {}",
            s.app,
            s.proto,
            endpoint(&s.ip, s.port),
            s.names.join(","),
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
