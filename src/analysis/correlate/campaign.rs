//! Measurements and campaigns: scan each capture once, count every
//! measurement against its own quiet time and the campaign's baselines
//! (scanned once per campaign), pool the counts per (app, endpoint), then
//! classify and write `analysis.json`.

use super::capture::{CaptureLog, scan_capture};
use super::decide::{Pool, classify, pool_add};
use super::events::{Event, read_events};
use super::evidence::{Tallied, tally};
use super::folder::{MeasurementFiles, Meta, captures_of, measurement_dirs, read_meta};
use super::{
    ANALYSIS_SCHEMA, CorrelateConfig, CorrelateError, CorrelatedServer, MeasurementAnalysis, Role,
};
use crate::analysis::model::CaptureReport;
use crate::analysis::replay::ReplayOptions;
use crate::campaign::record::MeasurementKind as Kind;
use crate::campaign::record::Status;
use crate::scenario::apps::AppProfiles;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A measurement folder decoded: per capture the replay report and the
/// correlation's log (same pass), and the events.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Correlation logs, one per capture.
    pub logs: Vec<CaptureLog>,
    /// Replay reports, one per capture (same order).
    pub reports: Vec<CaptureReport>,
    /// Its events.
    pub events: Vec<Event>,
}

/// Decodes a measurement folder (each capture once) and reads its events.
pub fn scan_measurement(
    files: &MeasurementFiles,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
) -> Result<Scanned, CorrelateError> {
    let events = match &files.events {
        Some(p) => read_events(p)?,
        None => Vec::new(),
    };
    let opts = ReplayOptions {
        apps: profiles.clone(),
        exempt: cfg.exempt.clone(),
        ..ReplayOptions::default()
    };
    let (reports, logs) = files
        .captures
        .iter()
        .map(|c| scan_capture(c, &opts))
        .unzip();
    Ok(Scanned {
        logs,
        reports,
        events,
    })
}

/// The baseline measurements of a campaign, scanned (shared, never copied).
pub type Baselines = BTreeMap<PathBuf, Arc<(Meta, Scanned)>>;

fn baseline_dirs(campaign: &Path) -> Result<Vec<(PathBuf, Meta)>, CorrelateError> {
    let mut out = Vec::new();
    for d in measurement_dirs(campaign)? {
        if let Ok(Some(m)) = read_meta(&d)
            && m.kind == Kind::Baseline
        {
            out.push((d, m));
        }
    }
    Ok(out)
}

/// Scans every baseline measurement of a campaign (in parallel).
pub fn scan_baselines(
    campaign: &Path,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
) -> Result<Baselines, CorrelateError> {
    let cache = BaselineCache::default();
    cache.update(campaign, profiles, cfg)
}

/// Baselines scanned once per campaign for callers that analyse its
/// measurements one at a time (the campaign runner): each call scans only
/// the baseline folders it has not seen yet.
#[derive(Debug, Default)]
pub struct BaselineCache {
    scanned: Mutex<Baselines>,
}

