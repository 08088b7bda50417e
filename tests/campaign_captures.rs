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
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    })
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
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
