//! Tunnels and link types of nDPI's test captures (`../shared/captures/ndpi-dev/`)
//! are opened: every packet's innermost IP addresses and ports, as tshark
//! reads them (last occurrence of `ip`/`ipv6`/`tcp`/`udp` fields), are the
//! ones replay's decoder hands the analysers, and the packet names the
//! tunnels it came through as tshark's protocol path does. Tunnels we do
//! not open are named in the replay's warnings. tshark runs in the test.

use matador::analysis::decode::decode;
use matador::analysis::packet::Transport;
use matador::capture::CaptureReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ndpi_dev() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for up in ["../shared", "../../shared"] {
        let d = root.join(up).join("captures/ndpi-dev");
        if d.is_dir() {
            return d;
        }
    }
    panic!("ndpi-dev captures not found next to {}", root.display());
}

/// (frame, src, sport, dst, dport) of the innermost IP header per frame.
type Tuple = (u64, IpAddr, u16, IpAddr, u16);

/// tshark's fields (last occurrence, `|`-separated), one line per frame.
fn tshark_fields(file: &Path, fields: &[&str]) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file);
    cmd.args(["-T", "fields", "-E", "occurrence=l", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tshark's `frame.protocols` per frame.
fn tshark_protocols(file: &Path) -> Vec<(u64, String)> {
    tshark_fields(file, &["frame.number", "frame.protocols"])
        .lines()
        .filter_map(|l| {
            let (n, p) = l.split_once('|')?;
            Some((n.parse().ok()?, p.to_string()))
        })
        .collect()
}

/// The tunnels in a tshark protocol path, outermost first, in the names
/// `flows[].encap` uses: tshark's `pppoes`, `gre`, `vxlan`, `gtp`,
/// `capwap.data`, and an IP layer directly inside another (`ip:ipv6` = `6in4`).
fn tshark_encap(protocols: &str) -> Vec<String> {
    let p: Vec<&str> = protocols.split(':').collect();
    let version = |t: &str| match t {
        "ip" => Some(4),
        "ipv6" => Some(6),
        _ => None,
    };
    let mut out = Vec::new();
    for (i, t) in p.iter().enumerate() {
        let name = match *t {
            "pppoes" => "pppoe".to_string(),
            "gre" => "gre".to_string(),
            "vxlan" => "vxlan".to_string(),
            "gtp" => "gtp-u".to_string(),
            "capwap.data" => "capwap".to_string(),
            t => match (i.checked_sub(1).and_then(|j| version(p[j])), version(t)) {
                (Some(outer), Some(inner)) => format!("{inner}in{outer}"),
                _ => continue,
            },
        };
        out.push(name);
    }
    out
}

fn tshark_inner(file: &Path) -> Vec<Tuple> {
    let fields = [
        "frame.number",
        "ip.src",
        "ipv6.src",
        "tcp.srcport",
        "udp.srcport",
        "ip.dst",
        "ipv6.dst",
        "tcp.dstport",
        "udp.dstport",
        "frame.protocols",
    ];
    tshark_fields(file, &fields)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            // tshark's own last IP layer; skip ICMP errors quoting a packet.
            if f.len() < 10 || f[9].contains("icmp") {
                return None;
            }
            let protos: Vec<&str> = f[9].split(':').collect();
            let last_ip = protos.iter().rposition(|p| *p == "ip" || *p == "ipv6")?;
            let ip_src = if protos[last_ip] == "ip" { f[1] } else { f[2] };
            let ip_dst = if protos[last_ip] == "ip" { f[5] } else { f[6] };
            // Ports only when TCP/UDP follows that IP layer (ESP has none,
            // and the last udp field would be the tunnel's own).
            let inner_l4 = protos[last_ip..].iter().any(|p| *p == "tcp" || *p == "udp");
            let port = |t: &str, u: &str| {
                if inner_l4 {
                    t.parse().or_else(|_| u.parse()).unwrap_or(0)
                } else {
                    0
                }
            };
            Some((
                f[0].parse().ok()?,
                ip_src.parse().ok()?,
                port(f[3], f[4]),
                ip_dst.parse().ok()?,
                port(f[7], f[8]),
            ))
        })
        .collect()
}

fn ours(file: &Path) -> Vec<Tuple> {
    let mut r = CaptureReader::open(file).expect("opens");
    let mut out = Vec::new();
    while let Some(frame) = r.next_frame().expect("reads") {
        let p = decode(&frame);
        let Some(ip) = p.ip else { continue };
        let (sport, dport) = match p.transport {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport, .. } => {
                (sport, dport)
            }
            _ => (0, 0),
        };
        out.push((p.frame, ip.src, sport, ip.dst, dport));
    }
    out
}

const TUNNEL_CAPTURES: [&str; 8] = [
    "dlt_ppp.pcap",
    "dns.pcap",
    "gre.pcapng",
    "vxlan.pcap",
    "ipv6_in_gtp.pcap",
    "capwap_data.pcapng",
    "4in6tunnel.pcap",
    "6in4tunnel.pcap",
];

