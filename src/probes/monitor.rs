//! Monitoring: repeated rounds of verdicts, stored as a time series
//! (`series.jsonl`, one round per line), and the changes between rounds
//! ("blocked since", "unblocked at") per vantage and app.

use super::verdict::{VantageVerdicts, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One round of every vantage's verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Round number (from 1).
    pub round: u32,
    /// Start of the round (Unix seconds).
    pub time: f64,
    /// Verdicts per vantage.
    pub vantages: Vec<VantageVerdicts>,
}

/// A change of state of one app at one vantage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Vantage.
    pub vantage: String,
    /// App id.
    pub app: String,
    /// `blocked` (blocked since this round) or `unblocked` (unblocked at).
    pub change: String,
    /// Round of the change.
    pub round: u32,
    /// Time of that round.
    pub time: f64,
    /// Verdicts in that round.
    pub verdicts: Vec<Verdict>,
}

/// Whether verdicts mean blocked (anything but ok and inconclusive).
pub fn blocked(v: &[Verdict]) -> bool {
    v.iter()
        .any(|v| !matches!(v, Verdict::Ok | Verdict::Inconclusive))
}

/// Changes across `rounds`: the first round's blocked apps are "blocked
/// since" that round; later flips are reported when they happen.
/// Inconclusive rounds keep the previous state.
pub fn changes(rounds: &[Round]) -> Vec<Change> {
    let mut state: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut out = Vec::new();
    for r in rounds {
        for v in &r.vantages {
            for a in &v.apps {
                if a.verdicts == [Verdict::Inconclusive] {
                    continue;
                }
                let now = blocked(&a.verdicts);
                let key = (v.vantage.clone(), a.app.clone());
                let before = state.insert(key, now);
                let flipped = match before {
                    None => now,
                    Some(b) => b != now,
                };
                if flipped {
                    out.push(Change {
                        vantage: v.vantage.clone(),
                        app: a.app.clone(),
                        change: if now { "blocked" } else { "unblocked" }.into(),
                        round: r.round,
                        time: r.time,
                        verdicts: a.verdicts.clone(),
                    });
                }
            }
        }
    }
    out
}

/// One line per change, e.g. `line @ cn-1: blocked since round 1 (…)`.
pub fn describe(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let what = if c.change == "blocked" {
                "blocked since"
            } else {
                "unblocked at"
            };
            let names: Vec<&str> = c.verdicts.iter().map(|v| v.name()).collect();
            format!(
                "{} @ {}: {what} round {} (unix {:.0}): {}",
                c.app,
                c.vantage,
                c.round,
                c.time,
                names.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::verdict::AppVerdict;

    fn round(n: u32, v: &[Verdict]) -> Round {
        Round {
            round: n,
            time: f64::from(n) * 60.0,
            vantages: vec![VantageVerdicts {
                vantage: "cn-1".into(),
                control: "ca-1".into(),
                apps: vec![AppVerdict {
                    app: "line".into(),
                    verdicts: v.to_vec(),
                    endpoints: Vec::new(),
                }],
                throttle: None,
                requests: 0,
            }],
        }
    }

    #[test]
    fn blocked_since_and_unblocked_at() {
        let rs = vec![
            round(1, &[Verdict::Ok]),
            round(2, &[Verdict::DnsTampered]),
            round(3, &[Verdict::Inconclusive]),
            round(4, &[Verdict::DnsTampered, Verdict::HttpKeywordBlocked]),
            round(5, &[Verdict::Ok]),
        ];
        let c = changes(&rs);
        let got: Vec<(String, u32)> = c.iter().map(|c| (c.change.clone(), c.round)).collect();
        assert_eq!(
            got,
            vec![("blocked".to_string(), 2), ("unblocked".to_string(), 5)]
        );
        let d = describe(&c);
        assert!(
            d[0].starts_with("line @ cn-1: blocked since round 2"),
            "{}",
            d[0]
        );
    }
}
