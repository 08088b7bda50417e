//! Reading the stored campaign record (docs/campaign-record.md): `index.json`,
//! `lab.json`, `measurements/<id>/analysis.json` and
//! `measurements/<id>/traces/*.json`. Nothing else is read.
//!
//! A file that cannot be read or parsed becomes a [`Problem`] naming it; the
//! rest of the campaign is still loaded. Only an unreadable `index.json` (or a
//! missing campaign folder) is fatal, because without it there is nothing to
//! report on.

use super::ReportError;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use crate::analysis::correlate::{ANALYSIS_SCHEMA, CorrelatedServer, MeasurementAnalysis};
pub use crate::campaign::record::{INDEX_SCHEMA, IndexEntry, Status, given};
/// Schema of `lab.json`.
pub const LAB_SCHEMA: &str = "matador/lab/1";
/// Schema a trace file may carry (RIPE Atlas results carry none).
pub const TRACE_SCHEMA: &str = "matador/trace/1";

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    schema: Option<String>,
    /// Entries, each parsed on its own: a bad one is a problem, not fatal.
    #[serde(default)]
    measurements: Vec<serde_json::Value>,
}

/// A node of `lab.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabNode {
    /// Node name (`de-1`).
    pub name: String,
    /// Country (ISO alpha-2).
    #[serde(default)]
    pub country: Option<String>,
    /// Address.
    #[serde(default)]
    pub addr: Option<IpAddr>,
    /// Further addresses (e.g. IPv6 beside IPv4).
    #[serde(default)]
    pub addrs: Vec<IpAddr>,
    /// `node`, `router`, `phone` or `server`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// A phone of `lab.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabPhone {
    /// Phone name (`phone-a`).
    pub name: String,
    /// ADB serial.
    #[serde(default)]
    pub serial: Option<String>,
    /// Phone address.
    #[serde(default)]
    pub addr: Option<IpAddr>,
    /// Node carrying its traffic.
    #[serde(default)]
    pub node: Option<String>,
}

/// `lab.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Lab {
    /// Nodes, routers, servers.
    #[serde(default)]
    pub nodes: Vec<LabNode>,
    /// Phones.
    #[serde(default)]
    pub phones: Vec<LabPhone>,
    /// Virtual lab: the lab's mmdb (country + ASN), relative to the campaign folder or absolute.
    #[serde(default, alias = "geo_db", alias = "mmdb_path", alias = "lab_mmdb")]
    pub mmdb: Option<PathBuf>,
}

impl Lab {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&LabNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node owning this address, if any.
    pub fn node_by_addr(&self, ip: IpAddr) -> Option<&LabNode> {
        let ip = ip.to_canonical();
        self.nodes
            .iter()
            .find(|n| n.addr == Some(ip) || n.addrs.contains(&ip))
    }
}

/// One reply to a traceroute probe (`{from, rtt, ttl, size}` or `{x: "*"}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TraceReply {
    /// Responding address (absent for a timeout).
    #[serde(default)]
    pub from: Option<IpAddr>,
    /// Round-trip time, ms.
    #[serde(default)]
    pub rtt: Option<f64>,
    /// TTL of the reply.
    #[serde(default)]
    pub ttl: Option<u8>,
    /// `"*"` for a timeout.
    #[serde(default)]
    pub x: Option<String>,
    /// Error text of the probe, if any.
    #[serde(default)]
    pub err: Option<serde_json::Value>,
}

/// One hop of a traceroute.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TraceHop {
    /// Hop number (1-based).
    #[serde(default)]
    pub hop: u32,
    /// Replies to the probes of this hop.
    #[serde(default)]
    pub result: Vec<TraceReply>,
}

/// A RIPE-Atlas-like traceroute result, plus matador's optional fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trace {
    /// Address family (4 or 6).
    #[serde(default)]
    pub af: Option<u8>,
    /// Destination address.
    pub dst_addr: IpAddr,
    /// Source address.
    #[serde(default)]
    pub src_addr: Option<IpAddr>,
    /// `ICMP`, `UDP` or `TCP`.
    #[serde(default)]
    pub proto: Option<String>,
    /// Start time (seconds).
    #[serde(default)]
    pub timestamp: Option<f64>,
    /// Hops.
    #[serde(default)]
    pub result: Vec<TraceHop>,
    /// matador: node that ran the trace.
    #[serde(default)]
    pub node: Option<String>,
    /// matador: `direct` (node to node) or `application` (node to app server).
    #[serde(default)]
    pub kind: Option<String>,
    /// matador: app whose server is the target.
    #[serde(default)]
    pub app: Option<String>,
    /// matador: whether the destination answered.
    #[serde(default)]
    pub destination_reached: Option<bool>,
}

