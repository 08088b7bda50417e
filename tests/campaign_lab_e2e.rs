//! The README's main job end to end: `matador run SCENARIO --lab` brings the
//! virtual lab up, runs a (reduced) demo campaign through it, writes the
//! record, prints the report and tears the lab down. Needs root and
//! network namespaces (it fails, never skips, without them).
//!
//! It runs from a working directory that holds nothing of the repository,
//! with the scenario in yet another folder: the defaults (phone and app
//! profiles, lab topology) are found as docs/campaign.md#files says, the
//! record goes to `campaigns/` under the working directory and nothing is
//! written anywhere else. (The shipped `scenarios/lab-demo.yaml` itself is
//! the README's main job; `tests/scenario_check.rs` checks it.)

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The demo reduced for time: 2 apps, 1 repetition, no baseline, one
/// message each way, a same-country pair (DE–DE, so the locality tables
/// have an area holding both vantages) and a cross-country pair (DE–BR).
const SCENARIO: &str = r#"
name: lab-e2e
description: reduced lab demo for tests/campaign_lab_e2e.rs
phones:
  - id: lab-a
  - id: lab-b
apps: [whatsapp, signal]
countries:
  DE: [de-1]
  BR: [br-1]
pairs:
  explicit: [[DE, DE], [DE, BR]]
messages:
  per_direction: 1
  texts: ["Hello from the lab", "Somewhere in a network namespace"]
  interval: 1s
repetitions: 1
baseline:
  runs: 0
timeouts:
  step: 30s
  receive: 20s
  measurement: 2m
retries: 1
capture:
  points: [router, node]
steps:
  paths: true
  probes: true
lab:
  noise: true
