//! Import of scamper traces (`scamper -O json`, or `sc_warts2json` over a
//! warts file) into [`Trace`], so scamper can serve as an alternative
//! engine and its results sit beside matador's in the same format.
//!
//! scamper writes one JSON object per line; only `"type": "trace"` objects
//! are taken (`cycle-start`/`cycle-stop` and other measurement types are
//! skipped). scamper lists answered probes only; unanswered ones are
//! restored as `{"x": "*"}` from the probe ids (`probe_id` counts attempts
//! per TTL), a silent TTL getting `attempts` stars.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::PathsError;
use super::model::{
    Answer, Hop, IcmpExt, IcmpExtObj, MplsLabel, Proto, Reply, StopReason, TRACE_SCHEMA, Trace,
    detect_injected_rst, tcp_flags, unreach_err, unreach_stop,
};

#[derive(Deserialize)]
struct ScTime {
    sec: u64,
}

#[derive(Deserialize)]
struct ScMpls {
    mpls_ttl: u8,
    mpls_s: u8,
    mpls_exp: u8,
    mpls_label: u32,
}

#[derive(Deserialize)]
struct ScExt {
    ie_cn: u8,
    ie_ct: u8,
    #[serde(default)]
    mpls_labels: Vec<ScMpls>,
}

#[derive(Deserialize)]
struct ScHop {
    addr: IpAddr,
    probe_ttl: u8,
    #[serde(default)]
    probe_id: u16,
    rtt: f64,
    #[serde(default)]
    reply_ttl: u8,
    #[serde(default)]
    reply_size: u16,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    icmp_q_ttl: Option<u8>,
    tcp_flags: Option<u8>,
    #[serde(default)]
    icmpext: Vec<ScExt>,
}

#[derive(Deserialize)]
struct ScTrace {
    method: String,
    src: IpAddr,
    dst: IpAddr,
    #[serde(default)]
    sport: Option<u16>,
    #[serde(default)]
    dport: Option<u16>,
    stop_reason: String,
    #[serde(default)]
    stop_data: u8,
    start: ScTime,
    #[serde(default)]
    hop_count: u8,
    #[serde(default = "one")]
    attempts: u8,
    #[serde(default = "one")]
    firsthop: u8,
    #[serde(default)]
    probe_size: u16,
    #[serde(default)]
    probe_count: u32,
    #[serde(default)]
    hops: Vec<ScHop>,
}

fn one() -> u8 {
    1
}

/// Converts one scamper trace object (already parsed JSON).
fn convert(t: ScTrace) -> Result<Trace, String> {
    let m = t.method.to_ascii_lowercase();
    let proto = if m.starts_with("icmp") {
        Proto::Icmp
    } else if m.starts_with("udp") {
        Proto::Udp
    } else if m.starts_with("tcp") {
        Proto::Tcp
    } else {
        return Err(format!("unknown scamper method {:?}", t.method));
    };
    let is_v6 = t.dst.is_ipv6();
    let stop_reason = match t.stop_reason.as_str() {
        "COMPLETED" => StopReason::Reached,
        "UNREACH" | "ICMP" => unreach_stop(is_v6, t.stop_data),
        "GAPLIMIT" => StopReason::GapLimit,
        "HOPLIMIT" => StopReason::MaxTtl,
        "LOOP" => StopReason::Loop,
        _ => StopReason::Error,
    };
    let mut by_ttl: BTreeMap<u8, Vec<ScHop>> = BTreeMap::new();
    for h in t.hops {
        by_ttl.entry(h.probe_ttl).or_default().push(h);
    }
    let last = by_ttl
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(t.hop_count);
    let mut result = Vec::new();
    for ttl in t.firsthop.max(1)..=last {
        let mut replies = by_ttl.remove(&ttl).unwrap_or_default();
        replies.sort_by_key(|h| h.probe_id);
        let n = replies
            .iter()
            .map(|h| h.probe_id)
            .max()
            .unwrap_or(0)
            .max(if replies.is_empty() {
                u16::from(t.attempts.max(1))
            } else {
                0
            })
            .max(replies.len() as u16);
        let mut slots: Vec<Reply> = (0..n).map(|_| Reply::star()).collect();
        let mut free = 0usize;
        for h in replies {
            let answer = Answer {
                from: h.addr,
                rtt: h.rtt,
                ttl: h.reply_ttl,
                size: h.reply_size,
                err: match (h.icmp_type, h.icmp_code) {
                    (Some(3), Some(c)) if !is_v6 => {
                        let e = unreach_err(false, c);
                        (!(e == "p" && h.addr == t.dst)).then_some(e)
                    }
                    (Some(1), Some(c)) if is_v6 => {
                        let e = unreach_err(true, c);
                        (!(e == "p" && h.addr == t.dst)).then_some(e)
                    }
                    _ => None,
                },
                flags: h.tcp_flags.map(tcp_flags),
                ittl: h.icmp_q_ttl.filter(|q| *q != 1),
                icmpext: (!h.icmpext.is_empty()).then(|| IcmpExt {
                    version: 2,
                    rfc4884: 1,
                    obj: h
                        .icmpext
                        .iter()
                        .map(|e| IcmpExtObj {
                            class: e.ie_cn,
                            ctype: e.ie_ct,
                            mpls: e
                                .mpls_labels
                                .iter()
                                .map(|l| MplsLabel {
                                    label: l.mpls_label,
                                    exp: l.mpls_exp,
                                    s: l.mpls_s,
                                    ttl: l.mpls_ttl,
                                })
                                .collect(),
                        })
                        .collect(),
                }),
                injected: None,
            };
            let at = usize::from(h.probe_id.max(1)) - 1;
            let idx = if at < slots.len() && slots[at].answer().is_none() {
                at
            } else {
                // Several answers for one probe id: fill the first star.
                while free < slots.len() && slots[free].answer().is_some() {
                    free += 1;
                }
                if free == slots.len() {
                    slots.push(Reply::star());
                }
                free
            };
            slots[idx] = Reply::Answer(answer);
        }
        result.push(Hop {
            hop: ttl,
            result: slots,
            geo: Vec::new(),
        });
    }
    let size = if t.probe_size > 0 { t.probe_size } else { 0 };
    let mut trace = Trace {
        schema: TRACE_SCHEMA.into(),
        engine: "scamper".into(),
        af: if is_v6 { 6 } else { 4 },
        dst_addr: t.dst,
        dst_name: None,
        src_addr: t.src,
        proto,
        dst_port: if proto == Proto::Icmp { None } else { t.dport },
        paris_id: t.sport.unwrap_or(0),
        timestamp: t.start.sec,
        endtime: t.start.sec,
        size,
        stop_reason,
        packets: t.probe_count,
        error: None,
        result,
    };
    detect_injected_rst(&mut trace);
    Ok(trace)
}

