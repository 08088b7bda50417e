//! Interference detection on the real captures in ../shared/captures/real:
//! exact events where censorship is documented, none on clean traffic.

use matador::analysis::model::{InterferenceEvent, InterferenceKind, InterferenceRule};
use matador::analysis::replay::{ReplayOptions, analyze_file};
use std::path::{Path, PathBuf};

fn real(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/captures/real")
        .join(name);
    assert!(
        p.is_file(),
        "real capture {} missing: the shared captures must sit beside the crate",
        p.display()
    );
    p
}

fn events(name: &str) -> Vec<InterferenceEvent> {
    let r = analyze_file(&real(name), &ReplayOptions::default());
    assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
    r.interference
}

fn summary(ev: &[InterferenceEvent]) -> Vec<(InterferenceRule, Vec<u64>)> {
    ev.iter()
        .map(|e| (e.rule.clone(), e.frames.clone()))
        .collect()
}

#[test]
fn digisocial_forged_answer_and_bogus_synacks() {
    let ev = events("citizenlab-digisocial.com.pcap");
    let mut want = vec![(InterferenceRule::KnownForgedAnswer, vec![10])];
    for f in [12, 15, 22, 25, 38] {
        want.push((InterferenceRule::BogusSynack, vec![f]));
    }
    assert_eq!(summary(&ev), want);
    let dns = &ev[0];
    assert_eq!(dns.kind, InterferenceKind::DnsForgery);
    assert_eq!(dns.claimed_src.to_string(), "10.202.72.116");
    assert_eq!(dns.evidence["forged_addresses"][0], "37.61.54.158");
    assert_eq!(dns.evidence["query"], "digisocial.com");
    assert_eq!(dns.evidence["query_frame"], 9);
    assert_eq!(dns.confidence, 0.95);
    for e in &ev[1..] {
        assert_eq!(e.kind, InterferenceKind::InjectedPacket);
        assert_eq!(e.claimed_src.to_string(), "37.61.54.158");
        assert_eq!(e.evidence["dns_forged_address"], true);
        assert_eq!(e.evidence["ip_id"], "0x76c9");
        assert_eq!(e.evidence["payload_len"], 5);
        assert_eq!(e.evidence["ttl_values_seen"].as_array().unwrap().len(), 5);
        assert_eq!(e.confidence, 0.95);
    }
    assert_eq!(ev[1].evidence["syn_frame"], 11);
    assert_eq!(ev[5].evidence["syn_frame"], 37);
}

#[test]
fn egypt_packetlogic_injections_and_ttl_localization() {
    let ev = events("citizenlab-egypt-packetlogic-ttl-localization.pcap");
    let mut want = Vec::new();
    for f in [8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104] {
        want.push((InterferenceRule::InjectedHttpResponse, vec![f]));
    }
    for f in [257, 263, 269, 274, 279, 284] {
        want.push((InterferenceRule::InjectedRst, vec![f]));
    }
    assert_eq!(summary(&ev), want);
    for e in &ev {
        assert_eq!(e.kind, InterferenceKind::InjectedPacket);
        assert_eq!(e.claimed_src.to_string(), "196.219.51.193");
        assert_eq!(e.evidence["ip_id"], "0x3412");
        assert_eq!(e.evidence["window"], 32120);
        assert!(e.evidence.contains_key("known_injector"));
        assert_eq!(e.evidence["repeated_ip_id"], 19);
        // Both probe series (TTL-limited FINs, then TTL-limited requests)
        // flip at 14 hops.
        assert_eq!(e.evidence["probe_ttl_threshold"], 14, "{e:?}");
        assert_eq!(e.injector_hops, Some(14));
        assert!(e.confidence >= 0.8, "{e:?}");
    }
    let rst = &ev[13];
    assert_eq!(rst.evidence["ip_ttl"], 51);
    assert_eq!(rst.evidence["expected_ip_ttl"], 237);
    assert_eq!(rst.evidence["injector_initial_ttl"], 64);
    assert_eq!(rst.evidence["server_hops"], 18);
    assert_eq!(rst.evidence["injector_hops_from_ttl"], 13);
    assert_eq!(rst.evidence["trigger_frame"], 256);
    // Exactly the server's next sequence number: copied from the request's ACK.
    assert_eq!(rst.evidence["seq_offset"], 0);
    assert_eq!(rst.confidence, 0.95);
    let http = &ev[0];
    assert_eq!(
        http.evidence["http_status_line"],
        "HTTP/1.1 307 Temporary Redirect"
    );
    assert_eq!(
        http.evidence["expected_window"],
        serde_json::json!([4065, 4065])
    );
    assert_eq!(http.evidence["trigger_frame"], 5);
}

#[test]
fn no_false_alarms_on_clean_captures() {
    for name in [
        "ndpi-whatsapp.pcap",
        "ndpi-whatsapp_login_chat.pcap",
        "ndpi-signal.pcap",
        "ndpi-threema.pcap",
        "ndpi-wechat.pcap",
        "ndpi-telegram.pcap",
        "ndpi-android.pcap",
        "citizenlab-capture-logged-in-all-keys.pcapng",
        "lwerdna-simple_http_sll2.pcap",
    ] {
        let ev = events(name);
        assert!(ev.is_empty(), "{name}: false alarms {ev:#?}");
    }
}

/// In a replay the detector takes the engine's DNS records instead of
/// extracting DNS itself; on every real capture its events are exactly
/// those of the detector run alone (its own extraction).
#[test]
fn replay_fed_detector_equals_the_standalone_one() {
    use matador::analysis::interference::{InterferenceConfig, analyze_capture};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    let mut with_events = 0;
    for f in &files {
        let replayed = analyze_file(f, &ReplayOptions::default());
        if !replayed.errors.is_empty() {
            continue; // the standalone run stops at the first error instead
        }
        let alone = analyze_capture(f, InterferenceConfig::default()).unwrap();
        assert_eq!(replayed.interference, alone, "{}", f.display());
        with_events += usize::from(!alone.is_empty());
    }
    assert!(files.len() >= 10 && with_events >= 2, "{files:?}");
}
