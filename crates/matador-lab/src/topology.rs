//! The lab topology file (YAML, see `docs/lab.md`) and its address plan.
//!
//! The file declares phones, remote nodes per country, data centres hosting
//! the app backends and noise hosts, and an optional censor. Addresses are
//! not written by hand: [`Plan::new`] derives every address from the
//! declaration order, only from 198.18.0.0/15, and each block belongs to one
//! country and AS so the lab mmdb geolocates every address.

use super::LabError;
use matador::net::addrspace;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A phone host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneDecl {
    /// Phone name (e.g. `phone-a`).
    pub name: String,
    /// Node its traffic leaves through at start.
    pub node: String,
    /// Installed simulated apps (default: all seven).
    #[serde(default)]
    pub apps: Option<Vec<String>>,
    /// Android-like background traffic.
    #[serde(default = "yes")]
    pub background: bool,
    /// `ro.product.model` (default: the simulator's).
    #[serde(default)]
    pub model: Option<String>,
    /// Whether `su` exists.
    #[serde(default)]
    pub rooted: bool,
    /// Which of each app's two simulated versions is installed (0 or 1).
    #[serde(default)]
    pub variant: usize,
    /// This phone's account per app (default: derived from its position),
    /// e.g. to match `device-profiles/phones/<name>.yaml`.
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// A remote node in a country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDecl {
    /// Node name (e.g. `de-1`).
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// AS number of the node's ISP.
    pub asn: u32,
    /// AS organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// Router hops between the node and the core (at least 1; the first
    /// hosts the country's resolver).
    #[serde(default = "two")]
    pub hops: u8,
    /// Extra DNS answers of this country's resolver (`name: address`).
    #[serde(default)]
    pub dns: BTreeMap<String, Ipv4Addr>,
    /// Throttle the node's uplink (both directions) to this rate with a
    /// token bucket (tc tbf): throttling ground truth.
    #[serde(default)]
    pub throttle_kbit: Option<u32>,
    /// One-way delay added in each direction of the node's uplink, in ms
    /// (userspace NFQUEUE relay, see `docs/lab.md`).
    #[serde(default)]
    pub delay_ms: Option<u32>,
}

fn two() -> u8 {
    2
}
fn one() -> u8 {
    1
}

/// A data centre: app backends and/or noise hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcDecl {
    /// Name (e.g. `us-east`).
    pub name: String,
    /// Country.
    pub country: String,
    /// AS number.
    pub asn: u32,
    /// AS organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// Router hops between the core and the data centre (at least 1).
    #[serde(default = "one")]
    pub hops: u8,
    /// The hop next to the core has two equal-cost parallel routers
    /// (multipath, L4 hash) for Paris traceroute.
    #[serde(default)]
    pub multipath: bool,
    /// App backends hosted here (app ids).
    #[serde(default)]
    pub apps: Vec<String>,
    /// Hosts Android background services (connectivity check, NTP, push).
    #[serde(default)]
    pub noise: bool,
    /// One-way delay added in each direction of the data centre's own link
    /// (to its first hop), in ms (userspace NFQUEUE relay).
    #[serde(default)]
    pub delay_ms: Option<u32>,
}

/// The censor: a router hop in front of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CensorDecl {
    /// Node whose uplink passes the censor.
    pub node: String,
    /// Forged DNS answers: name (and any subdomain) → address.
    #[serde(default)]
    pub forge_dns: BTreeMap<String, Ipv4Addr>,
    /// Keywords whose appearance in a TCP payload (Host header, SNI) makes
    /// the censor answer with a TCP RST.
    #[serde(default)]
    pub rst_keywords: Vec<String>,
    /// Addresses whose SYNs get a RST.
    #[serde(default)]
    pub rst_syn_to: Vec<Ipv4Addr>,
    /// On-path injector racing the network (the original passes): forged
    /// DNS answers and keyword RSTs with the censor's own TTL and IP-ID.
    #[serde(default)]
    pub race: Option<crate::censor::RaceConfig>,
}

