//! Userspace per-link delay: a node whose uplink has `delay_ms: 20` shows
//! at least 2 × 20 ms RTT from the node to a server (its uplink is crossed
//! twice) and 4 × 20 ms from a phone behind it (the tunnel's outer packets
//! and the inner ones both cross it), while an undelayed node stays fast.

mod lab_common;

use lab_common::{exe, leftovers, require_root};
use matador_lab::build::{Lab, UpOptions};
use matador_lab::topology::Topology;
use std::path::Path;
use std::process::Command;

const TOPO: &str = "\
name: delay
country: DE
asn: 64600
phones:
  - {name: slow, node: far, apps: [whatsapp], background: false}
  - {name: fast, node: near, apps: [whatsapp], background: false}
nodes:
  - {name: far, country: JP, asn: 64601, hops: 1, delay_ms: 20}
  - {name: near, country: DE, asn: 64602, hops: 1}
datacenters:
  - {name: dc, country: US, asn: 64610, apps: [whatsapp]}
";

/// (min, max) RTT in ms of `count` pings from `ns` to `dst`.
fn rtt(ns: &str, dst: &str, count: u32) -> (f64, f64) {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "2", "-c",
        ])
        .arg(count.to_string())
        .arg(dst)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_else(|| panic!("no reply from {dst} in {ns}: {text}"));
    let v: Vec<f64> = line
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(" ms")
        .split('/')
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[2])
}

#[test]
fn a_delayed_link_adds_its_delay_and_an_undelayed_one_does_not() {
    require_root();
    let state = tempfile::tempdir().unwrap();
    let t = Topology::parse(TOPO, Path::new("delay.yaml")).unwrap();
    let lab = Lab::up(UpOptions {
        topology: t,
        state_dir: state.path().to_path_buf(),
        exe: exe(),
        phones: false,
        ssh: false,
        cancel: None,
    })
    .unwrap();
    let id = lab.id().to_string();
    eprintln!("lab {id} up in {:?}", lab.up_time);
    let d = lab.desc.clone();
    let backend = d
        .nodes
        .iter()
        .find_map(|n| n.apps.get("whatsapp"))
        .unwrap()
        .clone();
    let backend6 = d
        .nodes
        .iter()
        .find_map(|n| n.apps6.get("whatsapp"))
        .unwrap()
        .clone();

    let far = rtt(&lab.ns("far"), &backend, 5);
    let near = rtt(&lab.ns("near"), &backend, 5);
    let slow = rtt(&lab.ns("slow"), &backend, 5);
    let fast = rtt(&lab.ns("fast"), &backend, 5);
    let far6 = rtt(&lab.ns("far"), &backend6, 3);
    eprintln!(
        "RTT (min, max) ms: node far {far:?}, node near {near:?}, phone via far {slow:?}, \
         phone via near {fast:?}, node far over IPv6 {far6:?}"
    );
    assert!(far.0 >= 40.0 && far.1 < 400.0, "far node: {far:?}");
    assert!(far6.0 >= 40.0, "far node over IPv6: {far6:?}");
    assert!(slow.0 >= 80.0 && slow.1 < 800.0, "phone via far: {slow:?}");
    // A delay is a floor under every packet; the machine's load only adds
    // jitter on top (the lab tests share two cores with the rest of the
    // suite). So the undelayed paths are judged by their minimum.
    assert!(near.0 < 20.0, "undelayed node: {near:?}");
    assert!(fast.0 < 20.0, "phone via undelayed node: {fast:?}");

    assert!(lab.down().is_empty());
    assert!(leftovers(&id).is_empty(), "{:#?}", leftovers(&id));
}
