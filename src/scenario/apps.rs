//! App profiles: `device-profiles/apps/<id>.yaml`, one per messaging app.
//!
//! One type for the file, [`AppProfile`], loaded once (here) and shared by
//! the stages, each taking its part: the `network:` section is the
//! fingerprint replay attribution uses ([`crate::analysis::attribution`]);
//! `package`, `activity` and the `ui:` section
//! ([`AppUi`], whose type the device layer
//! defines since it alone interprets it) drive the app on a phone; the
//! `probe:` endpoints are what the active probes test. The
//! shipped profiles are embedded in the binary ([`AppProfiles::builtin`])
//! so `matador` works from any directory; users may load their own with
//! [`AppProfiles::load_dir`].
//!
//! ```yaml
//! id: whatsapp
//! name: WhatsApp
//! package: com.whatsapp
//! activity: com.whatsapp/.Main
//! network:
//!   domains: [whatsapp.net, whatsapp.com]    # DNS names: the domain and its subdomains
//!   sni: [whatsapp.net, "*.whatsapp.com"]    # TLS SNI / HTTP Host ("*." = subdomains only)
//!   ports: [tcp/443, tcp/5222, udp/3478]    # where the app talks
//!   prefixes: [157.240.0.0/16]               # address blocks
//!   prefix_ports: [tcp/5222]                 # blocks shared with other services: count only on these ports
//!   asns: [32934]                            # counted only on one of `ports`
//!   fingerprints: [whatsapp-noise]
//! ui: {}
//! ```

use crate::device::profile::AppUi;
use crate::probes::spec::EndpointSpec;
use ipnetwork::IpNetwork;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// App ids matador knows, in a stable order.
pub const APP_IDS: [&str; 7] = [
    "whatsapp",
    "wechat",
    "threema",
    "signal",
    "telegram",
    "line",
    "kakaotalk",
];

/// The profiles shipped with matador (embedded at build time).
const BUILTIN: [(&str, &str); 7] = [
    (
        "whatsapp.yaml",
        include_str!("../../device-profiles/apps/whatsapp.yaml"),
    ),
    (
        "wechat.yaml",
        include_str!("../../device-profiles/apps/wechat.yaml"),
    ),
    (
        "threema.yaml",
        include_str!("../../device-profiles/apps/threema.yaml"),
    ),
    (
        "signal.yaml",
        include_str!("../../device-profiles/apps/signal.yaml"),
    ),
    (
        "telegram.yaml",
        include_str!("../../device-profiles/apps/telegram.yaml"),
    ),
    (
        "line.yaml",
        include_str!("../../device-profiles/apps/line.yaml"),
    ),
    (
        "kakaotalk.yaml",
        include_str!("../../device-profiles/apps/kakaotalk.yaml"),
    ),
];

/// Errors loading app profiles. Each names the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum AppProfileError {
    /// The file or directory could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The path.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// YAML syntax or schema error.
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value inside `network:` is invalid (bad prefix, port, pattern…).
    #[error("{file}: network.{field}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The field (`prefixes`, `ports`, …).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An endpoint of `probe:` is invalid.
    #[error("{file}: probe.endpoints: {message}")]
    Probe {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two files define the same app id.
    #[error("{file}: app id {id:?} already defined by {first}")]
    Duplicate {
        /// The second file.
        file: PathBuf,
        /// The id.
        id: String,
        /// The first file.
        first: String,
    },
}

/// Transport protocol of a port rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProto {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Either.
    Any,
}

/// A port or port range the app uses, written `tcp/5222`, `udp/3478-3481` or `443`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRule {
    /// Protocol.
    pub proto: PortProto,
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRule {
    /// True when `port` over `proto` (`"tcp"`/`"udp"`) matches.
    pub fn matches(&self, proto: &str, port: u16) -> bool {
        let p = match self.proto {
            PortProto::Any => true,
            PortProto::Tcp => proto == "tcp",
            PortProto::Udp => proto == "udp",
        };
        p && (self.lo..=self.hi).contains(&port)
    }
}

