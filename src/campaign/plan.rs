//! Plan expansion: a scenario becomes the ordered list of measurements a
//! campaign runs. The order (and so each measurement's id) is a pure function
//! of the scenario, which is what makes ids stable across `--resume`.
//!
//! For every country pair (A's country, B's country), for every app: the
//! baseline runs first (apps open, no message), then the repetitions, each
//! exchanging `per_direction` messages each way, alternating A→B, B→A.

use crate::scenario::{CountryCode, LoadedScenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Schema tag of `plan.json`.
pub const PLAN_SCHEMA: &str = "matador/plan/1";

/// Estimated fixed cost of one measurement: tunnels, connectivity and DNS
/// checks, firewall and location, capture start (seconds).
pub const SETUP_SECS: f64 = 20.0;
/// Estimated app launch and chat opening on both phones (seconds).
pub const APP_OPEN_SECS: f64 = 10.0;
/// Estimated typing, tapping send and delivery of one message (seconds).
pub const MESSAGE_SECS: f64 = 6.0;
/// Estimated capture stop, fetch, analysis and teardown (seconds).
pub const TEARDOWN_SECS: f64 = 10.0;

/// What a measurement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Messages are exchanged.
    Message,
    /// Apps open, no message: background traffic.
    Baseline,
}

impl Kind {
    /// The name used in the record.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Baseline => "baseline",
        }
    }
}

/// Which phone sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Phone A (the scenario's first phone).
    A,
    /// Phone B.
    B,
}

impl Side {
    /// The other phone.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One message of a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedMessage {
    /// Message id, `<measurement>-<n>` (1-based).
    pub id: String,
    /// Sending phone.
    pub from: Side,
    /// The text.
    pub text: String,
}

/// One measurement of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedMeasurement {
    /// Stable id (`m0001`, …) in plan order.
    pub id: String,
    /// Message exchange or baseline.
    pub kind: Kind,
    /// App id.
    pub app: String,
    /// Phone A's profile id (sends first).
    pub sender: String,
    /// Phone B's profile id.
    pub receiver: String,
    /// Country phone A is tunnelled to.
    pub sender_country: CountryCode,
    /// Country phone B is tunnelled to.
    pub receiver_country: CountryCode,
    /// A's country's nodes, in failover order.
    pub sender_nodes: Vec<String>,
    /// B's country's nodes, in failover order.
    pub receiver_nodes: Vec<String>,
    /// 1-based repetition (baseline run number for baselines).
    pub repetition: u32,
    /// The messages (empty for a baseline).
    pub messages: Vec<PlannedMessage>,
    /// Baseline recording time in seconds (0 for message measurements).
    pub baseline_secs: f64,
    /// Estimated duration in seconds.
    pub estimated_secs: f64,
}

/// The expanded plan (`plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA`].
    pub schema: String,
    /// Scenario name.
    pub scenario: String,
    /// matador version that expanded the plan (provenance).
    #[serde(default)]
    pub matador: String,
    /// Phone A and phone B profile ids.
    pub phones: [String; 2],
    /// Country pairs in plan order.
    pub pairs: Vec<[CountryCode; 2]>,
    /// The phone pairs `[A, B]` measuring at once, when there are several
    /// (absent: `phones` is the one pair). Which pair carries a
    /// measurement is decided when it runs (its index entry names it); the
    /// measurements list pair 1's phones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_pairs: Vec<[String; 2]>,
    /// Every measurement, in run order.
    pub measurements: Vec<PlannedMeasurement>,
    /// Set when this plan is one shard of a larger plan (`run --shard
    /// k/n`): `measurements` then holds only the shard's part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

/// Schema tag of the shard rule (see [`Plan::shard`]).
pub const SHARD_RULE: &str = "matador/shard-rule/1: groups (same sender country, receiver country, app; consecutive in plan order) numbered from 0 in plan order; group g goes to shard g mod n";

