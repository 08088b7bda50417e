//! `matador merge`: shard campaign folders joined into one (docs/slurm.md).

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `matador merge`.
#[derive(Debug, Args)]
#[command(
    after_help = "Campaign shards (`matador run --shard k/n`) become one campaign \
folder: the whole plan, every shard's measurements, merge.json (which shard ran what), each \
shard's plan, journal and provenance under shards/<k>/; then the campaign-wide analysis and \
the report (report.html, dataset/) over the whole. Refused: shards of different plans, a shard \
or a measurement twice, and, without --partial, missing shards or unfinished measurements \
(named). Replay shards (`matador replay --shard k/n --out DIR`) are joined the same way.

Exit status: 0 merged (and reported), 1 refused or failed, 2 usage error."
)]
pub struct MergeArgs {
    /// The merged folder to create (must not exist, or be empty).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// The shard folders (campaign folders of `run --shard`, or `--out`
    /// folders of `replay --shard`).
    #[arg(value_name = "SHARD", required = true)]
    pub shards: Vec<PathBuf>,
    /// Merge even when shards are missing or unfinished: merge.json names
    /// what is missing and the report covers what is there.
    #[arg(long)]
    pub partial: bool,
    /// Do not write the report (report.html, dataset/) after merging.
    #[arg(long)]
    pub no_report: bool,
}

/// Runs `matador merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    if matador::analysis::replay_shard::is_replay_shard(&args.shards[0]) {
        return super::replay::merge_replay_shards(&args.out, &args.shards, args.partial);
    }
    let m = matador::campaign::merge::merge(&args.out, &args.shards, args.partial)?;
    let r = &m.record;
    println!(
        "merged {} shard(s) of {} into {}: {} of {} measurements{}",
        r.shards.len(),
        r.n,
        m.dir.display(),
        m.measurements,
        r.plan_measurements,
        if r.complete { "" } else { " (incomplete)" }
    );
    if !r.missing_shards.is_empty() {
        println!(
            "missing shards: {}",
            r.missing_shards
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.unfinished.is_empty() {
        println!("unfinished measurements: {}", r.unfinished.join(", "));
    }
    if args.no_report {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = super::run::report(&m.dir);
    println!("\nreport: {}", m.dir.join("report.html").display());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
