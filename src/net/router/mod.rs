//! The real lab's router: its description ([`RealLab`], schema
//! `matador/real-lab/1`), the configuration files generated from it
//! ([`generate`]: hostapd, dnsmasq, sysctl, nftables / iptables-restore,
//! policy routing, WireGuard) and the checks of a running router
//! ([`check`]).
//!
//! A real lab is the virtual lab's shape on real hardware: phones in flight
//! mode on the router's own WLAN, each phone's traffic policy-routed into
//! the WireGuard tunnel of its node, the node NATing it out in its country.
//! The description can also be derived from a virtual lab's `lab.json`
//! ([`RealLab::from_lab_desc`]) or from a scenario's `nodes:`/`router:`
//! sections plus a WLAN site file ([`RealLab::from_scenario`]).

pub mod check;
pub mod generate;

use crate::net::labdesc::LabDesc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Schema tag of a real-lab description.
pub const SCHEMA: &str = "matador/real-lab/1";

/// Errors of router configuration and checks, naming the file or item.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A description file is invalid.
    #[error("{path}: {message}")]
    Invalid {
        /// File concerned.
        path: PathBuf,
        /// What is wrong (with line for YAML errors).
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A network command failed.
    #[error(transparent)]
    Net(#[from] super::NetError),
}

fn default_channel() -> u8 {
    6
}
fn default_wlan_net() -> String {
    "198.18.100.1/24".into()
}
fn default_resolver() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 98, 53)
}
fn default_tunnel_net() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 99, 0)
}
fn default_table_base() -> u32 {
    100
}
fn default_priority_base() -> u32 {
    1000
}
fn default_wg_port() -> u16 {
    51820
}
fn default_user() -> String {
    "root".into()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_uplink() -> String {
    "eth0".into()
}
fn default_node_if() -> String {
    "wg-matador".into()
}

/// The router: WLAN access point, uplink and address plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConf {
    /// The AP-capable Wi-Fi interface (hostapd's `interface`), e.g. `wlan0`.
    pub wlan_if: String,
    /// The router's own uplink (carries only the encrypted tunnels).
    pub uplink: String,
    /// Network name of the lab WLAN.
    pub ssid: String,
    /// File holding the WPA2 passphrase (8–63 printable ASCII characters);
    /// kept out of the description so it can be shared. Relative paths are
    /// relative to the description file.
    pub passphrase_file: PathBuf,
    /// Wi-Fi channel (1–13: 2.4 GHz, `hw_mode=g`; 36–165: 5 GHz, `hw_mode=a`).
    #[serde(default = "default_channel")]
    pub channel: u8,
    /// The router's WLAN address with prefix (phones get addresses in it).
    #[serde(default = "default_wlan_net")]
    pub wlan_addr: String,
    /// The phones' resolver: an address routed per phone into its tunnel and
    /// answered behind the node, so DNS is resolved in the node's country.
    #[serde(default = "default_resolver")]
    pub resolver: Ipv4Addr,
    /// Base of the tunnel inner addresses (a /30 per node: router .4i+1, node .4i+2).
    #[serde(default = "default_tunnel_net")]
    pub tunnel_net: Ipv4Addr,
    /// Routing table of the first node (node i uses base+i).
    #[serde(default = "default_table_base")]
    pub table_base: u32,
    /// `ip rule` priority of the first phone (phone i uses base+i).
    #[serde(default = "default_priority_base")]
    pub priority_base: u32,
}

/// A phone of the real lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealPhone {
    /// Phone name (as in the scenario).
    pub name: String,
    /// ADB serial (`adb devices`).
    pub serial: String,
    /// Wi-Fi MAC address (static DHCP lease; turn off MAC randomisation
    /// for the lab SSID on the phone).
    pub mac: String,
    /// The phone's WLAN address.
    pub addr: Ipv4Addr,
    /// Node its traffic leaves through.
    pub node: String,
}

