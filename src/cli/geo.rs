//! `matador geo`: lookups, ASN import, database diffs, plausibility checks.

use anyhow::Context;
use clap::{Args, Subcommand};
use matador::geo::db::{GeoAnswer, GeoDb, MmdbFile};
use matador::geo::groups::GroupSet;
use matador::geo::m49::{Country, M49};
use matador::geo::plausibility::{Checker, Location};
use matador::geo::{asn_csv, diff, parse_ip};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `writeln!` into a `String` (cannot fail).
macro_rules! p {
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($t)*);
    }};
}

/// Prints `text`; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<ExitCode> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Arguments of `matador geo`.
#[derive(Debug, Args)]
pub struct GeoArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: GeoCommand,
}

/// Database selection shared by the subcommands.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Country mmdb (default: .geo-db/country.mmdb or $MATADOR_GEO_DIR/country.mmdb);
    /// GeoLite2-Country, ip2location and ip-location-db layouts are understood.
    #[arg(long, value_name = "FILE")]
    pub geo_db: Option<PathBuf>,
    /// ASN mmdb (default: .geo-db/asn.mmdb); GeoLite2-ASN layout understood.
    #[arg(long, value_name = "FILE")]
    pub asn_db: Option<PathBuf>,
}

/// `matador geo` subcommands.
#[derive(Debug, Subcommand)]
pub enum GeoCommand {
    /// Country, UN M49 region, interest groups and ASN of addresses.
    Lookup {
        /// IPv4 or IPv6 addresses.
        #[arg(required = true)]
        ips: Vec<String>,
        /// Interest groups: `current`, `pam2016` or a YAML file.
        #[arg(long, default_value = "current")]
        groups: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the interest groups of a preset or YAML file.
    Groups {
        /// `current`, `pam2016` or a YAML file.
        #[arg(default_value = "current")]
        groups: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Convert `start,end,asn,org` CSV files (ip-location-db asn) into an mmdb.
    ImportAsn {
        /// CSV files followed by the output mmdb path.
        #[arg(required = true, num_args = 2.., value_name = "CSV... OUT")]
        paths: Vec<PathBuf>,
    },
    /// Addresses whose country differs between two country databases.
    ///
    /// Inputs: files of addresses (one per line, `#` comments), pcap/pcapng
    /// captures (every source and destination address), or directories such
    /// as a campaign folder (every capture found in them, recursively). With
    /// no input, the whole databases are compared prefix by prefix.
    Diff {
        /// Old database.
        old: PathBuf,
        /// New database.
        new: PathBuf,
        /// Address lists, captures or directories (optional).
        inputs: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the hops of a traceroute: each against the vantage point and
    /// each country change against the RTT growth (speed of light in fibre).
    ///
    /// FILE has one hop per line: `IP RTT_MS` (`*` for a silent hop).
    CheckPath {
        /// Vantage point: ISO country code or LAT,LON.
        #[arg(long, value_name = "CC|LAT,LON")]
        from: Option<String>,
        /// Hop file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check a geolocation against a measured RTT (speed of light in fibre).
    Check {
        /// Vantage point: ISO country code or LAT,LON.
        #[arg(long, value_name = "CC|LAT,LON")]
        from: String,
        /// Measured round-trip time, ms.
        #[arg(long)]
        rtt: f64,
        /// Address to geolocate, or a country code.
        target: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Runs `matador geo`.
pub fn run(args: GeoArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        GeoCommand::Lookup {
            ips,
            groups,
            json,
            db,
        } => lookup(&ips, &groups, json, &db),
        GeoCommand::Groups { groups, json } => list_groups(&groups, json),
        GeoCommand::ImportAsn { paths } => import_asn(&paths),
        GeoCommand::Diff {
            old,
            new,
            inputs,
            json,
        } => run_diff(&old, &new, &inputs, json),
        GeoCommand::CheckPath {
            from,
            file,
            json,
            db,
        } => check_path(from.as_deref(), &file, json, &db),
        GeoCommand::Check {
            from,
            rtt,
            target,
            json,
            db,
        } => check(&from, rtt, &target, json, &db),
    }
}

#[derive(serde::Serialize)]
struct LookupRow<'a> {
    #[serde(flatten)]
    answer: GeoAnswer,
    m49: Option<&'a Country>,
    groups: Vec<&'a str>,
}

fn lookup(ips: &[String], groups: &str, json: bool, db: &DbArgs) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let parsed = ips
        .iter()
        .map(|s| parse_ip(s, "command line"))
        .collect::<Result<Vec<_>, _>>()?;
    let set = GroupSet::resolve(groups)?;
    let geo = GeoDb::open_default(db.geo_db.as_deref(), db.asn_db.as_deref())?;
    let m49 = M49::shipped();
    let mut rows = Vec::new();
    for ip in parsed {
        let answer = geo.lookup(ip)?;
        let c = answer.country.as_deref().and_then(|c| m49.country(c));
        let g = answer
            .country
            .as_deref()
            .map(|c| set.groups_of(c))
            .unwrap_or_default();
        rows.push(LookupRow {
            answer,
            m49: c,
            groups: g,
        });
    }
    if json {
        p!(out, "{}", serde_json::to_string_pretty(&rows)?);
        return emit(&out);
    }
    for r in &rows {
        let a = &r.answer;
        let region = r.m49.map_or_else(
            || "-".to_string(),
            |c| {
                [&c.region, &c.subregion, &c.intermediate]
                    .iter()
                    .filter_map(|x| x.as_ref().map(|x| format!("{} {}", x.code, x.name)))
                    .collect::<Vec<_>>()
                    .join(" / ")
            },
        );
        match a.special {
            Some(sp) => p!(out, "{}  [special-purpose: {sp}]", a.ip),
            None => p!(out, "{}", a.ip),
        }
        p!(
            out,
            "  country: {}  ({})",
            a.country.as_deref().unwrap_or("-"),
            r.m49.map_or("not in database", |c| c.name.as_str())
        );
        p!(
            out,
            "  M49:     {}",
            if region.is_empty() { "-" } else { &region }
        );
        p!(
            out,
            "  groups:  {} ({})",
            if r.groups.is_empty() {
                "-".to_string()
            } else {
                r.groups.join(", ")
            },
            set.source
        );
        p!(
            out,
            "  ASN:     {} {}",
            a.asn.map_or("-".to_string(), |n| format!("AS{n}")),
            a.org.as_deref().unwrap_or("")
        );
        p!(
            out,
            "  source:  country {} [{}]; asn {} [{}]",
            a.country_db,
            a.country_network.as_deref().unwrap_or("no record"),
            a.asn_db.as_deref().unwrap_or("-"),
            a.asn_network.as_deref().unwrap_or("no record")
        );
    }
    emit(&out)
}

fn list_groups(spec: &str, json: bool) -> anyhow::Result<ExitCode> {
    let set = GroupSet::resolve(spec)?;
    let mut out = String::new();
    if json {
        p!(out, "{}", serde_json::to_string_pretty(&set)?);
        return emit(&out);
    }
    let m49 = M49::shipped();
    p!(out, "interest groups ({})", set.source);
    for g in &set.groups {
        let names: Vec<String> = g
            .members
            .iter()
            .map(|m| {
                m49.country(m)
                    .map_or_else(|| m.clone(), |c| format!("{m} {}", c.name))
            })
            .collect();
        p!(out, "{} — {} ({} members)", g.id, g.name, g.members.len());
        p!(out, "  {}", names.join("; "));
    }
    emit(&out)
}

fn import_asn(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (out, inputs) = paths
        .split_last()
        .context("need CSV file(s) and an output path")?;
    let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
    let (w, stats) = asn_csv::import(&inputs)?;
    w.write(out)?;
    eprintln!(
        "{}: {} ranges ({} clipped, {} dropped as overlapping), {} prefixes",
        out.display(),
        stats.ranges,
        stats.clipped,
        stats.dropped,
        stats.prefixes
    );
    Ok(ExitCode::SUCCESS)
}

/// Addresses of the `geo diff` inputs: address lists, captures, directories.
fn diff_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<std::net::IpAddr>> {
    use matador::analysis::addresses::capture_addresses;
    use matador::analysis::replay::collect_inputs;
    use matador::capture::is_capture_magic;
    use std::io::Read;
    let mut ips = Vec::new();
    for input in inputs {
        let is_dir = input.is_dir();
        let mut magic = [0u8; 4];
        let is_capture = !is_dir
            && std::fs::File::open(input)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
            && is_capture_magic(magic);
        if !is_dir && !is_capture {
            ips.extend(diff::read_ip_list(input)?);
            continue;
        }
        let captures = collect_inputs(std::slice::from_ref(input));
        if is_dir && captures.is_empty() {
            anyhow::bail!("{}: no pcap or pcapng capture found", input.display());
        }
        for cap in captures {
            let got = capture_addresses(&cap)?;
            if let Some(e) = &got.error {
                // Keep what was read; say the file is damaged.
                eprintln!(
                    "warning: {}: reading stopped after {} frames: {e}",
                    cap.display(),
                    got.frames
                );
            }
            ips.extend(got.addresses);
        }
    }
    Ok(ips)
}

fn run_diff(
    old: &std::path::Path,
    new: &std::path::Path,
    inputs: &[PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let ips = if inputs.is_empty() {
        None
    } else {
        Some(diff_inputs(inputs)?)
    };
    let o = MmdbFile::open(old, "old country", "OLD")?;
    let n = MmdbFile::open(new, "new country", "NEW")?;
    let report = match &ips {
        Some(ips) => diff::diff(&o, &n, ips)?,
        None => diff::diff_all(&o, &n)?,
    };
    if json {
        p!(out, "{}", serde_json::to_string_pretty(&report)?);
        return emit(&out);
    }
    if ips.is_some() {
        p!(
            out,
            "{} addresses compared, {} changed country ({} → {})",
            report.compared,
            report.changed,
            old.display(),
            new.display()
        );
    } else {
        p!(
            out,
            "{} prefixes changed country ({} → {})",
            report.changed,
            old.display(),
            new.display()
        );
    }
    p!(out, "{:<43} {:>4} {:>4}  addresses", "prefix", "old", "new");
    for g in &report.groups {
        let addrs: Vec<String> = g.addresses.iter().map(ToString::to_string).collect();
        p!(
            out,
            "{:<43} {:>4} {:>4}  {}",
            g.prefix,
            g.old.as_deref().unwrap_or("-"),
            g.new.as_deref().unwrap_or("-"),
            addrs.join(" ")
        );
    }
    emit(&out)
}

fn check(from: &str, rtt: f64, target: &str, json: bool, db: &DbArgs) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let vantage = Location::parse(from)?;
    let country = if target.len() == 2 && target.chars().all(|c| c.is_ascii_alphabetic()) {
        target.to_ascii_uppercase()
    } else {
        let ip = parse_ip(target, "command line")?;
        let geo = GeoDb::open(
            &db.geo_db.clone().unwrap_or_else(|| {
                matador::geo::db::default_geo_dir().join(matador::geo::db::COUNTRY_FILE)
            }),
            None,
        )?;
        geo.country(ip)?
            .map(str::to_string)
            .with_context(|| format!("{ip}: no country in {}", geo.country_db().path().display()))?
    };
    let v = Checker::shipped().check_rtt(&vantage, &country, rtt);
    if json {
        p!(out, "{}", serde_json::to_string_pretty(&v)?);
    } else {
        p!(
            out,
            "{target} ({country}) from {from} at {rtt} ms: {:?}",
            v.status
        );
        for r in &v.reasons {
            p!(out, "  {r}");
        }
    }
    emit(&out)
}

#[derive(serde::Serialize)]
struct PathRow {
    hop: usize,
    ip: Option<std::net::IpAddr>,
    country: Option<String>,
    rtt_ms: Option<f64>,
    verdict: matador::geo::plausibility::Verdict,
}

fn check_path(
    from: Option<&str>,
    file: &std::path::Path,
    json: bool,
    db: &DbArgs,
) -> anyhow::Result<ExitCode> {
    use matador::geo::plausibility::HopObs;
    let vantage = from.map(Location::parse).transpose()?;
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let mut hops: Vec<(Option<std::net::IpAddr>, Option<f64>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let ctx = format!("{}:{}", file.display(), i + 1);
        let mut parts = line.split_whitespace();
        let ip = match parts.next() {
            Some("*") | None => None,
            Some(t) => Some(parse_ip(t, &ctx)?),
        };
        let rtt = match parts.next() {
            Some("*") | None => None,
            Some(t) => Some(
                t.trim_end_matches("ms")
                    .parse::<f64>()
                    .with_context(|| format!("{ctx}: bad RTT {t:?} (milliseconds)"))?,
            ),
        };
        hops.push((ip, rtt));
    }
    let geo = GeoDb::open(
        &db.geo_db.clone().unwrap_or_else(|| {
            matador::geo::db::default_geo_dir().join(matador::geo::db::COUNTRY_FILE)
        }),
        None,
    )?;
    let ips: Vec<_> = hops.iter().map(|h| h.0).collect();
    let countries = geo.countries_of(&ips)?;
    let obs: Vec<HopObs> = countries
        .iter()
        .zip(&hops)
        .map(|(c, h)| HopObs {
            country: c.clone(),
            rtt_ms: h.1,
        })
        .collect();
    let verdicts = Checker::shipped().check_path(vantage.as_ref(), &obs);
    let rows: Vec<PathRow> = verdicts
        .into_iter()
        .map(|v| PathRow {
            hop: v.index + 1,
            ip: hops[v.index].0,
            country: obs[v.index].country.clone(),
            rtt_ms: obs[v.index].rtt_ms,
            verdict: v.verdict,
        })
        .collect();
    let mut out = String::new();
    if json {
        p!(out, "{}", serde_json::to_string_pretty(&rows)?);
        return emit(&out);
    }
    for r in &rows {
        p!(
            out,
            "{:>3} {:<40} {:>3} {:>9} {:?}",
            r.hop,
            r.ip.map_or("*".to_string(), |i| i.to_string()),
            r.country.as_deref().unwrap_or("-"),
            r.rtt_ms.map_or("*".to_string(), |t| format!("{t:.1} ms")),
            r.verdict.status
        );
        for reason in &r.verdict.reasons {
            p!(out, "      {reason}");
        }
    }
    emit(&out)
}