"#;

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn lab_demo_campaign_end_to_end() {
    assert!(
        is_root(),
        "this test needs root (network namespaces, the virtual lab): run it as root"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("lab-e2e.yaml");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let cwd = tempfile::tempdir().expect("tempdir");
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .current_dir(cwd.path())
        .args(["run", "--lab"])
        .arg(&scenario)
        // Found from the scenario's place or the data directories, not from
        // a data directory named in the environment. (`--out` defaults to
        // campaigns/ under the working directory.)
        .env_remove("MATADOR_DATA_DIR")
        .output()
        .expect("run matador");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "matador run --lab from {} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        cwd.path().display(),
        out.status
    );
    // Printed for the record; speed is bench/'s business, not a test's.
    eprintln!(
        "campaign + lab up/down: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let out_dir = cwd.path().join("campaigns");
    // Nothing was written outside the working directory's campaigns/.
    let entries: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["campaigns"], "{entries:?}");

    // The record.
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .expect("campaign folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(dirs.len(), 1, "one campaign folder: {dirs:?}");
    let dir = &dirs[0];
    let index = read_json(&dir.join("index.json"));
    let ms = index["measurements"].as_array().expect("measurements");
    assert_eq!(ms.len(), 4, "2 pairs × 2 apps");
    // The app profiles it ran with are the repository's, kept in the record.
    let copy = dir.join(matador::campaign::record::APP_PROFILES_DIR);
    let kept = matador::scenario::apps::AppProfiles::load_copy(&copy).expect("app-profiles/");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles/apps");
    let shipped = matador::scenario::apps::AppProfiles::load_dir(&repo).unwrap();
    let texts = |s: &matador::scenario::apps::AppProfiles| {
        s.apps.iter().map(|a| a.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&kept), texts(&shipped));
    let lab = read_json(&dir.join("lab.json"));
    // Ground truth: the lab's app → server address map.
    let mut truth = BTreeSet::new();
    for n in lab["nodes"].as_array().expect("lab nodes") {
        if let Some(apps) = n["apps"].as_object() {
            for (app, ip) in apps {
                if app == "whatsapp" || app == "signal" {
                    truth.insert((app.clone(), ip.as_str().unwrap_or("").to_string()));
                }
            }
        }
    }
    assert_eq!(
        truth.len(),
        2,
        "lab.json names both apps' servers: {truth:?}"
    );
    let mut found = BTreeSet::new();
    for m in ms {
        let id = m["id"].as_str().expect("id");
        assert_eq!(m["status"], "complete", "{id}: {m}");
        let md = dir.join("measurements").join(id);
        for point in ["router-lab-a", "router-lab-b"] {
            let p = md.join(format!("capture-{point}.pcap"));
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            assert!(len > 24, "{}: {len} bytes (no packets)", p.display());
        }
        let node_caps: Vec<_> = std::fs::read_dir(&md)
            .expect("measurement folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("capture-node-"))
            .collect();
        assert!(!node_caps.is_empty(), "{id}: no node capture");
        for c in &node_caps {
            let len = c.metadata().map(|m| m.len()).unwrap_or(0);
            assert!(len > 24, "{}: {len} bytes", c.path().display());
        }
        let events = std::fs::read_to_string(md.join("events.jsonl")).expect("events.jsonl");
        let kinds: Vec<String> = events
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|e| e["kind"].as_str().map(String::from))
            .collect();
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        assert_eq!(count("send_tap"), 2, "{id}: {kinds:?}");
        assert_eq!(count("received"), 2, "{id}: {kinds:?}");
        let a = read_json(&md.join("analysis.json"));
        let mut ips = BTreeSet::new();
        for s in a["servers"].as_array().expect("servers") {
            let ip = s["ip"].as_str().unwrap_or("").to_string();
            ips.insert(ip.clone());
            found.insert((s["app"].as_str().unwrap_or("").to_string(), ip));
        }
        // Traces from the nodes to each identified server.
        let traces: BTreeSet<String> = std::fs::read_dir(md.join("traces"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for ip in &ips {
            assert!(
                traces.iter().any(|t| t.ends_with(&format!("--{ip}.json"))),
                "{id}: no trace to {ip}: {traces:?}"
            );
        }
        // No node traces its own address (a same-node pair has no direct path).
        for n in lab["nodes"].as_array().expect("lab nodes") {
            let own = format!(
                "{}--{}.json",
                n["name"].as_str().unwrap_or(""),
                n["addr"].as_str().unwrap_or("")
            );
            assert!(!traces.contains(&own), "{id}: {own} in {traces:?}");
        }
    }
    // Paths and probes went through the node agents: every journal record
    // of those steps names its nodes and `"via": "agent"`, and no step of a
    // complete measurement was skipped.
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal.jsonl");
    let lines: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect();
    let mut done = BTreeSet::new();
    for l in &lines {
        let step = l["step"].as_str().unwrap_or("");
        if l["measurement"].is_string() {
            assert_ne!(l["state"], "skipped", "{l}");
        }
        if step == "paths" || step == "probes" {
            assert_eq!(l["via"], "agent", "{l}");
            let nodes = l["nodes"].as_array().map(Vec::len).unwrap_or(0);
            assert!(nodes > 0, "{l}");
            if l["state"] == "done" {
                done.insert((step.to_string(), l["measurement"].to_string()));
            }
        }
    }
    let messages = ms.iter().filter(|m| m["kind"] == "message").count();
    assert_eq!(
        done.len(),
        2 * messages,
        "paths and probes done per message measurement"
    );
    for m in ms.iter().filter(|m| m["kind"] == "message") {
        let p = dir
            .join("measurements")
            .join(m["id"].as_str().unwrap_or(""))
            .join("probes/round.json");
        let round = read_json(&p);
        assert!(
            round["vantages"].as_array().is_some_and(|v| !v.is_empty()),
            "{}",
            p.display()
        );
    }
    // Screen recordings: the simulator's MP4 of PNG frames, one per phone.
    for m in ms {
        let md = dir
            .join("measurements")
            .join(m["id"].as_str().unwrap_or(""));
        for ph in ["lab-a", "lab-b"] {
            let p = md.join(format!("screen-{ph}.mp4"));
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let info = matador_lab::phone::screen::parse_mp4(&bytes)
                .unwrap_or_else(|| panic!("{}: not a well-formed MP4", p.display()));
            assert_eq!(info.codec, "png ", "{}", p.display());
            assert!(!info.samples.is_empty(), "{}", p.display());
            assert!(info.samples.iter().all(|s| s.starts_with(b"\x89PNG")));
        }
    }
    // Provenance: the lab mmdb's hash, each node's OS from its agent.
    let prov = read_json(&dir.join("provenance.json"));
    let run = &prov["runs"][0];
    assert_eq!(run["matador"]["version"], env!("CARGO_PKG_VERSION"));
    let mmdb = std::fs::read(dir.join("lab.mmdb")).expect("lab.mmdb");
    let sha: String = ring::digest::digest(&ring::digest::SHA256, &mmdb)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(run["geo"][0]["sha256"], sha.as_str(), "{run}");
    let nodes: BTreeSet<&str> = run["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            assert_eq!(n["os"]["kernel"], "Linux", "{n}");
            assert!(
                n["os"]["uname"].as_str().is_some_and(|u| !u.is_empty()),
                "{n}"
            );
            n["node"].as_str().unwrap_or("")
        })
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["br-1", "de-1"]),
        "only the scenario's nodes"
    );
    // The SQLite index agrees with index.json.
    let db = rusqlite::Connection::open(dir.join("index.sqlite")).expect("index.sqlite");
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM measurements WHERE status = 'complete'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(n, 4);
    let mut q = db
        .prepare("SELECT DISTINCT app, ip FROM servers")
        .expect("prepare");
    let in_db: BTreeSet<(String, String)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(in_db, found, "servers table = analysis.json");

    let hit = found.intersection(&truth).count() as f64;
    let precision = hit / found.len().max(1) as f64;
    let recall = hit / truth.len() as f64;
    eprintln!("correlation vs lab truth: precision {precision:.2}, recall {recall:.2} ({found:?})");
    assert_eq!(recall, 1.0, "identified {found:?}, truth {truth:?}");
    assert_eq!(precision, 1.0, "identified {found:?}, truth {truth:?}");

    // The report: markdown on stdout, HTML in the folder.
    let section = |title: &str| -> String {
        stdout
            .split(&format!("## {title}"))
            .nth(1)
            .map(|s| s.split("\n## ").next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    for t in [
        "Table 2: traffic leaving region",
        "Table 3: accessibility for interest groups",
    ] {
        let s = section(t);
        let rows = s
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains("| Europe |"))
            .count();
        assert!(
            rows >= 1,
            "{t}: no Europe row in\n{s}\n--- stdout:\n{stdout}"
        );
    }
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!(
            "report: {}",
            Path::new("campaigns")
                .join(dir.file_name().expect("campaign folder name"))
                .join("report.html")
                .display()
        ),
        "the run must end by saying where the report is"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(html.contains("Table 2"), "report.html has no Table 2");

    // Nothing of the lab is left.
    let id = lab["id"].as_str().expect("lab id");
    let ns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left: Vec<String> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("mt{id}-")))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "lab namespaces left: {left:?}");
    assert!(
        !Path::new(&format!("/run/matador/lab/{id}.json")).exists(),
        "lab state file left"
    );
}
