//! Everything one vantage runs, with blocking sockets: called in a thread
//! that entered a lab namespace ([`crate::net::netns::enter_thread`]) or by
//! the node agent (`probe` op) on a remote node.

use super::ProbeError;
use super::conn::{self, HttpResult, TcpResult, Throughput, TlsResult};
use super::dns::{self, DnsResult};
use super::keyword::{self, Isolation};
use super::limit::{Budget, check_target};
use super::spec::{EndpointSpec, ProbeSpec};
use crate::analysis::interference::control::ControlResolutions;
use crate::analysis::interference::{InterferenceConfig, analyze_capture};
use crate::analysis::model::{InterferenceEvent, InterferenceKind};
use crate::capture::live::{LiveCapture, LiveSpec};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Results of one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointResult {
    /// Host name.
    pub host: String,
    /// Ports probed.
    pub ports: Vec<u16>,
    /// A query over UDP.
    pub dns_udp: Option<DnsResult>,
    /// A query over TCP.
    pub dns_tcp: Option<DnsResult>,
    /// A query for a random, non-existent subdomain (UDP).
    pub wildcard: Option<DnsResult>,
    /// TCP connects by vantage-resolved and control-resolved address.
    pub tcp: Vec<TcpResult>,
    /// TLS handshakes (SNI, none, decoy).
    pub tls: Vec<TlsResult>,
    /// HTTP request with `Host: <host>` to the neutral address.
    pub http: Option<HttpResult>,
    /// Keyword isolation after a reset of [`Self::http`].
    pub keywords: Option<Isolation>,
    /// Targets the guard refused (never contacted).
    pub refused: Vec<String>,
    /// Interference events of the capture concerning this endpoint.
    pub evidence: Vec<InterferenceEvent>,
}

impl EndpointResult {
    /// No result yet for `host` on `ports`.
    pub fn new(host: &str, ports: &[u16]) -> Self {
        EndpointResult {
            host: host.to_string(),
            ports: ports.to_vec(),
            dns_udp: None,
            dns_tcp: None,
            wildcard: None,
            tcp: Vec::new(),
            tls: Vec::new(),
            http: None,
            keywords: None,
            refused: Vec::new(),
            evidence: Vec::new(),
        }
    }
}

/// Results of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppResult {
    /// App id.
    pub app: String,
    /// Per endpoint.
    pub endpoints: Vec<EndpointResult>,
}

/// Everything one vantage measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VantageResult {
    /// Vantage name.
    pub vantage: String,
    /// Start (Unix seconds).
    pub started: f64,
    /// Duration in seconds.
    pub runtime_s: f64,
    /// Resolver used.
    pub resolver: Option<SocketAddr>,
    /// Per app.
    pub apps: Vec<AppResult>,
    /// HTTP request with a neutral `Host` (the decoy name): is the neutral
    /// address reachable at all?
    pub baseline: Option<HttpResult>,
    /// Bulk throughput.
    pub bulk: Option<Throughput>,
    /// Requests sent.
    pub requests: u32,
    /// The request budget ran out (results are partial).
    pub budget_exhausted: bool,
    /// Capture file on the vantage (evidence).
    pub capture: Option<PathBuf>,
    /// Every interference event of the capture.
    pub events: Vec<InterferenceEvent>,
    /// Problems that did not stop the run (capture, analysis).
    pub errors: Vec<String>,
}

struct Run<'a> {
    spec: &'a ProbeSpec,
    resolver: Option<SocketAddr>,
    budget: Budget,
    timeout: Duration,
    ids: u16,
}

