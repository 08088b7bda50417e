//! The one builder of a campaign's [`Env`], for a real lab and for the
//! virtual one: phones over ADB ([`super::devices::DevicePhones`]), routes
//! through `net/` policy routing ([`super::vantage::NetVantage`]), router
//! captures with libpcap, and everything on a node (captures, paths,
//! probes) through its agent ([`super::agents::AgentPool`]).
//!
//! The two labs differ only in where things are, which a [`World`]
//! describes: [`World::from_scenario`] reads it from a real-lab scenario
//! (`router:` and `nodes:` sections), [`World::from_lab`] from the virtual
//! lab's `lab.json`. [`World::build`] then makes the same [`Env`] from
//! either, and refuses a scenario step the world cannot run (a node without
//! an agent, probes without a control country) before anything starts.

use super::CampaignError;
use super::agents::AgentPool;
use super::captures::{Captures, NodeCaptures, RouterCaptures};
use super::devices::DevicePhones;
use super::pathstep::PathStep;
use super::runner::Env;
use super::vantage::{NetVantage, NodeRoute, PhoneRoute};
use crate::device::profile::PhoneProfile;
use crate::net::agent::client::NodeConfig;
use crate::net::labdesc::LabDesc;
use crate::net::ssh::SshTarget;
use crate::net::state::StateFile;
use crate::probes::step::{ProbeNode, ProbeStep};
use crate::scenario::{CapturePointKind, LoadedScenario};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// Agent configuration per node name (provenance asks each node's OS).
pub type Agents = BTreeMap<String, NodeConfig>;

/// A phone: its profile (ADB address set) and where the router sees it.
#[derive(Debug, Clone)]
pub struct PhonePlace {
    /// Profile (model, accounts, ADB serial/address).
    pub profile: PhoneProfile,
    /// Address, rule priority, WLAN interface, resolver.
    pub route: PhoneRoute,
    /// The router's interface towards this phone alone (capture point).
    pub router_if: String,
}

/// A remote node.
#[derive(Debug, Clone)]
pub struct NodePlace {
    /// Its tunnel on the router.
    pub route: NodeRoute,
    /// How to start its agent (absent: node steps cannot run).
    pub agent: Option<NodeConfig>,
    /// Its public address (target of the other side's trace), if known.
    pub addr: Option<IpAddr>,
    /// Country (ISO alpha-2; probes' control choice and metadata).
    pub country: String,
    /// AS number, if known.
    pub asn: Option<u32>,
    /// Interface the probes capture on, if any.
    pub uplink: Option<String>,
}

/// Where phones, router and nodes are.
#[derive(Debug)]
pub struct World {
    /// The scenario's phones.
    pub phones: BTreeMap<String, PhonePlace>,
    /// The router's namespace (`None`: this machine is the router).
    pub router_ns: Option<String>,
    /// A name the resolvers must answer (connectivity check).
    pub dns_check_name: String,
    /// Every node the scenario may use.
    pub nodes: BTreeMap<String, NodePlace>,
    /// Interface the node captures use.
    pub node_capture_if: String,
    /// Where the campaign's routing objects are recorded for teardown.
    pub state: StateFile,
    /// Paths and probes refuse targets outside the virtual lab's space.
    pub lab_only: bool,
    /// Address ranges never judged bogons by the probes (the scenario's
    /// `exempt_networks`; the virtual lab adds its own space).
    pub exempt: Vec<ipnetwork::IpNetwork>,
    /// Resolver the probes ask (absent: each node's own).
    pub resolver: Option<SocketAddr>,
}

fn setup(message: impl Into<String>) -> CampaignError {
    CampaignError::Setup(message.into())
}

fn load_profile(ls: &LoadedScenario, id: &str) -> Result<PhoneProfile, CampaignError> {
    let mut prof = PhoneProfile::load(&ls.phone_profile(id).map_err(|e| setup(e.to_string()))?)
        .map_err(|e| setup(e.to_string()))?;
    prof.id = id.to_string();
    Ok(prof)
}

/// The country of each node in the scenario's `countries:`.
fn node_countries(ls: &LoadedScenario) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (cc, nodes) in &ls.scenario.countries {
        for n in nodes {
            out.entry(n.clone()).or_insert_with(|| cc.to_string());
        }
    }
    out
}

