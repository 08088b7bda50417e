//! The campaign folder (docs/campaign-record.md): creation, the fsynced
//! append-only journal, the atomically rewritten index and per-measurement
//! `meta.json`, and reading them back for `--resume`.

use super::CampaignError;
use super::plan::{Kind, Plan, PlannedMeasurement};
use crate::capture::Timestamp;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Schema tag of `index.json`.
pub const INDEX_SCHEMA: &str = "matador/index/1";

/// Folder of a campaign holding a copy of the app profiles it used
/// (`<id>.yaml` and their load order), which `replay` and `--resume` load.
pub const APP_PROFILES_DIR: &str = "app-profiles";

/// Outcome of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ran to the end.
    Complete,
    /// Failed after its retries; `error` says why.
    Failed,
    /// Not run (e.g. no node left for its country); also what a record
    /// without a status is taken for.
    #[default]
    Skipped,
}

impl Status {
    /// The name used in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One measurement in `index.json` and its `meta.json`: written by the
/// campaign, read back by `--resume`, correlation (`meta.json`) and the
/// report. Reading is lenient (a hand-made or older record may leave out
/// any field but `id`); writing always writes every field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Stable id (`m0007`).
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    /// What the measurement does.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: MeasurementKind,
    /// App id.
    #[serde(default, deserialize_with = "nullable")]
    pub app: String,
    /// Phone A.
    #[serde(default, deserialize_with = "nullable")]
    pub sender: String,
    /// Phone B.
    #[serde(default, deserialize_with = "nullable")]
    pub receiver: String,
    /// A's vantage country.
    #[serde(default, deserialize_with = "nullable")]
    pub sender_country: String,
    /// B's vantage country.
    #[serde(default, deserialize_with = "nullable")]
    pub receiver_country: String,
    /// Node A went through (after failover).
    #[serde(default, deserialize_with = "nullable")]
    pub sender_node: String,
    /// Node B went through.
    #[serde(default, deserialize_with = "nullable")]
    pub receiver_node: String,
    /// 1-based repetition (0: not recorded).
    #[serde(default, deserialize_with = "nullable")]
    pub repetition: u32,
    /// Messages planned.
    #[serde(default, deserialize_with = "nullable")]
    pub messages: u32,
    /// Outcome.
    #[serde(default, deserialize_with = "nullable")]
    pub status: Status,
    /// Why it failed or was skipped.
    #[serde(default)]
    pub error: Option<String>,
    /// Start of the last attempt.
    #[serde(default, deserialize_with = "nullable")]
    pub started: Timestamp,
    /// End of the last attempt.
    #[serde(default, deserialize_with = "nullable")]
    pub ended: Timestamp,
    /// Files of the measurement folder.
    #[serde(default, deserialize_with = "nullable")]
    pub files: Vec<String>,
    /// Attempts made (1 + retries used).
    #[serde(default, deserialize_with = "nullable")]
    pub attempts: u32,
    /// The phone pair that carried it (1-based), in a campaign of several
    /// pairs; absent with one pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<u32>,
}

/// What a measurement of the record does (`kind`): the plan's kinds, and
/// the path and probe measurements older records list.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MeasurementKind {
    /// Messages are exchanged (also what a record without a kind held).
    #[default]
    Message,
    /// Apps open, no message: background traffic.
    Baseline,
    /// Traceroutes only.
    Path,
    /// Reachability probes only.
    Probe,
}

impl MeasurementKind {
    /// The name used in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            MeasurementKind::Message => "message",
            MeasurementKind::Baseline => "baseline",
            MeasurementKind::Path => "path",
            MeasurementKind::Probe => "probe",
        }
    }
}

impl From<Kind> for MeasurementKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Message => MeasurementKind::Message,
            Kind::Baseline => MeasurementKind::Baseline,
        }
    }
}

