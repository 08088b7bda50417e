//! The active-probe section: per vantage × app, the verdicts of the
//! campaign's probe steps (`measurements/<id>/probes/round.json`, written
//! by [`crate::probes::step`]), with links to the evidence.

use super::model::ProbeRow;
use super::record::{Campaign, Problem};
use std::collections::{BTreeMap, BTreeSet};

/// Reads every measurement's probe round; unreadable rounds become problems.
pub fn rows(c: &Campaign, problems: &mut Vec<Problem>) -> Vec<ProbeRow> {
    let mut acc: BTreeMap<(String, String), ProbeRow> = BTreeMap::new();
    for m in &c.measurements {
        let rel = format!("measurements/{}/probes/round.json", m.entry.id);
        let file = c.dir.join(&rel);
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // no probe step in this measurement
        };
        let v: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem {
                    file: rel,
                    message: format!("not a probe round: {e}"),
                });
                continue;
            }
        };
        let Some(verdicts) = v.get("verdicts").and_then(|x| x.as_array()) else {
            problems.push(Problem {
                file: rel,
                message: "probe round without `verdicts`".into(),
            });
            continue;
        };
        for vv in verdicts {
            let vantage = str_of(vv, "vantage");
            let control = str_of(vv, "control");
            for app in vv
                .get("apps")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
            {
                let name = str_of(app, "app");
                let row = acc
                    .entry((vantage.clone(), name.clone()))
                    .or_insert_with(|| ProbeRow {
                        vantage: vantage.clone(),
                        app: name.clone(),
                        verdicts: Vec::new(),
                        measurements: Vec::new(),
                        controls: Vec::new(),
                        keywords: Vec::new(),
                        evidence_frames: 0,
                        evidence: format!("measurements/{}/probes/matrix.md", m.entry.id),
                    });
                push_unique(&mut row.measurements, &m.entry.id);
                push_unique(&mut row.controls, &control);
                for s in strs(app.get("verdicts")) {
                    push_unique(&mut row.verdicts, &s);
                }
                for ep in app
                    .get("endpoints")
                    .and_then(|e| e.as_array())
                    .into_iter()
                    .flatten()
                {
                    for k in strs(ep.get("keywords")) {
                        push_unique(&mut row.keywords, &k);
                    }
                    row.evidence_frames += ep
                        .get("evidence_frames")
                        .and_then(|f| f.as_array())
                        .map_or(0, Vec::len);
                }
            }
        }
    }
    acc.into_values()
        .map(|mut r| {
            // "ok" next to a blocking verdict means it changed between runs:
            // keep both, blocking ones first.
            let set: BTreeSet<String> = r.verdicts.drain(..).collect();
            let (ok, other): (Vec<_>, Vec<_>) = set.into_iter().partition(|v| v == "ok");
            r.verdicts = other.into_iter().chain(ok).collect();
            r
        })
        .collect()
}

fn str_of(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|s| s.as_str())
        .unwrap_or("?")
        .to_string()
}

fn strs(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}