impl FromStr for PortRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (proto, range) = match s.split_once('/') {
            Some(("tcp", r)) => (PortProto::Tcp, r),
            Some(("udp", r)) => (PortProto::Udp, r),
            Some((p, _)) => return Err(format!("unknown protocol {p:?} in {s:?} (tcp or udp)")),
            None => (PortProto::Any, s),
        };
        let bad = || format!("bad port or range {s:?}");
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let p = range.parse().map_err(|_| bad())?;
                (p, p)
            }
        };
        if lo > hi || lo == 0 {
            return Err(bad());
        }
        Ok(PortRule { proto, lo, hi })
    }
}

/// Payload fingerprints the attribution engine recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fingerprint {
    /// WhatsApp's Noise Pipes handshake (prologue `WA` + version), optionally behind an `ED` edge-routing header.
    WhatsappNoise,
    /// WeChat MMTLS records (`0x16 0xf1 0x04…`), on raw TCP or inside HTTP `POST /mmtls/…`.
    WechatMmtls,
    /// KakaoTalk LOCO: plaintext LOCO header or the LOCO secure-layer handshake.
    KakaoLoco,
    /// Telegram MTProto transport headers (abridged `0xef`, intermediate `0xeeeeeeee`, padded `0xdddddddd`).
    TelegramMtproto,
    /// Telegram call reflectors (UDP: 16-byte peer tag, twelve `0xff` bytes, then a ping or its answer).
    TelegramReflector,
    /// WhatsApp call relays: STUN messages carrying WhatsApp's private attributes 0x4000–0x4007.
    WhatsappStun,
    /// LINE call signalling on UDP (nDPI `protocols/line.c` byte patterns);
    /// counts only when the server is in one of the LINE profile's prefixes.
    LineCall,
    /// KakaoTalk voice: an RTCP sender report (`81 c8 00 0c`) to or from
    /// Kakao's voice block 1.201.0.0/16 (nDPI `protocols/kakaotalk_voice.c`).
    KakaoVoice,
}

impl Fingerprint {
    /// All fingerprints.
    pub const ALL: [Fingerprint; 8] = [
        Fingerprint::WhatsappNoise,
        Fingerprint::WechatMmtls,
        Fingerprint::KakaoLoco,
        Fingerprint::TelegramMtproto,
        Fingerprint::TelegramReflector,
        Fingerprint::WhatsappStun,
        Fingerprint::LineCall,
        Fingerprint::KakaoVoice,
    ];

    /// The name used in profiles and evidence strings.
    pub fn name(&self) -> &'static str {
        match self {
            Fingerprint::WhatsappNoise => "whatsapp-noise",
            Fingerprint::WechatMmtls => "wechat-mmtls",
            Fingerprint::KakaoLoco => "kakao-loco",
            Fingerprint::TelegramMtproto => "telegram-mtproto",
            Fingerprint::TelegramReflector => "telegram-reflector",
            Fingerprint::WhatsappStun => "whatsapp-stun",
            Fingerprint::LineCall => "line-call",
            Fingerprint::KakaoVoice => "kakao-voice",
        }
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Fingerprint::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fingerprint {s:?} (known: {})", known.join(", "))
            })
    }
}

/// A DNS-name pattern: `example.com` matches the name and its subdomains,
/// `*.example.com` only subdomains. Case-insensitive, trailing dot ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    suffix: String,
    subdomains_only: bool,
}

impl DomainPattern {
    /// True when `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        if name.len() < self.suffix.len() {
            return false;
        }
        // Bytes, not str: a name from the wire may hold non-ASCII (lossy
        // UTF-8) characters, and a str split inside one would panic.
        let (head, tail) = name.as_bytes().split_at(name.len() - self.suffix.len());
        if !tail.eq_ignore_ascii_case(self.suffix.as_bytes()) {
            return false;
        }
        if head.is_empty() {
            !self.subdomains_only
        } else {
            head.ends_with(b".")
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> String {
        if self.subdomains_only {
            format!("*.{}", self.suffix)
        } else {
            self.suffix.clone()
        }
    }
}

