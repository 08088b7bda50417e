use super::*;
use crate::analysis::names::stream::testpkt::{tcp, udp};
use crate::analysis::packet::tcp_flags::{ACK, FIN, PSH, SYN};
use std::io::Write;

const C: &str = "10.0.2.16";
const S: &str = "43.130.30.240";

#[test]
fn client_hello_over_three_segments() {
    let stream = tls::build::records(
        &tls::build::client_hello(Some("web.wechat.com"), &["h2", "http/1.1"], 2500),
        16384,
    );
    let mut x = NameExtractor::new();
    x.packet(&tcp(1, C, 40000, S, 443, 0, SYN, &[]));
    let mut seq = 1u32;
    for (frame, chunk) in (2..).zip(stream.chunks(1000)) {
        x.packet(&tcp(frame, C, 40000, S, 443, seq, ACK | PSH, chunk));
        // a retransmission of the same chunk changes nothing
        x.packet(&tcp(frame + 100, C, 40000, S, 443, seq, ACK | PSH, chunk));
        seq += chunk.len() as u32;
    }
    let r = x.finish();
    assert_eq!(r.tls.len(), 1);
    let t = &r.tls[0];
    assert_eq!(t.frame, 4, "the third segment completes the ClientHello");
    assert_eq!(t.sni.as_deref(), Some("web.wechat.com"));
    assert_eq!(t.alpn, ["h2", "http/1.1"]);
    assert_eq!((t.dport, t.sport, t.proto.as_str()), (443, 40000, "tls"));
    assert!(r.dns.is_empty());
}

#[test]
fn lost_segment_gives_up_without_a_record() {
    let stream = tls::build::records(
        &tls::build::client_hello(Some("a.example"), &[], 2500),
        16384,
    );
    let mut x = NameExtractor::new();
    x.packet(&tcp(1, C, 40000, S, 443, 1, ACK, &stream[..1000]));
    x.packet(&tcp(2, C, 40000, S, 443, 2001, ACK, &stream[2000..]));
    assert!(matches!(x.tcp.values().next(), Some(TcpState::Done)));
    assert!(x.finish().tls.is_empty());
}

#[test]
fn doh_by_sni_and_dot_by_alpn() {
    let doh = tls::build::records(
        &tls::build::client_hello(Some("dns.google"), &["h2"], 0),
        16384,
    );
    let dot = tls::build::records(
        &tls::build::client_hello(Some("dns.example"), &["dot"], 0),
        16384,
    );
    let mut x = NameExtractor::new();
    x.packet(&tcp(1, C, 40001, "8.8.8.8", 443, 1, ACK, &doh));
    x.packet(&tcp(2, C, 40002, "9.9.9.9", 8853, 1, ACK, &dot));
    let r = x.finish();
    assert_eq!(r.tls.len(), 2);
    let kinds: Vec<(&str, &str, String)> = r
        .dns
        .iter()
        .map(|d| (d.transport.as_str(), d.query.as_str(), d.server.to_string()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("doh", "dns.google", "8.8.8.8".to_string()),
            ("dot", "dns.example", "9.9.9.9".to_string())
        ]
    );
    assert!(
        r.dns
            .iter()
            .all(|d| d.rcode.is_none() && d.qtype.is_empty())
    );
}

#[test]
fn http_requests_pipelined_with_bodies() {
    let mut s = b"POST /mmtls/2a9b1264 HTTP/1.1\r\nHost: sgshort.wechat.com\r\nContent-Length: 5\r\n\r\nABCDE".to_vec();
    s.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: example.org\r\n\r\n");
    let mut x = NameExtractor::new();
    x.packet(&tcp(1, C, 40000, S, 80, 1, ACK, &s[..50]));
    x.packet(&tcp(2, C, 40000, S, 80, 51, ACK, &s[50..]));
    let r = x.finish();
    let got: Vec<(u64, &str, &str, Option<&str>)> = r
        .http
        .iter()
        .map(|h| {
            (
                h.frame,
                h.method.as_str(),
                h.path.as_str(),
                h.host.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, "POST", "/mmtls/2a9b1264", Some("sgshort.wechat.com")),
            (2, "GET", "/x", Some("example.org"))
        ]
    );
}

