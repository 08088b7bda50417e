//! The `paths` step: Paris traceroutes from the measurement's nodes to the
//! servers the correlation identified and to the other side's node, stored
//! as `traces/<node>--<target>.json` (docs/paths.md) by
//! [`crate::paths::record::trace_and_store`].
//!
//! The node agent has no trace operation yet, so the probes are sent from
//! the node's own network namespace (`netns` of its lab.json entry); on a
//! real lab without one they leave this machine (only correct when it is
//! the node).

use super::env::{EnvError, StepHook};
use super::plan::PlannedMeasurement;
use crate::analysis::correlate::MeasurementAnalysis;
use crate::paths::engine::{Target, TraceConfig};
use crate::paths::model::Proto;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Where a node probes from and where it can be reached.
#[derive(Debug, Clone)]
pub struct PathNode {
    /// Network namespace of the node (`None`: this machine).
    pub netns: Option<String>,
    /// The node's public address (target of the other side's trace).
    pub addr: IpAddr,
}

/// The paths step over [`crate::paths`].
#[derive(Debug, Clone)]
pub struct PathStep {
    nodes: HashMap<String, PathNode>,
    lab_only: bool,
}

impl PathStep {
    /// Traces from these nodes; `lab_only` refuses targets outside the
    /// virtual lab's address space.
    pub fn new(nodes: HashMap<String, PathNode>, lab_only: bool) -> Self {
        PathStep { nodes, lab_only }
    }

    /// The targets of one node: every identified server, and the other
    /// side's node.
    fn targets(&self, servers: &[(IpAddr, u16, String)], other: Option<&str>) -> Vec<Target> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (ip, port, proto) in servers {
            if seen.insert(*ip) {
                let mut t = Target::addr(*ip);
                // In-protocol path for TCP services (what a middlebox sees).
                if proto == "tcp" {
                    t.proto = Some(Proto::Tcp);
                    t.port = Some(*port);
                }
                out.push(t);
            }
        }
        if let Some(o) = other.and_then(|o| self.nodes.get(o))
            && seen.insert(o.addr)
        {
            out.push(Target::addr(o.addr));
        }
        out
    }
}

impl StepHook for PathStep {
    fn run(&self, dir: &Path, m: &PlannedMeasurement) -> Result<(), EnvError> {
        let file = dir.join("analysis.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| EnvError::new(format!("{}: {e}", file.display())))?;
        let a: MeasurementAnalysis = serde_json::from_str(&text)
            .map_err(|e| EnvError::new(format!("{}: {e}", file.display())))?;
        let servers: Vec<(IpAddr, u16, String)> = a
            .servers
            .iter()
            .map(|s| (s.ip, s.port, s.proto.clone()))
            .collect();
        // The runner puts the nodes that carried the measurement first.
        let sides = [
            (m.sender_nodes.first(), m.receiver_nodes.first()),
            (m.receiver_nodes.first(), m.sender_nodes.first()),
        ];
        let mut done = BTreeSet::new();
        for (node, other) in sides {
            let Some(node) = node else { continue };
            if !done.insert(node.clone()) {
                continue;
            }
            let Some(pn) = self.nodes.get(node) else {
                return Err(EnvError::new(format!("paths: node {node} is not known")));
            };
            let targets = self.targets(&servers, other.map(String::as_str));
            if targets.is_empty() {
                continue;
            }
            let cfg = TraceConfig {
                netns: pn.netns.clone(),
                lab_only: self.lab_only,
                probes: 1,
                max_ttl: 16,
                wait: Duration::from_millis(500),
                gap_limit: 3,
                window: 4,
                ..TraceConfig::default()
            };
            crate::paths::record::trace_and_store(&cfg, &targets, dir, node)
                .map_err(|e| EnvError::new(format!("paths from {node}: {e}")))?;
        }
        Ok(())
    }
}