impl FromStr for DomainPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let (suffix, subdomains_only) = match t.strip_prefix("*.") {
            Some(rest) => (rest.to_string(), true),
            None => (t, false),
        };
        let ok = !suffix.is_empty()
            && suffix.contains('.')
            && suffix.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(format!(
                "bad domain pattern {s:?} (e.g. example.com or *.example.com)"
            ));
        }
        Ok(DomainPattern {
            suffix,
            subdomains_only,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    sni: Vec<String>,
    #[serde(default)]
    ports: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    prefix_ports: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    asns: Vec<u32>,
    #[serde(default)]
    fingerprints: Vec<String>,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawProfile {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    activity: Option<String>,
    #[serde(default)]
    network: Option<RawNetwork>,
    /// Typed while parsing, so a mistake names its line; `ui:` left empty
    /// (null) is the default, as `ui: {}` is.
    #[serde(default)]
    ui: Option<AppUi>,
    #[serde(default)]
    probe: Option<RawProbe>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[serde(default)]
    endpoints: Vec<String>,
}

/// The `network:` section: how to recognise the app's servers in traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkProfile {
    /// DNS names the app resolves.
    pub domains: Vec<DomainPattern>,
    /// TLS SNI / HTTP Host names.
    pub sni: Vec<DomainPattern>,
    /// Ports the app uses.
    pub ports: Vec<PortRule>,
    /// Address blocks of the app's servers.
    pub prefixes: Vec<IpNetwork>,
    /// When not empty, a prefix match counts only on one of these ports
    /// (the blocks are shared with other services of the same operator).
    pub prefix_ports: Vec<PortRule>,
    /// Autonomous systems of the app's servers (used when an ASN lookup is available).
    pub asns: Vec<u32>,
    /// Payload fingerprints of the app's protocols.
    pub fingerprints: Vec<Fingerprint>,
    /// Where the data comes from (documentation only).
    pub sources: Vec<String>,
}

impl NetworkProfile {
    /// True when a DNS name matches [`Self::domains`].
    pub fn matches_domain(&self, name: &str) -> bool {
        self.domains.iter().any(|p| p.matches(name))
    }

    /// True when an SNI/Host matches [`Self::sni`] (or [`Self::domains`] when no SNI patterns are given).
    pub fn matches_sni(&self, name: &str) -> bool {
        let list = if self.sni.is_empty() {
            &self.domains
        } else {
            &self.sni
        };
        list.iter().any(|p| p.matches(name))
    }

    /// The first prefix containing `ip`.
    pub fn prefix_of(&self, ip: IpAddr) -> Option<&IpNetwork> {
        self.prefixes.iter().find(|n| n.contains(ip))
    }

    /// True when the port is one the app uses.
    pub fn uses_port(&self, proto: &str, port: u16) -> bool {
        self.ports.iter().any(|r| r.matches(proto, port))
    }

    /// True when a prefix match on this port counts (see [`Self::prefix_ports`]).
    pub fn prefix_port_ok(&self, proto: &str, port: u16) -> bool {
        self.prefix_ports.is_empty() || self.prefix_ports.iter().any(|r| r.matches(proto, port))
    }
}

/// One app's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct AppProfile {
    /// App id (`whatsapp`, `wechat`, …).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Android package.
    pub package: String,
    /// Launcher activity (`pkg/.Activity`), when the profile names one.
    pub activity: Option<String>,
    /// Network fingerprint (replay attribution's part).
    pub network: NetworkProfile,
    /// How to drive the app on a phone (the device layer's part).
    pub ui: AppUi,
    /// Endpoints the active probes test (`probe: {endpoints: [host:port,…]}`,
    /// the probes' part; empty when the profile has none).
    pub probe: Vec<EndpointSpec>,
    /// File the profile came from (`builtin:<name>` for embedded ones).
    pub source: String,
    /// The profile file's exact text (a campaign keeps a copy of the
    /// profiles it used, so its replay and resume use the same).
    pub text: String,
}

