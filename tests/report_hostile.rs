//! Malformed and hostile records: every bad file is named, nothing panics,
//! the rest is still reported.

mod report_common;

use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options};
use report_common::*;
use std::path::Path;

fn w(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn bad_files_are_named_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let d = tmp.path().join("hostile");
    w(
        &d.join("index.json"),
        r#"{"schema":"matador/index/1","campaign":"extra fields are fine","measurements":[
          {"id":"m1","kind":"message","app":"whatsapp","sender_country":"de","receiver_country":"FR",
           "sender_node":"de-1","receiver_node":"fr-1","status":"complete"},
          {"id":"m2","kind":"message","app":"whatsapp","status":"complete"},
          {"id":"m3","status":"complete","kind":"message"},
          {"id":"m1","status":"complete"},
          {"id":"","status":"complete"}
        ]}"#,
    );
    w(
        &d.join("lab.json"),
        "{\"schema\":\"matador/lab/1\",\"nodes\":[{\"name\":1}]}",
    );
    let m1 = d.join("measurements/m1");
    w(
        &m1.join("analysis.json"),
        r#"{"schema":"matador/analysis/2","captures":[]}"#,
    );
    // A good trace with an IPv4-mapped hop, a negative RTT and an empty hop.
    w(
        &m1.join("traces/de-1--fr-1.json"),
        r#"{"dst_addr":"198.18.2.1","src_addr":"::ffff:198.18.1.1","result":[
            {"hop":1,"result":[{"from":"::ffff:198.18.10.1","rtt":-3}]},
            {"hop":2,"result":[]},
            {"hop":3,"result":[{"from":"198.18.2.1","rtt":11.5,"err":"N"}]}]}"#,
    );
    w(
        &m1.join("traces/de-1--bad-ip.json"),
        r#"{"dst_addr":"not-an-ip","result":[]}"#,
    );
    w(
        &m1.join("traces/de-1--wrong-type.json"),
        r#"{"dst_addr":"198.18.2.1","result":"x"}"#,
    );
    w(
        &m1.join("traces/de-1--schema.json"),
        r#"{"schema":"other/1","dst_addr":"198.18.2.1"}"#,
    );
    w(
        &m1.join("traces/de-1--array.json"),
        r#"[{"dst_addr":"198.18.2.1"}, 5]"#,
    );
    w(&m1.join("traces/not-json.json"), "\u{0}\u{1}garbage");
    w(&m1.join("traces/ignored.txt"), "not a trace");
    let m2 = d.join("measurements/m2");
    w(
        &m2.join("analysis.json"),
        r#"{"schema":"matador/analysis/1","captures":{"no":"list"}}"#,
    );
    let m3 = d.join("measurements/m3");
    w(&m3.join("analysis.json"), "");

    let c = Campaign::load(&d).unwrap();
    let files: Vec<&str> = c.problems.iter().map(|p| p.file.as_str()).collect();
    for f in [
        "index.json",
        "lab.json",
        "measurements/m1/analysis.json",
        "measurements/m1/traces/de-1--bad-ip.json",
        "measurements/m1/traces/de-1--wrong-type.json",
        "measurements/m1/traces/de-1--schema.json",
        "measurements/m1/traces/de-1--array.json",
        "measurements/m1/traces/not-json.json",
        "measurements/m2/analysis.json",
        "measurements/m3/analysis.json",
    ] {
        assert!(files.contains(&f), "{f} not named in {:?}", c.problems);
    }
    assert!(!files.iter().any(|f| f.ends_with(".txt")));
    // m1 twice and an empty id: one entry kept, one skipped, both named.
    assert_eq!(c.measurements.len(), 3);
    assert_eq!(
        c.problems.iter().filter(|p| p.file == "index.json").count(),
        2
    );

    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    // The good trace still counts: DE → NL → FR stays in Europe.
    let eu = r.table2.iter().find(|x| x.name == "Europe").unwrap();
    assert_eq!((eu.network.k, eu.network.n), (0, 1));
    let p = &r.paths[0];
    assert_eq!(p.countries, ["DE", "NL", "?", "FR"]); // the silent hop is unknown
    assert_eq!(p.hops[1].rtt, None); // negative RTT dropped
    assert_eq!(p.hops[2].addr, None); // silent hop kept
    // m2 has no vantage countries: named, left out of the tables.
    assert!(
        r.problems
            .iter()
            .any(|p| p.file == "measurements/m2/meta.json")
    );
    for f in [Format::Markdown, Format::Csv, Format::Json, Format::Html] {
        assert!(!report::render(&r, f).is_empty());
    }
}

#[test]
fn markup_in_the_record_is_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let d = tmp.path().join("markup");
    w(
        &d.join("index.json"),
        r#"{"schema":"matador/index/1","measurements":[
          {"id":"m1","kind":"message","app":"<script>x</script>","status":"failed",
           "error":"a | b\nc, \"d\" <img src=http://x>"}]}"#,
    );
    let c = Campaign::load(&d).unwrap();
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    let html = report::render(&r, Format::Html);
    assert!(!html.contains("<script") && !html.contains("<img"));
    assert!(html.contains("&lt;script&gt;"));
    let md = report::render(&r, Format::Markdown);
    assert!(md.contains(r"a \| b c,"), "{md}");
    let csv = report::render(&r, Format::Csv);
    assert!(
        csv.contains("\"a | b\nc, \"\"d\"\" <img src=http://x>\""),
        "{csv}"
    );
}

#[test]
fn relevance_unknown_without_correlation() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let d = tmp.path().join("uncorrelated");
    w(
        &d.join("index.json"),
        r#"{"schema":"matador/index/1","measurements":[
          {"id":"m1","kind":"message","app":"signal","status":"complete"}]}"#,
    );
    // Replay output only: DNS but no correlation result (no server roles).
    w(
        &d.join("measurements/m1/analysis.json"),
        r#"{"schema":"matador/analysis/1","servers":[],"captures":[{"capture":"c.pcap",
          "format":"pcap","link_types":[],"packets":1,"bytes":1,"first_ts":null,"last_ts":null,
          "flows":[],"tls":[],"servers":[],"interference":[],"errors":[],
          "dns":[{"frame":1,"ts":"1.5","transport":"udp","server":"198.18.0.53","query":"chat.signal.org",
                  "qtype":"A","rcode":"NOERROR","ip_ttl":null,"ip_id":null,
                  "answers":[{"name":"chat.signal.org","type":"A","data":"198.18.24.9","ttl":60}]}]}]}"#,
    );
    let c = Campaign::load(&d).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    assert_eq!(r.dns.len(), 1);
    assert_eq!(r.dns[0].relevant, None);
    assert_eq!(r.dns[0].countries, ["US"]);
    assert!(report::render(&r, Format::Markdown).contains("| Lab Signal | US | ? | 1 |"));
}