/// Which part of which plan a shard campaign runs (`plan.json` → `shard`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// 0-based shard number (like `SLURM_ARRAY_TASK_ID`).
    pub k: u32,
    /// Number of shards.
    pub n: u32,
    /// The rule that split the plan ([`SHARD_RULE`]).
    pub rule: String,
    /// [`Plan::sha256`] of the whole plan.
    pub plan_sha256: String,
    /// Measurements of the whole plan.
    pub plan_measurements: usize,
}

/// `k/n` of `--shard k/n` (k 0-based, k < n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// 0-based shard number.
    pub k: u32,
    /// Number of shards (at least 1).
    pub n: u32,
}

/// A `--shard` value that is not `k/n` with `0 <= k < n`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard `{spec}`: {reason}")]
pub struct ShardSpecError {
    /// The value as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::str::FromStr for ShardSpec {
    type Err = ShardSpecError;

    /// `k/n`, e.g. `0/2` (what `--shard $SLURM_ARRAY_TASK_ID/2` gives).
    fn from_str(s: &str) -> Result<ShardSpec, ShardSpecError> {
        let err = |reason: String| ShardSpecError {
            spec: s.to_string(),
            reason,
        };
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| err("expected k/n, e.g. 0/2 (k counts from 0)".into()))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| err("k is not a number".into()))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| err("n is not a number".into()))?;
        if n == 0 {
            return Err(err("n must be at least 1".into()));
        }
        if k >= n {
            return Err(err(format!(
                "k counts from 0 and must be below n (0..={})",
                n - 1
            )));
        }
        Ok(ShardSpec { k, n })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The shard each measurement of `measurements` (a whole plan, in plan
/// order) belongs to under [`SHARD_RULE`] with `n` shards. A baseline stays
/// with the message measurements of its country pair and app, so a shard's
/// own analysis has the baseline it needs.
pub fn shard_of_each(measurements: &[PlannedMeasurement], n: u32) -> Vec<u32> {
    let n = n.max(1);
    let mut out = Vec::with_capacity(measurements.len());
    let mut group: u64 = 0;
    let mut prev: Option<(&CountryCode, &CountryCode, &str)> = None;
    for m in measurements {
        let key = (&m.sender_country, &m.receiver_country, m.app.as_str());
        if prev.is_some_and(|p| p != key) {
            group += 1;
        }
        prev = Some(key);
        out.push((group % u64::from(n)) as u32);
    }
    out
}

impl Plan {
    /// Expands a validated scenario.
    pub fn expand(ls: &LoadedScenario) -> Plan {
        let sc = &ls.scenario;
        let pairs = expand_pairs(sc);
        let [a, b] = sc.phone_pairs().swap_remove(0);
        let nodes = |c: &CountryCode| sc.countries.get(c).cloned().unwrap_or_default();
        let per_dir = sc.messages.per_direction;
        let interval = sc.messages.interval.secs();
        let mut out = Vec::new();
        let mut text_i = 0usize;
        let mut push = |kind, app: &str, pair: &[CountryCode; 2], rep, texts: &mut usize| {
            let id = format!("m{:04}", out.len() + 1);
            let mut messages = Vec::new();
            if kind == Kind::Message {
                let mut side = Side::A;
                for n in 0..per_dir * 2 {
                    let text = ls
                        .texts
                        .get(*texts % ls.texts.len().max(1))
                        .cloned()
                        .unwrap_or_default();
                    *texts += 1;
                    let mid = format!("{id}-{}", n + 1);
                    messages.push(PlannedMessage {
                        text: marked(&sc.messages.marker, &text, &mid),
                        id: mid,
                        from: side,
                    });
                    side = side.other();
                }
            }
            let baseline_secs = if kind == Kind::Baseline {
                sc.baseline.duration.secs()
            } else {
                0.0
            };
            let estimated_secs = SETUP_SECS
                + APP_OPEN_SECS
                + TEARDOWN_SECS
                + baseline_secs
                + messages.len() as f64 * (MESSAGE_SECS + interval);
            out.push(PlannedMeasurement {
                id,
                kind,
                app: app.to_string(),
                sender: a.clone(),
                receiver: b.clone(),
                sender_country: pair[0].clone(),
                receiver_country: pair[1].clone(),
                sender_nodes: nodes(&pair[0]),
                receiver_nodes: nodes(&pair[1]),
                repetition: rep,
                messages,
                baseline_secs,
                estimated_secs,
            });
        };
        for pair in &pairs {
            for app in &sc.apps {
                for r in 1..=sc.baseline.runs {
                    push(Kind::Baseline, app, pair, r, &mut text_i);
                }
                for r in 1..=sc.repetitions {
                    push(Kind::Message, app, pair, r, &mut text_i);
                }
            }
        }
        Plan {
            schema: PLAN_SCHEMA.into(),
            scenario: sc.name.clone(),
            matador: env!("CARGO_PKG_VERSION").to_string(),
            phones: [a, b],
            pairs,
            phone_pairs: match sc.phone_pairs() {
                p if p.len() > 1 => p,
                _ => Vec::new(),
            },
            measurements: out,
            shard: None,
        }
    }

    /// The phone pairs `[A, B]` (one pair: `phones`).
    pub fn phone_pairs(&self) -> Vec<[String; 2]> {
        if self.phone_pairs.is_empty() {
            vec![self.phones.clone()]
        } else {
            self.phone_pairs.clone()
        }
    }

    /// SHA-256 (lower-case hex) of the plan's content: its compact JSON
    /// with the expanding binary's version and any shard section left out,
    /// so the same scenario gives the same hash on every machine and
    /// matador build that expands it the same way.
    pub fn sha256(&self) -> String {
        let mut p = self.clone();
        p.matador = String::new();
        p.shard = None;
        let bytes = serde_json::to_vec(&p).unwrap_or_default();
        let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Shard `spec.k` of `spec.n` of this (whole) plan: its measurements
    /// under [`SHARD_RULE`], ids unchanged, with the whole plan's hash and
    /// size in [`Plan::shard`].
    pub fn shard(&self, spec: ShardSpec) -> Plan {
        let of = shard_of_each(&self.measurements, spec.n);
        let mut p = self.clone();
        p.measurements = self
            .measurements
            .iter()
            .zip(of)
            .filter(|(_, s)| *s == spec.k)
            .map(|(m, _)| m.clone())
            .collect();
        p.shard = Some(ShardInfo {
            k: spec.k,
            n: spec.n,
            rule: SHARD_RULE.into(),
            plan_sha256: self.sha256(),
            plan_measurements: self.measurements.len(),
        });
        p
    }

    /// Measurements of one kind.
    pub fn count_kind(&self, k: Kind) -> usize {
        self.measurements.iter().filter(|m| m.kind == k).count()
    }

    /// Messages over the whole plan.
    pub fn total_messages(&self) -> usize {
        self.measurements.iter().map(|m| m.messages.len()).sum()
    }

    /// Estimated duration of the whole campaign in seconds with one phone
    /// pair: every measurement's estimate summed (the measurement time).
    pub fn estimated_secs(&self) -> f64 {
        self.measurements.iter().map(|m| m.estimated_secs).sum()
    }

    /// Estimated duration with the plan's phone pairs sharing nodes under
    /// `node_capacity` (the runner's scheduling rule replayed on the
    /// measurements' estimates, [`super::schedule::estimate`]).
    pub fn estimate(&self, node_capacity: u32) -> super::schedule::Estimate {
        super::schedule::estimate(&self.measurements, self.phone_pairs().len(), node_capacity)
    }

    /// The estimated duration as printed: `32h 28m` with one pair, `4h 10m
    /// with 8 phone pairs (32h 28m of measurement time)` with several.
    pub fn duration_text(&self, node_capacity: u32) -> String {
        // One pair: the sum; the schedule is replayed only for several.
        if self.phone_pairs().len() <= 1 {
            return human_secs(self.estimated_secs());
        }
        let e = self.estimate(node_capacity);
        format!(
            "{} with {} phone pairs ({} of measurement time)",
            human_secs(e.wall_secs),
            e.pairs,
            human_secs(e.measurement_secs)
        )
    }

    /// Every node the plan may use (primary and failover), sorted.
    pub fn nodes(&self) -> BTreeSet<String> {
        self.measurements
            .iter()
            .flat_map(|m| m.sender_nodes.iter().chain(&m.receiver_nodes).cloned())
            .collect()
    }

    /// The plan as a table (for `--dry-run`).
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<6} {:<8} {:<10} {:>3}  {:<16} {:<16} {:>4} {:>8}\n",
            "id", "kind", "app", "rep", "A (country:node)", "B (country:node)", "msgs", "est."
        );
        for m in &self.measurements {
            let node = |c: &CountryCode, n: &[String]| {
                format!("{c}:{}", n.first().map(String::as_str).unwrap_or("-"))
            };
            s.push_str(&format!(
                "{:<6} {:<8} {:<10} {:>3}  {:<16} {:<16} {:>4} {:>8}\n",
                m.id,
                m.kind.as_str(),
                m.app,
                m.repetition,
                node(&m.sender_country, &m.sender_nodes),
                node(&m.receiver_country, &m.receiver_nodes),
                m.messages.len(),
                human_secs(m.estimated_secs),
            ));
        }
        s
    }
}