impl AppProfile {
    /// Parses one profile; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<AppProfile, AppProfileError> {
        let raw: RawProfile = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            AppProfileError::Yaml {
                file: file.to_path_buf(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        let invalid = |field: &str, message: String| AppProfileError::Invalid {
            file: file.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let net = raw.network.unwrap_or_default();
        let patterns =
            |field: &str, list: &[String]| -> Result<Vec<DomainPattern>, AppProfileError> {
                list.iter()
                    .map(|s| s.parse().map_err(|m| invalid(field, m)))
                    .collect()
            };
        let port_rules = |field: &str, list: &[serde_yaml_ng::Value]| {
            list.iter()
                .map(|v| {
                    let s = match v {
                        serde_yaml_ng::Value::Number(n) => n.to_string(),
                        serde_yaml_ng::Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    s.parse::<PortRule>().map_err(|m| invalid(field, m))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let ports = port_rules("ports", &net.ports)?;
        let prefix_ports = port_rules("prefix_ports", &net.prefix_ports)?;
        let prefixes = net
            .prefixes
            .iter()
            .map(|s| {
                s.parse::<IpNetwork>()
                    .map_err(|e| invalid("prefixes", format!("bad prefix {s:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fingerprints = net
            .fingerprints
            .iter()
            .map(|s| {
                s.parse::<Fingerprint>()
                    .map_err(|m| invalid("fingerprints", m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let probe = raw
            .probe
            .unwrap_or_default()
            .endpoints
            .iter()
            .map(|e| EndpointSpec::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| AppProfileError::Probe {
                file: file.to_path_buf(),
                message,
            })?;
        if raw.id.is_empty()
            || !raw
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(AppProfileError::Yaml {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("id {:?} must be lower-case letters, digits or '-'", raw.id),
            });
        }
        Ok(AppProfile {
            id: raw.id,
            name: raw.name,
            package: raw.package,
            activity: raw.activity,
            network: NetworkProfile {
                domains: patterns("domains", &net.domains)?,
                sni: patterns("sni", &net.sni)?,
                ports,
                prefixes,
                prefix_ports,
                asns: net.asns,
                fingerprints,
                sources: net.sources,
            },
            ui: raw.ui.unwrap_or_default(),
            probe,
            source: file.display().to_string(),
            text: text.to_string(),
        })
    }
}

/// The file of a profile copy ([`AppProfiles::write_dir`]) listing the app
/// ids in load order, one per line.
pub const LOAD_ORDER: &str = "load-order.txt";

/// A set of app profiles, in load order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppProfiles {
    /// The profiles.
    pub apps: Vec<AppProfile>,
}

impl AppProfiles {
    /// The profiles shipped with matador. A unit test parses them, so a
    /// broken shipped profile fails the tests rather than a run (which would
    /// get an empty set).
    pub fn builtin() -> AppProfiles {
        Self::try_builtin().unwrap_or_default()
    }

    /// The shipped profiles, reporting a parse error (used by the tests).
    pub fn try_builtin() -> Result<AppProfiles, AppProfileError> {
        let mut set = AppProfiles::default();
        for (name, text) in BUILTIN {
            let p = AppProfile::parse(
                text,
                &PathBuf::from(format!("builtin:device-profiles/apps/{name}")),
            )?;
            set.insert(p)?;
        }
        Ok(set)
    }

    /// Loads every `*.yaml`/`*.yml` file of a directory (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<AppProfiles, AppProfileError> {
        let io = |e| AppProfileError::Io {
            file: dir.to_path_buf(),
            source: e,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut set = AppProfiles::default();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| AppProfileError::Io {
                file: f.clone(),
                source: e,
            })?;
            set.insert(AppProfile::parse(&text, &f)?)?;
        }
        Ok(set)
    }

    fn insert(&mut self, p: AppProfile) -> Result<(), AppProfileError> {
        if let Some(first) = self.apps.iter().find(|a| a.id == p.id) {
            return Err(AppProfileError::Duplicate {
                file: PathBuf::from(&p.source),
                id: p.id,
                first: first.source.clone(),
            });
        }
        self.apps.push(p);
        Ok(())
    }

    /// Writes every profile's text to `<dir>/<id>.yaml` (atomically; the
    /// folder is created) and their order to `<dir>/`[`LOAD_ORDER`]: the
    /// copy a campaign keeps of what it used. [`Self::load_copy`] on `dir`
    /// gives back an equal set (but `source`) in the same order (the
    /// analysis lists apps in profile order).
    pub fn write_dir(&self, dir: &Path) -> Result<(), AppProfileError> {
        let io = |file: PathBuf| move |e| AppProfileError::Io { file, source: e };
        std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
        let mut order = String::new();
        for p in &self.apps {
            let f = dir.join(format!("{}.yaml", p.id));
            crate::atomic_file::write(&f, p.text.as_bytes()).map_err(io(f.clone()))?;
            order.push_str(&p.id);
            order.push('\n');
        }
        let f = dir.join(LOAD_ORDER);
        crate::atomic_file::write(&f, order.as_bytes()).map_err(io(f.clone()))
    }

    /// Loads a copy made by [`Self::write_dir`]: [`Self::load_dir`], put
    /// back in the order of its [`LOAD_ORDER`] file (when there is one).
    pub fn load_copy(dir: &Path) -> Result<AppProfiles, AppProfileError> {
        let mut set = Self::load_dir(dir)?;
        let f = dir.join(LOAD_ORDER);
        let order = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(set),
            Err(e) => return Err(AppProfileError::Io { file: f, source: e }),
        };
        let mut ordered = Vec::with_capacity(set.apps.len());
        for id in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some(i) = set.apps.iter().position(|a| a.id == id) else {
                return Err(AppProfileError::Io {
                    file: f,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("lists app {id:?}, whose profile is not in the folder"),
                    ),
                });
            };
            ordered.push(set.apps.remove(i));
        }
        // Profiles the list does not name (added by hand) come last.
        ordered.append(&mut set.apps);
        Ok(AppProfiles { apps: ordered })
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<&AppProfile> {
        self.apps.iter().find(|a| a.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_cover_all_apps() {
        let set = AppProfiles::try_builtin().unwrap();
        let ids: Vec<&str> = set.apps.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, APP_IDS);
        for a in &set.apps {
            assert!(!a.network.domains.is_empty(), "{} has no domains", a.id);
            assert!(!a.network.ports.is_empty(), "{} has no ports", a.id);
            assert!(!a.network.sources.is_empty(), "{} cites no sources", a.id);
            assert!(!a.package.is_empty());
        }
        assert_eq!(AppProfiles::builtin(), set);
    }

    #[test]
    fn a_written_copy_loads_back_equal() {
        let set = AppProfiles::try_builtin().unwrap();
        let d = tempfile::tempdir().unwrap();
        set.write_dir(&d.path().join("copy")).unwrap();
        let mut back = AppProfiles::load_copy(&d.path().join("copy")).unwrap();
        for a in &mut back.apps {
            a.source = set.get(&a.id).unwrap().source.clone();
        }
        assert_eq!(back, set);
        // The shipped order is not alphabetical: the order file matters.
        let plain = AppProfiles::load_dir(&d.path().join("copy")).unwrap();
        assert_ne!(
            plain.apps.iter().map(|a| &a.id).collect::<Vec<_>>(),
            set.apps.iter().map(|a| &a.id).collect::<Vec<_>>()
        );
        // Each profile under its id, as `<dir>/<id>.yaml` lookups expect.
        assert!(d.path().join("copy/whatsapp.yaml").is_file());
    }

    #[test]
    fn patterns_ports_and_prefixes() {
        let p: DomainPattern = "WhatsApp.net.".parse().unwrap();
        assert!(
            p.matches("whatsapp.net")
                && p.matches("e1.WHATSAPP.net.")
                && !p.matches("notwhatsapp.net")
        );
        let s: DomainPattern = "*.qq.com".parse().unwrap();
        assert!(s.matches("dns.weixin.qq.com") && !s.matches("qq.com"));
        assert!("a b.com".parse::<DomainPattern>().is_err());
        assert!("com".parse::<DomainPattern>().is_err());
        let r: PortRule = "udp/3478-3481".parse().unwrap();
        assert!(r.matches("udp", 3480) && !r.matches("tcp", 3480) && !r.matches("udp", 3482));
        assert!("443".parse::<PortRule>().unwrap().matches("tcp", 443));
        assert!("sctp/1".parse::<PortRule>().is_err());
        assert!("tcp/9-1".parse::<PortRule>().is_err());
    }

    #[test]
    fn errors_name_file_and_line() {
        let f = Path::new("apps/x.yaml");
        let e =
            AppProfile::parse("id: x\nnetwork:\n  domains: [a.com]\n  bogus: 1\n", f).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("apps/x.yaml:"), "{msg}");
        assert!(matches!(e, AppProfileError::Yaml { line: 4, .. }), "{e:?}");
        let e = AppProfile::parse("id: x\nnetwork:\n  prefixes: [1.2.3.0/33]\n", f).unwrap_err();
        assert!(e.to_string().contains("network.prefixes"), "{e}");
        let e = AppProfile::parse("id: x\nnetwork:\n  fingerprints: [nope]\n", f).unwrap_err();
        assert!(e.to_string().contains("unknown fingerprint"), "{e}");
        let e = AppProfile::parse("id: x\nprobe: {endpoints: [a]}\n", f).unwrap_err();
        assert!(
            e.to_string().starts_with("apps/x.yaml: probe.endpoints:"),
            "{e}"
        );
        let e = AppProfile::parse("id: x\nprobe: {hosts: [a]}\n", f).unwrap_err();
        assert!(matches!(e, AppProfileError::Yaml { line: 2, .. }), "{e:?}");
    }

    #[test]
    fn ui_is_typed_and_load_dir_rejects_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let a = "id: a\nname: A\nnetwork:\n  domains: [a.example]\nui:\n  send_button:\n    - {text: Send}\n";
        std::fs::write(dir.path().join("a.yaml"), a).unwrap();
        let set = AppProfiles::load_dir(dir.path()).unwrap();
        assert_eq!(set.apps.len(), 1);
        let ui = &set.get("a").unwrap().ui;
        assert_eq!(ui.send_button[0].text.as_deref(), Some("Send"));
        assert_eq!(ui.ui_timeout_s, 10.0, "defaults of the device layer");
        // `ui:` empty, `ui: {}` or absent: the defaults.
        for t in ["id: e\nui:\n", "id: e\nui: {}\n", "id: e\n"] {
            let p = AppProfile::parse(t, Path::new("e.yaml")).unwrap();
            assert_eq!(p.ui, AppUi::default(), "{t:?}");
        }
        // A mistake in `ui:` is found when the profile is loaded, with its line.
        let e =
            AppProfile::parse("id: x\nui:\n  text_field: 3\n", Path::new("x.yaml")).unwrap_err();
        assert!(matches!(e, AppProfileError::Yaml { line: 3, .. }), "{e:?}");
        let e = AppProfile::parse("id: x\nui:\n  screens: []\n", Path::new("x.yaml")).unwrap_err();
        assert!(e.to_string().contains("screens"), "{e}");
        std::fs::write(dir.path().join("b.yml"), "id: a\n").unwrap();
        let e = AppProfiles::load_dir(dir.path()).unwrap_err();
        assert!(matches!(e, AppProfileError::Duplicate { .. }), "{e}");
        assert!(AppProfiles::load_dir(&dir.path().join("missing")).is_err());
    }
}