#[test]
fn newgetdns_response_split_over_segments() {
    let xml = br#"<?xml version="1.0"?><dns><domainlist><domain name="long.weixin.qq.com" timeout="1860"><ip>43.130.30.185</ip></domain><domain name="short.weixin.qq.com" timeout="60"><ip>43.130.30.186</ip><ip>43.130.30.187</ip></domain></domainlist></dns>"#;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(xml).unwrap();
    let body = e.finish().unwrap();
    let mut resp = format!(
        "HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let req = b"GET /cgi-bin/micromsg-bin/newgetdns?uin=1&scene=0 HTTP/1.1\r\nHost: dns.weixin.qq.com\r\n\r\n";
    let mut x = NameExtractor::new();
    x.packet(&tcp(49, C, 35326, S, 8080, 1, ACK | PSH, req));
    let cut = resp.len() / 2;
    x.packet(&tcp(51, S, 8080, C, 35326, 1, ACK, &resp[..cut]));
    x.packet(&tcp(
        55,
        S,
        8080,
        C,
        35326,
        1 + cut as u32,
        ACK | PSH,
        &resp[cut..],
    ));
    x.packet(&tcp(
        56,
        S,
        8080,
        C,
        35326,
        1 + resp.len() as u32,
        ACK | FIN,
        &[],
    ));
    let r = x.finish();
    assert_eq!(r.http.len(), 1);
    assert_eq!(r.dns.len(), 2);
    let d = &r.dns[1];
    assert_eq!(
        (d.frame, d.transport.as_str(), d.query.as_str()),
        (55, "wechat-httpdns", "short.weixin.qq.com")
    );
    assert_eq!(d.server.to_string(), S);
    assert_eq!(d.client.to_string(), C);
    let ips: Vec<&str> = d.answers.iter().map(|a| a.data.as_str()).collect();
    assert_eq!(ips, ["43.130.30.186", "43.130.30.187"]);
    assert_eq!(d.answers[0].ttl, 60);
}

#[test]
fn newgetdns_without_length_is_decoded_at_fin() {
    let xml = br#"<dns><domainlist><domain name="a.weixin.qq.com" timeout="1"><ip>1.2.3.4</ip></domain></domainlist></dns>"#;
    let mut resp = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    resp.extend_from_slice(xml);
    let mut x = NameExtractor::new();
    x.packet(&tcp(
        1,
        C,
        1,
        S,
        8080,
        1,
        ACK,
        b"GET /newgetdns HTTP/1.0\r\n\r\n",
    ));
    x.packet(&tcp(2, S, 8080, C, 1, 1, ACK, &resp));
    assert!(x.out.dns.is_empty());
    x.packet(&tcp(
        3,
        S,
        8080,
        C,
        1,
        1 + resp.len() as u32,
        ACK | FIN,
        &[],
    ));
    let r = x.finish();
    assert_eq!(r.dns.len(), 1);
    assert_eq!(r.dns[0].frame, 3);
}

#[test]
fn quic_initial_gives_a_quic_record() {
    let hex: String = include_str!("testdata/rfc9001-a2-client-initial.hex")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    let pkt: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let mut x = NameExtractor::new();
    x.packet(&udp(7, "2001:db8::1", 55555, "2001:db8::2", 443, &pkt));
    let r = x.finish();
    assert_eq!(r.tls.len(), 1);
    assert_eq!(r.tls[0].proto, "quic");
    assert_eq!(r.tls[0].sni.as_deref(), Some("example.com"));
}

#[test]
fn random_tcp_and_udp_payloads_never_panic_and_state_stays_bounded() {
    let mut seed = 0x9e37_79b9u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut x = NameExtractor::new();
    let prefixes: [&[u8]; 4] = [
        b"\x16\x03\x01",
        b"GET / HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"\xc0\x00\x00\x00\x01",
    ];
    for f in 0..3000u64 {
        let mut p = prefixes[(next() % 4) as usize].to_vec();
        let n = next() % 300;
        p.extend((0..n).map(|_| next() as u8));
        let port = (next() % 50) as u16;
        x.packet(&tcp(f, C, 1000 + port, S, 443, 1, ACK, &p));
        x.packet(&udp(f, C, 1000 + port, S, 443, &p));
    }
    assert!(x.tcp.len() <= 100);
    let _ = x.finish();
}

#[test]
fn starttls_client_hello_after_plaintext_segments() {
    let hello = tls::build::records(
        &tls::build::client_hello(Some("s.whatsapp.net"), &[], 0),
        16384,
    );
    let xmpp =
        b"<stream:stream to='s.whatsapp.net'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    let mut x = NameExtractor::new();
    x.packet(&tcp(1, C, 40000, S, 5222, 1, ACK | PSH, xmpp));
    x.packet(&tcp(
        2,
        C,
        40000,
        S,
        5222,
        1 + xmpp.len() as u32,
        ACK | PSH,
        &hello,
    ));
    // a direction that never turns into TLS stops being probed
    for i in 0..20u32 {
        x.packet(&tcp(
            10 + u64::from(i),
            C,
            40001,
            S,
            5222,
            1 + i * 4,
            ACK,
            b"abcd",
        ));
    }
    assert!(matches!(
        x.tcp.get(&DirKey {
            proto: 6,
            src: C.parse().unwrap(),
            sport: 40001,
            dst: S.parse().unwrap(),
            dport: 5222
        }),
        Some(TcpState::Done)
    ));
    let r = x.finish();
    assert_eq!(r.tls.len(), 1);
    assert_eq!(
        (r.tls[0].frame, r.tls[0].sni.as_deref()),
        (2, Some("s.whatsapp.net"))
    );
}
