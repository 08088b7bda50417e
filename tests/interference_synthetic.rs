//! One synthetic capture per interference rule, plus the look-alike normal
//! traffic each rule must leave alone. Captures are written with etherparse
//! builders into temporary pcap files and replayed like any other file.

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};
use matador::analysis::interference::control::ControlResolutions;
use matador::analysis::interference::{InterferenceConfig, analyze_capture};
use matador::analysis::model::{InterferenceEvent, InterferenceKind};
use matador::analysis::replay::{ReplayOptions, analyze_file};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

const CLIENT: [u8; 4] = [198, 18, 0, 2];
const RESOLVER: [u8; 4] = [9, 9, 9, 9];
const SERVER: [u8; 4] = [93, 184, 216, 34];

/// A classic pcap (Ethernet) being assembled in memory.
#[derive(Default)]
struct Pcap {
    frames: Vec<(f64, Vec<u8>)>,
}

struct Ip {
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    id: u16,
}

fn ip(src: [u8; 4], dst: [u8; 4], ttl: u8, id: u16) -> Ip {
    Ip { src, dst, ttl, id }
}

fn builder(h: &Ip, proto: IpNumber) -> etherparse::PacketBuilderStep<IpHeaders> {
    let mut v4 = Ipv4Header::new(0, h.ttl, proto, h.src, h.dst).unwrap();
    v4.identification = h.id;
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ip(IpHeaders::Ipv4(v4, Default::default()))
}

