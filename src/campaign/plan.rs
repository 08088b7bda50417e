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

    /// Measurements of one kind.
    pub fn count_kind(&self, k: Kind) -> usize {
        self.measurements.iter().filter(|m| m.kind == k).count()
    }

    /// Messages over the whole plan.
    pub fn total_messages(&self) -> usize {
        self.measurements.iter().map(|m| m.messages.len()).sum()
    }

    /// Estimated duration of the whole campaign in seconds.
    pub fn estimated_secs(&self) -> f64 {
        self.measurements.iter().map(|m| m.estimated_secs).sum()
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

    #[test]
    fn marked_texts_carry_the_message_id() {
        assert_eq!(marked("{text} [{id}]", "hi", "m0001-2"), "hi [m0001-2]");
        assert_eq!(marked("{text}", "hi", "m0001-2"), "hi [m0001-2]");
        assert_eq!(marked("#{id} {text}", "a {id} b", "m9"), "#m9 a {id} b");
    }
}
