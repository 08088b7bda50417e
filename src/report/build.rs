//! Computing the tables from a loaded [`Campaign`] (definitions: docs/report.md).

use super::ReportError;
use super::model::*;
use super::record::{Campaign, CorrelatedServer, Measurement, Problem, TraceFile, given};
use super::stats::Share;
use crate::analysis::model::Role;
use crate::campaign::record::MeasurementKind as Kind;
use crate::campaign::record::Status as RunStatus;
use crate::geo::db::{GeoDb, MmdbFile};
use crate::geo::groups::GroupSet;
use crate::geo::locality::{accessible_to_group, leaves_region};
use crate::geo::m49::{Level, M49};
use crate::geo::plausibility::{Checker, HopObs, Location, Status};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

/// Options of a report.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// Old country database for the geolocation-change section.
    pub old_geo_db: Option<&'a MmdbFile>,
}

/// What one address geolocates to.
#[derive(Debug, Clone, Default)]
struct IpGeo {
    country: Option<String>,
    asn: Option<u32>,
    org: Option<String>,
    prefix: Option<String>,
}

/// Lookups with a cache (a campaign repeats the same hops and servers).
struct Geo<'a> {
    db: &'a GeoDb,
    cache: HashMap<IpAddr, IpGeo>,
}

impl Geo<'_> {
    fn get(&mut self, ip: IpAddr) -> Result<IpGeo, ReportError> {
        let ip = ip.to_canonical();
        if let Some(g) = self.cache.get(&ip) {
            return Ok(g.clone());
        }
        let a = self.db.lookup(ip)?;
        let g = IpGeo {
            country: a.country.map(|c| c.to_ascii_uppercase()),
            asn: a.asn,
            org: a.org,
            prefix: a.asn_network.or(a.country_network),
        };
        self.cache.insert(ip, g.clone());
        Ok(g)
    }
}

