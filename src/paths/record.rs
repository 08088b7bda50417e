//! Stored traces in a measurement folder (docs/campaign-record.md):
//! `measurements/<id>/traces/<node>--<target>.json`, written to a `.tmp`
//! file and renamed so a crash never leaves half a file.
//!
//! The node agent's `trace` op calls [`trace_and_store`]: it probes from the
//! node (optionally inside a network namespace), and writes one file per
//! target. Readers use [`read_trace`] / [`read_traces`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::model::{TRACE_SCHEMA, Trace};
use super::{PathsError, Target, TraceConfig, engine};

/// File name of the trace from `node` to `target`: `<node>--<target>.json`
/// (characters other than alphanumerics, `.`, `-`, `_` and `:` become `_`).
pub fn trace_file_name(node: &str, target: IpAddr) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}--{}.json", clean(node), clean(&target.to_string()))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PathsError + '_ {
    move |e| PathsError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes `trace` as `<measurement_dir>/traces/<node>--<dst>.json`
/// atomically; returns the path.
pub fn write_trace(
    measurement_dir: &Path,
    node: &str,
    trace: &Trace,
) -> Result<PathBuf, PathsError> {
    let dir = measurement_dir.join("traces");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(trace_file_name(node, trace.dst_addr));
    let mut text = serde_json::to_string_pretty(trace).map_err(|e| PathsError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    crate::atomic_file::write(&path, text.as_bytes()).map_err(io(&path))?;
    Ok(path)
}

/// Reads one stored trace, refusing other schemas.
pub fn read_trace(path: &Path) -> Result<Trace, PathsError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| PathsError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    if schema != TRACE_SCHEMA {
        return Err(PathsError::Parse {
            path: path.to_path_buf(),
            line: 1,
            message: format!("schema {schema:?}, expected {TRACE_SCHEMA:?}"),
        });
    }
    serde_json::from_value(v).map_err(|e| PathsError::Parse {
        path: path.to_path_buf(),
        line: 1,
        message: e.to_string(),
    })
}

/// Reads every `traces/*.json` of a measurement folder, sorted by file
/// name, each with its node name (the part before `--`).
pub fn read_traces(measurement_dir: &Path) -> Result<Vec<(String, Trace)>, PathsError> {
    let dir = measurement_dir.join("traces");
    let mut names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let node = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split_once("--"))
                .map(|(n, _)| n.to_string())
                .unwrap_or_default();
            Ok((node, read_trace(&p)?))
        })
        .collect()
}

/// The node agent's entry point: traces `targets` from this node (inside
/// `cfg.netns` if set) and stores each result under
/// `<measurement_dir>/traces/<node>--<target>.json`. Blocking (run it on
/// `spawn_blocking` from async code). Returns the traces and their paths.
pub fn trace_and_store(
    cfg: &TraceConfig,
    targets: &[Target],
    measurement_dir: &Path,
    node: &str,
) -> Result<Vec<(PathBuf, Trace)>, PathsError> {
    let traces = engine::trace(cfg, targets)?;
    traces
        .into_iter()
        .map(|t| Ok((write_trace(measurement_dir, node, &t)?, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::scamper;

    #[test]
    fn write_read_roundtrip_and_schema_check() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"type":"trace","method":"icmp-echo-paris","src":"fd00::1","dst":"fd00:4::2","stop_reason":"COMPLETED","stop_data":0,"start":{"sec":1},"hop_count":1,"attempts":1,"hops":[{"addr":"fd00:4::2","probe_ttl":1,"probe_id":1,"rtt":0.1,"reply_ttl":64,"reply_size":104,"icmp_type":129,"icmp_code":0}]}"#;
        let t = scamper::parse(Path::new("t"), text).unwrap().remove(0);
        let p = write_trace(dir.path(), "de-1", &t).unwrap();
        assert_eq!(p.file_name().unwrap(), "de-1--fd00:4::2.json");
        assert_eq!(read_trace(&p).unwrap(), t);
        let all = read_traces(dir.path()).unwrap();
        assert_eq!(all, vec![("de-1".to_string(), t)]);
        std::fs::write(&p, r#"{"schema":"matador/other/1"}"#).unwrap();
        let e = read_trace(&p).unwrap_err().to_string();
        assert!(e.contains("matador/other/1"), "{e}");
        assert_eq!(
            trace_file_name("a/b", "198.18.0.1".parse().unwrap()),
            "a_b--198.18.0.1.json"
        );
    }
}
