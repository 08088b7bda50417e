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