/// A message text made unique by its id (`marker`: `{text}`, `{id}`; without
/// `{id}`, ` [{id}]` is appended).
pub fn marked(marker: &str, text: &str, id: &str) -> String {
    let marker = if marker.contains("{id}") {
        marker.to_string()
    } else {
        format!("{marker} [{{id}}]")
    };
    // `{id}` first: a scenario text containing "{id}" stays as written.
    marker.replace("{id}", id).replace("{text}", text)
}

/// The scenario's country pairs, deduplicated (an unordered pair counts once:
/// messages go both ways anyway), in the order written.
pub fn expand_pairs(sc: &crate::scenario::Scenario) -> Vec<[CountryCode; 2]> {
    let mut out: Vec<[CountryCode; 2]> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |a: &CountryCode, b: &CountryCode, out: &mut Vec<[CountryCode; 2]>| {
        let key = if a <= b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        if seen.insert(key) {
            out.push([a.clone(), b.clone()]);
        }
    };
    let mut list: Vec<&CountryCode> = Vec::new();
    for c in &sc.pairs.all {
        if !list.contains(&c) {
            list.push(c);
        }
    }
    for (i, a) in list.iter().enumerate() {
        if sc.pairs.include_same {
            add(a, a, &mut out);
        }
        for b in &list[i + 1..] {
            add(a, b, &mut out);
        }
    }
    for [a, b] in &sc.pairs.explicit {
        add(a, b, &mut out);
    }
    out
}