/// Every frame with IP names the same tunnels, in the same order, as
/// tshark's protocol path; every capture has at least one tunnelled frame
/// except the PPP link-type one (PPP there is the link, not a tunnel).
#[test]
fn encapsulations_are_named_like_tshark() {
    let dir = ndpi_dev();
    for file in TUNNEL_CAPTURES {
        let path = dir.join(file);
        let want = tshark_protocols(&path);
        let mut r = CaptureReader::open(&path).expect("opens");
        let (mut frames, mut tunnelled) = (0, 0);
        while let Some(frame) = r.next_frame().expect("reads") {
            let p = decode(&frame);
            if p.ip.is_none() {
                continue;
            }
            let (_, protos) = want.iter().find(|w| w.0 == p.frame).expect("tshark frame");
            let got: Vec<String> = p.encap.iter().map(|e| e.to_string()).collect();
            assert_eq!(
                got,
                tshark_encap(protos),
                "{file} frame {}: {protos}",
                p.frame
            );
            assert_eq!(p.encap.unopened, None, "{file} frame {}", p.frame);
            frames += 1;
            tunnelled += usize::from(!got.is_empty());
        }
        assert!(
            tunnelled > 0 || file == "dlt_ppp.pcap",
            "{file}: no tunnel named"
        );
        println!("{file}: {frames} frames, {tunnelled} tunnelled, named as tshark names them");
    }
}

#[test]
fn tunnels_are_opened_like_tshark() {
    let dir = ndpi_dev();
    for file in TUNNEL_CAPTURES {
        let path = dir.join(file);
        let want = tshark_inner(&path);
        assert!(!want.is_empty(), "{file}: tshark saw no IP");
        let got = ours(&path);
        for w in &want {
            let g = got.iter().find(|g| g.0 == w.0);
            assert_eq!(g, Some(w), "{file} frame {}", w.0);
        }
        println!(
            "{file}: {} frames with the same innermost tuple as tshark",
            want.len()
        );
    }
}

/// A classic pcap (Ethernet) of the given frames.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let len = f.len() as u32;
        for v in [i as u32 + 1, 0, len, len] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

/// Ethernet header with `ether_type`.
fn eth(ether_type: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f
}

/// IPv4 + UDP (198.18.0.1:sport → 198.18.0.2:dport) around `payload`.
fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Tunnels we recognise but do not open (layouts from their RFCs; no real
/// capture with them is available here) are counted per kind in the
/// replay's warnings, naming the file; the frames still count as packets
/// and their outer flows are reported, nothing is dropped silently.
#[test]
fn unsupported_encapsulations_are_named_in_warnings() {
    let inner = udp4(5000, 53, b"inner");
    let mut mpls = eth(0x8847);
    mpls.extend_from_slice(&[0, 0x01, 0x01, 0x40]); // label 16, bottom of stack, TTL 64
    mpls.extend_from_slice(&inner);
    // L2TPv2 data message (RFC 2661 §3.1: flags 0x0002, tunnel 1, session 1) then PPP/IPv4.
    let mut l2tp_payload = vec![0x00, 0x02, 0, 1, 0, 1, 0xff, 0x03, 0x00, 0x21];
    l2tp_payload.extend_from_slice(&inner);
    let mut l2tp = eth(0x0800);
    l2tp.extend(udp4(1701, 1701, &l2tp_payload));
    // Geneve (RFC 8926 §3.4): version 0, no options, protocol Ethernet, VNI.
    let mut gen_payload = vec![0, 0, 0x65, 0x58, 0, 0, 1, 0];
    gen_payload.extend(eth(0x0800));
    gen_payload.extend_from_slice(&inner);
    let mut geneve = eth(0x0800);
    geneve.extend(udp4(40000, 6081, &gen_payload));
    let plain = {
        let mut f = eth(0x0800);
        f.extend(udp4(1701, 9999, b"not l2tp")); // port alone is not enough
        f
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tunnels.pcap");
    std::fs::write(&file, pcap(&[mpls.clone(), mpls, l2tp, geneve, plain])).unwrap();
    let report = matador::analysis::replay::analyze_file(&file, &Default::default());
    assert_eq!(report.packets, 5);
    let name = file.display().to_string();
    let want = [
        format!(
            "{name}: 2 frames inside an unsupported encapsulation (mpls): analysed by their outer headers only, the traffic inside is not"
        ),
        format!(
            "{name}: 1 frames inside an unsupported encapsulation (l2tp): analysed by their outer headers only, the traffic inside is not"
        ),
        format!(
            "{name}: 1 frames inside an unsupported encapsulation (geneve): analysed by their outer headers only, the traffic inside is not"
        ),
    ];
    assert_eq!(report.warnings, want);
    // The UDP carriers stay flows of their own (no encap: not opened).
    assert_eq!(report.flows.len(), 3, "{:?}", report.flows);
    assert!(report.flows.iter().all(|f| f.encap.is_empty()));
}

/// Replay reports a tunnelled flow with its inner 5-tuple and the tunnels
/// (`dns.pcap`: the `e7.whatsapp.net` lookup inside PPPoE; `gre.pcapng`:
/// SIP inside PPTP's GRE).
#[test]
fn replay_flows_carry_their_encapsulation() {
    let dir = ndpi_dev();
    let opts = Default::default();
    let r = matador::analysis::replay::analyze_file(&dir.join("dns.pcap"), &opts);
    let tunnelled: Vec<_> = r.flows.iter().filter(|f| !f.encap.is_empty()).collect();
    assert_eq!(tunnelled.len(), 1, "{:?}", r.flows);
    let json = serde_json::to_value(tunnelled[0]).unwrap();
    assert_eq!(json["encap"], serde_json::json!(["pppoe"]));
    assert_eq!(json["dport"], 53);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let r = matador::analysis::replay::analyze_file(&dir.join("gre.pcapng"), &opts);
    assert_eq!(r.flows.len(), 1);
    assert_eq!(
        serde_json::to_value(&r.flows[0]).unwrap()["encap"],
        serde_json::json!(["gre"])
    );
}
