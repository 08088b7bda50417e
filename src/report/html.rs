//! One self-contained HTML page: inline CSS, the report's tables and inline
//! SVG plots drawn here (no scripts, no external resources), so it opens
//! offline and diffs cleanly.

use super::model::{PathRow, Report};
use super::tables::{self, Table};
use std::fmt::Write as _;

/// Path diagrams drawn at most (the paths table lists all of them).
pub const MAX_PATH_DIAGRAMS: usize = 60;
/// RTT samples drawn per app at most (evenly spaced quantiles beyond that).
pub const MAX_RTT_POINTS: usize = 400;

const PALETTE: [&str; 8] = [
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
];

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn table_html(out: &mut String, t: &Table) {
    let _ = writeln!(out, "<h2 id=\"{}\">{}</h2>", t.id, esc(&t.title));
    if t.rows.is_empty() {
        out.push_str("<p class=\"none\">(none)</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr>");
    for h in &t.header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Grouped bars: per Table 2 row, the share of each app's paths leaving it.
fn leaving_bars(r: &Report) -> String {
    let groups = r.table2.len().max(1);
    let apps = r.apps.len().max(1);
    let bar = 14.0;
    let gap = 18.0;
    let left = 60.0;
    let top = 20.0;
    let h = 200.0;
    let gw = bar * (apps as f64 + 1.0) + gap;
    // Room on the right for the last rotated label.
    let w = left + gw * groups as f64 + 160.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"plot\" role=\"img\" aria-label=\"share of application paths leaving each region\" width=\"{w:.0}\" height=\"{:.0}\" viewBox=\"0 0 {w:.0} {:.0}\">",
        top + h + 150.0,
        top + h + 150.0
    );
    for pct in [0, 25, 50, 75, 100] {
        let y = top + h - h * pct as f64 / 100.0;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{pct}%</text>",
            w - 10.0,
            left - 4.0,
            y + 4.0
        );
    }
    for (gi, row) in r.table2.iter().enumerate() {
        let x0 = left + gi as f64 * gw + gap / 2.0;
        // Network path first (grey), then each app.
        let mut series = vec![("network path".to_string(), row.network, "#999999")];
        for (ai, a) in r.apps.iter().enumerate() {
            if let Some(sh) = row.apps.get(a) {
                series.push((a.clone(), *sh, PALETTE[ai % PALETTE.len()]));
            }
        }
        for (i, (name, sh, col)) in series.iter().enumerate() {
            let x = x0 + i as f64 * bar;
            match sh.pct {
                Some(p) => {
                    // 0 % stays visible as a hairline, unlike "no data".
                    let bh = (h * p / 100.0).max(1.5);
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{col}\"><title>{}: {} {}</title></rect>",
                        top + h - bh,
                        bar - 2.0,
                        esc(&row.name),
                        esc(name),
                        esc(&sh.long_text())
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">–</text>",
                        x + bar / 2.0,
                        top + h - 3.0
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" transform=\"rotate(30 {:.1} {:.1})\">{}</text>",
            x0,
            top + h + 14.0,
            x0,
            top + h + 14.0,
            esc(&row.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn legend(r: &Report) -> String {
    let mut s = String::from(
        "<p class=\"legend\"><span class=\"sw\" style=\"background:#999999\"></span>network path ",
    );
    for (i, a) in r.apps.iter().enumerate() {
        let _ = write!(
            s,
            "<span class=\"sw\" style=\"background:{}\"></span>{} ",
            PALETTE[i % PALETTE.len()],
            esc(a)
        );
    }
    s.push_str("</p>\n");
    s
}

/// Region × app heat map of the share leaving the region.
fn heat_map(r: &Report) -> String {
    let cw = 90.0;
    let ch = 24.0;
    let left = 290.0;
    let top = 24.0;
    let cols = r.apps.len() + 1;
    let w = left + cw * cols as f64 + 10.0;
    let hgt = top + ch * r.table2.len() as f64 + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"plot\" role=\"img\" aria-label=\"region by app heat map\" width=\"{w:.0}\" height=\"{hgt:.0}\" viewBox=\"0 0 {w:.0} {hgt:.0}\">"
    );
    let mut names = vec!["network".to_string()];
    names.extend(r.apps.iter().cloned());
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"middle\">{}</text>",
            left + cw * i as f64 + cw / 2.0,
            top - 8.0,
            esc(n)
        );
    }
    for (ri, row) in r.table2.iter().enumerate() {
        let y = top + ch * ri as f64;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{} ({})</text>",
            left - 6.0,
            y + ch / 2.0 + 4.0,
            esc(&row.name),
            esc(row.level)
        );
        let mut cells = vec![row.network];
        for a in &r.apps {
            cells.push(
                row.apps
                    .get(a)
                    .copied()
                    .unwrap_or(super::stats::Share::new(0, 0, 0)),
            );
        }
        for (ci, sh) in cells.iter().enumerate() {
            let x = left + cw * ci as f64;
            let (fill, text) = match sh.pct {
                Some(p) => {
                    // White (0 %) to dark red (100 %).
                    let t = p / 100.0;
                    let g = (255.0 - 200.0 * t).round() as u8;
                    let red = (255.0 - 80.0 * t).round() as u8;
                    (
                        format!("#{red:02x}{g:02x}{g:02x}"),
                        format!("{} n={}", sh.pct_text(), sh.n),
                    )
                }
                None => ("#eeeeee".to_string(), "n=0".to_string()),
            };
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"#ffffff\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"cell\" text-anchor=\"middle\">{}</text>",
                cw,
                ch,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0,
                esc(&text)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One path as a row of country nodes.
fn path_diagram(p: &PathRow) -> String {
    let step = 74.0;
    let n = p.hops.len().max(1);
    let w = 20.0 + step * n as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<figure><figcaption>{} · {} · {} → {}{}</figcaption><svg class=\"path\" role=\"img\" width=\"{w:.0}\" height=\"58\" viewBox=\"0 0 {w:.0} 58\">",
        esc(&p.measurement),
        esc(&p.class),
        esc(&p.node),
        esc(&p.target),
        p.app
            .as_deref()
            .map(|a| format!(" ({})", esc(a)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"20\" x2=\"{:.1}\" y2=\"20\" class=\"edge\"/>",
        20.0 + step / 2.0 - 10.0,
        20.0 + step * (n as f64 - 0.5) - 10.0
    );
    for (i, h) in p.hops.iter().enumerate() {
        let x = 10.0 + step * i as f64 + step / 2.0;
        let country = h.country.as_deref().unwrap_or("?");
        let class = if h.addr.is_none() {
            "silent"
        } else if h.country.is_none() {
            "unknown"
        } else {
            "known"
        };
        let hop = match h.hop {
            Some(0) => "src".to_string(),
            Some(k) => k.to_string(),
            None => "dst".to_string(),
        };
        let _ = writeln!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"20\" r=\"13\" class=\"{class}\"><title>hop {} {} {}</title></circle><text x=\"{x:.1}\" y=\"24\" class=\"cc\" text-anchor=\"middle\">{}</text><text x=\"{x:.1}\" y=\"48\" class=\"axis\" text-anchor=\"middle\">{}</text>",
            esc(&hop),
            esc(&h.addr.map_or("*".to_string(), |a| a.to_string())),
            esc(&h.rtt.map_or(String::new(), |r| format!("{r:.1} ms"))),
            esc(country),
            esc(&hop)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// RTT strip plots with median and p90 marks, one line per app.
fn rtt_plot(r: &Report) -> String {
    let left = 110.0;
    let width = 600.0;
    let row = 30.0;
    let h = 30.0 + row * r.rtt.len() as f64;
    let max = r.rtt.iter().map(|s| s.max).fold(0.0_f64, f64::max).max(1.0);
    let sx = |v: f64| left + width * v / max;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"plot\" role=\"img\" aria-label=\"RTT distributions\" width=\"{:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {:.0} {h:.0}\">",
        left + width + 30.0,
        left + width + 30.0
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"10\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"grid\"/><text x=\"{x:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{v:.0} ms</text>",
            h - 18.0,
            h - 4.0,
            x = sx(v)
        );
    }
    for (i, a) in r.rtt.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let col = r
            .apps
            .iter()
            .position(|x| *x == a.app)
            .map_or("#333333", |k| PALETTE[k % PALETTE.len()]);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{} (n={})</text>",
            left - 6.0,
            y + 4.0,
            esc(&a.app),
            a.n
        );
        let n = a.samples.len();
        let take = n.min(MAX_RTT_POINTS);
        for k in 0..take {
            let idx = if take == n {
                k
            } else {
                k * (n - 1) / (take - 1).max(1)
            };
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{col}\" fill-opacity=\"0.5\"/>",
                sx(a.samples[idx])
            );
        }
        let _ = writeln!(
            s,
            "<line x1=\"{m:.1}\" y1=\"{:.1}\" x2=\"{m:.1}\" y2=\"{:.1}\" class=\"median\"><title>median {:.1} ms</title></line><line x1=\"{p:.1}\" y1=\"{:.1}\" x2=\"{p:.1}\" y2=\"{:.1}\" class=\"p90\"><title>p90 {:.1} ms</title></line>",
            y - 9.0,
            y + 9.0,
            a.median,
            y - 7.0,
            y + 7.0,
            a.p90,
            m = sx(a.median),
            p = sx(a.p90)
        );
    }
    s.push_str("</svg>\n");
    s
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}\
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}\
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}tbody tr:nth-child(even){background:#fafafa}\
.plot text,.path text{font-size:11px}.grid{stroke:#ddd}.axis{fill:#555}.label{fill:#222}\
.cell{fill:#111;font-size:10px}.edge{stroke:#888;stroke-width:2}\
circle.known{fill:#cfe3f7;stroke:#357}circle.unknown{fill:#fde9c8;stroke:#a60}\
circle.silent{fill:#eee;stroke:#999;stroke-dasharray:2 2}.cc{font-weight:bold}\
.median{stroke:#000;stroke-width:2}.p90{stroke:#b00;stroke-width:2}\
.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}\
figure{margin:0.4em 0}figcaption{font-size:12px;color:#444}.none{color:#777}";

/// A page of tables only (comparisons).
pub fn simple_page(title: &str, ts: &[Table]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>",
        esc(title),
        esc(title)
    );
    for t in ts {
        table_html(&mut out, t);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The whole page.
pub fn page(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>matador report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>matador report: {}</h1>\n<ul>",
        esc(&r.campaign.name),
        esc(&r.campaign.name)
    );
    for l in tables::summary_lines(r) {
        let _ = writeln!(out, "<li>{}</li>", esc(&l));
    }
    out.push_str("</ul>\n<p>Percentages count pair runs with a known answer (n); 95 % Wilson intervals in brackets. Definitions: docs/report.md.</p>\n");
    out.push_str("<h2 id=\"plots\">Traffic leaving each region</h2>\n");
    out.push_str(&legend(r));
    out.push_str(&leaving_bars(r));
    out.push_str("<h2 id=\"heatmap\">Region × app: share leaving the region</h2>\n");
    out.push_str(&heat_map(r));
    out.push_str("<h2 id=\"rtt-plot\">Application-path RTT</h2>\n");
    out.push_str(&rtt_plot(r));
    for t in tables::all(r, false) {
        if t.id == "paths" {
            let _ = writeln!(
                out,
                "<h2 id=\"path-diagrams\">Path diagrams (first {} of {})</h2>",
                r.paths.len().min(MAX_PATH_DIAGRAMS),
                r.paths.len()
            );
            for p in r.paths.iter().take(MAX_PATH_DIAGRAMS) {
                out.push_str(&path_diagram(p));
            }
        }
        table_html(&mut out, &t);
    }
    out.push_str("</body>\n</html>\n");
    out
}