impl World {
    /// A real lab from its scenario: the router's `router:` section (this
    /// machine, or its `netns`), the nodes' `nodes:` entries (tunnels set
    /// up beforehand, agents over SSH), phones on the adb server.
    pub fn from_scenario(ls: &LoadedScenario, state: StateFile) -> Result<World, CampaignError> {
        let sc = &ls.scenario;
        let Some(router) = &sc.router else {
            return Err(setup(format!(
                "scenario {}: a real-lab run needs a `router:` section (phones' addresses, \
                 interfaces and rule priorities); see docs/campaign.md",
                sc.name
            )));
        };
        let base = ls.path.parent().unwrap_or(Path::new("."));
        let mut phones = BTreeMap::new();
        for p in &sc.phones {
            let Some(r) = router.phones.get(&p.id) else {
                return Err(setup(format!(
                    "router.phones has no entry for phone {}",
                    p.id
                )));
            };
            let route = PhoneRoute {
                addr: r.addr,
                priority: r.priority,
                wlan_if: r.interface.clone(),
                resolver: r.resolver,
                ask_from: None,
            };
            let place = PhonePlace {
                profile: load_profile(ls, &p.id)?,
                route,
                router_if: r.interface.clone(),
            };
            phones.insert(p.id.clone(), place);
        }
        let countries = node_countries(ls);
        let mut nodes = BTreeMap::new();
        for (name, n) in &sc.nodes {
            let (Some(table), Some(tunnel_if), Some(peer)) = (n.table, &n.tunnel_if, n.tunnel_peer)
            else {
                return Err(setup(format!(
                    "node {name}: a real-lab run needs `table`, `tunnel_if` and `tunnel_peer` \
                     (the tunnel to it is set up beforehand)"
                )));
            };
            let agent = match (&n.identity, &n.known_hosts) {
                (Some(identity), Some(known_hosts)) => {
                    let mut ssh = SshTarget::new(
                        name.clone(),
                        n.host.clone(),
                        n.user.clone(),
                        base.join(identity),
                        base.join(known_hosts),
                    );
                    ssh.port = n.port;
                    Some(NodeConfig::new(ssh, n.agent_dir.clone()))
                }
                _ => None,
            };
            let place = NodePlace {
                route: NodeRoute {
                    table,
                    tunnel_if: tunnel_if.clone(),
                    peer,
                },
                agent,
                addr: public_addr(&n.host, n.port),
                country: countries.get(name).cloned().unwrap_or_default(),
                asn: None,
                uplink: None,
            };
            nodes.insert(name.clone(), place);
        }
        Ok(World {
            phones,
            router_ns: router.netns.clone(),
            dns_check_name: router.dns_check_name.clone(),
            nodes,
            node_capture_if: router.node_capture_if.clone(),
            state,
            lab_only: false,
            exempt: ls.scenario.exempt_networks(),
            resolver: None,
        })
    }

    /// A virtual lab from its `lab.json`: phones at `phones[].adb`, the
    /// router's namespace, nodes over SSH at `nodes[].ssh` (agent state in
    /// `lab_dir/agent/<node>`), tunnels at `nodes[].tunnel`.
    pub fn from_lab(
        ls: &LoadedScenario,
        desc: &LabDesc,
        lab_dir: &Path,
        state: StateFile,
    ) -> Result<World, CampaignError> {
        let sc = &ls.scenario;
        let router = desc
            .router()
            .ok_or_else(|| setup("lab.json has no router"))?;
        let resolver: IpAddr = desc
            .resolver
            .parse()
            .map_err(|_| setup(format!("lab.json resolver {:?}", desc.resolver)))?;
        let resolver = SocketAddr::new(resolver, 53);
        let mut phones = BTreeMap::new();
        for p in &sc.phones {
            let lp = desc
                .phone(&p.id)
                .ok_or_else(|| setup(format!("the lab has no phone {}", p.id)))?;
            let mut profile = load_profile(ls, &p.id)?;
            profile.address = Some(lp.adb.clone());
            profile.serial = Some(lp.adb.clone());
            profile.direct = true;
            // The lab's phones keep each other in their contacts under the
            // lab names, which UI navigation (WeChat: no deep link) looks for.
            profile.display_name = Some(lp.name.clone());
            let route = PhoneRoute {
                addr: lp
                    .addr
                    .parse()
                    .map_err(|_| setup(format!("lab.json phone {} addr {:?}", p.id, lp.addr)))?,
                priority: lp.rule_priority,
                wlan_if: desc.wlan_if.clone(),
                resolver: Some(resolver),
                ask_from: lp.netns.clone(),
            };
            let router_if = match (&router.netns, &lp.netns) {
                (Some(r), Some(n)) => phone_port(r, &desc.wlan_if, n)?,
                _ => {
                    return Err(setup(format!(
                        "phone {}: per-phone router interface unknown",
                        p.id
                    )));
                }
            };
            phones.insert(
                p.id.clone(),
                PhonePlace {
                    profile,
                    route,
                    router_if,
                },
            );
        }
        let mut nodes = BTreeMap::new();
        let mut uplinks = std::collections::BTreeSet::new();
        for n in desc.nodes.iter().filter(|n| n.kind == "node") {
            let place = lab_node(desc, n, lab_dir)?;
            uplinks.extend(place.uplink.clone());
            nodes.insert(n.name.clone(), place);
        }
        for n in sc.countries.values().flatten() {
            if !nodes.contains_key(n) {
                return Err(setup(format!("scenario node {n} is not a node of the lab")));
            }
        }
        // One uplink name for all nodes, else every interface.
        let node_capture_if = match uplinks.len() {
            1 => uplinks.into_iter().next().unwrap_or_default(),
            _ => "any".into(),
        };
        let dns_check_name = sc
            .router
            .as_ref()
            .map(|r| r.dns_check_name.clone())
            .unwrap_or_else(|| "g.whatsapp.net".into());
        Ok(World {
            phones,
            router_ns: router.netns.clone(),
            dns_check_name,
            nodes,
            node_capture_if,
            state,
            lab_only: true,
            // The probe step's lab mode adds the lab's own space.
            exempt: ls.scenario.exempt_networks(),
            resolver: Some(resolver),
        })
    }

