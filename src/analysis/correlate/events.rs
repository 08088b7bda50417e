//! `events.jsonl` in both spellings: the campaign record's (`ts`, `device`,
//! `kind: send_tap|sent|received`, `message_id`, `bytes`,
//! `clock_uncertainty_ns`, `uncertainty_ns: {before, after}` in ns; see
//! docs/campaign-record.md and [`crate::device::events::DeviceEvent`]) and
//! the open folder format's (`t`, `phone`, `event: send|receive`, `msg`,
//! `bytes`, `uncertainty_s: {before, after}` in seconds; docs/campaign.md).

use super::CorrelateError;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// What happened on a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The send button was tapped.
    Send,
    /// The message was seen on the receiving phone.
    Receive,
    /// Anything else (app launch, baseline markers…).
    Other,
}

/// One device event, host clock, offset already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix seconds.
    pub t: f64,
    /// Device (phone profile id, or `A`/`B`).
    pub phone: String,
    /// App id.
    pub app: String,
    /// Kind.
    pub kind: EventKind,
    /// Message id.
    pub msg: Option<String>,
    /// Message length in UTF-8 bytes, when known.
    pub bytes: Option<u64>,
    /// The true time lies in `[t − before, t + after]` (seconds), when the
    /// event says so (`uncertainty_ns` / `uncertainty_s`).
    pub uncertainty: Option<(f64, f64)>,
    /// The clock offset's own uncertainty (± seconds), when given.
    pub clock_uncertainty: Option<f64>,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    match v.get(k) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// `{before, after}` under `key`, scaled to seconds; an error when present
/// but malformed (negative or not numbers).
fn uncertainty(v: &Value, key: &str, scale: f64) -> Result<Option<(f64, f64)>, String> {
    let Some(u) = v.get(key) else {
        return Ok(None);
    };
    let (Some(b), Some(a)) = (num(u, "before"), num(u, "after")) else {
        return Err(format!("\"{key}\" must be {{\"before\": n, \"after\": n}}"));
    };
    if !(b >= 0.0 && a >= 0.0 && b.is_finite() && a.is_finite()) {
        return Err(format!("\"{key}\" must not be negative"));
    }
    Ok(Some((b * scale, a * scale)))
}

/// Parses one line into (kind string, event).
fn parse_line(v: &Value) -> Result<(String, Event), String> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
    let t = num(v, "t")
        .or_else(|| num(v, "ts"))
        .filter(|t| t.is_finite())
        .ok_or("missing time: expected \"t\" or \"ts\" (unix seconds)")?;
    let phone = s("phone")
        .or_else(|| s("device"))
        .ok_or("missing \"phone\" (or \"device\")")?;
    let kind = s("event").or_else(|| s("kind")).unwrap_or_default();
    let bytes = v
        .get("bytes")
        .or_else(|| v.get("text_bytes"))
        .and_then(|b| b.as_u64());
    let unc = match uncertainty(v, "uncertainty_ns", 1e-9)? {
        Some(u) => Some(u),
        None => uncertainty(v, "uncertainty_s", 1.0)?,
    };
    let clock = num(v, "clock_uncertainty_ns")
        .map(|n| n.abs() * 1e-9)
        .or_else(|| num(v, "clock_uncertainty_s").map(f64::abs));
    Ok((
        kind,
        Event {
            t,
            phone,
            app: s("app").unwrap_or_default(),
            kind: EventKind::Other,
            msg: s("msg").or_else(|| s("message_id")),
            bytes,
            uncertainty: unc,
            clock_uncertainty: clock,
        },
    ))
}

/// Reads `events.jsonl` (either spelling), sorted by time. A torn last
/// line (crash while writing) is ignored; any other bad line is an error
/// naming file and line.
pub fn read_events(path: &Path) -> Result<Vec<Event>, CorrelateError> {
    let text = std::fs::read_to_string(path).map_err(|e| CorrelateError::Io {
        file: path.to_path_buf(),
        source: e,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut raw = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| CorrelateError::Event {
            file: path.to_path_buf(),
            line: i + 1,
            message: m,
        };
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(bad(format!("not a JSON object: {e}"))),
        };
        raw.push(parse_line(&v).map_err(bad)?);
    }
    // `send_tap` is the moment of the tap; `sent` counts only for messages
    // without one.
    let tapped: BTreeSet<Option<String>> = raw
        .iter()
        .filter(|(k, _)| k == "send_tap" || k == "send")
        .map(|(_, e)| e.msg.clone())
        .collect();
    let mut out: Vec<Event> = raw
        .into_iter()
        .map(|(k, mut e)| {
            e.kind = match k.as_str() {
                "send" | "send_tap" => EventKind::Send,
                "sent" if !tapped.contains(&e.msg) => EventKind::Send,
                "receive" | "received" => EventKind::Receive,
                _ => EventKind::Other,
            };
            e
        })
        .collect();
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncertainty_in_both_spellings() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"ts\":\"10\",\"device\":\"a\",\"kind\":\"received\",\"clock_uncertainty_ns\":2000000,",
                "\"uncertainty_ns\":{\"before\":3000000000,\"after\":50000000}}\n",
                "{\"t\":11,\"phone\":\"b\",\"event\":\"receive\",\"uncertainty_s\":{\"before\":1.5,\"after\":0}}\n",
                "{\"t\":12,\"phone\":\"b\",\"event\":\"send\"}\n",
            ),
        )
        .unwrap();
        let ev = read_events(&p).unwrap();
        assert_eq!(ev[0].uncertainty, Some((3.0, 0.05)));
        assert_eq!(ev[0].clock_uncertainty, Some(0.002));
        assert_eq!(ev[1].uncertainty, Some((1.5, 0.0)));
        assert_eq!(ev[2].uncertainty, None);
        std::fs::write(
            &p,
            "{\"t\":1,\"phone\":\"a\",\"uncertainty_s\":{\"before\":-1,\"after\":0}}\n",
        )
        .unwrap();
        let e = read_events(&p).unwrap_err().to_string();
        assert!(
            e.contains(":1: \"uncertainty_s\" must not be negative"),
            "{e}"
        );
    }
}
