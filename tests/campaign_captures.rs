//! Router-side capture points over libpcap inside a network namespace:
//! two namespaces joined by a veth pair (198.18.0.0/15 only, removed on
//! drop), `router-<phone>` captured in the first while it sends UDP to the
//! second; the file lands where the measurement folder expects it. Needs
//! root (CI and the lab machines are root); fails with a clear message
//! otherwise.

use matador::analysis::replay::{ReplayOptions, analyze_file};
use matador::campaign::captures::{Captures, RouterCaptures};
use matador::campaign::env::CapturePoint;
use std::collections::HashMap;
use std::process::Command;

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) not installed");
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root and network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn router_capture_in_a_namespace() {
    let pid = std::process::id();
    let (a, b) = (format!("mcap{pid}a"), format!("mcap{pid}b"));
    let guard = Netns(vec![a.clone(), b.clone()]);
    ip(&["netns", "add", &a]);
    ip(&["netns", "add", &b]);
    let (va, vb) = (format!("mc{pid}a"), format!("mc{pid}b"));
    ip(&[
        "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
    ]);
    ip(&["-n", &a, "addr", "add", "198.18.250.1/30", "dev", &va]);
    ip(&["-n", &b, "addr", "add", "198.18.250.2/30", "dev", &vb]);
    ip(&["-n", &a, "link", "set", &va, "up"]);
    ip(&["-n", &b, "link", "set", &vb, "up"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture-router-lab-a.pcap");
    let caps = Captures {
        router: RouterCaptures::new(
            Some(a.clone()),
            HashMap::from([("lab-a".to_string(), va.clone())]),
            65535,
        ),
        nodes: None,
    };
    caps.start("router-lab-a", &file).unwrap();
    matador::net::netns::run_in(Some(&a), || {
        let s = std::net::UdpSocket::bind("198.18.250.1:0")?;
        for i in 0..20u8 {
            s.send_to(&[i; 100], "198.18.250.2:5222")?;
            // Paced like a phone's traffic (the scenario, not a wait).
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    })
    .unwrap();
    // No grace sleep: stopping reads what libpcap still holds (the
    // product's guarantee, checked by the 20 packets below).
    caps.stop("router-lab-a").unwrap();
    caps.stop("router-lab-a").unwrap(); // idempotent
    assert!(
        caps.start("node-de-1", &dir.path().join("capture-node-de-1.pcap"))
            .is_err()
    );
    assert!(
        caps.start("router-lab-z", &dir.path().join("x.pcap"))
            .unwrap_err()
            .message
            .contains("no router interface")
    );
    let r = analyze_file(&file, &ReplayOptions::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let udp: u64 = r
        .flows
        .iter()
        .filter(|f| f.proto == "udp" && f.dport == 5222)
        .map(|f| f.packets)
        .sum();
    assert_eq!(udp, 20, "{:#?}", r.flows);
    drop(guard);
    assert!(!std::path::Path::new(&format!("/run/netns/{a}")).exists());
}

#[test]
fn net_vantage_moves_the_phone_rule_and_blames_the_node() {
    use matador::campaign::env::Vantage;
    use matador::campaign::vantage::{NetVantage, NodeRoute, PhoneRoute};
    let pid = std::process::id();
    let (r, n) = (format!("mvan{pid}r"), format!("mvan{pid}n"));
    let _guard = Netns(vec![r.clone(), n.clone()]);
    ip(&["netns", "add", &r]);
    ip(&["netns", "add", &n]);
    let (vr, vn) = (format!("mv{pid}r"), format!("mv{pid}n"));
    ip(&[
        "link", "add", &vr, "netns", &r, "type", "veth", "peer", "name", &vn, "netns", &n,
    ]);
    ip(&["-n", &r, "addr", "add", "198.18.252.1/30", "dev", &vr]);
    ip(&["-n", &n, "addr", "add", "198.18.252.2/30", "dev", &vn]);
    ip(&["-n", &r, "link", "set", &vr, "up"]);
    ip(&["-n", &n, "link", "set", &vn, "up"]);
    let tmp = tempfile::tempdir().unwrap();
    let mut state = matador::net::state::StateFile::create(
        &tmp.path().join("state.json"),
        "vantage-test",
        serde_json::json!({}),
    )
    .unwrap();
    matador::net::routing::tunnel_table(&mut state, Some(&r), 4100, &vr).unwrap();
    let v = NetVantage::new(
        Some(r.clone()),
        HashMap::from([(
            "de-1".to_string(),
            NodeRoute {
                table: 4100,
                tunnel_if: vr.clone(),
                peer: "198.18.252.2".parse().unwrap(),
            },
        )]),
        HashMap::from([(
            "lab-a".to_string(),
            PhoneRoute {
                addr: "198.18.253.10".parse().unwrap(),
                priority: 1000,
                wlan_if: vr.clone(),
                resolver: None,
                ask_from: None,
            },
        )]),
        "example.org",
        state,
    );
    let rules = || {
        let o = Command::new("ip")
            .args(["-n", &r, "rule", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    v.connect("lab-a", "de-1").unwrap();
    assert!(
        rules().contains("from 198.18.253.10 lookup 4100"),
        "{}",
        rules()
    );
    assert_eq!(v.assigned("lab-a").as_deref(), Some("de-1"));
    // Re-assigning replaces the rule instead of stacking a second one.
    v.connect("lab-a", "de-1").unwrap();
    assert_eq!(rules().matches("198.18.253.10").count(), 1, "{}", rules());
    // Not a WireGuard tunnel: the health check fails, and blames the node.
    let e = v.check("lab-a", "de-1").unwrap_err();
    assert!(e.node_failed && e.message.contains("de-1"), "{e:?}");
    let e = v.connect("lab-a", "xx-9").unwrap_err();
    assert!(e.node_failed, "{e:?}");
    assert!(!v.connect("lab-z", "de-1").unwrap_err().node_failed);
    v.disconnect("lab-a").unwrap();
    v.disconnect("lab-a").unwrap();
    assert!(!rules().contains("198.18.253.10"), "{}", rules());
}
