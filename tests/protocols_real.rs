//! The protocol extractors and attribution on the real captures in
//! ../shared/captures/real, checked against tshark's reading of the same
//! files (tshark runs inside the tests).
//!
//! Frames are fed straight to the sinks here (classic pcap, Ethernet /
//! Linux SLL / raw IP, decoded with etherparse), so these tests check the
//! extractors independently of the replay engine.

use matador::analysis::attribution::Attributor;
use matador::analysis::dns::DnsExtractor;
use matador::analysis::model::{DnsRecord, FlowRecord};
use matador::analysis::names::{NameExtractor, NameResults};
use matador::analysis::packet::{IpInfo, Packet, PacketSink, Transport, tcp_flags};
use matador::capture::Timestamp;
use matador::scenario::apps::AppProfiles;

mod protocols_common;
use protocols_common::{ours_dns, real, tshark, tshark_dns, tshark_sni};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Decodes a classic pcap file and feeds every frame to `sink`; returns the flows seen.
fn feed(file: &Path, sinks: &mut [&mut dyn PacketSink]) -> Vec<FlowRecord> {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let cap = pcap_parser::PcapCapture::from_file(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
    let link = cap.header.network.0;
    let nanos = cap.header.is_nanosecond_precision();
    let mut flows: BTreeMap<(u8, IpAddr, u16, IpAddr, u16), FlowRecord> = BTreeMap::new();
    for (i, b) in cap.blocks.iter().enumerate() {
        let sliced = match link {
            1 => etherparse::SlicedPacket::from_ethernet(b.data),
            113 => etherparse::SlicedPacket::from_linux_sll(b.data),
            101 | 228 | 229 => etherparse::SlicedPacket::from_ip(b.data),
            other => panic!(
                "{}: link type {other} not handled by this test decoder",
                file.display()
            ),
        };
        let Ok(s) = sliced else { continue };
        let ip = match &s.net {
            Some(etherparse::NetSlice::Ipv4(v4)) => {
                let h = v4.header();
                IpInfo {
                    src: IpAddr::V4(h.source_addr()),
                    dst: IpAddr::V4(h.destination_addr()),
                    ttl: h.ttl(),
                    ip_id: Some(h.identification()),
                    proto: h.protocol().0,
                    total_len: u32::from(h.total_len()),
                    fragment: false,
                    later_fragment: false,
                }
            }
            Some(etherparse::NetSlice::Ipv6(v6)) => {
                let h = v6.header();
                IpInfo {
                    src: IpAddr::V6(h.source_addr()),
                    dst: IpAddr::V6(h.destination_addr()),
                    ttl: h.hop_limit(),
                    ip_id: None,
                    proto: h.next_header().0,
                    total_len: u32::from(h.payload_length()) + 40,
                    fragment: false,
                    later_fragment: false,
                }
            }
            _ => continue,
        };
        let transport = match &s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let mut flags = 0;
                for (on, bit) in [
                    (t.fin(), tcp_flags::FIN),
                    (t.syn(), tcp_flags::SYN),
                    (t.rst(), tcp_flags::RST),
                    (t.psh(), tcp_flags::PSH),
                    (t.ack(), tcp_flags::ACK),
                ] {
                    if on {
                        flags |= bit;
                    }
                }
                Transport::Tcp {
                    sport: t.source_port(),
                    dport: t.destination_port(),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    flags,
                    window: t.window_size(),
                    payload: t.payload(),
                }
            }
            Some(etherparse::TransportSlice::Udp(u)) => Transport::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
                payload: u.payload(),
            },
            _ => Transport::Other,
        };
        let frac = if nanos {
            u64::from(b.ts_usec)
        } else {
            u64::from(b.ts_usec) * 1000
        };
        let pkt = Packet {
            frame: i as u64 + 1,
            ts: Timestamp::new(i64::from(b.ts_sec), frac, if nanos { 9 } else { 6 }),
            orig_len: b.origlen,
            cap_len: b.caplen,
            ip: Some(ip),
            transport,
            encap: Default::default(),
        };
        for sink in sinks.iter_mut() {
            sink.packet(&pkt);
        }
        if let Some((sp, dp)) = pkt.ports() {
            let proto = ip.proto;
            let fwd = (proto, ip.src, sp, ip.dst, dp);
            let rev = (proto, ip.dst, dp, ip.src, sp);
            let key = if flows.contains_key(&rev) { rev } else { fwd };
            let f = flows.entry(key).or_insert_with(|| FlowRecord {
                proto: if proto == 6 { "tcp" } else { "udp" }.into(),
                src: ip.src,
                sport: sp,
                dst: ip.dst,
                dport: dp,
                packets: 0,
                bytes: 0,
                first_ts: pkt.ts,
                last_ts: pkt.ts,
                tcp_flags: String::new(),
                sni: None,
                app: None,
                evidence: Vec::new(),
                encap: Vec::new(),
            });
            f.packets += 1;
            f.last_ts = pkt.ts;
        }
    }
    flows.into_values().collect()
}

