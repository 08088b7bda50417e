//! MDA-style enumeration of load-balanced paths (as scamper's `tracelb`,
//! simplified to per-flow Paris traces).
//!
//! A Paris trace follows one path per flow id. To find every interface a
//! load balancer spreads flows over, trace the target with more and more
//! flow ids until, for every hop, the number of flows probed reaches the
//! Multipath Detection Algorithm's stopping point for the interfaces seen so
//! far (95% confidence of having seen all of them: 6 flows rule out a
//! second interface, 11 a third, …). Each flow is traced with one probe per
//! hop.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::PathsError;
use super::engine::{Target, TraceConfig, trace};
use super::model::Trace;

/// MDA stopping points at 95% confidence: `N95[k - 1]` flows are needed
/// to rule out a (k+1)-th interface when k have been seen.
const N95: [u16; 16] = [
    6, 11, 16, 21, 27, 33, 38, 44, 51, 57, 63, 70, 76, 83, 90, 96,
];

/// Result of an enumeration.
#[derive(Debug, Clone, Serialize)]
pub struct Multipath {
    /// Target.
    pub dst: IpAddr,
    /// Flow ids traced (1..=flows).
    pub flows: u16,
    /// Whether the stopping rule was met (false: `max_flows` ran out first).
    pub complete: bool,
    /// Per hop (TTL), the distinct interfaces seen, in order of discovery.
    pub hops: BTreeMap<u8, Vec<IpAddr>>,
    /// The per-flow traces.
    pub traces: Vec<Trace>,
}

fn needed(k: usize) -> u16 {
    N95.get(k.saturating_sub(1))
        .copied()
        .unwrap_or(N95[N95.len() - 1])
}

/// Enumerates the paths to `target` with up to `max_flows` flow ids
/// (Paris ids `cfg.paris_id..`). `cfg.probes` is ignored (one per flow and hop).
pub fn enumerate(
    cfg: &TraceConfig,
    target: &Target,
    max_flows: u16,
) -> Result<Multipath, PathsError> {
    let cfg = TraceConfig {
        probes: 1,
        ..cfg.clone()
    };
    let base = target.paris_id.unwrap_or(cfg.paris_id);
    let mut out = Multipath {
        dst: target.addr,
        flows: 0,
        complete: false,
        hops: BTreeMap::new(),
        traces: Vec::new(),
    };
    let mut want = needed(1).min(max_flows.max(1));
    while out.flows < want {
        let batch: Vec<Target> = (out.flows..want)
            .map(|i| Target {
                paris_id: Some(base.wrapping_add(i)),
                ..target.clone()
            })
            .collect();
        for t in trace(&cfg, &batch)? {
            for h in &t.result {
                let seen = out.hops.entry(h.hop).or_default();
                for a in h.addrs() {
                    if !seen.contains(&a) {
                        seen.push(a);
                    }
                }
            }
            out.traces.push(t);
        }
        out.flows = want;
        let rule = out
            .hops
            .values()
            .map(|v| needed(v.len()))
            .max()
            .unwrap_or(N95[0]);
        if rule <= out.flows {
            out.complete = true;
            break;
        }
        want = rule.min(max_flows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_points() {
        assert_eq!(needed(0), 6);
        assert_eq!(needed(1), 6);
        assert_eq!(needed(2), 11);
        assert_eq!(needed(40), 96);
    }
}
