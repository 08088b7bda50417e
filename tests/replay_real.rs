//! Replay of every real capture in ../shared/captures/real.
//!
//! Expectations come from two places:
//! - `EXPECTED` below: packet count, sum of on-wire lengths and first/last
//!   timestamps recorded from `capinfos -c -d -a -e -S -T -r FILE`
//!   (Wireshark 4.0.17) and checked when this test was written;
//! - `frames_match_tshark`, which runs tshark on each file during the test
//!   and compares every frame's number, timestamp, addresses and ports.

use matador::analysis::decode::decode;
use matador::analysis::packet::Transport;
use matador::analysis::replay::{ReplayOptions, analyze_file, collect_inputs};
use matador::capture::CaptureReader;
use std::path::{Path, PathBuf};
use std::process::Command;

fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real")
}

/// (file, format, link types, packets, bytes, first_ts, last_ts)
type Expected = (
    &'static str,
    &'static str,
    &'static [&'static str],
    u64,
    u64,
    &'static str,
    &'static str,
);

const EXPECTED: &[Expected] = &[
    (
        "citizenlab-capture-logged-in-all-keys.pcapng",
        "pcap",
        &["ethernet"],
        489,
        99123,
        "1701738550.579982",
        "1701738577.046107",
    ),
    (
        "citizenlab-digisocial.com.pcap",
        "pcap",
        &["linux_sll"],
        43,
        3079,
        "1405520598.806875",
        "1405520623.546366",
    ),
    (
        "citizenlab-egypt-packetlogic-ttl-localization.pcap",
        "pcap",
        &["raw"],
        286,
        18990,
        "1518542931.111993",
        "1518543009.997298",
    ),
    (
        "hadrielk-test006.pcapng",
        "pcapng",
        &["ethernet", "null"],
        5,
        1480,
        "1340954905.298858",
        "1340954905.302858",
    ),
    // capinfos prints n/a for the times of test202 (its Simple Packet
    // Blocks carry none); the timestamped frames span these two.
    (
        "hadrielk-test202.pcapng",
        "pcapng",
        &["ethernet", "null"],
        8,
        2304,
        "1340954905.298858",
        "1340954905.301858",
    ),
    (
        "lwerdna-simple_http_sll2.pcap",
        "pcap",
        &["linux_sll2"],
        24,
        3593,
        "1732632335.227290",
        "1732632335.272022",
    ),
    (
        "ndpi-android.pcap",
        "pcap",
        &["ethernet"],
        500,
        133530,
        "1582454769.772338",
        "1582454872.047699",
    ),
    (
        "ndpi-signal.pcap",
        "pcap",
        &["ethernet"],
        637,
        315768,
        "1569051245.838268",
        "1569051267.601717",
    ),
    (
        "ndpi-telegram.pcap",
        "pcap",
        &["ethernet"],
        1566,
        336825,
        "1588779596.451825",
        "1588779655.298782",
    ),
    (
        "ndpi-threema.pcap",
        "pcap",
        &["ethernet"],
        83,
        11578,
        "1655301424.082000",
        "1655308018.973000",
    ),
    (
        "ndpi-wechat.pcap",
        "pcap",
        &["ethernet"],
        1672,
        667310,
        "1492167337.792745",
        "1492171291.761740",
    ),
    (
        "ndpi-whatsapp.pcap",
        "pcap",
        &["ethernet"],
        679,
        96293,
        "1655030801.747000",
        "1655116941.291000",
    ),
    (
        "ndpi-whatsapp_login_chat.pcap",
        "pcap",
        &["ethernet"],
        93,
        30137,
        "1432582377.898864",
        "1432582431.565397",
    ),
];