/// A field a hand-made record wrote as `null`: its default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Some(s)` unless `s` is empty (a text field the record left out).
pub fn given(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl IndexEntry {
    /// An entry for a planned measurement (status to be filled in).
    pub fn new(m: &PlannedMeasurement) -> IndexEntry {
        IndexEntry {
            id: m.id.clone(),
            kind: m.kind.into(),
            app: m.app.clone(),
            sender: m.sender.clone(),
            receiver: m.receiver.clone(),
            sender_country: m.sender_country.to_string(),
            receiver_country: m.receiver_country.to_string(),
            sender_node: m.sender_nodes.first().cloned().unwrap_or_default(),
            receiver_node: m.receiver_nodes.first().cloned().unwrap_or_default(),
            repetition: m.repetition,
            messages: m.messages.len() as u32,
            status: Status::Skipped,
            error: None,
            started: Timestamp::from_f64(now()),
            ended: Timestamp::from_f64(now()),
            files: Vec::new(),
            attempts: 0,
            pair: None,
        }
    }
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// [`INDEX_SCHEMA`].
    pub schema: String,
    /// Scenario name.
    pub campaign: String,
    /// Finished measurements (complete, failed or skipped), in plan order.
    pub measurements: Vec<IndexEntry>,
}

/// State of a journalled step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// The step began.
    Started,
    /// It finished.
    Done,
    /// It failed (`detail` says why).
    Failed,
    /// It was not run.
    Skipped,
    /// Turned off by the scenario (`steps:`), journalled where it would run.
    Off,
}

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    /// Sequence number, continuing across resumes.
    pub seq: u64,
    /// When.
    pub ts: Timestamp,
    /// Measurement id (absent for campaign-level steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    /// The phone pair (1-based) of a measurement's line, in a campaign of
    /// several pairs; absent with one pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<u32>,
    /// Step name.
    pub step: String,
    /// State.
    pub state: StepState,
    /// Reason, node, attempt…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The nodes a node step (paths, probes) works on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// How those nodes are reached (`agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// Unix time now (host clock).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> CampaignError + '_ {
    move |e| CampaignError::Io {
        file: file.to_path_buf(),
        source: e,
    }
}

/// Writes a file atomically and durably ([`crate::atomic_file::write`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CampaignError> {
    crate::atomic_file::write(path, bytes).map_err(io(path))
}

