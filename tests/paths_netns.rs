//! The traceroute engine against real kernels: a namespace chain with three
//! router hops (tests/paths_common). Needs root; runs in CI.

mod paths_common;

use matador::paths::model::Reply;
use matador::paths::{Proto, StopReason, Target, Trace, TraceConfig};
use paths_common::{Chain, Opts, split_hops, t1, t1_hops, t2};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

fn cfg(chain: &Chain) -> TraceConfig {
    TraceConfig {
        netns: Some(chain.ns("s")),
        wait: Duration::from_millis(700),
        pps: 500,
        max_ttl: 10,
        lab_only: true,
        ..TraceConfig::default()
    }
}

fn target(addr: IpAddr, proto: Proto) -> Target {
    Target {
        proto: Some(proto),
        ..Target::addr(addr)
    }
}

fn describe(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

#[test]
fn hops_equal_topology_tcp_udp_icmp_ipv4_ipv6() {
    let chain = Chain::build(Opts::default());
    let mut targets = Vec::new();
    for v6 in [false, true] {
        for p in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            targets.push(target(t1(v6), p));
        }
    }
    let traces = matador::paths::trace(&cfg(&chain), &targets).unwrap();
    assert_eq!(traces.len(), 6);
    for t in &traces {
        let v6 = t.af == 6;
        assert_eq!(t.hop_addrs(), t1_hops(v6), "{}", describe(t));
        assert_eq!(t.stop_reason, StopReason::Reached, "{}", describe(t));
        assert_eq!(
            t.packets,
            12,
            "3 probes × 4 hops, no overshoot: {}",
            describe(t)
        );
        for h in &t.result {
            assert_eq!(h.result.len(), 3);
            for r in &h.result {
                let a = r
                    .answer()
                    .unwrap_or_else(|| panic!("star in {}", describe(t)));
                // Every hop is one more decrement away (initial TTL 64).
                assert_eq!(u32::from(a.ttl), 65 - u32::from(h.hop), "{}", describe(t));
                assert!(a.rtt > 0.0 && a.rtt < 700.0);
                assert!(a.size > 0);
            }
        }
        let last = t.result.last().unwrap().result[0].answer().unwrap();
        match t.proto {
            Proto::Tcp => assert_eq!(last.flags.as_deref(), Some("RA")),
            _ => assert_eq!(last.err, None),
        }
        assert_eq!(
            t.src_addr,
            if v6 { "fd00:1::1" } else { "198.18.1.1" }
                .parse::<IpAddr>()
                .unwrap()
        );
    }
}

#[test]
fn silent_hop_gives_stars() {
    let chain = Chain::build(Opts::default());
    chain.silence("r2");
    let mut targets = Vec::new();
    for v6 in [false, true] {
        for p in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            targets.push(target(t1(v6), p));
        }
    }
    let traces = matador::paths::trace(&cfg(&chain), &targets).unwrap();
    for t in &traces {
        let mut want = t1_hops(t.af == 6);
        want[1] = None;
        assert_eq!(t.hop_addrs(), want, "{}", describe(t));
        assert!(t.result[1].result.iter().all(|r| *r == Reply::star()));
        assert_eq!(t.result[1].result.len(), 3);
        assert_eq!(t.stop_reason, StopReason::Reached);
    }
}

#[test]
fn gap_limit_and_max_ttl_stop_reasons() {
    let chain = Chain::build(Opts::default());
    for r in ["r2", "r3", "d"] {
        chain.silence(r);
    }
    // Make the target silent too: drop what reaches it.
    chain.exec("d", &["iptables", "-A", "INPUT", "-j", "DROP"]);
    let c = TraceConfig {
        gap_limit: 2,
        probes: 1,
        ..cfg(&chain)
    };
    let t = matador::paths::trace(&c, &[target(t1(false), Proto::Udp)])
        .unwrap()
        .remove(0);
    assert_eq!(t.stop_reason, StopReason::GapLimit, "{}", describe(&t));
    assert_eq!(t.result.len(), 3);
    let c = TraceConfig {
        max_ttl: 2,
        probes: 1,
        ..cfg(&chain)
    };
    let t = matador::paths::trace(&c, &[target(t1(true), Proto::Icmp)])
        .unwrap()
        .remove(0);
    assert_eq!(t.stop_reason, StopReason::MaxTtl, "{}", describe(&t));
    assert_eq!(t.result.len(), 2);
}

