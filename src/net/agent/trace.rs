//! The agent's `trace` op: the paths engine ([`crate::paths::engine`]) runs
//! on the node, from the agent's own network namespace (a request cannot
//! name another one), and the RIPE-Atlas-like traces ([`Trace`]) come back
//! in the answer. The agent enforces its own limits whatever the client
//! asks for: targets per request, packets per second, total packets, probe
//! wait; a request above them is refused with [`ErrorKind::Limit`], never
//! silently trimmed. One trace runs at a time per agent, so two requests
//! cannot add up to twice the pps budget.

use super::protocol::{ErrorKind, RemoteError};
use crate::paths::engine::{Target, TraceConfig};
use crate::paths::model::{Proto, Trace};
use crate::paths::{PathsError, trace};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most targets in one `trace` request.
pub const TRACE_MAX_TARGETS: usize = 64;
/// Highest sending rate an agent accepts, packets per second.
pub const TRACE_MAX_PPS: u32 = 500;
/// Most probe packets one request may send (targets × TTLs × probes).
pub const TRACE_MAX_PACKETS: u32 = 20_000;
/// Longest wait for one probe's answer, milliseconds.
pub const TRACE_MAX_WAIT_MS: u64 = 10_000;

/// One destination of a `trace` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceTarget {
    /// Address probed.
    pub addr: IpAddr,
    /// Name it came from (stored as `dst_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protocol for this target (default: the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<Proto>,
    /// Port for this target (default: the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Paris id for this target (default: the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paris_id: Option<u16>,
}

/// Arguments of `trace` (the `trace` field of the request): the engine's
/// [`TraceConfig`] on the wire, without a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRequest {
    /// Destinations (at most [`TRACE_MAX_TARGETS`]).
    pub targets: Vec<TraceTarget>,
    /// Probe protocol (`UDP`, `TCP`, `ICMP`).
    pub proto: Proto,
    /// Destination port for UDP/TCP (absent: 33434 UDP, 443 TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Flow identifier (RIPE Atlas `paris_id`).
    pub paris_id: u16,
    /// Sending budget for all targets together (≤ [`TRACE_MAX_PPS`]).
    pub pps: u32,
    /// First TTL probed.
    pub first_ttl: u8,
    /// Last TTL probed.
    pub max_ttl: u8,
    /// Probes per hop.
    pub probes: u8,
    /// Wait for each probe's answer, ms (≤ [`TRACE_MAX_WAIT_MS`]).
    pub wait_ms: u64,
    /// Consecutive silent hops after which a trace gives up.
    pub gap_limit: u8,
    /// TTLs awaiting their first answer at once.
    pub window: u8,
    /// Probe size in bytes, IP header included (absent: engine default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u16>,
    /// Spacing of a hop's repeat probes, ms (absent: the whole wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_ms: Option<u64>,
    /// Refuse targets outside 198.18.0.0/15 and fd00::/8.
    #[serde(default)]
    pub lab_only: bool,
}

/// Result of `trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceReply {
    /// One trace per target, in request order (schema `matador/trace/1`).
    pub traces: Vec<Trace>,
    /// Probe packets sent (all traces).
    pub packets: u32,
    /// Time the engine ran, seconds (waiting for an earlier trace excluded).
    pub runtime_s: f64,
}

impl TraceRequest {
    /// The request for `targets` with the settings of `cfg` (its `netns`
    /// is not sent: the agent traces from its own namespace).
    pub fn new(cfg: &TraceConfig, targets: &[Target]) -> TraceRequest {
        TraceRequest {
            targets: targets
                .iter()
                .map(|t| TraceTarget {
                    addr: t.addr,
                    name: t.name.clone(),
                    proto: t.proto,
                    port: t.port,
                    paris_id: t.paris_id,
                })
                .collect(),
            proto: cfg.proto,
            port: cfg.port,
            paris_id: cfg.paris_id,
            pps: cfg.pps,
            first_ttl: cfg.first_ttl,
            max_ttl: cfg.max_ttl,
            probes: cfg.probes,
            wait_ms: cfg.wait.as_millis() as u64,
            gap_limit: cfg.gap_limit,
            window: cfg.window,
            size: cfg.size,
            spread_ms: cfg.spread.map(|d| d.as_millis() as u64),
            lab_only: cfg.lab_only,
        }
    }

    /// The engine's settings and targets (no namespace).
    pub fn engine(&self) -> (TraceConfig, Vec<Target>) {
        let cfg = TraceConfig {
            proto: self.proto,
            port: self.port,
            first_ttl: self.first_ttl,
            max_ttl: self.max_ttl,
            probes: self.probes,
            pps: self.pps,
            wait: Duration::from_millis(self.wait_ms),
            gap_limit: self.gap_limit,
            paris_id: self.paris_id,
            window: self.window,
            size: self.size,
            spread: self.spread_ms.map(Duration::from_millis),
            lab_only: self.lab_only,
            netns: None,
        };
        let targets = self
            .targets
            .iter()
            .map(|t| Target {
                addr: t.addr,
                name: t.name.clone(),
                proto: t.proto,
                port: t.port,
                paris_id: t.paris_id,
            })
            .collect();
        (cfg, targets)
    }

    /// The most probe packets this request can send: every target, every
    /// TTL, every probe (the engine never sends more).
    pub fn max_packets(&self) -> u64 {
        let ttls = u64::from(self.max_ttl.saturating_sub(self.first_ttl)) + 1;
        self.targets.len() as u64 * ttls * u64::from(self.probes)
    }

