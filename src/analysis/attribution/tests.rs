use super::*;
use crate::analysis::model::DnsAnswer;
use crate::analysis::names::stream::testpkt::{tcp, udp};
use crate::analysis::packet::tcp_flags::{ACK, PSH, SYN};

/// Bytes from a hex string (test data copied from tshark).
pub(super) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ts(s: i64) -> Timestamp {
    Timestamp::new(s, 0, 6)
}

fn flow(proto: &str, src: &str, sport: u16, dst: &str, dport: u16, first: i64) -> FlowRecord {
    FlowRecord {
        proto: proto.into(),
        src: src.parse().unwrap(),
        sport,
        dst: dst.parse().unwrap(),
        dport,
        packets: 10,
        bytes: 1000,
        first_ts: ts(first),
        last_ts: ts(first + 10),
        tcp_flags: String::new(),
        sni: None,
        app: None,
        evidence: Vec::new(),
        encap: Vec::new(),
    }
}

fn dns(at: i64, query: &str, chain: &[(&str, &str, &str)]) -> DnsRecord {
    DnsRecord {
        frame: at as u64,
        ts: ts(at),
        transport: "udp".into(),
        server: "192.168.1.1".parse().unwrap(),
        client: "192.168.1.2".parse().unwrap(),
        id: 1,
        query: query.into(),
        qtype: "A".into(),
        rcode: Some("NOERROR".into()),
        ip_ttl: Some(64),
        ip_id: Some(1),
        answers: chain
            .iter()
            .map(|(n, t, d)| DnsAnswer {
                name: n.to_string(),
                rtype: t.to_string(),
                data: d.to_string(),
                ttl: 60,
            })
            .collect(),
    }
}

fn attributor() -> Attributor {
    Attributor::new(Arc::new(AppProfiles::try_builtin().unwrap()))
}

#[test]
fn fingerprints_from_real_first_payloads() {
    // nDPI whatsapp.pcap frame 3 (edge routing header) and whatsapp_login_chat.pcap frame 8
    assert_eq!(
        fingerprint(&hex("45440001"), false, true),
        Some((Fingerprint::WhatsappNoise, true))
    );
    assert_eq!(
        fingerprint(
            &hex("5741010500001af80501a59189fc126950686f6e"),
            false,
            true
        ),
        Some((Fingerprint::WhatsappNoise, true))
    );
    // citizenlab WeChat capture frame 33 (client MMTLS) and a server reply seen first
    let mmtls = hex("16f104016e0000016a0104f102c02b00a88c4577");
    assert_eq!(
        fingerprint(&mmtls, false, true),
        Some((Fingerprint::WechatMmtls, true))
    );
    assert_eq!(
        fingerprint(&mmtls, false, false),
        Some((Fingerprint::WechatMmtls, false))
    );
    // nDPI telegram.pcap frame 170 (40-byte UDP reflector request) and
    // frame 176 (its 64-byte answer, sent by the reflector).
    let refl =
        hex("dc4c00291565b7acbc236da9eda0d597fffffffffffffffffffffffffeffffff28f946112601a2f0");
    assert_eq!(
        fingerprint(&refl, true, true),
        Some((Fingerprint::TelegramReflector, true))
    );
    let answer = hex(concat!(
        "dc4c00291565b7acbc236da9eda0d597ffffffffffffffffffffffffc77215c0",
        "60dab25e28f946112601a2f000000000000000000000ffff570bcdc35ddc0000"
    ));
    assert_eq!(
        fingerprint(&answer, true, true),
        Some((Fingerprint::TelegramReflector, false))
    );
}