/// A whole lab topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Lab name.
    pub name: String,
    /// Country of the lab itself (router, WLAN, core).
    pub country: String,
    /// AS number of the lab's own network.
    pub asn: u32,
    /// Phones (at least one).
    pub phones: Vec<PhoneDecl>,
    /// Remote nodes (at least one).
    pub nodes: Vec<NodeDecl>,
    /// Data centres.
    #[serde(default)]
    pub datacenters: Vec<DcDecl>,
    /// Optional censor.
    #[serde(default)]
    pub censor: Option<CensorDecl>,
    /// An honest resolver outside every censored network (the control of
    /// DNS comparisons), served on the core at this address, inside
    /// [`CONTROL_RESOLVER_RANGE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_resolver: Option<Ipv4Addr>,
}

/// Where a control resolver may live: 198.18.16.0 to 198.18.96.255, clear
/// of the home links, tunnels, WLAN, resolvers and node/data-centre blocks.
pub const CONTROL_RESOLVER_RANGE: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(198, 18, 16, 0),
    Ipv4Addr::new(198, 18, 96, 255),
);

/// Whether `ip` may be the lab's control resolver.
pub fn control_resolver_ok(ip: Ipv4Addr) -> bool {
    (CONTROL_RESOLVER_RANGE.0..=CONTROL_RESOLVER_RANGE.1).contains(&ip)
}

/// The lab's address space: the product's test-bed networks (RFC 2544
/// benchmarking for IPv4, the locally assigned half of RFC 4193
/// unique-local for IPv6, see [`matador::net::addrspace`]). Bogons to the
/// world; whatever analyses lab traffic passes [`lab_networks`] as its
/// explicit exemption.
pub const LAB_NETWORKS: [&str; 2] = addrspace::TESTBED_NETWORKS;

/// [`LAB_NETWORKS`] parsed.
pub fn lab_networks() -> Vec<ipnetwork::IpNetwork> {
    addrspace::testbed_networks()
}

/// Whether an address is allowed in the lab ([`LAB_NETWORKS`]).
pub fn lab_address(ip: IpAddr) -> bool {
    addrspace::testbed_address(ip)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 12
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_country(c: &str) -> bool {
    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())
}