/// Parses scamper JSON text (one object per line); `path` names the source
/// in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Trace>, PathsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| PathsError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
        if v.get("type").and_then(|t| t.as_str()) != Some("trace") {
            continue;
        }
        let t: ScTrace = serde_json::from_value(v)
            .map_err(|e| err(format!("not a scamper trace object: {e}")))?;
        out.push(convert(t).map_err(err)?);
    }
    Ok(out)
}

/// Reads and parses a scamper JSON file.
pub fn import(path: &Path) -> Result<Vec<Trace>, PathsError> {
    let text = std::fs::read_to_string(path).map_err(|e| PathsError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"type":"cycle-start", "list_name":"default", "id":0, "hostname":"vm", "start_time":1795425665}
{"type":"trace","version":"0.1", "userid":0, "method":"udp-paris", "src":"198.18.1.1", "dst":"198.18.4.2", "sport":40001, "dport":33435, "stop_reason":"COMPLETED", "stop_data":0, "start":{"sec":1795425665, "usec":928244, "ftime":"2026-11-23 09:21:05"}, "hop_count":3, "attempts":2, "hoplimit":0, "firsthop":1, "wait":1, "wait_probe":0, "tos":0, "probe_size":44, "probe_count":6, "hops":[{"addr":"198.18.1.2", "probe_ttl":1, "probe_id":2, "probe_size":44, "rtt":0.120, "reply_ttl":64, "reply_size":72, "icmp_type":11, "icmp_code":0, "icmp_q_ttl":1, "icmp_q_ipl":44, "icmp_q_tos":0, "icmpext":[{"ie_cn":1,"ie_ct":1,"ie_dl":4,"mpls_labels":[{"mpls_ttl":1,"mpls_s":1,"mpls_exp":0,"mpls_label":16005}]}]},{"addr":"198.18.4.2", "probe_ttl":3, "probe_id":1, "probe_size":44, "rtt":0.063, "reply_ttl":62, "reply_size":72, "icmp_type":3, "icmp_code":3}]}
{"type":"cycle-stop", "list_name":"default", "id":0, "hostname":"vm", "stop_time":1795425666}
"#;

    #[test]
    fn imports_trace_with_stars_and_mpls() {
        let t = parse(Path::new("sample.json"), SAMPLE).unwrap();
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!(t.engine, "scamper");
        assert_eq!(t.proto, Proto::Udp);
        assert_eq!(t.stop_reason, StopReason::Reached);
        assert_eq!(t.result.len(), 3);
        // TTL 1: probe 1 lost, probe 2 answered with an MPLS label.
        assert_eq!(t.result[0].result[0], Reply::star());
        let a = t.result[0].result[1].answer().unwrap();
        assert_eq!(a.icmpext.as_ref().unwrap().obj[0].mpls[0].label, 16005);
        // TTL 2 silent: two stars (attempts = 2).
        assert_eq!(t.result[1].result, vec![Reply::star(), Reply::star()]);
        // TTL 3: port unreachable from the destination is no error.
        let d = t.result[2].result[0].answer().unwrap();
        assert_eq!(d.err, None);
        assert_eq!(
            t.hop_addrs(),
            vec![
                Some("198.18.1.2".parse().unwrap()),
                None,
                Some("198.18.4.2".parse().unwrap())
            ]
        );
    }

    /// Pins the stored JSON layout (RIPE Atlas field names, matador extras).
    #[test]
    fn stored_json_layout() {
        let t = parse(Path::new("sample.json"), SAMPLE).unwrap();
        insta::assert_json_snapshot!(t[0]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse(Path::new("x.json"), "{\"type\":\"trace\"}\n").unwrap_err();
        assert!(e.to_string().starts_with("x.json:1:"), "{e}");
        let e = parse(Path::new("x.json"), "\n\nnot json").unwrap_err();
        assert!(e.to_string().starts_with("x.json:3:"), "{e}");
    }
}