fn db_label(f: &MmdbFile) -> String {
    format!(
        "{} ({}, built {})",
        f.path().file_name().map_or_else(
            || f.path().display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        f.database_type(),
        f.build_epoch()
    )
}

fn level_name(l: Level) -> LevelName {
    match l {
        Level::Region => "region",
        Level::SubRegion => "sub-region",
        Level::Intermediate => "intermediate region",
    }
}

fn level_rank(l: LevelName) -> u8 {
    match l {
        "region" => 0,
        "sub-region" => 1,
        _ => 2,
    }
}

fn norm_name(n: &str) -> String {
    n.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Class of a trace: direct (node to node), application (to a server of an app) or other.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Class {
    Direct,
    Application(String),
    Other,
}

/// A measurement's trace with its geolocated hops.
struct PathInfo {
    class: Class,
    hops: Vec<Hop>,
}

impl PathInfo {
    fn countries(&self) -> Vec<Option<&str>> {
        self.hops.iter().map(|h| h.country.as_deref()).collect()
    }
}

/// Vantage node of a capture, from its file name
/// (`capture-router-<phone>.pcap`, `capture-node-<node>.pcap`).
pub(super) fn capture_vantage(c: &Campaign, m: &Measurement, capture: &str) -> Option<String> {
    let file = Path::new(capture)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file
        .strip_suffix(".pcapng")
        .or_else(|| file.strip_suffix(".pcap"))
        .unwrap_or(&file);
    if let Some(node) = stem.strip_prefix("capture-node-") {
        return Some(node.to_string());
    }
    let phone = stem.strip_prefix("capture-router-")?;
    phone_node(c, m, phone)
}

fn phone_node(c: &Campaign, m: &Measurement, phone: &str) -> Option<String> {
    if let Some(n) = c
        .lab
        .as_ref()
        .and_then(|l| l.phones.iter().find(|p| p.name == phone))
        .and_then(|p| p.node.clone())
    {
        return Some(n);
    }
    let e = &m.entry;
    if given(&e.sender) == Some(phone) {
        given(&e.sender_node).map(str::to_string)
    } else if given(&e.receiver) == Some(phone) {
        given(&e.receiver_node).map(str::to_string)
    } else {
        None
    }
}

fn is_locality_measurement(m: &Measurement) -> bool {
    m.entry.status == RunStatus::Complete && matches!(m.entry.kind, Kind::Message | Kind::Path)
}

/// Servers of a measurement (correlated first, then attributed per capture).
fn servers_of(m: &Measurement) -> impl Iterator<Item = (&str, IpAddr, Option<Role>)> {
    let a = m.analysis.as_ref();
    let top = a
        .into_iter()
        .flat_map(|a| a.servers.iter())
        .map(|s| (s.app.as_str(), s.ip.to_canonical(), Some(s.role)));
    let caps = a
        .into_iter()
        .flat_map(|a| a.captures.iter())
        .flat_map(|c| c.servers.iter())
        .map(|s| (s.app.as_str(), s.ip.to_canonical(), s.role));
    top.chain(caps)
}

fn classify(c: &Campaign, m: &Measurement, t: &TraceFile) -> Class {
    let e = &m.entry;
    match t.trace.kind.as_deref() {
        Some("direct") => return Class::Direct,
        Some("application") => {
            if let Some(app) = t
                .trace
                .app
                .clone()
                .or_else(|| given(&e.app).map(str::to_string))
            {
                return Class::Application(app);
            }
        }
        _ => {}
    }
    let dst = t.trace.dst_addr.to_canonical();
    let is_node = c.lab.as_ref().is_some_and(|l| {
        l.node_by_addr(dst)
            .is_some_and(|n| n.kind.as_deref().is_none_or(|k| k == "node"))
            || l.node(&t.target)
                .is_some_and(|n| n.kind.as_deref().is_none_or(|k| k == "node"))
    }) || given(&e.sender_node) == Some(t.target.as_str())
        || given(&e.receiver_node) == Some(t.target.as_str());
    if is_node {
        return Class::Direct;
    }
    if let Some(app) = &t.trace.app {
        return Class::Application(app.clone());
    }
    // Prefer the measurement's own app when several apps list the address.
    let mut apps: Vec<&str> = servers_of(m)
        .filter(|(_, ip, _)| *ip == dst)
        .map(|(a, _, _)| a)
        .collect();
    apps.sort();
    apps.dedup();
    if let Some(a) = given(&e.app).filter(|a| apps.contains(a)) {
        return Class::Application(a.to_string());
    }
    if let Some(a) = apps.first() {
        return Class::Application(a.to_string());
    }
    // Without a readable analysis the target list is the only guide: the
    // paths stage traces the measurement's servers.
    if m.analysis.is_none()
        && let Some(app) = given(&e.app)
    {
        return Class::Application(app.to_string());
    }
    Class::Other
}

/// Source, hops (every distinct responder; silent hops once) and destination.
fn path_hops(geo: &mut Geo, t: &TraceFile) -> Result<Vec<Hop>, ReportError> {
    let tr = &t.trace;
    let mut hops = Vec::new();
    if let Some(src) = tr.src_addr {
        let g = geo.get(src)?;
        hops.push(Hop {
            hop: Some(0),
            addr: Some(src.to_canonical()),
            country: g.country,
            asn: g.asn,
            rtt: None,
        });
    }
    let dst = tr.dst_addr.to_canonical();
    let mut reached = false;
    let mut sorted: Vec<_> = tr.result.iter().collect();
    sorted.sort_by_key(|h| h.hop);
    for h in sorted {
        let mut seen: Vec<(IpAddr, Option<f64>)> = Vec::new();
        for r in &h.result {
            if let Some(from) = r.from {
                let from = from.to_canonical();
                let rtt = r.rtt.filter(|x| x.is_finite() && *x >= 0.0);
                match seen.iter_mut().find(|(a, _)| *a == from) {
                    Some((_, best)) => {
                        if let Some(x) = rtt {
                            *best = Some(best.map_or(x, |b: f64| b.min(x)));
                        }
                    }
                    None => seen.push((from, rtt)),
                }
            }
        }
        if seen.is_empty() {
            hops.push(Hop {
                hop: Some(h.hop),
                addr: None,
                country: None,
                asn: None,
                rtt: None,
            });
        }
        for (a, rtt) in seen {
            reached |= a == dst;
            let g = geo.get(a)?;
            hops.push(Hop {
                hop: Some(h.hop),
                addr: Some(a),
                country: g.country,
                asn: g.asn,
                rtt,
            });
        }
    }
    if !reached {
        let g = geo.get(dst)?;
        hops.push(Hop {
            hop: None,
            addr: Some(dst),
            country: g.country,
            asn: g.asn,
            rtt: None,
        });
    }
    Ok(hops)
}

fn hop_line(h: &Hop) -> String {
    format!(
        "{} {} {} {}",
        h.hop.map_or("dst".to_string(), |n| if n == 0 {
            "src".to_string()
        } else {
            n.to_string()
        }),
        h.addr.map_or("*".to_string(), |a| a.to_string()),
        h.country.as_deref().unwrap_or("?"),
        h.rtt.map_or("-".to_string(), |r| format!("{r:.1}ms"))
    )
}

fn merged_countries(hops: &[Hop]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hops {
        let c = h.country.clone().unwrap_or_else(|| "?".into());
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    out
}

/// A pair run: the measurements of one (sender node, receiver node, repetition).
struct Run<'a> {
    countries: (String, String),
    measurements: Vec<(&'a Measurement, Vec<PathInfo>)>,
}

fn combine(vs: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut out = None;
    for v in vs {
        match v {
            Some(true) => return Some(true),
            Some(false) => out = Some(false),
            None => {}
        }
    }
    out
}

/// Builds the report.
pub fn build(
    c: &Campaign,
    db: &GeoDb,
    groups: &GroupSet,
    opts: &Options,
) -> Result<Report, ReportError> {
    let m49 = M49::shipped();
    let mut geo = Geo {
        db,
        cache: HashMap::new(),
    };
    let mut problems: Vec<Problem> = c.problems.clone();
    problems.extend(capture_problems(c));
    let probes = super::probes::rows(c, &mut problems);
    problems.sort();
    problems.dedup();

    let (mut paths, infos) = path_rows(c, &mut geo)?;
    let runs = pair_runs(c, infos, &mut problems);
    let apps = run_apps(&runs);
    let (table2, table3) = locality_tables(&area_runs(&runs, &m49), &apps, groups, &m49)?;

    let (dns, noise) = dns_table(c, &mut geo)?;
    let servers = server_table(c, &mut geo)?;
    let interference = interference_rows(c);
    let anomalies = anomalies(c, &paths, &m49, groups);
    let failures = failures(c);
    let rtt = rtt_summaries(&paths);

    let mut by_status = BTreeMap::new();
    let mut by_kind = BTreeMap::new();
    for m in &c.measurements {
        *by_status
            .entry(m.entry.status.as_str().to_string())
            .or_insert(0) += 1;
        *by_kind
            .entry(m.entry.kind.as_str().to_string())
            .or_insert(0) += 1;
    }
    let geo_changes = match opts.old_geo_db {
        Some(old) => {
            let mut ips: Vec<IpAddr> = geo.cache.keys().copied().collect();
            ips.sort();
            Some(GeoChanges {
                old_db: db_label(old),
                new_db: db_label(db.country_db()),
                diff: crate::geo::diff::diff(old, db.country_db(), &ips)?,
            })
        }
        None => None,
    };
    paths.sort_by(|a, b| (&a.measurement, &a.file, a.dst).cmp(&(&b.measurement, &b.file, b.dst)));
    Ok(Report {
        schema: REPORT_SCHEMA,
        campaign: CampaignSummary {
            name: c.name.clone(),
            measurements: c.measurements.len(),
            by_status,
            by_kind,
            pair_runs: runs.len(),
            groups: groups.source.clone(),
            geo_db: db_label(db.country_db()),
            asn_db: db.asn_db().map(db_label),
            dns_noise_names: noise,
        },
        apps,
        table2,
        table3,
        dns,
        servers,
        interference,
        anomalies,
        failures,
        problems,
        paths,
        rtt,
        geo_changes,
        probes,
        node_countries: c.node_countries().clone(),
        group_members: groups
            .groups
            .iter()
            .map(|g| GroupMembers {
                id: g.id.clone(),
                name: g.name.clone(),
                members: g.members.iter().map(|m| m.to_ascii_uppercase()).collect(),
            })
            .collect(),
    })
}

/// Read errors of the stored captures, each named by its measurement file.
fn capture_problems(c: &Campaign) -> Vec<Problem> {
    let mut problems = Vec::new();
    for m in &c.measurements {
        for cap in m.analysis.iter().flat_map(|a| a.captures.iter()) {
            for e in &cap.errors {
                problems.push(Problem {
                    file: format!(
                        "measurements/{}/{}",
                        m.entry.id,
                        Path::new(&cap.capture)
                            .file_name()
                            .map_or(cap.capture.clone(), |f| f.to_string_lossy().into_owned())
                    ),
                    message: match (e.frame, e.offset) {
                        (Some(f), _) => format!("frame {f}: {}", e.message),
                        (None, Some(o)) => format!("offset {o}: {}", e.message),
                        _ => e.message.clone(),
                    },
                });
            }
        }
    }
    problems
}

/// The path rows of every trace, and per measurement (in order) its
/// classified, geolocated paths.
fn path_rows(
    c: &Campaign,
    geo: &mut Geo,
) -> Result<(Vec<PathRow>, Vec<Vec<PathInfo>>), ReportError> {
    let mut paths: Vec<PathRow> = Vec::new();
    let mut infos: Vec<Vec<PathInfo>> = Vec::with_capacity(c.measurements.len());
    for m in &c.measurements {
        let mut v = Vec::new();
        for t in &m.traces {
            let class = classify(c, m, t);
            let hops = path_hops(geo, t)?;
            paths.push(PathRow {
                measurement: m.entry.id.clone(),
                class: match &class {
                    Class::Direct => "direct",
                    Class::Application(_) => "application",
                    Class::Other => "other",
                }
                .into(),
                app: match &class {
                    Class::Application(a) => Some(a.clone()),
                    _ => None,
                },
                node: t.node.clone(),
                target: t.target.clone(),
                dst: t.trace.dst_addr.to_canonical(),
                file: t.file.clone(),
                countries: merged_countries(&hops),
                unknown: hops.iter().filter(|h| h.country.is_none()).count(),
                hops: hops.clone(),
                locality: is_locality_measurement(m),
            });
            v.push(PathInfo { class, hops });
        }
        infos.push(v);
    }
    Ok((paths, infos))
}

/// Pair runs of the locality tables: the locality measurements by
/// (sender node, receiver node, repetition). A measurement without
/// countries is left out, as a problem.
fn pair_runs<'a>(
    c: &'a Campaign,
    infos: Vec<Vec<PathInfo>>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<(String, String, u32), Run<'a>> {
    let mut runs: BTreeMap<(String, String, u32), Run> = BTreeMap::new();
    for (m, info) in c.measurements.iter().zip(infos) {
        if !is_locality_measurement(m) {
            continue;
        }
        let Some((key, countries)) = pair_run(c, m) else {
            problems.push(Problem {
                file: format!("measurements/{}/meta.json", m.entry.id),
                message: "no sender or receiver country: left out of the locality tables".into(),
            });
            continue;
        };
        runs.entry(key)
            .or_insert_with(|| Run {
                countries,
                measurements: Vec::new(),
            })
            .measurements
            .push((m, info));
    }
    runs
}

/// A pair run's key: (sender node, receiver node, repetition).
pub(super) type RunKey = (String, String, u32);

/// The pair run a locality measurement belongs to: its key and its two
/// vantage countries (upper case); `None` without both countries. One rule
/// for the report and the dataset.
pub(super) fn pair_run(c: &Campaign, m: &Measurement) -> Option<(RunKey, (String, String))> {
    let e = &m.entry;
    let sc = given(&e.sender_country)
        .map(str::to_string)
        .or_else(|| given(&e.sender_node).and_then(|n| c.node_country(n)))?;
    let rc = given(&e.receiver_country)
        .map(str::to_string)
        .or_else(|| given(&e.receiver_node).and_then(|n| c.node_country(n)))?;
    let key = (
        given(&e.sender_node).map_or_else(|| sc.clone(), str::to_string),
        given(&e.receiver_node).map_or_else(|| rc.clone(), str::to_string),
        e.repetition,
    );
    Some((key, (sc.to_ascii_uppercase(), rc.to_ascii_uppercase())))
}

/// Whether a measurement counts in the locality tables.
pub(super) fn counts_in_locality_tables(m: &Measurement) -> bool {
    is_locality_measurement(m)
}

/// The apps of the runs (measured, or the target of an application path), sorted.
fn run_apps(runs: &BTreeMap<(String, String, u32), Run>) -> Vec<String> {
    let mut apps: BTreeSet<String> = BTreeSet::new();
    for r in runs.values() {
        for (m, info) in &r.measurements {
            if let Some(a) = given(&m.entry.app) {
                apps.insert(a.to_string());
            }
            for p in info {
                if let Class::Application(a) = &p.class {
                    apps.insert(a.clone());
                }
            }
        }
    }
    apps.into_iter().collect()
}

/// Runs per M49 area containing both vantages, keyed by (level rank,
/// area name), with the level and the area code.
type AreaRuns<'r, 'a> = BTreeMap<(u8, String), (LevelName, String, Vec<&'r Run<'a>>)>;

/// The areas (region, sub-region, intermediate region) that contain both
/// vantages of a run, with those runs.
fn area_runs<'r, 'a>(
    runs: &'r BTreeMap<(String, String, u32), Run<'a>>,
    m49: &M49,
) -> AreaRuns<'r, 'a> {
    let mut area_runs: AreaRuns = BTreeMap::new();
    for r in runs.values() {
        let (Some(a), Some(b)) = (m49.country(&r.countries.0), m49.country(&r.countries.1)) else {
            continue;
        };
        for area in [&a.region, &a.subregion, &a.intermediate]
            .into_iter()
            .flatten()
        {
            if b.in_area(&area.code) {
                let level = m49
                    .area(&area.code)
                    .map(|(_, l)| level_name(*l))
                    .unwrap_or("region");
                area_runs
                    .entry((level_rank(level), area.name.clone()))
                    .or_insert_with(|| (level, area.code.clone(), Vec::new()))
                    .2
                    .push(r);
            }
        }
    }
    area_runs
}

/// Whether the run measured the app or traced a path to its server.
fn run_has_app(r: &Run, app: &str) -> bool {
    r.measurements.iter().any(|(m, info)| {
        given(&m.entry.app) == Some(app)
            || info
                .iter()
                .any(|p| matches!(&p.class, Class::Application(a) if a == app))
    })
}

/// Tables 2 (paths leaving the area) and 3 (paths through countries
/// outside an interest group), one row per area (and group).
fn locality_tables(
    area_runs: &AreaRuns,
    apps: &[String],
    groups: &GroupSet,
    m49: &M49,
) -> Result<(Vec<RegionRow>, Vec<GroupRow>), ReportError> {
    let mut table2 = Vec::new();
    let mut table3 = Vec::new();
    for ((_, name), (level, code, rs)) in area_runs {
        table2.push(region_row(name, level, code, rs, apps, m49)?);
        for g in &groups.groups {
            let acc = |p: &PathInfo| accessible_to_group(&p.countries(), m49, g).value;
            let net = rs.iter().map(|r| {
                combine(
                    r.measurements
                        .iter()
                        .flat_map(|(_, i)| i.iter())
                        .filter(|p| p.class == Class::Direct)
                        .map(acc),
                )
            });
            let network = Share::of(net);
            let mut app_shares = BTreeMap::new();
            for app in apps {
                let vs = rs.iter().filter(|r| run_has_app(r, app)).map(|r| {
                    combine(
                        r.measurements
                            .iter()
                            .flat_map(|(_, i)| i.iter())
                            .filter(|p| matches!(&p.class, Class::Application(a) if a == app))
                            .map(acc),
                    )
                });
                app_shares.insert(app.clone(), Share::of(vs));
            }
            table3.push(GroupRow {
                level,
                code: code.clone(),
                region: name.clone(),
                group: g.id.clone(),
                group_name: g.name.clone(),
                total: rs.len(),
                network,
                apps: app_shares,
            });
        }
    }
    Ok((table2, table3))
}

/// One row of Table 2: the area's runs whose direct (network) and
/// application paths leave it.
fn region_row(
    name: &str,
    level: LevelName,
    code: &str,
    rs: &[&Run],
    apps: &[String],
    m49: &M49,
) -> Result<RegionRow, ReportError> {
    let leaves = |p: &PathInfo| -> Result<Option<bool>, ReportError> {
        Ok(leaves_region(&p.countries(), m49, code)?.value)
    };
    let mut net = Vec::new();
    let mut unknown_hops = 0;
    for r in rs {
        let mut vs = Vec::new();
        for (_, info) in &r.measurements {
            for p in info.iter().filter(|p| p.class == Class::Direct) {
                unknown_hops += p.hops.iter().filter(|h| h.country.is_none()).count();
                vs.push(leaves(p)?);
            }
        }
        net.push(combine(vs));
    }
    let mut app_shares = BTreeMap::new();
    for app in apps {
        let mut vs = Vec::new();
        for r in rs.iter().filter(|r| run_has_app(r, app)) {
            let mut v = Vec::new();
            for (_, info) in &r.measurements {
                for p in info {
                    if matches!(&p.class, Class::Application(a) if a == app) {
                        v.push(leaves(p)?);
                    }
                }
            }
            vs.push(combine(v));
        }
        app_shares.insert(app.clone(), Share::of(vs));
    }
    Ok(RegionRow {
        level,
        code: code.to_string(),
        name: name.to_string(),
        pairs: rs.len(),
        measurements: rs.iter().map(|r| r.measurements.len()).sum(),
        network: Share::of(net),
        network_unknown_hops: unknown_hops,
        apps: app_shares,
    })
}

/// Messaging servers: correlation role `messaging`.
fn is_messaging(s: &CorrelatedServer) -> bool {
    s.role == Role::Messaging
}

fn dns_table(c: &Campaign, geo: &mut Geo) -> Result<(Vec<DnsRow>, usize), ReportError> {
    // Names and addresses known to belong to an app, and its messaging servers.
    let mut name_apps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut messaging: BTreeSet<(String, String)> = BTreeSet::new();
    let mut messaging_ips: BTreeSet<(String, IpAddr)> = BTreeSet::new();
    let mut baseline: BTreeSet<String> = BTreeSet::new();
    let mut correlated: BTreeSet<String> = BTreeSet::new();
    for m in &c.measurements {
        let Some(a) = &m.analysis else { continue };
        for s in &a.servers {
            // Every correlated server has a role: the app was correlated.
            correlated.insert(s.app.clone());
            for n in &s.names {
                name_apps
                    .entry(norm_name(n))
                    .or_default()
                    .insert(s.app.clone());
                if is_messaging(s) {
                    messaging.insert((s.app.clone(), norm_name(n)));
                }
            }
            if is_messaging(s) {
                messaging_ips.insert((s.app.clone(), s.ip.to_canonical()));
            }
        }
        for cap in &a.captures {
            for s in &cap.servers {
                for n in &s.names {
                    name_apps
                        .entry(norm_name(n))
                        .or_default()
                        .insert(s.app.clone());
                }
                if s.role == Some(Role::Messaging) {
                    messaging_ips.insert((s.app.clone(), s.ip.to_canonical()));
                }
            }
            if m.entry.kind == Kind::Baseline {
                for d in &cap.dns {
                    baseline.insert(norm_name(&d.query));
                }
            }
        }
    }
    // (app, name) → transports, addresses, measurements
    type Acc = (BTreeSet<String>, BTreeSet<IpAddr>, BTreeSet<String>);
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut noise: BTreeSet<String> = BTreeSet::new();
    for m in &c.measurements {
        if m.entry.kind == Kind::Baseline {
            continue;
        }
        let Some(a) = &m.analysis else { continue };
        for cap in &a.captures {
            for d in &cap.dns {
                let name = norm_name(&d.query);
                if name.is_empty() {
                    continue;
                }
                let owners: Vec<String> = match name_apps.get(&name) {
                    Some(s) => s.iter().cloned().collect(),
                    None if baseline.contains(&name) => {
                        noise.insert(name.clone());
                        continue;
                    }
                    None => match given(&m.entry.app) {
                        Some(app) => vec![app.to_string()],
                        None => continue,
                    },
                };
                let ips: Vec<IpAddr> = d
                    .answers
                    .iter()
                    .filter(|x| x.rtype == "A" || x.rtype == "AAAA")
                    .filter_map(|x| x.data.trim().parse::<IpAddr>().ok())
                    .map(|i| i.to_canonical())
                    .collect();
                for app in owners {
                    let e = acc.entry((app, name.clone())).or_default();
                    e.0.insert(d.transport.clone());
                    e.1.extend(ips.iter().copied());
                    e.2.insert(m.entry.id.clone());
                }
            }
        }
    }
    let mut rows = Vec::new();
    for ((app, name), (transports, ips, ms)) in acc {
        // Without any correlation result for the app, nobody knows which
        // servers carried its messages.
        let relevant = correlated.contains(&app).then(|| {
            messaging.contains(&(app.clone(), name.clone()))
                || ips
                    .iter()
                    .any(|i| messaging_ips.contains(&(app.clone(), *i)))
        });
        let transport = transports.into_iter().collect::<Vec<_>>().join("+");
        let mut by_prefix: BTreeMap<String, PrefixAcc> = BTreeMap::new();
        for ip in &ips {
            let g = geo.get(*ip)?;
            let e = by_prefix
                .entry(g.prefix.clone().unwrap_or_else(|| "-".into()))
                .or_insert((g.asn, g.org.clone(), BTreeSet::new(), 0));
            e.2.insert(g.country.clone().unwrap_or_else(|| "?".into()));
            e.3 += 1;
        }
        if by_prefix.is_empty() {
            by_prefix.insert("-".into(), (None, None, BTreeSet::new(), 0));
        }
        for (prefix, (asn, org, countries, n)) in by_prefix {
            rows.push(DnsRow {
                app: app.clone(),
                name: name.clone(),
                transport: transport.clone(),
                name_ips: ips.len(),
                prefix,
                ips: n,
                asn,
                org,
                countries: countries.into_iter().collect(),
                relevant,
                measurements: ms.len(),
            });
        }
    }
    Ok((rows, noise.len()))
}

/// AS, organisation, countries and address count of one prefix of a name.
type PrefixAcc = (Option<u32>, Option<String>, BTreeSet<String>, usize);

type ServerKey = (String, String, IpAddr, u16, String);

struct ServerAcc {
    role: Option<Role>,
    score: Option<f64>,
    measurements: BTreeSet<String>,
    names: BTreeSet<String>,
    evidence: Vec<String>,
}

fn server_table(c: &Campaign, geo: &mut Geo) -> Result<Vec<ServerRow>, ReportError> {
    let mut acc: BTreeMap<ServerKey, ServerAcc> = BTreeMap::new();
    let mut add = |key: ServerKey,
                   mid: &str,
                   role: Option<Role>,
                   score: Option<f64>,
                   names: &[String],
                   evidence: &[String]| {
        let e = acc.entry(key).or_insert_with(|| ServerAcc {
            role: None,
            score: None,
            measurements: BTreeSet::new(),
            names: BTreeSet::new(),
            evidence: Vec::new(),
        });
        if e.role.is_none() {
            e.role = role;
        }
        if let Some(s) = score.filter(|s| s.is_finite()) {
            e.score = Some(e.score.map_or(s, |x: f64| x.max(s)));
        }
        e.measurements.insert(mid.to_string());
        e.names.extend(names.iter().map(|n| norm_name(n)));
        for ev in evidence {
            if e.evidence.len() < 8 && !e.evidence.contains(ev) {
                e.evidence.push(ev.clone());
            }
        }
    };
    for m in &c.measurements {
        let Some(a) = &m.analysis else { continue };
        let id = m.entry.id.as_str();
        for s in &a.servers {
            let ip = s.ip.to_canonical();
            let mut vantages: BTreeSet<String> = BTreeSet::new();
            if let Some(n) = &s.node {
                vantages.insert(n.clone());
            } else if let Some(n) = s.phone.as_deref().and_then(|p| phone_node(c, m, p)) {
                vantages.insert(n);
            } else {
                for cap in &a.captures {
                    let seen = cap.servers.iter().any(|x| x.ip.to_canonical() == ip)
                        || cap
                            .flows
                            .iter()
                            .any(|f| f.dst.to_canonical() == ip || f.src.to_canonical() == ip);
                    if seen && let Some(v) = capture_vantage(c, m, &cap.capture) {
                        vantages.insert(v);
                    }
                }
            }
            if vantages.is_empty() {
                vantages.insert("?".into());
            }
            for v in vantages {
                add(
                    (s.app.clone(), v, ip, s.port, s.proto.clone()),
                    id,
                    Some(s.role),
                    Some(s.score),
                    &s.names,
                    &s.evidence,
                );
            }
        }
        for cap in &a.captures {
            let v = capture_vantage(c, m, &cap.capture).unwrap_or_else(|| "?".into());
            for s in &cap.servers {
                add(
                    (
                        s.app.clone(),
                        v.clone(),
                        s.ip.to_canonical(),
                        s.port,
                        s.proto.clone(),
                    ),
                    id,
                    s.role,
                    None,
                    &s.names,
                    &s.evidence,
                );
            }
        }
    }
    let mut rows = Vec::new();
    for ((app, vantage, ip, port, proto), a) in acc {
        let g = geo.get(ip)?;
        rows.push(ServerRow {
            vantage_country: c.node_country(&vantage),
            app,
            vantage,
            ip,
            port,
            proto,
            role: a.role,
            score: a.score.map(|s| (s * 1000.0).round() / 1000.0),
            measurements: a.measurements.len(),
            names: a.names.into_iter().collect(),
            evidence: a.evidence,
            country: g.country,
            asn: g.asn,
            org: g.org,
        });
    }
    Ok(rows)
}

fn interference_rows(c: &Campaign) -> Vec<InterferenceRow> {
    let mut rows = Vec::new();
    for m in &c.measurements {
        let Some(a) = &m.analysis else { continue };
        for cap in &a.captures {
            let v = capture_vantage(c, m, &cap.capture).unwrap_or_else(|| "?".into());
            for i in &cap.interference {
                rows.push(InterferenceRow {
                    vantage: v.clone(),
                    measurement: m.entry.id.clone(),
                    capture: Path::new(&cap.capture)
                        .file_name()
                        .map_or(cap.capture.clone(), |f| f.to_string_lossy().into_owned()),
                    kind: i.kind.clone(),
                    rule: i.rule.clone(),
                    frames: i.frames.clone(),
                    claimed_src: i.claimed_src,
                    confidence: i.confidence,
                    injector_hops: i.injector_hops,
                    evidence: serde_json::to_string(&i.evidence).unwrap_or_default(),
                    summary: i.summary.clone(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        (&a.vantage, &a.measurement, &a.capture, &a.frames, &a.rule).cmp(&(
            &b.vantage,
            &b.measurement,
            &b.capture,
            &b.frames,
            &b.rule,
        ))
    });
    rows
}

fn failures(c: &Campaign) -> Vec<Failure> {
    let mut v: Vec<Failure> = c
        .measurements
        .iter()
        .filter(|m| m.entry.status != RunStatus::Complete)
        .map(|m| {
            let e = &m.entry;
            Failure {
                measurement: e.id.clone(),
                kind: e.kind.as_str().to_string(),
                app: given(&e.app).map(str::to_string),
                pair: format!(
                    "{} → {}",
                    given(&e.sender_country).unwrap_or("?"),
                    given(&e.receiver_country).unwrap_or("?")
                ),
                status: e.status.as_str().to_string(),
                error: e.error.clone(),
            }
        })
        .collect();
    v.sort_by(|a, b| a.measurement.cmp(&b.measurement));
    v
}

fn anomalies(c: &Campaign, paths: &[PathRow], m49: &M49, groups: &GroupSet) -> Vec<Anomaly> {
    let checker = Checker::shipped();
    let mut out = Vec::new();
    for p in paths {
        let src_country = c.node_country(&p.node);
        let known: Vec<(usize, &str)> = p
            .hops
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.country.as_deref().map(|c| (i, c)))
            .collect();
        let push = |out: &mut Vec<Anomaly>, kind: &str, description: String| {
            out.push(Anomaly {
                kind: kind.into(),
                measurement: p.measurement.clone(),
                trace: p.file.clone(),
                description,
                hops: p.hops.iter().map(hop_line).collect(),
            })
        };
        // Detour: a direct path between two vantages of one region that leaves it.
        if p.class == "direct"
            && let (Some(a), Some(b)) = (
                src_country.as_deref().and_then(|s| m49.country(s)),
                c.lab
                    .as_ref()
                    .and_then(|l| l.node(&p.target).or_else(|| l.node_by_addr(p.dst)))
                    .and_then(|n| n.country.clone())
                    .or_else(|| c.node_country(&p.target))
                    .and_then(|t| m49.country(&t)),
            )
            && let Some(region) = a.region.as_ref().filter(|r| b.in_area(&r.code))
        {
            let outside: Vec<&str> = known
                .iter()
                .filter(|(_, cc)| m49.country(cc).is_some_and(|x| !x.in_area(&region.code)))
                .map(|(_, cc)| *cc)
                .collect();
            if !outside.is_empty() {
                let mut o: Vec<&str> = outside.clone();
                o.dedup();
                push(
                    &mut out,
                    "detour",
                    format!(
                        "direct path {} ({}) → {} ({}) stays between {} vantages but crosses {}",
                        p.node,
                        a.iso2,
                        p.target,
                        b.iso2,
                        region.name,
                        o.join(", ")
                    ),
                );
            }
        }
        // Group bypass: the destination is not a member of a group that
        // holds most of the other countries of its sub-region, and the path
        // enters the destination's region straight from outside without
        // touching the group (the seed's "US to Switzerland without EU").
        // Unknown hops between the last foreign hop and the destination
        // leave it undecided, so no anomaly is claimed then.
        if let Some(&(di, dst_c)) = known.last()
            && let Some(dst) = m49.country(dst_c)
            && let (Some(region), Some(sub)) = (&dst.region, &dst.subregion)
            && let Some(&(pi, prev)) = known.iter().rev().find(|(_, c)| *c != dst_c)
            && let Some(&(fi, _)) = known.iter().find(|(i, _)| *i > pi)
            && fi <= di
            && p.hops[pi + 1..fi].is_empty()
            && m49.country(prev).is_some_and(|x| !x.in_area(&region.code))
            && src_country
                .as_deref()
                .and_then(|s| m49.country(s))
                .is_some_and(|s| !s.in_area(&region.code))
        {
            let neighbours: Vec<&str> = m49
                .countries()
                .iter()
                .filter(|x| x.in_area(&sub.code) && x.iso2 != dst.iso2)
                .map(|x| x.iso2.as_str())
                .collect();
            for g in &groups.groups {
                let members = neighbours.iter().filter(|c| g.contains(c)).count();
                if 2 * members > neighbours.len()
                    && !g.contains(dst_c)
                    && !known.iter().any(|(_, c)| g.contains(c))
                {
                    push(
                        &mut out,
                        "group_bypass",
                        format!(
                            "{} path {} → {} reaches {} ({}, {} of its {} {} neighbours in {}) from {} without crossing {}",
                            p.class,
                            p.node,
                            p.target,
                            dst_c,
                            region.name,
                            members,
                            neighbours.len(),
                            sub.name,
                            g.name,
                            prev,
                            g.name
                        ),
                    );
                }
            }
        }
        // Implausible hops: speed of light in fibre.
        let obs: Vec<HopObs> = p
            .hops
            .iter()
            .filter(|h| h.hop.is_some_and(|n| n > 0))
            .map(|h| HopObs {
                country: h.country.clone(),
                rtt_ms: h.rtt,
            })
            .collect();
        let vantage = src_country.map(Location::Country);
        let bad: Vec<String> = checker
            .check_path(vantage.as_ref(), &obs)
            .into_iter()
            .filter(|v| v.verdict.status == Status::Implausible)
            .flat_map(|v| v.verdict.reasons)
            .collect();
        if !bad.is_empty() {
            push(&mut out, "implausible_hop", bad.join("; "));
        }
    }
    out.sort_by(|a, b| {
        (&a.kind, &a.measurement, &a.trace, &a.description).cmp(&(
            &b.kind,
            &b.measurement,
            &b.trace,
            &b.description,
        ))
    });
    out
}

fn rtt_summaries(paths: &[PathRow]) -> Vec<RttSummary> {
    let mut per: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in paths.iter().filter(|p| p.class == "application") {
        let Some(app) = &p.app else { continue };
        let dst = p
            .hops
            .iter()
            .find(|h| h.addr == Some(p.dst) && h.rtt.is_some());
        let last = p.hops.iter().rev().find(|h| h.rtt.is_some());
        if let Some(r) = dst.or(last).and_then(|h| h.rtt) {
            per.entry(app.clone()).or_default().push(r);
        }
    }
    per.into_iter()
        .map(|(app, mut s)| {
            s.sort_by(f64::total_cmp);
            let n = s.len();
            let rank = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
            RttSummary {
                app,
                n,
                min: s[0],
                median: rank(0.5),
                p90: rank(0.9),
                max: s[n - 1],
                samples: s,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tests/fixtures/campaigns/small (its make_small.py says what it holds).
    fn small() -> Campaign {
        Campaign::load(&crate::source_dir().join("tests/fixtures/campaigns/small")).unwrap()
    }

    #[test]
    fn pair_runs_apps_and_areas_of_the_small_campaign() {
        let c = small();
        let infos: Vec<Vec<PathInfo>> = c.measurements.iter().map(|_| Vec::new()).collect();
        let mut problems = Vec::new();
        let runs = pair_runs(&c, infos, &mut problems);
        // (de-1,fr-1,1), (jp-1,cn-1,1), (ar-1,br-1,1), (ar-1,br-1,2), (de-1,jp-1,1)
        assert_eq!(runs.len(), 5, "{:?}", runs.keys().collect::<Vec<_>>());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(run_apps(&runs), ["signal", "threema", "wechat", "whatsapp"]);
        let m49 = M49::shipped();
        let areas = area_runs(&runs, &m49);
        let names: Vec<&str> = areas.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Americas",
                "Asia",
                "Europe",
                "Eastern Asia",
                "Latin America and the Caribbean",
                "Western Europe",
                "South America",
            ]
        );
        // Only the DE–FR run lies in Western Europe.
        let we = areas
            .iter()
            .find(|(k, _)| k.1 == "Western Europe")
            .unwrap()
            .1;
        assert_eq!((we.0, we.2.len()), ("sub-region", 1));
        assert!(run_has_app(we.2[0], "whatsapp"));
        assert!(!run_has_app(we.2[0], "signal"));
    }

    #[test]
    fn capture_errors_become_problems_named_by_file() {
        let mut c = small();
        let m = c
            .measurements
            .iter_mut()
            .find(|m| m.analysis.as_ref().is_some_and(|a| !a.captures.is_empty()))
            .expect("a measurement with captures");
        let id = m.entry.id.clone();
        let cap = &mut m.analysis.as_mut().unwrap().captures[0];
        cap.capture = "/somewhere/else/x.pcap".into();
        cap.errors = vec![crate::analysis::model::ErrorRecord {
            file: "x.pcap".into(),
            frame: Some(7),
            offset: None,
            message: "truncated".into(),
        }];
        let p = capture_problems(&c);
        let file = format!("measurements/{id}/x.pcap");
        let ours: Vec<&Problem> = p.iter().filter(|p| p.file == file).collect();
        assert_eq!(ours.len(), 1, "{p:?}");
        assert_eq!(ours[0].message, "frame 7: truncated");
    }
}
