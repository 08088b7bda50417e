//! Tunnels and link types of nDPI's test captures (`../shared/captures/ndpi-dev/`)
//! are opened: every packet's innermost IP addresses and ports, as tshark
//! reads them (last occurrence of `ip`/`ipv6`/`tcp`/`udp` fields), are the
//! ones replay's decoder hands the analysers. tshark runs in the test.

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

fn tshark_inner(file: &Path) -> Vec<Tuple> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args([
            "-T",
            "fields",
            "-E",
            "occurrence=l",
            "-E",
            "separator=|",
            "-e",
            "frame.number",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "udp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.dstport",
            "-e",
            "frame.protocols",
        ])
        .output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
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

#[test]
fn tunnels_are_opened_like_tshark() {
    let dir = ndpi_dev();
    for file in [
        "dlt_ppp.pcap",
        "dns.pcap",
        "gre.pcapng",
        "vxlan.pcap",
        "ipv6_in_gtp.pcap",
        "capwap_data.pcapng",
        "4in6tunnel.pcap",
        "6in4tunnel.pcap",
    ] {
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