/// nDPI skinny.pcap: G.711 µ-law silence in plain RTP between two office
/// IP phones (192.168.195.58:32150 -> 192.168.193.24:9395, 172-byte
/// payloads, all 0xff after the 12-byte RTP header) is not a reflector, at
/// any length.
#[test]
fn rtp_silence_is_not_a_telegram_reflector() {
    let mut rtp = hex("8080059b0002e0c0f6bf57e2");
    rtp.extend(vec![0xff; 160]);
    for len in [32, 40, 48, 64, 72, 172] {
        assert_eq!(fingerprint(&rtp[..len], true, true), None, "{len}");
    }
    // Silence after a run-length tag, with the request's marker word.
    let mut fake = vec![0xffu8; 28];
    fake.extend([0xfe, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(fingerprint(&fake, true, true), None);
}

#[test]
fn loco_and_mtproto_headers() {
    let mut loco = vec![1, 0, 0, 0, 0, 0];
    loco.extend_from_slice(b"CHECKIN\0\0\0\0");
    loco.push(0);
    loco.extend_from_slice(&20u32.to_le_bytes());
    loco.extend_from_slice(&20u32.to_le_bytes());
    loco.extend_from_slice(&[0; 16]);
    assert_eq!(
        fingerprint(&loco, false, true),
        Some((Fingerprint::KakaoLoco, true))
    );
    let mut secure = 256u32.to_le_bytes().to_vec();
    secure.extend_from_slice(&16u32.to_le_bytes());
    secure.extend_from_slice(&2u32.to_le_bytes());
    secure.extend(vec![0x5a; 256]);
    assert_eq!(
        fingerprint(&secure, false, true),
        Some((Fingerprint::KakaoLoco, true))
    );
    let mut abridged = vec![0xef, 10];
    abridged.extend(vec![0u8; 40]);
    assert_eq!(
        fingerprint(&abridged, false, true),
        Some((Fingerprint::TelegramMtproto, true))
    );
    let mut inter = vec![0xee; 4];
    inter.extend_from_slice(&40u32.to_le_bytes());
    inter.extend(vec![1u8; 40]);
    assert_eq!(
        fingerprint(&inter, false, true),
        Some((Fingerprint::TelegramMtproto, true))
    );
    inter.push(0);
    assert_eq!(fingerprint(&inter, false, true), None, "length must match");
}

#[test]
fn common_protocols_are_not_fingerprinted() {
    let samples: [&[u8]; 6] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        &[0x17, 0x03, 0x03, 0x00, 0x20],
        &[0xef, 0x01, 0x02],
    ];
    for s in samples {
        assert_eq!(fingerprint(s, false, true), None, "{s:?}");
        assert_eq!(fingerprint(s, true, true), None, "{s:?}");
    }
    let mut seed = 7u32;
    for _ in 0..5000 {
        let p: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        assert_eq!(fingerprint(&p, true, true), None);
        if let Some((fp, _)) = fingerprint(&p, false, true) {
            // only the two-byte/three-byte magics can fire by chance; none should in 5000 tries
            panic!("random payload fingerprinted as {fp:?}: {p:02x?}");
        }
    }
}

#[test]
fn dns_earlier_wins_later_dns_does_not_count() {
    let a = attributor();
    let mut flows = vec![
        flow("tcp", "192.168.1.2", 40000, "157.240.1.53", 443, 100),
        flow("tcp", "192.168.1.2", 40001, "157.240.1.54", 443, 100),
    ];
    let d = [
        dns(
            90,
            "e1.whatsapp.net",
            &[
                ("e1.whatsapp.net", "CNAME", "mmx-ds.cdn.whatsapp.net"),
                ("mmx-ds.cdn.whatsapp.net", "A", "157.240.1.53"),
            ],
        ),
        dns(
            150,
            "e2.whatsapp.net",
            &[("e2.whatsapp.net", "A", "157.240.1.54")],
        ),
    ];
    let servers = a.finish(&mut flows, &d, &[], &[]);
    assert_eq!(flows[0].app.as_deref(), Some("whatsapp"));
    assert_eq!(
        flows[1].app, None,
        "resolved only after the flow started; Meta block on 443 is not enough"
    );
    assert_eq!(servers.len(), 1);
    let s = &servers[0];
    assert_eq!(
        (s.app.as_str(), s.port, s.proto.as_str()),
        ("whatsapp", 443, "tcp")
    );
    assert_eq!(
        s.evidence,
        ["dns:e1.whatsapp.net", "dns:mmx-ds.cdn.whatsapp.net"]
    );
    assert!(s.names.contains(&"e1.whatsapp.net".to_string()));
}

#[test]
fn sni_fingerprint_prefix_and_ordering() {
    let mut a = attributor();
    // WhatsApp chat on 5222 with the Noise edge header
    a.packet(&tcp(
        1,
        "192.168.2.100",
        49026,
        "179.60.195.33",
        5222,
        0,
        SYN,
        &[],
    ));
    a.packet(&tcp(
        2,
        "192.168.2.100",
        49026,
        "179.60.195.33",
        5222,
        1,
        ACK | PSH,
        b"ED\x00\x01",
    ));
    let mut flows = vec![
        flow("tcp", "192.168.2.100", 49026, "179.60.195.33", 5222, 1),
        flow("tcp", "192.168.2.17", 57026, "35.169.3.40", 443, 1),
        flow("udp", "192.168.1.77", 28150, "91.108.8.1", 533, 1),
        flow("tcp", "192.168.1.77", 5000, "149.154.167.51", 443, 1),
    ];
    let tls = [TlsRecord {
        frame: 5,
        ts: ts(1),
        src: "192.168.2.17".parse().unwrap(),
        sport: 57026,
        dst: "35.169.3.40".parse().unwrap(),
        dport: 443,
        sni: Some("textsecure-service.whispersystems.org".into()),
        alpn: vec![],
        proto: "tls".into(),
    }];
    let servers = a.finish(&mut flows, &[], &tls, &[]);
    let apps: Vec<Option<&str>> = flows.iter().map(|f| f.app.as_deref()).collect();
    assert_eq!(
        apps,
        [
            Some("whatsapp"),
            Some("signal"),
            Some("telegram"),
            Some("telegram")
        ]
    );
    assert_eq!(
        flows[1].sni.as_deref(),
        Some("textsecure-service.whispersystems.org")
    );
    let wa = servers.iter().find(|s| s.app == "whatsapp").unwrap();
    assert_eq!(
        wa.evidence,
        ["fingerprint:whatsapp-noise", "prefix:179.60.192.0/22"]
    );
    let sig = servers.iter().find(|s| s.app == "signal").unwrap();
    assert_eq!(sig.evidence, ["sni:textsecure-service.whispersystems.org"]);
    // apps in profile order: whatsapp, signal, telegram
    let order: Vec<&str> = servers.iter().map(|s| s.app.as_str()).collect();
    assert_eq!(order, ["whatsapp", "signal", "telegram", "telegram"]);
}

#[test]
fn foreign_sni_vetoes_address_only_attribution() {
    let a = attributor();
    let mut flows = vec![flow("tcp", "10.0.0.2", 5000, "149.154.167.51", 443, 1)];
    let tls = [TlsRecord {
        frame: 1,
        ts: ts(1),
        src: "10.0.0.2".parse().unwrap(),
        sport: 5000,
        dst: "149.154.167.51".parse().unwrap(),
        dport: 443,
        sni: Some("www.example.org".into()),
        alpn: vec![],
        proto: "tls".into(),
    }];
    assert!(a.finish(&mut flows, &[], &tls, &[]).is_empty());
    assert_eq!(flows[0].app, None);
}

#[test]
fn wechat_httpdns_mapped_addresses_and_mmtls_over_http() {
    let a = attributor();
    let mut d = dns(
        5,
        "long.weixin.qq.com",
        &[
            ("long.weixin.qq.com", "AAAA", "::ffff:43.130.30.185"),
            ("long.weixin.qq.com", "A", "43.130.30.185"),
        ],
    );
    d.transport = "wechat-httpdns".into();
    let mut flows = vec![
        flow("tcp", "10.0.2.16", 33000, "43.130.30.185", 8080, 6),
        flow("tcp", "10.0.2.16", 33001, "49.51.67.253", 80, 6),
    ];
    let http = [HttpRecord {
        frame: 7,
        ts: ts(7),
        src: "10.0.2.16".parse().unwrap(),
        dst: "49.51.67.253".parse().unwrap(),
        dport: 80,
        method: "POST".into(),
        path: "/mmtls/2a9b1264".into(),
        host: Some("sgshort.wechat.com".into()),
    }];
    let servers = a.finish(&mut flows, &[d], &[], &http);
    assert_eq!(flows[0].app.as_deref(), Some("wechat"));
    assert_eq!(flows[1].app.as_deref(), Some("wechat"));
    assert_eq!(servers[0].evidence, ["wechat-httpdns:long.weixin.qq.com"]);
    assert_eq!(
        servers[1].evidence,
        ["host:sgshort.wechat.com", "fingerprint:wechat-mmtls"]
    );
}

#[test]
fn asn_lookup_counts_only_on_app_ports() {
    let a = attributor().with_asn_lookup(Box::new(|ip| {
        (ip.to_string() == "203.0.113.9").then_some(62041)
    }));
    let mut flows = vec![
        flow("tcp", "10.0.0.2", 5000, "203.0.113.9", 443, 1),
        flow("tcp", "10.0.0.2", 5001, "203.0.113.9", 8443, 1),
    ];
    let servers = a.finish(&mut flows, &[], &[], &[]);
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].evidence, ["asn:AS62041"]);
    assert_eq!(flows[1].app, None);
}