struct Run {
    dns: Vec<DnsRecord>,
    names: NameResults,
    flows: Vec<FlowRecord>,
    servers: Vec<matador::analysis::model::ServerRecord>,
}

fn run(name: &str) -> Run {
    let file = real(name);
    let mut d = DnsExtractor::new();
    let mut n = NameExtractor::new();
    let mut a = Attributor::new(Arc::new(AppProfiles::builtin()));
    let mut flows = feed(&file, &mut [&mut d, &mut n, &mut a]);
    let mut dns = d.finish();
    let names = n.finish();
    dns.extend(names.dns.iter().cloned());
    dns.sort_by_key(|r| r.frame);
    let servers = a.finish(&mut flows, &dns, &names.tls, &names.http);
    Run {
        dns,
        names,
        flows,
        servers,
    }
}

const ETHER_LIKE: [&str; 10] = [
    "ndpi-whatsapp.pcap",
    "ndpi-whatsapp_login_chat.pcap",
    "ndpi-signal.pcap",
    "ndpi-threema.pcap",
    "ndpi-wechat.pcap",
    "ndpi-telegram.pcap",
    "ndpi-android.pcap",
    "citizenlab-digisocial.com.pcap",
    "citizenlab-egypt-packetlogic-ttl-localization.pcap",
    "citizenlab-capture-logged-in-all-keys.pcapng",
];

#[test]
fn dns_answers_match_tshark_on_every_capture() {
    for name in ETHER_LIKE {
        let file = real(name);
        let r = run(name);
        let theirs = tshark_dns(&file);
        let ours = ours_dns(&r.dns);
        assert_eq!(ours, theirs, "{name}: DNS responses differ from tshark");
    }
}

#[test]
fn sni_matches_tshark_on_every_capture() {
    for name in ETHER_LIKE {
        let file = real(name);
        let r = run(name);
        let theirs = tshark_sni(&file);
        let ours: BTreeSet<(u64, String)> = r
            .names
            .tls
            .iter()
            .map(|t| (t.frame, t.sni.clone().unwrap_or_default()))
            .collect();
        assert_eq!(ours, theirs, "{name}: ClientHellos differ from tshark");
    }
}

fn servers_of<'a>(r: &'a Run, app: &str) -> Vec<&'a matador::analysis::model::ServerRecord> {
    r.servers.iter().filter(|s| s.app == app).collect()
}

fn endpoint(s: &matador::analysis::model::ServerRecord) -> String {
    format!("{}:{}/{}", s.ip, s.port, s.proto)
}

#[test]
fn forged_digisocial_answer_with_ip_fields() {
    let r = run("citizenlab-digisocial.com.pcap");
    let forged: Vec<&DnsRecord> = r
        .dns
        .iter()
        .filter(|d| {
            d.answers
                .iter()
                .any(|a| a.rtype == "A" && a.data == "37.61.54.158")
        })
        .collect();
    assert_eq!(forged.len(), 1, "{:#?}", r.dns);
    let d = forged[0];
    assert_eq!(
        (d.frame, d.query.as_str(), d.qtype.as_str(), d.id),
        (10, "digisocial.com", "A", 0xc079)
    );
    assert_eq!(
        (d.ip_ttl, d.ip_id),
        (Some(61), Some(0xadfd)),
        "IP TTL/ID of the reply as tshark shows them"
    );
    assert_eq!(d.server.to_string(), "10.202.72.116");
    // every reply is reported on its own: the AAAA queries got NXDOMAIN-less empty replies (rcode 2)
    let theirs = tshark(
        &real("citizenlab-digisocial.com.pcap"),
        &[
            "-Y",
            "dns.flags.response==1",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "ip.ttl",
            "-e",
            "ip.id",
            "-e",
            "dns.flags.rcode",
        ],
    );
    assert_eq!(
        theirs.len(),
        r.dns.iter().filter(|d| d.rcode.is_some()).count()
    );
    for t in theirs {
        let frame: u64 = t[0].parse().unwrap();
        let ours = r.dns.iter().find(|d| d.frame == frame).unwrap();
        assert_eq!(
            ours.ip_ttl.map(|x| x.to_string()),
            Some(t[1].clone()),
            "frame {frame}"
        );
        assert_eq!(
            ours.ip_id.map(|x| format!("{x:#06x}")),
            Some(t[2].clone()),
            "frame {frame}"
        );
        let rc = matador::analysis::dns::rcode_name(t[3].parse().unwrap());
        assert_eq!(ours.rcode.as_deref(), Some(rc.as_str()), "frame {frame}");
    }
}

