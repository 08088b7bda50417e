//! Bounds on probe traffic: a request rate and a total per vantage run, and
//! the target guard (lab mode: only 198.18.0.0/15 and fd00::/8).

use super::ProbeError;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Request rate and total of one vantage run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per second (DNS queries, connections, handshakes, HTTP
    /// requests each count as one).
    pub rate_per_s: f64,
    /// Requests in total; the run stops with a budget error beyond.
    pub max_requests: u32,
}

impl Default for Limits {
    /// 5 requests/s, at most 1000 per run.
    fn default() -> Self {
        Limits {
            rate_per_s: 5.0,
            max_requests: 1000,
        }
    }
}

/// Spends requests within [`Limits`], sleeping to keep the rate.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    sent: u32,
    next: Option<Instant>,
}

impl Budget {
    /// A fresh budget.
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            sent: 0,
            next: None,
        }
    }

    /// Takes one request: waits for the rate, fails once the total is spent.
    pub fn take(&mut self) -> Result<(), ProbeError> {
        if self.sent >= self.limits.max_requests {
            return Err(ProbeError::Budget {
                limit: self.limits.max_requests,
            });
        }
        let now = Instant::now();
        if let Some(next) = self.next
            && next > now
        {
            std::thread::sleep(next - now);
        }
        let gap = if self.limits.rate_per_s > 0.0 {
            Duration::from_secs_f64((1.0 / self.limits.rate_per_s).min(60.0))
        } else {
            Duration::ZERO
        };
        self.next = Some(Instant::now() + gap);
        self.sent += 1;
        Ok(())
    }

    /// Requests spent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }
}

/// Whether `ip` is a lab address (198.18.0.0/15 or fd00::/8).
pub fn lab_address(ip: IpAddr) -> bool {
    crate::net::addrspace::testbed_address(ip)
}

/// The target guard: in lab mode only lab addresses; never unspecified,
/// broadcast or multicast addresses.
pub fn check_target(ip: IpAddr, lab: bool) -> Result<(), ProbeError> {
    let refuse = |reason: &str| {
        Err(ProbeError::Refused {
            target: ip.to_string(),
            reason: reason.into(),
        })
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return refuse("unspecified or multicast address");
    }
    if let IpAddr::V4(a) = ip
        && a.is_broadcast()
    {
        return refuse("broadcast address");
    }
    if lab && !lab_address(ip) {
        return refuse("lab mode allows only 198.18.0.0/15 and fd00::/8");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_rate_and_total() {
        let mut b = Budget::new(Limits {
            rate_per_s: 50.0,
            max_requests: 5,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            b.take().unwrap();
        }
        // Four gaps of 20 ms between five requests.
        assert!(
            t0.elapsed() >= Duration::from_millis(75),
            "{:?}",
            t0.elapsed()
        );
        assert!(matches!(b.take(), Err(ProbeError::Budget { limit: 5 })));
        assert_eq!(b.sent(), 5);
    }

    #[test]
    fn lab_mode_refuses_outside_targets() {
        assert!(check_target("198.19.7.10".parse().unwrap(), true).is_ok());
        assert!(check_target("fd00::1".parse().unwrap(), true).is_ok());
        let e = check_target("8.8.8.8".parse().unwrap(), true).unwrap_err();
        assert!(e.to_string().contains("8.8.8.8"), "{e}");
        assert!(check_target("10.0.0.1".parse().unwrap(), true).is_err());
        assert!(check_target("8.8.8.8".parse().unwrap(), false).is_ok());
        assert!(check_target("0.0.0.0".parse().unwrap(), false).is_err());
        assert!(check_target("224.0.0.1".parse().unwrap(), false).is_err());
    }
}
