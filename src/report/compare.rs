//! `matador report A B --compare`: what changed between two campaigns —
//! servers, paths, locality (Table 2 and 3 shares) and interference.

use super::model::Report;
use super::stats::Share;
use super::tables::{self, Table};
use crate::analysis::model::{InterferenceKind, InterferenceRule};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Schema of the JSON comparison.
pub const COMPARE_SCHEMA: &str = "matador/report-compare/1";

/// A server as compared: app, vantage, address, port, protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ServerKey {
    /// App id.
    pub app: String,
    /// Vantage node.
    pub vantage: String,
    /// Address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: String,
    /// Role.
    pub role: Option<String>,
    /// Server country.
    pub country: Option<String>,
}

/// One share that differs between the campaigns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareChange {
    /// `table2` or `table3`.
    pub table: &'static str,
    /// Area name (with level).
    pub area: String,
    /// Group (Table 3 only).
    pub group: Option<String>,
    /// `network` or an app id.
    pub column: String,
    /// In campaign A (absent: no such row/column).
    pub a: Option<Share>,
    /// In campaign B.
    pub b: Option<Share>,
}

/// Paths from one node to one target whose country sequences differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathChange {
    /// `direct`, `application`, `other`.
    pub class: String,
    /// App (application paths).
    pub app: Option<String>,
    /// Tracing node.
    pub node: String,
    /// Target.
    pub target: String,
    /// Distinct country sequences in A.
    pub a: Vec<String>,
    /// Distinct country sequences in B.
    pub b: Vec<String>,
}

/// Interference counts per vantage, kind and rule that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterferenceChange {
    /// Vantage node.
    pub vantage: String,
    /// Kind.
    pub kind: InterferenceKind,
    /// Rule.
    pub rule: InterferenceRule,
    /// Findings in A.
    pub a: usize,
    /// Findings in B.
    pub b: usize,
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `matador/report-compare/1`.
    pub schema: &'static str,
    /// Campaign A.
    pub a: String,
    /// Campaign B.
    pub b: String,
    /// Servers found only in B.
    pub servers_added: Vec<ServerKey>,
    /// Servers found only in A.
    pub servers_removed: Vec<ServerKey>,
    /// Locality shares that differ (k, n or unknown).
    pub locality: Vec<ShareChange>,
    /// Paths whose countries differ.
    pub paths: Vec<PathChange>,
    /// Interference counts that differ.
    pub interference: Vec<InterferenceChange>,
}

fn servers(r: &Report) -> BTreeSet<ServerKey> {
    r.servers
        .iter()
        .map(|s| ServerKey {
            app: s.app.clone(),
            vantage: s.vantage.clone(),
            ip: s.ip.to_string(),
            port: s.port,
            proto: s.proto.clone(),
            // (the name: the lists were always sorted by it)
            role: s.role.map(|r| r.as_str().to_string()),
            country: s.country.clone(),
        })
        .collect()
}

type ShareKey = (&'static str, String, Option<String>, String);

fn shares(r: &Report) -> BTreeMap<ShareKey, Share> {
    let mut m = BTreeMap::new();
    for row in &r.table2 {
        let area = format!("{} ({})", row.name, row.level);
        m.insert(
            ("table2", area.clone(), None, "network".into()),
            row.network,
        );
        for (a, s) in &row.apps {
            m.insert(("table2", area.clone(), None, a.clone()), *s);
        }
    }
    for row in &r.table3 {
        let area = format!("{} ({})", row.region, row.level);
        let g = Some(row.group.clone());
        m.insert(
            ("table3", area.clone(), g.clone(), "network".into()),
            row.network,
        );
        for (a, s) in &row.apps {
            m.insert(("table3", area.clone(), g.clone(), a.clone()), *s);
        }
    }
    m
}

type PathKey = (String, Option<String>, String, String);

fn paths(r: &Report) -> BTreeMap<PathKey, BTreeSet<String>> {
    let mut m: BTreeMap<PathKey, BTreeSet<String>> = BTreeMap::new();
    for p in &r.paths {
        m.entry((
            p.class.clone(),
            p.app.clone(),
            p.node.clone(),
            p.target.clone(),
        ))
        .or_default()
        .insert(p.countries.join(" → "));
    }
    m
}

/// Findings per vantage, kind and rule.
type InterferenceKey = (String, InterferenceKind, InterferenceRule);

fn interference(r: &Report) -> BTreeMap<InterferenceKey, usize> {
    let mut m = BTreeMap::new();
    for i in &r.interference {
        *m.entry((i.vantage.clone(), i.kind.clone(), i.rule.clone()))
            .or_insert(0) += 1;
    }
    m
}

/// Compares campaign `a` with campaign `b`.
pub fn compare(a: &Report, b: &Report) -> Comparison {
    let (sa, sb) = (servers(a), servers(b));
    let (ha, hb) = (shares(a), shares(b));
    let keys: BTreeSet<&ShareKey> = ha.keys().chain(hb.keys()).collect();
    let same = |x: &Share, y: &Share| (x.k, x.n, x.unknown) == (y.k, y.n, y.unknown);
    let locality = keys
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (ha.get(k).copied(), hb.get(k).copied());
            match (&x, &y) {
                (Some(x), Some(y)) if same(x, y) => None,
                _ => Some(ShareChange {
                    table: k.0,
                    area: k.1.clone(),
                    group: k.2.clone(),
                    column: k.3.clone(),
                    a: x,
                    b: y,
                }),
            }
        })
        .collect();
    let (pa, pb) = (paths(a), paths(b));
    let pkeys: BTreeSet<&PathKey> = pa.keys().chain(pb.keys()).collect();
    let empty = BTreeSet::new();
    let paths = pkeys
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (pa.get(k).unwrap_or(&empty), pb.get(k).unwrap_or(&empty));
            (x != y).then(|| PathChange {
                class: k.0.clone(),
                app: k.1.clone(),
                node: k.2.clone(),
                target: k.3.clone(),
                a: x.iter().cloned().collect(),
                b: y.iter().cloned().collect(),
            })
        })
        .collect();
    let (ia, ib) = (interference(a), interference(b));
    let ikeys: BTreeSet<_> = ia.keys().chain(ib.keys()).collect();
    let interference = ikeys
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (
                ia.get(k).copied().unwrap_or(0),
                ib.get(k).copied().unwrap_or(0),
            );
            (x != y).then(|| InterferenceChange {
                vantage: k.0.clone(),
                kind: k.1.clone(),
                rule: k.2.clone(),
                a: x,
                b: y,
            })
        })
        .collect();
    Comparison {
        schema: COMPARE_SCHEMA,
        a: a.campaign.name.clone(),
        b: b.campaign.name.clone(),
        servers_added: sb.difference(&sa).cloned().collect(),
        servers_removed: sa.difference(&sb).cloned().collect(),
        locality,
        paths,
        interference,
    }
}

