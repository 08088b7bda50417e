//! `matador replay`'s engine (reader + decoder + all sinks) on every real
//! capture in ../shared/captures/real, checked against tshark run on the
//! same file during the test: conversations (flows), DNS answers and
//! ClientHello SNIs.

#[path = "protocols_common/mod.rs"]
mod protocols_common;

use matador::analysis::flows::FlowConfig;
use matador::analysis::model::CaptureReport;
use matador::analysis::replay::{ReplayOptions, analyze_file, collect_inputs};
use protocols_common::{ours_dns, tshark, tshark_dns, tshark_sni};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

fn real_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real");
    let files = collect_inputs(std::slice::from_ref(&dir));
    assert_eq!(
        files.len(),
        13,
        "expected the 13 captures of {}",
        dir.display()
    );
    files
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// A canonical (unordered) conversation key.
type Conv = (String, (IpAddr, u16), (IpAddr, u16));

fn conv(proto: &str, a: (IpAddr, u16), b: (IpAddr, u16)) -> Conv {
    (proto.to_string(), a.min(b), a.max(b))
}

fn endpoint(s: &str) -> (IpAddr, u16) {
    let (ip, port) = s.rsplit_once(':').unwrap();
    (ip.parse().unwrap(), port.parse().unwrap())
}

/// tshark's TCP and UDP conversations with their total frame counts.
fn tshark_convs(file: &Path) -> BTreeMap<Conv, u64> {
    let mut out = BTreeMap::new();
    for proto in ["tcp", "udp"] {
        let z = format!("conv,{proto}");
        for line in tshark(file, &["-q", "-z", &z]) {
            let line = line.join("\t");
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.len() < 12 || t[1] != "<->" {
                continue;
            }
            // A <-> B  frames bytes unit  frames bytes unit  TOTAL-frames bytes unit  start duration
            let frames: u64 = t[9].replace(',', "").parse().unwrap();
            *out.entry(conv(proto, endpoint(t[0]), endpoint(t[2])))
                .or_default() += frames;
        }
    }
    out
}

fn our_convs(r: &CaptureReport) -> (BTreeMap<Conv, u64>, usize) {
    let mut out = BTreeMap::new();
    let mut n = 0;
    for f in r
        .flows
        .iter()
        .filter(|f| f.proto == "tcp" || f.proto == "udp")
    {
        n += 1;
        *out.entry(conv(&f.proto, (f.src, f.sport), (f.dst, f.dport)))
            .or_default() += f.packets;
    }
    (out, n)
}

#[test]
fn flows_match_tshark_conversations() {
    // tshark's conversations ignore time; with idle timeouts disabled our
    // flows must be exactly its conversations, packet for packet.
    let endless = ReplayOptions {
        flows: FlowConfig {
            tcp_idle: f64::INFINITY,
            tcp_closed_idle: f64::INFINITY,
            other_idle: f64::INFINITY,
        },
        ..ReplayOptions::default()
    };
    for file in real_files() {
        let theirs = tshark_convs(&file);
        let r = analyze_file(&file, &endless);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let (ours, n) = our_convs(&r);
        assert_eq!(n, theirs.len(), "{}: flow count", name(&file));
        assert_eq!(ours, theirs, "{}: flows differ from tshark", name(&file));

        // With the default timeouts a conversation may be split into
        // several flows (idle gaps), but nothing is lost or invented.
        let r = analyze_file(&file, &ReplayOptions::default());
        let (ours, n) = our_convs(&r);
        assert_eq!(ours, theirs, "{}: default timeouts", name(&file));
        assert!(n >= theirs.len());
    }
}

#[test]
fn flow_split_by_idle_timeout_is_visible() {
    // ndpi-wechat.pcap spans 65 minutes; mDNS repeats after long silences
    // and FINs are retransmitted after 80 s, so default timeouts split some
    // conversations (tshark: 59 TCP + 37 UDP conversations).
    let file = real_files()
        .into_iter()
        .find(|f| name(f) == "ndpi-wechat.pcap")
        .unwrap();
    let r = analyze_file(&file, &ReplayOptions::default());
    let tcp = r.flows.iter().filter(|f| f.proto == "tcp").count();
    let udp = r.flows.iter().filter(|f| f.proto == "udp").count();
    assert_eq!((tcp, udp), (68, 43));
}