#[test]
fn every_real_capture_is_found_and_matches_capinfos() {
    let inputs = collect_inputs(&[real_dir()]);
    let names: Vec<String> = inputs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // Directory search goes by magic: MANIFEST.md and LICENSES/ are skipped,
    // the classic pcap named .pcapng is found.
    let mut want: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    want.sort();
    assert_eq!(names, want);
    for (file, format, links, packets, bytes, first, last) in EXPECTED {
        let r = analyze_file(&real_dir().join(file), &ReplayOptions::default());
        assert!(r.errors.is_empty(), "{file}: {:?}", r.errors);
        assert_eq!(r.format, *format, "{file}");
        assert_eq!(r.link_types, *links, "{file}");
        assert_eq!(r.packets, *packets, "{file}");
        assert_eq!(r.bytes, *bytes, "{file}");
        assert_eq!(r.first_ts.unwrap().to_string(), *first, "{file}");
        assert_eq!(r.last_ts.unwrap().to_string(), *last, "{file}");
        assert!(!r.flows.is_empty(), "{file}: no flows");
        let flow_packets: u64 = r.flows.iter().map(|f| f.packets).sum();
        assert!(flow_packets <= r.packets, "{file}");
    }
}

#[test]
fn short_snaplen_is_warned_about() {
    let r = analyze_file(
        &real_dir().join("hadrielk-test202.pcapng"),
        &ReplayOptions::default(),
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("snap length 96")),
        "{:?}",
        r.warnings
    );
    let r = analyze_file(
        &real_dir().join("ndpi-signal.pcap"),
        &ReplayOptions::default(),
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

/// One tshark line: frame number, epoch time, first IP src/dst, first ports.
struct TsharkFrame {
    frame: u64,
    time: String,
    src: Option<String>,
    dst: Option<String>,
    ports: Option<(u16, u16)>,
}

fn tshark_frames(path: &Path) -> Vec<TsharkFrame> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"])
        .args(["-e", "frame.number", "-e", "frame.time_epoch"])
        .args(["-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst"])
        .args(["-e", "tcp.srcport", "-e", "tcp.dstport"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport"])
        .output()
        .expect("tshark is required for this test (apt-get install tshark; scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "tshark failed on {}", path.display());
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
            let port = |a: &str, b: &str| match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ => None,
            };
            // The outermost header comes first: IPv4 before IPv6 only
            // matters for tunnels, absent from these files.
            TsharkFrame {
                frame: f[0].parse().unwrap(),
                time: f[1].to_string(),
                src: opt(f[2]).or_else(|| opt(f[4])),
                dst: opt(f[3]).or_else(|| opt(f[5])),
                ports: port(f[6], f[7]).or_else(|| port(f[8], f[9])),
            }
        })
        .collect()
}

#[test]
fn frames_match_tshark() {
    for (file, ..) in EXPECTED {
        let path = real_dir().join(file);
        let ts = tshark_frames(&path);
        let mut reader = CaptureReader::open(&path).unwrap();
        let mut seen = 0;
        while let Some(raw) = reader.next_frame().unwrap() {
            let pkt = decode(&raw);
            let t = ts
                .iter()
                .find(|t| t.frame == pkt.frame)
                .unwrap_or_else(|| panic!("{file}: frame {} not in tshark", pkt.frame));
            if !t.time.is_empty() {
                let ours = format!("{}.{:09}", pkt.ts.secs, pkt.ts.nanos);
                assert_eq!(ours, t.time, "{file} frame {}", pkt.frame);
            }
            let ip = pkt.ip;
            assert_eq!(
                ip.map(|i| i.src.to_string()),
                t.src,
                "{file} frame {}",
                pkt.frame
            );
            assert_eq!(
                ip.map(|i| i.dst.to_string()),
                t.dst,
                "{file} frame {}",
                pkt.frame
            );
            match pkt.transport {
                Transport::Tcp { .. } | Transport::Udp { .. } => {
                    assert_eq!(pkt.ports(), t.ports, "{file} frame {}", pkt.frame)
                }
                // tshark shows the ports quoted inside ICMP errors; we do not.
                Transport::Icmp { .. } => {}
                Transport::Other => {
                    let later = ip.is_some_and(|i| i.later_fragment);
                    assert!(
                        t.ports.is_none() || later,
                        "{file} frame {}: tshark sees ports {:?}",
                        pkt.frame,
                        t.ports
                    );
                }
            }
            seen += 1;
        }
        let tshark_packets = ts
            .iter()
            .filter(|t| !t.time.is_empty() || t.src.is_some())
            .count();
        assert!(seen >= tshark_packets, "{file}: {seen} < {tshark_packets}");
    }
}
