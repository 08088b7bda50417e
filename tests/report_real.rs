//! The report over analyses of real captures (shared/captures/real):
//! `analysis.json` holds exactly what `analysis::replay` produces, so the
//! record contract and the report agree on the CaptureReport format.

mod report_common;

use matador::analysis::replay::{ReplayOptions, analyze_file};
use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options};
use report_common::*;
use std::path::Path;

#[test]
fn signal_capture_dns_and_servers() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real");
    let pcap = real.join("ndpi-signal.pcap");
    assert!(
        pcap.is_file(),
        "{} missing: the real sample captures are required (shared/captures/real)",
        pcap.display()
    );
    let mut cap = analyze_file(&pcap, &ReplayOptions::default());
    assert!(cap.errors.is_empty(), "{:?}", cap.errors);
    cap.capture = "measurements/m1/capture-router-phone-a.pcap".into();
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let d = tmp.path().join("real");
    std::fs::create_dir_all(d.join("measurements/m1")).unwrap();
    std::fs::write(
        d.join("index.json"),
        r#"{"schema":"matador/index/1","measurements":[{"id":"m1","kind":"message","app":"signal",
            "sender":"phone-a","receiver":"phone-b","sender_country":"DE","receiver_country":"FR",
            "sender_node":"de-1","receiver_node":"fr-1","repetition":1,"status":"complete"}]}"#,
    )
    .unwrap();
    let analysis =
        serde_json::json!({"schema": "matador/analysis/1", "captures": [cap], "servers": []});
    std::fs::write(
        d.join("measurements/m1/analysis.json"),
        serde_json::to_vec(&analysis).unwrap(),
    )
    .unwrap();
    let c = Campaign::load(&d).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    // The seed's Signal (TextSecure) DNS row: textsecure-service.whispersystems.org.
    let ts: Vec<_> = r
        .dns
        .iter()
        .filter(|x| x.name == "textsecure-service.whispersystems.org")
        .collect();
    assert!(!ts.is_empty(), "{:?}", r.dns);
    assert!(ts.iter().all(|x| x.app == "signal" && x.name_ips >= 1));
    // Public addresses have no record in the lab database: unknown, not dropped.
    assert!(ts.iter().all(|x| x.prefix == "-" && x.countries == ["?"]));
    // Servers attributed by replay, at the phone's vantage (de-1 from the index).
    assert!(r.servers.iter().any(|s| s.app == "signal"
        && s.vantage == "de-1"
        && s.names.iter().any(|n| n.contains("whispersystems.org"))));
    assert!(report::render(&r, Format::Markdown).contains("textsecure-service.whispersystems.org"));
}

/// The interference timeline over real injections (Citizen Lab captures in
/// shared/captures/real): the Egyptian middlebox's injected packets carry
/// IP-ID 0x3412, the Chinese forged DNS answer its own TTL — the page shows
/// each flagged frame with the TTL and IP-ID the detector recorded.
#[test]
fn interference_timeline_of_real_injections() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real");
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let d = tmp.path().join("real");
    let mut index = Vec::new();
    let mut events = Vec::new();
    for (id, file, node) in [
        (
            "m1",
            "citizenlab-egypt-packetlogic-ttl-localization.pcap",
            "eg-1",
        ),
        ("m2", "citizenlab-digisocial.com.pcap", "cn-1"),
    ] {
        let pcap = real.join(file);
        assert!(pcap.is_file(), "{} missing", pcap.display());
        let mut cap = analyze_file(&pcap, &ReplayOptions::default());
        assert!(
            !cap.interference.is_empty(),
            "{file}: no interference found"
        );
        cap.capture = format!("measurements/{id}/capture-node-{node}.pcap");
        events.push((node, cap.interference.clone()));
        std::fs::create_dir_all(d.join("measurements").join(id)).unwrap();
        std::fs::write(
            d.join("measurements").join(id).join("analysis.json"),
            serde_json::to_vec(
                &serde_json::json!({"schema": "matador/analysis/1", "captures": [cap], "servers": []}),
            )
            .unwrap(),
        )
        .unwrap();
        index.push(
            serde_json::json!({"id": id, "kind": "message", "app": "line",
            "sender_node": node, "receiver_node": "de-1", "status": "complete"}),
        );
    }
    std::fs::write(
        d.join("index.json"),
        serde_json::to_vec(
            &serde_json::json!({"schema": "matador/index/1", "measurements": index}),
        )
        .unwrap(),
    )
    .unwrap();
    let c = Campaign::load(&d).unwrap();
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    let html = report::render(&r, Format::Html);
    let start = html.find("<h2 id=\"interference-timeline\">").unwrap();
    let end = html[start..].find("<h2 id=\"plots\">").unwrap() + start;
    let tl = &html[start..end];
    for (node, evs) in &events {
        let shown = evs
            .len()
            .min(matador::report::timeline::MAX_EVENTS_PER_VANTAGE);
        let fig = &tl[tl.find(&format!("Interference at {node}")).unwrap()..];
        let fig = &fig[..fig.find("</figure>").unwrap()];
        // One row (and one rule label) per drawn event.
        assert_eq!(fig.matches("class=\"label\"").count(), shown, "{node}");
        for e in evs.iter().take(shown) {
            let f = e.frames[0];
            let mut label = format!("f{f}");
            if let Some(t) = e.evidence.get("ip_ttl").and_then(|v| v.as_u64()) {
                label.push_str(&format!(" TTL {t}"));
            }
            if let Some(i) = e.evidence.get("ip_id").and_then(|v| v.as_str()) {
                label.push_str(&format!(" ID {i}"));
            }
            assert!(
                fig.contains(&format!(">{label}")),
                "{node}: {label} not drawn"
            );
        }
    }
    assert!(tl.contains("ID 0x3412"));
}
