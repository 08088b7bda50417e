//! The report as data: every table, serialised as `--format json` and
//! rendered by the Markdown, CSV and HTML writers. All lists are sorted so
//! the same record always gives byte-identical output.

use super::record::Problem;
use super::stats::Share;
use crate::analysis::model::{InterferenceKind, InterferenceRule, Role};
use crate::geo::diff::DiffReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Schema of the JSON report.
pub const REPORT_SCHEMA: &str = "matador/report/1";

/// Everything `matador report` produces for one campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `matador/report/1`.
    pub schema: &'static str,
    /// Campaign summary.
    pub campaign: CampaignSummary,
    /// Apps measured (column order of the per-app tables).
    pub apps: Vec<String>,
    /// Table 2: traffic leaving region.
    pub table2: Vec<RegionRow>,
    /// Table 3: accessibility for interest groups.
    pub table3: Vec<GroupRow>,
    /// DNS table.
    pub dns: Vec<DnsRow>,
    /// Identified servers per app and vantage.
    pub servers: Vec<ServerRow>,
    /// Interference findings per vantage.
    pub interference: Vec<InterferenceRow>,
    /// Anomalies worth a look, each with its trace.
    pub anomalies: Vec<Anomaly>,
    /// Measurements that failed or were skipped.
    pub failures: Vec<Failure>,
    /// Files that could not be read (and capture read errors).
    pub problems: Vec<Problem>,
    /// Every path (trace) of the campaign with its geolocated hops.
    pub paths: Vec<PathRow>,
    /// Round-trip times of the application paths per app.
    pub rtt: Vec<RttSummary>,
    /// Geolocation changes between two databases, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo_changes: Option<GeoChanges>,
    /// Active-probe verdicts per vantage and app (campaigns with a probe step).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeRow>,
    /// Country of every node the record names (HTML map and path diagrams only).
    #[serde(skip)]
    pub node_countries: BTreeMap<String, String>,
    /// The interest groups of `--groups` (HTML map overlay only).
    #[serde(skip)]
    pub group_members: Vec<GroupMembers>,
}

/// One interest group as the HTML map's overlay needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMembers {
    /// Group id (`five_eyes`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO alpha-2 member codes, upper case.
    pub members: Vec<String>,
}

/// Active-probe verdicts of one vantage for one app, over the campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRow {
    /// Node the probes ran from.
    pub vantage: String,
    /// App probed.
    pub app: String,
    /// Verdicts seen (blocking ones first, `ok` last).
    pub verdicts: Vec<String>,
    /// Measurements whose probe step produced them.
    pub measurements: Vec<String>,
    /// Control vantages compared against.
    pub controls: Vec<String>,
    /// Host-header keywords isolated by bisection.
    pub keywords: Vec<String>,
    /// Capture frames cited as evidence, summed over endpoints and rounds.
    pub evidence_frames: usize,
    /// The first round's verdict matrix (relative to the campaign folder).
    pub evidence: String,
}

/// Who, what, how much.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignSummary {
    /// Folder name.
    pub name: String,
    /// Index entries.
    pub measurements: usize,
    /// Entries per status (`complete`, `failed`, `skipped`).
    pub by_status: BTreeMap<String, usize>,
    /// Entries per kind (`message`, `baseline`, `path`, `probe`).
    pub by_kind: BTreeMap<String, usize>,
    /// Pair runs (sender node, receiver node, repetition) in the locality tables.
    pub pair_runs: usize,
    /// Interest-group preset or file.
    pub groups: String,
    /// Country database (file name, type, build epoch).
    pub geo_db: String,
    /// ASN database (file name, type, build epoch), if any.
    pub asn_db: Option<String>,
    /// DNS names set aside as background noise (seen in baseline runs, no app server).
    pub dns_noise_names: usize,
}

/// Level of an M49 area as printed.
pub type LevelName = &'static str;

/// One row of Table 2.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRow {
    /// `region`, `sub-region` or `intermediate region`.
    pub level: LevelName,
    /// M49 code.
    pub code: String,
    /// Area name.
    pub name: String,
    /// Pair runs with both vantages in the area.
    pub pairs: usize,
    /// Measurements of those runs.
    pub measurements: usize,
    /// Direct network paths leaving the area (one answer per run).
    pub network: Share,
    /// Hops (over all direct paths of these runs) without a country.
    pub network_unknown_hops: usize,
    /// Per app: application paths leaving the area (one answer per run that measured the app).
    pub apps: BTreeMap<String, Share>,
}

/// One row of Table 3.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    /// Level of the area.
    pub level: LevelName,
    /// M49 code of the area.
    pub code: String,
    /// Area name.
    pub region: String,
    /// Group id.
    pub group: String,
    /// Group display name.
    pub group_name: String,
    /// Pair runs with both vantages in the area.
    pub total: usize,
    /// Direct network paths accessible to the group.
    pub network: Share,
    /// Per app: application paths accessible to the group.
    pub apps: BTreeMap<String, Share>,
}

