//! The demo lab end to end: phone → router → WireGuard tunnel → node (NAT)
//! → ISP hops → core → data centre, checked with captures on the router and
//! on the nodes; DNS through the node; SSH to the node; lab.json and the lab
//! mmdb; teardown leaves nothing behind.

mod lab_common;

use lab_common::{Capture, demo, leftovers, ping};
use matador::net::labdesc::LabDesc;
use matador_lab::build::dns_check;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

#[test]
fn demo_lab_routes_each_phone_through_its_country_node() {
    let t0 = Instant::now();
    let state = tempfile::tempdir().unwrap();
    let lab = demo(state.path(), true, true);
    let id = lab.id().to_string();
    eprintln!("lab {id} up in {:?}", lab.up_time);
    let d = LabDesc::read(&lab.desc_path).unwrap();
    assert_eq!(d, lab.desc);
    assert_eq!(d.phones.len(), 2);
    for p in &d.phones {
        assert!(p.adb.starts_with("127.0.0.1:"), "{p:?}");
        assert!(!p.serial.is_empty());
    }
    // The lab's own adb server has both phones attached, as USB phones:
    // Debian's adb and `matador devices` list them in state `device`.
    let port = d
        .adb_server
        .expect("lab.json names the lab adb server")
        .to_string();
    let out = std::process::Command::new("adb")
        .args(["-P", &port, "devices"])
        .output()
        .expect("adb (Debian package) is required: bash scripts/install-deps.sh");
    let listed = String::from_utf8_lossy(&out.stdout);
    for p in &d.phones {
        assert!(
            listed.contains(&format!("{}\tdevice", p.adb)),
            "{} missing from the lab adb server:\n{listed}",
            p.adb
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["devices", "--json"])
        .env("ANDROID_ADB_SERVER_PORT", &port)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    for p in &d.phones {
        assert!(
            shown.contains(&p.adb),
            "{} not in matador devices: {shown}",
            p.adb
        );
    }
    let de = d.node("de-1").unwrap().clone();
    let br = d.node("br-1").unwrap().clone();
    let (de_t, br_t) = (de.tunnel.clone().unwrap(), br.tunnel.clone().unwrap());
    let whatsapp = d
        .nodes
        .iter()
        .find(|n| n.apps.contains_key("whatsapp"))
        .unwrap()
        .clone();
    // The app backend's address comes from DNS through the node.
    let dns_a = matador::net::health::check_dns(&dns_check(&d, "lab-a", "g.whatsapp.net").unwrap())
        .unwrap();
    let backend = whatsapp.apps["whatsapp"].clone();
    assert_eq!(dns_a, vec![backend.parse::<IpAddr>().unwrap()]);

    // Captures: router side of each tunnel, each node's uplink (tunnel exit).
    let dir = tempfile::tempdir().unwrap();
    let cap_rt = Capture::start(
        &lab.ns("router"),
        &de_t.router_if,
        "icmp or udp port 53",
        &dir.path().join("router-de.pcap"),
    );
    let cap_de = Capture::start(
        &lab.ns("de-1"),
        &de_t.node_uplink,
        "icmp or udp port 53",
        &dir.path().join("node-de.pcap"),
    );
    let cap_br = Capture::start(
        &lab.ns("br-1"),
        &br_t.node_uplink,
        "icmp or udp port 53",
        &dir.path().join("node-br.pcap"),
    );
    let cap_up = Capture::start(
        &lab.ns("router"),
        "e0",
        "host 198.18.100.2 or host 198.18.100.3",
        &dir.path().join("router-uplink.pcap"),
    );

    assert!(
        ping(&lab.ns("lab-a"), &backend, 3),
        "lab-a cannot reach {backend}"
    );
    let ips = matador::net::health::resolve_in(
        Some(&lab.ns("lab-a")),
        SocketAddr::new(d.resolver.parse().unwrap(), 53),
        "g.whatsapp.net",
    )
    .unwrap();
    assert_eq!(ips.len(), 1);
    // TCP to the backend from the phone's namespace.
    let port = matador_lab::phone::apps::app_def("whatsapp").unwrap().port;
    let target = SocketAddr::new(backend.parse().unwrap(), port);
    matador::net::netns::run_in(Some(&lab.ns("lab-a")), move || {
        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).map(|_| ())
    })
    .unwrap();

    let rt = cap_rt.stop();
    let de_lines = cap_de.stop();
    let br_lines = cap_br.stop();
    let up = cap_up.stop();
    // In the tunnel: the phone's own address.
    assert!(
        rt.iter()
            .any(|l| l.contains(&format!("198.18.100.2 > {backend}"))
                && l.contains("ICMP echo request")),
        "router tunnel capture: {rt:#?}"
    );
    // At the German node's exit: NATed to the node's address, echo replies back.
    assert!(
        de_lines
            .iter()
            .any(|l| l.contains(&format!("{} > {backend}", de.addr))
                && l.contains("ICMP echo request")),
        "de-1 capture: {de_lines:#?}"
    );
    assert!(
        de_lines
            .iter()
            .any(|l| l.contains(&format!("{backend} > {}", de.addr))
                && l.contains("ICMP echo reply")),
        "de-1 capture: {de_lines:#?}"
    );
    // DNS via the node: the query leaves the German node towards the resolver.
    assert!(
        de_lines.iter().any(|l| l.contains(&format!("{}.", de.addr))
            && l.contains(&format!("{}.53:", d.resolver))
            && l.contains("g.whatsapp.net")),
        "de-1 DNS: {de_lines:#?}"
    );
    // Nothing of lab-a's leaves through Brazil or the router's own uplink.
    assert!(
        !br_lines
            .iter()
            .any(|l| l.contains(&format!("> {backend}: ICMP echo request"))),
        "br-1 saw lab-a's pings: {br_lines:#?}"
    );
    assert!(
        up.is_empty(),
        "phone traffic leaked on the router uplink: {up:#?}"
    );

    // lab-b leaves through Brazil (and the censor hop in front of it).
    let dns_b = matador::net::health::check_dns(&dns_check(&d, "lab-b", "g.whatsapp.net").unwrap())
        .unwrap();
    assert_eq!(dns_b, dns_a);
    let cap_br = Capture::start(
        &lab.ns("br-1"),
        &br_t.node_uplink,
        "icmp",
        &dir.path().join("node-br2.pcap"),
    );
    assert!(ping(&lab.ns("lab-b"), &backend, 2));
    let br_lines = cap_br.stop();
    assert!(
        br_lines
            .iter()
            .any(|l| l.contains(&format!("{} > {backend}", br.addr))),
        "br-1 capture: {br_lines:#?}"
    );
    // The censor forges DNS for its names (and subdomains) on br-1's path only.
    let forged = matador::net::health::resolve_in(
        Some(&lab.ns("lab-b")),
        SocketAddr::new(d.resolver.parse().unwrap(), 53),
        "www.blocked.example",
    )
    .unwrap();
    assert_eq!(forged, vec!["198.18.250.1".parse::<IpAddr>().unwrap()]);

    // SSH into a node with the node-agent client (host-key checking on).
    let ssh = de.ssh.clone().unwrap();
    let target = matador::net::ssh::SshTarget::new(
        "de-1",
        ssh.host.clone(),
        ssh.user.clone(),
        ssh.identity.clone(),
        ssh.known_hosts.clone(),
    );
    let (prog, args) = target.command(&format!("ip -o addr show dev {}", de_t.node_if));
    let out = std::process::Command::new(prog)
        .args(args)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&de_t.node_addr),
        "ssh: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Traceroute material: every hop answers with TTL exceeded (no rate
    // limit), br-1's path has censor + 3 ISP hops + core + multipath hop +
    // 2 DC hops before the server.
    let mut hops = Vec::new();
    for ttl in 1..=12 {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("br-1"),
                "ping",
                "-n",
                "-c",
                "1",
                "-W",
                "1",
                "-t",
            ])
            .arg(ttl.to_string())
            .arg(&backend)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(l) = text.lines().find(|l| l.contains("Time to live exceeded")) {
            hops.push(l.split_whitespace().nth(1).unwrap_or("").to_string());
        } else {
            assert!(
                text.contains(&format!("from {backend}")),
                "ttl {ttl}: {text}"
            );
            break;
        }
    }
    assert_eq!(hops.len(), 8, "{hops:?}");
    let distinct: std::collections::BTreeSet<_> = hops.iter().collect();
    assert_eq!(distinct.len(), 8, "{hops:?}");
    let core_routes = std::process::Command::new("ip")
        .args(["-n", &lab.ns("core"), "route", "show"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&core_routes.stdout)
            .matches("nexthop via")
            .count(),
        2,
        "one multipath route with two next hops in the core"
    );

    // The lab mmdb geolocates lab addresses to their countries.
    let db =
        matador::geo::db::MmdbFile::open(d.mmdb.as_ref().unwrap(), "lab mmdb", "--mmdb").unwrap();
    for (addr, cc, asn) in [
        (de.addr.as_str(), "DE", 64601),
        (br.addr.as_str(), "BR", 64602),
        (backend.as_str(), "US", 64610),
        ("198.18.100.2", "DE", 64600),
    ] {
        let ip: IpAddr = addr.parse().unwrap();
        assert_eq!(db.country(ip).unwrap(), Some(cc), "{addr}");
        assert_eq!(db.asn(ip).unwrap(), Some(asn), "{addr}");
    }

    // Health of both tunnels.
    for h in lab.health() {
        let h = h.unwrap();
        assert!(h.rtt_ms < 100.0, "{h:?}");
        eprintln!("tunnel {} rtt {:.3} ms", h.node, h.rtt_ms);
    }

    let t = Instant::now();
    let problems = lab.down();
    eprintln!("lab down in {:?}; test {:?}", t.elapsed(), t0.elapsed());
    assert!(problems.is_empty(), "{problems:?}");
    let left = leftovers(&id);
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}
