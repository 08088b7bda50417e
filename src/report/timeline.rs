//! Interference timelines of the HTML report: per vantage, one row per
//! flagged event with its packets — the query, then every reply at its delay
//! after the query, each labelled with frame, IP TTL and IP-ID — so a forged
//! reply racing the genuine one shows as two marks at different times with
//! different TTLs. Packet details come from the event's evidence as the
//! interference rules write it (`replies`, `query_frame`, `delay_ms`,
//! `ip_ttl`, `ip_id`, `suspect_frames`; src/analysis/interference/); an
//! event without delays is laid out by frame order.

use super::html::esc;
use super::model::{InterferenceRow, Report};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Events drawn per vantage at most (every event is in the table).
pub const MAX_EVENTS_PER_VANTAGE: usize = 30;

/// One packet of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Frame (1-based).
    pub frame: u64,
    /// Milliseconds after the query, when known.
    pub delay_ms: Option<f64>,
    /// IP TTL.
    pub ttl: Option<u64>,
    /// IP-ID as written by the rule (`0x1234`).
    pub ip_id: Option<String>,
    /// Flagged by the rule (suspect), as opposed to context.
    pub suspect: bool,
    /// The query (time zero) rather than a reply.
    pub query: bool,
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// The packets of one event, from its evidence.
pub fn packets(row: &InterferenceRow) -> Vec<Packet> {
    let ev: BTreeMap<String, Value> = serde_json::from_str(&row.evidence).unwrap_or_default();
    let suspects: Vec<u64> = ev
        .get("suspect_frames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_else(|| row.frames.clone());
    let mut out = Vec::new();
    if let Some(q) = ev.get("query_frame").and_then(Value::as_u64) {
        out.push(Packet {
            frame: q,
            delay_ms: Some(0.0),
            ttl: None,
            ip_id: None,
            suspect: false,
            query: true,
        });
    }
    if let Some(replies) = ev.get("replies").and_then(Value::as_array) {
        for r in replies {
            let Some(frame) = r.get("frame").and_then(Value::as_u64) else {
                continue;
            };
            out.push(Packet {
                frame,
                delay_ms: num(r.get("delay_ms")),
                ttl: r.get("ip_ttl").and_then(Value::as_u64),
                ip_id: r.get("ip_id").and_then(Value::as_str).map(str::to_string),
                suspect: suspects.contains(&frame),
                query: false,
            });
        }
    } else {
        for (i, f) in row.frames.iter().enumerate() {
            // Single-packet evidence describes the first flagged frame.
            let first = i == 0;
            out.push(Packet {
                frame: *f,
                delay_ms: num(ev.get("delay_ms")).filter(|_| first),
                ttl: ev.get("ip_ttl").and_then(Value::as_u64).filter(|_| first),
                ip_id: ev
                    .get("ip_id")
                    .and_then(Value::as_str)
                    .filter(|_| first)
                    .map(str::to_string),
                suspect: true,
                query: false,
            });
        }
    }
    out
}

fn packet_label(p: &Packet) -> String {
    let mut s = if p.query {
        format!("f{} query", p.frame)
    } else {
        format!("f{}", p.frame)
    };
    if let Some(t) = p.ttl {
        let _ = write!(s, " TTL {t}");
    }
    if let Some(id) = &p.ip_id {
        let _ = write!(s, " ID {id}");
    }
    if let (Some(d), false) = (p.delay_ms, p.query) {
        let _ = write!(s, " +{d:.1} ms");
    }
    s
}

const LEFT: f64 = 190.0;
const WIDTH: f64 = 560.0;
const ROW: f64 = 58.0;

fn event_row(s: &mut String, y: f64, row: &InterferenceRow) {
    let ps = packets(row);
    let max = ps
        .iter()
        .filter_map(|p| p.delay_ms)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let timed = ps.iter().all(|p| p.delay_ms.is_some());
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{:.0}\" class=\"label\">{} · {}</text><text x=\"4\" y=\"{:.0}\" class=\"axis\">{} → {}</text><line x1=\"{LEFT:.0}\" y1=\"{y:.0}\" x2=\"{:.0}\" y2=\"{y:.0}\" class=\"edge\"/>",
        y - 4.0,
        esc(&row.measurement),
        esc(row.rule.as_str()),
        y + 10.0,
        esc(row.kind.as_str()),
        esc(&row.claimed_src.to_string()),
        LEFT + WIDTH
    );
    let n = ps.len().max(2) - 1;
    for (i, p) in ps.iter().enumerate() {
        let x = match (timed, p.delay_ms) {
            (true, Some(d)) => LEFT + WIDTH * d / max,
            _ => LEFT + WIDTH * i as f64 / n as f64,
        };
        let class = if p.query {
            "query"
        } else if p.suspect {
            "suspect"
        } else {
            "genuine"
        };
        // Labels alternate above and below the line so neighbours do not collide.
        let ly = if i.is_multiple_of(2) {
            y - 10.0
        } else {
            y + 20.0
        };
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.0}\" width=\"10\" height=\"10\" class=\"pk {class}\"><title>{} ({class})</title></rect><text x=\"{x:.1}\" y=\"{ly:.0}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
            x - 5.0,
            y - 5.0,
            esc(&packet_label(p)),
            esc(&packet_label(p))
        );
    }
}

