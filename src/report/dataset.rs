//! The campaign as a columnar dataset: one Parquet file per table
//! (`measurements`, `paths`, `hops`, `areas`, `groups`, `servers`, `dns`, `flows`,
//! `events`, `interference`, `probes`), so analysts query a campaign with DuckDB,
//! pandas or Spark without reading matador's JSON. Schema: docs/dataset.md.
//!
//! Rows come from the same data the report is built from: the loaded
//! [`Campaign`] and the built [`Report`]. The low-level tables (paths with
//! their hops, measurements with their pair run, the M49 areas, the
//! interest groups) are enough
//! to recompute Tables 2 and 3 in SQL; `tests/report_dataset.rs` does so
//! with DuckDB and compares every count with the report's.
//!
//! Lists (names, evidence, frames) are stored as JSON array text, which
//! every engine can parse (`json_extract`, `from_json`); timestamps as
//! UNIX seconds (DOUBLE). Files are written uncompressed: the crate is
//! built without codecs to keep compile time low (docs/dev-notes/issue-24-dataset.md).

use super::model::Report;
use super::record::{Campaign, Measurement, Problem, given};
use crate::analysis::model::Role;
use crate::capture::Timestamp;
use crate::device::events::EventLog;
use crate::geo::m49::M49;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Schema version of the dataset (written as Parquet key-value metadata `matador.schema`).
pub const DATASET_SCHEMA: &str = "matador/dataset/1";

/// Errors of the dataset writer; each names the table or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Encoding a table failed.
    #[error("dataset table {table}: {source}")]
    Parquet {
        /// Table name.
        table: &'static str,
        /// The Parquet error.
        source: parquet::errors::ParquetError,
    },
    /// A row does not fit the table's schema (a bug in this module).
    #[error("dataset table {table}, column {column}: {message}")]
    Schema {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// Type of a column as stored in Parquet (and as DuckDB reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text (`BYTE_ARRAY (UTF8)`, DuckDB `VARCHAR`).
    Text,
    /// 64-bit integer (`INT64`, DuckDB `BIGINT`).
    Int,
    /// 64-bit float (`DOUBLE`).
    Float,
    /// Boolean (`BOOLEAN`).
    Bool,
}

impl Kind {
    fn parquet(self) -> &'static str {
        match self {
            Kind::Text => "BYTE_ARRAY",
            Kind::Int => "INT64",
            Kind::Float => "DOUBLE",
            Kind::Bool => "BOOLEAN",
        }
    }
}

/// One column of a table: its name, type, whether it may be null, and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Stored type.
    pub kind: Kind,
    /// `false`: never null.
    pub nullable: bool,
}

const fn col(name: &'static str, kind: Kind, nullable: bool) -> Column {
    Column {
        name,
        kind,
        nullable,
    }
}

use Kind::{Bool, Float, Int, Text};

/// Columns of `measurements`: one row per index entry.
pub const MEASUREMENTS: &[Column] = &[
    col("id", Text, false),
    col("kind", Text, false),
    col("app", Text, true),
    col("status", Text, false),
    col("error", Text, true),
    col("sender", Text, true),
    col("receiver", Text, true),
    col("sender_node", Text, true),
    col("receiver_node", Text, true),
    col("sender_country", Text, true),
    col("receiver_country", Text, true),
    col("repetition", Int, true),
    col("messages", Int, true),
    col("started", Text, true),
    col("ended", Text, true),
    col("run", Text, true),
    col("run_sender_country", Text, true),
    col("run_receiver_country", Text, true),
    col("pair", Int, true),
];

/// Columns of `paths`: one row per trace (the report's `paths`).
pub const PATHS: &[Column] = &[
    col("path_id", Int, false),
    col("measurement", Text, false),
    col("file", Text, false),
    col("node", Text, false),
    col("target", Text, false),
    col("dst", Text, false),
    col("class", Text, false),
    col("app", Text, true),
    col("countries", Text, false),
    col("unknown_hops", Int, false),
];

/// Columns of `hops`: source, hops and destination of every path.
pub const HOPS: &[Column] = &[
    col("path_id", Int, false),
    col("seq", Int, false),
    col("hop", Int, true),
    col("addr", Text, true),
    col("country", Text, true),
    col("asn", Int, true),
    col("rtt_ms", Float, true),
];