impl BaselineCache {
    /// The campaign's baselines, scanning the new ones.
    pub fn update(
        &self,
        campaign: &Path,
        profiles: &Arc<AppProfiles>,
        cfg: &CorrelateConfig,
    ) -> Result<Baselines, CorrelateError> {
        use rayon::prelude::*;
        let known: BTreeSet<PathBuf> = self.lock().keys().cloned().collect();
        let new: Vec<(PathBuf, Meta)> = baseline_dirs(campaign)?
            .into_iter()
            .filter(|(d, _)| !known.contains(d))
            .collect();
        let scanned: Vec<(PathBuf, Arc<(Meta, Scanned)>)> = new
            .into_par_iter()
            .map(|(d, m)| {
                let s = scan_measurement(&MeasurementFiles::of(&d), profiles, cfg)?;
                Ok((d, Arc::new((m, s))))
            })
            .collect::<Result<_, CorrelateError>>()?;
        let mut g = self.lock();
        g.extend(scanned);
        Ok(g.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Baselines> {
        self.scanned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A measurement scanned and counted, waiting for the campaign pool.
#[derive(Debug)]
pub struct Prepared {
    /// The folder.
    pub dir: PathBuf,
    /// Measurement id.
    pub id: String,
    /// What the measurement does (from `meta.json`; a message measurement
    /// for a standalone folder).
    pub kind: Kind,
    /// App id.
    pub app: String,
    /// Endpoint counts.
    pub tallied: Vec<Tallied>,
    /// Replay reports of its captures.
    pub reports: Vec<CaptureReport>,
    /// Remarks.
    pub warnings: Vec<String>,
}

/// The app of a measurement: `meta.json`'s, else the events' (one of them).
fn app_of(meta: &Meta, events: &[Event], warnings: &mut Vec<String>) -> String {
    if !meta.app.is_empty() {
        return meta.app.clone();
    }
    let apps: BTreeSet<&str> = events
        .iter()
        .map(|e| e.app.as_str())
        .filter(|a| !a.is_empty())
        .collect();
    if apps.len() > 1 {
        warnings.push(format!(
            "events name several apps ({}); using the first",
            apps.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    apps.first().map(|s| s.to_string()).unwrap_or_default()
}

/// Warnings for damaged captures: file, byte offset, frame.
fn damage_warnings(reports: &[CaptureReport], warnings: &mut Vec<String>) {
    for r in reports {
        for e in &r.errors {
            let at = match (e.offset, e.frame) {
                (Some(o), Some(f)) => format!(" at byte offset {o} (frame {f})"),
                (Some(o), None) => format!(" at byte offset {o}"),
                (None, Some(f)) => format!(" at frame {f}"),
                (None, None) => String::new(),
            };
            warnings.push(format!(
                "capture {} damaged{at}: {}; the {} packets before it were analysed",
                e.file, e.message, r.packets
            ));
        }
    }
}

/// Scans and counts one measurement. With `campaign`, the campaign's
/// baseline runs for the same app, country pair and phone are background
/// (from `cache` when given, else scanned here); a baseline folder found in
/// the cache is not decoded again.
pub fn prepare(
    dir: &Path,
    campaign: Option<&Path>,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
    cache: Option<&Baselines>,
) -> Result<Prepared, CorrelateError> {
    let files = MeasurementFiles::of(dir);
    let mut warnings = Vec::new();
    let meta = read_meta(dir).unwrap_or_else(|e| {
        warnings.push(format!("{e}; analysed without it"));
        None
    });
    let meta = meta.unwrap_or_default();
    let own;
    let baselines = match (cache, campaign) {
        (Some(c), _) => c,
        (None, Some(c)) if meta.kind != Kind::Baseline => {
            own = scan_baselines(c, profiles, cfg)?;
            &own
        }
        _ => {
            own = Baselines::new();
            &own
        }
    };
    let fresh;
    let scanned: &Scanned = match baselines.get(dir) {
        Some(b) => &b.1,
        None => {
            fresh = scan_measurement(&files, profiles, cfg)?;
            &fresh
        }
    };
    let app = app_of(&meta, &scanned.events, &mut warnings);
    if files.events.is_none() {
        warnings.push("no events.jsonl: no correlation".into());
    }
    if files.captures.is_empty() {
        warnings.push("no capture files".into());
    }
    damage_warnings(&scanned.reports, &mut warnings);
    let tallied = if meta.kind == Kind::Baseline {
        Vec::new()
    } else {
        let background = |ph: &str| -> Vec<&CaptureLog> {
            baselines
                .values()
                .filter(|b| {
                    let m = &b.0;
                    m.app == app
                        && m.status != Status::Failed
                        && m.sender_country == meta.sender_country
                        && m.receiver_country == meta.receiver_country
                        && (m.sender == ph || m.receiver == ph)
                })
                .flat_map(|b| captures_of(&b.1.logs, ph))
                .collect()
        };
        tally(
            &scanned.logs,
            &scanned.events,
            &background,
            cfg,
            &mut warnings,
        )
    };
    Ok(Prepared {
        dir: dir.to_path_buf(),
        id: if meta.id.is_empty() {
            files.id.clone()
        } else {
            meta.id.clone()
        },
        kind: meta.kind,
        app,
        tallied,
        reports: scanned.reports.clone(),
        warnings,
    })
}

/// Classifies a prepared measurement against the pool: the content of
/// `analysis.json` (the capture reports come from the same decoding pass).
pub fn finish(p: Prepared, pool: Option<&Pool>, cfg: &CorrelateConfig) -> MeasurementAnalysis {
    let servers = classify(&p.tallied, &p.app, pool, cfg);
    MeasurementAnalysis {
        schema: ANALYSIS_SCHEMA.into(),
        measurement: p.id,
        captures: p.reports,
        servers,
        warnings: p.warnings,
    }
}

/// Analyses one measurement folder on its own (no campaign pool): a
/// standalone folder, or a campaign measurement right after it ran (the
/// campaign's baselines scanned here; see [`analyze_measurement_cached`]).
pub fn analyze_measurement(
    dir: &Path,
    campaign: Option<&Path>,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
) -> Result<MeasurementAnalysis, CorrelateError> {
    let p = prepare(dir, campaign, profiles, cfg, None)?;
    Ok(finish(p, None, cfg))
}

/// The live campaign pool of the campaign runner: the counts of the
/// measurements analysed so far, per folder, and their sum per (app,
/// endpoint). Built from the folder on first use (a resumed campaign: the
/// measurements that already hold an `analysis.json` are decoded once),
/// then grown by each measurement; a measurement analysed again (redone)
/// replaces its earlier counts.
#[derive(Debug, Default)]
pub struct LivePool {
    state: Mutex<Option<LiveState>>,
}

#[derive(Debug, Default)]
struct LiveState {
    entries: BTreeMap<PathBuf, (String, Vec<Tallied>)>,
    pool: Pool,
}

impl LiveState {
    fn insert(&mut self, dir: PathBuf, app: String, tallied: Vec<Tallied>) {
        let replaced = self.entries.contains_key(&dir);
        if !replaced {
            pool_add(&mut self.pool, &app, &tallied);
        }
        self.entries.insert(dir, (app, tallied));
        if replaced {
            self.pool = Pool::new();
            for (app, t) in self.entries.values() {
                pool_add(&mut self.pool, app, t);
            }
        }
    }
}

impl LivePool {
    /// The state, rebuilt from the campaign folder on first use: every
    /// measurement other than `except` that already has its analysis.
    fn rebuild(
        campaign: &Path,
        except: &Path,
        profiles: &Arc<AppProfiles>,
        cfg: &CorrelateConfig,
        baselines: &Baselines,
    ) -> Result<LiveState, CorrelateError> {
        use rayon::prelude::*;
        let done: Vec<PathBuf> = measurement_dirs(campaign)?
            .into_iter()
            .filter(|d| d != except && d.join("analysis.json").is_file())
            .collect();
        let prepared: Vec<Prepared> = done
            .par_iter()
            .map(|d| prepare(d, Some(campaign), profiles, cfg, Some(baselines)))
            .collect::<Result<_, _>>()?;
        let mut st = LiveState::default();
        for p in prepared {
            st.insert(p.dir, p.app, p.tallied);
        }
        Ok(st)
    }
}

/// [`analyze_measurement`] for a campaign measurement right after it ran:
/// the campaign's baselines from `cache` (each decoded once per campaign)
/// and the evidence pooled over the measurements analysed so far (`live`,
/// this one included), so a small campaign's later measurements stand on
/// its earlier ones. `matador replay` of the finished campaign pools all.
pub fn analyze_measurement_cached(
    dir: &Path,
    campaign: &Path,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
    cache: &BaselineCache,
    live: &LivePool,
) -> Result<MeasurementAnalysis, CorrelateError> {
    let baselines = cache.update(campaign, profiles, cfg)?;
    let p = prepare(dir, Some(campaign), profiles, cfg, Some(&baselines))?;
    let mut g = live.state.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(LivePool::rebuild(campaign, dir, profiles, cfg, &baselines)?);
    }
    let st = g.get_or_insert_with(LiveState::default);
    st.insert(p.dir.clone(), p.app.clone(), p.tallied.clone());
    Ok(finish(p, Some(&st.pool), cfg))
}

/// Writes `analysis.json` atomically and durably ([`crate::atomic_file`]).
pub fn write_analysis(dir: &Path, a: &MeasurementAnalysis) -> Result<(), CorrelateError> {
    let path = dir.join("analysis.json");
    let io = |e| CorrelateError::Io {
        file: path.clone(),
        source: e,
    };
    let body = serde_json::to_vec_pretty(a).map_err(|e| CorrelateError::Json {
        file: path.clone(),
        message: e.to_string(),
    })?;
    crate::atomic_file::write(&path, &body).map_err(io)
}

/// Re-analyses every measurement of a campaign folder from its files and
/// rewrites their `analysis.json`; returns (folder, analysis) in plan order.
/// Each capture is decoded once (baselines first, then the rest); the
/// counts are pooled per (app, endpoint) over the campaign, then each
/// measurement is classified against the pool.
pub fn replay_campaign(
    campaign: &Path,
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
) -> Result<Vec<(PathBuf, MeasurementAnalysis)>, CorrelateError> {
    use rayon::prelude::*;
    let cache = scan_baselines(campaign, profiles, cfg)?;
    let prepared: Vec<Prepared> = measurement_dirs(campaign)?
        .par_iter()
        .map(|d| prepare(d, Some(campaign), profiles, cfg, Some(&cache)))
        .collect::<Result<_, _>>()?;
    drop(cache);
    let mut pool = Pool::new();
    for p in &prepared {
        pool_add(&mut pool, &p.app, &p.tallied);
    }
    prepared
        .into_par_iter()
        .map(|p| {
            let d = p.dir.clone();
            let a = finish(p, Some(&pool), cfg);
            write_analysis(&d, &a)?;
            Ok((d, a))
        })
        .collect()
}

type ServerKey = (String, IpAddr, u16, String);

/// Servers pooled over a whole campaign: per (app, ip, port, proto), the
/// hits and events summed over its message measurements, the best role.
pub fn campaign_servers(analyses: &[MeasurementAnalysis]) -> Vec<CorrelatedServer> {
    let mut pooled: BTreeMap<ServerKey, CorrelatedServer> = BTreeMap::new();
    let mut messaging: BTreeMap<ServerKey, (u32, u32)> = BTreeMap::new();
    for s in analyses.iter().flat_map(|a| &a.servers) {
        let key = (s.app.clone(), s.ip, s.port, s.proto.clone());
        let m = messaging.entry(key.clone()).or_default();
        m.1 += 1;
        m.0 += u32::from(s.role == Role::Messaging);
        let e = pooled.entry(key).or_insert_with(|| CorrelatedServer {
            hits: 0,
            events: 0,
            baseline_hits: 0,
            baseline_windows: 0,
            score: 0.0,
            log10_odds: None,
            ..s.clone()
        });
        e.hits += s.hits;
        e.events += s.events;
        e.baseline_hits += s.baseline_hits;
        e.baseline_windows += s.baseline_windows;
        for n in &s.names {
            if !e.names.contains(n) {
                e.names.push(n.clone());
            }
        }
        for p in &s.phones {
            if !e.phones.contains(p) {
                e.phones.push(p.clone());
            }
        }
    }
    pooled
        .into_iter()
        .map(|(k, mut s)| {
            let (m, n) = messaging[&k];
            // Messaging in most measurements where the endpoint was seen.
            s.role = if 2 * m > n {
                Role::Messaging
            } else if s.role == Role::Messaging {
                Role::Auxiliary
            } else {
                s.role
            };
            s.score = if n > 0 {
                f64::from(m) / f64::from(n)
            } else {
                0.0
            };
            s.evidence = vec![format!("messaging in {m}/{n} measurements")];
            s
        })
        .collect()
}
