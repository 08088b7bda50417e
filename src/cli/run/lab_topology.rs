//! The virtual lab a scenario asks for: its `lab:` section applied to a
//! base topology (`lab.topology`, else the shipped `lab/demo.yaml`).
//!
//! - nodes: the scenario's nodes, in its failover order; those the base
//!   declares keep their settings (country must agree), the others are added
//!   (2 hops, a private-use ASN); base nodes the scenario does not use are
//!   left out (less to bring up) unless the base was named explicitly;
//! - phones: the scenario's phones, of every pair (the base's declaration, else model,
//!   root and accounts from `device-profiles/phones/<id>.yaml`);
//! - apps: each must have a backend in a data centre of the base;
//! - `noise: false`: no background traffic on the phones and no noise hosts;
//! - `censor`: an on-path injector in front of the censored country's first
//!   node, racing forged DNS answers for `forge_dns` names (and their
//!   subdomains; answers from `forged_answers`, which must be lab
//!   addresses) and injected RSTs for `reset_hosts` (matched in Host/SNI);
//!   without `censor` the demo's censor is removed (a named base keeps its);
//! - `control_resolver`: an honest resolver on the lab core.

use anyhow::{Context, bail};
use matador::scenario::LoadedScenario;
use matador_lab::censor::RaceConfig;
use matador_lab::topology::{
    CensorDecl, NodeDecl, PhoneDecl, Topology, control_resolver_ok, lab_address,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Default forged answer when the scenario names none.
const DEFAULT_FORGED: Ipv4Addr = Ipv4Addr::new(198, 18, 250, 1);

/// The topology for `ls` (see the module documentation).
pub fn topology_for(ls: &LoadedScenario) -> anyhow::Result<(Topology, PathBuf)> {
    let sc = &ls.scenario;
    // No `lab:` section: the lab's defaults (noise on, no censor).
    let spec = sc.lab.clone().unwrap_or(matador::scenario::LabSpec {
        noise: true,
        ..Default::default()
    });
    let (path, named) = base_path(ls, &spec)?;
    let mut t = Topology::load(&path)?;
    let ctx = |what: String| format!("scenario {} with lab {}: {what}", sc.name, path.display());
    t.nodes = scenario_nodes(ls, &t, named, &ctx)?;
    t.phones = scenario_phones(ls, &t, &ctx)?;
    // Apps need backends.
    for app in &sc.apps {
        if !t.datacenters.iter().any(|d| d.apps.contains(app)) {
            bail!(ctx(format!("app {app} has no backend in any data centre")));
        }
    }
    if !spec.noise {
        drop_noise(&mut t);
    }
    match &spec.censor {
        Some(c) => t.censor = Some(censor(ls, c, &ctx)?),
        None if !named => t.censor = None,
        None => {
            if let Some(c) = &t.censor
                && !t.nodes.iter().any(|n| n.name == c.node)
            {
                t.censor = None;
            }
        }
    }
    if let Some(ip) = spec.control_resolver {
        match ip {
            IpAddr::V4(v4) if control_resolver_ok(v4) => t.control_resolver = Some(v4),
            _ => bail!(ctx(format!(
                "lab.control_resolver {ip}: the virtual lab serves it only inside \
                 198.18.16.0-198.18.96.255"
            ))),
        }
    }
    t.validate().map_err(|e| anyhow::anyhow!(ctx(e)))?;
    Ok((t, path))
}

/// The base topology's file and whether the scenario named it
/// (`lab.topology`, relative to the scenario), else the shipped demo lab.
fn base_path(
    ls: &LoadedScenario,
    spec: &matador::scenario::LabSpec,
) -> anyhow::Result<(PathBuf, bool)> {
    let base_dir = ls.path.parent().unwrap_or(Path::new("."));
    Ok(match &spec.topology {
        Some(p) => (base_dir.join(p), true),
        None => {
            let rel = matador::scenario::data::DEMO_LAB;
            let p = matador::scenario::data::find(&ls.path, rel)
                .with_context(|| matador::scenario::data::not_found(rel, &ls.path))?;
            (p, false)
        }
    })
}

/// The lab's nodes: the scenario's, in its order (the base's declaration,
/// else a new one with 2 hops and a free private-use ASN), then, for a
/// named base, the base's other nodes.
fn scenario_nodes(
    ls: &LoadedScenario,
    t: &Topology,
    named: bool,
    ctx: &dyn Fn(String) -> String,
) -> anyhow::Result<Vec<NodeDecl>> {
    let sc = &ls.scenario;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (cc, nodes) in &sc.countries {
        for n in nodes {
            if !wanted.iter().any(|(w, _)| w == n) {
                wanted.push((n.clone(), cc.to_string()));
            }
        }
    }
    let mut used_asns: BTreeSet<u32> = t
        .nodes
        .iter()
        .map(|n| n.asn)
        .chain(t.datacenters.iter().map(|d| d.asn))
        .chain([t.asn])
        .collect();
    let mut nodes = Vec::new();
    for (name, cc) in &wanted {
        match t.nodes.iter().find(|n| &n.name == name) {
            Some(n) if &n.country != cc => bail!(ctx(format!(
                "node {name} is in {} in the lab but under {cc} in the scenario",
                n.country
            ))),
            Some(n) => nodes.push(n.clone()),
            None => {
                let asn = (64620..65534)
                    .find(|a| !used_asns.contains(a))
                    .context("no private-use ASN left")?;
                used_asns.insert(asn);
                nodes.push(NodeDecl {
                    name: name.clone(),
                    country: cc.clone(),
                    asn,
                    org: Some(format!("Lab ISP {cc} ({name})")),
                    hops: 2,
                    dns: BTreeMap::new(),
                    throttle_kbit: None,
                    delay_ms: None,
                });
            }
        }
    }
    if named {
        for n in &t.nodes {
            if !nodes.iter().any(|x| x.name == n.name) {
                nodes.push(n.clone());
            }
        }
    }
    Ok(nodes)
}

/// The scenario's phones (A then B of each pair): the base's declaration, else
/// model, root and accounts from the phone profile; each starts on its
/// side's first node unless the base put it on one of the lab's nodes.
fn scenario_phones(
    ls: &LoadedScenario,
    t: &Topology,
    ctx: &dyn Fn(String) -> String,
) -> anyhow::Result<Vec<PhoneDecl>> {
    let sc = &ls.scenario;
    let mut phones = Vec::new();
    for (i, p) in sc.phones.iter().enumerate() {
        let mut decl = match t.phones.iter().find(|x| x.name == p.id) {
            Some(d) => d.clone(),
            None => {
                let pp = ls.phone_profile(&p.id)?;
                let prof = matador::device::profile::PhoneProfile::load(&pp)
                    .with_context(|| ctx(format!("phone {} is not in the lab", p.id)))?;
                PhoneDecl {
                    name: p.id.clone(),
                    node: String::new(),
                    apps: None,
                    background: true,
                    model: prof.model.clone(),
                    rooted: prof.rooted,
                    variant: 0,
                    accounts: prof.accounts.clone(),
                }
            }
        };
        // Start on the node of its side's first country (A: the first of
        // its pair).
        let side_a = match sc.phone_pairs.is_empty() {
            true => i == 0,
            false => sc.phone_pairs.iter().any(|[a, _]| *a == p.id),
        };
        let first = if side_a {
            sc.countries.values().next()
        } else {
            sc.countries.values().last()
        }
        .and_then(|v| v.first());
        if !t.nodes.iter().any(|n| n.name == decl.node) {
            decl.node = first.cloned().unwrap_or_default();
        }
        phones.push(decl);
    }
    Ok(phones)
}

/// `noise: false`: no background traffic on the phones, no noise hosts,
/// and no data centre left without apps.
fn drop_noise(t: &mut Topology) {
    for p in &mut t.phones {
        p.background = false;
    }
    for d in &mut t.datacenters {
        d.noise = false;
    }
    t.datacenters.retain(|d| !d.apps.is_empty());
}

/// The censor of the scenario's `lab.censor`: an on-path injector in front
/// of the censored country's first node (forged answers must be lab
/// addresses).
fn censor(
    ls: &LoadedScenario,
    c: &matador::scenario::CensorSpec,
    ctx: &dyn Fn(String) -> String,
) -> anyhow::Result<CensorDecl> {
    let sc = &ls.scenario;
    let cc = c.country.to_string();
    let node = sc
        .countries
        .get(&c.country)
        .and_then(|v| v.first())
        .with_context(|| ctx(format!("censored country {cc} has no node")))?;
    let mut answers = Vec::new();
    for a in &c.forged_answers {
        match a {
            IpAddr::V4(v4) if lab_address(*a) => answers.push(*v4),
            _ => bail!(ctx(format!(
                "lab.censor.forged_answers: {a} is not a lab address (198.18.0.0/15); \
                 the virtual lab never answers with real addresses"
            ))),
        }
    }
    if answers.is_empty() {
        answers.push(DEFAULT_FORGED);
    }
    let dns = c
        .forge_dns
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_ascii_lowercase(), answers[i % answers.len()]))
        .collect();
    Ok(CensorDecl {
        node: node.clone(),
        forge_dns: BTreeMap::new(),
        rst_keywords: Vec::new(),
        rst_syn_to: Vec::new(),
        race: Some(RaceConfig {
            dns,
            keywords: c.reset_hosts.clone(),
            ttl: 50,
            ip_id: 0x2b2b,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> anyhow::Result<Topology> {
        let tmp = tempfile::tempdir()?;
        let p = tmp.path().join("s.yaml");
        let text = format!(
            "name: t\nphones: [{{id: lab-a}}, {{id: lab-b}}]\napps: [whatsapp, line]\n\
             countries:\n  CN: [cn-1]\n  DE: [de-1, de-2]\n\
             pairs: {{explicit: [[CN, DE]]}}\nmessages: {{texts: [a, b]}}\n{extra}"
        );
        std::fs::write(&p, text)?;
        let ls = LoadedScenario::load(&p)?;
        Ok(topology_for(&ls)?.0)
    }

    #[test]
    fn scenario_nodes_noise_censor_and_control_resolver() {
        let t = load(
            "lab:\n  noise: false\n  control_resolver: 198.18.96.53\n  censor:\n    country: CN\n    \
             forge_dns: [line.me, Naver.jp]\n    forged_answers: [198.18.250.3]\n    \
             reset_hosts: [line-apps.com]\n",
        )
        .unwrap();
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["cn-1", "de-1", "de-2"], "scenario nodes only");
        assert_eq!(t.nodes[0].country, "CN");
        assert!(t.nodes[0].asn >= 64620);
        assert_eq!(t.phones.len(), 2);
        // Each phone starts on a node of the lab (the campaign moves it).
        assert!(
            t.phones
                .iter()
                .all(|p| t.nodes.iter().any(|n| n.name == p.node))
        );
        assert!(
            t.phones.iter().all(|p| !p.background),
            "noise off: no background"
        );
        assert!(
            t.datacenters.iter().all(|d| !d.noise),
            "noise off: no noise hosts"
        );
        assert!(t.datacenters.iter().all(|d| !d.apps.is_empty()));
        let c = t.censor.as_ref().expect("censor");
        assert_eq!(c.node, "cn-1");
        let race = c.race.as_ref().expect("on-path injector");
        assert_eq!(
            race.dns.get("naver.jp"),
            Some(&Ipv4Addr::new(198, 18, 250, 3))
        );
        assert_eq!(race.keywords, ["line-apps.com"]);
        assert_eq!(t.control_resolver, Some(Ipv4Addr::new(198, 18, 96, 53)));
        // Recorded as lab-topology.yaml for --resume: it reads back the same.
        let yaml = serde_yaml_ng::to_string(&t).unwrap();
        assert_eq!(
            Topology::parse(&yaml, Path::new("lab-topology.yaml")).unwrap(),
            t
        );
    }

    #[test]
    fn shipped_lab_scenarios_make_valid_labs() {
        for f in ["lab-demo.yaml", "censorship-line-kakao.yaml"] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios")
                .join(f);
            let ls = LoadedScenario::load(&p).unwrap();
            let (t, _) = topology_for(&ls).unwrap_or_else(|e| panic!("{f}: {e:#}"));
            for nodes in ls.scenario.countries.values() {
                for n in nodes {
                    assert!(t.nodes.iter().any(|x| &x.name == n), "{f}: {n}");
                }
            }
            matador_lab::topology::Plan::new(&t).unwrap();
        }
    }

    #[test]
    fn a_named_topology_keeps_its_nodes_and_censor() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(Topology::demo_path(), tmp.path().join("mine.yaml")).unwrap();
        let p = tmp.path().join("s.yaml");
        std::fs::write(
            &p,
            "name: t\nphones: [{id: lab-a}, {id: lab-b}]\napps: [whatsapp]\n\
             countries:\n  JP: [jp-1]\n  DE: [de-1]\npairs: {explicit: [[JP, DE]]}\n\
             messages: {texts: [a, b]}\nlab: {topology: mine.yaml}\n",
        )
        .unwrap();
        let ls = LoadedScenario::load(&p).unwrap();
        let (t, path) = topology_for(&ls).unwrap();
        assert_eq!(path, tmp.path().join("mine.yaml"));
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["de-1", "jp-1", "de-2", "br-1"]);
        assert_eq!(t.censor.as_ref().map(|c| c.node.as_str()), Some("br-1"));
    }

    #[test]
    fn defaults_and_refusals() {
        let t = load("lab: {}\n").unwrap();
        let yaml = serde_yaml_ng::to_string(&t).unwrap();
        assert_eq!(Topology::parse(&yaml, Path::new("t.yaml")).unwrap(), t);
        assert!(t.censor.is_none(), "no censor unless the scenario asks");
        assert!(t.phones.iter().all(|p| p.background));
        assert!(t.datacenters.iter().any(|d| d.noise));
        let e = load(
            "lab:\n  censor: {country: CN, forge_dns: [a.b], forged_answers: [37.61.54.158]}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a lab address"), "{e}");
        let e = load("lab:\n  control_resolver: 8.8.8.8\n").unwrap_err();
        assert!(e.to_string().contains("control_resolver"), "{e}");
    }
}
