//! The measurement state machine.
//!
//! Each measurement runs [`Step`]s in order — prepare phones, connect the
//! tunnels, check connectivity and DNS, start captures, exchange messages
//! (or record a baseline), stop and fetch captures, analyse, then the
//! optional path and probe steps — and always tears down (apps stopped,
//! captures stopped, routes removed), also after a failure or Ctrl-C. Every
//! step start/end/failure is journalled (fsynced) before the next begins.
//!
//! Failures: a step failing because of a node marks that node failed for the
//! rest of the run and the next attempt uses the country's next node; a
//! failed measurement is retried `retries` times and then recorded as
//! failed with its reason. A measurement in the index is never run again, so
//! `--resume` completes each one exactly once; the interrupted one is
//! cleaned and redone.

use super::CampaignError;
use super::env::{
    CapturePoint, EnvError, PhoneControl, PhoneFacts, Stamp, StepHook, StepReport, Vantage,
};
use super::plan::{Kind, Plan, PlannedMeasurement, Side, human_secs};
use super::record::{IndexEntry, Record, Status, StepState, now};
use super::schedule::{NodeSlots, first_fitting, slot_nodes};
use crate::analysis::correlate::{
    BaselineCache, CorrelateConfig, LivePool, analyze_measurement_cached, replay_campaign,
    write_analysis,
};
use crate::capture::Timestamp;
use crate::device::events::{DeviceEvent, EventKind as K, text_sha256};
use crate::scenario::apps::AppProfiles;
use crate::scenario::{CapturePointKind, StepsSpec};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One step of a measurement. New steps are added here and in
/// [`steps_for`]; [`Step::Paths`] and [`Step::Probes`] call a [`StepHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Wake phones, check the app, mock location, firewall, clock offset.
    PreparePhones,
    /// Tunnels and routes to the nodes.
    Connect,
    /// Connectivity and DNS through the nodes.
    CheckConnectivity,
    /// Router and node captures.
    StartCaptures,
    /// Open the chats and exchange the messages.
    Exchange,
    /// Open the apps and record background traffic.
    Baseline,
    /// Stop the captures and fetch the node captures.
    StopCaptures,
    /// Analyse the measurement's files (`analysis.json`).
    Analyse,
    /// Path measurements (hook).
    Paths,
    /// Active probes (hook).
    Probes,
}

impl Step {
    /// The name used in the journal.
    pub fn name(&self) -> &'static str {
        match self {
            Step::PreparePhones => "prepare-phones",
            Step::Connect => "connect",
            Step::CheckConnectivity => "check-connectivity",
            Step::StartCaptures => "start-captures",
            Step::Exchange => "exchange",
            Step::Baseline => "baseline",
            Step::StopCaptures => "stop-captures",
            Step::Analyse => "analyse",
            Step::Paths => "paths",
            Step::Probes => "probes",
        }
    }
}

/// The steps of a measurement of this kind.
pub fn steps_for(kind: Kind, extra: &StepsSpec) -> Vec<Step> {
    let mut v = vec![
        Step::PreparePhones,
        Step::Connect,
        Step::CheckConnectivity,
        Step::StartCaptures,
        if kind == Kind::Baseline {
            Step::Baseline
        } else {
            Step::Exchange
        },
        Step::StopCaptures,
        Step::Analyse,
    ];
    if kind == Kind::Message {
        if extra.paths {
            v.push(Step::Paths);
        }
        if extra.probes {
            v.push(Step::Probes);
        }
    }
    v
}

/// The optional steps the scenario turned off for a measurement of this
/// kind (journalled as `off`, so the record says they were not wanted).
pub fn off_steps(kind: Kind, extra: &StepsSpec) -> Vec<Step> {
    if kind != Kind::Message {
        return Vec::new();
    }
    [(Step::Paths, extra.paths), (Step::Probes, extra.probes)]
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(s, _)| s)
        .collect()
}

/// The world the runner drives.
#[derive(Clone)]
pub struct Env {
    /// Phones.
    pub phones: Arc<dyn PhoneControl>,
    /// Tunnels.
    pub vantage: Arc<dyn Vantage>,
    /// Captures.
    pub capture: Arc<dyn CapturePoint>,
    /// Path step (required when the scenario turns `steps.paths` on).
    pub paths: Option<Arc<dyn StepHook>>,
    /// Probe step (required when the scenario turns `steps.probes` on).
    pub probes: Option<Arc<dyn StepHook>>,
}

impl Env {
    /// Refuses a scenario step this environment cannot run: a campaign
    /// never counts a measurement complete without a step it asked for.
    pub fn check_steps(&self, steps: &StepsSpec) -> Result<(), CampaignError> {
        for (step, on, hook) in [
            (Step::Paths, steps.paths, &self.paths),
            (Step::Probes, steps.probes, &self.probes),
        ] {
            if on && hook.is_none() {
                return Err(CampaignError::StepUnavailable {
                    step: step.name().into(),
                    reason: "this environment has no engine for it".into(),
                });
            }
        }
        Ok(())
    }
}

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Retries per measurement.
    pub retries: u32,
    /// Bound of one step call.
    pub step_timeout: Duration,
    /// Bound of waiting for a message.
    pub receive_timeout: Duration,
    /// Bound of a whole measurement attempt.
    pub measurement_timeout: Duration,
    /// Pause between messages.
    pub interval: Duration,
    /// Capture points.
    pub points: Vec<CapturePointKind>,
    /// Optional steps.
    pub steps: StepsSpec,
    /// Screen recordings of the phones, with their longest duration.
    pub screenrecord: Option<Duration>,
    /// Set (e.g. by Ctrl-C) to stop cleanly after tearing down.
    pub stop: Arc<AtomicBool>,
    /// App profiles for the analysis.
    pub profiles: Arc<AppProfiles>,
    /// Progress bar (hidden when not on a terminal).
    pub progress: Option<indicatif::ProgressBar>,
    /// Address ranges the operator declares its own (the scenario's
    /// `exempt_networks`; `--lab` adds the virtual lab's): never bogons.
    pub exempt: Vec<ipnetwork::IpNetwork>,
    /// Measurements a node carries at once (the scenario's `node_capacity`).
    pub node_capacity: u32,
}

