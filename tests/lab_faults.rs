//! Faults: a dead tunnel is detected by the health check with an error
//! naming the node, and cutting a tunnel cuts the phone's traffic instead of
//! leaking it out of the router's own uplink.

mod lab_common;

use lab_common::{Capture, demo, leftovers, ping};
use matador::net::state::{Resource, StateFile};

fn wg_pid(lab: &matador_lab::build::Lab, ifname: &str) -> u32 {
    let st = StateFile::load(&lab.state_path()).unwrap();
    st.state()
        .resources
        .iter()
        .find_map(|r| match r {
            Resource::Process { pid, name, .. } if name == &format!("wireguard-go {ifname}") => {
                Some(*pid)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no wireguard-go for {ifname} in the state file"))
}

fn kill9(pid: u32) {
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let t = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        && t.elapsed() < std::time::Duration::from_secs(5)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn dead_tunnels_are_reported_by_node_and_do_not_leak() {
    let t0 = std::time::Instant::now();
    let state = tempfile::tempdir().unwrap();
    let lab = demo(state.path(), false, false);
    let id = lab.id().to_string();
    let d = lab.desc.clone();
    let backend = d
        .nodes
        .iter()
        .find_map(|n| n.apps.get("whatsapp"))
        .unwrap()
        .clone();
    assert!(lab.health().iter().all(Result::is_ok));
    assert!(ping(&lab.ns("lab-b"), &backend, 1));

    // br-1: the router's wireguard-go dies, the tunnel interface vanishes.
    let br = d.node("br-1").unwrap().tunnel.clone().unwrap();
    kill9(wg_pid(&lab, &br.router_if));
    // de-1: the node's wireguard-go dies, the router still has its interface.
    let de = d.node("de-1").unwrap().tunnel.clone().unwrap();
    kill9(wg_pid(&lab, &de.node_if));

    let health = lab.health();
    let msgs: Vec<String> = health
        .iter()
        .filter_map(|h| h.as_ref().err().map(ToString::to_string))
        .collect();
    eprintln!("{msgs:#?}");
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    // The untouched node stays healthy.
    assert!(
        health
            .iter()
            .any(|h| h.as_ref().is_ok_and(|h| h.node == "de-2"))
    );
    let br_msg = msgs.iter().find(|m| m.contains("node br-1")).unwrap();
    assert!(
        br_msg.contains(&br.router_if) && br_msg.contains("gone"),
        "{br_msg}"
    );
    let de_msg = msgs.iter().find(|m| m.contains("node de-1")).unwrap();
    assert!(
        de_msg.contains("no ping reply") && de_msg.contains(&de.router_if),
        "{de_msg}"
    );

    // No leak, IPv4 or IPv6: the phones' packets are dropped by the router
    // (br-1: tunnel interface gone; de-1: it stays, the node is dead), never
    // forwarded through the router's own uplink.
    let dir = tempfile::tempdir().unwrap();
    let six: Vec<String> = d.phones.iter().filter_map(|p| p.addr6.clone()).collect();
    assert_eq!(six.len(), 2, "phones without IPv6: {:?}", d.phones);
    let backend6 = d
        .nodes
        .iter()
        .find_map(|n| n.apps6.get("whatsapp"))
        .unwrap()
        .clone();
    let cap = Capture::start(
        &lab.ns("router"),
        "e0",
        &format!(
            "host 198.18.100.3 or host 198.18.100.2 or host {} or host {}",
            six[0], six[1]
        ),
        &dir.path().join("uplink.pcap"),
    );
    assert!(
        !ping(&lab.ns("lab-b"), &backend, 2),
        "lab-b still reaches {backend}"
    );
    assert!(
        !ping(&lab.ns("lab-a"), &backend, 2),
        "lab-a still reaches {backend}"
    );
    for p in ["lab-a", "lab-b"] {
        let ok = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns(p),
                "ping",
                "-6",
                "-n",
                "-q",
                "-W",
                "1",
            ])
            .args(["-c", "2", "-i", "0.2", &backend6])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!ok, "{p} still reaches {backend6} over IPv6");
    }
    let lines = cap.stop();
    assert!(lines.is_empty(), "leaked: {lines:#?}");

    assert!(lab.down().is_empty());
    assert!(leftovers(&id).is_empty(), "{:#?}", leftovers(&id));
    eprintln!("test took {:?}", t0.elapsed());
}
