//! Path diagrams of the HTML report, one per (vantage node, app): the hop
//! chain of the app's most common application path from that node (country,
//! AS and RTT of every hop) above the direct network path from the same node
//! to the other vantage of the same measurement. Hops outside the vantage's
//! M49 region are drawn with a heavy outline (a detour when the direct path
//! joins two vantages of one region), hops the speed-of-light check of
//! `geo::plausibility` flags carry a "!" and the checker's reason. A diagram
//! keeps its natural size and scrolls sideways on a narrow screen (shrunk
//! to a phone's width its labels would be unreadable).

use super::html::esc;
use super::model::{Hop, PathRow, Report};
use crate::geo::m49::M49;
use crate::geo::plausibility::{Checker, HopObs, Location, Status};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// (Vantage, app) diagrams drawn at most; the Paths table lists every trace.
pub const MAX_DIAGRAMS: usize = 200;

const STEP: f64 = 92.0;
const LEFT: f64 = 112.0;

/// One diagram: the representative application path, how many paths share
/// its country sequence, and the direct path beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagram<'a> {
    /// Vantage node.
    pub node: &'a str,
    /// App.
    pub app: &'a str,
    /// The most common application path (first of its country sequence).
    pub application: &'a PathRow,
    /// Application paths of (node, app), and those with the same countries.
    pub paths: (usize, usize),
    /// Direct path from the node in the same measurement (else any from the node).
    pub direct: Option<&'a PathRow>,
}

/// The diagrams of a report, ordered by app then node.
pub fn diagrams(r: &Report) -> Vec<Diagram<'_>> {
    let mut groups: BTreeMap<(&str, &str), Vec<&PathRow>> = BTreeMap::new();
    for p in r.paths.iter().filter(|p| p.class == "application") {
        if let Some(app) = &p.app {
            groups
                .entry((app.as_str(), p.node.as_str()))
                .or_default()
                .push(p);
        }
    }
    let mut out = Vec::new();
    for ((app, node), ps) in groups {
        let mut by_seq: BTreeMap<&[String], usize> = BTreeMap::new();
        for p in &ps {
            *by_seq.entry(p.countries.as_slice()).or_default() += 1;
        }
        let best = by_seq.values().copied().max().unwrap_or(0);
        let Some(application) = ps
            .iter()
            .copied()
            .find(|p| by_seq.get(p.countries.as_slice()) == Some(&best))
        else {
            continue;
        };
        let direct_from_node = |p: &&PathRow| p.class == "direct" && p.node == node;
        let direct = r
            .paths
            .iter()
            .filter(direct_from_node)
            .find(|p| p.measurement == application.measurement)
            .or_else(|| r.paths.iter().find(direct_from_node));
        out.push(Diagram {
            node,
            app,
            application,
            paths: (ps.len(), best),
            direct,
        });
    }
    out
}

/// Per hop: outside the vantage's region, and the checker's complaint.
fn marks(r: &Report, p: &PathRow, m49: &M49, checker: &Checker) -> Vec<(bool, Option<String>)> {
    let vantage = r.node_countries.get(&p.node);
    let region = vantage
        .and_then(|v| m49.country(v))
        .and_then(|c| c.region.clone());
    let obs: Vec<HopObs> = p
        .hops
        .iter()
        .map(|h| HopObs {
            country: h.country.clone(),
            rtt_ms: h.rtt.filter(|_| h.hop.is_some_and(|n| n > 0)),
        })
        .collect();
    let loc = vantage.map(|v| Location::Country(v.clone()));
    let verdicts = checker.check_path(loc.as_ref(), &obs);
    p.hops
        .iter()
        .zip(verdicts)
        .map(|(h, v)| {
            let outside = match (&region, h.country.as_deref().and_then(|c| m49.country(c))) {
                (Some(reg), Some(c)) => !c.in_area(&reg.code),
                _ => false,
            };
            let bad =
                (v.verdict.status == Status::Implausible).then(|| v.verdict.reasons.join("; "));
            (outside, bad)
        })
        .collect()
}

fn hop_label(h: &Hop) -> String {
    match h.hop {
        Some(0) => "src".into(),
        Some(k) => k.to_string(),
        None => "dst".into(),
    }
}