/// Columns of `areas`: the UN M49 classification the locality tables use.
pub const AREAS: &[Column] = &[
    col("country", Text, false),
    col("name", Text, false),
    col("region_code", Text, true),
    col("region", Text, true),
    col("subregion_code", Text, true),
    col("subregion", Text, true),
    col("intermediate_code", Text, true),
    col("intermediate", Text, true),
];

/// Columns of `groups`: the interest groups of the report (`--groups`), one
/// row per member country.
pub const GROUPS: &[Column] = &[
    col("group_id", Text, false),
    col("group_name", Text, false),
    col("country", Text, false),
];

/// Columns of `servers`: the report's identified servers.
pub const SERVERS: &[Column] = &[
    col("app", Text, false),
    col("vantage", Text, false),
    col("vantage_country", Text, true),
    col("ip", Text, false),
    col("port", Int, false),
    col("proto", Text, false),
    col("role", Text, true),
    col("score", Float, true),
    col("measurements", Int, false),
    col("names", Text, false),
    col("evidence", Text, false),
    col("country", Text, true),
    col("asn", Int, true),
    col("org", Text, true),
];

/// Columns of `dns`: the report's DNS table.
pub const DNS: &[Column] = &[
    col("app", Text, false),
    col("name", Text, false),
    col("transport", Text, false),
    col("name_ips", Int, false),
    col("prefix", Text, false),
    col("ips", Int, false),
    col("asn", Int, true),
    col("org", Text, true),
    col("countries", Text, false),
    col("relevant", Bool, true),
    col("measurements", Int, false),
];

/// Columns of `flows`: every flow of every capture's analysis.
pub const FLOWS: &[Column] = &[
    col("measurement", Text, false),
    col("capture", Text, false),
    col("vantage", Text, false),
    col("proto", Text, false),
    col("src", Text, false),
    col("sport", Int, false),
    col("dst", Text, false),
    col("dport", Int, false),
    col("packets", Int, false),
    col("bytes", Int, false),
    col("first_ts", Float, false),
    col("last_ts", Float, false),
    col("tcp_flags", Text, false),
    col("sni", Text, true),
    col("app", Text, true),
];

/// Columns of `events`: every line of every measurement's `events.jsonl`.
pub const EVENTS: &[Column] = &[
    col("measurement", Text, false),
    col("seq", Int, false),
    col("ts", Float, false),
    col("device", Text, false),
    col("app", Text, false),
    col("kind", Text, false),
    col("message_id", Text, true),
    col("text_sha256", Text, true),
    col("clock_offset_ns", Int, true),
    col("clock_uncertainty_ns", Int, true),
    col("uncertainty_before_ns", Int, true),
    col("uncertainty_after_ns", Int, true),
];

/// Columns of `interference`: the report's interference findings.
pub const INTERFERENCE: &[Column] = &[
    col("vantage", Text, false),
    col("measurement", Text, false),
    col("capture", Text, false),
    col("kind", Text, false),
    col("rule", Text, false),
    col("frames", Text, false),
    col("claimed_src", Text, false),
    col("confidence", Float, false),
    col("injector_hops", Int, true),
    col("evidence", Text, false),
    col("summary", Text, false),
];

/// Columns of `probes`: the report's active-probe verdicts.
pub const PROBES: &[Column] = &[
    col("vantage", Text, false),
    col("app", Text, false),
    col("verdicts", Text, false),
    col("measurements", Text, false),
    col("controls", Text, false),
    col("keywords", Text, false),
    col("evidence_frames", Int, false),
    col("evidence", Text, false),
];

/// Every table with its columns, in the order they are written.
pub const TABLES: &[(&str, &[Column])] = &[
    ("measurements", MEASUREMENTS),
    ("paths", PATHS),
    ("hops", HOPS),
    ("areas", AREAS),
    ("groups", GROUPS),
    ("servers", SERVERS),
    ("dns", DNS),
    ("flows", FLOWS),
    ("events", EVENTS),
    ("interference", INTERFERENCE),
    ("probes", PROBES),
];

/// One cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text (or null).
    Text(Option<String>),
    /// Integer (or null).
    Int(Option<i64>),
    /// Float (or null).
    Float(Option<f64>),
    /// Boolean (or null).
    Bool(Option<bool>),
}

