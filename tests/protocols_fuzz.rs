//! Deterministic mutation tests for the protocol parsers: real and RFC
//! vectors with bit flips, byte overwrites with boundary values, truncations,
//! insertions and length fields claiming huge sizes, fed to each parser and
//! through the packet sinks. Nothing may panic, and every call must stay
//! cheap (the whole file runs in well under a second in release, a few
//! seconds in debug). A cargo-fuzz harness can reuse the same entry points.

use matador::analysis::attribution::{Attributor, fingerprint};
use matador::analysis::dns::{DnsExtractor, parse_message};
use matador::analysis::names::{NameExtractor, http, quic, tls, wechat};
use matador::analysis::packet::{IpInfo, Packet, PacketSink, Transport};
use matador::capture::Timestamp;
use matador::scenario::apps::AppProfiles;
use std::io::Write;
use std::sync::Arc;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// xorshift32: reproducible pseudo-random mutations.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
}

/// `n` mutants of `seed`: flips, boundary bytes, truncation, insertion, duplication.
fn mutants(seed: &[u8], n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut m = seed.to_vec();
        for _ in 0..=rng.below(4) {
            if m.is_empty() {
                m.push(0);
            }
            let i = rng.below(m.len());
            match rng.below(6) {
                0 => m[i] ^= 1 << rng.below(8),
                1 => m[i] = [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff][rng.below(8)],
                2 => m.truncate(i),
                3 => m.insert(i, rng.next() as u8),
                4 => {
                    // a 16/32-bit length field claiming a huge size
                    let v = [0xffu8; 4];
                    let end = (i + 2 + rng.below(3)).min(m.len());
                    m[i..end].copy_from_slice(&v[..end - i]);
                }
                _ => {
                    let j = rng.below(m.len());
                    let (a, b) = (i.min(j), i.max(j));
                    let chunk = m[a..b].to_vec();
                    m.extend(chunk);
                }
            }
        }
        out.push(m);
    }
    out
}

fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8) -> IpInfo {
    IpInfo {
        src: src.into(),
        dst: dst.into(),
        ttl: 60,
        ip_id: Some(1),
        proto,
        total_len: 0,
        fragment: false,
        later_fragment: false,
    }
}

fn feed_all(
    sinks: &mut [&mut dyn PacketSink],
    frame: u64,
    udp: bool,
    sport: u16,
    dport: u16,
    seq: u32,
    payload: &[u8],
) {
    let transport = if udp {
        Transport::Udp {
            sport,
            dport,
            payload,
        }
    } else {
        Transport::Tcp {
            sport,
            dport,
            seq,
            ack: 0,
            flags: 0x18,
            window: 1000,
            payload,
        }
    };
    let pkt = Packet {
        frame,
        ts: Timestamp::new(frame as i64, 0, 6),
        orig_len: payload.len() as u32,
        cap_len: payload.len() as u32,
        ip: Some(ip4([10, 0, 0, 1], [10, 0, 0, 2], if udp { 17 } else { 6 })),
        transport,
        encap: Default::default(),
    };
    for s in sinks.iter_mut() {
        s.packet(&pkt);
    }
}

const DNS_FORGED: &str = "c079818000010001000600000a64696769736f6369616c03636f6d0000010001c00c000100010000012c0004253d369ec00c00020001000267dc0006036e7336c00cc00c00020001000267dc0006036e7331c00cc00c00020001000267dc0006036e7332c00cc00c00020001000267dc0006036e7334c00cc00c00020001000267dc0006036e7333c00cc00c00020001000267dc0006036e7335c00c";

#[test]
fn dns_parser_and_extractor_survive_mutations() {
    let seed = hex(DNS_FORGED);
    let mut rng = Rng(0xdead_beef);
    let mut x = DnsExtractor::new();
    for (i, m) in mutants(&seed, 20_000, &mut rng).iter().enumerate() {
        if let Ok(msg) = parse_message(m) {
            assert!(
                msg.answers.len() <= m.len() / 11 + 1,
                "more answers than bytes allow"
            );
            if let Some((q, _)) = &msg.question {
                assert!(q.len() <= 4 * 255, "name longer than any DNS name");
            }
        }
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(m);
        feed_all(&mut [&mut x], i as u64, true, 53, 4000, 0, m);
        feed_all(
            &mut [&mut x],
            i as u64,
            false,
            53,
            4001 + (i % 7) as u16,
            (i as u32) * 4096,
            &framed,
        );
    }
    let recs = x.finish();
    assert!(
        recs.len() > 10_000,
        "most mutants still decode as responses: {}",
        recs.len()
    );
    // compression pointer chains: every pointer to the previous one, ending in a loop
    let mut chain = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    for k in 0..200u16 {
        let target = if k == 0 { 12 } else { 12 + 2 * (k - 1) };
        chain.extend_from_slice(&(0xc000 | target).to_be_bytes());
    }
    // Ends (the loop is detected), with no answer: a condition, where a
    // wall-clock bound on the whole test used to stand (the parser's speed
    // is bench/replay.sh's).
    assert!(parse_message(&chain).unwrap().question.is_none());
}