/// A trace file with the names from its file name (`<node>--<target>.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFile {
    /// Path relative to the campaign folder.
    pub file: String,
    /// Node from the file name (or the trace's `node`).
    pub node: String,
    /// Target from the file name.
    pub target: String,
    /// The result.
    pub trace: Trace,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// Path relative to the campaign folder.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// One measurement with what its folder holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The index entry.
    pub entry: IndexEntry,
    /// `analysis.json`, when present and readable.
    pub analysis: Option<MeasurementAnalysis>,
    /// Readable traces, sorted by file name.
    pub traces: Vec<TraceFile>,
}

/// A loaded campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// Folder name (not the full path: reports do not depend on where the folder lies).
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// `lab.json`, when present.
    pub lab: Option<Lab>,
    /// Measurements in index order.
    pub measurements: Vec<Measurement>,
    /// Files that could not be read, sorted.
    pub problems: Vec<Problem>,
    /// Node → country (upper case): `lab.json`, else the index entries.
    node_countries: std::collections::BTreeMap<String, String>,
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

fn check_schema(
    v: &serde_json::Value,
    want: &str,
    file: &str,
    required: bool,
) -> Result<(), String> {
    match v.get("schema").and_then(|s| s.as_str()) {
        Some(s) if s == want => Ok(()),
        Some(s) => Err(format!("{file}: schema {s:?} is not {want:?}")),
        None if required => Err(format!("{file}: no \"schema\" field (expected {want:?})")),
        None => Ok(()),
    }
}

/// Measurement ids become folder names; refuse anything that could escape.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\', '\0'])
        && id.chars().all(|c| !c.is_control())
}

impl Campaign {
    /// Loads the record under `dir`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NotACampaign {
                dir: dir.to_path_buf(),
                message: "not a directory".into(),
            });
        }
        let index_path = dir.join("index.json");
        let text = std::fs::read_to_string(&index_path).map_err(|source| ReportError::Io {
            path: index_path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ReportError::BadFile {
                path: index_path.clone(),
                message: e.to_string(),
            })?;
        check_schema(&value, INDEX_SCHEMA, "index.json", true).map_err(|message| {
            ReportError::BadFile {
                path: index_path.clone(),
                message,
            }
        })?;
        let index: IndexFile = serde_json::from_value(value).map_err(|e| ReportError::BadFile {
            path: index_path.clone(),
            message: e.to_string(),
        })?;
        let _ = index.schema;
        let mut problems = Vec::new();
        let lab = load_lab(dir, &mut problems);
        let mut seen = std::collections::BTreeSet::new();
        let mut entries = Vec::new();
        for (i, v) in index.measurements.into_iter().enumerate() {
            let e: IndexEntry = match serde_json::from_value(v) {
                Ok(e) => e,
                Err(err) => {
                    problems.push(Problem {
                        file: "index.json".into(),
                        message: format!("measurement entry {i} unreadable ({err}); skipped"),
                    });
                    continue;
                }
            };
            if !safe_id(&e.id) {
                problems.push(Problem {
                    file: "index.json".into(),
                    message: format!(
                        "measurement id {:?} is not a valid folder name; skipped",
                        e.id
                    ),
                });
            } else if !seen.insert(e.id.clone()) {
                problems.push(Problem {
                    file: "index.json".into(),
                    message: format!("measurement id {:?} listed twice; first entry kept", e.id),
                });
            } else {
                entries.push(e);
            }
        }
        let loaded: Vec<(Measurement, Vec<Problem>)> = entries
            .into_par_iter()
            .map(|e| load_measurement(dir, e))
            .collect();
        let mut measurements = Vec::with_capacity(loaded.len());
        for (m, p) in loaded {
            measurements.push(m);
            problems.extend(p);
        }
        problems.sort();
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        let mut node_countries = std::collections::BTreeMap::new();
        for m in &measurements {
            let e = &m.entry;
            for (n, c) in [
                (&e.sender_node, &e.sender_country),
                (&e.receiver_node, &e.receiver_country),
            ] {
                if let (Some(n), Some(c)) = (given(n), given(c)) {
                    node_countries
                        .entry(n.to_string())
                        .or_insert_with(|| c.to_ascii_uppercase());
                }
            }
        }
        // lab.json wins over the index.
        for n in lab.iter().flat_map(|l| l.nodes.iter()) {
            if let Some(c) = &n.country {
                node_countries.insert(n.name.clone(), c.to_ascii_uppercase());
            }
        }
        Ok(Campaign {
            name,
            dir: dir.to_path_buf(),
            lab,
            measurements,
            problems,
            node_countries,
        })
    }

    /// Country of a node: from `lab.json`, else from an index entry naming it.
    pub fn node_country(&self, node: &str) -> Option<String> {
        self.node_countries.get(node).cloned()
    }

    /// Country (upper case) of every node the record names.
    pub fn node_countries(&self) -> &std::collections::BTreeMap<String, String> {
        &self.node_countries
    }
}