/// A record time as text; `None` when the record left it out (zero).
fn stamp(ts: Timestamp) -> Option<String> {
    (ts != Timestamp::default()).then(|| ts.to_string())
}
fn t(s: impl Into<String>) -> Cell {
    Cell::Text(Some(s.into()))
}
fn ot(s: Option<impl Into<String>>) -> Cell {
    Cell::Text(s.map(Into::into))
}
fn i(v: impl TryInto<i64>) -> Cell {
    Cell::Int(v.try_into().ok())
}
fn oi<V: TryInto<i64>>(v: Option<V>) -> Cell {
    Cell::Int(v.and_then(|v| v.try_into().ok()))
}
fn json_list<T: serde::Serialize>(v: &[T]) -> Cell {
    t(serde_json::to_string(v).unwrap_or_else(|_| "[]".into()))
}
fn secs(ts: Timestamp) -> f64 {
    ts.secs as f64 + f64::from(ts.nanos) / 1e9
}

/// A table being filled: its columns and rows.
#[derive(Debug)]
pub struct Table {
    /// Table name (file `<name>.parquet`).
    pub name: &'static str,
    /// Columns.
    pub columns: &'static [Column],
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(name: &'static str, columns: &'static [Column]) -> Self {
        Table {
            name,
            columns,
            rows: Vec::new(),
        }
    }

    /// Parquet message type of the table.
    pub fn message_type(&self) -> String {
        let mut s = format!("message {} {{\n", self.name);
        for c in self.columns {
            let rep = if c.nullable { "OPTIONAL" } else { "REQUIRED" };
            let ann = if c.kind == Kind::Text { " (UTF8)" } else { "" };
            s.push_str(&format!("  {rep} {} {}{ann};\n", c.kind.parquet(), c.name));
        }
        s.push('}');
        s
    }

    fn check(&self) -> Result<(), DatasetError> {
        for row in &self.rows {
            if row.len() != self.columns.len() {
                return Err(DatasetError::Schema {
                    table: self.name,
                    column: "*",
                    message: format!("row of {} cells, {} columns", row.len(), self.columns.len()),
                });
            }
            for (c, cell) in self.columns.iter().zip(row) {
                let (kind, null) = match cell {
                    Cell::Text(v) => (Kind::Text, v.is_none()),
                    Cell::Int(v) => (Kind::Int, v.is_none()),
                    Cell::Float(v) => (Kind::Float, v.is_none()),
                    Cell::Bool(v) => (Kind::Bool, v.is_none()),
                };
                if kind != c.kind || (null && !c.nullable) {
                    return Err(DatasetError::Schema {
                        table: self.name,
                        column: c.name,
                        message: format!("cell {cell:?} does not fit {:?}", c),
                    });
                }
            }
        }
        Ok(())
    }

    /// Encodes the table as one Parquet file (one row group; none when empty).
    pub fn to_parquet(&self, redact: bool) -> Result<Vec<u8>, DatasetError> {
        self.check()?;
        let pq = |source| DatasetError::Parquet {
            table: self.name,
            source,
        };
        let schema = Arc::new(parse_message_type(&self.message_type()).map_err(pq)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_created_by(format!("matador {}", env!("CARGO_PKG_VERSION")))
                .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                    "matador.schema".to_string(),
                    DATASET_SCHEMA.to_string(),
                )]))
                .build(),
        );
        let mut w = SerializedFileWriter::new(Vec::new(), schema, props).map_err(pq)?;
        if !self.rows.is_empty() {
            let mut rg = w.next_row_group().map_err(pq)?;
            let mut ci = 0;
            while let Some(mut cw) = rg.next_column().map_err(pq)? {
                let c = &self.columns[ci];
                let cells = self.rows.iter().map(|r| &r[ci]);
                let defs: Vec<i16> = cells
                    .clone()
                    .map(|cell| match cell {
                        Cell::Text(v) => i16::from(v.is_some()),
                        Cell::Int(v) => i16::from(v.is_some()),
                        Cell::Float(v) => i16::from(v.is_some()),
                        Cell::Bool(v) => i16::from(v.is_some()),
                    })
                    .collect();
                let defs = c.nullable.then_some(defs.as_slice());
                match c.kind {
                    Kind::Text => {
                        let v: Vec<ByteArray> = cells
                            .filter_map(|cell| match cell {
                                Cell::Text(Some(s)) if redact => Some(ByteArray::from(
                                    super::export::scrub_phone_numbers(s).0.as_str(),
                                )),
                                Cell::Text(Some(s)) => Some(ByteArray::from(s.as_str())),
                                _ => None,
                            })
                            .collect();
                        cw.typed::<ByteArrayType>()
                            .write_batch(&v, defs, None)
                            .map_err(pq)?;
                    }
                    Kind::Int => {
                        let v: Vec<i64> = cells
                            .filter_map(|cell| match cell {
                                Cell::Int(x) => *x,
                                _ => None,
                            })
                            .collect();
                        cw.typed::<Int64Type>()
                            .write_batch(&v, defs, None)
                            .map_err(pq)?;
                    }
                    Kind::Float => {
                        let v: Vec<f64> = cells
                            .filter_map(|cell| match cell {
                                Cell::Float(x) => *x,
                                _ => None,
                            })
                            .collect();
                        cw.typed::<DoubleType>()
                            .write_batch(&v, defs, None)
                            .map_err(pq)?;
                    }
                    Kind::Bool => {
                        let v: Vec<bool> = cells
                            .filter_map(|cell| match cell {
                                Cell::Bool(x) => *x,
                                _ => None,
                            })
                            .collect();
                        cw.typed::<BoolType>()
                            .write_batch(&v, defs, None)
                            .map_err(pq)?;
                    }
                }
                cw.close().map_err(pq)?;
                ci += 1;
            }
            rg.close().map_err(pq)?;
        }
        w.into_inner().map_err(pq)
    }
}

