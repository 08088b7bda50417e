//! The campaign's probe step (`steps: {probes: true}` in a scenario): after
//! a message measurement, probe the measured app from the sender's and the
//! receiver's node against a control node of another country, and store
//! the round in the measurement folder as `probes/round.json`,
//! `probes/ooni.jsonl` and `probes/matrix.md`.
//!
//! Implements [`crate::campaign::env::StepHook`]. Every vantage runs on
//! its node through the node agent's `probe` op (real lab and virtual lab
//! alike); a capture the agent took as evidence is fetched into
//! `probes/<node>/`.

use super::limit::Limits;
use super::session;
use super::spec::{ProbeSpec, app_targets};
use super::vantage::VantageResult;
use super::verdict::{Knowledge, VantageMeta, ooni_measurements};
use crate::campaign::agents::AgentPool;
use crate::campaign::env::{EnvError, StepHook, StepReport};
use crate::campaign::plan::PlannedMeasurement;
use crate::scenario::apps::AppProfiles;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A node probes can run from (through its agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeNode {
    /// Country (ISO alpha-2).
    pub country: String,
    /// AS number.
    pub asn: Option<u32>,
    /// Uplink interface to capture on (evidence); none: no capture.
    pub uplink: Option<String>,
}

/// The probe step.
#[derive(Debug, Clone)]
pub struct ProbeStep {
    nodes: BTreeMap<String, ProbeNode>,
    agents: Arc<AgentPool>,
    control: Option<String>,
    resolver: Option<SocketAddr>,
    neutral: Option<SocketAddr>,
    limits: Limits,
    lab: bool,
    exempt: Vec<ipnetwork::IpNetwork>,
    profiles: Arc<AppProfiles>,
    race_window_ms: u64,
}

impl ProbeStep {
    /// A step over `nodes`; `control` is the control node (default: the
    /// first node whose country is neither the sender's nor the
    /// receiver's, else the first outside the sender's country); the
    /// vantages run through `agents`.
    pub fn new(
        nodes: BTreeMap<String, ProbeNode>,
        agents: Arc<AgentPool>,
        control: Option<String>,
        lab: bool,
    ) -> Self {
        ProbeStep {
            nodes,
            agents,
            control,
            resolver: None,
            neutral: None,
            limits: Limits::default(),
            lab,
            exempt: Vec::new(),
            profiles: Arc::new(AppProfiles::builtin()),
            race_window_ms: 250,
        }
    }

    /// Declares `nets` the operator's own address space: answers inside
    /// them are never judged bogons (a lab in the benchmarking range).
    pub fn exempting(mut self, nets: Vec<ipnetwork::IpNetwork>) -> Self {
        self.exempt = nets;
        self
    }

    /// Sets the resolver, the neutral address of the Host test, the limits
    /// and the app profiles (the campaign's, as loaded with its scenario;
    /// `None`: the shipped ones).
    pub fn with(
        mut self,
        resolver: Option<SocketAddr>,
        neutral: Option<SocketAddr>,
        limits: Limits,
        profiles: Option<Arc<AppProfiles>>,
    ) -> Self {
        self.resolver = resolver;
        self.neutral = neutral;
        self.limits = limits;
        if let Some(p) = profiles {
            self.profiles = p;
        }
        self
    }

    /// Sets how long UDP queries wait for racing replies (milliseconds).
    pub fn race_window_ms(mut self, ms: u64) -> Self {
        self.race_window_ms = ms;
        self
    }

    fn control_for(&self, m: &PlannedMeasurement) -> Option<String> {
        if let Some(c) = &self.control {
            return Some(c.clone());
        }
        let (a, b) = (m.sender_country.as_str(), m.receiver_country.as_str());
        // Best a third country; else the receiver's network is the control
        // of the sender's (a CN ↔ JP campaign has no third node).
        self.nodes
            .iter()
            .find(|(_, n)| n.country != a && n.country != b)
            .or_else(|| self.nodes.iter().find(|(_, n)| n.country != a))
            .map(|(name, _)| name.clone())
    }

    /// Runs `spec` on node `name` through its agent; the capture the agent
    /// took (if any) is fetched into `out/<name>/` and the result points
    /// at that copy.
    fn vantage(
        &self,
        name: &str,
        spec: &ProbeSpec,
        out: &Path,
    ) -> Result<VantageResult, super::ProbeError> {
        let err = |message: String| super::ProbeError::Vantage {
            vantage: name.to_string(),
            message,
        };
        let node = self
            .nodes
            .get(name)
            .ok_or_else(|| err("unknown node".into()))?;
        let mut s = spec.clone();
        s.capture_iface = node.uplink.clone();
        let limit = s.time_bound();
        let mut r = self
            .agents
            .call(name, |a| {
                let s = s.clone();
                async move { a.probe(name, &s, limit).await }
            })
            .map_err(|e| err(e.message))?;
        if let Some(remote) = r.capture.take() {
            let (Some(capture), Some(file)) = (
                remote.parent().and_then(|d| d.file_name()),
                remote.file_name(),
            ) else {
                return Err(err(format!("capture path {}", remote.display())));
            };
            let (capture, file) = (
                capture.to_string_lossy().into_owned(),
                file.to_string_lossy().into_owned(),
            );
            let dest = out.join(name);
            let local = self
                .agents
                .call(name, |a| {
                    let (c, f, d) = (capture.clone(), file.clone(), dest.clone());
                    async move { a.fetch(&c, &f, &d).await }
                })
                .map_err(|e| err(format!("fetch of the probe capture: {}", e.message)))?;
            r.capture = Some(local);
        }
        Ok(r)
    }
}

impl StepHook for ProbeStep {
    fn via(&self) -> &'static str {
        "agent"
    }

    fn run(&self, dir: &Path, m: &PlannedMeasurement) -> Result<StepReport, EnvError> {
        let err = |e: &dyn std::fmt::Display| EnvError::new(format!("probe step {}: {e}", m.id));
        let control = self
            .control_for(m)
            .ok_or_else(|| err(&"no control node outside the measured countries"))?;
        let mut vantages: Vec<String> = Vec::new();
        for n in [m.sender_nodes.first(), m.receiver_nodes.first()]
            .into_iter()
            .flatten()
        {
            if !vantages.contains(n) && *n != control {
                vantages.push(n.clone());
            }
        }
        let apps = vec![app_targets(&m.app, &self.profiles).map_err(|e| err(&e))?];
        let mut spec = ProbeSpec::new(apps, self.resolver);
        spec.neutral = self.neutral;
        spec.limits = self.limits;
        spec.lab = self.lab;
        spec.race_window_ms = self.race_window_ms;
        let out = dir.join("probes");
        std::fs::create_dir_all(&out).map_err(|e| err(&e))?;
        let mut runner = |name: &str, s: &ProbeSpec| self.vantage(name, s, &out);
        // Lab mode: the virtual lab's own space is exempt, explicitly.
        let mut exempt = self.exempt.clone();
        if self.lab {
            exempt.extend(crate::net::addrspace::testbed_networks());
        }
        let knowledge = Knowledge::shipped(&exempt);
        let r = session::round(&spec, &control, &vantages, &knowledge, &mut runner)
            .map_err(|e| err(&e))?;
        let meta: BTreeMap<String, VantageMeta> = self
            .nodes
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    VantageMeta {
                        cc: Some(n.country.clone()),
                        asn: n.asn,
                    },
                )
            })
            .collect();
        let round_file = out.join("round.json");
        let json = serde_json::to_vec_pretty(&r).map_err(|e| err(&e))?;
        crate::atomic_file::write(&round_file, &json).map_err(|e| err(&e))?;
        let mut ooni = String::new();
        for (v, verd) in r.vantages.iter().zip(&r.verdicts) {
            let mm = meta.get(&v.vantage).cloned().unwrap_or_default();
            for x in ooni_measurements(v, verd, &mm) {
                ooni.push_str(&x.to_string());
                ooni.push('\n');
            }
        }
        crate::atomic_file::write(&out.join("ooni.jsonl"), ooni.as_bytes()).map_err(|e| err(&e))?;
        let md = super::matrix::markdown(&r, 1, &meta, Some(&round_file), Some(&out));
        crate::atomic_file::write(&out.join("matrix.md"), md.as_bytes()).map_err(|e| err(&e))?;
        let mut report = StepReport::via("agent");
        report.nodes = std::iter::once(control).chain(vantages).collect();
        report.detail = Some(format!(
            "control {}, {} vantages",
            report.nodes[0],
            report.nodes.len() - 1
        ));
        Ok(report)
    }
}
