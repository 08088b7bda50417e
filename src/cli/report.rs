//! `matador report`: tables and plots from a stored campaign record.

use anyhow::Context;
use clap::{Args, ValueEnum};
use matador::geo::db::{ASN_FILE, GeoDb, MmdbFile, default_geo_dir};
use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options, tables};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Output formats of `matador report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Markdown.
    Md,
    /// CSV (stdout: one `# table` section each; --out: one file per table).
    Csv,
    /// JSON.
    Json,
    /// One self-contained HTML page with inline SVG plots.
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Md => Format::Markdown,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Html => Format::Html,
        }
    }
}

/// Arguments of `matador report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Reads only the stored record (index.json, lab.json, measurements/*/analysis.json, \
measurements/*/traces/*.json). Exit status: 0 when every file could be used, 1 when some could not \
(each is named on stderr and in the report; everything else is still reported), 2 on a usage error. \
Definitions: docs/report.md."
)]
pub struct ReportArgs {
    /// The campaign folder (two with --compare: A then B).
    #[arg(value_name = "CAMPAIGN_DIR", required = true, num_args = 1..=2)]
    pub campaigns: Vec<PathBuf>,

    /// Compare two campaigns: servers, paths, locality and interference that changed from A to B.
    #[arg(long)]
    pub compare: bool,

    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    pub format: FormatArg,

    /// Interest groups: `current`, `pam2016` or a YAML file (default: the
    /// campaign scenario's `geo.groups`, else `current`).
    #[arg(long)]
    pub groups: Option<String>,

    /// Country mmdb (default: the lab mmdb named in lab.json, else
    /// .geo-db/country.mmdb or $MATADOR_GEO_DIR/country.mmdb).
    #[arg(long, value_name = "FILE")]
    pub geo_db: Option<PathBuf>,

    /// ASN mmdb (default: the lab mmdb named in lab.json, else .geo-db/asn.mmdb).
    #[arg(long, value_name = "FILE")]
    pub asn_db: Option<PathBuf>,

    /// Also list geolocation changes of every address of the record between
    /// this older country mmdb and the report's.
    #[arg(long, value_name = "OLD_FILE")]
    pub geo_changes: Option<PathBuf>,

    /// Write report.<format> (and for CSV one file per table) into DIR
    /// instead of printing to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Write the campaign's tables as Parquet files (docs/dataset.md) into
    /// DIR; default with --out: OUT/dataset.
    #[arg(long, value_name = "DIR", conflicts_with = "compare")]
    pub dataset: Option<PathBuf>,

    /// Replace phone numbers (`+` and 7–15 digits) with `+0000000` in the
    /// output, e.g. before sharing a report.
    #[arg(long)]
    pub redact: bool,
}

/// The text as printed or written: phone numbers replaced with `--redact`.
fn redacted(args: &ReportArgs, text: String) -> String {
    if args.redact {
        report::export::scrub_phone_numbers(&text).0
    } else {
        text
    }
}

fn open_db(args: &ReportArgs, c: &Campaign) -> anyhow::Result<GeoDb> {
    let lab_db = c.lab.as_ref().and_then(|l| l.mmdb.as_ref()).map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            c.dir.join(p)
        }
    });
    let db = match (&args.geo_db, &args.asn_db, &lab_db) {
        (Some(g), Some(a), _) => GeoDb::open(g, Some(a))?,
        (Some(g), None, _) => {
            let def = default_geo_dir().join(ASN_FILE);
            GeoDb::open(g, def.is_file().then_some(def.as_path()))?
        }
        (None, a, Some(lab)) => GeoDb::open(lab, Some(a.as_deref().unwrap_or(lab)))?,
        (None, a, None) => GeoDb::open_default(None, a.as_deref())?,
    };
    Ok(db)
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    matador::atomic_file::write(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Loads and builds the report of one campaign.
fn build_one(
    args: &ReportArgs,
    dir: &Path,
    groups: &GroupSet,
    old: Option<&MmdbFile>,
) -> anyhow::Result<(Campaign, report::Report)> {
    let campaign = Campaign::load(dir)?;
    let db = open_db(args, &campaign)?;
    let opts = Options { old_geo_db: old };
    let rep = report::build(&campaign, &db, groups, &opts)?;
    Ok((campaign, rep))
}

/// Runs `matador report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    // The scenario's groups unless named: its Table 3 is the one it asked for.
    let spec = match (&args.groups, args.campaigns.first()) {
        (Some(g), _) => g.clone(),
        (None, Some(dir)) => {
            report::record::scenario_groups(dir)?.unwrap_or_else(|| "current".into())
        }
        (None, None) => "current".into(),
    };
    let groups = GroupSet::resolve(&spec)?;
    let old = args
        .geo_changes
        .as_deref()
        .map(|p| MmdbFile::open(p, "old country", "--geo-changes"))
        .transpose()?;
    let format: Format = args.format.into();
    match (args.compare, args.campaigns.len()) {
        (true, 2) | (false, 1) => {}
        (true, _) => anyhow::bail!("--compare needs two campaign folders: A B"),
        (false, _) => anyhow::bail!("two campaign folders need --compare"),
    }
    let mut problems = Vec::new();
    let mut reports = Vec::new();
    let dataset_dir = match (&args.dataset, &args.out) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(out)) if !args.compare => Some(out.join("dataset")),
        _ => None,
    };
    for dir in &args.campaigns {
        let (campaign, rep) = build_one(&args, dir, &groups, old.as_ref())?;
        if let Some(d) = &dataset_dir {
            let (files, left_out) = report::dataset::write(d, &campaign, &rep, args.redact)?;
            eprintln!("dataset: {} tables written to {}", files.len(), d.display());
            for p in left_out {
                problems.push(format!(
                    "{}: {}",
                    campaign.dir.join(&p.file).display(),
                    p.message
                ));
            }
        }
        for p in &rep.problems {
            problems.push(format!(
                "{}: {}",
                campaign.dir.join(&p.file).display(),
                p.message
            ));
        }
        reports.push(rep);
    }
    let (text, rep) = if args.compare {
        let c = report::compare::compare(&reports[0], &reports[1]);
        (report::compare::render(&c, format), None)
    } else {
        let rep = reports.remove(0);
        (report::render(&rep, format), Some(rep))
    };
    let text = redacted(&args, text);
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let stem = if args.compare { "compare" } else { "report" };
            let path = dir.join(format!("{stem}.{}", format.extension()));
            write_file(&path, &text)?;
            if format == Format::Csv
                && let Some(rep) = &rep
            {
                for t in tables::all(rep, true) {
                    let csv = redacted(&args, tables::csv(&t));
                    write_file(&dir.join(format!("{}.csv", t.id)), &csv)?;
                }
            }
            println!("report written to {}", path.display());
        }
        None => {
            if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
    }
    for p in &problems {
        eprintln!("warning: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Arguments of `matador export`.
#[derive(Debug, Args)]
#[command(
    after_help = "Writes a publishable copy: lab/phone addresses mapped prefix-preservingly, \
pcap payloads cut after the transport header, ADB serials, phone numbers and account keys \
removed, export-manifest.json listing what changed. Details: docs/report.md."
)]
pub struct ExportArgs {
    /// The campaign folder.
    #[arg(value_name = "CAMPAIGN_DIR")]
    pub campaign: PathBuf,

    /// Anonymize (required: matador only exports anonymized copies).
    #[arg(long)]
    pub anonymize: bool,

    /// New folder for the copy.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Secret for the address mapping (same key, same mapping across
    /// exports); default: a random key, forgotten after the export.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Runs `matador export`.
pub fn run_export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if !args.anonymize {
        anyhow::bail!("matador export only writes anonymized copies: add --anonymize");
    }
    let key = match &args.key_file {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => {
            use ring::rand::SecureRandom as _;
            let mut k = vec![0u8; 32];
            ring::rand::SystemRandom::new()
                .fill(&mut k)
                .map_err(|_| anyhow::anyhow!("no system randomness for the export key"))?;
            k
        }
    };
    let m = report::export::export(&args.campaign, &args.out, &key)?;
    let skipped: Vec<&str> = m
        .files
        .iter()
        .filter(|f| f.action == "not-exported")
        .map(|f| f.file.as_str())
        .collect();
    println!(
        "exported {} files to {} ({} lab/phone addresses mapped); manifest: {}",
        m.files.len() - skipped.len(),
        args.out.display(),
        m.mapped_addresses,
        args.out.join("export-manifest.json").display()
    );
    for f in &skipped {
        eprintln!("warning: not exported: {f}");
    }
    Ok(ExitCode::SUCCESS)
}
