//! Verdicts: a vantage's results judged against a control vantage's, per
//! app and endpoint, and OONI-style JSON (`test_keys`).
//!
//! DNS consistency follows OONI's `web_connectivity`: the vantage's answers
//! are consistent with the control's when the address sets overlap or share
//! an AS; answers on the known forged list or in bogon ranges are never
//! consistent; so are answers for a random non-existent subdomain the
//! control does not resolve (wildcard forging), and racing replies that
//! disagree. Throttling: the vantage's bulk throughput below
//! [`THROTTLE_RATIO`] of the control's.

use super::vantage::{EndpointResult, VantageResult};
use crate::analysis::interference::AsnLookup;
use crate::analysis::interference::data::RuleData;
use crate::analysis::model::InterferenceRule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// A vantage is throttled when its throughput is below this share of the
/// control's.
pub const THROTTLE_RATIO: f64 = 0.5;
/// Transfers shorter than this are too short to judge throughput.
pub const THROTTLE_MIN_SECS: f64 = 0.3;

/// One verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Reachable, nothing found.
    Ok,
    /// DNS answers forged, missing or inconsistent with the control.
    DnsTampered,
    /// TCP connection reset/refused where the control connects.
    TcpBlocked,
    /// TLS handshake fails (SNI-based or always) where the control's works.
    TlsBlocked,
    /// An HTTP request with the endpoint's name in the `Host` header is
    /// reset on the way to a neutral address.
    HttpKeywordBlocked,
    /// Throughput far below the control path's.
    Throttled,
    /// Timeouts where the control gets answers.
    Timeout,
    /// The control failed too (or the test could not run): no verdict.
    Inconclusive,
}

impl Verdict {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::DnsTampered => "dns-tampered",
            Verdict::TcpBlocked => "tcp-blocked",
            Verdict::TlsBlocked => "tls-blocked",
            Verdict::HttpKeywordBlocked => "http-keyword-blocked",
            Verdict::Throttled => "throttled",
            Verdict::Timeout => "timeout",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Verdicts of one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointVerdict {
    /// Host name.
    pub host: String,
    /// Verdicts (sorted; `[ok]` when nothing was found).
    pub verdicts: Vec<Verdict>,
    /// Why, one line per finding.
    pub reasons: Vec<String>,
    /// Isolated keywords of the `Host` header test.
    pub keywords: Vec<String>,
    /// Requests the keyword isolation used.
    pub keyword_requests: u32,
    /// Capture frames of the interference events backing the verdicts.
    pub evidence_frames: Vec<u64>,
    /// Interference rules that fired (`rule` of each event), sorted by name.
    pub evidence_rules: Vec<InterferenceRule>,
}

/// Verdicts of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppVerdict {
    /// App id.
    pub app: String,
    /// Union of the endpoints' verdicts (`[ok]` when all are ok).
    pub verdicts: Vec<Verdict>,
    /// Per endpoint.
    pub endpoints: Vec<EndpointVerdict>,
}

/// The throughput comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleVerdict {
    /// Vantage kbit/s.
    pub vantage_kbit_s: f64,
    /// Control kbit/s.
    pub control_kbit_s: f64,
    /// Vantage / control.
    pub ratio: f64,
    /// Below [`THROTTLE_RATIO`].
    pub throttled: bool,
}

/// Verdicts of one vantage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VantageVerdicts {
    /// Vantage.
    pub vantage: String,
    /// Control vantage.
    pub control: String,
    /// Per app.
    pub apps: Vec<AppVerdict>,
    /// Throughput comparison, when both ran the bulk test.
    pub throttle: Option<ThrottleVerdict>,
    /// Requests the vantage sent.
    pub requests: u32,
}

/// What the judge knows beyond the two results.
#[derive(Clone, Default)]
pub struct Knowledge {
    /// Known forged answers and bogons.
    pub data: RuleData,
    /// ASN lookup for the consistency rule.
    pub asn: Option<Arc<dyn AsnLookup>>,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge")
            .field("forged", &self.data.forged.len())
            .field("asn", &self.asn.is_some())
            .field("exempt", &self.data.exempt)
            .finish()
    }
}

