//! The vantage × app verdict matrix of a round as Markdown, with links to
//! the evidence (the round's JSON, each vantage's capture), the isolated
//! keywords, and the differences between vantages of one country.

use super::session::RoundResult;
use super::verdict::{VantageMeta, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn cell(v: &[Verdict]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    v.iter().map(|x| x.name()).collect::<Vec<_>>().join(", ")
}

fn link(path: &Path, base: Option<&Path>) -> String {
    let shown = base.and_then(|b| path.strip_prefix(b).ok()).unwrap_or(path);
    format!("[{}]({})", shown.display(), shown.display())
}

/// Verdicts of one app at each vantage: `(vantage, verdicts)`.
pub type PerVantage = Vec<(String, Vec<Verdict>)>;

/// Vantages of one country whose verdicts differ for an app:
/// `(country, app, per vantage)`.
pub fn country_differences(
    r: &RoundResult,
    meta: &BTreeMap<String, VantageMeta>,
) -> Vec<(String, String, PerVantage)> {
    let mut by: BTreeMap<(String, String), PerVantage> = BTreeMap::new();
    for v in &r.verdicts {
        let Some(cc) = meta.get(&v.vantage).and_then(|m| m.cc.clone()) else {
            continue;
        };
        for a in &v.apps {
            by.entry((cc.clone(), a.app.clone()))
                .or_default()
                .push((v.vantage.clone(), a.verdicts.clone()));
        }
    }
    by.into_iter()
        .filter(|(_, vs)| {
            vs.iter()
                .map(|(_, v)| v.clone())
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .map(|((cc, app), vs)| (cc, app, vs))
        .collect()
}

/// Markdown of round `round`; links are relative to `base` when under it.
pub fn markdown(
    r: &RoundResult,
    round: u32,
    meta: &BTreeMap<String, VantageMeta>,
    round_file: Option<&Path>,
    base: Option<&Path>,
) -> String {
    let mut apps: Vec<String> = Vec::new();
    for v in &r.verdicts {
        for a in &v.apps {
            if !apps.contains(&a.app) {
                apps.push(a.app.clone());
            }
        }
    }
    let mut s = format!("## Probe round {round} (control {})\n\n", r.control.vantage);
    s.push_str("| vantage | ");
    s.push_str(&apps.join(" | "));
    s.push_str(" | evidence |\n|---|");
    s.push_str(&"---|".repeat(apps.len() + 1));
    s.push('\n');
    for (v, res) in r.verdicts.iter().zip(&r.vantages) {
        let m = meta.get(&v.vantage).cloned().unwrap_or_default();
        let place = match (m.cc, m.asn) {
            (Some(cc), Some(asn)) => format!(" ({cc}, AS{asn})"),
            (Some(cc), None) => format!(" ({cc})"),
            _ => String::new(),
        };
        s.push_str(&format!("| {}{place} |", v.vantage));
        for app in &apps {
            let c = v
                .apps
                .iter()
                .find(|a| &a.app == app)
                .map(|a| cell(&a.verdicts))
                .unwrap_or_else(|| "–".into());
            s.push_str(&format!(" {c} |"));
        }
        let mut ev = Vec::new();
        if let Some(f) = round_file {
            ev.push(link(f, base));
        }
        if let Some(c) = &res.capture {
            ev.push(link(c, base));
        }
        let frames: usize = v
            .apps
            .iter()
            .flat_map(|a| &a.endpoints)
            .map(|e| e.evidence_frames.len())
            .sum();
        if frames > 0 {
            ev.push(format!("{frames} frames"));
        }
        s.push_str(&format!(" {} |\n", ev.join(", ")));
    }
    let mut kw = String::new();
    for v in &r.verdicts {
        for a in &v.apps {
            for e in &a.endpoints {
                if !e.keywords.is_empty() {
                    kw.push_str(&format!(
                        "- {} / {} / `{}`: {} ({} requests)\n",
                        v.vantage,
                        a.app,
                        e.host,
                        e.keywords
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        e.keyword_requests
                    ));
                }
            }
        }
    }
    if !kw.is_empty() {
        s.push_str("\nIsolated Host-header keywords:\n\n");
        s.push_str(&kw);
    }
    let diffs = country_differences(r, meta);
    if !diffs.is_empty() {
        s.push_str("\nVantages of one country disagree:\n\n");
        for (cc, app, vs) in diffs {
            let parts: Vec<String> = vs
                .iter()
                .map(|(v, x)| format!("{v}: {}", cell(x)))
                .collect();
            s.push_str(&format!("- {cc} / {app}: {}\n", parts.join("; ")));
        }
    }
    s.push('\n');
    s
}
