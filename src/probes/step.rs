//! The campaign's probe step (`steps: {probes: true}` in a scenario): after
//! a message measurement, probe the measured app from the sender's and the
//! receiver's node against a control node of another country, and store
//! the round in the measurement folder as `probes/round.json`,
//! `probes/ooni.jsonl` and `probes/matrix.md`.
//!
//! Implements [`crate::campaign::env::StepHook`]; the environment that
//! knows the nodes (the lab's network namespaces) creates it.

use super::limit::Limits;
use super::session;
use super::spec::{ProbeSpec, app_targets};
use super::vantage::run_in_netns;
use super::verdict::{Knowledge, VantageMeta, ooni_measurements};
use crate::campaign::env::{EnvError, StepHook};
use crate::campaign::plan::PlannedMeasurement;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A node probes can run from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeNode {
    /// Network namespace (name under /run/netns or a path).
    pub netns: String,
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
    control: Option<String>,
    resolver: Option<SocketAddr>,
    neutral: Option<SocketAddr>,
    limits: Limits,
    lab: bool,
    profiles: Option<PathBuf>,
    race_window_ms: u64,
}

impl ProbeStep {
    /// A step over `nodes`; `control` is the control node (default: the
    /// first node whose country is neither the sender's nor the
    /// receiver's, else the first outside the sender's country).
    pub fn new(nodes: BTreeMap<String, ProbeNode>, control: Option<String>, lab: bool) -> Self {
        ProbeStep {
            nodes,
            control,
            resolver: None,
            neutral: None,
            limits: Limits::default(),
            lab,
            profiles: None,
            race_window_ms: 250,
        }
    }

    /// Sets the resolver, the neutral address of the Host test, the limits
    /// and the app profile directory.
    pub fn with(
        mut self,
        resolver: Option<SocketAddr>,
        neutral: Option<SocketAddr>,
        limits: Limits,
        profiles: Option<PathBuf>,
    ) -> Self {
        self.resolver = resolver;
        self.neutral = neutral;
        self.limits = limits;
        self.profiles = profiles;
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
}

impl StepHook for ProbeStep {
    fn run(&self, dir: &Path, m: &PlannedMeasurement) -> Result<(), EnvError> {
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
        let apps = vec![app_targets(&m.app, self.profiles.as_deref()).map_err(|e| err(&e))?];
        let mut spec = ProbeSpec::new(apps, self.resolver);
        spec.neutral = self.neutral;
        spec.limits = self.limits;
        spec.lab = self.lab;
        spec.race_window_ms = self.race_window_ms;
        let out = dir.join("probes");
        std::fs::create_dir_all(&out).map_err(|e| err(&e))?;
        let mut runner = |name: &str, s: &ProbeSpec| {
            let node = self
                .nodes
                .get(name)
                .ok_or_else(|| super::ProbeError::Vantage {
                    vantage: name.to_string(),
                    message: "unknown node".into(),
                })?;
            let mut s = s.clone();
            s.capture_iface = node.uplink.clone();
            s.capture_dir = node.uplink.as_ref().map(|_| out.join(name));
            run_in_netns(name, &node.netns, &s)
        };
        let knowledge = Knowledge::shipped(self.lab);
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
        Ok(())
    }
}