fn load_lab(dir: &Path, problems: &mut Vec<Problem>) -> Option<Lab> {
    let path = dir.join("lab.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem {
                file: "lab.json".into(),
                message: e.to_string(),
            });
            return None;
        }
    };
    let parsed = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            check_schema(&v, LAB_SCHEMA, "lab.json", true)?;
            serde_json::from_value::<Lab>(v).map_err(|e| format!("lab.json: {e}"))
        });
    match parsed {
        Ok(l) => Some(l),
        Err(message) => {
            problems.push(Problem {
                file: "lab.json".into(),
                message,
            });
            None
        }
    }
}

fn load_measurement(dir: &Path, entry: IndexEntry) -> (Measurement, Vec<Problem>) {
    let mdir = dir.join("measurements").join(&entry.id);
    let mut problems = Vec::new();
    let apath = mdir.join("analysis.json");
    let analysis = match std::fs::read_to_string(&apath) {
        Ok(text) => match parse_analysis(&text) {
            Ok(a) => Some(a),
            Err(message) => {
                problems.push(Problem {
                    file: rel(dir, &apath),
                    message,
                });
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if entry.status == Status::Complete && entry.files.iter().any(|f| f == "analysis.json")
            {
                problems.push(Problem {
                    file: rel(dir, &apath),
                    message: "listed in the index but missing".into(),
                });
            }
            None
        }
        Err(e) => {
            problems.push(Problem {
                file: rel(dir, &apath),
                message: e.to_string(),
            });
            None
        }
    };
    let mut traces = Vec::new();
    let tdir = mdir.join("traces");
    if let Ok(rd) = std::fs::read_dir(&tdir) {
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let file = rel(dir, &f);
            match std::fs::read_to_string(&f)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_traces(&t))
            {
                Ok(ts) => {
                    let stem = f
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let (fnode, target) = match stem.split_once("--") {
                        Some((a, b)) => (a.to_string(), b.to_string()),
                        None => (String::new(), stem.clone()),
                    };
                    for trace in ts {
                        let node = trace.node.clone().unwrap_or_else(|| fnode.clone());
                        traces.push(TraceFile {
                            file: file.clone(),
                            node,
                            target: target.clone(),
                            trace,
                        });
                    }
                }
                Err(message) => problems.push(Problem { file, message }),
            }
        }
    }
    (
        Measurement {
            entry,
            analysis,
            traces,
        },
        problems,
    )
}

/// Parses `analysis.json` text, checking its schema.
pub fn parse_analysis(text: &str) -> Result<MeasurementAnalysis, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    check_schema(&v, ANALYSIS_SCHEMA, "analysis.json", true)?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Parses a trace file: one RIPE-Atlas-like result object or an array of them.
pub fn parse_traces(text: &str) -> Result<Vec<Trace>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        o => vec![o],
    };
    items
        .into_iter()
        .map(|o| {
            check_schema(&o, TRACE_SCHEMA, "trace", false)?;
            serde_json::from_value::<Trace>(o).map_err(|e| e.to_string())
        })
        .collect()
}

/// The interest groups the campaign's scenario names (`geo.groups` of the
/// `scenario.yaml` its folder keeps): a preset as written, a groups file
/// resolved against the campaign folder when relative (it stood beside the
/// scenario). `None` when the folder has no scenario or the scenario has
/// no `geo` section (a section without `groups` gives its default,
/// `current`).
pub fn scenario_groups(dir: &Path) -> Result<Option<String>, ReportError> {
    // Only the `geo` section, as the scenario's own type reads it; the
    // rest of a recorded scenario (perhaps from an older matador) is not
    // this report's business.
    #[derive(Deserialize)]
    struct Scenario {
        geo: Option<crate::scenario::GeoSpec>,
    }
    let path = dir.join("scenario.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReportError::Io { path, source }),
    };
    let sc: Scenario = serde_yaml_ng::from_str(&text).map_err(|e| ReportError::BadFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let Some(g) = sc.geo.map(|g| g.groups) else {
        return Ok(None);
    };
    if crate::geo::groups::PRESETS.contains(&g.as_str()) || Path::new(&g).is_absolute() {
        return Ok(Some(g));
    }
    Ok(Some(dir.join(&g).to_string_lossy().into_owned()))
}

#[cfg(test)]
mod scenario_groups_tests {
    use super::scenario_groups;

    #[test]
    fn the_scenario_names_the_groups_of_its_report() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(scenario_groups(d.path()).unwrap(), None);
        let w = |s: &str| std::fs::write(d.path().join("scenario.yaml"), s).unwrap();
        w("name: x\ngeo:\n  groups: pam2016\n");
        assert_eq!(
            scenario_groups(d.path()).unwrap().as_deref(),
            Some("pam2016")
        );
        w("name: x\n");
        assert_eq!(scenario_groups(d.path()).unwrap(), None);
        w("name: x\ngeo: {groups: mine.yaml}\n");
        let p = d.path().join("mine.yaml").to_string_lossy().into_owned();
        assert_eq!(scenario_groups(d.path()).unwrap(), Some(p));
        w("geo: [");
        let e = scenario_groups(d.path()).unwrap_err().to_string();
        assert!(e.contains("scenario.yaml"), "{e}");
    }
}