impl Run<'_> {
    fn id(&mut self) -> u16 {
        self.ids = self.ids.wrapping_add(0x3b1);
        self.ids
    }

    fn guard(&self, ip: IpAddr, refused: &mut Vec<String>) -> bool {
        match check_target(ip, self.spec.lab) {
            Ok(()) => true,
            Err(e) => {
                refused.push(e.to_string());
                false
            }
        }
    }

    fn endpoint(&mut self, ep: &EndpointSpec, out: &mut EndpointResult) -> Result<(), ProbeError> {
        let t = self.timeout;
        // An address endpoint (e.g. a Telegram data centre): no DNS.
        if let Ok(ip) = ep.host.parse::<IpAddr>() {
            for port in &ep.ports {
                if self.guard(ip, &mut out.refused) {
                    self.budget.take()?;
                    out.tcp
                        .push(conn::tcp_connect(SocketAddr::new(ip, *port), "control", t));
                }
            }
            return Ok(());
        }
        let Some(resolver) = self.resolver else {
            out.refused.push("no resolver".into());
            return Ok(());
        };
        if !self.guard(resolver.ip(), &mut out.refused) {
            return Ok(());
        }
        self.budget.take()?;
        let id = self.id();
        let race = Duration::from_millis(self.spec.race_window_ms.min(5000));
        let udp = dns::query_udp_within(resolver, &ep.host, id, t, race);
        let answers = udp.answers.clone();
        out.dns_udp = Some(udp);
        self.budget.take()?;
        let id = self.id();
        out.dns_tcp = Some(dns::query_tcp(resolver, &ep.host, id, t));
        self.budget.take()?;
        let id = self.id();
        let wild = dns::random_subdomain(&ep.host, self.spec.seed);
        out.wildcard = Some(dns::query_udp_within(resolver, &wild, id, t, race));

        let control: Vec<IpAddr> = self
            .spec
            .control_ips
            .get(&ep.host)
            .cloned()
            .unwrap_or_default();
        let mut targets: Vec<(IpAddr, &str)> = Vec::new();
        if let Some(ip) = answers.first() {
            targets.push((*ip, "dns"));
        }
        if let Some(ip) = control.first() {
            targets.push((*ip, "control"));
        }
        for port in &ep.ports {
            for (ip, via) in &targets {
                if !self.guard(*ip, &mut out.refused) {
                    continue;
                }
                self.budget.take()?;
                out.tcp
                    .push(conn::tcp_connect(SocketAddr::new(*ip, *port), via, t));
            }
        }
        // TLS to the control address when known (separates SNI filtering
        // from DNS tampering), else the vantage's own answer.
        let tls_ip = control.first().or(answers.first()).copied();
        if let Some(ip) = tls_ip
            && ep.ports.contains(&443)
            && self.guard(ip, &mut out.refused)
        {
            let addr = SocketAddr::new(ip, 443);
            let decoy = self.spec.decoy_sni.clone();
            for (mode, sni) in [
                ("sni", Some(ep.host.as_str())),
                ("none", None),
                ("decoy", Some(decoy.as_str())),
            ] {
                self.budget.take()?;
                let seed = self.spec.seed ^ u64::from(self.id());
                out.tls.push(conn::tls_handshake(addr, mode, sni, t, seed));
            }
        }
        Ok(())
    }

    fn http(
        &mut self,
        neutral: SocketAddr,
        host: &str,
        baseline_ok: bool,
        out: &mut EndpointResult,
    ) -> Result<(), ProbeError> {
        if !self.guard(neutral.ip(), &mut out.refused) {
            return Ok(());
        }
        self.budget.take()?;
        let r = conn::http_host(neutral, host, self.timeout);
        let reset = r.reset();
        out.http = Some(r);
        if reset && baseline_ok && self.spec.isolate_keywords {
            let t = self.timeout;
            let budget = &mut self.budget;
            out.keywords = Some(keyword::isolate(host, |x| {
                budget.take().map_err(|e| e.to_string())?;
                let r = conn::http_host(neutral, x, t);
                if r.ok() {
                    Ok(false)
                } else if r.reset() {
                    Ok(true)
                } else {
                    Err(format!(
                        "inconclusive request (Host {x:?}): {}",
                        r.failure.unwrap_or_default()
                    ))
                }
            }));
        }
        Ok(())
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs `spec` from the current network namespace as vantage `name`.
pub fn run(name: &str, spec: &ProbeSpec) -> VantageResult {
    let t0 = Instant::now();
    let resolver = spec.resolver.or_else(|| {
        std::fs::read_to_string("/etc/resolv.conf")
            .ok()
            .and_then(|t| super::spec::resolv_conf_server(&t))
    });
    let mut res = VantageResult {
        vantage: name.into(),
        started: unix_now(),
        runtime_s: 0.0,
        resolver,
        apps: Vec::new(),
        baseline: None,
        bulk: None,
        requests: 0,
        budget_exhausted: false,
        capture: None,
        events: Vec::new(),
        errors: Vec::new(),
    };
    let capture = match (&spec.capture_iface, &spec.capture_dir) {
        (Some(iface), Some(dir)) => {
            let mut ls = LiveSpec::new(iface.clone(), "probe");
            ls.snaplen = 2048;
            match std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|_| LiveCapture::start(&ls, dir).map_err(|e| e.to_string()))
            {
                Ok(c) => Some(c),
                Err(e) => {
                    res.errors.push(format!("capture on {iface}: {e}"));
                    None
                }
            }
        }
        _ => None,
    };
    let mut run = Run {
        spec,
        resolver,
        budget: Budget::new(spec.limits),
        timeout: Duration::from_millis(spec.timeout_ms.clamp(100, 60_000)),
        ids: (spec.seed as u16) ^ 0x6d74,
    };
    let outcome = (|| -> Result<(), ProbeError> {
        let baseline_ok = match spec.neutral {
            Some(n) if check_target(n.ip(), spec.lab).is_ok() => {
                run.budget.take()?;
                let b = conn::http_host(n, &spec.decoy_sni, run.timeout);
                let ok = b.ok();
                res.baseline = Some(b);
                ok
            }
            Some(n) => {
                res.errors.push(format!(
                    "neutral address {n} refused: {}",
                    check_target(n.ip(), spec.lab)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                ));
                false
            }
            None => false,
        };
        for app in &spec.apps {
            res.apps.push(super::vantage::AppResult {
                app: app.app.clone(),
                endpoints: Vec::new(),
            });
            for ep in &app.endpoints {
                let mut out = EndpointResult::new(&ep.host, &ep.ports);
                let r = run.endpoint(ep, &mut out).and_then(|_| match spec.neutral {
                    Some(n) => run.http(n, &ep.host, baseline_ok, &mut out),
                    None => Ok(()),
                });
                if let Some(a) = res.apps.last_mut() {
                    a.endpoints.push(out);
                }
                r?;
            }
        }
        if let Some(b) = spec.bulk {
            if check_target(b.ip(), spec.lab).is_ok() {
                run.budget.take()?;
                res.bulk = Some(conn::bulk(
                    b,
                    spec.bulk_bytes,
                    run.timeout,
                    Duration::from_secs(20),
                ));
            } else {
                res.errors.push(format!("bulk source {b} refused"));
            }
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        res.budget_exhausted = matches!(e, ProbeError::Budget { .. });
        res.errors.push(e.to_string());
    }
    res.requests = run.budget.sent();
    if let Some(c) = capture {
        // Late injected packets (racing replies, RSTs) still arrive.
        std::thread::sleep(Duration::from_millis(300));
        let files = c.files();
        if let Err(e) = c.stop() {
            res.errors.push(format!("capture: {e}"));
        }
        if let Some(f) = files.first() {
            res.capture = Some(f.clone());
            let mut control = ControlResolutions::default();
            for (name, ips) in &spec.control_ips {
                control.insert(name, ips.iter().copied());
            }
            let cfg = InterferenceConfig {
                control,
                // Lab mode: the lab's own address space, passed explicitly.
                exempt: if spec.lab {
                    crate::net::addrspace::testbed_networks()
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            match analyze_capture(f, cfg) {
                Ok(events) => res.events = events,
                Err(e) => res.errors.push(format!("interference rules: {e}")),
            }
        }
    }
    attach_evidence(&mut res, spec);
    res.runtime_s = t0.elapsed().as_secs_f64();
    res
}

/// Runs `spec` as vantage `name` on a thread inside network namespace
/// `netns` (a name under /run/netns or a path).
pub fn run_in_netns(
    name: &str,
    netns: &str,
    spec: &ProbeSpec,
) -> Result<VantageResult, ProbeError> {
    let (name2, ns, spec) = (name.to_string(), netns.to_string(), spec.clone());
    let h = std::thread::spawn(move || -> Result<VantageResult, String> {
        crate::net::netns::enter_thread(&ns).map_err(|e| e.to_string())?;
        Ok(run(&name2, &spec))
    });
    let err = |message: String| ProbeError::Vantage {
        vantage: name.to_string(),
        message,
    };
    h.join()
        .map_err(|_| err("probe thread panicked".into()))?
        .map_err(err)
}

/// Copies each event to the endpoints it concerns: DNS events naming the
/// host (or its random subdomain), packet events claiming to come from an
/// address the endpoint was reached at, or from the neutral address when
/// the endpoint's `Host` request was reset.
fn attach_evidence(res: &mut VantageResult, spec: &ProbeSpec) {
    let neutral = spec.neutral.map(|n| n.ip());
    for app in &mut res.apps {
        for ep in &mut app.endpoints {
            let mut ips: Vec<IpAddr> = ep.tcp.iter().map(|t| t.addr.ip()).collect();
            ips.extend(ep.tls.iter().map(|t| t.addr.ip()));
            ips.retain(|ip| Some(*ip) != neutral);
            let reset = ep.http.as_ref().is_some_and(|h| h.reset());
            let wild = ep.wildcard.as_ref().map(|w| w.name.clone());
            for e in &res.events {
                let text = serde_json::to_string(&e.evidence).unwrap_or_default();
                let named = e.kind == InterferenceKind::DnsForgery
                    && (text.contains(&format!("\"{}\"", ep.host))
                        || wild.as_ref().is_some_and(|w| text.contains(w.as_str())));
                let from_target = e.kind == InterferenceKind::InjectedPacket
                    && (ips.contains(&e.claimed_src) || (reset && Some(e.claimed_src) == neutral));
                if named || from_target {
                    ep.evidence.push(e.clone());
                }
            }
        }
    }
}
