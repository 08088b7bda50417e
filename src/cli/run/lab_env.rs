//! `matador run --lab`: brings the virtual lab up through its public entry
//! point ([`crate::lab::build::Lab::up`], the code of `matador lab up`) and
//! builds the campaign's world from its `lab.json` only: phones over ADB at
//! `phones[].adb`, nodes over SSH (the node agent) at `nodes[].ssh`, routes
//! through `net/` on the router namespace, paths from the nodes' namespaces.

use crate::campaign::captures::{Captures, NodeCaptures, RouterCaptures};
use crate::campaign::devices::DevicePhones;
use crate::campaign::pathstep::{PathNode, PathStep};
use crate::campaign::runner::Env;
use crate::campaign::vantage::{NetVantage, NodeRoute, PhoneRoute};
use crate::lab::build::{DEFAULT_STATE_DIR, Lab, UpOptions};
use crate::lab::desc::LabDesc;
use crate::scenario::LoadedScenario;
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Brings up the lab the scenario's `lab:` section describes (and returns
/// its topology)
/// ([`super::lab_topology::topology_for`]; torn down when the returned
/// [`Lab`] is dropped or [`Lab::down`] is called). `cancel` aborts the
/// bring-up (Ctrl-C).
/// A resumed campaign (`resume`: its folder) uses the topology recorded in
/// its `lab-topology.yaml`, so it continues in the same lab.
pub fn up(
    ls: &LoadedScenario,
    resume: Option<&Path>,
    cancel: Arc<AtomicBool>,
) -> anyhow::Result<(Lab, crate::lab::topology::Topology)> {
    let (topology, path) = match resume.map(|d| d.join(super::LAB_TOPOLOGY)) {
        Some(p) if p.is_file() => {
            let mut t = crate::lab::topology::Topology::load(&p)?;
            // The record keeps no phone numbers: the phones' accounts come
            // back from where the first run took them (lab base, profiles).
            let (fresh, _) = super::lab_topology::topology_for(ls)?;
            for ph in &mut t.phones {
                if let Some(f) = fresh.phones.iter().find(|f| f.name == ph.name) {
                    ph.accounts = f.accounts.clone();
                }
            }
            (t, p)
        }
        _ => super::lab_topology::topology_for(ls)?,
    };
    let lab = Lab::up(UpOptions {
        topology: topology.clone(),
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        exe: std::env::current_exe().context("own executable")?,
        phones: true,
        ssh: true,
        cancel: Some(cancel),
    })
    .with_context(|| format!("lab up ({})", path.display()))?;
    Ok((lab, topology))
}