impl Topology {
    /// Loads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Topology::parse(&text, path)
    }

    /// Parses and validates topology text (`path` for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Topology, LabError> {
        let t: Topology = serde_yaml_ng::from_str(text).map_err(|e| LabError::Topology {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        t.validate().map_err(|message| LabError::Topology {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(t)
    }

    /// Checks names, countries, references and limits.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        if !valid_country(&self.country) {
            return Err(format!(
                "lab country {:?}: two upper-case letters",
                self.country
            ));
        }
        if self.phones.is_empty() || self.phones.len() > 100 {
            return Err("1 to 100 phones".into());
        }
        if self.nodes.is_empty() || self.nodes.len() > MAX_NODES {
            return Err(format!("1 to {MAX_NODES} nodes"));
        }
        if self.datacenters.len() > 30 {
            return Err("at most 30 data centres".into());
        }
        let all = self
            .phones
            .iter()
            .map(|p| &p.name)
            .chain(self.nodes.iter().map(|n| &n.name))
            .chain(self.datacenters.iter().map(|d| &d.name));
        for n in all {
            if !valid_name(n) {
                return Err(format!(
                    "name {n:?}: 1-12 lower-case letters, digits or '-'"
                ));
            }
            if ["router", "core", "censor"].contains(&n.as_str()) || !names.insert(n.clone()) {
                return Err(format!("name {n:?} is reserved or used twice"));
            }
        }
        for p in &self.phones {
            if !self.nodes.iter().any(|n| n.name == p.node) {
                return Err(format!("phone {}: unknown node {:?}", p.name, p.node));
            }
            if p.variant > 1 {
                return Err(format!("phone {}: variant {} (0 or 1)", p.name, p.variant));
            }
            for a in p.apps.iter().flatten().chain(p.accounts.keys()) {
                if crate::phone::apps::app_def(a).is_none() {
                    return Err(format!("phone {}: unknown app {a:?}", p.name));
                }
            }
        }
        for n in &self.nodes {
            if !valid_country(&n.country) {
                return Err(format!("node {}: country {:?}", n.name, n.country));
            }
            if !(1..=8).contains(&n.hops) {
                return Err(format!("node {}: hops {} (1 to 8)", n.name, n.hops));
            }
            if n.throttle_kbit
                .is_some_and(|k| !(8..=10_000_000).contains(&k))
            {
                return Err(format!("node {}: throttle_kbit 8 to 10000000", n.name));
            }
            if n.delay_ms.is_some_and(|d| !(1..=2000).contains(&d)) {
                return Err(format!("node {}: delay_ms 1 to 2000", n.name));
            }
            for (name, ip) in &n.dns {
                if !lab_address(IpAddr::V4(*ip)) {
                    return Err(format!(
                        "node {}: dns {name} → {ip} outside 198.18.0.0/15",
                        n.name
                    ));
                }
            }
        }
        let mut hosted = std::collections::BTreeSet::new();
        for d in &self.datacenters {
            if !valid_country(&d.country) {
                return Err(format!("datacenter {}: country {:?}", d.name, d.country));
            }
            if !(1..=8).contains(&d.hops) {
                return Err(format!("datacenter {}: hops {} (1 to 8)", d.name, d.hops));
            }
            if d.delay_ms.is_some_and(|x| !(1..=2000).contains(&x)) {
                return Err(format!("datacenter {}: delay_ms 1 to 2000", d.name));
            }
            for a in &d.apps {
                if crate::phone::apps::app_def(a).is_none() {
                    return Err(format!("datacenter {}: unknown app {a:?}", d.name));
                }
                if !hosted.insert(a.clone()) {
                    return Err(format!("app {a:?} hosted twice"));
                }
            }
        }
        if let Some(ip) = self.control_resolver
            && !control_resolver_ok(ip)
        {
            return Err(format!(
                "control_resolver {ip}: must lie in {}-{}",
                CONTROL_RESOLVER_RANGE.0, CONTROL_RESOLVER_RANGE.1
            ));
        }
        if let Some(c) = &self.censor {
            if !self.nodes.iter().any(|n| n.name == c.node) {
                return Err(format!("censor: unknown node {:?}", c.node));
            }
            let raced = c.race.iter().flat_map(|r| r.dns.values());
            for ip in c.forge_dns.values().chain(&c.rst_syn_to).chain(raced) {
                if !lab_address(IpAddr::V4(*ip)) {
                    return Err(format!("censor: {ip} outside 198.18.0.0/15"));
                }
            }
            let race_kw = c.race.iter().flat_map(|r| &r.keywords);
            for k in c.rst_keywords.iter().chain(race_kw) {
                if k.is_empty() || k.len() > 100 || k.chars().any(char::is_control) {
                    return Err(format!("censor: bad keyword {k:?}"));
                }
            }
        }
        Ok(())
    }

    /// The default topology shipped as `lab/demo.yaml`.
    pub fn demo_path() -> PathBuf {
        matador::source_dir().join("lab/demo.yaml")
    }
}

/// A /30 point-to-point link: (.1 side, .2 side) and prefix length 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct P2p {
    /// Address of the upstream end.
    pub up: Ipv4Addr,
    /// Address of the downstream end.
    pub down: Ipv4Addr,
}

/// Sequential allocator of /30 links inside a block.
#[derive(Debug, Clone)]
struct Alloc {
    base: u32,
    next: u32,
    size: u32,
}

impl Alloc {
    fn new(base: Ipv4Addr, size: u32) -> Alloc {
        Alloc {
            base: u32::from(base),
            next: 0,
            size,
        }
    }
    fn p2p(&mut self) -> Result<P2p, String> {
        if self.next + 4 > self.size {
            return Err("address block exhausted".into());
        }
        let b = self.base + self.next;
        self.next += 4;
        Ok(P2p {
            up: Ipv4Addr::from(b + 1),
            down: Ipv4Addr::from(b + 2),
        })
    }
}