impl Knowledge {
    /// The shipped rule data, no ASN lookup; `exempt`: address ranges the
    /// caller declares its own (never bogons: the virtual lab's space, a
    /// real lab's declared `exempt_networks`).
    pub fn shipped(exempt: &[ipnetwork::IpNetwork]) -> Knowledge {
        let mut data = RuleData::shipped().unwrap_or_default();
        data.exempt.extend_from_slice(exempt);
        Knowledge { data, asn: None }
    }

    fn suspicious(&self, ip: IpAddr) -> Option<String> {
        if let Some(note) = self.data.forged.get(&ip) {
            return Some(format!("{ip} is a known forged answer ({note})"));
        }
        self.data
            .bogon(ip)
            .map(|b| format!("{ip} is a bogon ({})", b.category))
    }

    /// OONI consistency: overlap of addresses or of their ASNs.
    pub fn consistent(&self, v: &[IpAddr], c: &[IpAddr]) -> bool {
        if v.iter().any(|a| c.contains(a)) {
            return true;
        }
        let Some(asn) = &self.asn else {
            return false;
        };
        let va: BTreeSet<u32> = v.iter().filter_map(|a| asn.asn(*a)).collect();
        c.iter()
            .filter_map(|a| asn.asn(*a))
            .any(|n| va.contains(&n))
    }
}

fn is_timeout(f: Option<&str>) -> bool {
    f == Some("generic_timeout_error")
}

fn judge_dns(
    v: &EndpointResult,
    c: &EndpointResult,
    k: &Knowledge,
    out: &mut Vec<(Verdict, String)>,
) {
    let (Some(vu), Some(cu)) = (&v.dns_udp, &c.dns_udp) else {
        return;
    };
    let ctl_ok = !cu.answers.is_empty();
    if vu.answers.is_empty() {
        if ctl_ok {
            let f = vu.failure.clone().unwrap_or_default();
            if is_timeout(vu.failure.as_deref()) {
                out.push((
                    Verdict::Timeout,
                    "DNS query timed out; control resolves".into(),
                ));
            } else {
                out.push((
                    Verdict::DnsTampered,
                    format!("no answer ({f}); control resolves"),
                ));
            }
        }
    } else {
        let mut why: Vec<String> = vu
            .all_answers()
            .iter()
            .filter_map(|a| k.suspicious(*a))
            .collect();
        if ctl_ok && !k.consistent(&vu.answers, &cu.answers) {
            why.push(format!(
                "answers {:?} inconsistent with control {:?} (no common address or AS)",
                vu.answers, cu.answers
            ));
        }
        if !ctl_ok {
            why.push(format!(
                "answers {:?} for a name the control does not resolve ({})",
                vu.answers,
                cu.failure.clone().unwrap_or_default()
            ));
        }
        let first: BTreeSet<_> = vu.answers.iter().collect();
        if vu
            .later_replies
            .iter()
            .any(|r| r.iter().collect::<BTreeSet<_>>() != first)
        {
            why.push(format!(
                "racing replies disagree: first {:?}, then {:?}",
                vu.answers, vu.later_replies
            ));
        }
        if !why.is_empty() {
            if let Some(vt) = &v.dns_tcp
                && !vt.answers.is_empty()
                && ctl_ok
                && k.consistent(&vt.answers, &cu.answers)
            {
                why.push("DNS over TCP is consistent: UDP-only tampering".into());
            }
            out.push((Verdict::DnsTampered, why.join("; ")));
        }
    }
    if let (Some(vw), Some(cw)) = (&v.wildcard, &c.wildcard)
        && !vw.answers.is_empty()
        && cw.answers.is_empty()
    {
        out.push((
            Verdict::DnsTampered,
            format!(
                "random subdomain {} answered {:?} (control: {}): wildcard forging",
                vw.name,
                vw.answers,
                cw.failure.clone().unwrap_or_default()
            ),
        ));
    }
}