#[test]
fn state_is_dropped_on_close_and_udp_noise_never_panics() {
    let mut a = attributor();
    for i in 0..1000u16 {
        a.packet(&tcp(
            u64::from(i),
            "10.0.0.1",
            i,
            "10.0.0.2",
            443,
            1,
            ACK | PSH,
            b"\x16\x03\x01",
        ));
        a.packet(&tcp(
            u64::from(i),
            "10.0.0.1",
            i,
            "10.0.0.2",
            443,
            4,
            ACK | crate::analysis::packet::tcp_flags::FIN,
            b"",
        ));
        a.packet(&udp(
            u64::from(i),
            "10.0.0.1",
            i,
            "10.0.0.2",
            53,
            &[0xff; 3],
        ));
    }
    // TCP flows are dropped at FIN; UDP ones by the periodic sweep (frame i is at i seconds)
    assert!(a.state.len() <= 300, "{}", a.state.len());
    assert!(a.state.keys().all(|k| k.proto == 17));
    assert!(a.hits.is_empty());
}

/// A TURN Allocate answered with `REALM signal.org` (how a Signal call's
/// exchange reads in clear; layout RFC 8656 §7.2), then a media leg from
/// the same socket to a peer: the relay flow by `stun-realm`, the peer leg
/// by `relay-from`. A socket that only talked to a STUN server of nobody's
/// (Zoom-like, no app address or attribute) ties nothing.
#[test]
fn stun_realm_and_call_legs_of_the_same_socket() {
    let mut a = attributor();
    let mut err = hex("011300182112a442b7e7a701bc34d686fa87dfae");
    err.extend(hex("0014000a7369676e616c2e6f72670000")); // REALM "signal.org"
    err.extend(hex("0009000400000401")); // ERROR-CODE 401
    err[3] = (err.len() - 20) as u8;
    let req = hex("000300002112a442b7e7a701bc34d686fa87dfae");
    a.packet(&udp(1, "192.168.1.2", 40000, "35.158.183.167", 3478, &req));
    a.packet(&udp(2, "35.158.183.167", 3478, "192.168.1.2", 40000, &err));
    a.packet(&udp(
        3,
        "192.168.1.2",
        40000,
        "203.0.113.9",
        50000,
        &[0x90; 60],
    ));
    // Another socket, a STUN server of no app.
    a.packet(&udp(4, "192.168.1.2", 40002, "198.51.100.7", 3478, &req));
    a.packet(&udp(
        5,
        "192.168.1.2",
        40002,
        "203.0.113.10",
        50002,
        &[0x90; 60],
    ));
    let mut flows = vec![
        flow("udp", "192.168.1.2", 40000, "35.158.183.167", 3478, 1),
        flow("udp", "192.168.1.2", 40000, "203.0.113.9", 50000, 3),
        flow("udp", "192.168.1.2", 40002, "198.51.100.7", 3478, 4),
        flow("udp", "192.168.1.2", 40002, "203.0.113.10", 50002, 5),
        // The same socket hours later: another call, or another app.
        flow("udp", "192.168.1.2", 40000, "203.0.113.11", 50004, 9000),
    ];
    let servers = a.finish(&mut flows, &[], &[], &[]);
    let apps: Vec<Option<&str>> = flows.iter().map(|f| f.app.as_deref()).collect();
    assert_eq!(apps, [Some("signal"), Some("signal"), None, None, None]);
    let ev: Vec<&str> = servers
        .iter()
        .flat_map(|s| s.evidence.iter().map(String::as_str))
        .collect();
    assert!(ev.contains(&"stun-realm:signal.org"), "{ev:?}");
    assert!(ev.contains(&"relay-from:35.158.183.167:3478"), "{ev:?}");
}

