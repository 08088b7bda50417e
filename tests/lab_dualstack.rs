//! Dual stack through the same tunnels: every lab host has the IPv6 twin
//! (fd00:1ab::/96 + its IPv4 address) of its 198.18.0.0/15 address. A
//! phone reaches an app backend over IPv6 only through its tunnel (NATed by
//! the node), DNS answers AAAA through the node, the v6 capture replays,
//! the hop chain answers IPv6 traceroute probes, re-assigning a phone moves
//! its IPv6 rule along, cutting the tunnel cuts IPv6 too (no leak), and
//! `lab down` leaves nothing behind.

mod lab_common;

use lab_common::{Capture, demo, leftovers};
use matador::net::state::{Resource, StateFile};
use matador_lab::topology::lab_address;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ping6(ns: &str, dst: &str, count: u32) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-6", "-n", "-q", "-i", "0.2", "-W", "1", "-c",
        ])
        .arg(count.to_string())
        .arg(dst)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn wg_pid(state: &std::path::Path, ifname: &str) -> u32 {
    StateFile::load(state)
        .unwrap()
        .state()
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

#[test]
fn ipv6_goes_through_the_same_tunnels_and_never_around_them() {
    let t0 = Instant::now();
    let state = tempfile::tempdir().unwrap();
    let lab = demo(state.path(), false, false);
    let id = lab.id().to_string();
    eprintln!("lab {id} up in {:?}", lab.up_time);
    let d = lab.desc.clone();
    let pa = d.phone("lab-a").unwrap().clone();
    let pb = d.phone("lab-b").unwrap().clone();
    let (a6, b6) = (pa.addr6.clone().unwrap(), pb.addr6.clone().unwrap());
    let de = d.node("de-1").unwrap().clone();
    let br = d.node("br-1").unwrap().clone();
    let (de_t, br_t) = (de.tunnel.clone().unwrap(), br.tunnel.clone().unwrap());
    let (de6, br6) = (de.addr6.clone().unwrap(), br.addr6.clone().unwrap());
    let server = d
        .nodes
        .iter()
        .find(|n| n.apps.contains_key("whatsapp"))
        .unwrap()
        .clone();
    let backend6 = server.apps6["whatsapp"].clone();
    for a in [&a6, &b6, &de6, &br6, &backend6] {
        let ip: IpAddr = a.parse().unwrap();
        assert!(ip.is_ipv6() && lab_address(ip), "{a}");
    }
    let resolver6: IpAddr = d.resolver6.as_deref().unwrap().parse().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let tunnel_pcap = dir.path().join("tunnel-de-v6.pcap");
    let cap_tun = Capture::start(&lab.ns("router"), &de_t.router_if, "ip6", &tunnel_pcap);
    let cap_de = Capture::start(
        &lab.ns("de-1"),
        &de_t.node_uplink,
        "ip6",
        &dir.path().join("node-de-v6.pcap"),
    );
    let cap_up = Capture::start(
        &lab.ns("router"),
        "e0",
        &format!("ip6 and (host {a6} or host {b6})"),
        &dir.path().join("router-uplink-v6.pcap"),
    );

    // DNS AAAA through the node: over IPv6 to the resolver's twin and over
    // IPv4 to the usual resolver, both answer the backend's IPv6 twin.
    let aaaa = matador::net::health::resolve6_in(
        Some(&lab.ns("lab-a")),
        SocketAddr::new(resolver6, 53),
        "g.whatsapp.net",
    )
    .unwrap();
    assert_eq!(aaaa, vec![backend6.parse::<IpAddr>().unwrap()]);
    let aaaa4 = matador::net::health::resolve6_in(
        Some(&lab.ns("lab-a")),
        SocketAddr::new(d.resolver.parse().unwrap(), 53),
        "g.whatsapp.net",
    )
    .unwrap();
    assert_eq!(aaaa4, aaaa);
    // ICMPv6 and TCP over IPv6 to the backend.
    assert!(ping6(&lab.ns("lab-a"), &backend6, 3), "lab-a ↛ {backend6}");
    let port = matador_lab::phone::apps::app_def("whatsapp").unwrap().port;
    let target = SocketAddr::new(backend6.parse().unwrap(), port);
    matador::net::netns::run_in(Some(&lab.ns("lab-a")), move || {
        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).map(|_| ())
    })
    .unwrap();

    // The noise host serves the connectivity check over IPv6 too.
    let check6 = matador::net::health::resolve6_in(
        Some(&lab.ns("lab-a")),
        SocketAddr::new(resolver6, 53),
        "connectivitycheck.gstatic.com",
    )
    .unwrap();
    assert_eq!(check6.len(), 1, "{check6:?}");
    let target = SocketAddr::new(check6[0], 80);
    let reply = matador::net::netns::run_in(Some(&lab.ns("lab-a")), move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(
            b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n",
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    })
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");

    let tun = cap_tun.stop();
    let de_lines = cap_de.stop();
    let up = cap_up.stop();
    assert!(
        tun.iter()
            .any(|l| l.contains(&format!("{a6} > {backend6}")) && l.contains("echo request")),
        "router tunnel capture: {tun:#?}"
    );
    assert!(
        tun.iter()
            .any(|l| l.contains(&format!("{a6}.")) && l.contains(&format!("{backend6}.{port}:"))),
        "no TCP over IPv6 in the tunnel: {tun:#?}"
    );
    assert!(
        tun.iter()
            .any(|l| l.contains(&format!("{resolver6}.53:")) && l.contains("AAAA? g.whatsapp.net")),
        "no AAAA query in the tunnel: {tun:#?}"
    );
    // At the node's exit: NATed (masquerade) to the node's IPv6 address.
    assert!(
        de_lines
            .iter()
            .any(|l| l.contains(&format!("{de6} > {backend6}")) && l.contains("echo request")),
        "de-1 capture: {de_lines:#?}"
    );
    assert!(
        de_lines
            .iter()
            .any(|l| l.contains(&format!("{backend6} > {de6}")) && l.contains("echo reply")),
        "de-1 capture: {de_lines:#?}"
    );
    assert!(
        !de_lines.iter().any(|l| l.contains(&a6)),
        "the phone's own IPv6 address left the node: {de_lines:#?}"
    );
    assert!(up.is_empty(), "IPv6 leaked on the router uplink: {up:#?}");

    // `matador replay` reads the IPv6 tunnel capture.
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["replay", "--json"])
        .arg(&tunnel_pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(v["packets"].as_u64().unwrap() >= 8, "{v}");
    assert!(v["errors"].as_array().is_none_or(|e| e.is_empty()), "{v}");
    assert!(
        text.contains(&backend6),
        "replay does not name {backend6}: {text}"
    );

    // Traceroute over IPv6 from br-1: censor + 3 ISP hops + core +
    // multipath hop + 2 DC hops, each answering ICMPv6 time exceeded.
    let mut hops = Vec::new();
    for ttl in 1..=12 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("br-1"),
                "ping",
                "-6",
                "-n",
                "-c",
                "1",
            ])
            .args(["-W", "1", "-t"])
            .arg(ttl.to_string())
            .arg(&backend6)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(l) = text.lines().find(|l| l.contains("Time exceeded")) {
            hops.push(l.split_whitespace().nth(1).unwrap_or("").to_string());
        } else {
            assert!(
                text.contains(&format!("from {backend6}")),
                "ttl {ttl}: {text}"
            );
            break;
        }
    }
    eprintln!("IPv6 hops from br-1: {hops:?}");
    assert_eq!(hops.len(), 8, "{hops:?}");
    let distinct: std::collections::BTreeSet<_> = hops.iter().collect();
    assert_eq!(distinct.len(), 8, "{hops:?}");
    assert!(
        hops.iter().all(|h| h
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_ipv6() && lab_address(ip))),
        "{hops:?}"
    );

    // The lab mmdb geolocates the IPv6 twins like the IPv4 addresses.
    let db =
        matador::geo::db::MmdbFile::open(d.mmdb.as_ref().unwrap(), "lab mmdb", "--mmdb").unwrap();
    for (addr, cc, asn) in [
        (de6.as_str(), "DE", 64601),
        (br6.as_str(), "BR", 64602),
        (backend6.as_str(), "US", 64610),
        (a6.as_str(), "DE", 64600),
    ] {
        let ip: IpAddr = addr.parse().unwrap();
        assert_eq!(db.country(ip).unwrap(), Some(cc), "{addr}");
        assert_eq!(db.asn(ip).unwrap(), Some(asn), "{addr}");
    }

    // Re-assigning lab-a by its IPv4 address (as campaigns do) moves its
    // IPv6 rule too: IPv6 now leaves through Brazil.
    let mut st = StateFile::load(&lab.state_path()).unwrap();
    matador::net::routing::assign_phone(
        &mut st,
        Some(&lab.ns("router")),
        pa.addr.parse().unwrap(),
        br_t.table,
        pa.rule_priority,
    )
    .unwrap();
    drop(st);
    let rules = Command::new("ip")
        .args(["-n", &lab.ns("router"), "-6", "rule", "show"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(
        rules.contains(&format!("from {a6} lookup {}", br_t.table)),
        "{rules}"
    );
    let cap_br = Capture::start(
        &lab.ns("br-1"),
        &br_t.node_uplink,
        "icmp6",
        &dir.path().join("node-br-v6.pcap"),
    );
    assert!(ping6(&lab.ns("lab-a"), &backend6, 2));
    let br_lines = cap_br.stop();
    assert!(
        br_lines
            .iter()
            .any(|l| l.contains(&format!("{br6} > {backend6}"))),
        "br-1 capture: {br_lines:#?}"
    );

    // Cut br-1's tunnel (both phones use it now): IPv6 is dropped by the
    // router, never forwarded through its own uplink.
    let pid = wg_pid(&lab.state_path(), &br_t.router_if);
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    while matador::net::netns::links(Some(&lab.ns("router")))
        .unwrap()
        .contains(&br_t.router_if)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cap_up = Capture::start(
        &lab.ns("router"),
        "e0",
        &format!("ip6 and (host {a6} or host {b6})"),
        &dir.path().join("router-uplink-cut-v6.pcap"),
    );
    assert!(
        !ping6(&lab.ns("lab-a"), &backend6, 2),
        "lab-a still reaches {backend6}"
    );
    assert!(
        !ping6(&lab.ns("lab-b"), &backend6, 2),
        "lab-b still reaches {backend6}"
    );
    let lines = cap_up.stop();
    assert!(lines.is_empty(), "leaked: {lines:#?}");

    let t = Instant::now();
    let problems = lab.down();
    eprintln!("lab down in {:?}; test {:?}", t.elapsed(), t0.elapsed());
    assert!(problems.is_empty(), "{problems:?}");
    let left = leftovers(&id);
    assert!(left.is_empty(), "left behind: {left:#?}");
}
