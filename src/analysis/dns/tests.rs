use super::*;
use crate::analysis::names::stream::testpkt::{tcp, udp, with_ttl_id};
use crate::analysis::packet::tcp_flags::{ACK, FIN, PSH, SYN};

/// Bytes from a hex string (test data copied from tshark).
pub(super) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Query and forged reply for digisocial.com, frames 9/10 of
/// citizenlab-digisocial.com.pcap (answer 37.61.54.158 with six NS records).
const QUERY: &str = "c079010000010000000000000a64696769736f6369616c03636f6d0000010001";
const FORGED: &str = "c079818000010001000600000a64696769736f6369616c03636f6d0000010001c00c000100010000012c0004253d369ec00c00020001000267dc0006036e7336c00cc00c00020001000267dc0006036e7331c00cc00c00020001000267dc0006036e7332c00cc00c00020001000267dc0006036e7334c00cc00c00020001000267dc0006036e7333c00cc00c00020001000267dc0006036e7335c00c";

#[test]
fn real_forged_reply_decodes_with_ip_fields() {
    let q = hex(QUERY);
    let r = hex(FORGED);
    let mut x = DnsExtractor::new();
    x.packet(&udp(9, "10.162.195.218", 40000, "10.202.72.116", 53, &q));
    x.packet(&with_ttl_id(
        udp(10, "10.202.72.116", 53, "10.162.195.218", 40000, &r),
        61,
        0xadfd,
    ));
    let recs = x.finish();
    assert_eq!(recs.len(), 1);
    let d = &recs[0];
    assert_eq!((d.frame, d.id, d.transport.as_str()), (10, 0xc079, "udp"));
    assert_eq!(d.query, "digisocial.com");
    assert_eq!(d.qtype, "A");
    assert_eq!(d.rcode.as_deref(), Some("NOERROR"));
    assert_eq!((d.ip_ttl, d.ip_id), (Some(61), Some(0xadfd)));
    assert_eq!(d.server.to_string(), "10.202.72.116");
    assert_eq!(d.client.to_string(), "10.162.195.218");
    assert_eq!(d.answers.len(), 1, "authority NS records are not answers");
    assert_eq!(d.answers[0].data, "37.61.54.158");
    assert_eq!(d.answers[0].ttl, 300);
}

#[test]
fn duplicate_replies_are_separate_records_and_unanswered_queries_reported() {
    let q = hex(QUERY);
    let r = hex(FORGED);
    let mut x = DnsExtractor::new();
    x.packet(&udp(1, "10.0.0.1", 5000, "10.0.0.53", 53, &q));
    x.packet(&with_ttl_id(
        udp(2, "10.0.0.53", 53, "10.0.0.1", 5000, &r),
        40,
        1,
    ));
    x.packet(&with_ttl_id(
        udp(3, "10.0.0.53", 53, "10.0.0.1", 5000, &r),
        57,
        2,
    ));
    let mut q2 = q.clone();
    q2[0] = 0x11; // another id, never answered
    x.packet(&udp(4, "10.0.0.1", 5001, "10.0.0.53", 53, &q2));
    let recs = x.finish();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].ip_ttl, Some(40));
    assert_eq!(recs[1].ip_ttl, Some(57));
    assert_eq!(recs[2].frame, 4);
    assert_eq!(recs[2].rcode, None);
    assert_eq!(recs[2].query, "digisocial.com");
    assert_eq!(recs[2].server.to_string(), "10.0.0.53");
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

#[test]
fn tcp_messages_split_and_coalesced() {
    let r = hex(FORGED);
    let mut stream = framed(&r);
    stream.extend(framed(&r));
    stream.extend(framed(&r));
    let mut x = DnsExtractor::new();
    let (c, s) = ("2001:db8::1", "2001:db8::53");
    x.packet(&tcp(1, s, 53, c, 4444, 99, SYN | ACK, &[]));
    // first segment: one message and a half; second: the rest and the third message; then a retransmission
    let cut = r.len() + 2 + 10;
    x.packet(&tcp(2, s, 53, c, 4444, 100, ACK | PSH, &stream[..cut]));
    x.packet(&tcp(
        3,
        s,
        53,
        c,
        4444,
        100 + cut as u32,
        ACK | PSH,
        &stream[cut..],
    ));
    x.packet(&tcp(
        4,
        s,
        53,
        c,
        4444,
        100 + cut as u32,
        ACK | PSH,
        &stream[cut..],
    ));
    x.packet(&tcp(
        5,
        s,
        53,
        c,
        4444,
        100 + stream.len() as u32,
        ACK | FIN,
        &[],
    ));
    let recs = x.finish();
    let frames: Vec<u64> = recs.iter().map(|r| r.frame).collect();
    assert_eq!(frames, [2, 3, 3]);
    assert!(
        recs.iter()
            .all(|r| r.transport == "tcp" && r.ip_id.is_none() && r.answers.len() == 1)
    );
}

#[test]
fn tcp_length_claiming_more_than_sent_is_bounded() {
    let mut x = DnsExtractor::new();
    let junk = [0xffu8, 0xff, 1, 2, 3];
    for i in 0..100u32 {
        x.packet(&tcp(
            u64::from(i) + 1,
            "10.0.0.53",
            53,
            "10.0.0.1",
            4444,
            1 + i * 5,
            ACK,
            &junk,
        ));
    }
    assert!(x.tcp.values().all(|s| s.buf.len() <= TCP_BUF_LIMIT));
    assert!(x.finish().is_empty());
}

#[test]
fn dot_connections_are_recognised_once() {
    let mut x = DnsExtractor::new();
    x.packet(&tcp(1, "10.0.0.1", 40000, "1.1.1.1", 853, 1, SYN, &[]));
    x.packet(&tcp(
        2,
        "1.1.1.1",
        853,
        "10.0.0.1",
        40000,
        1,
        SYN | ACK,
        &[],
    ));
    x.packet(&tcp(
        3,
        "10.0.0.1",
        40000,
        "1.1.1.1",
        853,
        2,
        ACK | PSH,
        b"\x16\x03\x01",
    ));
    let recs = x.finish();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].transport, "dot");
    assert_eq!(recs[0].server.to_string(), "1.1.1.1");
    assert_eq!(recs[0].client.to_string(), "10.0.0.1");
}

#[test]
fn garbage_on_port_53_never_panics() {
    let mut x = DnsExtractor::new();
    let mut seed = 0x1234_5678u32;
    let mut bytes = [0u8; 64];
    for f in 0..2000u64 {
        for b in bytes.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = seed as u8;
        }
        let len = (seed % 64) as usize;
        x.packet(&udp(f, "10.0.0.53", 53, "10.0.0.1", 1, &bytes[..len]));
        x.packet(&tcp(
            f,
            "10.0.0.53",
            53,
            "10.0.0.1",
            2,
            f as u32 * 64,
            ACK,
            &bytes[..len],
        ));
    }
    let _ = x.finish();
}
