//! `dns_forgery` / `control_inconsistency`: answers that disagree with a
//! control resolution of the same name made from an uncensored vantage
//! point (OONI web-connectivity style).
//!
//! An answer is *consistent* when it shares an address with the control,
//! or, with an ASN lookup, when some answer address lies in an AS of some
//! control address (CDNs hand out different addresses of the same AS).
//! Otherwise it is inconsistent: confidence 0.7 when ASNs could be compared,
//! 0.55 when only addresses could. An NXDOMAIN where the control has
//! addresses is inconsistent too (0.6). Names absent from the control and
//! address families the control has no answer for are not judged.

use super::{DnsFindings, InterferenceConfig, InterferenceError, event};
use crate::analysis::model::{DnsRecord, InterferenceRule};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

/// Control resolutions: lower-case name (no trailing dot) → addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlResolutions {
    names: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl ControlResolutions {
    /// Adds a control answer for `name`.
    pub fn insert(&mut self, name: &str, ips: impl IntoIterator<Item = IpAddr>) {
        self.names.entry(normalise(name)).or_default().extend(ips);
    }

    /// The control addresses of `name`, if it was resolved.
    pub fn get(&self, name: &str) -> Option<&BTreeSet<IpAddr>> {
        self.names.get(&normalise(name))
    }

    /// True when no control resolution is known.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Parses a JSON object `{"name": ["addr", …], …}`; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Self, InterferenceError> {
        let raw: BTreeMap<String, Vec<String>> =
            serde_json::from_str(text).map_err(|e| InterferenceError::Control {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        let mut c = ControlResolutions::default();
        for (name, addrs) in raw {
            let mut ips = Vec::new();
            for a in addrs {
                ips.push(a.parse().map_err(|_| InterferenceError::Control {
                    file: file.to_string(),
                    message: format!("name {name}: `{a}` is not an IP address"),
                })?);
            }
            c.insert(&name, ips);
        }
        Ok(c)
    }

    /// Reads [`from_json`](Self::from_json) from a file.
    pub fn load(path: &Path) -> Result<Self, InterferenceError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| InterferenceError::Control {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Self::from_json(&file, &text)
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Compares every reply with the control resolutions in `cfg`.
pub fn check(records: &[DnsRecord], cfg: &InterferenceConfig) -> DnsFindings {
    let mut out = DnsFindings::default();
    if cfg.control.is_empty() {
        return out;
    }
    for r in records.iter().filter(|r| r.rcode.is_some()) {
        let Some(control) = cfg.control.get(&r.query) else {
            continue;
        };
        let v6 = r.qtype == "AAAA";
        if r.qtype != "A" && !v6 {
            continue;
        }
        let ctrl: BTreeSet<IpAddr> = control
            .iter()
            .filter(|c| c.is_ipv6() == v6)
            .copied()
            .collect();
        if ctrl.is_empty() {
            continue;
        }
        let answers: BTreeSet<IpAddr> = r
            .answers
            .iter()
            .filter(|a| a.rtype == "A" || a.rtype == "AAAA")
            .filter_map(|a| a.data.parse().ok())
            .collect();
        let nxdomain = r.rcode.as_deref() == Some("NXDOMAIN");
        if answers.is_empty() && !nxdomain {
            continue;
        }
        if answers.intersection(&ctrl).next().is_some() {
            continue;
        }
        let mut ev = BTreeMap::new();
        let mut conf = if nxdomain { 0.6 } else { 0.55 };
        if let Some(asn) = &cfg.asn {
            let ctrl_asns: BTreeSet<u32> = ctrl.iter().filter_map(|ip| asn.asn(*ip)).collect();
            let ans_asns: BTreeSet<u32> = answers.iter().filter_map(|ip| asn.asn(*ip)).collect();
            if ctrl_asns.intersection(&ans_asns).next().is_some() {
                continue;
            }
            if !ctrl_asns.is_empty() && !nxdomain {
                conf = 0.7;
            }
            ev.insert("control_asns".into(), json!(ctrl_asns));
            ev.insert("answer_asns".into(), json!(ans_asns));
        }
        let mut e = event(
            InterferenceRule::ControlInconsistency,
            vec![r.frame],
            r.server,
            conf,
            if nxdomain {
                format!("{} is NXDOMAIN here but resolves at the control", r.query)
            } else {
                format!(
                    "{} answered {} but the control resolution has {}",
                    r.query,
                    list(&answers),
                    list(&ctrl)
                )
            },
        );
        ev.insert("query".into(), json!(r.query));
        ev.insert("qtype".into(), json!(r.qtype));
        ev.insert("rcode".into(), json!(r.rcode));
        ev.insert(
            "forged_addresses".into(),
            json!(answers.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
        );
        ev.insert(
            "control_addresses".into(),
            json!(ctrl.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
        );
        e.evidence = ev;
        // (no `ip_id` in its evidence)
        out.push(e, None, answers);
    }
    out
}

fn list(s: &BTreeSet<IpAddr>) -> String {
    s.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::model::DnsAnswer;
    use crate::capture::Timestamp;
    use std::sync::Arc;

    fn rec(frame: u64, name: &str, ips: &[&str], rcode: &str) -> DnsRecord {
        DnsRecord {
            frame,
            ts: Timestamp::new(0, 0, 6),
            transport: "udp".into(),
            server: "198.18.0.53".parse().unwrap(),
            client: "198.18.1.2".parse().unwrap(),
            id: 1,
            query: name.into(),
            qtype: "A".into(),
            rcode: Some(rcode.into()),
            ip_ttl: Some(64),
            ip_id: Some(1),
            answers: ips
                .iter()
                .map(|i| DnsAnswer {
                    name: name.into(),
                    rtype: "A".into(),
                    data: (*i).into(),
                    ttl: 60,
                })
                .collect(),
        }
    }

    #[test]
    fn ooni_style_consistency() {
        let control = ControlResolutions::from_json(
            "c.json",
            r#"{"Chat.Example.ORG.": ["203.0.113.10"], "cdn.example.org": ["192.0.2.1"]}"#,
        )
        .unwrap();
        let mut asns = BTreeMap::new();
        asns.insert("192.0.2.1".parse().unwrap(), 64500u32);
        asns.insert("192.0.2.99".parse().unwrap(), 64500u32);
        asns.insert("198.51.100.7".parse().unwrap(), 64666u32);
        let cfg = InterferenceConfig {
            control,
            asn: Some(Arc::new(asns)),
            keywords: vec![],
            exempt: vec![],
        };
        let recs = vec![
            rec(1, "chat.example.org", &["203.0.113.10"], "NOERROR"), // same address
            rec(2, "cdn.example.org", &["192.0.2.99"], "NOERROR"),    // same AS
            rec(3, "cdn.example.org", &["198.51.100.7"], "NOERROR"),  // other AS
            rec(4, "chat.example.org", &[], "NXDOMAIN"),
            rec(5, "other.example.org", &["198.51.100.7"], "NOERROR"), // no control
        ];
        let found = check(&recs, &cfg);
        // The other AS's address is forged; the NXDOMAIN names none.
        assert_eq!(found.forged, ["198.51.100.7".parse::<IpAddr>().unwrap()]);
        let ev = found.into_events();
        assert_eq!(
            ev.iter().map(|e| e.frames[0]).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(ev[0].confidence, 0.7);
        assert_eq!(ev[0].rule, InterferenceRule::ControlInconsistency);
        assert_eq!(ev[1].confidence, 0.6);
    }

    #[test]
    fn bad_control_file() {
        let e = ControlResolutions::from_json("c.json", r#"{"a.org": ["x"]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "control resolutions c.json: name a.org: `x` is not an IP address"
        );
        assert!(ControlResolutions::from_json("c.json", "{").is_err());
    }
}