#[test]
fn dns_answers_match_tshark() {
    let mut total = 0;
    for file in real_files() {
        let r = analyze_file(&file, &ReplayOptions::default());
        let theirs = tshark_dns(&file);
        total += theirs.len();
        assert_eq!(
            ours_dns(&r.dns),
            theirs,
            "{}: DNS responses differ from tshark",
            name(&file)
        );
    }
    assert!(total >= 100, "only {total} DNS responses in the real set");
}

#[test]
fn snis_match_tshark() {
    let mut total = 0;
    for file in real_files() {
        let r = analyze_file(&file, &ReplayOptions::default());
        let theirs = tshark_sni(&file);
        total += theirs.len();
        let ours: BTreeSet<(u64, String)> = r
            .tls
            .iter()
            .map(|t| (t.frame, t.sni.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            ours,
            theirs,
            "{}: ClientHellos differ from tshark",
            name(&file)
        );
        // Every flow with a ClientHello carries its SNI.
        for t in r.tls.iter().filter(|t| t.sni.is_some()) {
            assert!(
                r.flows.iter().any(|f| f.sni == t.sni
                    && ((f.src, f.sport, f.dst, f.dport) == (t.src, t.sport, t.dst, t.dport)
                        || (f.dst, f.dport, f.src, f.sport) == (t.src, t.sport, t.dst, t.dport))),
                "{}: no flow carries SNI {:?}",
                name(&file),
                t.sni
            );
        }
    }
    assert!(total >= 20, "only {total} ClientHellos in the real set");
}

fn report(file: &str) -> CaptureReport {
    let f = real_files().into_iter().find(|f| name(f) == file).unwrap();
    analyze_file(&f, &ReplayOptions::default())
}

#[test]
fn forged_digisocial_answer_reaches_the_report() {
    let r = report("citizenlab-digisocial.com.pcap");
    let forged: Vec<_> = r
        .dns
        .iter()
        .filter(|d| {
            d.query == "digisocial.com" && d.answers.iter().any(|a| a.data == "37.61.54.158")
        })
        .collect();
    assert!(!forged.is_empty(), "{:#?}", r.dns);
    for d in forged {
        assert!(d.ip_ttl.is_some() && d.ip_id.is_some(), "{d:?}");
        assert_eq!(d.transport, "udp");
    }
}

#[test]
fn wechat_capture_has_newgetdns_list_and_servers() {
    let r = report("citizenlab-capture-logged-in-all-keys.pcapng");
    let httpdns = r
        .dns
        .iter()
        .filter(|d| d.transport == "wechat-httpdns")
        .count();
    assert!(httpdns >= 10, "{httpdns} newgetdns records");
    assert!(r.servers.iter().any(|s| s.app == "wechat"));
    assert!(
        r.flows
            .iter()
            .any(|f| f.app.as_deref() == Some("wechat") && f.proto == "tcp")
    );
}

#[test]
fn messaging_servers_per_ndpi_capture() {
    for (file, app) in [
        ("ndpi-whatsapp.pcap", "whatsapp"),
        ("ndpi-whatsapp_login_chat.pcap", "whatsapp"),
        ("ndpi-signal.pcap", "signal"),
        ("ndpi-threema.pcap", "threema"),
        ("ndpi-telegram.pcap", "telegram"),
        ("ndpi-wechat.pcap", "wechat"),
    ] {
        let r = report(file);
        assert!(
            r.servers
                .iter()
                .any(|s| s.app == app && !s.evidence.is_empty()),
            "{file}: no {app} server in {:#?}",
            r.servers
        );
        // Servers only of the app the capture is about.
        assert!(
            r.servers.iter().all(|s| s.app == app),
            "{file}: {:#?}",
            r.servers
        );
        assert!(r.flows.iter().any(|f| f.app.as_deref() == Some(app)));
    }
    assert!(report("ndpi-android.pcap").servers.is_empty());
}
