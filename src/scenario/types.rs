//! The scenario's YAML types. Every struct refuses unknown keys; values with a
//! syntax of their own (durations, country codes) check it while parsing, so
//! their errors carry the line and column of the value.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "matador scenario")]
pub struct Scenario {
    /// Campaign name: lower-case letters, digits and `-` (used in the campaign folder name).
    pub name: String,
    /// Free text describing the campaign.
    #[serde(default)]
    pub description: String,
    /// The phones: without `phone_pairs`, exactly two (the first is phone A,
    /// the second phone B: one pair).
    pub phones: Vec<PhoneRef>,
    /// Several phone pairs measuring at once: each `[A, B]` names two
    /// phones of `phones` (ids), each phone in one pair. Absent: the two
    /// phones are the one pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_pairs: Vec<[String; 2]>,
    /// Measurements a remote node carries at once (over all phone pairs).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub node_capacity: u32,
    /// App ids under test (`whatsapp`, `wechat`, `threema`, `signal`, `telegram`, `line`, `kakaotalk`, or ids from `app_profiles`).
    pub apps: Vec<String>,
    /// Directory of app profiles to use instead of the built-in ones (relative to the scenario file).
    #[serde(default)]
    pub app_profiles: Option<PathBuf>,
    /// Vantage countries (ISO 3166 alpha-2) and their remote nodes, in failover order.
    pub countries: BTreeMap<CountryCode, Vec<String>>,
    /// How to reach the nodes of a real lab (SSH). Not needed with `lab:`, where the virtual lab provides the nodes.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeSpec>,
    /// Country pairs: phone A is tunnelled to the first country, phone B to the second.
    pub pairs: Pairs,
    /// The messages exchanged in each measurement.
    pub messages: Messages,
    /// How often each (pair, app) measurement is repeated.
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Empty runs (apps open, no message) to learn the background traffic.
    #[serde(default)]
    pub baseline: Baseline,
    /// Time bounds.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How many times a failed measurement is retried before it is recorded as failed.
    #[serde(default = "two")]
    pub retries: u32,
    /// Where traffic is captured.
    #[serde(default)]
    pub capture: CaptureSpec,
    /// Geolocation settings for the analysis and reports.
    #[serde(default)]
    pub geo: GeoSpec,
    /// Extra steps run inside each message measurement.
    #[serde(default)]
    pub steps: StepsSpec,
    /// Virtual-lab settings (`matador run --lab`): censor, control resolver.
    #[serde(default)]
    pub lab: Option<LabSpec>,
    /// The router of a real lab (phones' addresses and interfaces).
    #[serde(default)]
    pub router: Option<RouterSpec>,
    /// Address ranges (CIDR) the lab team declares its own: hosts of a real
    /// lab built in a bogon range such as the benchmarking 198.18.0.0/15.
    /// The correlation, the interference rules and the probe verdicts never
    /// call an address inside them a bogon. Empty by default; `matador run
    /// --exempt-network` adds to it, `--lab` adds the virtual lab's space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt_networks: Vec<String>,
}

impl Scenario {
    /// The phone pairs `(A, B)` by phone id: `phone_pairs`, else the two
    /// phones as one pair (checked when the scenario is loaded).
    pub fn phone_pairs(&self) -> Vec<[String; 2]> {
        if !self.phone_pairs.is_empty() {
            return self.phone_pairs.clone();
        }
        let id = |i: usize| self.phones.get(i).map(|p| p.id.clone()).unwrap_or_default();
        vec![[id(0), id(1)]]
    }

    /// [`Scenario::exempt_networks`] parsed (checked when the scenario is
    /// loaded, so nothing is dropped here for a loaded scenario).
    pub fn exempt_networks(&self) -> Vec<ipnetwork::IpNetwork> {
        self.exempt_networks
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn two() -> u32 {
    2
}

/// One phone of the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRef {
    /// Phone profile id (`device-profiles/phones/<id>.yaml`).
    pub id: String,
    /// Profile file, when not `device-profiles/phones/<id>.yaml` (relative to the scenario file).
    #[serde(default)]
    pub profile: Option<PathBuf>,
}

/// How to reach a node of a real lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Host name or address for SSH and the tunnel.
    pub host: String,
    /// SSH user.
    #[serde(default = "root")]
    pub user: String,
    /// SSH port.
    #[serde(default = "ssh_port")]
    pub port: u16,
    /// SSH private key file (for the node agent).
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// known_hosts file holding the node's host key.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Capture directory of the node agent.
    #[serde(default = "agent_dir")]
    pub agent_dir: String,
    /// Routing table on the router whose default route is this node's tunnel.
    #[serde(default)]
    pub table: Option<u32>,
    /// The tunnel interface on the router.
    #[serde(default)]
    pub tunnel_if: Option<String>,
    /// The node's address inside the tunnel (pinged by the health check).
    #[serde(default)]
    pub tunnel_peer: Option<std::net::IpAddr>,
}