/// The lab's home block (router, WLAN, tunnels, core links).
pub const HOME_BLOCK: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 17);
/// The phones' WLAN.
pub const WLAN: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 100, 0), 24);
/// Most nodes a topology holds: each gets a /23 of 198.18.128.0/17 (its
/// country/AS block: uplink, censor link and up to 8 hop links need at most
/// 40 addresses) and a /30 of [`TUNNELS`]' /24, so 64. The paper's campaign
/// (PAM 2016) used 28 countries.
pub const MAX_NODES: usize = 64;
/// Tunnel inner addresses (a /30 per node).
pub const TUNNELS: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 0);
/// The phones' resolver: an anycast address served in every country by the
/// node's first ISP hop, so a phone's DNS answers come via its node.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 18, 98, 53);
/// Root-namespace management links to the nodes' SSH servers (one /30 each).
pub const MGMT: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 19, 252, 0), 22);

/// The IPv6 twin prefix: every lab IPv4 address `a.b.c.d` has the IPv6
/// twin `fd00:1ab::a.b.c.d` (this /96 followed by the 32 IPv4 bits), and an
/// IPv4 prefix of length `l` the twin prefix of length `l + 96`, so the
/// dual-stack plan, routes and mmdb follow the IPv4 plan mechanically.
pub const V6_PREFIX: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x1ab, 0, 0, 0, 0, 0, 0);

/// The IPv6 twin of a lab IPv4 address (see [`V6_PREFIX`]).
pub fn v6(a: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(V6_PREFIX) | u128::from(u32::from(a)))
}

/// The IPv6 twin of an IPv4 prefix: address and length + 96.
pub fn v6_net(a: Ipv4Addr, len: u8) -> (Ipv6Addr, u8) {
    (v6(a), len.saturating_add(96).min(128))
}

/// The IPv6 twin of an `ip` argument: an IPv4 address or `addr/len`
/// becomes its twin, anything else (keywords, interface names) is kept.
pub fn v6_token(tok: &str) -> Option<String> {
    if let Ok(a) = tok.parse::<Ipv4Addr>() {
        return Some(v6(a).to_string());
    }
    let (a, l) = tok.split_once('/')?;
    let (a, l) = (a.parse::<Ipv4Addr>().ok()?, l.parse::<u8>().ok()?);
    let (n, l) = v6_net(a, l);
    Some(format!("{n}/{l}"))
}

/// Addresses of one node and its chain.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    /// Block (country/AS) of the node.
    pub block: (Ipv4Addr, u8),
    /// Node ↔ first hop (or censor) link; `down` is the node's uplink address.
    pub uplink: P2p,
    /// Censor ↔ first hop link when a censor sits in front of this node.
    pub censor_link: Option<P2p>,
    /// Links of the hop chain, from the first hop upward; the last one
    /// connects the top hop to the core (`up` = core side).
    pub chain: Vec<P2p>,
    /// Tunnel inner addresses (router side = up, node side = down).
    pub tunnel: P2p,
    /// Routing table on the router.
    pub table: u32,
    /// WireGuard listen port on the node.
    pub port: u16,
}

/// Addresses of one data centre.
#[derive(Debug, Clone, Serialize)]
pub struct DcPlan {
    /// Block of the data centre.
    pub block: (Ipv4Addr, u8),
    /// Chain links from the data centre upward; the last connects to the core
    /// (with multipath: the last two connect two parallel hops to the core,
    /// and `mp_down` connects them to the hop below).
    pub chain: Vec<P2p>,
    /// Multipath: links between each parallel hop and the hop below.
    pub mp_down: Vec<P2p>,
    /// Server LAN (a /24 on the data centre's loopback).
    pub lan: Ipv4Addr,
    /// Backend address per app id.
    pub apps: BTreeMap<String, Ipv4Addr>,
    /// Noise host address.
    pub noise: Option<Ipv4Addr>,
}

/// The address plan of a topology.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Router ↔ core link (`up` = core, `down` = router).
    pub router_uplink: P2p,
    /// Per node, in declaration order.
    pub nodes: Vec<NodePlan>,
    /// Per data centre, in declaration order.
    pub dcs: Vec<DcPlan>,
    /// Phone WLAN addresses, in declaration order.
    pub phones: Vec<Ipv4Addr>,
    /// Router WLAN address (the phones' gateway).
    pub gateway: Ipv4Addr,
}

