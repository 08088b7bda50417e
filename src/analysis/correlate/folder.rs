//! Finding things in campaign and measurement folders
//! (docs/campaign-record.md): measurement folders, their `meta.json`,
//! captures and `events.jsonl`, and which captures belong to which phone.

use super::CorrelateError;
use super::capture::CaptureLog;
use crate::analysis::replay::collect_inputs;
use std::path::{Path, PathBuf};

/// A measurement's `meta.json`: the campaign's index entry, read leniently
/// (a standalone measurement folder may hold a partial one).
pub type Meta = crate::campaign::record::IndexEntry;

/// Reads `meta.json`: `Ok(None)` when the folder has none (a standalone
/// measurement), an error naming the file when it is unreadable or invalid.
pub fn read_meta(dir: &Path) -> Result<Option<Meta>, CorrelateError> {
    let file = dir.join("meta.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CorrelateError::Io { file, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CorrelateError::Json {
            file,
            message: e.to_string(),
        })
}

/// True when `dir` is a campaign folder (`index.json`, or `measurements/`
/// with at least one folder).
pub fn is_campaign(dir: &Path) -> bool {
    dir.join("index.json").is_file() || !measurement_dirs(dir).unwrap_or_default().is_empty()
}

/// True when `dir` is a single measurement folder (`events.jsonl` beside captures).
pub fn is_measurement(dir: &Path) -> bool {
    dir.join("events.jsonl").is_file()
}

/// Measurement folders of a campaign, in name (= plan) order; none when
/// there is no `measurements/`, an error when it cannot be listed.
pub fn measurement_dirs(campaign: &Path) -> Result<Vec<PathBuf>, CorrelateError> {
    let root = campaign.join("measurements");
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CorrelateError::Io { file: root, source }),
    };
    let mut v = Vec::new();
    for e in rd {
        let p = e
            .map_err(|source| CorrelateError::Io {
                file: root.clone(),
                source,
            })?
            .path();
        if p.is_dir() {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// The files of one measurement folder.
#[derive(Debug, Clone)]
pub struct MeasurementFiles {
    /// The folder.
    pub dir: PathBuf,
    /// Its id (folder name).
    pub id: String,
    /// Capture files.
    pub captures: Vec<PathBuf>,
    /// `events.jsonl`, if present.
    pub events: Option<PathBuf>,
}

impl MeasurementFiles {
    /// Lists a folder (captures recognised by magic number, not name).
    pub fn of(dir: &Path) -> MeasurementFiles {
        let captures = collect_inputs(&[dir.to_path_buf()])
            .into_iter()
            .filter(|p| p.parent() == Some(dir))
            .collect();
        let ev = dir.join("events.jsonl");
        MeasurementFiles {
            dir: dir.to_path_buf(),
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            captures,
            events: ev.is_file().then_some(ev),
        }
    }
}

/// Captures that belong to a phone: `capture-router-<phone>.*` or any file
/// whose name contains the phone's name; else every non-node capture (a
/// shared router capture), else every capture.
pub fn captures_of<'a>(logs: &'a [CaptureLog], phone: &str) -> Vec<&'a CaptureLog> {
    let stem = |l: &CaptureLog| {
        l.file
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let p = phone.to_lowercase();
    let named: Vec<&CaptureLog> = logs
        .iter()
        .filter(|l| {
            let s = stem(l);
            s == format!("capture-router-{p}")
                || (!s.starts_with("capture-node-")
                    && s.split(|c: char| !c.is_alphanumeric() && c != '-')
                        .any(|w| w == p))
        })
        .collect();
    if !named.is_empty() {
        return named;
    }
    let non_node: Vec<&CaptureLog> = logs
        .iter()
        .filter(|l| !stem(l).starts_with("capture-node-"))
        .collect();
    if non_node.is_empty() {
        logs.iter().collect()
    } else {
        non_node
    }
}