impl RunOptions {
    /// Options from a scenario.
    pub fn from_scenario(sc: &crate::scenario::Scenario, profiles: AppProfiles) -> RunOptions {
        RunOptions {
            retries: sc.retries,
            step_timeout: sc.timeouts.step.0,
            receive_timeout: sc.timeouts.receive.0,
            measurement_timeout: sc.timeouts.measurement.0,
            interval: sc.messages.interval.0,
            points: sc.capture.points.clone(),
            steps: sc.steps.clone(),
            screenrecord: sc.capture.screenrecord.then(|| {
                sc.capture
                    .screenrecord_limit
                    .0
                    .clamp(Duration::from_secs(1), Duration::from_secs(180))
            }),
            stop: Arc::new(AtomicBool::new(false)),
            profiles: Arc::new(profiles),
            progress: None,
            exempt: sc.exempt_networks(),
            node_capacity: sc.node_capacity,
        }
    }
}

/// How a campaign run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Measurements complete (including earlier runs of a resumed campaign).
    pub complete: usize,
    /// Failed after retries.
    pub failed: usize,
    /// Skipped (no node left).
    pub skipped: usize,
    /// Not run yet (interrupted).
    pub remaining: usize,
    /// Stopped by request before the end.
    pub interrupted: bool,
    /// What each phone pair did in this run, with several pairs (empty
    /// with one).
    pub pairs: Vec<PairSummary>,
    /// Wall time of this run's measurements (from the first taken until
    /// every pair stopped; without the campaign-wide analysis).
    pub measuring: Duration,
}

/// What one phone pair did in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairSummary {
    /// 1-based pair number (the index's `pair`).
    pub pair: u32,
    /// Its phones `[A, B]`.
    pub phones: [String; 2],
    /// Measurements it completed.
    pub complete: usize,
    /// Measurements it recorded failed.
    pub failed: usize,
    /// Measurements it recorded skipped (no node left).
    pub skipped: usize,
    /// Wall time it held a measurement (retries and waits for a
    /// failover node included; an interrupted measurement too).
    pub busy: Duration,
}

impl Summary {
    /// One line per phone pair (none with one pair), e.g. `pair 2
    /// (lab-c/lab-d): 6 done, 1 failed, busy 2m 05s (93 % of 2m 14s)`.
    pub fn pair_lines(&self) -> Vec<String> {
        let total = self.measuring.as_secs_f64();
        self.pairs
            .iter()
            .map(|p| {
                let busy = p.busy.as_secs_f64();
                let share = if total > 0.0 {
                    format!(" ({:.0} % of {})", 100.0 * busy / total, human_secs(total))
                } else {
                    String::new()
                };
                let skipped = if p.skipped > 0 {
                    format!(", {} skipped", p.skipped)
                } else {
                    String::new()
                };
                format!(
                    "pair {} ({}/{}): {} done, {} failed{skipped}, busy {}{share}",
                    p.pair,
                    p.phones[0],
                    p.phones[1],
                    p.complete,
                    p.failed,
                    human_secs(busy),
                )
            })
            .collect()
    }
}

/// Why an attempt ended early.
#[derive(Debug)]
struct Failure {
    step: Step,
    err: EnvError,
    /// The node to blame, if any.
    node: Option<String>,
    interrupted: bool,
}

/// A journal line that could not be written fails the step it was about
/// (a full disk is then handled like any other: the attempt's files go and
/// the campaign stops).
fn journal_failed(step: Step) -> impl FnOnce(CampaignError) -> Failure {
    move |e| Failure::at(step, EnvError::new(format!("journal: {e}")))
}

impl Failure {
    fn at(step: Step, err: EnvError) -> Self {
        Failure {
            step,
            err,
            node: None,
            interrupted: false,
        }
    }
}

/// Runs `f` on a worker thread, bounded by `timeout`. A call that does not
/// return in time fails the step (its thread is left to finish on its own;
/// device and net calls have their own bounds underneath).
fn bounded<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, EnvError> + Send + 'static,
) -> Result<T, EnvError> {
    run_bounded(what, timeout, f).unwrap_or_else(Err)
}

/// [`bounded`] telling a passed deadline (the outer `Err`) from the call's
/// own answer (`Ok`).
fn run_bounded<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, EnvError> + Send + 'static,
) -> Result<Result<T, EnvError>, EnvError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("campaign-step".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err(EnvError::new("panicked")));
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return Ok(Err(EnvError::new(format!(
            "{what}: cannot start a thread: {e}"
        ))));
    }
    match rx.recv_timeout(timeout) {
        Ok(r) => Ok(r.map_err(|e| EnvError {
            message: format!("{what}: {}", e.message),
            node_failed: e.node_failed,
        })),
        Err(_) => Err(EnvError::new(format!(
            "{what}: no answer within {timeout:?}"
        ))),
    }
}

/// A phone action under its step's deadline. When the deadline passes the
/// action is cancelled on `phone` ([`PhoneControl::cancel`]: streams
/// closed, calls failed at once, app force-stopped) and the failure is
/// returned only once it has ended, so a retry never runs beside it (the
/// thread [`bounded`] leaves behind could otherwise go on typing into the
/// phone). The cancel is bounded by the step's timeout too: a failed step
/// takes at most twice its timeout, whatever state the phones are in.
fn bounded_phone<T: Send + 'static>(
    phones: &Arc<dyn PhoneControl>,
    phone: &str,
    what: &str,
    timeout: Duration,
    f: impl FnOnce() -> Result<T, EnvError> + Send + 'static,
) -> Result<T, EnvError> {
    let late = match run_bounded(what, timeout, f) {
        Ok(r) => return r,
        Err(late) => late,
    };
    let (p, ph) = (phones.clone(), phone.to_string());
    let cancelled = bounded(&format!("{phone}: cancel"), timeout, move || {
        p.cancel(&ph, timeout)
    });
    Err(EnvError::new(match cancelled {
        Ok(None) => format!("{}; the action was cancelled on the phone", late.message),
        Ok(Some(gone)) => format!("{}; the action was cancelled: {gone}", late.message),
        Err(e) => format!("{}; cancelling it failed: {}", late.message, e.message),
    }))
}

/// The campaign runner.
pub struct Runner {
    /// The campaign folder.
    dir: PathBuf,
    record: Mutex<Record>,
    plan: Plan,
    env: Env,
    opts: RunOptions,
    failed_nodes: Mutex<BTreeSet<String>>,
    /// Phones whose screen is being recorded (a phone is in one
    /// measurement at a time, so its id names the recording).
    recording: Mutex<Vec<String>>,
    /// The campaign's baseline runs, each decoded once for all analyses.
    baselines: BaselineCache,
    /// The evidence of the measurements analysed so far (rebuilt from the
    /// folder on `--resume`), pooled into each live analysis.
    live: LivePool,
    /// The phone pairs `[A, B]`, each run by its own worker.
    pairs: Vec<[String; 2]>,
    /// What each pair is doing (the progress message).
    status: Mutex<Vec<String>>,
    /// The measurements not yet taken and the nodes' slots in use.
    sched: Mutex<Sched>,
    /// Signalled when a slot is freed or the run halts.
    freed: Condvar,
    /// What each pair did in this run (the summary's `pairs`).
    tally: Mutex<Vec<PairSummary>>,
}