impl Plan {
    /// Derives all addresses of `t`.
    pub fn new(t: &Topology) -> Result<Plan, String> {
        let mut home = Alloc::new(HOME_BLOCK.0, 1 << 12);
        let router_uplink = home.p2p()?;
        let mut nodes = Vec::new();
        for (i, n) in t.nodes.iter().enumerate() {
            let base = Ipv4Addr::new(198, 18, 128 + 2 * i as u8, 0);
            let mut a = Alloc::new(base, 2 * 256);
            let uplink = a.p2p()?;
            let censor_link = match &t.censor {
                Some(c) if c.node == n.name => Some(a.p2p()?),
                _ => None,
            };
            let mut chain = Vec::new();
            for _ in 1..n.hops {
                chain.push(a.p2p()?);
            }
            chain.push(a.p2p()?);
            let tb = u32::from(TUNNELS) + 4 * i as u32;
            nodes.push(NodePlan {
                block: (base, 23),
                uplink,
                censor_link,
                chain,
                tunnel: P2p {
                    up: Ipv4Addr::from(tb + 1),
                    down: Ipv4Addr::from(tb + 2),
                },
                table: 100 + i as u32,
                port: 51820,
            });
        }
        let mut dcs = Vec::new();
        for (k, d) in t.datacenters.iter().enumerate() {
            let base = Ipv4Addr::new(198, 19, 8 * k as u8, 0);
            let mut a = Alloc::new(base, 7 * 256);
            let mut chain = Vec::new();
            for _ in 0..d.hops {
                chain.push(a.p2p()?);
            }
            // The core-facing link(s).
            chain.push(a.p2p()?);
            let mut mp_down = Vec::new();
            if d.multipath {
                chain.push(a.p2p()?);
                mp_down.push(a.p2p()?);
                mp_down.push(a.p2p()?);
            }
            let lan = Ipv4Addr::new(198, 19, 8 * k as u8 + 7, 0);
            let mut apps = BTreeMap::new();
            for (j, app) in d.apps.iter().enumerate() {
                apps.insert(
                    app.clone(),
                    Ipv4Addr::new(198, 19, 8 * k as u8 + 7, 10 + j as u8),
                );
            }
            let noise = d
                .noise
                .then(|| Ipv4Addr::new(198, 19, 8 * k as u8 + 7, 200));
            dcs.push(DcPlan {
                block: (base, 21),
                chain,
                mp_down,
                lan,
                apps,
                noise,
            });
        }
        let phones = (0..t.phones.len())
            .map(|i| Ipv4Addr::new(198, 18, 100, 2 + i as u8))
            .collect();
        Ok(Plan {
            router_uplink,
            nodes,
            dcs,
            phones,
            gateway: Ipv4Addr::new(198, 18, 100, 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_parses_and_plans_lab_addresses_only() {
        let t = Topology::load(&Topology::demo_path()).unwrap();
        lab_addresses_only(&t);
    }

    /// lab/scale.yaml: 8 phone pairs, 16 nodes, every address its own.
    #[test]
    fn the_scale_lab_holds_eight_pairs() {
        let t = Topology::load(&matador::source_dir().join("lab/scale.yaml")).unwrap();
        assert_eq!((t.phones.len(), t.nodes.len()), (16, 16));
        lab_addresses_only(&t);
    }

    /// The most nodes a topology holds, each with the longest hop chain and
    /// one behind a censor, still get addresses of their own; one more is
    /// refused by name.
    #[test]
    fn sixty_four_nodes_fit_and_sixty_five_do_not() {
        let mut t = Topology::load(&Topology::demo_path()).unwrap();
        let proto = t.nodes[0].clone();
        t.nodes = (0..MAX_NODES)
            .map(|i| NodeDecl {
                name: format!("n-{i}"),
                hops: 8,
                ..proto.clone()
            })
            .collect();
        for p in &mut t.phones {
            p.node = "n-0".into();
        }
        if let Some(c) = &mut t.censor {
            c.node = format!("n-{}", MAX_NODES - 1);
        }
        t.validate().unwrap();
        lab_addresses_only(&t);
        t.nodes.push(NodeDecl {
            name: "n-64".into(),
            ..proto
        });
        let e = t.validate().unwrap_err();
        assert!(e.contains("1 to 64 nodes"), "{e}");
    }

    fn lab_addresses_only(t: &Topology) {
        let p = Plan::new(t).unwrap();
        let mut all: Vec<Ipv4Addr> = vec![p.router_uplink.up, p.router_uplink.down, p.gateway];
        all.extend(&p.phones);
        for n in &p.nodes {
            all.extend([n.uplink.up, n.uplink.down, n.tunnel.up, n.tunnel.down]);
            all.extend(n.censor_link.iter().flat_map(|l| [l.up, l.down]));
            all.extend(n.chain.iter().flat_map(|l| [l.up, l.down]));
            // Every address of a node inside the node's own block.
            let (b, len) = n.block;
            let mask = u32::MAX << (32 - len);
            let inside = |a: &Ipv4Addr| u32::from(*a) & mask == u32::from(b);
            assert!(
                inside(&n.uplink.down) && n.chain.iter().all(|l| inside(&l.up) && inside(&l.down))
            );
        }
        for d in &p.dcs {
            all.extend(d.chain.iter().flat_map(|l| [l.up, l.down]));
            all.extend(d.apps.values());
        }
        let set: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len(), "addresses unique");
        assert!(all.iter().all(|a| lab_address(IpAddr::V4(*a))));
        assert!(t.nodes.len() >= 2 && t.phones.len() >= 2);
        let six: std::collections::BTreeSet<_> = all.iter().map(|a| v6(*a)).collect();
        assert_eq!(six.len(), all.len(), "IPv6 twins unique");
        assert!(six.iter().all(|a| lab_address(IpAddr::V6(*a))));
    }

    #[test]
    fn ipv6_twins_follow_the_ipv4_plan() {
        let a = Ipv4Addr::new(198, 18, 100, 2);
        assert_eq!(v6(a).to_string(), "fd00:1ab::c612:6402");
        assert_eq!(
            v6_token("198.18.128.0/21").unwrap(),
            "fd00:1ab::c612:8000/117"
        );
        assert_eq!(v6_token("198.18.98.53").unwrap(), "fd00:1ab::c612:6235");
        assert_eq!(v6_token("default"), None);
        assert_eq!(v6_token("e0"), None);
        assert_eq!(v6_token("1.2.3/4"), None);
    }

    #[test]
    fn bad_topologies_name_the_problem() {
        let p = Path::new("x.yaml");
        let base = "name: x\ncountry: DE\nasn: 1\nphones: [{name: a, node: n}]\nnodes: [{name: n, country: DE, asn: 2}]\n";
        assert!(Topology::parse(base, p).is_ok());
        let e = Topology::parse(&base.replace("node: n}", "node: q}"), p).unwrap_err();
        assert!(e.to_string().contains("unknown node"), "{e}");
        let e = Topology::parse(
            &format!("{base}censor: {{node: n, forge_dns: {{a.b: 8.8.8.8}}}}\n"),
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let race = |r: &str| format!("{base}censor: {{node: n, race: {{{r}}}}}\n");
        let t = Topology::parse(&race("dns: {a.b: 198.18.250.7}, keywords: [k]"), p).unwrap();
        let r = t.censor.unwrap().race.unwrap();
        assert_eq!((r.ttl, r.ip_id), (50, 0x2b2b));
        let e = Topology::parse(&race("dns: {a.b: 8.8.8.8}"), p).unwrap_err();
        assert!(e.to_string().contains("8.8.8.8 outside"), "{e}");
        let e = Topology::parse(&race("keywords: ['']"), p).unwrap_err();
        assert!(e.to_string().contains("bad keyword"), "{e}");
        let e = Topology::parse(&race("ttl: 300"), p).unwrap_err();
        assert!(e.to_string().contains("x.yaml"), "{e}");
        let e = Topology::parse("name: [", p).unwrap_err();
        assert!(e.to_string().contains("x.yaml"), "{e}");
    }
}