#[test]
fn tls_client_hello_parser_survives_mutations() {
    // ClientHello for itunes.apple.com, nDPI signal.pcap frame 11 (LGPL-3.0 test data)
    let seed = hex(include_str!(
        "../src/analysis/names/testdata/signal-clienthello.hex"
    ));
    match tls::client_hello_from_records(&seed) {
        tls::Progress::Done(info) => {
            assert_eq!(info.sni.as_deref(), Some("itunes.apple.com"));
            assert_eq!(info.alpn, ["h2", "http/1.1"]);
        }
        other => panic!("{other:?}"),
    }
    let mut rng = Rng(42);
    let mut n = NameExtractor::new();
    for (i, m) in mutants(&seed, 20_000, &mut rng).iter().enumerate() {
        let _ = tls::client_hello_from_records(m);
        if m.len() > 5 {
            let _ = tls::client_hello_from_handshake(&m[5..]);
        }
        feed_all(
            &mut [&mut n],
            i as u64,
            false,
            40000 + (i % 1000) as u16,
            443,
            1,
            m,
        );
    }
    let r = n.finish();
    assert!(
        r.tls
            .iter()
            .all(|t| t.sni.as_ref().is_none_or(|s| s.len() < 65_536))
    );
}

#[test]
fn quic_initials_survive_mutations() {
    let seeds = [
        hex(include_str!(
            "../src/analysis/names/testdata/rfc9001-a2-client-initial.hex"
        )),
        hex(include_str!(
            "../src/analysis/names/testdata/rfc9369-a2-client-initial.hex"
        )),
    ];
    let mut rng = Rng(7);
    let mut n = NameExtractor::new();
    let mut opened = 0;
    for seed in &seeds {
        for (i, m) in mutants(seed, 3_000, &mut rng).iter().enumerate() {
            let before = {
                let mut probe = NameExtractor::new();
                feed_all(&mut [&mut probe], 1, true, 5000, 443, 0, m);
                probe.finish().tls.len()
            };
            opened += before;
            feed_all(
                &mut [&mut n],
                i as u64,
                true,
                20000 + (i % 3000) as u16,
                443,
                0,
                m,
            );
            let _ = quic::gquic_chlo_sni(m);
        }
    }
    // AEAD integrity: only mutants that left header and ciphertext intact
    // (e.g. trailing bytes added or padding removed beyond the packet) open.
    assert!(opened < 6_000);
    let _ = n.finish();
}

#[test]
fn http_and_wechat_bodies_survive_mutations() {
    let xml = br#"<?xml version="1.0"?><dns><domainlist><domain name="long.weixin.qq.com" timeout="1860"><ipv6>::ffff:43.130.30.185</ipv6><ip property="major">43.130.30.185</ip></domain></domainlist></dns>"#;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(xml).unwrap();
    let body = e.finish().unwrap();
    let mut resp = format!(
        "HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let req =
        b"GET /cgi-bin/micromsg-bin/newgetdns?uin=1 HTTP/1.1\r\nHost: dns.weixin.qq.com\r\n\r\n";
    let mut rng = Rng(99);
    let mut decoded = 0;
    for m in mutants(&body, 5_000, &mut rng) {
        if let Ok(x) = wechat::decompress(&m) {
            assert!(x.len() <= wechat::MAX_XML);
            if wechat::parse_domain_list(&x).is_ok_and(|d| !d.is_empty()) {
                decoded += 1;
            }
        }
    }
    assert!(decoded > 0);
    for (i, m) in mutants(&resp, 5_000, &mut rng).iter().enumerate() {
        let _ = http::parse_response(m);
        let mut n = NameExtractor::new();
        feed_all(&mut [&mut n], 1, false, 5000, 8080, 1, req);
        let pkt = Packet {
            frame: 2,
            ts: Timestamp::new(2, 0, 6),
            orig_len: 0,
            cap_len: 0,
            ip: Some(ip4([10, 0, 0, 2], [10, 0, 0, 1], 6)),
            transport: Transport::Tcp {
                sport: 8080,
                dport: 5000,
                seq: 1,
                ack: 0,
                flags: 0x19,
                window: 1,
                payload: m,
            },
            encap: Default::default(),
        };
        n.packet(&pkt);
        let r = n.finish();
        assert!(r.dns.len() <= 1, "mutant {i}");
    }
    for m in mutants(req, 5_000, &mut rng) {
        let _ = http::parse_request(&m);
    }
}

#[test]
fn fingerprints_and_attribution_survive_noise() {
    let mut rng = Rng(2024);
    let mut a = Attributor::new(Arc::new(AppProfiles::builtin()));
    let seeds: [&[u8]; 3] = [
        b"ED\x00\x01",
        b"\x16\xf1\x04\x01\x6e\x00\x00",
        &[0xef, 1, 0, 0, 0, 0],
    ];
    for s in seeds {
        for (i, m) in mutants(s, 3_000, &mut rng).iter().enumerate() {
            let _ = fingerprint(m, false, true);
            let _ = fingerprint(m, true, false);
            feed_all(
                &mut [&mut a],
                i as u64,
                i % 2 == 0,
                1000 + (i % 500) as u16,
                5222,
                1,
                m,
            );
        }
    }
    let servers = a.finish(&mut [], &[], &[], &[]);
    assert!(servers.is_empty(), "no flows given, no servers");
}