fn to_json<T: Serialize>(path: &Path, v: &T) -> Result<Vec<u8>, CampaignError> {
    let mut b = serde_json::to_vec_pretty(v).map_err(|e| CampaignError::Record {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    b.push(b'\n');
    Ok(b)
}

/// An open campaign folder.
#[derive(Debug)]
pub struct Record {
    /// The folder.
    pub dir: PathBuf,
    journal: File,
    seq: u64,
    /// The index as written so far.
    pub index: Index,
    /// `index.sqlite`, kept in step with `index`.
    sqlite: super::sqlite::SqliteIndex,
}

/// Opens `index.sqlite`; a database that cannot be opened (corrupt) is
/// derived data: it is removed and rebuilt.
fn open_sqlite(dir: &Path, campaign: &str) -> Result<super::sqlite::SqliteIndex, CampaignError> {
    match super::sqlite::SqliteIndex::open(dir, campaign) {
        Ok(s) => Ok(s),
        Err(_) => {
            for f in ["", "-journal", "-wal", "-shm"] {
                let _ =
                    std::fs::remove_file(dir.join(format!("{}{f}", super::sqlite::SQLITE_FILE)));
            }
            super::sqlite::SqliteIndex::open(dir, campaign)
        }
    }
}

impl Record {
    /// Creates `<out>/<name>-<YYYYmmddTHHMMSSZ>/` (a shard's:
    /// `…Z-shard<k>of<n>/`) with `scenario.yaml`
    /// (byte-identical copy) and `plan.json`.
    pub fn create(out: &Path, plan: &Plan, scenario_source: &str) -> Result<Record, CampaignError> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        let mut stamp = utc_stamp(now());
        // A shard's folder names its shard: the tasks of a job array start
        // in the same second and often write under the same --out.
        if let Some(s) = &plan.shard {
            stamp = format!("{stamp}-shard{}of{}", s.k, s.n);
        }
        let mut dir = out.join(format!("{}-{stamp}", plan.scenario));
        let mut n = 1;
        while dir.exists() {
            n += 1;
            dir = out.join(format!("{}-{stamp}-{n}", plan.scenario));
        }
        std::fs::create_dir_all(dir.join("measurements")).map_err(io(&dir))?;
        write_atomic(&dir.join("scenario.yaml"), scenario_source.as_bytes())?;
        let pj = dir.join("plan.json");
        write_atomic(&pj, &to_json(&pj, plan)?)?;
        let index = Index {
            schema: INDEX_SCHEMA.into(),
            campaign: plan.scenario.clone(),
            measurements: Vec::new(),
        };
        let ij = dir.join("index.json");
        write_atomic(&ij, &to_json(&ij, &index)?)?;
        let jp = dir.join("journal.jsonl");
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jp)
            .map_err(io(&jp))?;
        let mut sqlite = open_sqlite(&dir, &plan.scenario)?;
        sqlite.sync(&dir, &index)?;
        Ok(Record {
            dir,
            journal,
            seq: 0,
            index,
            sqlite,
        })
    }

    /// Opens an existing campaign folder for `--resume`: reads the plan, the
    /// index and the journal (a torn last line is cut off first).
    /// Keeps a copy of the app profiles the campaign analyses with
    /// ([`APP_PROFILES_DIR`]), unless it has one already (a resume uses the
    /// copy, so it is never replaced).
    pub fn keep_app_profiles(
        &self,
        profiles: &crate::scenario::apps::AppProfiles,
    ) -> Result<(), CampaignError> {
        let copy = self.dir.join(APP_PROFILES_DIR);
        if copy.is_dir() {
            return Ok(());
        }
        // Written beside, then renamed: a kill never leaves half a copy.
        let part = self.dir.join(format!("{APP_PROFILES_DIR}.part"));
        let _ = std::fs::remove_dir_all(&part);
        profiles
            .write_dir(&part)
            .map_err(|e| CampaignError::Record {
                file: copy.clone(),
                message: e.to_string(),
            })?;
        std::fs::rename(&part, &copy).map_err(io(&copy))?;
        if let Ok(d) = File::open(&self.dir) {
            d.sync_all().map_err(io(&self.dir))?;
        }
        Ok(())
    }

    /// Temporaries of writes a kill interrupted are removed first (only
    /// [`crate::atomic_file`]'s own; the files they were to replace still
    /// hold their previous content).
    pub fn open(dir: &Path) -> Result<(Record, Plan), CampaignError> {
        let pj = dir.join("plan.json");
        if !pj.is_file() {
            return Err(io(&pj)(std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        crate::atomic_file::remove_temporaries(dir).map_err(io(dir))?;
        let text = std::fs::read_to_string(&pj).map_err(io(&pj))?;
        let plan: Plan = serde_json::from_str(&text).map_err(|e| CampaignError::Record {
            file: pj.clone(),
            message: format!("not a matador/plan/1 file: {e}"),
        })?;
        let ij = dir.join("index.json");
        let index: Index = match std::fs::read_to_string(&ij) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| CampaignError::Record {
                file: ij.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index {
                schema: INDEX_SCHEMA.into(),
                campaign: plan.scenario.clone(),
                measurements: Vec::new(),
            },
            Err(e) => return Err(io(&ij)(e)),
        };
        let jp = dir.join("journal.jsonl");
        let lines = read_journal(&jp)?;
        // Cut a torn last line so appends start on a fresh line.
        if let Ok(body) = std::fs::read(&jp)
            && !body.is_empty()
            && !body.ends_with(b"\n")
        {
            let keep = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let f = OpenOptions::new().write(true).open(&jp).map_err(io(&jp))?;
            f.set_len(keep as u64).map_err(io(&jp))?;
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jp)
            .map_err(io(&jp))?;
        let seq = lines.last().map_or(0, |l| l.seq + 1);
        // index.json is the authority: the SQLite index is rebuilt from it
        // (a crash between the two writes, or a lost database, heals here).
        let mut sqlite = open_sqlite(dir, &plan.scenario)?;
        sqlite.sync(dir, &index)?;
        Ok((
            Record {
                dir: dir.to_path_buf(),
                journal,
                seq,
                index,
                sqlite,
            },
            plan,
        ))
    }

    /// Appends a journal line and fsyncs it.
    pub fn journal(
        &mut self,
        measurement: Option<&str>,
        step: &str,
        state: StepState,
        detail: Option<String>,
    ) -> Result<(), CampaignError> {
        self.journal_nodes(measurement, step, state, detail, Vec::new(), None)
    }

    /// [`Record::journal`] for a step working on nodes: names them and how
    /// they are reached.
    pub fn journal_nodes(
        &mut self,
        measurement: Option<&str>,
        step: &str,
        state: StepState,
        detail: Option<String>,
        nodes: Vec<String>,
        via: Option<String>,
    ) -> Result<(), CampaignError> {
        self.journal_pair(measurement, None, step, state, detail, nodes, via)
    }

    /// [`Record::journal_nodes`] naming the phone pair (several pairs).
    #[allow(clippy::too_many_arguments)]
    pub fn journal_pair(
        &mut self,
        measurement: Option<&str>,
        pair: Option<u32>,
        step: &str,
        state: StepState,
        detail: Option<String>,
        nodes: Vec<String>,
        via: Option<String>,
    ) -> Result<(), CampaignError> {
        let line = JournalLine {
            seq: self.seq,
            ts: Timestamp::from_f64(now()),
            measurement: measurement.map(String::from),
            pair,
            step: step.into(),
            state,
            detail,
            nodes,
            via,
        };
        self.seq += 1;
        let jp = self.dir.join("journal.jsonl");
        let mut b = serde_json::to_vec(&line).map_err(|e| CampaignError::Record {
            file: jp.clone(),
            message: e.to_string(),
        })?;
        b.push(b'\n');
        self.journal.write_all(&b).map_err(io(&jp))?;
        self.journal.sync_data().map_err(io(&jp))
    }

    /// Records a finished measurement: `meta.json`, then the index (atomic),
    /// then `index.sqlite` (one transaction).
    pub fn finish(&mut self, entry: IndexEntry) -> Result<(), CampaignError> {
        let id = entry.id.clone();
        let mdir = self.measurement_dir(&entry.id);
        std::fs::create_dir_all(&mdir).map_err(io(&mdir))?;
        let mp = mdir.join("meta.json");
        write_atomic(&mp, &to_json(&mp, &entry)?)?;
        self.index.measurements.retain(|e| e.id != entry.id);
        self.index.measurements.push(entry);
        self.index.measurements.sort_by(|a, b| a.id.cmp(&b.id));
        let ij = self.dir.join("index.json");
        write_atomic(&ij, &to_json(&ij, &self.index)?)?;
        if let Some(e) = self.index.measurements.iter().find(|e| e.id == id) {
            self.sqlite.upsert(&self.dir, e)?;
        }
        Ok(())
    }

    /// Re-reads every measurement's `analysis.json` into `index.sqlite`
    /// (after the campaign-wide analysis rewrote them).
    pub fn sync_sqlite(&mut self) -> Result<(), CampaignError> {
        self.sqlite.sync(&self.dir, &self.index)
    }

    /// `measurements/<id>/`.
    pub fn measurement_dir(&self, id: &str) -> PathBuf {
        self.dir.join("measurements").join(id)
    }

    /// True when the index already holds this measurement.
    pub fn is_finished(&self, id: &str) -> bool {
        self.index.measurements.iter().any(|e| e.id == id)
    }

    /// Writes `lab.json` (nodes and phones of the lab used).
    pub fn write_lab(&self, lab: &serde_json::Value) -> Result<(), CampaignError> {
        let p = self.dir.join("lab.json");
        write_atomic(&p, &to_json(&p, lab)?)
    }
}

/// Reads `journal.jsonl`, ignoring a torn last line.
pub fn read_journal(path: &Path) -> Result<Vec<JournalLine>, CampaignError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let n = text.lines().count();
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        match serde_json::from_str::<JournalLine>(l) {
            Ok(j) => out.push(j),
            Err(_) if i + 1 == n && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(CampaignError::Record {
                    file: path.to_path_buf(),
                    message: format!("line {}: {e}", i + 1),
                });
            }
        }
    }
    Ok(out)
}

/// `YYYYmmddTHHMMSSZ` for a unix time (UTC, civil-from-days).
pub fn utc_stamp(t: f64) -> String {
    let secs = t.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_are_read_leniently() {
        let e: IndexEntry = serde_json::from_str(
            r#"{"id":"m9","kind":"probe","sender_node":null,"repetition":null}"#,
        )
        .unwrap();
        assert_eq!(e.kind, MeasurementKind::Probe);
        assert_eq!((e.sender_node.as_str(), e.repetition), ("", 0));
        assert_eq!((e.status, e.app.as_str()), (Status::Skipped, ""));
        assert_eq!(given(&e.app), None);
        assert_eq!(given(&e.id), Some("m9"));
        assert!(serde_json::from_str::<IndexEntry>(r#"{"id":"m9","kind":"other"}"#).is_err());
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(0.0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_700_000_000.0), "20231114T221320Z");
        assert_eq!(utc_stamp(951_782_400.0), "20000229T000000Z");
    }
}