fn judge_endpoint(v: &EndpointResult, c: &EndpointResult, k: &Knowledge) -> EndpointVerdict {
    let mut found: Vec<(Verdict, String)> = Vec::new();
    judge_dns(v, c, k, &mut found);
    let dns_bad = found.iter().any(|(v, _)| *v != Verdict::Ok);
    for t in &v.tcp {
        if t.ok || (dns_bad && t.via == "dns") {
            continue;
        }
        let ctl = c.tcp.iter().find(|x| x.addr == t.addr && x.ok);
        if ctl.is_some() {
            let f = t.failure.clone().unwrap_or_default();
            let verdict = if is_timeout(t.failure.as_deref()) {
                Verdict::Timeout
            } else {
                Verdict::TcpBlocked
            };
            found.push((
                verdict,
                format!("TCP {} ({}): {f}; control connects", t.addr, t.via),
            ));
        }
    }
    let mode = |r: &[super::conn::TlsResult], m: &str| r.iter().find(|t| t.mode == m).cloned();
    if let (Some(vs), Some(cs)) = (mode(&v.tls, "sni"), mode(&c.tls, "sni"))
        && !vs.ok
        && cs.ok
    {
        let others: Vec<String> = v
            .tls
            .iter()
            .filter(|t| t.mode != "sni" && t.ok)
            .map(|t| t.mode.clone())
            .collect();
        let f = vs.failure.clone().unwrap_or_default();
        let tcp_ok = v.tcp.iter().any(|t| t.addr == vs.addr && t.ok);
        if !others.is_empty() {
            found.push((
                Verdict::TlsBlocked,
                format!(
                    "TLS with SNI {} to {}: {f}; without/decoy SNI ({}) completes: SNI filtering",
                    v.host,
                    vs.addr,
                    others.join(", ")
                ),
            ));
        } else if tcp_ok {
            found.push((
                Verdict::TlsBlocked,
                format!(
                    "every TLS handshake to {} fails ({f}); TCP connects",
                    vs.addr
                ),
            ));
        }
    }
    let mut keywords = Vec::new();
    let mut keyword_requests = 0;
    if let (Some(vh), Some(ch)) = (&v.http, &c.http)
        && !vh.ok()
        && ch.ok()
    {
        if let Some(iso) = &v.keywords {
            keywords = iso.keywords.clone();
            keyword_requests = iso.requests;
        }
        if vh.reset() {
            found.push((
                Verdict::HttpKeywordBlocked,
                format!(
                    "GET with Host {} to neutral {} reset; control answered {}; keywords {:?}",
                    v.host,
                    vh.addr,
                    ch.status.unwrap_or(0),
                    keywords
                ),
            ));
        } else if is_timeout(vh.failure.as_deref()) {
            found.push((
                Verdict::Timeout,
                format!("GET with Host {} timed out", v.host),
            ));
        }
    }
    let mut verdicts: Vec<Verdict> = found.iter().map(|(v, _)| *v).collect();
    verdicts.sort();
    verdicts.dedup();
    if verdicts.is_empty() {
        let ctl_alive =
            c.dns_udp.as_ref().is_some_and(|d| !d.answers.is_empty()) || c.tcp.iter().any(|t| t.ok);
        verdicts.push(if ctl_alive {
            Verdict::Ok
        } else {
            Verdict::Inconclusive
        });
        if !ctl_alive {
            found.push((
                Verdict::Inconclusive,
                "the control could not reach this endpoint either".into(),
            ));
        }
    }
    let mut evidence_frames: Vec<u64> = v.evidence.iter().flat_map(|e| e.frames.clone()).collect();
    evidence_frames.sort_unstable();
    evidence_frames.dedup();
    let mut evidence_rules: Vec<InterferenceRule> =
        v.evidence.iter().map(|e| e.rule.clone()).collect();
    evidence_rules.sort();
    evidence_rules.dedup();
    EndpointVerdict {
        host: v.host.clone(),
        verdicts,
        reasons: found
            .into_iter()
            .map(|(v, r)| format!("{}: {r}", v.name()))
            .collect(),
        keywords,
        keyword_requests,
        evidence_frames,
        evidence_rules,
    }
}

