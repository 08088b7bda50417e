//! `matador report` end to end: the binary on the fixture campaign, byte
//! identical to the library and across runs, exit codes, --out, HTML
//! structure, and a render in headless Chromium.

mod report_common;

use assert_cmd::Command;
use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options};
use quick_xml::events::Event;
use report_common::*;
use std::path::Path;

fn matador() -> Command {
    Command::cargo_bin("matador").unwrap()
}

fn report_cmd(db: &Path, format: &str) -> Command {
    let mut c = matador();
    c.arg("report")
        .arg(fixtures().join("small"))
        .args(["--format", format, "--groups", "pam2016"])
        .arg("--geo-db")
        .arg(db)
        .arg("--asn-db")
        .arg(db);
    c
}

#[test]
fn cli_matches_library_and_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, db) = lab_db(tmp.path());
    let c = Campaign::load(&fixtures().join("small")).unwrap();
    let g = GroupSet::preset("pam2016").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    for (flag, f) in [
        ("md", Format::Markdown),
        ("csv", Format::Csv),
        ("json", Format::Json),
        ("html", Format::Html),
    ] {
        let a = report_cmd(&p, flag).output().unwrap();
        let b = report_cmd(&p, flag).output().unwrap();
        // Exit 1: the fixture has a corrupt analysis.json, named on stderr.
        assert_eq!(a.status.code(), Some(1), "{flag}");
        let err = String::from_utf8_lossy(&a.stderr);
        assert!(err.contains("measurements/m0007/analysis.json"), "{err}");
        assert_eq!(a.stdout, b.stdout, "{flag} output differs between runs");
        assert_eq!(String::from_utf8(a.stdout).unwrap(), report::render(&r, f));
    }
}

#[test]
fn cli_out_dir_and_empty_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = lab_db(tmp.path());
    let out = tmp.path().join("out");
    let o = report_cmd(&p, "csv")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("report.csv"));
    for f in [
        "report.csv",
        "table2.csv",
        "table3.csv",
        "dns.csv",
        "servers.csv",
        "paths.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let t2 = std::fs::read_to_string(out.join("table2.csv")).unwrap();
    assert!(t2.starts_with("Level,Region,Pairs,# Measurements,"));
    assert_eq!(t2.lines().count(), 8); // header + 7 areas

    // The empty campaign: success, tables empty.
    let o = matador()
        .arg("report")
        .arg(fixtures().join("empty"))
        .arg("--geo-db")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("## Table 2: traffic leaving region\n\n(none)")
    );

    // Usage and input errors.
    let o = matador()
        .arg("report")
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
    let o = report_cmd(&p, "pdf").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = matador()
        .arg("report")
        .arg(fixtures().join("small"))
        .args(["--groups", "nowhere.yaml", "--geo-db"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere.yaml"));
}

/// Parses the page as XML: every element closed and properly nested.
fn check_well_formed(html: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(html);
    reader.config_mut().check_end_names = true;
    let mut names = Vec::new();
    let mut depth = 0i32;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Ok(Event::Empty(e)) => {
                names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    names
}

#[test]
fn html_structure() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let c = Campaign::load(&fixtures().join("small")).unwrap();
    let g = GroupSet::preset("pam2016").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    let html = report::render(&r, Format::Html);
    let names = check_well_formed(&html);
    let count = |n: &str| names.iter().filter(|x| *x == n).count();
    // Non-empty tables: 2, 3, DNS, servers, server choice, interference
    // summary and list, anomalies, failures, problems, RTT, paths.
    assert_eq!(count("table"), 12);
    assert_eq!(count("html"), 1);
    // Bars, heat map, RTT plot, a map per app, a diagram per (vantage,
    // app) and a timeline per vantage with interference.
    let vantages: std::collections::BTreeSet<&str> =
        r.interference.iter().map(|i| i.vantage.as_str()).collect();
    assert!(!vantages.is_empty());
    assert_eq!(
        count("svg"),
        3 + r.apps.len() + report::diagrams::diagrams(&r).len() + vantages.len()
    );
    assert_eq!(count("desc"), count("svg"));
    assert!(count("rect") > 20);
    for id in [
        "table2",
        "table3",
        "dns",
        "servers",
        "interference",
        "anomalies",
        "failures",
        "paths",
    ] {
        assert!(html.contains(&format!("<h2 id=\"{id}\">")), "{id}");
    }
    // Self-contained: nothing fetched, nothing executed.
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http://", "https://", "<script", "src=", "href=", "<link", "@import", "url(",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
    // Text from the record is escaped.
    assert!(html.contains("the resolver&#39;s replies carry 57"));
}