/// The pair run of a measurement counted in Tables 2 and 3: key
/// `sender_node→receiver_node#repetition` and the two vantage countries,
/// by the report's own rule ([`super::build::pair_run`]).
fn pair_run(c: &Campaign, m: &Measurement) -> Option<(String, String, String)> {
    if !super::build::counts_in_locality_tables(m) {
        return None;
    }
    let ((s, r, rep), (sc, rc)) = super::build::pair_run(c, m)?;
    Some((format!("{s}→{r}#{rep}"), sc, rc))
}

/// Builds every table of the dataset from a campaign and its report, with
/// the files that could not be read for it (unreadable `events.jsonl`; the
/// other tables come from what the report already loaded).
pub fn tables(c: &Campaign, r: &Report) -> (Vec<Table>, Vec<Problem>) {
    let mut problems = Vec::new();
    let (paths, hops) = paths_table(r);
    let tables = vec![
        measurements_table(c),
        paths,
        hops,
        areas_table(),
        groups_table(r),
        servers_table(r),
        dns_table(r),
        flows_table(c),
        events_table(c, &mut problems),
        interference_table(r),
        probes_table(r),
    ];
    (tables, problems)
}

/// One row per measurement of the index, with its pair run.
fn measurements_table(c: &Campaign) -> Table {
    let mut ms = Table::new("measurements", MEASUREMENTS);
    for m in &c.measurements {
        let e = &m.entry;
        let run = pair_run(c, m);
        ms.rows.push(vec![
            t(&e.id),
            t(e.kind.as_str()),
            ot(given(&e.app)),
            t(e.status.as_str()),
            ot(e.error.as_deref()),
            ot(given(&e.sender)),
            ot(given(&e.receiver)),
            ot(given(&e.sender_node)),
            ot(given(&e.receiver_node)),
            ot(given(&e.sender_country)),
            ot(given(&e.receiver_country)),
            i(e.repetition),
            i(e.messages),
            ot(stamp(e.started)),
            ot(stamp(e.ended)),
            ot(run.as_ref().map(|r| r.0.as_str())),
            ot(run.as_ref().map(|r| r.1.as_str())),
            ot(run.as_ref().map(|r| r.2.as_str())),
            oi(e.pair),
        ]);
    }
    ms
}

/// The report's paths and their hops (distinct responders).
fn paths_table(r: &Report) -> (Table, Table) {
    let mut paths = Table::new("paths", PATHS);
    let mut hops = Table::new("hops", HOPS);
    for (id, p) in r.paths.iter().enumerate() {
        paths.rows.push(vec![
            i(id),
            t(&p.measurement),
            t(&p.file),
            t(&p.node),
            t(&p.target),
            t(p.dst.to_string()),
            t(&p.class),
            ot(p.app.as_deref()),
            t(p.countries.join(" ")),
            i(p.unknown),
        ]);
        for (seq, h) in p.hops.iter().enumerate() {
            hops.rows.push(vec![
                i(id),
                i(seq),
                oi(h.hop),
                ot(h.addr.map(|a| a.to_string())),
                ot(h.country.as_deref()),
                oi(h.asn),
                Cell::Float(h.rtt),
            ]);
        }
    }
    (paths, hops)
}