#[test]
fn paris_keeps_one_path_through_ecmp_and_ids_find_both() {
    let chain = Chain::build(Opts::default());
    for v6 in [false, true] {
        for p in [Proto::Udp, Proto::Tcp] {
            let targets: Vec<Target> = (1..=12u16)
                .map(|id| Target {
                    paris_id: Some(id),
                    ..target(t2(v6), p)
                })
                .collect();
            let c = TraceConfig {
                probes: 6,
                ..cfg(&chain)
            };
            let first = matador::paths::trace(&c, &targets).unwrap();
            let again = matador::paths::trace(&c, &targets).unwrap();
            let mut seen = BTreeSet::new();
            for (a, b) in first.iter().zip(&again) {
                let h2 = a.result[1].addrs();
                assert_eq!(h2.len(), 1, "one path per flow: {}", describe(a));
                assert_eq!(b.result[1].addrs(), h2, "same id, same path");
                seen.insert(h2[0]);
                assert_eq!(a.stop_reason, StopReason::Reached);
            }
            let want: BTreeSet<IpAddr> = split_hops(v6).into_iter().collect();
            assert_eq!(
                seen, want,
                "12 flow ids should use both branches ({p:?}, v6={v6})"
            );
        }
    }
}

/// scamper on the same chain, same targets: same hop lists.
#[test]
fn agrees_with_scamper() {
    let chain = Chain::build(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    // scamper 20211212 (Debian) records no answers for UDP over IPv6 on
    // Linux (the time-exceeded replies arrive, scamper drops them; checked
    // with tcpdump), so UDP is compared over IPv4 only.
    for (method, proto, families) in [
        ("icmp-paris", Proto::Icmp, &[false, true][..]),
        ("udp-paris", Proto::Udp, &[false][..]),
        ("tcp -d 443", Proto::Tcp, &[false, true][..]),
    ] {
        let list = dir.path().join("targets.txt");
        let text: String = families.iter().map(|v6| format!("{}\n", t1(*v6))).collect();
        std::fs::write(&list, text).unwrap();
        let out = chain.exec(
            "s",
            &[
                "scamper",
                "-O",
                "json",
                "-p",
                "500",
                "-c",
                &format!("trace -P {method} -q 3 -Q -w 1"),
                "-f",
                list.to_str().unwrap(),
            ],
        );
        let sc = matador::paths::scamper::parse(
            std::path::Path::new("scamper stdout"),
            &String::from_utf8_lossy(&out.stdout),
        )
        .unwrap();
        assert_eq!(
            sc.len(),
            families.len(),
            "scamper traced every target ({method})"
        );
        let targets: Vec<Target> = families.iter().map(|v6| target(t1(*v6), proto)).collect();
        let ours = matador::paths::trace(&cfg(&chain), &targets).unwrap();
        for s in &sc {
            let o = ours.iter().find(|o| o.dst_addr == s.dst_addr).unwrap();
            assert_eq!(s.proto, proto);
            assert_eq!(
                o.hop_addrs(),
                s.hop_addrs(),
                "{method}: ours {} scamper {}",
                describe(o),
                describe(s)
            );
            assert_eq!(s.stop_reason, StopReason::Reached);
            assert_eq!(o.hop_addrs(), t1_hops(o.af == 6));
        }
    }
}

#[test]
fn cli_json_store_and_lab_refusal() {
    let chain = Chain::build(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matador"))
        .args([
            "trace",
            "--netns",
            &chain.ns("s"),
            "--lab",
            "--proto",
            "tcp",
            "--port",
            "5222",
        ])
        .args(["--wait", "0.7", "--json", "--node", "de-1", "--out"])
        .arg(dir.path())
        .args(["198.18.4.2", "fd00:4::2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Trace> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for t in &lines {
        assert_eq!(t.dst_port, Some(5222));
        assert_eq!(t.hop_addrs(), t1_hops(t.af == 6));
        // The RIPE-Atlas fields are there under their names.
        let v: serde_json::Value = serde_json::to_value(t).unwrap();
        for k in [
            "af",
            "dst_addr",
            "src_addr",
            "proto",
            "paris_id",
            "timestamp",
            "result",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["result"][0]["result"][0].get("from").is_some());
    }
    let stored = matador::paths::record::read_traces(dir.path()).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(dir.path().join("traces/de-1--198.18.4.2.json").exists());
    assert!(dir.path().join("traces/de-1--fd00:4::2.json").exists());
    // Lab mode refuses a public target with a clear message, exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["trace", "--netns", &chain.ns("s"), "--lab", "192.0.2.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the virtual lab"));
}

#[test]
fn raw_sockets_refused_gives_clear_error() {
    // Drop root (uid 65534 has no CAP_NET_RAW). The binary is copied where
    // that user may execute it (the checkout may live under /root).
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("matador");
    std::fs::copy(env!("CARGO_BIN_EXE_matador"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&bin)
        .args(["trace", "198.18.4.2"])
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("raw sockets") && err.contains("CAP_NET_RAW"),
        "{err}"
    );
}

/// MDA-style enumeration finds both branches of the split, one interface
/// elsewhere, and stops by the 95% rule.
#[test]
fn mda_enumeration_finds_both_branches() {
    let chain = Chain::build(Opts::default());
    for v6 in [false, true] {
        let m =
            matador::paths::mda::enumerate(&cfg(&chain), &target(t2(v6), Proto::Udp), 64).unwrap();
        assert!(m.complete, "{m:?}");
        let want: BTreeSet<IpAddr> = split_hops(v6).into_iter().collect();
        let got: BTreeSet<IpAddr> = m.hops[&2].iter().copied().collect();
        assert_eq!(got, want);
        assert_eq!(m.hops[&1].len(), 1);
        // Linux sources ICMPv6 errors from the inbound interface (r3 answers
        // as fd00:6::2 when reached over r2b), ICMPv4 ones from the route
        // back (always 198.18.3.2).
        assert_eq!(
            m.hops[&3].len(),
            if v6 { 2 } else { 1 },
            "v6={v6} {:?}",
            m.hops
        );
        assert_eq!(
            m.flows, 11,
            "two interfaces seen: 11 flows rule out a third"
        );
    }
}

/// Hops (TTLs) of all traces that got at least one answer.
fn hops_found(traces: &[Trace]) -> usize {
    traces
        .iter()
        .map(|t| t.result.iter().filter(|h| !h.addrs().is_empty()).count())
        .sum()
}

/// With the kernel's default ICMP rate limits (burst 6, then 1/s per
/// source) many targets behind the same routers lose answers: losses are
/// stars, never wrong hops, and at equal packets per second and probe
/// settings matador finds at least as many hops as scamper.
#[test]
fn default_rate_limits_losses_are_stars_and_at_least_scamper_hops() {
    let chain = Chain::build(Opts {
        default_ratelimits: true,
    });
    let addrs: Vec<String> = (1..=12).map(|i| format!("198.19.10.{i}")).collect();
    for a in &addrs {
        chain.ip("d", &["addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("targets.txt");
    std::fs::write(&list, addrs.join("\n") + "\n").unwrap();
    let out = chain.exec(
        "s",
        &[
            "scamper",
            "-O",
            "json",
            "-p",
            "100",
            "-c",
            "trace -P icmp-paris -q 3 -Q -w 1",
            "-f",
            list.to_str().unwrap(),
        ],
    );
    let sc = matador::paths::scamper::parse(
        std::path::Path::new("scamper stdout"),
        &String::from_utf8_lossy(&out.stdout),
    )
    .unwrap();
    assert_eq!(sc.len(), 12);
    // Let the routers' ICMP rate-limit buckets refill before our run: the
    // kernel refills them with time (net.ipv4.icmp_ratelimit), which no
    // condition shows without spending tokens — a wait that is part of the
    // scenario, not a synchronisation.
    std::thread::sleep(Duration::from_secs(7));
    let c = TraceConfig {
        pps: 100,
        wait: Duration::from_secs(1),
        proto: Proto::Icmp,
        ..cfg(&chain)
    };
    let targets: Vec<Target> = addrs
        .iter()
        .map(|a| Target::addr(a.parse().unwrap()))
        .collect();
    let ours = matador::paths::trace(&c, &targets).unwrap();
    let chain_hops = t1_hops(false);
    let mut stars = 0;
    for t in &ours {
        assert_eq!(t.stop_reason, StopReason::Reached, "{}", describe(t));
        assert_eq!(t.result.len(), 4);
        for (i, h) in t.result.iter().enumerate().take(3) {
            for a in h.addrs() {
                assert_eq!(Some(a), chain_hops[i], "a loss never shows a wrong hop");
            }
            stars += h.result.iter().filter(|r| r.answer().is_none()).count();
        }
    }
    assert!(
        stars > 0,
        "36 probes per router in a burst must hit the rate limit"
    );
    let (ours_found, sc_found) = (hops_found(&ours), hops_found(&sc));
    assert!(
        ours_found >= sc_found,
        "matador found {ours_found} hops, scamper {sc_found}"
    );
    eprintln!("rate limits on: matador found {ours_found} hops, scamper {sc_found}");
}

/// A censor hop (r2) resets SYNs to T1 in T1's name: it appears as a hop
/// and the TCP trace reports the injected RST as such, not as the target;
/// ICMP still reaches the real target one hop further.
#[test]
fn injected_rst_is_reported_as_such() {
    let chain = Chain::build(Opts::default());
    chain.exec(
        "r2",
        &[
            "iptables",
            "-A",
            "FORWARD",
            "-p",
            "tcp",
            "--syn",
            "-d",
            "198.18.4.2",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ],
    );
    chain.exec(
        "r2",
        &[
            "ip6tables",
            "-A",
            "FORWARD",
            "-p",
            "tcp",
            "--syn",
            "-d",
            "fd00:4::2",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ],
    );
    let mut targets = Vec::new();
    for v6 in [false, true] {
        targets.push(target(t1(v6), Proto::Tcp));
        targets.push(target(t1(v6), Proto::Icmp));
    }
    let traces = matador::paths::trace(&cfg(&chain), &targets).unwrap();
    for t in &traces {
        let hops = t1_hops(t.af == 6);
        if t.proto == Proto::Icmp {
            assert_eq!(t.hop_addrs(), hops);
            assert_eq!(t.stop_reason, StopReason::Reached);
            continue;
        }
        assert_eq!(t.stop_reason, StopReason::InjectedRst, "{}", describe(t));
        assert_eq!(
            t.hop_addrs(),
            vec![hops[0], hops[1], hops[3]],
            "{}",
            describe(t)
        );
        let last = t.result[2].result[0].answer().unwrap();
        assert_eq!(last.injected, Some(true));
        assert_eq!(last.flags.as_deref(), Some("RA"));
    }
}

/// An unreachable from a hop that is not the target stops the trace with
/// its kind and Atlas error letter.
#[test]
fn unreachable_from_a_hop_stops_with_its_kind() {
    let chain = Chain::build(Opts::default());
    chain.exec(
        "r2",
        &[
            "iptables",
            "-A",
            "FORWARD",
            "-d",
            "198.18.4.2",
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-admin-prohibited",
        ],
    );
    chain.exec(
        "r2",
        &[
            "ip6tables",
            "-A",
            "FORWARD",
            "-d",
            "fd00:4::2",
            "-j",
            "REJECT",
            "--reject-with",
            "icmp6-adm-prohibited",
        ],
    );
    let targets: Vec<Target> = [false, true]
        .iter()
        .map(|v6| target(t1(*v6), Proto::Udp))
        .collect();
    for t in matador::paths::trace(&cfg(&chain), &targets).unwrap() {
        let hops = t1_hops(t.af == 6);
        assert_eq!(
            t.stop_reason,
            StopReason::UnreachProhibited,
            "{}",
            describe(&t)
        );
        assert_eq!(t.hop_addrs(), vec![hops[0], hops[1], hops[1]]);
        assert_eq!(
            t.result[2].result[0].answer().unwrap().err.as_deref(),
            Some("A")
        );
    }
}

/// `--geo-db`: every hop geolocated, plausibility from its RTT.
#[test]
fn cli_geolocates_hops() {
    use matador::geo::mmdb::{MmdbRecord, MmdbWriter};
    let chain = Chain::build(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let mut w = MmdbWriter::new("lab-country", "paths test");
    for (net, cc) in [
        ("198.18.1.0/24", "DE"),
        ("198.18.2.0/24", "DE"),
        ("198.18.3.0/24", "US"),
        ("198.18.4.0/24", "US"),
    ] {
        let rec = MmdbRecord {
            country_code: Some(cc.into()),
            asn: None,
            org: None,
        };
        w.insert_cidr(net, rec).unwrap();
    }
    let db = dir.path().join("lab.mmdb");
    w.write(&db).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matador"))
        .args([
            "trace",
            "--netns",
            &chain.ns("s"),
            "--lab",
            "--proto",
            "icmp",
            "--wait",
            "0.7",
            "--json",
            "--from",
            "DE",
            "--geo-db",
        ])
        .arg(&db)
        .arg("198.18.4.2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Trace = serde_json::from_slice(&out.stdout).unwrap();
    let geo: Vec<(Option<String>, String)> = t
        .result
        .iter()
        .map(|h| (h.geo[0].country.clone(), h.geo[0].plausibility.clone()))
        .collect();
    // US hops answering in well under a millisecond from Germany are implausible.
    let want = [
        ("DE", "plausible"),
        ("DE", "plausible"),
        ("US", "implausible"),
        ("US", "implausible"),
    ];
    assert_eq!(geo.len(), 4);
    for (g, w) in geo.iter().zip(want) {
        assert_eq!(
            (g.0.as_deref(), g.1.as_str()),
            (Some(w.0), w.1),
            "{}",
            describe(&t)
        );
    }
}

/// A wider TTL window (several TTLs awaiting answers at once) gives the same
/// hops, cut at the target, also across a silent hop.
#[test]
fn wider_window_same_hops() {
    let chain = Chain::build(Opts::default());
    chain.silence("r2");
    let c = TraceConfig {
        window: 4,
        ..cfg(&chain)
    };
    let targets: Vec<Target> = [false, true]
        .iter()
        .flat_map(|v6| [target(t1(*v6), Proto::Udp), target(t1(*v6), Proto::Tcp)])
        .collect();
    for t in matador::paths::trace(&c, &targets).unwrap() {
        let mut want = t1_hops(t.af == 6);
        want[1] = None;
        assert_eq!(t.hop_addrs(), want, "{}", describe(&t));
        assert_eq!(t.stop_reason, StopReason::Reached);
        assert!(t.packets >= 12);
    }
}
