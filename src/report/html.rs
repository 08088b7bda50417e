//! One self-contained HTML page: inline CSS, the report's tables and inline
//! SVG plots drawn here (no scripts, no external resources), so it opens
//! offline and diffs cleanly.

use super::model::Report;
use super::tables::{self, Table};
use std::fmt::Write as _;

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

/// Opening tag of an inline SVG plot with its `<title>` and `<desc>` (read
/// by screen readers and shown as the plot's tooltip).
fn svg_open(s: &mut String, id: &str, w: f64, h: f64, title: &str, desc: &str) {
    let _ = writeln!(
        s,
        "<svg class=\"plot\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\"><title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(title),
        esc(desc)
    );
}

/// Black or white text, whichever contrasts more with a `#rrggbb` fill
/// (WCAG 2.x relative luminance).
pub fn text_on(fill: &str) -> &'static str {
    let l = relative_luminance(fill).unwrap_or(1.0);
    if (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) {
        "#000000"
    } else {
        "#ffffff"
    }
}

/// WCAG 2.x relative luminance of a `#rrggbb` colour.
pub fn relative_luminance(hex: &str) -> Option<f64> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let ch = |i: usize| -> Option<f64> {
        let v = f64::from(u8::from_str_radix(h.get(i..i + 2)?, 16).ok()?) / 255.0;
        Some(if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        })
    };
    Some(0.2126 * ch(0)? + 0.7152 * ch(2)? + 0.0722 * ch(4)?)
}