/// Timelines of every vantage with interference (empty when none).
pub fn timelines_html(r: &Report) -> String {
    let mut by_vantage: BTreeMap<&str, Vec<&InterferenceRow>> = BTreeMap::new();
    for row in &r.interference {
        by_vantage.entry(&row.vantage).or_default().push(row);
    }
    let mut s = String::new();
    for (vi, (v, rows)) in by_vantage.iter().enumerate() {
        let shown = rows.len().min(MAX_EVENTS_PER_VANTAGE);
        let h = 20.0 + ROW * shown as f64;
        let w = LEFT + WIDTH + 60.0;
        let suspects: usize = rows
            .iter()
            .take(shown)
            .map(|x| packets(x).iter().filter(|p| p.suspect).count())
            .sum();
        let id = format!("tl-{vi}");
        let _ = writeln!(
            s,
            "<figure class=\"tl\"><figcaption>{} · {} events ({shown} drawn)</figcaption><svg class=\"plot\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\"><title id=\"{id}-t\">Interference at {}</title><desc id=\"{id}-d\">{shown} flagged events at vantage {}, {suspects} suspect packets; each row places the query at zero and every reply at its delay, labelled with frame, IP TTL and IP-ID.</desc>",
            esc(v),
            rows.len(),
            esc(v),
            esc(v)
        );
        for (i, row) in rows.iter().take(shown).enumerate() {
            event_row(&mut s, 30.0 + ROW * i as f64, row);
        }
        s.push_str("</svg></figure>\n");
    }
    s
}

/// Legend and CSS of the timelines.
pub const LEGEND: &str = "<p class=\"legend\"><span class=\"pkl query\"></span>query (time zero) <span class=\"pkl suspect\"></span>packet the rule flags <span class=\"pkl genuine\"></span>other reply to the same query · position: delay after the query (frame order when the capture gave no delay)</p>\n";

/// CSS of the timelines.
pub const CSS: &str = ".tl{overflow-x:auto}.tl svg{display:block}.pk.query{fill:#ffffff;stroke:#222222}\
.pk.suspect{fill:#b2182b;stroke:#222222}.pk.genuine{fill:#2166ac;stroke:#222222}\
.pkl{display:inline-block;width:.8em;height:.8em;border:1px solid #222222;margin:0 .3em 0 .8em}\
.pkl.query{background:#ffffff}.pkl.suspect{background:#b2182b}.pkl.genuine{background:#2166ac}\n";