/// The UN M49 areas of every country (for the locality tables' SQL).
fn areas_table() -> Table {
    let mut areas = Table::new("areas", AREAS);
    for k in M49::shipped().countries() {
        let a = |x: &Option<crate::geo::m49::Area>| {
            (
                ot(x.as_ref().map(|a| a.code.as_str())),
                ot(x.as_ref().map(|a| a.name.as_str())),
            )
        };
        let (rc, rn) = a(&k.region);
        let (sc, sn) = a(&k.subregion);
        let (ic, iname) = a(&k.intermediate);
        areas
            .rows
            .push(vec![t(&k.iso2), t(&k.name), rc, rn, sc, sn, ic, iname]);
    }
    areas
}

/// Interest groups and their member countries.
fn groups_table(r: &Report) -> Table {
    let mut groups = Table::new("groups", GROUPS);
    for g in &r.group_members {
        for m in &g.members {
            groups.rows.push(vec![t(&g.id), t(&g.name), t(m)]);
        }
    }
    groups
}

/// The report's servers per app and vantage.
fn servers_table(r: &Report) -> Table {
    let mut servers = Table::new("servers", SERVERS);
    for s in &r.servers {
        servers.rows.push(vec![
            t(&s.app),
            t(&s.vantage),
            ot(s.vantage_country.as_deref()),
            t(s.ip.to_string()),
            i(s.port),
            t(&s.proto),
            ot(s.role.map(Role::as_str)),
            Cell::Float(s.score),
            i(s.measurements),
            json_list(&s.names),
            json_list(&s.evidence),
            ot(s.country.as_deref()),
            oi(s.asn),
            ot(s.org.as_deref()),
        ]);
    }
    servers
}

/// DNS names per app.
fn dns_table(r: &Report) -> Table {
    let mut dns = Table::new("dns", DNS);
    for d in &r.dns {
        dns.rows.push(vec![
            t(&d.app),
            t(&d.name),
            t(&d.transport),
            i(d.name_ips),
            t(&d.prefix),
            i(d.ips),
            oi(d.asn),
            ot(d.org.as_deref()),
            json_list(&d.countries),
            Cell::Bool(d.relevant),
            i(d.measurements),
        ]);
    }
    dns
}

/// Every flow of every analysed capture, with its vantage.
fn flows_table(c: &Campaign) -> Table {
    let mut flows = Table::new("flows", FLOWS);
    for m in &c.measurements {
        for cap in m.analysis.iter().flat_map(|a| a.captures.iter()) {
            let vantage =
                super::build::capture_vantage(c, m, &cap.capture).unwrap_or_else(|| "?".into());
            let capture = Path::new(&cap.capture)
                .file_name()
                .map_or(cap.capture.clone(), |f| f.to_string_lossy().into_owned());
            for f in &cap.flows {
                flows.rows.push(vec![
                    t(&m.entry.id),
                    t(&capture),
                    t(&vantage),
                    t(&f.proto),
                    t(f.src.to_string()),
                    i(f.sport),
                    t(f.dst.to_string()),
                    i(f.dport),
                    i(f.packets),
                    i(f.bytes),
                    Cell::Float(Some(secs(f.first_ts))),
                    Cell::Float(Some(secs(f.last_ts))),
                    t(&f.tcp_flags),
                    ot(f.sni.as_deref()),
                    ot(f.app.as_deref()),
                ]);
            }
        }
    }
    flows
}

/// Every event of every `events.jsonl`; unreadable files are named in `problems`.
fn events_table(c: &Campaign, problems: &mut Vec<Problem>) -> Table {
    let mut events = Table::new("events", EVENTS);
    for m in &c.measurements {
        let rel = format!("measurements/{}/events.jsonl", m.entry.id);
        let path = c.dir.join(&rel);
        if !path.is_file() {
            continue;
        }
        let evs = match EventLog::read(&path) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem {
                    file: rel,
                    message: format!("left out of the dataset: {e}"),
                });
                continue;
            }
        };
        for (seq, e) in evs.iter().enumerate() {
            let kind = match serde_json::to_value(e.kind) {
                Ok(serde_json::Value::String(k)) => k,
                _ => format!("{:?}", e.kind),
            };
            events.rows.push(vec![
                t(&m.entry.id),
                i(seq),
                Cell::Float(Some(secs(e.ts))),
                t(&e.device),
                t(&e.app),
                t(kind),
                ot(e.message_id.as_deref()),
                ot(e.text_sha256.as_deref()),
                Cell::Int(e.clock_offset_ns),
                Cell::Int(e.clock_uncertainty_ns),
                Cell::Int(e.uncertainty_ns.map(|u| u.before)),
                Cell::Int(e.uncertainty_ns.map(|u| u.after)),
            ]);
        }
    }
    events
}

