//! Precision and recall of server identification over a grid of
//! conditions, on campaigns written by the independent generator
//! `bench/measgen` (shared by `tests/correlation_grid.rs` and
//! `examples/correlation_grid.rs`).
#![allow(dead_code)]

use matador::analysis::correlate::{CorrelateConfig, MeasurementAnalysis, Role, replay_campaign};
use matador::scenario::apps::AppProfiles;
use measgen::model::Conditions;
use measgen::{Dialect, Spec, Truth, write_campaign};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Scores of one cell.
#[derive(Debug, Default, Clone, Copy)]
pub struct Score {
    /// Messaging servers found that carried messages.
    pub tp: usize,
    /// Servers called messaging that did not.
    pub fp: usize,
    /// Servers that carried messages and were missed.
    pub fn_: usize,
    /// Message measurements.
    pub measurements: usize,
    /// Messages.
    pub messages: u64,
    /// Seconds of post-processing (replay of the campaign).
    pub secs: f64,
}

impl Score {
    /// tp / (tp + fp); 1 when nothing was called messaging.
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    /// tp / (tp + fn).
    pub fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
}

/// Compares analyses with the generator's truth; prints each mistake when `verbose`.
pub fn score(
    truth: &[Truth],
    analyses: &BTreeMap<String, MeasurementAnalysis>,
    verbose: bool,
) -> Score {
    let mut s = Score::default();
    for t in truth {
        s.measurements += 1;
        let Some(a) = analyses.get(&t.id) else {
            s.fn_ += t.messaging.len();
            continue;
        };
        let got: Vec<_> = a
            .servers
            .iter()
            .filter(|x| x.role == Role::Messaging)
            .collect();
        for h in &t.messaging {
            if got
                .iter()
                .any(|g| g.ip == h.ip && g.port == h.port && g.proto == h.carrier.proto())
            {
                s.tp += 1;
            } else {
                s.fn_ += 1;
                if verbose {
                    let seen = a.servers.iter().find(|g| g.ip == h.ip && g.port == h.port);
                    eprintln!(
                        "missed in {} ({}): {}:{} {seen:?}",
                        t.id, t.app, h.ip, h.port
                    );
                }
            }
        }
        for g in got {
            if !t.messaging.iter().any(|h| g.ip == h.ip && g.port == h.port) {
                s.fp += 1;
                if verbose {
                    eprintln!("false positive in {} ({}): {g:?}", t.id, t.app);
                }
            }
        }
    }
    s
}

/// Generates a campaign under `cond` in `dir`, replays it and scores it.
pub fn run_cell(
    dir: &Path,
    cell: &Cell,
    measurements: usize,
    seed: u64,
    cfg: &CorrelateConfig,
    verbose: bool,
) -> (Score, Score) {
    let spec = Spec {
        cond: cell.cond,
        measurements,
        messages: cell.messages,
        seed,
        dialect: if seed.is_multiple_of(2) {
            Dialect::Record
        } else {
            Dialect::Open
        },
        ..Spec::default()
    };
    let c = write_campaign(dir, &spec).expect("measgen writes the campaign");
    // Without attribution no app profile is loaded: nothing names any
    // endpoint (the generator writes no DNS; with the shipped profiles its
    // servers inside the apps' prefixes on chat ports are attributed).
    let profiles = Arc::new(if cell.attribution {
        AppProfiles::builtin()
    } else {
        AppProfiles::default()
    });
    let t = std::time::Instant::now();
    let out = replay_campaign(&c.dir, &profiles, cfg).expect("replay");
    let secs = t.elapsed().as_secs_f64();
    let by_id: BTreeMap<String, MeasurementAnalysis> = out
        .into_iter()
        .map(|(_, a)| (a.measurement.clone(), a))
        .collect();
    let mut s = score(&c.truth, &by_id, verbose);
    s.messages = c.messages;
    s.secs = secs;
    let alone = alone(&c.dir, &c.truth, &profiles, cfg, verbose);
    (s, alone)
}

/// Scores each measurement classified on its own evidence (no campaign
/// pool, as `matador replay` of a lone folder does); with `verbose`, prints
/// the strongest decoys and weakest true servers by pooled odds.
fn alone(
    dir: &Path,
    truth: &[Truth],
    profiles: &Arc<AppProfiles>,
    cfg: &CorrelateConfig,
    verbose: bool,
) -> Score {
    use matador::analysis::correlate::{finish, measurement_dirs, prepare, scan_baselines};
    let cache = scan_baselines(dir, profiles, cfg).unwrap();
    let prepared: Vec<_> = measurement_dirs(dir)
        .unwrap()
        .iter()
        .map(|d| prepare(d, Some(dir), profiles, cfg, Some(&cache)).unwrap())
        .collect();
    if verbose {
        margins(&prepared, truth);
    }
    let by_id: BTreeMap<String, MeasurementAnalysis> = prepared
        .into_iter()
        .map(|p| (p.id.clone(), finish(p, None, cfg)))
        .collect();
    score(truth, &by_id, verbose)
}