/// The router's interface towards one phone: the bridge port of `wlan_if`
/// whose veth peer lives in the phone's namespace (`ip -o link show master`
/// lists it with `link-netns <ns>`).
fn phone_port(router_ns: &str, wlan_if: &str, phone_ns: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", router_ns, "-o", "link", "show", "master", wlan_if])
        .output()
        .context("ip link show")?;
    if !out.status.success() {
        bail!(
            "ip -n {router_ns} link show master {wlan_if}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
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
    bail!("router {router_ns}: no port of {wlan_if} leads to namespace {phone_ns}")
}

/// The campaign's world from a lab description.
pub fn env(
    ls: &LoadedScenario,
    desc: &LabDesc,
    lab_dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(Env, super::Agents)> {
    let sc = &ls.scenario;
    let router = desc.router().context("lab.json has no router")?;
    let router_ns = router.netns.clone();
    // Phones: the profiles (accounts, model), reached at the lab's ADB address.
    let mut phones = Vec::new();
    let mut routes = HashMap::new();
    let mut ifaces = HashMap::new();
    let resolver: std::net::IpAddr = desc
        .resolver
        .parse()
        .with_context(|| format!("lab.json resolver {:?}", desc.resolver))?;
    for p in &sc.phones {
        let lp = desc
            .phone(&p.id)
            .with_context(|| format!("the lab has no phone {}", p.id))?;
        let mut prof = crate::device::profile::PhoneProfile::load(&ls.phone_profile(&p.id)?)?;
        prof.id = p.id.clone();
        prof.address = Some(lp.adb.clone());
        prof.serial = Some(lp.adb.clone());
        prof.direct = true;
        // The lab's phones keep each other in their contacts under the lab
        // names (lab.json `phones[].name`), which is what UI navigation
        // (WeChat: no deep link) looks for.
        prof.display_name = Some(lp.name.clone());
        phones.push(prof);
        routes.insert(
            p.id.clone(),
            PhoneRoute {
                addr: lp
                    .addr
                    .parse()
                    .with_context(|| format!("lab.json phone {} addr", p.id))?,
                priority: lp.rule_priority,
                wlan_if: desc.wlan_if.clone(),
                resolver: Some(std::net::SocketAddr::new(resolver, 53)),
                ask_from: lp.netns.clone(),
            },
        );
        let port = match (&router_ns, &lp.netns) {
            (Some(r), Some(n)) => phone_port(r, &desc.wlan_if, n)?,
            _ => bail!("phone {}: per-phone router interface unknown", p.id),
        };
        ifaces.insert(p.id.clone(), port);
    }
    let apps_dir = ls.device_apps_dir()?;
    let apps = crate::device::profile::AppProfile::load_dir(&apps_dir)?;
    // Nodes: tunnels (routing), SSH (agent), namespaces (paths).
    let mut nodes = HashMap::new();
    let mut agents = HashMap::new();
    let mut path_nodes = HashMap::new();
    let mut uplinks = std::collections::BTreeSet::new();
    let mut probe_nodes = std::collections::BTreeMap::new();
    let program = desc
        .node_matador
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "matador".into());
    for n in desc.nodes.iter().filter(|n| n.kind == "node") {
        let t = n
            .tunnel
            .as_ref()
            .with_context(|| format!("lab.json node {} has no tunnel", n.name))?;
        nodes.insert(
            n.name.clone(),
            NodeRoute {
                table: t.table,
                tunnel_if: t.router_if.clone(),
                peer: t
                    .node_addr
                    .parse()
                    .with_context(|| format!("node {} tunnel address", n.name))?,
            },
        );
        uplinks.insert(t.node_uplink.clone());
        probe_nodes.insert(
            n.name.clone(),
            crate::probes::step::ProbeNode {
                netns: n
                    .netns
                    .clone()
                    .with_context(|| format!("lab.json node {} has no namespace", n.name))?,
                country: n.country.clone(),
                asn: n.asn,
                uplink: Some(t.node_uplink.clone()),
            },
        );
        let s = n
            .ssh
            .as_ref()
            .with_context(|| format!("lab.json node {} has no SSH endpoint", n.name))?;
        let ssh: crate::net::ssh::SshTarget = serde_json::from_value(serde_json::json!({
            "node": n.name, "host": s.host, "port": s.port, "user": s.user,
            "identity": s.identity, "known_hosts": s.known_hosts,
        }))?;
        let dir = lab_dir.join("agent").join(&n.name);
        let mut cfg = crate::net::agent::client::NodeConfig::new(ssh, dir.display().to_string());
        cfg.agent_program = program.clone();
        agents.insert(n.name.clone(), cfg);
        path_nodes.insert(
            n.name.clone(),
            PathNode {
                netns: n.netns.clone(),
                addr: n
                    .addr
                    .parse()
                    .with_context(|| format!("node {} address", n.name))?,
            },
        );
    }
    for c in sc.countries.values() {
        for n in c {
            if !nodes.contains_key(n) {
                bail!("scenario node {n} is not a node of the lab");
            }
        }
    }
    // One uplink name for all nodes, else every interface.
    let node_if = match uplinks.len() {
        1 => uplinks.into_iter().next().unwrap_or_default(),
        _ => "any".into(),
    };
    // The campaign's routing state lives in the lab folder: it goes with the lab.
    let state = crate::net::state::StateFile::create(
        &lab_dir.join(format!("campaign-{}.json", std::process::id())),
        &sc.name,
        serde_json::json!({"scenario": sc.name, "lab": desc.id}),
    )?;
    let dns_name = sc
        .router
        .as_ref()
        .map(|r| r.dns_check_name.clone())
        .unwrap_or_else(|| "g.whatsapp.net".into());
    let with_nodes = sc
        .capture
        .points
        .contains(&crate::scenario::CapturePointKind::Node);
    let configs: super::Agents = agents.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let captures = Captures {
        router: RouterCaptures::new(router_ns.clone(), ifaces, sc.capture.snaplen),
        nodes: with_nodes.then(|| NodeCaptures::new(rt.handle().clone(), agents, node_if)),
    };
    let env = Env {
        phones: Arc::new(DevicePhones::new(rt.handle().clone(), phones, apps)),
        vantage: Arc::new(NetVantage::new(router_ns, nodes, routes, dns_name, state)),
        capture: Arc::new(captures),
        paths: Some(Arc::new(PathStep::new(path_nodes, true))),
        probes: Some(Arc::new(
            crate::probes::step::ProbeStep::new(probe_nodes, None, true).with(
                Some(std::net::SocketAddr::new(resolver, 53)),
                None,
                crate::probes::limit::Limits::default(),
                Some(apps_dir.clone()),
            ),
        )),
    };
    Ok((env, configs))
}