fn agent_dir() -> String {
    "/var/tmp/matador-agent".into()
}

/// The lab router of a real lab: where the phones are and how captures are
/// taken. The tunnels to the nodes are set up beforehand (see `nodes:`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// Network namespace of the router (absent: this machine is the router).
    #[serde(default)]
    pub netns: Option<String>,
    /// Each phone as the router sees it, by phone id.
    #[serde(default)]
    pub phones: BTreeMap<String, RouterPhone>,
    /// Interface captured on the nodes (their tunnel end).
    #[serde(default = "node_capture_if")]
    pub node_capture_if: String,
    /// A name every resolver must answer in the DNS check.
    #[serde(default = "dns_check_name")]
    pub dns_check_name: String,
}

fn node_capture_if() -> String {
    "any".into()
}

fn dns_check_name() -> String {
    "example.org".into()
}

/// A phone on the router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterPhone {
    /// The phone's address on the WLAN.
    pub addr: std::net::IpAddr,
    /// The router's interface towards the phone (captured as `router-<phone>`).
    pub interface: String,
    /// `ip rule` priority reserved for the phone.
    pub priority: u32,
    /// The phone's resolver (`ip:port`), checked to go through the node.
    #[serde(default)]
    pub resolver: Option<std::net::SocketAddr>,
}

fn root() -> String {
    "root".into()
}

fn ssh_port() -> u16 {
    22
}

/// Which country pairs are measured. Both lists may be given; duplicates are
/// measured once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pairs {
    /// Every unordered pair of two different countries of this list.
    #[serde(default)]
    pub all: Vec<CountryCode>,
    /// Explicit pairs `[A-country, B-country]`.
    #[serde(default)]
    pub explicit: Vec<[CountryCode; 2]>,
    /// With `all`: also pair each country with itself.
    #[serde(default)]
    pub include_same: bool,
}

/// The messages of a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    /// Messages per direction; they alternate A→B, B→A (the paper: 2).
    #[serde(default = "two")]
    pub per_direction: u32,
    /// Message texts, used in turn.
    #[serde(default)]
    pub texts: Vec<String>,
    /// A file with one message text per line (relative to the scenario file), used after `texts`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Pause after a message was received before the next one is sent.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// How a text is made unique within the campaign: `{text}` is the
    /// scenario's text, `{id}` the message id (`m0007-2`); a format without
    /// `{id}` gets ` [{id}]` appended. A receipt is then never an earlier
    /// message with the same text still shown in the chat.
    #[serde(default = "default_marker")]
    pub marker: String,
}

fn default_marker() -> String {
    "{text} [{id}]".into()
}

fn default_interval() -> Dur {
    Dur(Duration::from_secs(5))
}

/// Empty baseline runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Baseline runs per (pair, app).
    #[serde(default = "one")]
    pub runs: u32,
    /// How long each baseline run records with the app open and no message.
    #[serde(default = "default_baseline")]
    pub duration: Dur,
}

fn default_baseline() -> Dur {
    Dur(Duration::from_secs(60))
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            runs: 1,
            duration: default_baseline(),
        }
    }
}

/// Time bounds of a measurement's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Any single step (tunnel up, capture start, app launch…).
    #[serde(default = "d60")]
    pub step: Dur,
    /// Waiting for a message to arrive on the receiving phone.
    #[serde(default = "d60")]
    pub receive: Dur,
    /// A whole measurement.
    #[serde(default = "d900")]
    pub measurement: Dur,
}

fn d60() -> Dur {
    Dur(Duration::from_secs(60))
}

fn d900() -> Dur {
    Dur(Duration::from_secs(900))
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            step: d60(),
            receive: d60(),
            measurement: d900(),
        }
    }
}

/// A capture point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CapturePointKind {
    /// The router's interface towards each phone (`capture-router-<phone>.pcap`).
    Router,
    /// Each remote node's tunnel exit (`capture-node-<node>.pcap`).
    Node,
}

/// Capture settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// Where to capture.
    #[serde(default = "default_points")]
    pub points: Vec<CapturePointKind>,
    /// Bytes kept per packet.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// Record each phone's screen during the measurement
    /// (`screen-<phone>.mp4`, pulled after it; kept on failure).
    #[serde(default = "yes")]
    pub screenrecord: bool,
    /// Longest recording (Android's screenrecord allows 1 s to 180 s); a
    /// recording ends earlier when the measurement stops its captures.
    #[serde(default = "default_screenrecord_limit")]
    pub screenrecord_limit: Dur,
}

fn default_screenrecord_limit() -> Dur {
    Dur(Duration::from_secs(180))
}

fn default_points() -> Vec<CapturePointKind> {
    vec![CapturePointKind::Router, CapturePointKind::Node]
}

fn default_snaplen() -> u32 {
    65535
}