/// TURN addresses as evidence (RFC 8656 §7.3, §9): a CreatePermission
/// with REALM `signal.org` names the peer 203.0.113.7:50000 in
/// XOR-PEER-ADDRESS, the Allocate success hands out the relayed address
/// 35.158.183.167:49152. A flow from *another* socket to the peer, and the
/// far phone's flow to the relayed address, are Signal's call legs by
/// `relay-from`; the same addresses hours later, and a peer named by a
/// STUN server of nobody's, are not.
#[test]
fn turn_peer_and_relayed_addresses_tie_call_legs() {
    let mut a = attributor();
    let id = "2112a442b7e7a701bc34d686fa87dfae";
    let mut perm = hex(&format!("00080000{id}"));
    perm.extend(hex("0014000a7369676e616c2e6f72670000")); // REALM "signal.org"
    perm.extend(hex("001200080001e242ea12d545")); // XOR-PEER-ADDRESS 203.0.113.7:50000
    perm[3] = (perm.len() - 20) as u8;
    let mut alloc_ok = hex(&format!("01030000{id}"));
    alloc_ok.extend(hex("001600080001e112028c13e5")); // XOR-RELAYED 35.158.183.167:49152
    alloc_ok[3] = (alloc_ok.len() - 20) as u8;
    a.packet(&udp(1, "192.168.1.2", 40000, "35.158.183.167", 3478, &perm));
    a.packet(&udp(
        2,
        "35.158.183.167",
        3478,
        "192.168.1.2",
        40000,
        &alloc_ok,
    ));
    // A STUN server of nobody's naming a peer.
    let mut other = hex(&format!("00080000{id}"));
    other.extend(hex("001200080001e240ea12d553")); // 203.0.113.17:50002
    other[3] = (other.len() - 20) as u8;
    a.packet(&udp(3, "192.168.1.2", 40002, "198.51.100.7", 3478, &other));
    // (proto, local, local port, far end, far port, start)
    let legs = [
        ("udp", "192.168.1.2", 40010, "203.0.113.7", 50000, 5),
        ("udp", "192.168.1.3", 41000, "35.158.183.167", 49152, 6),
        ("udp", "192.168.1.2", 40012, "203.0.113.17", 50002, 7),
        ("udp", "192.168.1.2", 40014, "203.0.113.7", 50000, 9000),
        ("tcp", "192.168.1.2", 40016, "203.0.113.7", 50000, 8),
    ];
    let mut flows: Vec<FlowRecord> = legs
        .iter()
        .map(|&(p, s, sp, d, dp, t)| flow(p, s, sp, d, dp, t))
        .collect();
    a.finish(&mut flows, &[], &[], &[]);
    let apps: Vec<Option<&str>> = flows.iter().map(|f| f.app.as_deref()).collect();
    assert_eq!(apps, [Some("signal"), Some("signal"), None, None, None]);
    for f in &flows[..2] {
        let ev: Vec<String> = f.evidence.iter().map(|e| e.to_string()).collect();
        assert_eq!(ev, ["relay-from:35.158.183.167:3478"], "{f:?}");
    }
    assert!(flows[2..].iter().all(|f| f.evidence.is_empty()));
}