/// Judges vantage `v` against control `c`.
pub fn judge(v: &VantageResult, c: &VantageResult, k: &Knowledge) -> VantageVerdicts {
    let mut apps = Vec::new();
    for a in &v.apps {
        let ca = c.apps.iter().find(|x| x.app == a.app);
        let mut eps = Vec::new();
        for e in &a.endpoints {
            let ce = ca.and_then(|ca| ca.endpoints.iter().find(|x| x.host == e.host));
            eps.push(match ce {
                Some(ce) => judge_endpoint(e, ce, k),
                None => EndpointVerdict {
                    host: e.host.clone(),
                    verdicts: vec![Verdict::Inconclusive],
                    reasons: vec!["inconclusive: no control result".into()],
                    keywords: Vec::new(),
                    keyword_requests: 0,
                    evidence_frames: Vec::new(),
                    evidence_rules: Vec::new(),
                },
            });
        }
        let mut verdicts: Vec<Verdict> = eps.iter().flat_map(|e| e.verdicts.clone()).collect();
        verdicts.sort();
        verdicts.dedup();
        // Inconclusive endpoints do not hide the others' verdicts; ok only
        // when nothing is blocked.
        if verdicts.len() > 1 {
            verdicts.retain(|v| *v != Verdict::Inconclusive);
        }
        if verdicts.len() > 1 {
            verdicts.retain(|v| *v != Verdict::Ok);
        }
        apps.push(AppVerdict {
            app: a.app.clone(),
            verdicts,
            endpoints: eps,
        });
    }
    let throttle = match (&v.bulk, &c.bulk) {
        (Some(vb), Some(cb)) if cb.kbit_s > 0.0 && vb.bytes > 0 => {
            let ratio = vb.kbit_s / cb.kbit_s;
            Some(ThrottleVerdict {
                vantage_kbit_s: vb.kbit_s,
                control_kbit_s: cb.kbit_s,
                ratio,
                throttled: ratio < THROTTLE_RATIO && vb.secs >= THROTTLE_MIN_SECS,
            })
        }
        _ => None,
    };
    if throttle.as_ref().is_some_and(|t| t.throttled) {
        for a in &mut apps {
            a.verdicts.retain(|v| *v != Verdict::Ok);
            a.verdicts.push(Verdict::Throttled);
            a.verdicts.sort();
        }
    }
    VantageVerdicts {
        vantage: v.vantage.clone(),
        control: c.vantage.clone(),
        apps,
        throttle,
        requests: v.requests,
    }
}

fn ooni_time(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Where a vantage stands, for OONI's `probe_cc` / `probe_asn`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VantageMeta {
    /// ISO country code.
    pub cc: Option<String>,
    /// AS number.
    pub asn: Option<u32>,
}

