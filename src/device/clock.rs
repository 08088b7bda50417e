//! Clock offset of a phone to the host: several `date +%s.%N` round trips,
//! keeping the tightest (offset = phone time − midpoint of the round trip,
//! uncertainty = half the round trip).

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// One estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockEstimate {
    /// Phone clock minus host clock, in seconds.
    pub offset_s: f64,
    /// Half the best round trip, in seconds (the offset is within ± this).
    pub uncertainty_s: f64,
    /// Host time of the estimate (unix seconds).
    pub at_host_s: f64,
    /// Round trips measured.
    pub rounds: u32,
}

impl ClockEstimate {
    /// Converts a phone timestamp (unix seconds) to host time.
    pub fn to_host(&self, phone_s: f64) -> f64 {
        phone_s - self.offset_s
    }

    /// Drift in parts per million between two estimates of the same phone.
    pub fn drift_ppm(&self, later: &ClockEstimate) -> Option<f64> {
        let dt = later.at_host_s - self.at_host_s;
        (dt > 0.0).then(|| (later.offset_s - self.offset_s) / dt * 1e6)
    }
}

/// Host time now, unix seconds.
pub fn host_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Parses `date +%s.%N` output (seconds with fraction).
pub fn parse_phone_time(s: &str) -> Option<f64> {
    let t = s.trim();
    let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.is_empty() {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let frac: f64 = format!("0.{frac}").parse().ok()?;
    Some(secs as f64 + frac)
}

/// Keeps the tightest of (t0, phone, t1) samples.
pub fn best(samples: &[(f64, f64, f64)]) -> Option<ClockEstimate> {
    let (t0, p, t1) = samples
        .iter()
        .copied()
        .filter(|(a, _, b)| b >= a)
        .min_by(|a, b| (a.2 - a.0).total_cmp(&(b.2 - b.0)))?;
    Some(ClockEstimate {
        offset_s: p - (t0 + t1) / 2.0,
        uncertainty_s: (t1 - t0) / 2.0,
        at_host_s: (t0 + t1) / 2.0,
        rounds: samples.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightest_wins() {
        let e = best(&[(100.0, 101.6, 100.4), (200.0, 201.505, 200.01)]).unwrap();
        assert!((e.offset_s - 1.5).abs() < 1e-9);
        assert!((e.uncertainty_s - 0.005).abs() < 1e-9);
        assert_eq!(
            parse_phone_time("1700000000.250000000\n"),
            Some(1_700_000_000.25)
        );
        assert_eq!(parse_phone_time("1700000000.%N"), None);
        let later = ClockEstimate {
            offset_s: 1.5 + 0.0001,
            at_host_s: e.at_host_s + 100.0,
            ..e
        };
        assert!((e.drift_ppm(&later).unwrap() - 1.0).abs() < 1e-6);
    }
}