/// Prints the strongest non-messaging endpoints (pooled odds) and the
/// weakest true ones: how far the decision is from its threshold.
fn margins(prepared: &[matador::analysis::correlate::Prepared], truth: &[Truth]) {
    use matador::analysis::correlate::{Pool, pool_add};
    let mut pool = Pool::new();
    for p in prepared {
        pool_add(&mut pool, &p.app, &p.tallied);
    }
    let mut rows = Vec::new();
    for p in prepared {
        let Some(t) = truth.iter().find(|t| t.id == p.id) else {
            continue;
        };
        for x in &p.tallied {
            let real = t
                .messaging
                .iter()
                .any(|h| h.ip == x.ep.ip && h.port == x.ep.port);
            let pooled = pool[&(p.app.clone(), x.ep)];
            rows.push((
                real,
                pooled.odds(),
                x.counts.odds(),
                p.id.clone(),
                x.ep,
                x.counts,
                pooled,
            ));
        }
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    for r in rows.iter().filter(|r| !r.0).take(3) {
        eprintln!(
            "strongest decoy: pooled {:.1} here {:.1} {} {:?} {:?}",
            r.1, r.2, r.3, r.4, r.5
        );
    }
    for r in rows.iter().filter(|r| r.0).rev().take(2) {
        eprintln!(
            "weakest truth: pooled {:.1} here {:.1} {} {:?} {:?}",
            r.1, r.2, r.3, r.4, r.5
        );
    }
}

/// A cell of the grid.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// Conditions.
    pub cond: Conditions,
    /// Inside the realistic range of the issue (lag ≤ 3 s, clock ≤ 0.3 s, noise ≤ 30/min).
    pub realistic: bool,
    /// Messages per measurement (uniform, inclusive).
    pub messages: (u32, u32),
    /// The shipped app profiles attribute endpoints (else none is named).
    pub attribution: bool,
}

impl Cell {
    /// The same cell with `messages` per measurement.
    pub fn with_messages(mut self, lo: u32, hi: u32) -> Cell {
        self.messages = (lo, hi);
        self
    }

    /// The same cell with attribution on or off.
    pub fn with_attribution(mut self, on: bool) -> Cell {
        self.attribution = on;
        self
    }
}

/// The grid: receive lag × clock error × noise × baselines, with the
/// uncertainty written on every event (and, as an extra axis, on none).
pub fn grid(
    lags: &[f64],
    clocks: &[f64],
    noises: &[f64],
    baselines: &[bool],
    unc: &[f64],
) -> Vec<Cell> {
    let mut v = Vec::new();
    for &lag_max in lags {
        for &clock_error in clocks {
            for &noise_per_min in noises {
                for &b in baselines {
                    for &u in unc {
                        v.push(Cell {
                            cond: Conditions {
                                lag_max,
                                clock_error,
                                noise_per_min,
                                uncertainty_share: u,
                                baselines: b,
                            },
                            realistic: lag_max <= 3.0
                                && clock_error <= 0.3
                                && noise_per_min <= 30.0,
                            messages: (2, 20),
                            attribution: true,
                        });
                    }
                }
            }
        }
    }
    v
}

/// Small campaigns: 2 and 2–3 messages per measurement at the realistic
/// corner (lag 3 s, clock 0.3 s, noise 30/min), no baselines, with the
/// shipped app profiles' attribution and without any.
pub fn small_cells() -> Vec<Cell> {
    let mut v = Vec::new();
    for (lo, hi) in [(2, 2), (2, 3)] {
        for attr in [true, false] {
            let c = grid(&[3.0], &[0.3], &[30.0], &[false], &[1.0])[0];
            v.push(c.with_messages(lo, hi).with_attribution(attr));
        }
    }
    v
}

/// A table row.
pub fn row(c: &Cell, s: &Score, alone: &Score) -> String {
    format!(
        "| {:.1} | {:.1} | {:.0} | {} | {:.0}% | {} | {}–{} | {} | {} | {:.3} | {:.3} | {}/{}/{} | {:.3} | {:.3} | {}/{}/{} |",
        c.cond.lag_max,
        c.cond.clock_error,
        c.cond.noise_per_min,
        if c.cond.baselines { "yes" } else { "no" },
        c.cond.uncertainty_share * 100.0,
        if c.attribution { "yes" } else { "no" },
        c.messages.0,
        c.messages.1,
        s.measurements,
        s.messages,
        s.precision(),
        s.recall(),
        s.tp,
        s.fp,
        s.fn_,
        alone.precision(),
        alone.recall(),
        alone.tp,
        alone.fp,
        alone.fn_
    )
}

/// The table header.
pub const HEADER: &str = "| lag ≤ s | clock ± s | noise /min | baselines | uncertainty written | attribution | messages per measurement | measurements | messages | precision | recall | tp/fp/fn | precision alone | recall alone | tp/fp/fn alone |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
