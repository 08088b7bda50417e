//! The report's tables as rows of text cells, rendered as Markdown and CSV
//! (and reused by the HTML page). In Markdown a share is one cell
//! (`33% (1/3, CI 6–79%)`); in CSV it is five columns (k, n, unknown, pct,
//! CI) so spreadsheets can compute with them.

use super::model::*;
use super::stats::Share;
use crate::analysis::model::{InterferenceKind, InterferenceRule, Role};
use std::fmt::Write as _;

/// One table: file stem, title, header, rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem for `--out` CSV files (`table2`).
    pub id: &'static str,
    /// Title.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), |x| x.to_string())
}

fn share_header(prefix: &str, csv: bool) -> Vec<String> {
    if csv {
        ["k", "n", "unknown", "pct", "ci_low", "ci_high"]
            .iter()
            .map(|s| format!("{prefix} {s}"))
            .collect()
    } else {
        vec![prefix.to_string()]
    }
}

fn share_cells(s: &Share, csv: bool) -> Vec<String> {
    if csv {
        vec![
            s.k.to_string(),
            s.n.to_string(),
            s.unknown.to_string(),
            opt(&s.pct),
            opt(&s.ci_low),
            opt(&s.ci_high),
        ]
    } else {
        let mut t = s.long_text();
        if s.unknown > 0 {
            let _ = write!(t, " +{} unknown", s.unknown);
        }
        vec![t]
    }
}