/// One row of the DNS table: one name's addresses inside one routed prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRow {
    /// App the name is attributed to.
    pub app: String,
    /// The name (lower case, no trailing dot).
    pub name: String,
    /// How it was resolved (`udp`, `tcp`, `dot`, `doh`, `wechat-httpdns`), sorted, joined by `+`.
    pub transport: String,
    /// Unique addresses of the name over the campaign.
    pub name_ips: usize,
    /// Longest routed prefix (ASN database network), `-` when unknown.
    pub prefix: String,
    /// Unique addresses of the name in this prefix.
    pub ips: usize,
    /// Origin AS.
    pub asn: Option<u32>,
    /// AS organisation.
    pub org: Option<String>,
    /// Countries of those addresses (sorted, `?` for unknown).
    pub countries: Vec<String>,
    /// Whether the name (or one of its addresses) is a messaging server of
    /// the app; `None` when the record holds no correlation result (server
    /// roles) for the app at all.
    pub relevant: Option<bool>,
    /// Measurements in which the name was resolved.
    pub measurements: usize,
}

/// One identified server at one vantage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRow {
    /// App id.
    pub app: String,
    /// Node the phone's traffic left through (`?` when the record does not say).
    pub vantage: String,
    /// Country of that node.
    pub vantage_country: Option<String>,
    /// Server address.
    pub ip: IpAddr,
    /// Server port.
    pub port: u16,
    /// `tcp` / `udp`.
    pub proto: String,
    /// Role from correlation (`messaging`, `media`, …).
    pub role: Option<Role>,
    /// Highest correlation score over the measurements.
    pub score: Option<f64>,
    /// Measurements that found the server at this vantage.
    pub measurements: usize,
    /// Names seen for the address.
    pub names: Vec<String>,
    /// Evidence, strongest first (first 8 distinct).
    pub evidence: Vec<String>,
    /// Server country.
    pub country: Option<String>,
    /// Server AS.
    pub asn: Option<u32>,
    /// AS organisation.
    pub org: Option<String>,
}

/// One interference finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterferenceRow {
    /// Node the capture belongs to.
    pub vantage: String,
    /// Measurement id.
    pub measurement: String,
    /// Capture file name.
    pub capture: String,
    /// `dns_forgery` / `injected_packet`.
    pub kind: InterferenceKind,
    /// Rule that fired.
    pub rule: InterferenceRule,
    /// Frames (1-based).
    pub frames: Vec<u64>,
    /// Claimed source.
    pub claimed_src: IpAddr,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Estimated injector distance in hops.
    pub injector_hops: Option<u8>,
    /// Evidence as compact JSON (keys sorted).
    pub evidence: String,
    /// One-line explanation.
    pub summary: String,
}

/// Something worth a look, with its trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// `detour`, `group_bypass` or `implausible_hop`.
    pub kind: String,
    /// Measurement id.
    pub measurement: String,
    /// Trace file.
    pub trace: String,
    /// What is odd.
    pub description: String,
    /// The trace, hop by hop (`hop addr country rtt`).
    pub hops: Vec<String>,
}

/// A measurement that did not complete.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// Measurement id.
    pub measurement: String,
    /// Kind.
    pub kind: String,
    /// App.
    pub app: Option<String>,
    /// `sender_country → receiver_country`.
    pub pair: String,
    /// `failed` / `skipped` / other.
    pub status: String,
    /// Reason given by the campaign.
    pub error: Option<String>,
}

/// One geolocated hop (or endpoint) of a path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// Hop number; 0 for the source, `None` for a destination that did not answer.
    pub hop: Option<u32>,
    /// Responding address (`None`: no answer).
    pub addr: Option<IpAddr>,
    /// Country.
    pub country: Option<String>,
    /// AS.
    pub asn: Option<u32>,
    /// Smallest RTT, ms.
    pub rtt: Option<f64>,
}

/// One trace of the campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathRow {
    /// Measurement id.
    pub measurement: String,
    /// `direct`, `application` or `other`.
    pub class: String,
    /// App of the target server (application paths).
    pub app: Option<String>,
    /// Node that ran the trace.
    pub node: String,
    /// Target (node name or address) from the file name.
    pub target: String,
    /// Destination address.
    pub dst: IpAddr,
    /// Trace file.
    pub file: String,
    /// Source, hops and destination.
    pub hops: Vec<Hop>,
    /// Countries crossed in order, consecutive repeats merged, `?` for unknown.
    pub countries: Vec<String>,
    /// Hops and endpoints without a country.
    pub unknown: usize,
    /// Whether the trace belongs to a measurement counted in Tables 2 and 3
    /// (complete, kind `message` or `path`; HTML map only).
    #[serde(skip)]
    pub locality: bool,
}

/// RTT distribution of one app's application paths (destination or last answering hop).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RttSummary {
    /// App id.
    pub app: String,
    /// Samples.
    pub n: usize,
    /// Minimum, ms.
    pub min: f64,
    /// Median, ms.
    pub median: f64,
    /// 90th percentile (nearest rank), ms.
    pub p90: f64,
    /// Maximum, ms.
    pub max: f64,
    /// The samples, sorted (HTML plots only).
    #[serde(skip)]
    pub samples: Vec<f64>,
}

/// Geolocation changes between an old database and the report's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeoChanges {
    /// Old database (file name).
    pub old_db: String,
    /// New database (file name).
    pub new_db: String,
    /// The diff over every address of the record.
    pub diff: DiffReport,
}