/// `1h 02m`, `4m 05s`, `42s`.
pub fn human_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of `groups` (pair, app) groups of `per_group` measurements
    /// (ids in plan order, as `expand` numbers them).
    fn plan_of(groups: usize, per_group: usize) -> Plan {
        let cc = |s: &str| -> CountryCode { serde_json::from_value(serde_json::json!(s)).unwrap() };
        let countries = ["DE", "BR", "US", "JP", "KR"];
        let mut measurements = Vec::new();
        for g in 0..groups {
            for r in 0..per_group {
                measurements.push(PlannedMeasurement {
                    id: format!("m{:04}", measurements.len() + 1),
                    kind: if r == 0 {
                        Kind::Baseline
                    } else {
                        Kind::Message
                    },
                    app: format!("app{}", g % 3),
                    sender: "a".into(),
                    receiver: "b".into(),
                    sender_country: cc(countries[g / 3 % 5]),
                    receiver_country: cc(countries[(g / 15) % 5]),
                    sender_nodes: vec![],
                    receiver_nodes: vec![],
                    repetition: r as u32,
                    messages: vec![],
                    baseline_secs: 0.0,
                    estimated_secs: 1.0,
                });
            }
        }
        Plan {
            schema: PLAN_SCHEMA.into(),
            scenario: "t".into(),
            matador: "0.0.0".into(),
            phones: ["a".into(), "b".into()],
            pairs: vec![],
            phone_pairs: vec![],
            measurements,
            shard: None,
        }
    }

    #[test]
    fn shards_are_disjoint_complete_and_deterministic_for_any_n() {
        for (groups, per) in [(0, 3), (1, 1), (7, 3), (16, 2), (40, 1)] {
            let plan = plan_of(groups, per);
            // Deterministic: the same split from a plan serialized and read
            // back (another machine's plan.json).
            let again: Plan = serde_json::from_slice(&serde_json::to_vec(&plan).unwrap()).unwrap();
            for n in 1..=12u32 {
                let mut seen: Vec<String> = Vec::new();
                for k in 0..n {
                    let s = plan.shard(ShardSpec { k, n });
                    assert_eq!(s, again.shard(ShardSpec { k, n }));
                    let info = s.shard.as_ref().unwrap();
                    assert_eq!((info.k, info.n), (k, n));
                    assert_eq!(info.plan_sha256, plan.sha256());
                    assert_eq!(info.plan_measurements, plan.measurements.len());
                    seen.extend(s.measurements.iter().map(|m| m.id.clone()));
                }
                let mut sorted = seen.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len(), seen.len(), "disjoint: n={n}");
                let all: Vec<String> = plan.measurements.iter().map(|m| m.id.clone()).collect();
                assert_eq!(sorted, all, "complete: n={n}, {groups} groups");
            }
        }
    }

    #[test]
    fn a_group_stays_in_one_shard_and_groups_go_round_robin() {
        let plan = plan_of(5, 3);
        let of = shard_of_each(&plan.measurements, 2);
        assert_eq!(of, vec![0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
        // More shards than groups: the last shards are empty, not an error.
        let s = plan.shard(ShardSpec { k: 6, n: 7 });
        assert!(s.measurements.is_empty());
        assert_eq!(s.shard.unwrap().plan_measurements, 15);
    }

    #[test]
    fn the_plan_hash_ignores_the_build_and_shard_but_not_the_content() {
        let plan = plan_of(3, 2);
        let mut other = plan.clone();
        other.matador = "9.9.9".into();
        assert_eq!(plan.sha256(), other.sha256());
        other.shard = plan.shard(ShardSpec { k: 0, n: 2 }).shard;
        assert_eq!(plan.sha256(), other.sha256());
        other.measurements[1].repetition = 7;
        assert_ne!(plan.sha256(), other.sha256());
        assert_eq!(plan.sha256().len(), 64);
    }

    #[test]
    fn shard_specs_parse_and_refuse_clearly() {
        assert_eq!(
            "0/2".parse::<ShardSpec>().unwrap(),
            ShardSpec { k: 0, n: 2 }
        );
        assert_eq!("3/4".parse::<ShardSpec>().unwrap().to_string(), "3/4");
        for (bad, why) in [
            ("2/2", "below n"),
            ("1/0", "at least 1"),
            ("x/2", "k is not"),
            ("1", "expected k/n"),
            ("-1/2", "k is not"),
        ] {
            let e = bad.parse::<ShardSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn marked_texts_carry_the_message_id() {
        assert_eq!(marked("{text} [{id}]", "hi", "m0001-2"), "hi [m0001-2]");
        assert_eq!(marked("{text}", "hi", "m0001-2"), "hi [m0001-2]");
        assert_eq!(marked("#{id} {text}", "a {id} b", "m9"), "#m9 a {id} b");
    }
}