impl Default for CaptureSpec {
    fn default() -> Self {
        CaptureSpec {
            points: default_points(),
            snaplen: default_snaplen(),
            screenrecord: true,
            screenrecord_limit: default_screenrecord_limit(),
        }
    }
}

/// Geolocation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoSpec {
    /// mmdb file (country, ASN) used by the reports; the virtual lab brings its own.
    #[serde(default)]
    pub db: Option<PathBuf>,
    /// Interest-group preset (`current`, `pam2016`) or a groups YAML file.
    #[serde(default = "default_groups")]
    pub groups: String,
}

fn default_groups() -> String {
    "current".into()
}

impl Default for GeoSpec {
    fn default() -> Self {
        GeoSpec {
            db: None,
            groups: default_groups(),
        }
    }
}

/// Optional steps of a message measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepsSpec {
    /// Traceroutes from the nodes to the servers seen (paths).
    #[serde(default)]
    pub paths: bool,
    /// Active interference probes (probes).
    #[serde(default)]
    pub probes: bool,
}

/// Virtual-lab settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Lab topology file (relative to the scenario) to start from instead of
    /// the shipped demo lab (`lab/demo.yaml`); the scenario's nodes, phones,
    /// censor, control resolver and noise are applied to it.
    #[serde(default)]
    pub topology: Option<PathBuf>,
    /// A censor on the path of one vantage country (in front of its first
    /// node), racing the network like an on-path injector.
    #[serde(default)]
    pub censor: Option<CensorSpec>,
    /// A resolver outside the censored network, to compare DNS answers with.
    #[serde(default)]
    pub control_resolver: Option<std::net::IpAddr>,
    /// Background noise: the phones' Android-like background traffic and
    /// the lab's noise hosts (off: neither exists).
    #[serde(default = "yes")]
    pub noise: bool,
}

fn yes() -> bool {
    true
}

/// A censor in the virtual lab, modelled on what Citizen Lab saw for LINE and
/// KakaoTalk in China: forged DNS answers and injected TCP resets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CensorSpec {
    /// The vantage country whose node sits behind the censor.
    pub country: CountryCode,
    /// Names (and their subdomains) whose DNS answers are forged.
    #[serde(default)]
    pub forge_dns: Vec<String>,
    /// Addresses put in forged answers.
    #[serde(default)]
    pub forged_answers: Vec<std::net::IpAddr>,
    /// HTTP Host / TLS SNI names whose connections get injected TCP resets.
    #[serde(default)]
    pub reset_hosts: Vec<String>,
}

/// An ISO 3166-1 alpha-2 country code (two upper-case letters), checked
/// against the UN M49 table shipped with matador.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode(pub String);

impl CountryCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CountryCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "expected an ISO 3166 alpha-2 country code (two upper-case letters such as DE), found {s:?}"
            ));
        }
        if crate::geo::m49::M49::shipped().country(s).is_none() {
            return Err(format!(
                "{s:?} is not an ISO 3166 alpha-2 country code known to the UN M49 table"
            ));
        }
        Ok(CountryCode(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for CountryCode {
    fn schema_name() -> Cow<'static, str> {
        "CountryCode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{2}$",
            "description": "ISO 3166-1 alpha-2 country code"
        })
    }
}

/// A duration written `90s`, `1.5s`, `500ms`, `5m`, `2h` or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Seconds as a float.
    pub fn secs(&self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = || {
            format!(
                "expected a duration such as 30s, 500ms, 5m or 2h (or a number of seconds), found {s:?}"
            )
        };
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let factor = match unit.trim() {
            "" | "s" => 1.0,
            "ms" => 0.001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let secs = n * factor;
        if !secs.is_finite() || !(0.0..=30.0 * 86400.0).contains(&secs) {
            return Err(format!("duration {s:?} out of range (0 to 30 days)"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 500ms, 5m or 2h, or a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                format!("{v}").parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                format!("{v}").parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                format!("{v}").parse().map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a duration: 30s, 500ms, 5m, 2h, or a number of seconds",
            "oneOf": [
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|min|h)?$"},
                {"type": "number", "minimum": 0}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let p = |s: &str| s.parse::<Dur>().map(|d| d.0);
        assert_eq!(p("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(p("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(p("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(p("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(p("1.5"), Ok(Duration::from_millis(1500)));
        assert!(p("5 parsecs").is_err());
        assert!(p("-1s").is_err());
        assert!(p("99999h").is_err());
        assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1500ms");
        assert_eq!(Dur(Duration::from_secs(60)).to_string(), "60s");
    }

    #[test]
    fn country_codes() {
        assert!("DE".parse::<CountryCode>().is_ok());
        assert!("de".parse::<CountryCode>().is_err());
        assert!("XX".parse::<CountryCode>().is_err());
        assert!("DEU".parse::<CountryCode>().is_err());
    }
}
