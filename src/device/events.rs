//! Device events as `measurements/<id>/events.jsonl` stores them
//! (docs/campaign-record.md): one JSON object per line, on the host clock,
//! phone times already corrected by the phone's clock offset.
//!
//! The log is appended and flushed line by line, so an unplugged phone or a
//! killed run never loses the events written before it.

use super::DeviceError;
use crate::capture::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Event kinds of `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The app was started.
    AppLaunch,
    /// The conversation is open (its input field is shown).
    ChatOpen,
    /// The text is in the input field.
    Type,
    /// The send button is about to be tapped.
    SendTap,
    /// The tap on the send button was injected.
    Sent,
    /// The message was seen on the receiving phone.
    Received,
    /// The app was force-stopped.
    ForceStop,
    /// A baseline (idle) capture window starts (written by the campaign).
    BaselineStart,
    /// A baseline window ends (written by the campaign).
    BaselineEnd,
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// Host-clock time of the event.
    pub ts: Timestamp,
    /// Device (phone profile id).
    pub device: String,
    /// App id.
    pub app: String,
    /// What happened.
    pub kind: EventKind,
    /// The campaign's message id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// SHA-256 of the message text (hex), so send and receive pair up
    /// without storing the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_sha256: Option<String>,
    /// The phone's clock offset (phone − host) used for this event, in ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ns: Option<i64>,
    /// The offset's uncertainty (± ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_uncertainty_ns: Option<i64>,
    /// How far the moment recorded in `ts` may be from the moment the event
    /// really happened, beyond the clock offset's own uncertainty: a receipt
    /// noticed by polling is seen after it arrived, a send is recorded just
    /// before the tap lands. `None` when the detector cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty_ns: Option<TimeUncertainty>,
}

/// The interval around an event's recorded time in which its true time lies:
/// `[ts - before, ts + after]` on the host clock (both ≥ 0, nanoseconds).
/// Written as `"uncertainty_ns": {"before": n, "after": n}` in the campaign
/// record; the open folder format spells it `"uncertainty_s"` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeUncertainty {
    /// The true time may be this much earlier than `ts`.
    pub before: i64,
    /// The true time may be this much later than `ts`.
    pub after: i64,
}

/// SHA-256 of a text, lower-case hex.
pub fn text_sha256(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An append-only `events.jsonl`.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl EventLog {
    /// A log at `path` (created with its folder on first write).
    pub fn new(path: &Path) -> Self {
        EventLog {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as a line and flushes it.
    pub fn append(&self, ev: &DeviceEvent) -> Result<(), DeviceError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let io = |e: std::io::Error| DeviceError::Profile {
            path: self.path.clone(),
            message: format!("writing events: {e}"),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut line = serde_json::to_string(ev).map_err(|e| DeviceError::Profile {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.flush().map_err(io)
    }

    /// Reads a log back (a torn last line is ignored, as readers must).
    pub fn read(path: &Path) -> Result<Vec<DeviceEvent>, DeviceError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeviceError::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            match serde_json::from_str(l) {
                Ok(ev) => out.push(ev),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(e) => {
                    return Err(DeviceError::Profile {
                        path: path.to_path_buf(),
                        message: format!("line {}: {e}", i + 1),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(&dir.path().join("m1/events.jsonl"));
        let ev = DeviceEvent {
            ts: "1700000000.123456".parse().unwrap(),
            device: "lab-a".into(),
            app: "signal".into(),
            kind: EventKind::SendTap,
            message_id: None,
            text_sha256: Some(text_sha256("abc")),
            clock_offset_ns: Some(-1_500_000),
            clock_uncertainty_ns: Some(800_000),
            uncertainty_ns: None,
        };
        log.append(&ev).unwrap();
        let line = std::fs::read_to_string(log.path()).unwrap();
        assert!(line.contains(r#""ts":"1700000000.123456""#), "{line}");
        assert!(line.contains(r#""kind":"send_tap""#), "{line}");
        assert!(
            line.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            "{line}"
        );
        assert!(!line.contains("message_id"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap();
        f.write_all(b"{\"ts\":\"17").unwrap();
        assert_eq!(EventLog::read(log.path()).unwrap(), vec![ev]);
    }
}