fn table_html(out: &mut String, t: &Table) {
    let _ = writeln!(out, "<h2 id=\"{}\">{}</h2>", t.id, esc(&t.title));
    if t.rows.is_empty() {
        out.push_str("<p class=\"none\">(none)</p>\n");
        return;
    }
    out.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
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
    out.push_str("</tbody>\n</table></div>\n");
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
    svg_open(
        &mut s,
        "bars",
        w,
        top + h + 150.0,
        "Share of paths leaving each region",
        &format!(
            "Grouped bars, one group per Table 2 area ({} areas), one bar for the direct network path and one per app ({}); bar height is the percentage of pair runs whose path leaves the area; a dash marks no data.",
            r.table2.len(),
            r.apps.join(", ")
        ),
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
    svg_open(
        &mut s,
        "heat",
        w,
        hgt,
        "Region by app: share leaving the region",
        "One row per Table 2 area, one column for the network path and one per app; each cell shows the percentage of pair runs leaving the area and n, darker red for higher shares, grey for no data.",
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
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"#ffffff\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"cell\" fill=\"{}\" text-anchor=\"middle\">{}</text>",
                cw,
                ch,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0,
                text_on(&fill),
                esc(&text)
            );
        }
    }
    s.push_str("</svg>\n");
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
    svg_open(
        &mut s,
        "rtt",
        left + width + 30.0,
        h,
        "Application-path RTT per app",
        &format!(
            "Strip plots, one line per app ({} apps), of the RTT to the destination (or last answering hop) of each application path, up to {MAX_RTT_POINTS} points per app, with the median (black bar) and the 90th percentile (red bar).",
            r.rtt.len()
        ),
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
        // One group carries the colour: a point is just its position.
        let _ = write!(s, "<g fill=\"{col}\" fill-opacity=\"0.5\">");
        for k in 0..take {
            let idx = if take == n {
                k
            } else {
                k * (n - 1) / (take - 1).max(1)
            };
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{y:.0}\" r=\"2.5\"/>",
                sx(a.samples[idx])
            );
        }
        s.push_str("</g>\n");
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
@media (max-width:600px){body{margin:.5em}}h1,h2,p,li,figcaption{overflow-wrap:anywhere}\
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}\
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}tbody tr:nth-child(even){background:#fafafa}\
.plot text,.path text{font-size:11px}.grid{stroke:#ddd}.axis{fill:#555}.label{fill:#222}\
.cell{font-size:10px}.edge{stroke:#888;stroke-width:2}\
circle.known{fill:#cfe3f7;stroke:#357}circle.unknown{fill:#fde9c8;stroke:#a60}\
circle.silent{fill:#eee;stroke:#999;stroke-dasharray:2 2}.cc{font-weight:bold}\
.median{stroke:#000;stroke-width:2}.p90{stroke:#b00;stroke-width:2}\
.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}\
figure{margin:0.4em 0}figcaption{font-size:12px;color:#444}.none{color:#666}\
.scroll{overflow-x:auto;max-width:100%}.plot{max-width:100%;height:auto}\
.maps label{margin-right:.4em}\n";

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

/// In the page, a trace file is named relative to its measurement's
/// `traces/` folder (the row names the measurement): the long paths made
/// the Paths and Anomalies tables a third of a paper-sized page.
fn short_trace_names(t: &mut Table) {
    let Some(col) = t.header.iter().position(|h| h == "Trace") else {
        return;
    };
    if let Some(h) = t.header.get_mut(col) {
        *h = "Trace (in traces/)".into();
    }
    for row in &mut t.rows {
        if let Some(c) = row.get_mut(col)
            && let Some(i) = c.rfind("/traces/")
        {
            *c = c[i + "/traces/".len()..].to_string();
        }
    }
}

/// Rows equal but for their first cell (the measurement) become one row
/// listing every measurement: repeated runs trace the same paths, and a
/// paper-sized campaign's Paths table would otherwise fill half the page.
/// Markdown, CSV and JSON keep one row per trace.
fn merge_by_first_column(t: &mut Table) {
    let mut merged: Vec<Vec<String>> = Vec::new();
    let mut at: std::collections::HashMap<Vec<String>, usize> = std::collections::HashMap::new();
    for row in t.rows.drain(..) {
        let Some((first, rest)) = row.split_first() else {
            continue;
        };
        match at.get(rest) {
            Some(&i) => {
                merged[i][0].push_str(", ");
                merged[i][0].push_str(first);
            }
            None => {
                at.insert(rest.to_vec(), merged.len());
                merged.push(row);
            }
        }
    }
    t.rows = merged;
    if let Some(h) = t.header.first_mut() {
        *h = "Measurements".into();
    }
    t.title = format!(
        "{} (identical paths of several measurements on one row)",
        t.title
    );
}

/// The whole page.
pub fn page(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>matador report: {}</title>\n<style>{STYLE}{}{}{}</style>\n</head>\n<body>\n<h1>matador report: {}</h1>\n<ul>",
        esc(&r.campaign.name),
        super::map::map_css(r),
        super::diagrams::CSS,
        super::timeline::CSS,
        esc(&r.campaign.name)
    );
    for l in tables::summary_lines(r) {
        let _ = writeln!(out, "<li>{}</li>", esc(&l));
    }
    out.push_str("</ul>\n<p>Percentages count pair runs with a known answer (n); 95 % Wilson intervals in brackets. Definitions: docs/report.md.</p>\n");
    out.push_str("<h2 id=\"map\">Where each app's messages go</h2>\n<p>Per app, arcs from each vantage country to the countries of the servers its application paths reached, through the countries crossed on the way; the same paths and the same region test as Table 2.</p>\n");
    out.push_str(&super::map::maps_html(r));
    let ds = super::diagrams::diagrams(r);
    let shown = ds.len().min(super::diagrams::MAX_DIAGRAMS);
    let _ = writeln!(
        out,
        "<h2 id=\"path-diagrams\">Path diagrams (vantage × app: {shown} of {})</h2>",
        ds.len()
    );
    out.push_str(super::diagrams::LEGEND);
    for (i, d) in ds.iter().take(shown).enumerate() {
        out.push_str(&super::diagrams::diagram_html(r, d, i));
    }
    if !r.interference.is_empty() {
        out.push_str("<h2 id=\"interference-timeline\">Interference timelines</h2>\n");
        out.push_str(super::timeline::LEGEND);
        out.push_str(&super::timeline::timelines_html(r));
    }
    out.push_str("<h2 id=\"plots\">Traffic leaving each region</h2>\n");
    out.push_str(&legend(r));
    out.push_str(&leaving_bars(r));
    out.push_str("<h2 id=\"heatmap\">Region × app: share leaving the region</h2>\n");
    out.push_str(&heat_map(r));
    out.push_str("<h2 id=\"rtt-plot\">Application-path RTT</h2>\n");
    out.push_str(&rtt_plot(r));
    for mut t in tables::all(r, false) {
        short_trace_names(&mut t);
        if t.id == "paths" {
            merge_by_first_column(&mut t);
        }
        table_html(&mut out, &t);
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_and_text_colour() {
        // WCAG 2.x: white 1, black 0, #777777 gives 4.48:1 on white.
        assert_eq!(relative_luminance("#ffffff"), Some(1.0));
        assert_eq!(relative_luminance("#000000"), Some(0.0));
        let l = relative_luminance("#777777").unwrap();
        assert!(((1.05 / (l + 0.05)) - 4.48).abs() < 0.01);
        assert_eq!(relative_luminance("777777"), None);
        assert_eq!(text_on("#ffffff"), "#000000");
        assert_eq!(text_on("#af3737"), "#ffffff");
    }
}