    /// Refuses what the scenario asks and this world cannot do: node
    /// captures, paths or probes on a node without an agent; probes without
    /// a node outside the sender's country (the control).
    pub fn check(&self, ls: &LoadedScenario) -> Result<(), CampaignError> {
        let sc = &ls.scenario;
        let used: Vec<&String> = sc.countries.values().flatten().collect();
        let wants = [
            (
                "capture.points: node",
                sc.capture.points.contains(&CapturePointKind::Node),
            ),
            ("steps.paths", sc.steps.paths),
            ("steps.probes", sc.steps.probes),
        ];
        for (what, on) in wants {
            if !on {
                continue;
            }
            for n in &used {
                let has = self.nodes.get(*n).is_some_and(|p| p.agent.is_some());
                if !has {
                    return Err(setup(format!(
                        "{what} needs the node agent on node {n}: give it `identity` and \
                         `known_hosts` under `nodes:` (or turn it off in the scenario)"
                    )));
                }
            }
        }
        if sc.steps.probes && sc.countries.len() < 2 {
            return Err(setup(
                "steps.probes needs nodes in a second country (the control vantage)",
            ));
        }
        Ok(())
    }

    /// The campaign's [`Env`] and the nodes' agent configurations.
    pub fn build(
        self,
        ls: &LoadedScenario,
        rt: &tokio::runtime::Handle,
    ) -> Result<(Env, Agents), CampaignError> {
        self.check(ls)?;
        let sc = &ls.scenario;
        // The profiles the scenario loaded (the analysis uses the same),
        // in id order as the device layer listed them.
        let mut apps = ls.profiles.apps.clone();
        apps.sort_by(|a, b| a.id.cmp(&b.id));
        let agents: Agents = self
            .nodes
            .iter()
            .filter_map(|(k, n)| n.agent.clone().map(|a| (k.clone(), a)))
            .collect();
        let pool = Arc::new(AgentPool::new(
            rt.clone(),
            agents.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
        let ifaces: HashMap<String, String> = self
            .phones
            .iter()
            .map(|(k, p)| (k.clone(), p.router_if.clone()))
            .collect();
        let routes: HashMap<String, PhoneRoute> = self
            .phones
            .iter()
            .map(|(k, p)| (k.clone(), p.route.clone()))
            .collect();
        let node_routes: HashMap<String, NodeRoute> = self
            .nodes
            .iter()
            .map(|(k, n)| (k.clone(), n.route.clone()))
            .collect();
        let with_nodes = sc.capture.points.contains(&CapturePointKind::Node);
        let captures = Captures {
            router: RouterCaptures::new(self.router_ns.clone(), ifaces, sc.capture.snaplen),
            nodes: with_nodes
                .then(|| NodeCaptures::new(pool.clone(), self.node_capture_if.clone())),
        };
        let phones: Vec<PhoneProfile> = self.phones.into_values().map(|p| p.profile).collect();
        let paths = sc.steps.paths.then(|| {
            let addrs = self
                .nodes
                .iter()
                .map(|(k, n)| (k.clone(), n.addr))
                .collect();
            Arc::new(PathStep::new(addrs, pool.clone(), self.lab_only))
                as Arc<dyn super::env::StepHook>
        });
        let probes = sc.steps.probes.then(|| {
            let nodes = self
                .nodes
                .iter()
                .map(|(k, n)| {
                    let p = ProbeNode {
                        country: n.country.clone(),
                        asn: n.asn,
                        uplink: n.uplink.clone(),
                    };
                    (k.clone(), p)
                })
                .collect();
            let step = ProbeStep::new(nodes, pool.clone(), None, self.lab_only)
                .exempting(self.exempt.clone())
                .with(
                    self.resolver,
                    None,
                    crate::probes::limit::Limits::default(),
                    Some(Arc::new(ls.profiles.clone())),
                );
            Arc::new(step) as Arc<dyn super::env::StepHook>
        });
        let vantage = NetVantage::new(
            self.router_ns,
            node_routes,
            routes,
            self.dns_check_name,
            self.state,
        );
        let env = Env {
            phones: Arc::new(DevicePhones::new(rt.clone(), phones, apps)),
            vantage: Arc::new(vantage),
            capture: Arc::new(captures),
            paths,
            probes,
        };
        Ok((env, agents))
    }
}

/// A node's address from its host (an address, or a name resolved now;
/// `None` when it does not resolve: no direct-path trace to it).
fn public_addr(host: &str, port: u16) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    host.parse()
        .ok()
        .or_else(|| (host, port).to_socket_addrs().ok()?.next().map(|a| a.ip()))
}

/// The agent of a `lab.json` node: its SSH endpoint, the lab's node
/// binary (`node_matador`), agent state in `dir`. `None` without SSH.
pub fn lab_agent(
    desc: &LabDesc,
    n: &crate::net::labdesc::NodeDesc,
    dir: &Path,
) -> Option<NodeConfig> {
    let s = n.ssh.as_ref()?;
    let mut ssh = SshTarget::new(
        n.name.clone(),
        s.host.clone(),
        s.user.clone(),
        s.identity.clone(),
        s.known_hosts.clone(),
    );
    ssh.port = s.port;
    let mut cfg = NodeConfig::new(ssh, dir.display().to_string());
    if let Some(p) = &desc.node_matador {
        cfg.agent_program = p.display().to_string();
    }
    Some(cfg)
}

/// A virtual-lab node from its `lab.json` entry.
fn lab_node(
    desc: &LabDesc,
    n: &crate::net::labdesc::NodeDesc,
    lab_dir: &Path,
) -> Result<NodePlace, CampaignError> {
    let t = n
        .tunnel
        .as_ref()
        .ok_or_else(|| setup(format!("lab.json node {} has no tunnel", n.name)))?;
    let cfg = lab_agent(desc, n, &lab_dir.join("agent").join(&n.name))
        .ok_or_else(|| setup(format!("lab.json node {} has no SSH endpoint", n.name)))?;
    let peer = t
        .node_addr
        .parse()
        .map_err(|_| setup(format!("node {} tunnel address {:?}", n.name, t.node_addr)))?;
    Ok(NodePlace {
        route: NodeRoute {
            table: t.table,
            tunnel_if: t.router_if.clone(),
            peer,
        },
        agent: Some(cfg),
        addr: Some(
            n.addr
                .parse()
                .map_err(|_| setup(format!("node {} address {:?}", n.name, n.addr)))?,
        ),
        country: n.country.clone(),
        asn: n.asn,
        uplink: Some(t.node_uplink.clone()),
    })
}

/// The router's interface towards one phone: the bridge port of `wlan_if`
/// whose veth peer lives in the phone's namespace (`ip -o link show master`
/// lists it with `link-netns <ns>`).
fn phone_port(router_ns: &str, wlan_if: &str, phone_ns: &str) -> Result<String, CampaignError> {
    let out = std::process::Command::new("ip")
        .args(["-n", router_ns, "-o", "link", "show", "master", wlan_if])
        .output()
        .map_err(|e| setup(format!("ip link show: {e}")))?;
    if !out.status.success() {
        return Err(setup(format!(
            "ip -n {router_ns} link show master {wlan_if}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let peer_here = words
            .windows(2)
            .any(|w| w[0] == "link-netns" && w[1] == phone_ns);
        if peer_here && let Some(name) = words.get(1) {
            let name = name.trim_end_matches(':');
            return Ok(name.split('@').next().unwrap_or(name).to_string());
        }
    }
    Err(setup(format!(
        "router {router_ns}: no port of {wlan_if} leads to namespace {phone_ns}"
    )))
}