    /// An upper bound of the time the engine needs: sending every packet at
    /// the pps budget, plus every TTL of one trace waiting out its probes.
    pub fn time_bound(&self) -> Duration {
        let send = self.max_packets() as f64 / f64::from(self.pps.max(1));
        let ttls = u64::from(self.max_ttl.saturating_sub(self.first_ttl)) + 1;
        let waits = (ttls * u64::from(self.probes) + 1) * self.wait_ms;
        Duration::from_secs_f64(send) + Duration::from_millis(waits)
    }

    /// Checks the agent's limits; the error names the limit and the value.
    pub fn check_limits(&self) -> Result<(), RemoteError> {
        let limit = |message: String| RemoteError {
            kind: ErrorKind::Limit,
            message,
        };
        if self.targets.is_empty() {
            return Err(RemoteError {
                kind: ErrorKind::BadRequest,
                message: "trace: no targets".into(),
            });
        }
        if self.targets.len() > TRACE_MAX_TARGETS {
            return Err(limit(format!(
                "trace: {} targets, the agent takes at most {TRACE_MAX_TARGETS} per request",
                self.targets.len()
            )));
        }
        if self.pps > TRACE_MAX_PPS {
            return Err(limit(format!(
                "trace: {} packets/s asked, the agent sends at most {TRACE_MAX_PPS}",
                self.pps
            )));
        }
        if self.wait_ms > TRACE_MAX_WAIT_MS {
            return Err(limit(format!(
                "trace: probe wait {} ms, at most {TRACE_MAX_WAIT_MS} ms",
                self.wait_ms
            )));
        }
        let packets = self.max_packets();
        if packets > u64::from(TRACE_MAX_PACKETS) {
            return Err(limit(format!(
                "trace: up to {packets} packets ({} targets × TTL {}..={} × {} probes), \
                 the agent sends at most {TRACE_MAX_PACKETS} per request",
                self.targets.len(),
                self.first_ttl,
                self.max_ttl,
                self.probes
            )));
        }
        Ok(())
    }
}

/// One trace at a time per agent process (the pps budget is the node's).
static TRACING: Mutex<()> = Mutex::new(());

/// The agent side of `trace`: limits, then the engine in this process's
/// namespace. Engine errors map to named kinds: settings → `bad_request`,
/// a target outside the lab in lab mode → `refused`, sockets → `trace`.
pub fn serve_trace(req: &TraceRequest) -> Result<TraceReply, RemoteError> {
    req.check_limits()?;
    let (cfg, targets) = req.engine();
    let _one = TRACING.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = Instant::now();
    let traces = trace(&cfg, &targets).map_err(|e| {
        let kind = match &e {
            PathsError::Config(_) => ErrorKind::BadRequest,
            PathsError::OutsideLab(_) => ErrorKind::Refused,
            _ => ErrorKind::Trace,
        };
        RemoteError {
            kind,
            message: e.to_string(),
        }
    })?;
    Ok(TraceReply {
        packets: traces.iter().map(|t| t.packets).sum(),
        runtime_s: t0.elapsed().as_secs_f64(),
        traces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize) -> TraceRequest {
        let targets: Vec<Target> = (0..n)
            .map(|i| Target::addr(IpAddr::from([198, 18, 1, i as u8])))
            .collect();
        TraceRequest::new(&TraceConfig::default(), &targets)
    }

    #[test]
    fn engine_settings_survive_the_wire_without_a_namespace() {
        let cfg = TraceConfig {
            proto: Proto::Tcp,
            port: Some(5222),
            paris_id: 7,
            spread: Some(Duration::from_millis(150)),
            lab_only: true,
            netns: Some("somewhere".into()),
            ..TraceConfig::default()
        };
        let mut t = Target::addr("fd00::5".parse().unwrap());
        t.proto = Some(Proto::Icmp);
        let r = TraceRequest::new(&cfg, std::slice::from_ref(&t));
        let wire = serde_json::to_string(&r).unwrap();
        let back: TraceRequest = serde_json::from_str(&wire).unwrap();
        let (c, ts) = back.engine();
        assert_eq!(c, TraceConfig { netns: None, ..cfg });
        assert_eq!(ts, vec![t]);
    }

    #[test]
    fn limits_are_refused_with_their_kind_and_figures() {
        assert!(req(3).check_limits().is_ok());
        let e = req(TRACE_MAX_TARGETS + 1).check_limits().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert!(e.message.contains("65 targets"), "{}", e.message);
        let mut r = req(1);
        r.pps = TRACE_MAX_PPS + 1;
        assert_eq!(r.check_limits().unwrap_err().kind, ErrorKind::Limit);
        let mut r = req(1);
        r.wait_ms = TRACE_MAX_WAIT_MS + 1;
        assert_eq!(r.check_limits().unwrap_err().kind, ErrorKind::Limit);
        // 64 targets × 30 TTLs × 16 probes = 30 720 > 20 000.
        let mut r = req(64);
        r.probes = 16;
        let e = r.check_limits().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert!(e.message.contains("30720 packets"), "{}", e.message);
        assert_eq!(
            req(0).check_limits().unwrap_err().kind,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn time_bound_covers_sending_and_waiting() {
        let r = req(2); // 2 × 30 × 3 = 180 packets at 100 pps, wait 2 s
        assert_eq!(r.max_packets(), 180);
        assert_eq!(
            r.time_bound(),
            Duration::from_secs_f64(1.8) + Duration::from_millis(91 * 2000)
        );
    }

    #[test]
    fn engine_errors_are_named() {
        let mut r = req(1);
        r.probes = 0;
        assert_eq!(serve_trace(&r).unwrap_err().kind, ErrorKind::BadRequest);
        let mut r = req(1);
        r.targets[0].addr = "192.0.2.1".parse().unwrap();
        r.lab_only = true;
        assert_eq!(serve_trace(&r).unwrap_err().kind, ErrorKind::Refused);
    }
}