/// One row of hops at height `y`.
fn row(s: &mut String, y: f64, label: &str, p: &PathRow, marks: &[(bool, Option<String>)]) {
    let n = p.hops.len().max(1);
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{:.0}\" class=\"label\">{}</text><text x=\"4\" y=\"{:.0}\" class=\"axis lft\">{}</text><line x1=\"{LEFT:.0}\" y1=\"{y:.0}\" x2=\"{:.0}\" y2=\"{y:.0}\" class=\"edge\"/>",
        y - 2.0,
        esc(label),
        y + 14.0,
        esc(&format!("→ {}", p.target)),
        LEFT + STEP * (n as f64 - 1.0)
    );
    for (i, (h, (outside, bad))) in p.hops.iter().zip(marks).enumerate() {
        let x = LEFT + STEP * i as f64;
        let mut class = if h.addr.is_none() {
            "silent".to_string()
        } else if h.country.is_none() {
            "unknown".to_string()
        } else {
            "known".to_string()
        };
        if *outside {
            class.push_str(" outside");
        }
        if bad.is_some() {
            class.push_str(" implausible");
        }
        let title = format!(
            "hop {} {} {}{}{}{}",
            hop_label(h),
            h.addr.map_or("*".to_string(), |a| a.to_string()),
            h.country.as_deref().unwrap_or("?"),
            h.asn.map(|a| format!(" AS{a}")).unwrap_or_default(),
            h.rtt.map(|r| format!(" {r:.1} ms")).unwrap_or_default(),
            bad.as_deref()
                .map(|b| format!(" — implausible: {b}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "<circle cx=\"{x:.0}\" cy=\"{y:.0}\" r=\"15\" class=\"{class}\"><title>{}</title></circle><text x=\"{x:.0}\" y=\"{:.0}\" class=\"cc\">{}</text><text x=\"{x:.0}\" y=\"{:.0}\" class=\"axis\">{}</text><text x=\"{x:.0}\" y=\"{:.0}\" class=\"axis\">{}</text>",
            esc(&title),
            y + 4.0,
            esc(h.country.as_deref().unwrap_or("?")),
            y + 30.0,
            esc(&h
                .asn
                .map_or_else(|| format!("hop {}", hop_label(h)), |a| format!("AS{a}"))),
            y + 43.0,
            esc(&h
                .rtt
                .map_or_else(|| "–".to_string(), |r| format!("{r:.1} ms")))
        );
        if bad.is_some() {
            let _ = writeln!(
                s,
                "<text x=\"{:.0}\" y=\"{:.0}\" class=\"bang\">!</text>",
                x + 16.0,
                y - 12.0
            );
        }
    }
}

fn seq(p: &PathRow) -> String {
    p.countries.join(" → ")
}

/// One diagram as a figure with an inline SVG.
pub fn diagram_html(r: &Report, d: &Diagram, idx: usize) -> String {
    let m49 = M49::shipped();
    let checker = Checker::shipped();
    let app_marks = marks(r, d.application, &m49, &checker);
    let direct_marks = d.direct.map(|p| marks(r, p, &m49, &checker));
    let n = d
        .application
        .hops
        .len()
        .max(d.direct.map_or(0, |p| p.hops.len()))
        .max(1);
    let w = LEFT + STEP * (n as f64 - 1.0) + 40.0;
    let h = if d.direct.is_some() { 150.0 } else { 72.0 };
    let outside = app_marks.iter().filter(|m| m.0).count()
        + direct_marks.iter().flatten().filter(|m| m.0).count();
    let implausible = app_marks.iter().filter(|m| m.1.is_some()).count()
        + direct_marks
            .iter()
            .flatten()
            .filter(|m| m.1.is_some())
            .count();
    let vantage = r.node_countries.get(d.node).map_or("?", String::as_str);
    let desc = format!(
        "Application path of {} from node {} ({vantage}) to {}: {}. {} of {} application paths of this app from this node cross the same countries. Direct network path: {}. Hops outside the vantage's region: {outside}; hops failing the speed-of-light check: {implausible}.",
        d.app,
        d.node,
        d.application.target,
        seq(d.application),
        d.paths.1,
        d.paths.0,
        d.direct
            .map_or("none traced from this node".to_string(), |p| format!(
                "to {}: {}",
                p.target,
                seq(p)
            ))
    );
    let id = format!("pd-{idx}");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<figure class=\"pd\"><figcaption>{} · {} ({vantage}) · {} of {} paths like this · measurement {}</figcaption><svg class=\"path\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\"><title id=\"{id}-t\">Path diagram: {} from {}</title><desc id=\"{id}-d\">{}</desc>",
        esc(d.app),
        esc(d.node),
        d.paths.1,
        d.paths.0,
        esc(&d.application.measurement),
        esc(d.app),
        esc(d.node),
        esc(&desc)
    );
    row(
        &mut s,
        24.0,
        &format!("{} path", d.app),
        d.application,
        &app_marks,
    );
    if let (Some(p), Some(m)) = (d.direct, &direct_marks) {
        row(&mut s, 100.0, "direct path", p, m);
    }
    s.push_str("</svg></figure>\n");
    s
}

/// Legend of the diagrams (HTML, no SVG).
pub const LEGEND: &str = "<p class=\"legend\"><span class=\"hop known\"></span>hop with a country <span class=\"hop unknown\"></span>no country in the database <span class=\"hop silent\"></span>no reply <span class=\"hop outside\"></span>outside the vantage's M49 region <b>!</b> fails the speed-of-light check (hover for the reason) · under each hop: AS and smallest RTT</p>\n";

/// CSS of the diagrams.
pub const CSS: &str = ".pd{margin:.6em 0;overflow-x:auto}.pd svg{display:block}\
.pd text{text-anchor:middle}.pd text.label,.pd text.lft{text-anchor:start}\
.path .known{fill:#d9e7f5;stroke:#2166ac;stroke-width:1.5}.path .unknown{fill:#ffffff;stroke:#595959;stroke-dasharray:3 2}\
.path .silent{fill:#eeeeee;stroke:#999999}.path .outside{stroke:#b2182b;stroke-width:4}\
.path .implausible{fill:#fddbc7}.bang{font:bold 18px sans-serif;fill:#b2182b}\
.hop{display:inline-block;width:1em;height:1em;border-radius:50%;vertical-align:middle;margin:0 .3em 0 .8em;border:1.5px solid #2166ac;background:#d9e7f5}\
.hop.unknown{background:#ffffff;border:1.5px dashed #595959}.hop.silent{background:#eeeeee;border-color:#999999}.hop.outside{border:3px solid #b2182b}\n";