fn server_rows(v: &[ServerKey]) -> Vec<Vec<String>> {
    v.iter()
        .map(|s| {
            vec![
                s.app.clone(),
                s.vantage.clone(),
                s.ip.clone(),
                s.port.to_string(),
                s.proto.clone(),
                s.role.clone().unwrap_or_default(),
                s.country.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

fn share_text(s: &Option<Share>) -> String {
    match s {
        Some(s) if s.unknown > 0 => format!("{} +{} unknown", s.long_text(), s.unknown),
        Some(s) => s.long_text(),
        None => "(absent)".into(),
    }
}

/// The comparison's tables.
pub fn comparison_tables(c: &Comparison) -> Vec<Table> {
    let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let sh = h(&[
        "App", "Vantage", "Server", "Port", "Proto", "Role", "Country",
    ]);
    vec![
        Table {
            id: "servers_added",
            title: format!("Servers only in {}", c.b),
            header: sh.clone(),
            rows: server_rows(&c.servers_added),
        },
        Table {
            id: "servers_removed",
            title: format!("Servers only in {}", c.a),
            header: sh,
            rows: server_rows(&c.servers_removed),
        },
        Table {
            id: "locality",
            title: "Locality shares that changed".into(),
            header: h(&["Table", "Area", "Group", "Column", &c.a, &c.b]),
            rows: c
                .locality
                .iter()
                .map(|l| {
                    vec![
                        l.table.to_string(),
                        l.area.clone(),
                        l.group.clone().unwrap_or_default(),
                        l.column.clone(),
                        share_text(&l.a),
                        share_text(&l.b),
                    ]
                })
                .collect(),
        },
        Table {
            id: "paths",
            title: "Paths whose countries changed".into(),
            header: h(&["Class", "App", "Node", "Target", &c.a, &c.b]),
            rows: c
                .paths
                .iter()
                .map(|p| {
                    vec![
                        p.class.clone(),
                        p.app.clone().unwrap_or_default(),
                        p.node.clone(),
                        p.target.clone(),
                        p.a.join("; "),
                        p.b.join("; "),
                    ]
                })
                .collect(),
        },
        Table {
            id: "interference",
            title: "Interference findings that changed".into(),
            header: h(&["Vantage", "Kind", "Rule", &c.a, &c.b]),
            rows: c
                .interference
                .iter()
                .map(|i| {
                    vec![
                        i.vantage.clone(),
                        i.kind.to_string(),
                        i.rule.to_string(),
                        i.a.to_string(),
                        i.b.to_string(),
                    ]
                })
                .collect(),
        },
    ]
}

/// Renders the comparison (same formats as a report).
pub fn render(c: &Comparison, format: super::Format) -> String {
    let ts = comparison_tables(c);
    match format {
        super::Format::Markdown => {
            let mut out = format!("# matador comparison: {} → {}\n\n", c.a, c.b);
            for t in &ts {
                tables::md_table(&mut out, t);
            }
            out
        }
        super::Format::Csv => {
            let mut out = String::new();
            for t in &ts {
                let _ = writeln!(out, "# {}", t.id);
                out.push_str(&tables::csv(t));
                out.push('\n');
            }
            out
        }
        super::Format::Json => {
            let mut s = serde_json::to_string_pretty(c).unwrap_or_default();
            s.push('\n');
            s
        }
        super::Format::Html => {
            super::html::simple_page(&format!("matador comparison: {} → {}", c.a, c.b), &ts)
        }
    }
}