/// One OONI-style measurement per app of a vantage (`test_keys` with
/// `queries`, `tcp_connect`, `tls_handshakes`, `requests`, plus
/// `dns_consistency`, `accessible`, `blocking` and matador's verdicts).
pub fn ooni_measurements(
    v: &VantageResult,
    verdicts: &VantageVerdicts,
    meta: &VantageMeta,
) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = Vec::new();
    for a in &v.apps {
        let av = verdicts.apps.iter().find(|x| x.app == a.app);
        let mut queries = Vec::new();
        let mut tcp = Vec::new();
        let mut tls = Vec::new();
        let mut requests = Vec::new();
        for e in &a.endpoints {
            for q in [&e.dns_udp, &e.dns_tcp, &e.wildcard].into_iter().flatten() {
                queries.push(json!({
                    "hostname": q.name, "query_type": "A", "engine": q.transport,
                    "resolver_address": q.resolver.to_string(), "failure": q.failure,
                    "answers": q.answers.iter().map(|a| json!({"answer_type": "A", "ipv4": a.to_string()})).collect::<Vec<_>>(),
                    "t": q.ms / 1000.0,
                }));
            }
            for t in &e.tcp {
                tcp.push(json!({"ip": t.addr.ip().to_string(), "port": t.addr.port(),
                    "status": {"success": t.ok, "failure": t.failure, "blocked": null}, "t": t.ms / 1000.0}));
            }
            for t in &e.tls {
                tls.push(
                    json!({"address": t.addr.to_string(), "server_name": t.server_name,
                    "failure": t.failure, "t": t.ms / 1000.0}),
                );
            }
            if let Some(h) = &e.http {
                requests.push(
                    json!({"request": {"method": "GET", "url": format!("http://{}/", h.addr),
                    "headers": {"Host": h.host, "User-Agent": super::conn::USER_AGENT}},
                    "response": {"code": h.status}, "failure": h.failure, "t": h.ms / 1000.0}),
                );
            }
        }
        let verd = av.map(|x| x.verdicts.clone()).unwrap_or_default();
        let blocking: serde_json::Value = if verd == [Verdict::Ok] {
            json!(false)
        } else if verd == [Verdict::Inconclusive] {
            json!(null)
        } else {
            json!(
                verd.iter()
                    .filter(|v| **v != Verdict::Inconclusive)
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let dns_bad = verd.contains(&Verdict::DnsTampered);
        out.push(json!({
            "annotations": {"engine_name": "matador", "vantage": v.vantage, "control": verdicts.control},
            "data_format_version": "0.2.0",
            "input": a.app,
            "measurement_start_time": ooni_time(v.started),
            "probe_asn": meta.asn.map(|n| format!("AS{n}")).unwrap_or_else(|| "AS0".into()),
            "probe_cc": meta.cc.clone().unwrap_or_else(|| "ZZ".into()),
            "software_name": "matador",
            "software_version": env!("CARGO_PKG_VERSION"),
            "test_name": "matador_app_probe",
            "test_runtime": v.runtime_s,
            "test_keys": {
                "queries": queries, "tcp_connect": tcp, "tls_handshakes": tls, "requests": requests,
                "dns_consistency": if dns_bad { "inconsistent" } else { "consistent" },
                "accessible": if verd == [Verdict::Inconclusive] { json!(null) } else { json!(verd == [Verdict::Ok]) },
                "blocking": blocking,
                "matador_verdicts": av,
                "throttle": verdicts.throttle,
            },
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::probes::conn::{HttpResult, TcpResult, TlsResult};
    use crate::probes::dns::DnsResult;

    fn dns(name: &str, answers: &[&str], failure: Option<&str>) -> DnsResult {
        DnsResult {
            name: name.into(),
            transport: "udp".into(),
            resolver: "198.18.98.53:53".parse().unwrap(),
            answers: answers.iter().map(|a| a.parse().unwrap()).collect(),
            rcode: None,
            later_replies: Vec::new(),
            failure: failure.map(str::to_string),
            ms: 1.0,
        }
    }

    fn ep(answers: &[&str], failure: Option<&str>) -> EndpointResult {
        EndpointResult {
            dns_udp: Some(dns("chat.example", answers, failure)),
            wildcard: Some(dns("mtp1.chat.example", &[], Some("dns_nxdomain_error"))),
            ..EndpointResult::new("chat.example", &[443])
        }
    }

    fn tls(mode: &str, ok: bool) -> TlsResult {
        TlsResult {
            addr: "119.235.235.44:443".parse().unwrap(),
            mode: mode.into(),
            server_name: None,
            ok,
            failure: (!ok).then(|| "connection_reset".to_string()),
            ms: 1.0,
        }
    }

    #[test]
    fn verdicts_from_synthetic_results() {
        let k = Knowledge::shipped(&[]);
        let ctl = ep(&["119.235.235.44"], None);
        // Same answer: ok.
        let v = judge_endpoint(&ep(&["119.235.235.44"], None), &ctl, &k);
        assert_eq!(v.verdicts, vec![Verdict::Ok]);
        // Bogon answer.
        let v = judge_endpoint(&ep(&["10.1.2.3"], None), &ctl, &k);
        assert_eq!(v.verdicts, vec![Verdict::DnsTampered]);
        assert!(v.reasons[0].contains("bogon"), "{:?}", v.reasons);
        // Known forged answer (Citizen Lab's GFW address), even when the
        // control agrees by accident.
        let v = judge_endpoint(&ep(&["37.61.54.158"], None), &ctl, &k);
        assert!(v.reasons[0].contains("known forged"), "{:?}", v.reasons);
        // Timeout vs NXDOMAIN at the vantage.
        let v = judge_endpoint(&ep(&[], Some("generic_timeout_error")), &ctl, &k);
        assert_eq!(v.verdicts, vec![Verdict::Timeout]);
        let v = judge_endpoint(&ep(&[], Some("dns_nxdomain_error")), &ctl, &k);
        assert_eq!(v.verdicts, vec![Verdict::DnsTampered]);
        // The control fails too: inconclusive, never a censorship verdict.
        let dead = ep(&[], Some("dns_nxdomain_error"));
        let v = judge_endpoint(&ep(&[], Some("dns_nxdomain_error")), &dead, &k);
        assert_eq!(v.verdicts, vec![Verdict::Inconclusive]);
        // SNI filtering: only the handshake with the real SNI fails.
        let mut c2 = ctl.clone();
        c2.tls = vec![tls("sni", true), tls("none", true), tls("decoy", true)];
        let mut v2 = ep(&["119.235.235.44"], None);
        v2.tls = vec![tls("sni", false), tls("none", true), tls("decoy", true)];
        let v = judge_endpoint(&v2, &c2, &k);
        assert_eq!(v.verdicts, vec![Verdict::TlsBlocked]);
        assert!(v.reasons[0].contains("SNI filtering"), "{:?}", v.reasons);
        // TCP reset by control address; HTTP Host reset.
        let tcp = |ok: bool| TcpResult {
            addr: "119.235.235.44:443".parse().unwrap(),
            via: "control".into(),
            ok,
            failure: (!ok).then(|| "connection_reset".to_string()),
            ms: 1.0,
        };
        let http = |status: Option<u16>| HttpResult {
            addr: "198.51.100.1:80".parse().unwrap(),
            host: "chat.example".into(),
            status,
            failure: status.is_none().then(|| "connection_reset".to_string()),
            ms: 1.0,
        };
        let mut c3 = ctl.clone();
        c3.tcp = vec![tcp(true)];
        c3.http = Some(http(Some(204)));
        let mut v3 = ep(&["119.235.235.44"], None);
        v3.tcp = vec![tcp(false)];
        v3.http = Some(http(None));
        let v = judge_endpoint(&v3, &c3, &k);
        assert_eq!(
            v.verdicts,
            vec![Verdict::TcpBlocked, Verdict::HttpKeywordBlocked]
        );
        // A control that is reset too is no evidence.
        c3.http = Some(http(None));
        let v = judge_endpoint(&v3, &c3, &k);
        assert_eq!(v.verdicts, vec![Verdict::TcpBlocked]);
    }

    #[test]
    fn ooni_time_formats_utc() {
        assert_eq!(ooni_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(ooni_time(1_404_864_000.0), "2014-07-09 00:00:00");
        assert_eq!(ooni_time(1_795_437_296.0), "2026-11-23 12:34:56");
    }

    #[test]
    fn consistency_by_address_or_asn() {
        let mut k = Knowledge::shipped(&crate::net::addrspace::testbed_networks());
        let a: IpAddr = "198.19.7.10".parse().unwrap();
        let b: IpAddr = "198.19.7.11".parse().unwrap();
        let f: IpAddr = "198.18.250.1".parse().unwrap();
        assert!(k.consistent(&[a], &[a, b]));
        assert!(!k.consistent(&[b], &[a]));
        let map: std::collections::BTreeMap<IpAddr, u32> = [(a, 1), (b, 1), (f, 2)].into();
        k.asn = Some(Arc::new(map));
        assert!(k.consistent(&[b], &[a]));
        assert!(!k.consistent(&[f], &[a]));
        assert!(k.suspicious(f).is_none());
        assert!(Knowledge::shipped(&[]).suspicious(f).is_some());
        assert!(
            Knowledge::shipped(&[])
                .suspicious("10.1.2.3".parse().unwrap())
                .is_some()
        );
        assert!(k.suspicious("127.0.0.1".parse().unwrap()).is_some());
    }
}