/// LINE and KakaoTalk call fingerprints (byte patterns of nDPI's
/// `line.c` and `kakaotalk_voice.c`; no LINE or KakaoTalk call capture is
/// available here, so the payloads follow those dissectors): they count
/// only at the apps' own addresses, as nDPI applies them. The same bytes
/// to any other address, or an RTCP sender report between LAN phones,
/// give nothing.
#[test]
fn line_and_kakao_call_fingerprints_are_bound_to_their_addresses() {
    let mut a = attributor();
    let mut line = vec![0xb6, 0x13, 0x00, 0x06];
    line.resize(46, 0x5a);
    let mut rtcp_sr = vec![0x81, 0xc8, 0x00, 0x0c];
    rtcp_sr.resize(52, 0x11);
    let mut long_line = vec![0xd9, 0x93, 0x01, 0x02, 0x06, 0x02];
    long_line.resize(200, 0x33);
    let sends = [
        ("147.92.130.10", 20000, &line),
        ("203.0.113.5", 20000, &line),
        ("1.201.10.10", 10000, &rtcp_sr),
        ("192.168.1.50", 10000, &rtcp_sr),
        ("147.92.131.1", 20002, &long_line),
    ];
    let mut flows = Vec::new();
    for (n, (dst, port, payload)) in sends.iter().enumerate() {
        let sport = 50000 + n as u16;
        a.packet(&udp(
            n as u64 + 1,
            "192.168.1.2",
            sport,
            dst,
            *port,
            payload,
        ));
        flows.push(flow("udp", "192.168.1.2", sport, dst, *port, n as i64 + 1));
    }
    a.finish(&mut flows, &[], &[], &[]);
    let got: Vec<(Option<&str>, Vec<String>)> = flows
        .iter()
        .map(|f| {
            let ev = f.evidence.iter().map(|e| e.to_string()).collect();
            (f.app.as_deref(), ev)
        })
        .collect();
    let line_ev = vec!["fingerprint:line-call".to_string()];
    assert_eq!(
        got,
        [
            (Some("line"), line_ev.clone()),
            (None, vec![]),
            (
                Some("kakaotalk"),
                vec!["fingerprint:kakao-voice".to_string()]
            ),
            (None, vec![]),
            (Some("line"), line_ev),
        ]
    );
    assert!(!super::line_call(&line[..45]));
    assert!(!super::line_call(&[0xff; 110]));
}
