//! The report's active-probe section, built from the probe rounds stored in
//! measurement folders (`probes/round.json`), and a damaged round named as a
//! problem rather than failing the report.

mod report_common;

use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options};
use report_common::*;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -r {}", from.display());
}

fn round(vantage: &str, app: &str, verdict: &str, keywords: &[&str], frames: &[u64]) -> String {
    serde_json::json!({
        "control": {},
        "vantages": [],
        "verdicts": [{
            "vantage": vantage,
            "control": "ca-1",
            "apps": [{
                "app": app,
                "verdicts": [verdict],
                "endpoints": [{
                    "host": "gd2.line.naver.jp",
                    "verdicts": [verdict],
                    "keywords": keywords,
                    "evidence_frames": frames,
                }],
            }],
        }],
    })
    .to_string()
}

#[test]
fn probe_rounds_become_a_vantage_by_app_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("small");
    copy_dir(&fixtures().join("small"), &dir);
    let ms: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("measurements"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(ms.len() >= 3, "fixture has {} measurements", ms.len());
    let put = |m: &str, text: &str| {
        let p = dir.join("measurements").join(m).join("probes");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("round.json"), text).unwrap();
    };
    put(
        &ms[0],
        &round(
            "cn-1",
            "line",
            "http-keyword-blocked",
            &["naver.jp"],
            &[4, 5],
        ),
    );
    // Same vantage and app later: unblocked; the row keeps both verdicts.
    put(&ms[1], &round("cn-1", "line", "ok", &[], &[]));
    put(&ms[2], "{ not json");

    let (_p, db) = lab_db(tmp.path());
    let c = Campaign::load(&dir).unwrap();
    let g = GroupSet::preset("pam2016").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    assert_eq!(r.probes.len(), 1, "{:?}", r.probes);
    let row = &r.probes[0];
    assert_eq!((row.vantage.as_str(), row.app.as_str()), ("cn-1", "line"));
    assert_eq!(row.verdicts, ["http-keyword-blocked", "ok"]);
    assert_eq!(row.measurements, [ms[0].clone(), ms[1].clone()]);
    assert_eq!(row.keywords, ["naver.jp"]);
    assert_eq!(row.controls, ["ca-1"]);
    assert_eq!(row.evidence_frames, 2);
    assert_eq!(
        row.evidence,
        format!("measurements/{}/probes/matrix.md", ms[0])
    );
    let bad = format!("measurements/{}/probes/round.json", ms[2]);
    assert!(
        r.problems
            .iter()
            .any(|p| p.file == bad && p.message.contains("not a probe round")),
        "{:?}",
        r.problems
    );
    let md = report::render(&r, Format::Markdown);
    assert!(md.contains("## Active probes (vantage × app)"), "{md}");
    assert!(
        md.contains("| cn-1 | line | http-keyword-blocked ok |"),
        "{md}"
    );
    let json = report::render(&r, Format::Json);
    assert!(json.contains("\"probes\""), "{json}");

    // Without probe rounds the section (and the JSON key) is absent.
    let c = Campaign::load(&fixtures().join("small")).unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    assert!(r.probes.is_empty());
    assert!(!report::render(&r, Format::Markdown).contains("Active probes"));
}
