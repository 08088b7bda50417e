//! The `paths` step: Paris traceroutes from the measurement's nodes to the
//! servers the correlation identified and to the other side's node, stored
//! as `traces/<node>--<target>.json` (docs/paths.md).
//!
//! The traces are sent by the node itself: the step asks each node's agent
//! (`trace` op, [`crate::net::agent::trace`]) and stores what comes back.
//! The campaign never probes from this machine or enters a node's
//! namespace, in a real lab and in the virtual one alike.

use super::agents::AgentPool;
use super::env::{EnvError, StepHook, StepReport};
use super::plan::PlannedMeasurement;
use crate::analysis::correlate::MeasurementAnalysis;
use crate::net::agent::trace::TraceRequest;
use crate::paths::engine::{Target, TraceConfig};
use crate::paths::model::Proto;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The settings of the campaign's traces: one probe per hop (the paths are
/// compared, not the RTT spread), 16 hops, a 500 ms wait, 4 TTLs in flight.
pub fn campaign_trace_config(lab_only: bool) -> TraceConfig {
    TraceConfig {
        lab_only,
        probes: 1,
        max_ttl: 16,
        wait: Duration::from_millis(500),
        gap_limit: 3,
        window: 4,
        ..TraceConfig::default()
    }
}

/// The paths step over the node agents.
#[derive(Debug, Clone)]
pub struct PathStep {
    /// Each node's public address (target of the other side's trace), if known.
    nodes: HashMap<String, Option<IpAddr>>,
    agents: Arc<AgentPool>,
    lab_only: bool,
}

impl PathStep {
    /// Traces from these nodes through `agents`; `lab_only` makes the
    /// agents refuse targets outside the virtual lab's address space.
    pub fn new(
        nodes: HashMap<String, Option<IpAddr>>,
        agents: Arc<AgentPool>,
        lab_only: bool,
    ) -> Self {
        PathStep {
            nodes,
            agents,
            lab_only,
        }
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
        if let Some(Some(addr)) = other.and_then(|o| self.nodes.get(o))
            && seen.insert(*addr)
        {
            out.push(Target::addr(*addr));
        }
        out
    }

    /// Traces `targets` from `node` through its agent and stores them.
    fn trace_from(&self, dir: &Path, node: &str, targets: &[Target]) -> Result<usize, EnvError> {
        let req = TraceRequest::new(&campaign_trace_config(self.lab_only), targets);
        let reply = self.agents.call(node, |a| {
            let req = req.clone();
            async move { a.trace(&req).await }
        })?;
        for t in &reply.traces {
            crate::paths::record::write_trace(dir, node, t)
                .map_err(|e| EnvError::new(format!("paths from {node}: {e}")))?;
        }
        Ok(reply.traces.len())
    }
}

fn servers_of(dir: &Path) -> Result<Vec<(IpAddr, u16, String)>, EnvError> {
    let file = dir.join("analysis.json");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| EnvError::new(format!("{}: {e}", file.display())))?;
    let a: MeasurementAnalysis = serde_json::from_str(&text)
        .map_err(|e| EnvError::new(format!("{}: {e}", file.display())))?;
    Ok(a.servers
        .iter()
        .map(|s| (s.ip, s.port, s.proto.clone()))
        .collect())
}

impl StepHook for PathStep {
    fn via(&self) -> &'static str {
        "agent"
    }

    fn run(&self, dir: &Path, m: &PlannedMeasurement) -> Result<StepReport, EnvError> {
        let servers = servers_of(dir)?;
        // The runner puts the nodes that carried the measurement first.
        let sides = [
            (m.sender_nodes.first(), m.receiver_nodes.first()),
            (m.receiver_nodes.first(), m.sender_nodes.first()),
        ];
        let mut done = BTreeSet::new();
        let mut report = StepReport::via("agent");
        let mut counts = Vec::new();
        for (node, other) in sides {
            let Some(node) = node else { continue };
            if !done.insert(node.clone()) {
                continue;
            }
            if !self.nodes.contains_key(node) || !self.agents.knows(node) {
                return Err(EnvError::new(format!(
                    "paths: node {node} has no agent to trace from"
                )));
            }
            // The direct path goes to the other side's node, not to itself
            // (a same-node pair has none).
            let other = other.filter(|o| *o != node);
            let targets = self.targets(&servers, other.map(String::as_str));
            report.nodes.push(node.clone());
            if targets.is_empty() {
                counts.push(format!("{node}: no target"));
                continue;
            }
            let n = self.trace_from(dir, node, &targets)?;
            counts.push(format!("{node}: {n} traces"));
        }
        report.detail = Some(counts.join(", "));
        Ok(report)
    }
}