/// A remote node of the real lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealNode {
    /// Node name (1–12 of `a-z0-9-`, the router's tunnel is `wg-<name>`).
    pub name: String,
    /// Country (ISO alpha-2).
    pub country: String,
    /// Public host name or address (SSH and the tunnel endpoint).
    pub host: String,
    /// SSH user.
    #[serde(default = "default_user")]
    pub user: String,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// SSH private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// known_hosts file with the node's host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// WireGuard listen port on the node.
    #[serde(default = "default_wg_port")]
    pub wg_port: u16,
    /// The node's uplink (NAT and capture point).
    #[serde(default = "default_uplink")]
    pub uplink: String,
    /// The node's tunnel interface.
    #[serde(default = "default_node_if")]
    pub tunnel_if: String,
    /// Upstream resolver on the node's side (default: the node's own
    /// `/etc/resolv.conf`, looked up by `matador node install`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_upstream: Option<Ipv4Addr>,
}

/// A real lab (schema `matador/real-lab/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealLab {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Lab name.
    pub name: String,
    /// Where the router stands (ISO alpha-2): hostapd's regulatory domain.
    pub country: String,
    /// The router.
    pub router: RouterConf,
    /// Phones (≥ 1).
    pub phones: Vec<RealPhone>,
    /// Nodes (≥ 1).
    pub nodes: Vec<RealNode>,
}

/// One node's tunnel as planned from the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    /// Node name.
    pub node: String,
    /// Router interface.
    pub router_if: String,
    /// Router inner address (/30).
    pub router_addr: Ipv4Addr,
    /// Node inner address (/30).
    pub node_addr: Ipv4Addr,
    /// Routing table on the router.
    pub table: u32,
    /// The router's probe rule priority (traffic from the router's inner
    /// address goes through the tunnel, so checks can ask through it).
    pub probe_priority: u32,
}

/// One phone's routing as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhonePlan {
    /// Phone name.
    pub name: String,
    /// Phone address.
    pub addr: Ipv4Addr,
    /// Index of its node.
    pub node: usize,
    /// Rule priority.
    pub priority: u32,
}

fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = (1..=12).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} name {s:?}: use 1-12 of a-z, 0-9, '-'"))
    }
}

fn check_country(what: &str, s: &str) -> Result<(), String> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "{what} country {s:?}: use an ISO 3166 alpha-2 code (e.g. DE)"
        ))
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case), returns it lower-case.
pub fn parse_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    (parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())))
    .then(|| s.to_ascii_lowercase())
}

/// A printable token for config files: no whitespace, quotes, `#`, `;` or
/// control characters (they would change the meaning of the line).
fn safe_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'#;\\`$".contains(&b))
}