/// Table 2: traffic leaving region.
pub fn table2(r: &Report, csv: bool) -> Table {
    let mut header: Vec<String> = ["Level", "Region", "Pairs", "# Measurements"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(share_header("Network path leaving", csv));
    header.push("Unknown hops".into());
    for a in &r.apps {
        header.extend(share_header(&format!("{a} app path leaving"), csv));
    }
    let rows = r
        .table2
        .iter()
        .map(|row| {
            let mut v = vec![
                row.level.to_string(),
                row.name.clone(),
                row.pairs.to_string(),
                row.measurements.to_string(),
            ];
            v.extend(share_cells(&row.network, csv));
            v.push(row.network_unknown_hops.to_string());
            for a in &r.apps {
                let s = row.apps.get(a).copied().unwrap_or(Share::new(0, 0, 0));
                v.extend(share_cells(&s, csv));
            }
            v
        })
        .collect();
    Table {
        id: "table2",
        title: "Table 2: traffic leaving region".into(),
        header,
        rows,
    }
}

/// Table 3: accessibility for interest groups.
pub fn table3(r: &Report, csv: bool) -> Table {
    let mut header: Vec<String> = ["Level", "Region", "Interest group", "# Total"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(share_header("Network path accessible", csv));
    for a in &r.apps {
        header.extend(share_header(&format!("{a} accessible"), csv));
    }
    let rows = r
        .table3
        .iter()
        .map(|row| {
            let mut v = vec![
                row.level.to_string(),
                row.region.clone(),
                row.group_name.clone(),
                row.total.to_string(),
            ];
            v.extend(share_cells(&row.network, csv));
            for a in &r.apps {
                let s = row.apps.get(a).copied().unwrap_or(Share::new(0, 0, 0));
                v.extend(share_cells(&s, csv));
            }
            v
        })
        .collect();
    Table {
        id: "table3",
        title: "Table 3: accessibility for interest groups".into(),
        header,
        rows,
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// DNS table.
pub fn dns(r: &Report) -> Table {
    Table {
        id: "dns",
        title: "DNS names per app".into(),
        header: strs(&[
            "App",
            "Name",
            "Resolved via",
            "Unique IPs (name)",
            "Longest routed prefix",
            "IPs in prefix",
            "AS",
            "AS organisation",
            "Country",
            "Relevant",
            "Measurements",
        ]),
        rows: r
            .dns
            .iter()
            .map(|d| {
                vec![
                    d.app.clone(),
                    d.name.clone(),
                    d.transport.clone(),
                    d.name_ips.to_string(),
                    d.prefix.clone(),
                    d.ips.to_string(),
                    opt(&d.asn),
                    opt(&d.org),
                    d.countries.join(" "),
                    d.relevant.map_or("?".to_string(), yes),
                    d.measurements.to_string(),
                ]
            })
            .collect(),
    }
}

/// Server table.
pub fn servers(r: &Report) -> Table {
    Table {
        id: "servers",
        title: "Servers per app and vantage".into(),
        header: strs(&[
            "App",
            "Vantage",
            "Vantage country",
            "Server",
            "Port",
            "Proto",
            "Role",
            "Score",
            "Measurements",
            "Server country",
            "AS",
            "AS organisation",
            "Names",
            "Evidence",
        ]),
        rows: r
            .servers
            .iter()
            .map(|s| {
                vec![
                    s.app.clone(),
                    s.vantage.clone(),
                    opt(&s.vantage_country),
                    s.ip.to_string(),
                    s.port.to_string(),
                    s.proto.clone(),
                    opt(&s.role),
                    s.score.map_or(String::new(), |x| format!("{x:.3}")),
                    s.measurements.to_string(),
                    opt(&s.country),
                    opt(&s.asn),
                    opt(&s.org),
                    s.names.join(" "),
                    s.evidence.join("; "),
                ]
            })
            .collect(),
    }
}

/// Messaging servers per app and vantage on one line each (WeChat's
/// regional choice at a glance).
pub fn server_choice(r: &Report) -> Table {
    let mut m: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for s in r.servers.iter().filter(|s| s.role == Some(Role::Messaging)) {
        let v = match &s.vantage_country {
            Some(c) => format!("{} ({c})", s.vantage),
            None => s.vantage.clone(),
        };
        let e = m.entry((s.app.clone(), v)).or_default();
        let t = format!("{} ({})", s.ip, s.country.as_deref().unwrap_or("?"));
        if !e.contains(&t) {
            e.push(t);
        }
    }
    Table {
        id: "server_choice",
        title: "Messaging servers by vantage".into(),
        header: strs(&["App", "Vantage", "Messaging servers (country)"]),
        rows: m
            .into_iter()
            .map(|((app, v), ips)| vec![app, v, ips.join(" ")])
            .collect(),
    }
}

/// Interference findings counted per vantage, kind and rule.
pub fn interference_summary(r: &Report) -> Table {
    type Key = (String, InterferenceKind, InterferenceRule);
    let mut m: std::collections::BTreeMap<Key, (usize, Vec<String>)> = Default::default();
    for i in &r.interference {
        let e = m
            .entry((i.vantage.clone(), i.kind.clone(), i.rule.clone()))
            .or_default();
        e.0 += 1;
        if !e.1.contains(&i.measurement) {
            e.1.push(i.measurement.clone());
        }
    }
    Table {
        id: "interference_summary",
        title: "Interference by vantage".into(),
        header: strs(&["Vantage", "Kind", "Rule", "Findings", "Measurements"]),
        rows: m
            .into_iter()
            .map(|((v, k, rule), (n, ms))| {
                vec![
                    v,
                    k.to_string(),
                    rule.to_string(),
                    n.to_string(),
                    ms.join(" "),
                ]
            })
            .collect(),
    }
}

/// Interference findings.
pub fn interference(r: &Report) -> Table {
    Table {
        id: "interference",
        title: "Interference per vantage".into(),
        header: strs(&[
            "Vantage",
            "Measurement",
            "Capture",
            "Kind",
            "Rule",
            "Frames",
            "Claimed source",
            "Confidence",
            "Injector hops",
            "Evidence",
            "Summary",
        ]),
        rows: r
            .interference
            .iter()
            .map(|i| {
                vec![
                    i.vantage.clone(),
                    i.measurement.clone(),
                    i.capture.clone(),
                    i.kind.to_string(),
                    i.rule.to_string(),
                    i.frames
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    i.claimed_src.to_string(),
                    format!("{:.2}", i.confidence),
                    opt(&i.injector_hops),
                    i.evidence.clone(),
                    i.summary.clone(),
                ]
            })
            .collect(),
    }
}

/// Anomalies (the trace is in the last column, hops separated by ` | `).
pub fn anomalies(r: &Report) -> Table {
    Table {
        id: "anomalies",
        title: "Anomalies worth a look".into(),
        header: strs(&["Kind", "Measurement", "Trace", "Description", "Hops"]),
        rows: r
            .anomalies
            .iter()
            .map(|a| {
                vec![
                    a.kind.clone(),
                    a.measurement.clone(),
                    a.trace.clone(),
                    a.description.clone(),
                    a.hops.join(" | "),
                ]
            })
            .collect(),
    }
}

/// Failed and skipped measurements.
pub fn failures(r: &Report) -> Table {
    Table {
        id: "failures",
        title: "Measurements that failed".into(),
        header: strs(&["Measurement", "Kind", "App", "Pair", "Status", "Reason"]),
        rows: r
            .failures
            .iter()
            .map(|f| {
                vec![
                    f.measurement.clone(),
                    f.kind.clone(),
                    opt(&f.app),
                    f.pair.clone(),
                    f.status.clone(),
                    opt(&f.error),
                ]
            })
            .collect(),
    }
}

/// Unreadable files.
pub fn problems(r: &Report) -> Table {
    Table {
        id: "problems",
        title: "Files that could not be used".into(),
        header: strs(&["File", "Problem"]),
        rows: r
            .problems
            .iter()
            .map(|p| vec![p.file.clone(), p.message.clone()])
            .collect(),
    }
}

/// Paths per measurement.
pub fn paths(r: &Report) -> Table {
    Table {
        id: "paths",
        title: "Paths".into(),
        header: strs(&[
            "Measurement",
            "Class",
            "App",
            "Node",
            "Target",
            "Destination",
            "Countries",
            "Unknown hops",
            "Trace",
        ]),
        rows: r
            .paths
            .iter()
            .map(|p| {
                vec![
                    p.measurement.clone(),
                    p.class.clone(),
                    opt(&p.app),
                    p.node.clone(),
                    p.target.clone(),
                    p.dst.to_string(),
                    p.countries.join(" → "),
                    p.unknown.to_string(),
                    p.file.clone(),
                ]
            })
            .collect(),
    }
}

/// RTT summaries.
pub fn rtt(r: &Report) -> Table {
    Table {
        id: "rtt",
        title: "Application-path RTT (ms)".into(),
        header: strs(&["App", "n", "min", "median", "p90", "max"]),
        rows: r
            .rtt
            .iter()
            .map(|s| {
                vec![
                    s.app.clone(),
                    s.n.to_string(),
                    format!("{:.1}", s.min),
                    format!("{:.1}", s.median),
                    format!("{:.1}", s.p90),
                    format!("{:.1}", s.max),
                ]
            })
            .collect(),
    }
}

/// Geolocation changes.
pub fn geo_changes(r: &Report) -> Option<Table> {
    let g = r.geo_changes.as_ref()?;
    Some(Table {
        id: "geo_changes",
        title: format!("Geolocation changes: {} → {}", g.old_db, g.new_db),
        header: strs(&["Prefix", "Old", "New", "Addresses"]),
        rows: g
            .diff
            .groups
            .iter()
            .map(|c| {
                vec![
                    c.prefix.clone(),
                    c.old.clone().unwrap_or_else(|| "-".into()),
                    c.new.clone().unwrap_or_else(|| "-".into()),
                    c.addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect(),
    })
}

/// Active-probe verdicts per vantage × app, with the evidence to read.
pub fn probes(r: &Report) -> Table {
    Table {
        id: "probes",
        title: "Active probes (vantage × app)".into(),
        header: strs(&[
            "Vantage",
            "App",
            "Verdicts",
            "Measurements",
            "Control",
            "Keywords",
            "Evidence frames",
            "Evidence",
        ]),
        rows: r
            .probes
            .iter()
            .map(|p| {
                vec![
                    p.vantage.clone(),
                    p.app.clone(),
                    p.verdicts.join(" "),
                    p.measurements.join(" "),
                    p.controls.join(" "),
                    p.keywords.join(" "),
                    p.evidence_frames.to_string(),
                    p.evidence.clone(),
                ]
            })
            .collect(),
    }
}

/// All tables in report order.
pub fn all(r: &Report, csv: bool) -> Vec<Table> {
    let mut v = vec![
        table2(r, csv),
        table3(r, csv),
        dns(r),
        servers(r),
        server_choice(r),
        interference_summary(r),
        interference(r),
        anomalies(r),
        failures(r),
        problems(r),
        rtt(r),
    ];
    v.extend(geo_changes(r));
    if !r.probes.is_empty() {
        v.push(probes(r));
    }
    v.push(paths(r));
    v
}

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Appends one table as a Markdown section.
pub fn md_table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "## {}\n", t.title);
    if t.rows.is_empty() {
        out.push_str("(none)\n\n");
        return;
    }
    let head: Vec<String> = t.header.iter().map(|h| md_cell(h)).collect();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        t.header.iter().map(|_| " --- |").collect::<String>()
    );
    for r in &t.rows {
        let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// The summary lines shown above the tables.
pub fn summary_lines(r: &Report) -> Vec<String> {
    let c = &r.campaign;
    let join = |m: &std::collections::BTreeMap<String, usize>| {
        if m.is_empty() {
            return "none".to_string();
        }
        m.iter()
            .map(|(k, v)| format!("{} {v}", if k.is_empty() { "?" } else { k }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        format!(
            "Measurements: {} ({}; kinds: {})",
            c.measurements,
            join(&c.by_status),
            join(&c.by_kind)
        ),
        format!("Pair runs in the locality tables: {}", c.pair_runs),
        format!(
            "Apps: {}",
            if r.apps.is_empty() {
                "none".to_string()
            } else {
                r.apps.join(", ")
            }
        ),
        format!("Interest groups: {}", c.groups),
        format!("Country database: {}", c.geo_db),
        format!("ASN database: {}", c.asn_db.as_deref().unwrap_or("(none)")),
        format!(
            "DNS names set aside as background noise: {}",
            c.dns_noise_names
        ),
    ]
}

/// The whole report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# matador report: {}\n", md_cell(&r.campaign.name));
    for l in summary_lines(r) {
        let _ = writeln!(out, "- {}", md_cell(&l));
    }
    out.push_str(
        "\nPercentages count pair runs with a known answer (n); runs without a usable \
         path are listed as unknown. CI: 95 % Wilson score interval. Definitions: docs/report.md.\n\n",
    );
    for t in all(r, false) {
        md_table(&mut out, &t);
    }
    out
}

/// One CSV field (RFC 4180 quoting).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One table as CSV.
pub fn csv(t: &Table) -> String {
    let mut out = String::new();
    let line = |v: &[String]| v.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
    let _ = writeln!(out, "{}", line(&t.header));
    for r in &t.rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

/// Every table as CSV, each preceded by a `# <id>` line and followed by a blank line.
pub fn csv_all(r: &Report) -> String {
    let mut out = String::new();
    for t in all(r, true) {
        let _ = writeln!(out, "# {}", t.id);
        out.push_str(&csv(&t));
        out.push('\n');
    }
    out
}
