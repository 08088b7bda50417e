//! `matador router check` on the virtual lab's router, which is a real
//! router in a namespace: the healthy lab passes; a deleted phone rule, a
//! tunnel taken down, a node without NAT and a table without its
//! unreachable fallback are each caught with a fix. Needs root (fails,
//! never skips, without it).

mod lab_common;

use lab_common::demo;
use std::process::Command;

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn check(lab_json: &std::path::Path) -> (bool, Vec<serde_json::Value>) {
    let o = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args([
            "router",
            "check",
            "--json",
            "--dns-name",
            "g.whatsapp.net",
            "--lab",
        ])
        .arg(lab_json)
        .output()
        .unwrap();
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.success(), v)
}

fn status<'a>(v: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    v.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {v:#?}"))
}

fn failed(v: &[serde_json::Value]) -> Vec<String> {
    v.iter()
        .filter(|r| r["status"] == "fail")
        .map(|r| r["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn router_check_passes_a_good_lab_and_catches_each_fault() {
    let state = tempfile::tempdir().unwrap();
    let lab = demo(state.path(), false, false);
    let d = &lab.desc;
    let p = &lab.desc_path;
    let router = d.router().unwrap().netns.clone().unwrap();
    let de1 = d.node("de-1").unwrap();
    let t = de1.tunnel.clone().unwrap();
    let phone = d.phone("lab-a").unwrap();
    assert_eq!(phone.node, "de-1");

    let t0 = std::time::Instant::now();
    let (ok, v) = check(p);
    eprintln!("good lab: {} checks in {:?}", v.len(), t0.elapsed());
    assert!(ok, "healthy lab failed: {:?}\n{v:#?}", failed(&v));
    assert_eq!(status(&v, "dns lab-a")["status"], "ok");
    assert_eq!(status(&v, "rule lab-b")["status"], "ok");

    // 1. The phone's rule is deleted: its traffic would leak via the main table.
    let prio = phone.rule_priority.to_string();
    ip(&["-n", &router, "rule", "del", "priority", &prio]);
    let (ok, v) = check(p);
    assert!(!ok);
    assert_eq!(status(&v, "rule lab-a")["status"], "fail");
    let leak = status(&v, "leak lab-a → 203.0.113.1");
    assert_eq!(leak["status"], "fail");
    assert!(leak["detail"].as_str().unwrap().contains("LEAK"), "{leak}");
    assert!(leak["fix"].as_str().unwrap().contains(&format!(
        "ip rule add from {} lookup {}",
        phone.addr, t.table
    )));
    assert_eq!(
        status(&v, "rule lab-b")["status"],
        "ok",
        "only lab-a is broken"
    );
    ip(&[
        "-n",
        &router,
        "rule",
        "add",
        "from",
        &phone.addr,
        "lookup",
        &t.table.to_string(),
        "priority",
        &prio,
    ]);
    assert!(check(p).0, "not repaired");

    // 2. The tunnel is down: caught, and the phone's table is unreachable (no leak).
    ip(&["-n", &router, "link", "set", &t.router_if, "down"]);
    let (ok, v) = check(p);
    assert!(!ok);
    let f = failed(&v);
    for want in [
        format!("interface {}", t.router_if),
        "tunnel de-1".into(),
        "leak lab-a → 203.0.113.1".into(),
        "dns lab-a".into(),
    ] {
        assert!(f.contains(&want), "{want} not failed: {f:?}");
    }
    let leak = status(&v, "leak lab-a → 203.0.113.1");
    assert!(
        leak["detail"].as_str().unwrap().contains("unreachable"),
        "{leak}"
    );
    assert!(!f.contains(&"tunnel br-1".to_string()), "{f:?}");
    ip(&["-n", &router, "link", "set", &t.router_if, "up"]);
    ip(&[
        "-n",
        &router,
        "route",
        "replace",
        "default",
        "dev",
        &t.router_if,
        "table",
        &t.table.to_string(),
        "metric",
        "10",
    ]);
    assert!(check(p).0, "not repaired");

    // 3. The node's NAT is gone: DNS no longer comes back through the tunnel.
    let node_ns = de1.netns.clone().unwrap();
    let nat = [
        "-w",
        "-t",
        "nat",
        "POSTROUTING",
        "-s",
        "198.18.100.0/24",
        "-o",
        &t.node_uplink,
        "-j",
        "MASQUERADE",
    ];
    let ipt = |op: &str| {
        let mut a = vec!["netns", "exec", &node_ns, "iptables"];
        a.extend_from_slice(&nat[..3]);
        a.push(op);
        a.extend_from_slice(&nat[3..]);
        ip(&a);
    };
    ipt("-D");
    let (ok, v) = check(p);
    assert!(!ok);
    let dns = status(&v, "dns lab-a");
    assert_eq!(dns["status"], "fail", "{dns}");
    assert!(dns["fix"].as_str().unwrap().contains("NAT"), "{dns}");
    assert_eq!(
        failed(&v),
        vec!["dns lab-a".to_string()],
        "only DNS of lab-a"
    );
    ipt("-A");
    assert!(check(p).0, "not repaired");

    // 4. The unreachable fallback is removed: a dying tunnel would leak.
    ip(&[
        "-n",
        &router,
        "route",
        "del",
        "unreachable",
        "default",
        "table",
        &t.table.to_string(),
    ]);
    let (ok, v) = check(p);
    assert!(!ok);
    let tab = status(&v, &format!("table {} (de-1)", t.table));
    assert_eq!(tab["status"], "fail");
    assert!(
        tab["detail"].as_str().unwrap().contains("unreachable"),
        "{tab}"
    );
    drop(lab);
}