/// The report's interference events.
fn interference_table(r: &Report) -> Table {
    let mut interference = Table::new("interference", INTERFERENCE);
    for x in &r.interference {
        interference.rows.push(vec![
            t(&x.vantage),
            t(&x.measurement),
            t(&x.capture),
            t(x.kind.as_str()),
            t(x.rule.as_str()),
            json_list(&x.frames),
            t(x.claimed_src.to_string()),
            Cell::Float(Some(x.confidence)),
            oi(x.injector_hops),
            t(&x.evidence),
            t(&x.summary),
        ]);
    }
    interference
}

/// The report's probe verdicts per vantage and app.
fn probes_table(r: &Report) -> Table {
    let mut probes = Table::new("probes", PROBES);
    for p in &r.probes {
        probes.rows.push(vec![
            t(&p.vantage),
            t(&p.app),
            json_list(&p.verdicts),
            json_list(&p.measurements),
            json_list(&p.controls),
            json_list(&p.keywords),
            i(p.evidence_frames),
            t(&p.evidence),
        ]);
    }
    probes
}

/// Writes every table as `<dir>/<table>.parquet` (each file atomically);
/// with `redact`, phone numbers in text cells become `+0000000` as in the
/// report. Returns the files written and the record files left out.
pub fn write(
    dir: &Path,
    c: &Campaign,
    r: &Report,
    redact: bool,
) -> Result<(Vec<PathBuf>, Vec<Problem>), DatasetError> {
    std::fs::create_dir_all(dir).map_err(|source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let (tables, problems) = tables(c, r);
    for table in tables {
        let bytes = table.to_parquet(redact)?;
        let path = dir.join(format!("{}.parquet", table.name));
        crate::atomic_file::write(&path, &bytes).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        out.push(path);
    }
    Ok((out, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn tables_match_their_column_lists() {
        for (name, cols) in TABLES {
            let tb = Table::new(name, cols);
            let ty = parse_message_type(&tb.message_type()).unwrap();
            assert_eq!(ty.get_fields().len(), cols.len(), "{name}");
        }
    }

    #[test]
    fn round_trip_with_nulls() {
        let mut tb = Table::new("hops", HOPS);
        tb.rows.push(vec![
            i(0),
            i(0),
            oi(Some(0u32)),
            t("198.18.1.1"),
            t("DE"),
            oi(Some(64501u32)),
            Cell::Float(None),
        ]);
        tb.rows.push(vec![
            i(0),
            i(1),
            oi(None::<u32>),
            ot(None::<String>),
            ot(None::<String>),
            oi(None::<u32>),
            Cell::Float(Some(12.5)),
        ]);
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &tb.to_parquet(false).unwrap()).unwrap();
        let rd = SerializedFileReader::new(f).unwrap();
        assert_eq!(rd.metadata().file_metadata().num_rows(), 2);
        let kv = rd.metadata().file_metadata().key_value_metadata().unwrap();
        assert!(
            kv.iter()
                .any(|k| k.value.as_deref() == Some(DATASET_SCHEMA))
        );
        let rows: Vec<String> = rd
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect();
        assert!(rows[0].contains("country: \"DE\""), "{rows:?}");
        assert!(rows[1].contains("addr: null"), "{rows:?}");
        assert!(rows[1].contains("rtt_ms: 12.5"), "{rows:?}");
    }

    #[test]
    fn wrong_cells_are_refused() {
        let mut tb = Table::new("hops", HOPS);
        tb.rows.push(vec![i(0)]);
        assert!(matches!(
            tb.to_parquet(false),
            Err(DatasetError::Schema { .. })
        ));
        tb.rows[0] = vec![
            oi(None::<u32>),
            i(0),
            i(0),
            ot(None::<String>),
            ot(None::<String>),
            oi(None::<u32>),
            Cell::Float(None),
        ];
        assert!(matches!(
            tb.to_parquet(false),
            Err(DatasetError::Schema {
                column: "path_id",
                ..
            })
        ));
    }
}
