//! What a vantage probes: per app the endpoints of its profile's `probe:`
//! section (`device-profiles/apps/<id>.yaml`), plus the resolver, the
//! neutral address of the `Host` header test, the bulk source of the
//! throughput test and the limits.
//!
//! ```yaml
//! probe:
//!   endpoints: ["gd2.line.naver.jp:443", "line.me:443,80"]
//! ```

use super::ProbeError;
use super::limit::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::scenario::apps::AppProfiles;

/// One endpoint: a host name and the ports the app uses on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Host name (lower case, no trailing dot).
    pub host: String,
    /// TCP ports.
    pub ports: Vec<u16>,
}

impl EndpointSpec {
    /// Parses `host:port[,port…]`.
    pub fn parse(s: &str) -> Result<EndpointSpec, String> {
        let (host, ports) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("endpoint {s:?}: expected host:port[,port]"))?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(valid) {
            return Err(format!("endpoint {s:?}: bad host name {host:?}"));
        }
        let mut out = Vec::new();
        for p in ports.split(',') {
            let p: u16 = p
                .trim()
                .parse()
                .map_err(|_| format!("endpoint {s:?}: bad port {p:?}"))?;
            if p == 0 {
                return Err(format!("endpoint {s:?}: port 0"));
            }
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(EndpointSpec { host, ports: out })
    }
}

/// The endpoints of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppTargets {
    /// App id.
    pub app: String,
    /// Endpoints.
    pub endpoints: Vec<EndpointSpec>,
}

/// The probe targets of app `id`: the `probe:` section of its profile in
/// `profiles` (the one app-profile loader, [`crate::scenario::apps`]:
/// shipped, a folder, or a campaign's copy).
pub fn app_targets(id: &str, profiles: &AppProfiles) -> Result<AppTargets, ProbeError> {
    let p = profiles
        .get(id)
        .ok_or_else(|| ProbeError::Invalid(format!("unknown app {id:?}")))?;
    if p.probe.is_empty() {
        return Err(ProbeError::Profile {
            file: p.source.clone(),
            message: "no endpoints under `probe:`".into(),
        });
    }
    Ok(AppTargets {
        app: p.id.clone(),
        endpoints: p.probe.clone(),
    })
}

/// Everything one vantage runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// Apps and their endpoints.
    pub apps: Vec<AppTargets>,
    /// The vantage's resolver (UDP and TCP port 53); none: the first
    /// `nameserver` of the vantage's `/etc/resolv.conf`.
    #[serde(default)]
    pub resolver: Option<SocketAddr>,
    /// Neutral, reachable address for the HTTP `Host` header test.
    #[serde(default)]
    pub neutral: Option<SocketAddr>,
    /// Bulk source for the throughput test (sends bytes on connect).
    #[serde(default)]
    pub bulk: Option<SocketAddr>,
    /// Bytes read from the bulk source.
    #[serde(default = "default_bulk_bytes")]
    pub bulk_bytes: u64,
    /// Control resolutions (host → addresses) to test reachability by
    /// address; empty on the control vantage itself.
    #[serde(default)]
    pub control_ips: BTreeMap<String, Vec<IpAddr>>,
    /// Decoy SNI for the TLS test.
    #[serde(default = "default_decoy")]
    pub decoy_sni: String,
    /// Isolate keywords on `Host` header resets.
    #[serde(default = "yes")]
    pub isolate_keywords: bool,
    /// Per-operation timeout in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// How long a UDP query keeps listening after the first reply (racing
    /// injectors), in milliseconds.
    #[serde(default = "default_race_window")]
    pub race_window_ms: u64,
    /// Request rate and total.
    #[serde(default)]
    pub limits: Limits,
    /// Lab mode: refuse every target outside 198.18.0.0/15 and fd00::/8.
    #[serde(default)]
    pub lab: bool,
    /// Seed of the random subdomain names.
    #[serde(default)]
    pub seed: u64,
    /// Interface to capture on during the probe (evidence); none: no capture.
    #[serde(default)]
    pub capture_iface: Option<String>,
    /// Directory for the capture (on the vantage).
    #[serde(default)]
    pub capture_dir: Option<std::path::PathBuf>,
}

fn default_bulk_bytes() -> u64 {
    200_000
}
fn default_decoy() -> String {
    "www.example.org".into()
}
fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    3000
}
fn default_race_window() -> u64 {
    250
}

impl ProbeSpec {
    /// An upper bound of one vantage's run: every request at the rate, and
    /// every request waiting out its timeout (at most an hour).
    pub fn time_bound(&self) -> std::time::Duration {
        let n = f64::from(self.limits.max_requests);
        std::time::Duration::from_secs_f64(
            n / self.limits.rate_per_s + n * self.timeout_ms as f64 / 1000.0,
        )
        .min(std::time::Duration::from_secs(3600))
    }

    /// A spec with defaults for `apps` and `resolver`.
    pub fn new(apps: Vec<AppTargets>, resolver: Option<SocketAddr>) -> ProbeSpec {
        ProbeSpec {
            apps,
            resolver,
            neutral: None,
            bulk: None,
            bulk_bytes: default_bulk_bytes(),
            control_ips: BTreeMap::new(),
            decoy_sni: default_decoy(),
            isolate_keywords: true,
            timeout_ms: default_timeout(),
            race_window_ms: default_race_window(),
            limits: Limits::default(),
            lab: false,
            seed: 0,
            capture_iface: None,
            capture_dir: None,
        }
    }
}

/// The first `nameserver` of `resolv.conf` text, on port 53.
pub fn resolv_conf_server(text: &str) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|r| r.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_errors_name_the_input() {
        let e = EndpointSpec::parse("GD2.line.naver.jp.:443,80,443").unwrap();
        assert_eq!(e.host, "gd2.line.naver.jp");
        assert_eq!(e.ports, vec![443, 80]);
        assert!(EndpointSpec::parse("x").unwrap_err().contains("\"x\""));
        assert!(EndpointSpec::parse("a b:1").is_err());
        assert!(EndpointSpec::parse("a:0").is_err());
        assert!(EndpointSpec::parse("a:99999").is_err());
    }

    #[test]
    fn resolv_conf_first_nameserver() {
        let t = "# x\nsearch lab\nnameserver 198.18.98.53\nnameserver 1.1.1.1\n";
        assert_eq!(
            resolv_conf_server(t),
            Some("198.18.98.53:53".parse().unwrap())
        );
        assert_eq!(
            resolv_conf_server("nameserver fe80::1%eth0\n").map(|s| s.port()),
            Some(53)
        );
        assert_eq!(resolv_conf_server(""), None);
    }

    #[test]
    fn every_shipped_profile_has_probe_endpoints() {
        use crate::scenario::apps::{APP_IDS, AppProfile};
        let shipped = AppProfiles::try_builtin().unwrap();
        for id in APP_IDS {
            let t = app_targets(id, &shipped).unwrap();
            assert_eq!(t.app, id);
            assert!(!t.endpoints.is_empty());
        }
        let one = |text: &str| AppProfiles {
            apps: vec![AppProfile::parse(text, std::path::Path::new("f.yaml")).unwrap()],
        };
        let e = app_targets("x", &one("id: x\n")).unwrap_err();
        assert!(
            e.to_string().contains("f.yaml") && e.to_string().contains("no endpoints"),
            "{e}"
        );
        assert!(matches!(
            app_targets("y", &one("id: x\n")),
            Err(ProbeError::Invalid(_))
        ));
    }
}