impl RealLab {
    /// Reads a description: a real-lab YAML/JSON file, or a virtual lab's
    /// `lab.json` (schema `matador/lab/1`, converted).
    pub fn load(path: &Path) -> Result<RealLab, RouterError> {
        let text = std::fs::read_to_string(path).map_err(|source| RouterError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| RouterError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if text.contains(crate::net::labdesc::SCHEMA) {
            let d = LabDesc::read(path).map_err(|e| invalid(e.to_string()))?;
            return RealLab::from_lab_desc(&d).map_err(invalid);
        }
        let mut lab: RealLab = serde_yaml_ng::from_str(&text).map_err(|e| {
            invalid(match e.location() {
                Some(l) => format!("line {}: {e}", l.line()),
                None => e.to_string(),
            })
        })?;
        if lab.schema != SCHEMA {
            return Err(invalid(format!(
                "schema {:?}, expected {SCHEMA:?}",
                lab.schema
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        lab.resolve_paths(base);
        lab.validate().map_err(invalid)?;
        Ok(lab)
    }

    /// Makes relative file paths relative to `base` (the description's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.router.passphrase_file);
        for n in &mut self.nodes {
            if let Some(p) = n.identity.as_mut() {
                fix(p);
            }
            if let Some(p) = n.known_hosts.as_mut() {
                fix(p);
            }
        }
    }

    /// The router's WLAN network.
    pub fn wlan_net(&self) -> Result<ipnetwork::Ipv4Network, String> {
        self.router
            .wlan_addr
            .parse::<ipnetwork::Ipv4Network>()
            .map_err(|e| format!("router.wlan_addr {:?}: {e}", self.router.wlan_addr))
    }

    /// Checks names, addresses and references; the message names the item.
    pub fn validate(&self) -> Result<(), String> {
        check_name("lab", &self.name)?;
        check_country("lab", &self.country)?;
        let r = &self.router;
        for (what, i) in [("router.wlan_if", &r.wlan_if), ("router.uplink", &r.uplink)] {
            crate::net::netns::check_if_name(i).map_err(|e| format!("{what}: {e}"))?;
        }
        if r.wlan_if == r.uplink {
            return Err("router.wlan_if and router.uplink must differ".into());
        }
        if r.ssid.is_empty()
            || r.ssid.len() > 32
            || r.ssid.bytes().any(|b| !(0x20..0x7f).contains(&b))
        {
            return Err(format!(
                "router.ssid {:?}: 1-32 printable ASCII characters",
                r.ssid
            ));
        }
        if !(1..=13).contains(&r.channel) && !(36..=165).contains(&r.channel) {
            return Err(format!(
                "router.channel {}: use 1-13 (2.4 GHz) or 36-165 (5 GHz)",
                r.channel
            ));
        }
        let net = self.wlan_net()?;
        if net.prefix() < 16 || net.prefix() > 29 || net.ip() == net.network() {
            return Err(format!(
                "router.wlan_addr {:?}: give the router's address with a /16../29 prefix",
                r.wlan_addr
            ));
        }
        if self.phones.is_empty() || self.nodes.is_empty() {
            return Err("a real lab needs at least one phone and one node".into());
        }
        if self.nodes.len() > 63 {
            return Err("at most 63 nodes (one /30 each in the tunnel /24)".into());
        }
        let mut names = BTreeSet::new();
        for n in &self.nodes {
            check_name("node", &n.name)?;
            check_country(&format!("node {}", n.name), &n.country)?;
            if !names.insert(n.name.clone()) {
                return Err(format!("node {} declared twice", n.name));
            }
            if !safe_token(&n.host) {
                return Err(format!(
                    "node {}: host {:?} is not a host name",
                    n.name, n.host
                ));
            }
            if !safe_token(&n.user) {
                return Err(format!(
                    "node {}: user {:?} is not a user name",
                    n.name, n.user
                ));
            }
            for (what, i) in [("uplink", &n.uplink), ("tunnel_if", &n.tunnel_if)] {
                crate::net::netns::check_if_name(i)
                    .map_err(|e| format!("node {} {what}: {e}", n.name))?;
            }
        }
        let mut macs = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        let mut pnames = BTreeSet::new();
        for p in &self.phones {
            check_name("phone", &p.name)?;
            if !pnames.insert(p.name.clone()) {
                return Err(format!("phone {} declared twice", p.name));
            }
            let mac = parse_mac(&p.mac).ok_or_else(|| {
                format!("phone {}: MAC {:?} is not aa:bb:cc:dd:ee:ff", p.name, p.mac)
            })?;
            if !macs.insert(mac) {
                return Err(format!("phone {}: MAC {} used twice", p.name, p.mac));
            }
            if !net.contains(p.addr)
                || p.addr == net.ip()
                || p.addr == net.broadcast()
                || p.addr == net.network()
            {
                return Err(format!(
                    "phone {}: address {} is not a host address of the WLAN {}",
                    p.name, p.addr, net
                ));
            }
            if !addrs.insert(p.addr) {
                return Err(format!("phone {}: address {} used twice", p.name, p.addr));
            }
            if !names.contains(&p.node) {
                return Err(format!("phone {}: unknown node {:?}", p.name, p.node));
            }
            if !safe_token(&p.serial) {
                return Err(format!(
                    "phone {}: serial {:?} is not a serial",
                    p.name, p.serial
                ));
            }
        }
        Ok(())
    }

    /// The tunnels, in node order.
    pub fn tunnels(&self) -> Vec<TunnelPlan> {
        let base = u32::from(self.router.tunnel_net);
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| TunnelPlan {
                node: n.name.clone(),
                router_if: format!("wg-{}", n.name),
                router_addr: Ipv4Addr::from(base + 4 * i as u32 + 1),
                node_addr: Ipv4Addr::from(base + 4 * i as u32 + 2),
                table: self.router.table_base + i as u32,
                probe_priority: self.router.priority_base + 500 + i as u32,
            })
            .collect()
    }

    /// The phones' rules, in phone order.
    pub fn phone_plans(&self) -> Vec<PhonePlan> {
        self.phones
            .iter()
            .enumerate()
            .map(|(i, p)| PhonePlan {
                name: p.name.clone(),
                addr: p.addr,
                node: self
                    .nodes
                    .iter()
                    .position(|n| n.name == p.node)
                    .unwrap_or(0),
                priority: self.router.priority_base + i as u32,
            })
            .collect()
    }

    /// Converts a virtual lab's `lab.json`. The virtual lab has no Wi-Fi:
    /// MACs are taken as locally administered `02:6d:74:00:00:<i>` and the
    /// SSID/passphrase are placeholders, so the generated files show what a
    /// real router of that shape needs; checks use the real addresses,
    /// interfaces, tables and priorities recorded in the description.
    pub fn from_lab_desc(d: &LabDesc) -> Result<RealLab, String> {
        let router = d.router().ok_or("lab.json has no router")?;
        let nodes: Vec<_> = d.nodes.iter().filter(|n| n.kind == "node").collect();
        let first = nodes
            .first()
            .and_then(|n| n.tunnel.as_ref())
            .ok_or("lab.json has no node with a tunnel")?;
        let ra: Ipv4Addr = first
            .router_addr
            .parse()
            .map_err(|e| format!("tunnel router_addr {:?}: {e}", first.router_addr))?;
        let wlan_gw = d
            .phones
            .first()
            .and_then(|p| p.addr.parse::<Ipv4Addr>().ok())
            .map(|a| Ipv4Addr::from((u32::from(a) & 0xffff_ff00) | 1))
            .ok_or("lab.json has no phone with an IPv4 address")?;
        let mut lab = RealLab {
            schema: SCHEMA.into(),
            name: d.name.chars().take(12).collect(),
            country: router.country.clone(),
            router: RouterConf {
                wlan_if: d.wlan_if.clone(),
                uplink: "eth0".into(),
                ssid: format!("matador-{}", d.name),
                passphrase_file: PathBuf::from("wlan.psk"),
                channel: default_channel(),
                wlan_addr: format!("{wlan_gw}/24"),
                resolver: d
                    .resolver
                    .parse()
                    .map_err(|e| format!("resolver {:?}: {e}", d.resolver))?,
                tunnel_net: Ipv4Addr::from(u32::from(ra) & !3),
                table_base: first.table,
                priority_base: d
                    .phones
                    .iter()
                    .map(|p| p.rule_priority)
                    .min()
                    .unwrap_or(1000),
            },
            phones: Vec::new(),
            nodes: Vec::new(),
        };
        for n in &nodes {
            let t = n
                .tunnel
                .as_ref()
                .ok_or(format!("node {} has no tunnel", n.name))?;
            let ssh = n.ssh.as_ref();
            lab.nodes.push(RealNode {
                name: n.name.clone(),
                country: n.country.clone(),
                host: ssh
                    .map(|s| s.host.clone())
                    .unwrap_or_else(|| n.addr.clone()),
                user: ssh.map(|s| s.user.clone()).unwrap_or_else(default_user),
                ssh_port: ssh.map(|s| s.port).unwrap_or(22),
                identity: ssh.map(|s| s.identity.clone()),
                known_hosts: ssh.map(|s| s.known_hosts.clone()),
                wg_port: t
                    .endpoint
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.port())
                    .unwrap_or_else(|_| default_wg_port()),
                uplink: t.node_uplink.clone(),
                tunnel_if: t.node_if.clone(),
                dns_upstream: None,
            });
        }
        for (i, p) in d.phones.iter().enumerate() {
            lab.phones.push(RealPhone {
                name: p.name.clone(),
                serial: p.serial.clone(),
                mac: format!("02:6d:74:00:00:{:02x}", (i + 1) % 256),
                addr: p
                    .addr
                    .parse()
                    .map_err(|e| format!("phone {} addr {:?}: {e}", p.name, p.addr))?,
                node: p.node.clone(),
            });
        }
        Ok(lab)
    }
}

/// Reads a description for `matador router check`: a real-lab file (the
/// router is this machine, configured by [`generate`]) or a virtual lab's
/// `lab.json` (its router namespace and tunnel names).
pub fn load_for_check(path: &Path) -> Result<(RealLab, RouterSite), RouterError> {
    let lab = RealLab::load(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| RouterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let site = if text.contains(crate::net::labdesc::SCHEMA) {
        let d = LabDesc::read(path).map_err(|e| RouterError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        RouterSite::from_lab_desc(&d)
    } else {
        RouterSite::real(&lab)
    };
    Ok((lab, site))
}

/// The router-side facts a check needs, beyond the description: where the
/// router runs and how its tunnels are named (the virtual lab names them
/// `wg<id>r<i>`, a generated real router `wg-<node>`).
#[derive(Debug, Clone)]
pub struct RouterSite {
    /// Router namespace (`None`: this machine).
    pub netns: Option<String>,
    /// Tunnel interface per node (node order).
    pub tunnel_ifs: Vec<String>,
    /// Phones' namespaces (virtual lab: DNS is asked from the phone's side).
    pub phone_netns: Vec<Option<String>>,
    /// dnsmasq lease file (`None`: static addresses, no DHCP to check).
    pub leases: Option<PathBuf>,
    /// Name the resolver must answer.
    pub dns_name: String,
    /// Per-phone capture interfaces `c-<phone>` are expected (generated router).
    pub capture: bool,
}

impl RouterSite {
    /// A real router configured by [`generate`]: this machine, `wg-<node>`.
    pub fn real(lab: &RealLab) -> RouterSite {
        RouterSite {
            netns: None,
            tunnel_ifs: lab.tunnels().into_iter().map(|t| t.router_if).collect(),
            phone_netns: vec![None; lab.phones.len()],
            leases: Some(PathBuf::from(generate::LEASE_FILE)),
            dns_name: "example.org".into(),
            capture: true,
        }
    }

    /// The router of a virtual lab described by `d`.
    pub fn from_lab_desc(d: &LabDesc) -> RouterSite {
        RouterSite {
            netns: d.router().and_then(|r| r.netns.clone()),
            tunnel_ifs: d
                .nodes
                .iter()
                .filter(|n| n.kind == "node")
                .filter_map(|n| n.tunnel.as_ref().map(|t| t.router_if.clone()))
                .collect(),
            phone_netns: d.phones.iter().map(|p| p.netns.clone()).collect(),
            leases: None,
            dns_name: "example.org".into(),
            capture: false,
        }
    }
}

/// The `nodes:` and `router:` sections of a scenario running in this lab
/// (written as `scenario-sections.yaml` by `router config`).
pub fn scenario_sections(lab: &RealLab) -> String {
    let mut s =
        String::from("# Paste into the scenario (generated by `matador router config`).\nnodes:\n");
    for (n, t) in lab.nodes.iter().zip(lab.tunnels()) {
        s += &format!(
            "  {}: {{host: {}, user: {}, port: {}, table: {}, tunnel_if: {}, tunnel_peer: {}",
            n.name, n.host, n.user, n.ssh_port, t.table, t.router_if, t.node_addr
        );
        if let Some(i) = &n.identity {
            s += &format!(", identity: {:?}", i.display().to_string());
        }
        if let Some(k) = &n.known_hosts {
            s += &format!(", known_hosts: {:?}", k.display().to_string());
        }
        s += "}\n";
    }
    s += "router:\n  phones:\n";
    for (p, plan) in lab.phones.iter().zip(lab.phone_plans()) {
        s += &format!(
            "    {}: {{addr: {}, interface: {}, priority: {}, resolver: \"{}:53\"}}\n",
            p.name,
            p.addr,
            generate::capture_if(&p.name),
            plan.priority,
            lab.router.resolver
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:AB:cd:00:11:22").as_deref(),
            Some("02:ab:cd:00:11:22")
        );
        assert_eq!(parse_mac("02:ab:cd:00:11"), None);
        assert_eq!(parse_mac("02:ab:cd:00:11:zz"), None);
    }

    #[test]
    fn tokens() {
        assert!(safe_token("de-1.nodes.example.org"));
        assert!(!safe_token("a b"));
        assert!(!safe_token("x\ny"));
        assert!(!safe_token("x#y"));
    }
}
