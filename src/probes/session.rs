//! One probe round: the control vantage first (its answers become the
//! control resolutions), then every vantage with those resolutions, then
//! the verdicts. How a vantage runs (namespace thread, node agent) is the
//! caller's runner.

use super::ProbeError;
use super::spec::ProbeSpec;
use super::vantage::VantageResult;
use super::verdict::{Knowledge, VantageVerdicts, judge};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// The control's results.
    pub control: VantageResult,
    /// Each vantage's results.
    pub vantages: Vec<VantageResult>,
    /// Each vantage's verdicts.
    pub verdicts: Vec<VantageVerdicts>,
}

/// The control's UDP answers per host (only clean answers: no failure).
pub fn control_ips(c: &VantageResult) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out = BTreeMap::new();
    for a in &c.apps {
        for e in &a.endpoints {
            if let Some(d) = &e.dns_udp
                && d.failure.is_none()
                && !d.answers.is_empty()
            {
                out.insert(e.host.clone(), d.answers.clone());
            }
        }
    }
    out
}

/// Runs the control, then every vantage, and judges them.
pub fn round(
    spec: &ProbeSpec,
    control: &str,
    vantages: &[String],
    knowledge: &Knowledge,
    runner: &mut dyn FnMut(&str, &ProbeSpec) -> Result<VantageResult, ProbeError>,
) -> Result<RoundResult, ProbeError> {
    let mut cspec = spec.clone();
    cspec.control_ips.clear();
    // The control only needs the answers of the Host test, not isolation.
    cspec.isolate_keywords = false;
    let c = runner(control, &cspec)?;
    let mut vspec = spec.clone();
    vspec.control_ips = control_ips(&c);
    let mut results = Vec::new();
    let mut verdicts = Vec::new();
    for v in vantages {
        let r = runner(v, &vspec)?;
        verdicts.push(judge(&r, &c, knowledge));
        results.push(r);
    }
    Ok(RoundResult {
        control: c,
        vantages: results,
        verdicts,
    })
}