#[test]
fn wechat_newgetdns_domain_list_matches_tshark() {
    let file = real("citizenlab-capture-logged-in-all-keys.pcapng");
    let r = run("citizenlab-capture-logged-in-all-keys.pcapng");
    // tshark decompresses the deflate body itself: take its XML as the
    // reference, per response frame (the app asked twice, frames 55 and 204).
    let re = regex::Regex::new(r#"(?s)<domain name="([^"]+)"[^>]*>(.*?)</domain>"#).unwrap();
    let ip = regex::Regex::new(r"<ip(?:v6)?(?:\s[^>]*)?>([^<]+)</ip(?:v6)?>").unwrap();
    let mut theirs: BTreeMap<(u64, String), Vec<String>> = BTreeMap::new();
    for f in tshark(
        &file,
        &[
            "-Y",
            "http.response && tcp.srcport==8080",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "http.file_data",
        ],
    ) {
        let xml = f[1..].join("\t").replace("\\n", "\n");
        for c in re.captures_iter(&xml) {
            let mut ips: Vec<String> = ip
                .captures_iter(&c[2])
                .map(|m| m[1].trim().to_string())
                .collect();
            ips.sort();
            theirs.insert((f[0].parse().unwrap(), c[1].to_string()), ips);
        }
    }
    let frames: BTreeSet<u64> = theirs.keys().map(|k| k.0).collect();
    assert_eq!(frames, BTreeSet::from([55, 204]));
    assert!(
        theirs.len() >= 140,
        "{} domains in tshark's XML",
        theirs.len()
    );
    let ours: BTreeMap<(u64, String), Vec<String>> = r
        .dns
        .iter()
        .filter(|d| d.transport == "wechat-httpdns")
        .map(|d| {
            let mut ips: Vec<String> = d.answers.iter().map(|a| a.data.clone()).collect();
            ips.sort();
            ((d.frame, d.query.clone()), ips)
        })
        .collect();
    assert_eq!(ours, theirs);
    let first = r
        .dns
        .iter()
        .find(|d| d.transport == "wechat-httpdns")
        .unwrap();
    assert_eq!(first.server.to_string(), "43.130.30.240");
    assert_eq!(first.client.to_string(), "10.0.2.16");
    assert!(theirs.contains_key(&(55, "long.weixin.qq.com".to_string())));
}

#[test]
fn messaging_servers_in_the_ndpi_captures() {
    let wa = run("ndpi-whatsapp.pcap");
    let eps: Vec<String> = servers_of(&wa, "whatsapp")
        .iter()
        .map(|s| endpoint(s))
        .collect();
    assert_eq!(
        eps,
        [
            "31.13.70.50:5222/tcp",
            "31.13.83.49:5222/tcp",
            "31.13.93.54:5222/tcp",
            "179.60.195.33:5222/tcp",
            "179.60.195.49:5222/tcp"
        ]
    );
    assert!(
        servers_of(&wa, "whatsapp")
            .iter()
            .all(|s| s.evidence[0] == "fingerprint:whatsapp-noise")
    );
    assert!(
        wa.flows
            .iter()
            .all(|f| f.app.as_deref() == Some("whatsapp"))
    );

    let login = run("ndpi-whatsapp_login_chat.pcap");
    let s = servers_of(&login, "whatsapp");
    assert_eq!(s.len(), 1);
    assert_eq!(endpoint(s[0]), "158.85.58.15:5222/tcp");
    assert_eq!(
        s[0].evidence,
        ["dns:e12.whatsapp.net", "fingerprint:whatsapp-noise"]
    );

    let sig = run("ndpi-signal.pcap");
    let eps: BTreeSet<String> = servers_of(&sig, "signal")
        .iter()
        .map(|s| endpoint(s))
        .collect();
    let expect: BTreeSet<String> = [
        "35.169.3.40:443/tcp",
        "34.225.240.173:443/tcp",
        "13.35.253.42:443/tcp",
    ]
    .map(String::from)
    .into();
    assert_eq!(eps, expect);
    assert_eq!(
        sig.flows
            .iter()
            .filter(|f| f.app.as_deref() == Some("signal"))
            .count(),
        10,
        "nDPI also finds 10 Signal flows"
    );
    assert!(
        sig.servers.iter().all(|s| s.app == "signal"),
        "Apple/Akamai traffic stays unattributed"
    );

    let th = run("ndpi-threema.pcap");
    let s = servers_of(&th, "threema");
    assert_eq!(s.len(), 1);
    assert_eq!(endpoint(s[0]), "185.88.236.110:5222/tcp");

    let tg = run("ndpi-telegram.pcap");
    let s = servers_of(&tg, "telegram");
    assert_eq!(
        s.len(),
        12,
        "the 12 call-reflector flows nDPI labels Telegram"
    );
    assert!(
        s.iter()
            .all(|s| s.proto == "udp" && s.ip.to_string().starts_with("91.108."))
    );
    assert!(
        s.iter()
            .all(|s| s.evidence[0] == "fingerprint:telegram-reflector")
    );
    assert!(
        tg.servers.iter().all(|s| s.app == "telegram"),
        "Google QUIC, mDNS, Dropbox stay unattributed"
    );

    let wc = run("ndpi-wechat.pcap");
    let s = servers_of(&wc, "wechat");
    assert!(s.iter().any(|s| endpoint(s) == "203.205.151.162:443/tcp"
        && s.evidence.contains(&"sni:web.wechat.com".to_string())));
    assert!(
        s.iter().any(
            |s| endpoint(s) == "203.205.158.34:443/tcp" && s.evidence[0] == "dns:res.wx.qq.com"
        )
    );
    assert!(wc.servers.iter().all(|s| s.app == "wechat"));
    // Google's TLS and gQUIC flows (safebrowsing, ssl.gstatic.com, docs.google.com) keep their SNI and no app
    let google: Vec<&FlowRecord> = wc
        .flows
        .iter()
        .filter(|f| {
            f.sni
                .as_deref()
                .is_some_and(|n| n.contains("google") || n.contains("gstatic"))
        })
        .collect();
    assert_eq!(google.len(), 4);
    assert!(google.iter().all(|f| f.app.is_none()));
}

#[test]
fn wechat_servers_in_the_citizenlab_capture() {
    let r = run("citizenlab-capture-logged-in-all-keys.pcapng");
    let s = servers_of(&r, "wechat");
    let dns_server = s
        .iter()
        .find(|s| endpoint(s) == "43.130.30.240:8080/tcp")
        .unwrap();
    assert_eq!(dns_server.role, Some(matador::analysis::model::Role::Dns));
    assert_eq!(dns_server.evidence[0], "host:dns.weixin.qq.com");
    let long = s
        .iter()
        .find(|s| endpoint(s) == "49.51.67.253:80/tcp")
        .unwrap();
    assert!(
        long.evidence
            .iter()
            .any(|e| e.starts_with("wechat-httpdns:")),
        "{long:?}"
    );
    assert!(
        long.evidence
            .contains(&"fingerprint:wechat-mmtls".to_string())
    );
    assert!(s.iter().any(|s| endpoint(s) == "101.32.104.4:8080/tcp"
        && s.evidence.contains(&"dns:sglong.wechat.com".to_string())));
    assert!(r.servers.iter().all(|s| s.app == "wechat"));
}

#[test]
fn no_attribution_on_android_background_traffic() {
    for name in [
        "ndpi-android.pcap",
        "citizenlab-egypt-packetlogic-ttl-localization.pcap",
        "citizenlab-digisocial.com.pcap",
    ] {
        let r = run(name);
        assert!(r.servers.is_empty(), "{name}: {:#?}", r.servers);
        assert!(r.flows.iter().all(|f| f.app.is_none()), "{name}");
    }
}

/// QUIC from a real implementation (aioquic on loopback, generated by
/// src/analysis/names/testdata/gen-quic-aioquic.py): v1, v2, and a
/// ClientHello spanning four Initial packets; compared with tshark, which
/// decrypts Initials too.
#[test]
fn quic_initials_from_aioquic_match_tshark() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/analysis/names/testdata/quic-aioquic.pcap");
    let mut n = NameExtractor::new();
    feed(&file, &mut [&mut n]);
    let r = n.finish();
    let ours: Vec<(u64, String, usize, String)> = r
        .tls
        .iter()
        .map(|t| {
            (
                t.frame,
                t.sni.clone().unwrap_or_default(),
                t.alpn.len(),
                t.proto.clone(),
            )
        })
        .collect();
    let theirs: Vec<(u64, String, usize, String)> = tshark(
        &file,
        &[
            "-Y",
            "tls.handshake.type==1",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "tls.handshake.extensions_alpn_str",
        ],
    )
    .into_iter()
    .map(|f| {
        (
            f[0].parse().unwrap(),
            f[1].clone(),
            f[2].split(',').count(),
            "quic".to_string(),
        )
    })
    .collect();
    assert_eq!(theirs.len(), 3);
    assert_eq!(ours, theirs);
    assert_eq!(
        r.tls[2].alpn.len(),
        121,
        "the big ClientHello spans four Initial packets"
    );
}
