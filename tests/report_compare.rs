//! `matador report A B --compare`: a copy of the fixture campaign with a
//! moved Threema server, a rerouted direct path and no DNS forgery.

mod report_common;

use assert_cmd::Command;
use matador::geo::groups::GroupSet;
use matador::report::compare::compare;
use matador::report::model::Report;
use matador::report::{self, Campaign, Options};
use report_common::*;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn edit(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Campaign B: Threema's server moved to 198.18.21.7, the DE→FR direct
/// path goes through the US, cn-1 saw no forgery.
fn make_b(dir: &Path) {
    copy_dir(&fixtures().join("small"), dir);
    let m = dir.join("measurements");
    let a = m.join("m0002/analysis.json");
    let text = std::fs::read_to_string(&a)
        .unwrap()
        .replace("198.18.21.5", "198.18.21.7");
    std::fs::write(&a, text).unwrap();
    for t in ["de-1--198.18.21.5.json", "fr-1--198.18.21.5.json"] {
        let p = m.join("m0002/traces").join(t);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("198.18.21.5", "198.18.21.7");
        std::fs::write(p.with_file_name(t.replace("21.5", "21.7")), text).unwrap();
        std::fs::remove_file(p).unwrap();
    }
    edit(&m.join("m0001/traces/de-1--fr-1.json"), |v| {
        v["result"][0]["result"][0]["from"] = "198.18.11.9".into();
        v["result"][0]["result"][1]["from"] = "198.18.11.9".into();
    });
    edit(&m.join("m0008/analysis.json"), |v| {
        v["captures"][1]["interference"] = serde_json::json!([]);
    });
}

fn build(dir: &Path, db: &matador::geo::db::GeoDb) -> Report {
    let c = Campaign::load(dir).unwrap();
    let g = GroupSet::preset("pam2016").unwrap();
    report::build(&c, db, &g, &Options::default()).unwrap()
}

#[test]
fn what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, db) = lab_db(tmp.path());
    let bdir = tmp.path().join("small-b");
    make_b(&bdir);
    let a = build(&fixtures().join("small"), &db);
    let b = build(&bdir, &db);

    let same = compare(&a, &a);
    assert!(same.servers_added.is_empty() && same.servers_removed.is_empty());
    assert!(same.locality.is_empty() && same.paths.is_empty() && same.interference.is_empty());

    let c = compare(&a, &b);
    let keys = |v: &[matador::report::compare::ServerKey]| {
        v.iter()
            .map(|s| format!("{} {} {}", s.app, s.vantage, s.ip))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&c.servers_added),
        ["threema de-1 198.18.21.7", "threema fr-1 198.18.21.7"]
    );
    assert_eq!(
        keys(&c.servers_removed),
        ["threema de-1 198.18.21.5", "threema fr-1 198.18.21.5"]
    );
    let direct: Vec<_> = c.paths.iter().filter(|p| p.class == "direct").collect();
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0].a, ["DE → NL → FR"]);
    assert_eq!(direct[0].b, ["DE → US → FR"]);
    // Application paths to the old and new Threema targets: 4 changes.
    assert_eq!(
        c.paths
            .iter()
            .filter(|p| p.app.as_deref() == Some("threema"))
            .count(),
        4
    );
    // The direct path now leaves Europe and touches the Five Eyes.
    let eu = c
        .locality
        .iter()
        .find(|l| l.table == "table2" && l.area == "Europe (region)" && l.column == "network")
        .unwrap();
    assert_eq!((eu.a.unwrap().k, eu.b.unwrap().k), (0, 1));
    assert!(c.locality.iter().any(|l| l.table == "table3"
        && l.group.as_deref() == Some("five_eyes")
        && l.area == "Europe (region)"
        && l.column == "network"));
    assert_eq!(c.interference.len(), 1);
    assert_eq!((c.interference[0].a, c.interference[0].b), (1, 0));

    // The CLI: same comparison, stable bytes.
    let run = || {
        Command::cargo_bin("matador")
            .unwrap()
            .arg("report")
            .arg(fixtures().join("small"))
            .arg(&bdir)
            .args(["--compare", "--format", "json", "--geo-db"])
            .arg(&p)
            .output()
            .unwrap()
    };
    let (o1, o2) = (run(), run());
    assert_eq!(o1.status.code(), Some(1)); // both copies hold the corrupt analysis.json
    assert_eq!(o1.stdout, o2.stdout);
    let v: serde_json::Value = serde_json::from_slice(&o1.stdout).unwrap();
    assert_eq!(v["schema"], "matador/report-compare/1");
    assert_eq!(v["servers_added"].as_array().unwrap().len(), 2);
    let md = Command::cargo_bin("matador")
        .unwrap()
        .arg("report")
        .arg(fixtures().join("small"))
        .arg(&bdir)
        .args(["--compare", "--geo-db"])
        .arg(&p)
        .output()
        .unwrap();
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.starts_with("# matador comparison: small → small-b"));
    assert!(
        md.contains("| direct |  | de-1 | fr-1 | DE → NL → FR | DE → US → FR |"),
        "{md}"
    );
    // Two folders without --compare is refused.
    let o = Command::cargo_bin("matador")
        .unwrap()
        .arg("report")
        .arg(fixtures().join("small"))
        .arg(&bdir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--compare"));
}