impl Pcap {
    fn udp(&mut self, t: f64, h: Ip, sport: u16, dport: u16, payload: &[u8]) {
        let b = builder(&h, IpNumber::UDP).udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        self.frames.push((t, out));
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t: f64,
        h: Ip,
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: &str,
        window: u16,
        payload: &[u8],
    ) {
        let mut b = builder(&h, IpNumber::TCP).tcp(sport, dport, seq, window);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'A' => b.ack(ack),
                'R' => b.rst(),
                'F' => b.fin(),
                'P' => b.psh(),
                _ => panic!("flag {f}"),
            };
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        self.frames.push((t, out));
    }

    /// ICMP port unreachable from `h.src` quoting `quoted` (an IP packet).
    fn port_unreachable(&mut self, t: f64, h: Ip, quoted: &[u8]) {
        let b = builder(&h, IpNumber::ICMP).icmpv4_raw(3, 3, [0; 4]);
        let mut out = Vec::new();
        b.write(&mut out, quoted).unwrap();
        self.frames.push((t, out));
    }

    fn write(&self, path: &std::path::Path) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        for (t, f) in &self.frames {
            let secs = 1_700_000_000 + t.trunc() as u32;
            let usecs = (t.fract() * 1e6).round() as u32;
            bytes.extend_from_slice(&secs.to_le_bytes());
            bytes.extend_from_slice(&usecs.to_le_bytes());
            bytes.extend_from_slice(&(f.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(f.len() as u32).to_le_bytes());
            bytes.extend_from_slice(f);
        }
        std::fs::write(path, bytes).unwrap();
    }

    /// Replays the capture like `matador replay` does.
    fn events(&self) -> Vec<InterferenceEvent> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.pcap");
        self.write(&path);
        let r = analyze_file(&path, &ReplayOptions::default());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r.interference
    }

    /// Runs the interference rules alone with `cfg`.
    fn events_with(&self, cfg: InterferenceConfig) -> Vec<InterferenceEvent> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.pcap");
        self.write(&path);
        analyze_capture(&path, cfg).unwrap()
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    m.extend(encode_name(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn dns_reply(id: u16, name: &str, addrs: &[[u8; 4]]) -> Vec<u8> {
    let n = addrs.len() as u8;
    let mut m = vec![
        (id >> 8) as u8,
        id as u8,
        0x81,
        0x80,
        0,
        1,
        0,
        n,
        0,
        0,
        0,
        0,
    ];
    m.extend(encode_name(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    for a in addrs {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        m.extend_from_slice(a);
    }
    m
}

/// A plain query/answer exchange (no interference).
fn lookup(p: &mut Pcap, t: f64, id: u16, name: &str, addr: [u8; 4], ttl: u8, ipid: u16) {
    p.udp(
        t,
        ip(CLIENT, RESOLVER, 64, id),
        40000 + id,
        53,
        &dns_query(id, name),
    );
    p.udp(
        t + 0.03,
        ip(RESOLVER, CLIENT, ttl, ipid),
        53,
        40000 + id,
        &dns_reply(id, name, &[addr]),
    );
}

fn rules(ev: &[InterferenceEvent]) -> Vec<(&str, Vec<u64>)> {
    ev.iter()
        .map(|e| (e.rule.as_str(), e.frames.clone()))
        .collect()
}

#[test]
fn known_forged_answer() {
    let mut p = Pcap::default();
    lookup(
        &mut p,
        0.0,
        1,
        "www.kakao.com",
        [46, 82, 174, 68],
        57,
        0x1111,
    );
    lookup(
        &mut p,
        1.0,
        2,
        "example.org",
        [93, 184, 216, 34],
        57,
        0x9a01,
    );
    let ev = p.events();
    assert_eq!(rules(&ev), vec![("known_forged_answer", vec![2])]);
    assert_eq!(ev[0].kind, InterferenceKind::DnsForgery);
    assert_eq!(ev[0].evidence["forged_addresses"][0], "46.82.174.68");
    assert_eq!(ev[0].evidence["query_frame"], 1);
    assert_eq!(ev[0].confidence, 0.95);
}

#[test]
fn bogon_answer_for_public_name_but_not_local_policy() {
    let mut p = Pcap::default();
    lookup(&mut p, 0.0, 1, "line.me", [127, 0, 0, 1], 57, 0x1111);
    lookup(&mut p, 1.0, 2, "router.lan", [127, 0, 0, 1], 57, 0x2222); // local name
    lookup(
        &mut p,
        2.0,
        3,
        "chat.example.net",
        [10, 1, 2, 3],
        57,
        0x3333,
    ); // private from a public resolver
    // A home router sinkholing an ad domain to its own LAN: local policy.
    let router = [192, 168, 1, 1];
    p.udp(
        3.0,
        ip(CLIENT, router, 64, 7),
        40100,
        53,
        &dns_query(9, "ads.example.com"),
    );
    p.udp(
        3.01,
        ip(router, CLIENT, 64, 8),
        53,
        40100,
        &dns_reply(9, "ads.example.com", &[[192, 168, 1, 157]]),
    );
    let ev = p.events();
    assert_eq!(
        rules(&ev),
        vec![("bogon_answer", vec![2]), ("bogon_answer", vec![6])]
    );
    assert_eq!(ev[0].confidence, 0.8);
    assert_eq!(ev[0].evidence["categories"][0], "loopback");
    assert_eq!(ev[1].confidence, 0.5);
}

#[test]
fn duplicate_reply_race_with_port_unreachable() {
    let mut p = Pcap::default();
    // The resolver's habits: TTL 57.
    for i in 0..4u16 {
        lookup(
            &mut p,
            f64::from(i),
            10 + i,
            "example.org",
            [93, 184, 216, 34],
            57,
            0x4000 + i * 97,
        );
    }
    let q = dns_query(0x77, "line.naver.jp");
    p.udp(5.0, ip(CLIENT, RESOLVER, 64, 1), 41000, 53, &q); // frame 9
    p.udp(
        5.004,
        ip(RESOLVER, CLIENT, 201, 0x0bad),
        53,
        41000,
        &dns_reply(0x77, "line.naver.jp", &[[45, 33, 12, 7]]),
    ); // 10: injector
    let genuine = dns_reply(0x77, "line.naver.jp", &[[147, 92, 128, 3]]);
    p.udp(5.09, ip(RESOLVER, CLIENT, 57, 0x5123), 53, 41000, &genuine); // 11
    // The client's socket is closed: its kernel answers port unreachable,
    // quoting the genuine reply's IP + UDP headers and DNS header.
    let mut quoted = Vec::new();
    builder(&ip(RESOLVER, CLIENT, 57, 0x5123), IpNumber::UDP)
        .udp(53, 41000)
        .write(&mut quoted, &genuine)
        .unwrap();
    quoted.drain(..14); // strip Ethernet
    quoted.truncate(20 + 8 + 12);
    p.port_unreachable(5.0901, ip(CLIENT, RESOLVER, 64, 2), &quoted); // 12
    let ev = p.events();
    assert_eq!(rules(&ev), vec![("duplicate_reply", vec![10, 11])]);
    let e = &ev[0];
    assert_eq!(e.evidence["suspect_reason"], "resolver_misfit");
    assert_eq!(e.evidence["forged_addresses"][0], "45.33.12.7");
    assert_eq!(e.evidence["icmp_unreachable_frames"][0], 12);
    assert_eq!(e.evidence["replies"][0]["ip_ttl"], 201);
    assert_eq!(e.confidence, 0.95);
}

#[test]
fn duplicate_replies_from_the_resolver_itself_are_not_a_race() {
    let mut p = Pcap::default();
    let q = dns_query(0x78, "cdn.example.org");
    p.udp(0.0, ip(CLIENT, RESOLVER, 64, 1), 41000, 53, &q);
    p.udp(1.0, ip(CLIENT, RESOLVER, 64, 2), 41000, 53, &q); // retransmission
    // Round-robin answers to the two transmissions, same TTL, one IP-ID counter.
    p.udp(
        1.02,
        ip(RESOLVER, CLIENT, 57, 0x100),
        53,
        41000,
        &dns_reply(0x78, "cdn.example.org", &[[151, 101, 1, 1]]),
    );
    p.udp(
        1.03,
        ip(RESOLVER, CLIENT, 57, 0x101),
        53,
        41000,
        &dns_reply(0x78, "cdn.example.org", &[[151, 101, 65, 1]]),
    );
    assert!(p.events().is_empty());
}

#[test]
fn resolver_misfit_ttl() {
    let mut p = Pcap::default();
    // Random IP-IDs (no expectation), stable TTL 57.
    for (i, id) in [0x4000u16, 0x9a13, 0x1f77, 0xd302].into_iter().enumerate() {
        lookup(
            &mut p,
            i as f64,
            10 + i as u16,
            "example.org",
            [93, 184, 216, 34],
            57,
            id,
        );
    }
    lookup(
        &mut p,
        5.0,
        20,
        "line.naver.jp",
        [45, 33, 12, 7],
        118,
        0x1234,
    );
    let ev = p.events();
    assert_eq!(rules(&ev), vec![("resolver_misfit", vec![10])]);
    assert_eq!(ev[0].evidence["expected_ip_ttl"], 57);
    assert_eq!(ev[0].evidence["ip_ttl"], 118);
    assert_eq!(ev[0].confidence, 0.45);
}

#[test]
fn stable_resolver_gives_nothing() {
    let mut p = Pcap::default();
    for i in 0..8u16 {
        let ttl = if i % 3 == 0 { 56 } else { 57 }; // ±1 jitter is normal
        lookup(
            &mut p,
            f64::from(i),
            10 + i,
            "example.org",
            [93, 184, 216, 34],
            ttl,
            0x4000 + i * 977,
        );
    }
    assert!(p.events().is_empty());
}

#[test]
fn control_inconsistency() {
    let mut p = Pcap::default();
    lookup(&mut p, 0.0, 1, "line.naver.jp", [45, 33, 12, 7], 57, 1);
    lookup(&mut p, 1.0, 2, "cdn.example.org", [151, 101, 65, 1], 57, 2);
    let control = ControlResolutions::from_json(
        "control.json",
        r#"{"line.naver.jp": ["147.92.128.3"], "cdn.example.org": ["151.101.1.1"]}"#,
    )
    .unwrap();
    let mut asn = BTreeMap::new();
    for (a, n) in [
        ("147.92.128.3", 38631u32),
        ("45.33.12.7", 63949),
        ("151.101.1.1", 54113),
        ("151.101.65.1", 54113),
    ] {
        asn.insert(a.parse().unwrap(), n);
    }
    let ev = p.events_with(InterferenceConfig {
        control,
        asn: Some(Arc::new(asn)),
        keywords: vec![],
        exempt: vec![],
    });
    assert_eq!(rules(&ev), vec![("control_inconsistency", vec![2])]);
    assert_eq!(ev[0].confidence, 0.7);
    assert_eq!(ev[0].evidence["control_asns"][0], 38631);
    // Without control data the same capture is clean.
    assert!(p.events().is_empty());
}

/// Handshake + request; returns the next frame's time. Server TTL 50, IP-IDs 0x2000…
fn http_start(p: &mut Pcap, host: &str) {
    p.tcp(
        0.0,
        ip(CLIENT, SERVER, 64, 1),
        50000,
        80,
        1000,
        0,
        "S",
        64240,
        b"",
    ); // 1
    p.tcp(
        0.1,
        ip(SERVER, CLIENT, 50, 0x2000),
        80,
        50000,
        7000,
        1001,
        "SA",
        65160,
        b"",
    ); // 2
    p.tcp(
        0.1001,
        ip(CLIENT, SERVER, 64, 2),
        50000,
        80,
        1001,
        7001,
        "A",
        502,
        b"",
    ); // 3
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n");
    p.tcp(
        0.1002,
        ip(CLIENT, SERVER, 64, 3),
        50000,
        80,
        1001,
        7001,
        "PA",
        502,
        req.as_bytes(),
    ); // 4
    p.tcp(
        0.2,
        ip(SERVER, CLIENT, 50, 0x2001),
        80,
        50000,
        7001,
        1001 + req.len() as u32,
        "A",
        509,
        b"",
    ); // 5
}

#[test]
fn injected_rst_after_keyword_request() {
    let mut p = Pcap::default();
    http_start(&mut p, "line.me");
    p.tcp(
        0.12,
        ip(SERVER, CLIENT, 119, 0x0042),
        80,
        50000,
        7001,
        0,
        "R",
        0,
        b"",
    ); // 6 (arrives before the server's data)
    p.tcp(
        0.3,
        ip(SERVER, CLIENT, 50, 0x2002),
        80,
        50000,
        7001,
        1050,
        "PA",
        509,
        b"HTTP/1.1 200 OK\r\n\r\n",
    ); // 7
    let ev = p.events();
    assert_eq!(rules(&ev), vec![("injected_rst", vec![6])]);
    let e = &ev[0];
    assert_eq!(e.evidence["expected_ip_ttl"], 50);
    assert_eq!(e.evidence["keyword"], "line.me");
    assert_eq!(e.evidence["trigger_frame"], 4);
    assert_eq!(e.evidence["server_continued_frames"][0], 7);
    assert_eq!(e.injector_hops, Some(9));
    assert_eq!(e.evidence["server_hops"], 14);
    assert_eq!(e.confidence, 0.95);
}

#[test]
fn injected_blockpage() {
    let mut p = Pcap::default();
    http_start(&mut p, "blocked.example.org");
    let page = b"HTTP/1.1 302 Found\r\nLocation: http://10.10.34.34/\r\n\r\n";
    p.tcp(
        0.15,
        ip(SERVER, CLIENT, 50, 0x9999),
        80,
        50000,
        7001,
        1050,
        "PAF",
        8192,
        page,
    ); // 6
    let ev = p.events();
    assert_eq!(rules(&ev), vec![("injected_http_response", vec![6])]);
    assert_eq!(ev[0].evidence["http_status_line"], "HTTP/1.1 302 Found");
    assert_eq!(
        ev[0].evidence["expected_window"],
        serde_json::json!([509, 509])
    );
    assert!(ev[0].evidence.contains_key("expected_ip_id_near"));
    assert_eq!(ev[0].confidence, 0.5);
}

#[test]
fn genuine_responses_resets_and_fins_are_not_injections() {
    let mut p = Pcap::default();
    http_start(&mut p, "line.me");
    p.tcp(
        0.3,
        ip(SERVER, CLIENT, 50, 0x2002),
        80,
        50000,
        7001,
        1050,
        "PA",
        509,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ); // 6
    p.tcp(
        0.31,
        ip(SERVER, CLIENT, 50, 0x2003),
        80,
        50000,
        7040,
        1050,
        "FA",
        509,
        b"",
    ); // 7
    p.tcp(
        0.32,
        ip(CLIENT, SERVER, 64, 4),
        50000,
        80,
        1050,
        7041,
        "FA",
        502,
        b"",
    );
    // Linux sends its RST for a late segment with IP-ID 0 and window 0.
    p.tcp(
        0.5,
        ip(SERVER, CLIENT, 49, 0),
        80,
        50000,
        7041,
        0,
        "R",
        0,
        b"",
    );
    // Connection refused by a closed port: RST/ACK with the server's TTL.
    p.tcp(
        1.0,
        ip(CLIENT, SERVER, 64, 5),
        50001,
        81,
        5000,
        0,
        "S",
        64240,
        b"",
    );
    p.tcp(
        1.1,
        ip(SERVER, CLIENT, 50, 0),
        81,
        50001,
        0,
        5001,
        "RA",
        0,
        b"",
    );
    // Our own RST (TTL 64: not routed) is never suspect.
    p.tcp(
        1.2,
        ip(CLIENT, SERVER, 64, 6),
        50000,
        80,
        1051,
        0,
        "R",
        0,
        b"",
    );
    assert!(p.events().is_empty(), "{:#?}", p.events());
}

#[test]
fn bogus_synack_on_other_ports() {
    let mut p = Pcap::default();
    let forged = [37, 61, 54, 158];
    lookup(&mut p, 0.0, 1, "line.naver.jp", forged, 57, 1); // frames 1-2
    p.tcp(
        0.1,
        ip(CLIENT, forged, 64, 1),
        44858,
        80,
        3268694744,
        0,
        "S",
        14600,
        b"",
    ); // 3
    p.tcp(
        0.11,
        ip(forged, CLIENT, 72, 0x76c9),
        20480,
        15023,
        99,
        3268694745,
        "SA",
        35726,
        b"\0\0\0\0\0",
    ); // 4
    p.tcp(
        0.1101,
        ip(CLIENT, forged, 64, 2),
        15023,
        20480,
        3268694745,
        0,
        "R",
        0,
        b"",
    ); // 5
    // A normal handshake elsewhere.
    p.tcp(
        1.0,
        ip(CLIENT, SERVER, 64, 3),
        50000,
        443,
        1,
        0,
        "S",
        64240,
        b"",
    );
    p.tcp(
        1.1,
        ip(SERVER, CLIENT, 50, 0),
        443,
        50000,
        9,
        2,
        "SA",
        65160,
        b"",
    );
    let ev = p.events();
    assert_eq!(
        rules(&ev),
        vec![("known_forged_answer", vec![2]), ("bogus_synack", vec![4])]
    );
    let e = &ev[1];
    assert_eq!(e.evidence["syn_frame"], 3);
    assert_eq!(
        e.evidence["synack_ports"],
        serde_json::json!([20480, 15023])
    );
    assert_eq!(e.evidence["dns_forged_address"], true);
    assert_eq!(e.confidence, 0.95);
    assert_eq!(e.claimed_src, std::net::IpAddr::V4(Ipv4Addr::from(forged)));
}

#[test]
fn server_counter_passing_through_a_known_injector_id_is_not_an_injection() {
    let mut p = Pcap::default();
    p.tcp(
        0.0,
        ip(CLIENT, SERVER, 64, 1),
        50000,
        80,
        1000,
        0,
        "S",
        64240,
        b"",
    );
    p.tcp(
        0.1,
        ip(SERVER, CLIENT, 50, 0x3410),
        80,
        50000,
        7000,
        1001,
        "SA",
        65160,
        b"",
    );
    let req = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n";
    p.tcp(
        0.1001,
        ip(CLIENT, SERVER, 64, 2),
        50000,
        80,
        1001,
        7001,
        "PA",
        502,
        req,
    );
    p.tcp(
        0.2,
        ip(SERVER, CLIENT, 50, 0x3411),
        80,
        50000,
        7001,
        1038,
        "A",
        509,
        b"",
    );
    // The genuine response's counter value happens to be PacketLogic's 0x3412.
    let resp = b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://example.org/\r\n\r\n";
    p.tcp(
        0.21,
        ip(SERVER, CLIENT, 50, 0x3412),
        80,
        50000,
        7001,
        1038,
        "PAF",
        509,
        resp,
    );
    assert!(p.events().is_empty(), "{:#?}", p.events());
}

/// Deterministic xorshift, so a failure replays identically.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_never_panics_and_events_stay_well_formed() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut p = Pcap::default();
    let hosts = [CLIENT, RESOLVER, SERVER, [37, 61, 54, 158]];
    for i in 0..3000u32 {
        let t = f64::from(i) * 0.01;
        let a = hosts[(rng.next() % 4) as usize];
        let b = hosts[(rng.next() % 4) as usize];
        let h = ip(a, b, (rng.next() % 256) as u8, rng.next() as u16);
        let ports = [53u16, 80, 443, 40000, (rng.next() % 65536) as u16];
        let sp = ports[(rng.next() % 5) as usize];
        let dp = ports[(rng.next() % 5) as usize];
        match rng.next() % 4 {
            0 => {
                // DNS-ish: a real header then random bytes, or pure noise.
                let mut m = if rng.next().is_multiple_of(2) {
                    dns_reply(rng.next() as u16, "line.naver.jp", &[[46, 82, 174, 68]])
                } else {
                    Vec::new()
                };
                m.truncate((rng.next() % 80) as usize);
                m.extend(rng.bytes(60));
                p.udp(t, h, sp, dp, &m);
            }
            1 | 2 => {
                let flags: String = ["S", "A", "R", "F", "P"]
                    .iter()
                    .filter(|_| rng.next().is_multiple_of(3))
                    .copied()
                    .collect();
                let payload = if rng.next().is_multiple_of(3) {
                    b"HTTP/1.1 302 Found\r\n\r\n".to_vec()
                } else {
                    rng.bytes(40)
                };
                let (seq, ack, win) = (rng.next() as u32, rng.next() as u32, rng.next() as u16);
                p.tcp(t, h, sp, dp, seq, ack, &flags, win, &payload);
            }
            _ => {
                let q = rng.bytes(70);
                p.port_unreachable(t, h, &q);
            }
        }
    }
    let ev = p.events();
    // The noise still holds listed answers and odd handshakes: rules ran.
    assert!(!ev.is_empty());
    for e in &ev {
        assert!((0.0..=1.0).contains(&e.confidence), "{e:?}");
        assert!(!e.frames.is_empty(), "{e:?}");
        assert!(e.rule.kind() == Some(e.kind.clone()), "{e:?}");
    }
}

/// Sandvine/PacketLogic style (issue 22): the injector sends its HTTP 307
/// with FIN and a bare ACK, both with its IP-ID and window; both frames are
/// one injection, reported as one event.
#[test]
fn injection_with_bare_ack_is_one_event() {
    let mut p = Pcap::default();
    http_start(&mut p, "line.me");
    let page: &[u8] = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://198.18.0.9/\r\n\r\n";
    // Frames 6 (307 + FIN) and 7 (bare ACK) from the injector: TTL 44,
    // IP-ID 0x3412, window 32120; frame 8 from the genuine server (TTL 50,
    // its counter, window 509) is not part of the injection.
    let fin_seq = 7001 + page.len() as u32 + 1;
    /// time, TTL, IP-ID, seq, flags, window, payload
    type Sent<'a> = (f64, u8, u16, u32, &'a str, u16, &'a [u8]);
    let packets: [Sent<'_>; 3] = [
        (0.15, 44, 0x3412, 7001, "PAF", 32120, page),
        (0.1502, 44, 0x3412, fin_seq, "A", 32120, b""),
        (0.3, 50, 0x2002, 7001, "A", 509, b""),
    ];
    for (t, ttl, id, seq, flags, window, payload) in packets {
        let h = ip(SERVER, CLIENT, ttl, id);
        p.tcp(t, h, 80, 50000, seq, 1050, flags, window, payload);
    }
    let ev = p.events();
    assert_eq!(rules(&ev), vec![("injected_http_response", vec![6, 7])]);
    assert_eq!(
        ev[0].evidence["injection_frames"],
        serde_json::json!([6, 7])
    );
}