/// The shared queue of the pair workers.
#[derive(Debug, Default)]
struct Sched {
    /// Measurements not yet taken, in plan order.
    queue: Vec<PlannedMeasurement>,
    /// Measurements each node carries now.
    slots: NodeSlots,
    /// No further measurement is taken (interrupted or failed).
    halt: bool,
}

/// What a pair worker gets from the queue.
enum Take {
    /// The next measurement it may run, with the node slots held for it.
    Next(Box<PlannedMeasurement>, Vec<String>),
    /// Nothing left.
    Done,
    /// Stopped or halted with measurements left.
    Stopped,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("dir", &self.dir)
            .field("measurements", &self.plan.measurements.len())
            .field("pairs", &self.pairs.len())
            .finish()
    }
}

/// A lock whose holder panicked still guards consistent data here (each
/// critical section is one update): go on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runner {
    /// The correlation's settings: the virtual lab's address space is
    /// passed explicitly as an exemption for lab campaigns.
    fn correlate_config(&self) -> CorrelateConfig {
        CorrelateConfig {
            exempt: {
                let mut v = self.opts.exempt.clone();
                v.extend(crate::net::addrspace::recorded_exemption(&self.dir));
                v
            },
            ..CorrelateConfig::default()
        }
    }

    /// A runner over an open record and its plan (its phone pairs: the
    /// plan's).
    pub fn new(record: Record, plan: Plan, env: Env, opts: RunOptions) -> Runner {
        let pairs = plan.phone_pairs();
        Runner {
            dir: record.dir.clone(),
            record: Mutex::new(record),
            plan,
            env,
            opts,
            failed_nodes: Mutex::new(BTreeSet::new()),
            recording: Mutex::new(Vec::new()),
            baselines: BaselineCache::default(),
            live: LivePool::default(),
            status: Mutex::new(vec![String::new(); pairs.len()]),
            tally: Mutex::new(
                (pairs.iter().enumerate())
                    .map(|(i, p)| PairSummary {
                        pair: i as u32 + 1,
                        phones: p.clone(),
                        ..PairSummary::default()
                    })
                    .collect(),
            ),
            pairs,
            sched: Mutex::new(Sched::default()),
            freed: Condvar::new(),
        }
    }

    /// The campaign folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stopped(&self) -> bool {
        self.opts.stop.load(Ordering::SeqCst)
    }

    fn rec(&self) -> MutexGuard<'_, Record> {
        lock(&self.record)
    }

    /// The pair (1-based) carrying `m`, in a campaign of several pairs.
    fn pair_of(&self, m: &PlannedMeasurement) -> Option<u32> {
        if self.pairs.len() < 2 {
            return None;
        }
        self.pairs
            .iter()
            .position(|[a, _]| *a == m.sender)
            .map(|i| i as u32 + 1)
    }

    /// Journals a line of the campaign (`None`) or of a measurement (its
    /// pair named when there are several).
    fn journal(
        &self,
        m: Option<&PlannedMeasurement>,
        step: &str,
        state: StepState,
        detail: Option<String>,
    ) -> Result<(), CampaignError> {
        self.journal_nodes(m, step, state, detail, Vec::new(), None)
    }

    /// [`Runner::journal`] for a step working on nodes.
    fn journal_nodes(
        &self,
        m: Option<&PlannedMeasurement>,
        step: &str,
        state: StepState,
        detail: Option<String>,
        nodes: Vec<String>,
        via: Option<String>,
    ) -> Result<(), CampaignError> {
        let pair = m.and_then(|m| self.pair_of(m));
        self.rec().journal_pair(
            m.map(|m| m.id.as_str()),
            pair,
            step,
            state,
            detail,
            nodes,
            via,
        )
    }

    /// Shows what a pair does on the progress bar (every pair's state when
    /// there are several).
    fn progress(&self, m: &PlannedMeasurement, what: String) {
        let Some(pb) = &self.opts.progress else {
            return;
        };
        match self.pair_of(m) {
            None => pb.set_message(what),
            Some(p) => {
                let mut st = lock(&self.status);
                if let Some(s) = st.get_mut(p as usize - 1) {
                    *s = format!("p{p} {what}");
                }
                pb.set_message(st.join(" | "));
            }
        }
    }

    /// Runs every measurement not yet in the index — each phone pair takes
    /// the next one its nodes have room for — then the campaign-wide
    /// analysis (the same as `matador replay` on the folder).
    pub fn run(&mut self) -> Result<Summary, CampaignError> {
        self.env.check_steps(&self.opts.steps)?;
        let total = self.plan.measurements.len();
        let resumed = self.rec().index.measurements.len();
        self.rec().keep_app_profiles(&self.opts.profiles)?;
        self.journal(
            None,
            if resumed > 0 { "resume" } else { "campaign" },
            StepState::Started,
            Some(format!(
                "{resumed} of {total} measurements already recorded{}",
                match self.pairs.len() {
                    1 => String::new(),
                    n => format!(
                        "; {n} phone pairs, {} measurement(s) per node at once",
                        self.opts.node_capacity
                    ),
                }
            )),
        )?;
        if let Some(pb) = &self.opts.progress {
            pb.set_length(total as u64);
            pb.set_position(resumed as u64);
        }
        {
            let rec = self.rec();
            let queue = (self.plan.measurements.iter())
                .filter(|m| !rec.is_finished(&m.id))
                .cloned()
                .collect();
            *lock(&self.sched) = Sched {
                queue,
                slots: NodeSlots::new(self.opts.node_capacity),
                halt: false,
            };
        }
        let this = &*self;
        let measuring = Instant::now();
        let results: Vec<Result<bool, CampaignError>> = if this.pairs.len() == 1 {
            vec![this.worker(0)]
        } else {
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..this.pairs.len())
                    .map(|i| {
                        std::thread::Builder::new()
                            .name(format!("pair-{}", i + 1))
                            .spawn_scoped(s, move || this.worker(i))
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| match w {
                        Ok(h) => h.join().unwrap_or_else(|_| {
                            Err(CampaignError::Setup(
                                "a phone pair's worker panicked".into(),
                            ))
                        }),
                        Err(e) => Err(CampaignError::Setup(format!(
                            "cannot start a phone pair's worker: {e}"
                        ))),
                    })
                    .collect()
            })
        };
        let measuring = measuring.elapsed();
        let mut interrupted = false;
        for r in results {
            interrupted |= r?;
        }
        if !interrupted {
            self.journal(None, "campaign-analysis", StepState::Started, None)?;
            let r = replay_campaign(&self.dir, &self.opts.profiles, &self.correlate_config());
            let (state, detail) = match &r {
                Ok(v) => (StepState::Done, format!("{} measurements", v.len())),
                Err(e) => (StepState::Failed, e.to_string()),
            };
            // The campaign-wide analysis rewrote the servers.
            self.rec().sync_sqlite()?;
            self.journal(None, "campaign-analysis", state, Some(detail))?;
        }
        let summary = {
            let rec = self.rec();
            let count = |s: Status| {
                rec.index
                    .measurements
                    .iter()
                    .filter(|e| e.status == s)
                    .count()
            };
            Summary {
                complete: count(Status::Complete),
                failed: count(Status::Failed),
                skipped: count(Status::Skipped),
                remaining: total - rec.index.measurements.len(),
                interrupted,
                pairs: match self.pairs.len() {
                    1 => Vec::new(),
                    _ => lock(&self.tally).clone(),
                },
                measuring,
            }
        };
        self.journal(
            None,
            "campaign",
            if interrupted {
                StepState::Skipped
            } else {
                StepState::Done
            },
            Some(format!(
                "complete {}, failed {}, skipped {}, remaining {}",
                summary.complete, summary.failed, summary.skipped, summary.remaining
            )),
        )?;
        Ok(summary)
    }

    /// One phone pair's loop: takes measurements from the shared queue and
    /// runs them on its phones until none is left. `Ok(true)`: stopped with
    /// measurements left. An error halts the other pairs after their
    /// current measurement.
    fn worker(&self, pair: usize) -> Result<bool, CampaignError> {
        let halt = || {
            lock(&self.sched).halt = true;
            self.freed.notify_all();
        };
        loop {
            let (planned, mut held) = match self.take() {
                Take::Next(m, held) => (*m, held),
                Take::Done => return Ok(false),
                Take::Stopped => return Ok(true),
            };
            let m = self.on_pair(&planned, pair);
            let t = Instant::now();
            let r = self.measure(&m, &mut held);
            self.release(&mut held);
            if let Some(p) = lock(&self.tally).get_mut(pair) {
                p.busy += t.elapsed();
                match &r {
                    Ok(Some(e)) if e.status == Status::Complete => p.complete += 1,
                    Ok(Some(e)) if e.status == Status::Failed => p.failed += 1,
                    Ok(Some(_)) => p.skipped += 1,
                    _ => {}
                }
            }
            match r {
                Ok(Some(mut entry)) => {
                    let status = entry.status;
                    entry.pair = self.pair_of(&m);
                    let finished = self.rec().finish(entry);
                    if let Err(e) = finished {
                        halt();
                        return Err(e);
                    }
                    if let Some(pb) = &self.opts.progress {
                        pb.inc(1);
                        let failed = (self.rec().index.measurements.iter())
                            .filter(|e| e.status != Status::Complete)
                            .count();
                        self.progress(&m, format!("{} {:?}; {failed} failed", m.id, status));
                    }
                }
                Ok(None) => {
                    halt();
                    return Ok(true);
                }
                Err(e) => {
                    halt();
                    return Err(e);
                }
            }
        }
    }

    /// The planned measurement as pair `pair` carries it: its phones in
    /// place of the plan's phone A and B.
    fn on_pair(&self, m: &PlannedMeasurement, pair: usize) -> PlannedMeasurement {
        let mut m = m.clone();
        if let Some([a, b]) = self.pairs.get(pair) {
            m.sender = a.clone();
            m.receiver = b.clone();
        }
        m
    }

    /// The first queued measurement whose first working nodes have a free
    /// slot, with those slots taken (waits while every one waits for a
    /// node). A measurement with no working node left is taken at once (it
    /// is recorded skipped).
    fn take(&self) -> Take {
        let mut sched = lock(&self.sched);
        loop {
            if sched.halt || self.stopped() {
                return if sched.queue.is_empty() {
                    Take::Done
                } else {
                    Take::Stopped
                };
            }
            if sched.queue.is_empty() {
                return Take::Done;
            }
            // The rule the duration estimate replays (schedule.rs).
            let pick = first_fitting(&sched.queue, &sched.slots, |m| self.wanted_nodes(m));
            if let Some(i) = pick {
                let m = sched.queue.remove(i);
                let want = self.wanted_nodes(&m);
                sched.slots.take(&want);
                return Take::Next(Box::new(m), want);
            }
            // Woken when a slot is freed; the timeout notices a stop.
            sched = self
                .freed
                .wait_timeout(sched, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The nodes an attempt of `m` would use now (distinct; empty when a
    /// side has no working node left).
    fn wanted_nodes(&self, m: &PlannedMeasurement) -> Vec<String> {
        slot_nodes(
            self.node_for(&m.sender_nodes).as_deref(),
            self.node_for(&m.receiver_nodes).as_deref(),
        )
    }

    /// Holds slots on `want` instead of `held` (a failover moved the
    /// measurement); waits for room. False when stopped meanwhile.
    fn hold(&self, held: &mut Vec<String>, want: Vec<String>) -> bool {
        if *held == want {
            return true;
        }
        self.release(held);
        let mut sched = lock(&self.sched);
        loop {
            if self.stopped() {
                return false;
            }
            if sched.slots.has_room(&want) {
                sched.slots.take(&want);
                *held = want;
                return true;
            }
            sched = self
                .freed
                .wait_timeout(sched, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Frees the node slots held.
    fn release(&self, held: &mut Vec<String>) {
        if held.is_empty() {
            return;
        }
        lock(&self.sched).slots.free(held);
        held.clear();
        self.freed.notify_all();
    }

    /// The first node of a country not marked failed.
    fn node_for(&self, nodes: &[String]) -> Option<String> {
        let failed = lock(&self.failed_nodes);
        nodes.iter().find(|n| !failed.contains(*n)).cloned()
    }

    /// Runs one measurement with its retries; `None` when interrupted.
    /// `held`: the node slots taken for it, moved along on a failover.
    fn measure(
        &self,
        m: &PlannedMeasurement,
        held: &mut Vec<String>,
    ) -> Result<Option<IndexEntry>, CampaignError> {
        let dir = self.rec().measurement_dir(&m.id);
        let mut entry = IndexEntry::new(m);
        let mut last_error = None;
        for attempt in 1..=self.opts.retries + 1 {
            // A previous (crashed or failed) attempt leaves files: start clean.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| CampaignError::Io {
                    file: dir.clone(),
                    source: e,
                })?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| CampaignError::Io {
                file: dir.clone(),
                source: e,
            })?;
            let (Some(na), Some(nb)) = (
                self.node_for(&m.sender_nodes),
                self.node_for(&m.receiver_nodes),
            ) else {
                entry.status = Status::Skipped;
                entry.error = Some(format!(
                    "no working node left for {} or {} (failed: {})",
                    m.sender_country,
                    m.receiver_country,
                    lock(&self.failed_nodes)
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                self.journal(
                    Some(m),
                    "measurement",
                    StepState::Skipped,
                    entry.error.clone(),
                )?;
                entry.files = list_files(&dir);
                return Ok(Some(entry));
            };
            // Another pair may have failed a node over since this one was
            // taken: the slots follow the nodes this attempt uses.
            if !self.hold(held, slot_nodes(Some(&na), Some(&nb))) {
                return Ok(None);
            }
            entry.sender_node = na.clone();
            entry.receiver_node = nb.clone();
            entry.attempts = attempt;
            entry.started = Timestamp::from_f64(now());
            self.journal(
                Some(m),
                "measurement",
                StepState::Started,
                Some(format!("attempt {attempt}, nodes {na}/{nb}")),
            )?;
            let result = self.attempt(m, &dir, &na, &nb);
            let torn_down = self.teardown(m, &na, &nb);
            if let Err(f) = &result
                && is_disk_full(&f.err.message)
            {
                // Nothing more can be recorded: this attempt's files go (it
                // is redone on --resume, which frees the space it took), the
                // journal says why if it still can, and the campaign stops.
                let _ = std::fs::remove_dir_all(&dir);
                let message = format!("{} {}: {}", m.id, f.step.name(), f.err.message);
                let _ = self.journal(
                    Some(m),
                    "measurement",
                    StepState::Failed,
                    Some(format!("attempt {attempt}: disk full: {message}")),
                );
                return Err(CampaignError::DiskFull {
                    dir: self.dir.clone(),
                    message,
                });
            }
            torn_down?;
            entry.ended = Timestamp::from_f64(now());
            match result {
                Ok(()) => {
                    entry.status = Status::Complete;
                    entry.error = None;
                    entry.files = list_files(&dir);
                    self.journal(Some(m), "measurement", StepState::Done, None)?;
                    return Ok(Some(entry));
                }
                Err(f) if f.interrupted => {
                    self.journal(
                        Some(m),
                        "measurement",
                        StepState::Skipped,
                        Some("interrupted: will be redone on --resume".into()),
                    )?;
                    return Ok(None);
                }
                Err(f) => {
                    let msg = format!("{}: {}", f.step.name(), f.err.message);
                    if let Some(n) = &f.node {
                        lock(&self.failed_nodes).insert(n.clone());
                        self.journal(
                            Some(m),
                            "node-failover",
                            StepState::Done,
                            Some(format!("node {n} marked failed: {}", f.err.message)),
                        )?;
                    }
                    for ph in [&m.sender, &m.receiver] {
                        // Under the step's deadline and cancelled past it, as
                        // a phone step: a dump of a phone that is gone must
                        // not hold the failure until the call's own timeout.
                        // Best effort: the attempt's failure is recorded below.
                        let (p, x, d) = (self.env.phones.clone(), ph.clone(), dir.clone());
                        let _ = bounded_phone(
                            &self.env.phones,
                            ph,
                            &format!("{ph}: diagnostics"),
                            self.opts.step_timeout,
                            move || p.diagnostics(&x, &d),
                        );
                    }
                    self.journal(
                        Some(m),
                        "measurement",
                        StepState::Failed,
                        Some(format!("attempt {attempt}: {msg}")),
                    )?;
                    last_error = Some(msg);
                }
            }
        }
        entry.status = Status::Failed;
        entry.error = last_error;
        entry.files = list_files(&dir);
        Ok(Some(entry))
    }

    fn attempt(
        &self,
        m: &PlannedMeasurement,
        dir: &Path,
        na: &str,
        nb: &str,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let mut events = Events::new(dir.join("events.jsonl"));
        for step in steps_for(m.kind, &self.opts.steps) {
            if self.stopped() {
                return Err(Failure {
                    interrupted: true,
                    ..Failure::at(step, EnvError::new("stopped"))
                });
            }
            if started.elapsed() > self.opts.measurement_timeout {
                return Err(Failure::at(
                    step,
                    EnvError::new(format!(
                        "measurement exceeded {:?}",
                        self.opts.measurement_timeout
                    )),
                ));
            }
            let (nodes, via) = self.node_step(step, na, nb);
            self.journal_nodes(
                Some(m),
                step.name(),
                StepState::Started,
                None,
                nodes.clone(),
                via.clone(),
            )
            .map_err(journal_failed(step))?;
            self.progress(m, format!("{} {} {}", m.id, m.app, step.name()));
            let r = self.step(step, m, dir, na, nb, &mut events);
            self.journal_interruptions(m)
                .map_err(journal_failed(step))?;
            let (state, detail, nodes, via) = match &r {
                Ok(Some(rep)) => (
                    StepState::Done,
                    rep.detail.clone(),
                    rep.nodes.clone(),
                    Some(rep.via.clone()),
                ),
                Ok(None) => (StepState::Done, None, nodes, via),
                Err(f) => (StepState::Failed, Some(f.err.message.clone()), nodes, via),
            };
            let journalled = self.journal_nodes(Some(m), step.name(), state, detail, nodes, via);
            r?;
            journalled.map_err(journal_failed(step))?;
        }
        for step in off_steps(m.kind, &self.opts.steps) {
            self.journal(
                Some(m),
                step.name(),
                StepState::Off,
                Some("off by scenario".into()),
            )
            .map_err(journal_failed(step))?;
        }
        Ok(())
    }

    /// Journals the interruptions (dialogs dismissed, BACK pressed) the
    /// phones handled during the last step: a measurement that needed them
    /// is still valid, but the record says what was on the screens.
    fn journal_interruptions(&self, m: &PlannedMeasurement) -> Result<(), CampaignError> {
        for ph in [&m.sender, &m.receiver] {
            for what in self.env.phones.take_interruptions(ph) {
                self.journal(
                    Some(m),
                    "interruption",
                    StepState::Done,
                    Some(format!("{ph}: {what}")),
                )?;
            }
        }
        Ok(())
    }

    /// The nodes a paths/probes step works on and how it reaches them (for
    /// the journal); nothing for the other steps.
    fn node_step(&self, step: Step, na: &str, nb: &str) -> (Vec<String>, Option<String>) {
        let hook = match step {
            Step::Paths => self.env.paths.as_ref(),
            Step::Probes => self.env.probes.as_ref(),
            _ => return (Vec::new(), None),
        };
        let mut nodes = vec![na.to_string()];
        if nb != na {
            nodes.push(nb.to_string());
        }
        (nodes, hook.map(|h| h.via().to_string()))
    }

    /// Runs one step; `Ok(Some(report))` from a paths/probes hook.
    fn step(
        &self,
        step: Step,
        m: &PlannedMeasurement,
        dir: &Path,
        na: &str,
        nb: &str,
        events: &mut Events,
    ) -> Result<Option<StepReport>, Failure> {
        let to = self.opts.step_timeout;
        let env = self.env.clone();
        let phones = [
            (
                m.sender.clone(),
                m.sender_country.to_string(),
                na.to_string(),
            ),
            (
                m.receiver.clone(),
                m.receiver_country.to_string(),
                nb.to_string(),
            ),
        ];
        match step {
            Step::PreparePhones => self.prepare_phones(m, dir, &phones, events)?,
            Step::Connect | Step::CheckConnectivity => self.connect_phones(step, &phones)?,
            Step::StartCaptures => {
                for (point, file) in self.points(m, na, nb, dir) {
                    let c = env.capture.clone();
                    let p = point.clone();
                    bounded(&format!("capture {point}"), to, move || c.start(&p, &file))
                        .map_err(|e| blame_point(step, &point, e))?;
                }
                self.start_screenrecords(m, dir);
            }
            Step::Exchange | Step::Baseline => {
                self.open_chats(step, m, events)?;
                if step == Step::Baseline {
                    self.wait_baseline(m, events)?;
                } else {
                    self.exchange_messages(m, events)?;
                }
                events.flush().map_err(|e| Failure::at(step, e))?;
            }
            Step::StopCaptures => {
                self.stop_screenrecords(m);
                for (point, _) in self.points(m, na, nb, dir) {
                    let c = env.capture.clone();
                    let p = point.clone();
                    bounded(&format!("capture {point}"), to, move || c.stop(&p))
                        .map_err(|e| blame_point(step, &point, e))?;
                }
            }
            Step::Analyse => self.analyse(dir)?,
            Step::Paths | Step::Probes => return self.hook_step(step, m, dir, na, nb).map(Some),
        }
        Ok(None)
    }

    /// Prepares both phones for the app and keeps what they report
    /// (`phones.json`, and their clock offsets for the events).
    fn prepare_phones(
        &self,
        m: &PlannedMeasurement,
        dir: &Path,
        phones: &[(String, String, String); 2],
        events: &mut Events,
    ) -> Result<(), Failure> {
        let (to, env) = (self.opts.step_timeout, &self.env);
        let mut facts = Vec::new();
        for (ph, country, _) in phones {
            let (p, a, c, pc) = (
                env.phones.clone(),
                m.app.clone(),
                country.clone(),
                ph.clone(),
            );
            let f = bounded_phone(&env.phones, ph, &format!("{ph}: prepare"), to, move || {
                p.prepare(&pc, &a, &c)
            })
            .map_err(|e| Failure::at(Step::PreparePhones, e))?;
            events.offsets.push((ph.clone(), f.clone()));
            facts.push(serde_json::json!({"phone": ph, "facts": f}));
        }
        let _ = super::record::write_atomic(
            &dir.join("phones.json"),
            serde_json::to_string_pretty(&facts)
                .unwrap_or_default()
                .as_bytes(),
        );
        Ok(())
    }

    /// Connects each phone through its node, or checks that connection.
    fn connect_phones(
        &self,
        step: Step,
        phones: &[(String, String, String); 2],
    ) -> Result<(), Failure> {
        let to = self.opts.step_timeout;
        for (ph, _, node) in phones {
            let (v, p, n) = (self.env.vantage.clone(), ph.clone(), node.clone());
            let what = format!("{ph} via {node}");
            let r = if step == Step::Connect {
                bounded(&what, to, move || v.connect(&p, &n))
            } else {
                bounded(&what, to, move || v.check(&p, &n))
            };
            if let Err(e) = r {
                // Connectivity failures are the node's; a connect
                // failure is when the implementation says so.
                let blame = step == Step::CheckConnectivity || e.node_failed;
                return Err(Failure {
                    node: blame.then(|| node.clone()),
                    ..Failure::at(step, e)
                });
            }
        }
        Ok(())
    }

    /// Opens the chat with the other phone on both phones, at once: they
    /// are two devices, and opening one after the other cost the
    /// measurement a whole app start and navigation (3–5 s with the UI
    /// dumps of real phones). Each `chat_open` event carries the moment its
    /// own phone finished; the first failure in A, B order is reported.
    fn open_chats(
        &self,
        step: Step,
        m: &PlannedMeasurement,
        events: &mut Events,
    ) -> Result<(), Failure> {
        let (to, env) = (self.opts.step_timeout, &self.env);
        let open = |ph: &String, peer: &String| {
            let (p, a, x, y) = (env.phones.clone(), m.app.clone(), ph.clone(), peer.clone());
            bounded_phone(
                &env.phones,
                ph,
                &format!("{ph}: open chat"),
                to,
                move || p.open_chat(&x, &a, &y).map(|()| now()),
            )
        };
        let (a, b) = std::thread::scope(|s| {
            let b = s.spawn(|| open(&m.receiver, &m.sender));
            let a = open(&m.sender, &m.receiver);
            let b = b
                .join()
                .unwrap_or_else(|_| Err(EnvError::new("open chat: panicked")));
            (a, b)
        });
        let (ta, tb) = (
            a.map_err(|e| Failure::at(step, e))?,
            b.map_err(|e| Failure::at(step, e))?,
        );
        let mut opened = [(ta, &m.sender), (tb, &m.receiver)];
        opened.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (t, ph) in opened {
            events.push(t, ph, &m.app, K::ChatOpen, None, None);
        }
        Ok(())
    }

    /// The baseline: the chats stay open, nothing is sent, for the
    /// baseline's duration (a stop ends it early, as interrupted).
    fn wait_baseline(&self, m: &PlannedMeasurement, events: &mut Events) -> Result<(), Failure> {
        events.push(now(), &m.sender, &m.app, K::BaselineStart, None, None);
        let until = Instant::now() + Duration::from_secs_f64(m.baseline_secs);
        while Instant::now() < until {
            if self.stopped() {
                return Err(interrupted(Step::Baseline));
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
        events.push(now(), &m.sender, &m.app, K::BaselineEnd, None, None);
        Ok(())
    }

    /// Sends each planned message and waits for it on the other phone,
    /// recording the phones' own timestamps of the tap and the receipt.
    fn exchange_messages(
        &self,
        m: &PlannedMeasurement,
        events: &mut Events,
    ) -> Result<(), Failure> {
        let (to, env) = (self.opts.step_timeout, &self.env);
        let fail = |e: EnvError| Failure::at(Step::Exchange, e);
        for (i, msg) in m.messages.iter().enumerate() {
            if self.stopped() {
                return Err(interrupted(Step::Exchange));
            }
            let (from, to_ph) = match msg.from {
                Side::A => (&m.sender, &m.receiver),
                Side::B => (&m.receiver, &m.sender),
            };
            let (p, a, x, text) = (
                env.phones.clone(),
                m.app.clone(),
                from.clone(),
                msg.text.clone(),
            );
            let t = bounded_phone(
                &env.phones,
                from,
                &format!("{from}: send {}", msg.id),
                to,
                move || p.send_stamped(&x, &a, &text),
            )
            .map_err(fail)?;
            events.push(t, from, &m.app, K::SendTap, Some(&msg.id), Some(&msg.text));
            let rt = self.opts.receive_timeout;
            let (p, a, y, text) = (
                env.phones.clone(),
                m.app.clone(),
                to_ph.clone(),
                msg.text.clone(),
            );
            let t = bounded_phone(
                &env.phones,
                to_ph,
                &format!("{to_ph}: receive {}", msg.id),
                rt + Duration::from_secs(5),
                move || p.wait_receive_stamped(&y, &a, &text, rt),
            )
            .map_err(fail)?;
            events.push(
                t,
                to_ph,
                &m.app,
                K::Received,
                Some(&msg.id),
                Some(&msg.text),
            );
            if i + 1 < m.messages.len() {
                std::thread::sleep(self.opts.interval);
            }
        }
        Ok(())
    }

    /// Correlates the measurement's captures and events and writes its
    /// `analysis.json`.
    fn analyse(&self, dir: &Path) -> Result<(), Failure> {
        let fail = |e: String| Failure::at(Step::Analyse, EnvError::new(e));
        let campaign = self.dir.clone();
        let profiles = self.opts.profiles.clone();
        let a = analyze_measurement_cached(
            dir,
            &campaign,
            &profiles,
            &self.correlate_config(),
            &self.baselines,
            &self.live,
        )
        .map_err(|e| fail(e.to_string()))?;
        write_analysis(dir, &a).map_err(|e| fail(e.to_string()))
    }

    /// Runs the paths or probes hook on the nodes that carried the
    /// measurement, bounded by ten step timeouts.
    fn hook_step(
        &self,
        step: Step,
        m: &PlannedMeasurement,
        dir: &Path,
        na: &str,
        nb: &str,
    ) -> Result<StepReport, Failure> {
        let hook = if step == Step::Paths {
            self.env.paths.clone()
        } else {
            self.env.probes.clone()
        };
        // `run` refuses such an environment before the first measurement;
        // never counted complete without the step.
        let Some(h) = hook else {
            return Err(Failure::at(
                step,
                EnvError::new(format!("no {} engine in this environment", step.name())),
            ));
        };
        let (d, mm) = (dir.to_path_buf(), carried_by(m, na, nb));
        bounded(step.name(), self.opts.step_timeout * 10, move || {
            h.run(&d, &mm)
        })
        .map_err(|e| blame_named(step, [na, nb], e))
    }

    /// Starts both phones' screen recordings (`screen-<phone>.mp4`). A
    /// recording is evidence, not the measurement: failures are journalled
    /// (`screenrecord` failed) and the measurement goes on.
    fn start_screenrecords(&self, m: &PlannedMeasurement, dir: &Path) {
        let Some(limit) = self.opts.screenrecord else {
            return;
        };
        for ph in [&m.sender, &m.receiver] {
            let (p, x, file) = (
                self.env.phones.clone(),
                ph.clone(),
                dir.join(format!("screen-{ph}.mp4")),
            );
            // A phone action like any other: on its deadline it is
            // cancelled on the phone before the measurement goes on.
            let r = bounded_phone(
                &self.env.phones,
                ph,
                &format!("{ph}: screenrecord"),
                self.opts.step_timeout,
                move || p.start_screenrecord(&x, limit, &file),
            );
            match r {
                Ok(()) => lock(&self.recording).push(ph.clone()),
                Err(e) => {
                    let _ =
                        self.journal(Some(m), "screenrecord", StepState::Failed, Some(e.message));
                }
            }
        }
    }

    /// Ends the running recordings and waits for their files (bounded by
    /// the recording limit plus a step timeout for the pull). Idempotent.
    fn stop_screenrecords(&self, m: &PlannedMeasurement) {
        let limit = self.opts.screenrecord.unwrap_or_default() + self.opts.step_timeout;
        // Both phones at once: each stop waits for its file.
        let results: Vec<(String, Result<(), EnvError>)> = std::thread::scope(|s| {
            let mine: Vec<String> = {
                let mut all = lock(&self.recording);
                let (mine, others) = std::mem::take(&mut *all)
                    .into_iter()
                    .partition(|p| *p == m.sender || *p == m.receiver);
                *all = others;
                mine
            };
            let handles: Vec<_> = mine
                .into_iter()
                .map(|ph| {
                    let (p, x, phones) = (self.env.phones.clone(), ph.clone(), &self.env.phones);
                    let h = s.spawn(move || {
                        bounded_phone(phones, &x, &format!("{x}: screenrecord"), limit, {
                            let x = x.clone();
                            move || p.stop_screenrecord(&x)
                        })
                    });
                    (ph, h)
                })
                .collect();
            handles
                .into_iter()
                .map(|(ph, h)| {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err(EnvError::new("screenrecord: panicked")));
                    (ph, r)
                })
                .collect()
        });
        for (ph, r) in results {
            let (state, detail) = match r {
                Ok(()) => (StepState::Done, format!("screen-{ph}.mp4")),
                Err(e) => (StepState::Failed, e.message),
            };
            if let Err(e) = self.journal(Some(m), "screenrecord", state, Some(detail)) {
                // The recording is evidence beside the measurement: its
                // journal line is not worth failing the measurement, but
                // the loss is said.
                eprintln!(
                    "warning: {}: screenrecord of {ph} not journalled: {e}",
                    m.id
                );
            }
        }
    }

    fn points(
        &self,
        m: &PlannedMeasurement,
        na: &str,
        nb: &str,
        dir: &Path,
    ) -> Vec<(String, PathBuf)> {
        let mut v = Vec::new();
        if self.opts.points.contains(&CapturePointKind::Router) {
            for ph in [&m.sender, &m.receiver] {
                v.push((
                    format!("router-{ph}"),
                    dir.join(format!("capture-router-{ph}.pcap")),
                ));
            }
        }
        if self.opts.points.contains(&CapturePointKind::Node) {
            for n in [na, nb] {
                if !v.iter().any(|(p, _)| *p == format!("node-{n}")) {
                    v.push((
                        format!("node-{n}"),
                        dir.join(format!("capture-node-{n}.pcap")),
                    ));
                }
            }
        }
        v
    }

    /// Always run after an attempt: captures stopped, apps stopped, routes
    /// removed. Failures here are journalled, never fatal.
    fn teardown(&self, m: &PlannedMeasurement, na: &str, nb: &str) -> Result<(), CampaignError> {
        let to = self.opts.step_timeout;
        let dir = self.rec().measurement_dir(&m.id);
        let mut problems = Vec::new();
        // Recordings end first: after a failure they stay with its record.
        self.stop_screenrecords(m);
        for (point, _) in self.points(m, na, nb, &dir) {
            let c = self.env.capture.clone();
            if let Err(e) = bounded(&format!("capture {point}"), to, move || c.stop(&point)) {
                problems.push(e.message);
            }
        }
        for ph in [&m.sender, &m.receiver] {
            let (p, a, x) = (self.env.phones.clone(), m.app.clone(), ph.clone());
            if let Err(e) = bounded_phone(
                &self.env.phones,
                ph,
                &format!("{ph}: finish"),
                to,
                move || p.finish(&x, &a),
            ) {
                problems.push(e.message);
            }
            let (v, x) = (self.env.vantage.clone(), ph.clone());
            if let Err(e) = bounded(&format!("{ph}: disconnect"), to, move || v.disconnect(&x)) {
                problems.push(e.message);
            }
        }
        self.journal(
            Some(m),
            "teardown",
            if problems.is_empty() {
                StepState::Done
            } else {
                StepState::Failed
            },
            (!problems.is_empty()).then(|| problems.join("; ")),
        )
    }
}

/// The measurement as this attempt carried it: the nodes that carried it
/// (after failover) first in `sender_nodes`/`receiver_nodes`, the rest of
/// each country's failover order after them.
pub fn carried_by(m: &PlannedMeasurement, na: &str, nb: &str) -> PlannedMeasurement {
    let first = |nodes: &[String], n: &str| {
        let mut v = vec![n.to_string()];
        v.extend(nodes.iter().filter(|x| *x != n).cloned());
        v
    };
    let mut mm = m.clone();
    mm.sender_nodes = first(&m.sender_nodes, na);
    mm.receiver_nodes = first(&m.receiver_nodes, nb);
    mm
}

/// Whether an error is the disk (or quota) being full: retrying cannot help.
fn is_disk_full(message: &str) -> bool {
    ["(os error 28)", "(os error 122)", "No space left on device"]
        .iter()
        .any(|s| message.contains(s))
}

/// The failure of a step a stop request ended.
fn interrupted(step: Step) -> Failure {
    Failure {
        interrupted: true,
        ..Failure::at(step, EnvError::new("stopped"))
    }
}

/// A capture failure: a node capture point reporting a node failure
/// (agent unreachable over SSH) blames that node, so the retry fails over
/// to the country's next node like a connectivity failure does.
fn blame_point(step: Step, point: &str, err: EnvError) -> Failure {
    let node = match point.strip_prefix("node-") {
        Some(n) if err.node_failed => Some(n.to_string()),
        _ => None,
    };
    Failure {
        node,
        ..Failure::at(step, err)
    }
}

/// A paths/probes failure that is a carrying node's own (its agent
/// unreachable or lost: `EnvError::node`, and agent errors name the node as
/// `node NAME:`) blames that node, so the retry fails over to the
/// country's next node like a connectivity failure does.
fn blame_named(step: Step, nodes: [&str; 2], err: EnvError) -> Failure {
    let node = nodes
        .into_iter()
        .find(|n| err.node_failed && err.message.contains(&format!("node {n}:")))
        .map(String::from);
    Failure {
        node,
        ..Failure::at(step, err)
    }
}

fn list_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Temporaries of writes in flight (or of older versions' `.tmp`).
                .filter(|n| {
                    n != "meta.json" && !n.ends_with(".tmp") && !crate::atomic_file::is_temporary(n)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `events.jsonl` of a measurement, appended and fsynced line by line.
struct Events {
    path: PathBuf,
    lines: Vec<String>,
    written: usize,
    offsets: Vec<(String, PhoneFacts)>,
}

impl Events {
    fn new(path: PathBuf) -> Self {
        Events {
            path,
            lines: Vec::new(),
            written: 0,
            offsets: Vec::new(),
        }
    }

    /// Appends one event (the device layer's [`DeviceEvent`], plus the
    /// text's length in `bytes`).
    fn push(
        &mut self,
        t: impl Into<Stamp>,
        device: &str,
        app: &str,
        kind: K,
        msg: Option<&str>,
        text: Option<&str>,
    ) {
        let t: Stamp = t.into();
        let facts = self
            .offsets
            .iter()
            .find(|(p, _)| p == device)
            .map(|(_, f)| f);
        let ev = DeviceEvent {
            ts: Timestamp::from_f64(t.t),
            device: device.to_string(),
            app: app.to_string(),
            kind,
            message_id: msg.map(str::to_string),
            text_sha256: text.map(text_sha256),
            clock_offset_ns: facts.map(|f| (f.clock_offset_s * 1e9) as i64),
            clock_uncertainty_ns: facts.map(|f| (f.clock_uncertainty_s * 1e9) as i64),
            uncertainty_ns: t.uncertainty,
        };
        let mut o = serde_json::to_value(&ev).unwrap_or_default();
        if let Some(t) = text {
            o["bytes"] = t.len().into();
        }
        self.lines.push(o.to_string());
        // Each event reaches the disk as it happens (a crash keeps them).
        let _ = self.flush();
    }

    fn flush(&mut self) -> Result<(), EnvError> {
        if self.written == self.lines.len() {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| EnvError::new(format!("{}: {e}", self.path.display())))?;
        for l in &self.lines[self.written..] {
            writeln!(f, "{l}")
                .map_err(|e| EnvError::new(format!("{}: {e}", self.path.display())))?;
        }
        f.sync_data()
            .map_err(|e| EnvError::new(format!("{}: {e}", self.path.display())))?;
        self.written = self.lines.len();
        Ok(())
    }
}
