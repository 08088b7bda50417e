//! `matador run SCENARIO --lab` honours the scenario's `lab:` section: a
//! censor the scenario puts in front of a country shows up as interference
//! in the analysis, and `noise: false` leaves no background flows. Needs
//! root and network namespaces (fails, never skips, without them).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One app, DE–BR, one message each way and a 20 s baseline: the phones'
/// background services check connectivity every 12–18 s, so the baseline
/// holds at least one check with noise on.
fn scenario(name: &str, lab: &str) -> String {
    format!(
        r#"
name: {name}
phones:
  - id: lab-a
  - id: lab-b
apps: [whatsapp]
countries:
  DE: [de-1]
  BR: [br-1]
pairs:
  explicit: [[DE, BR]]
messages:
  per_direction: 1
  texts: ["Hello from the lab", "Somewhere in a network namespace"]
  interval: 1s
baseline:
  runs: 1
  duration: 20s
timeouts:
  step: 30s
  receive: 20s
  measurement: 2m
retries: 1
capture:
  points: [router]
  screenrecord: false
lab:
{lab}"#
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs the scenario in the lab; returns the campaign folder.
fn run(tmp: &Path, name: &str, lab: &str) -> PathBuf {
    assert!(
        is_root(),
        "this test needs root (network namespaces, the virtual lab): run it as root"
    );
    let sp = tmp.join(format!("{name}.yaml"));
    std::fs::write(&sp, scenario(name, lab)).expect("write scenario");
    let out_dir = tmp.join("campaigns");
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--lab", "--out"])
        .arg(&out_dir)
        .arg(&sp)
        .output()
        .expect("run matador");
    assert!(
        out.status.success(),
        "matador run --lab failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .expect("campaigns")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Every capture report of every measurement's analysis.
fn captures(dir: &Path) -> Vec<(String, Value)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir.join("measurements")).expect("measurements") {
        let md = e.expect("entry").path();
        let text = std::fs::read_to_string(md.join("analysis.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", md.display()));
        let a: Value = serde_json::from_str(&text).expect("analysis.json");
        for c in a["captures"].as_array().expect("captures") {
            v.push((md.display().to_string(), c.clone()));
        }
    }
    v
}

/// Background services of the simulated phones (lab/phone/noise.rs).
const NOISE_NAMES: [&str; 3] = [
    "connectivitycheck.gstatic.com",
    "time.android.com",
    "mtalk.google.com",
];

fn noise_seen(c: &Value) -> bool {
    let dns = c["dns"].as_array().into_iter().flatten().any(|d| {
        NOISE_NAMES.iter().any(|n| {
            d["query"]
                .as_str()
                .is_some_and(|q| q.trim_end_matches('.') == *n)
        })
    });
    let flows = c["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| [80, 123, 5228].contains(&f["dport"].as_u64().unwrap_or(0)));
    dns || flows
}

#[test]
fn censor_of_the_scenario_shows_in_the_analysis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = run(
        tmp.path(),
        "lab-censor",
        "  noise: true\n  control_resolver: 198.18.96.53\n  censor:\n    country: BR\n    \
         forge_dns: [connectivitycheck.gstatic.com]\n    forged_answers: [198.18.250.9]\n",
    );
    let caps = captures(&dir);
    // Phone B (BR, not rooted, so its background is not firewalled) asks
    // for the forged name through the censored node.
    let b: Vec<&(String, Value)> = caps
        .iter()
        .filter(|(_, c)| {
            c["capture"]
                .as_str()
                .is_some_and(|n| n.contains("router-lab-b"))
        })
        .collect();
    assert!(
        !b.is_empty(),
        "no router-lab-b capture in {}",
        dir.display()
    );
    assert!(
        b.iter().any(|(_, c)| noise_seen(c)),
        "noise on: background flows expected"
    );
    let forged: Vec<&Value> = b
        .iter()
        .flat_map(|(_, c)| c["interference"].as_array().into_iter().flatten())
        .filter(|e| e["kind"] == "dns_forgery")
        .collect();
    assert!(
        !forged.is_empty(),
        "no dns_forgery on lab-b's captures: {:#?}",
        b.iter()
            .map(|(_, c)| &c["interference"])
            .collect::<Vec<_>>()
    );
    assert!(
        forged
            .iter()
            .any(|e| e.to_string().contains("198.18.250.9")),
        "the scenario's forged answer: {forged:#?}"
    );
    // Phone A (DE) is behind no censor.
    let a_forged = caps
        .iter()
        .filter(|(_, c)| {
            c["capture"]
                .as_str()
                .is_some_and(|n| n.contains("router-lab-a"))
        })
        .flat_map(|(_, c)| c["interference"].as_array().into_iter().flatten())
        .filter(|e| e["kind"] == "dns_forgery")
        .count();
    assert_eq!(a_forged, 0);
}

#[test]
fn noise_off_means_no_background_flows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = run(tmp.path(), "lab-quiet", "  noise: false\n");
    let caps = captures(&dir);
    assert!(caps.len() >= 4, "2 measurements × 2 phones: {}", caps.len());
    for (m, c) in &caps {
        assert!(
            !noise_seen(c),
            "{m}: background traffic with noise off: {}",
            c["capture"]
        );
    }
    let lab: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lab.json")).expect("lab.json"))
            .expect("lab.json");
    let servers: Vec<&str> = lab["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["kind"] == "server")
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(!servers.contains(&"us-west"), "no noise host: {servers:?}");
}

/// One DNS A query for `name` to `server`, sent from namespace `ns`:
/// the answer count and the last answer's address (an error string when
/// it fails, so the caller tears the lab down before asserting).
fn ask(ns: &str, server: &str, name: &str) -> Result<(u16, String), String> {
    let (ns, server, name) = (ns.to_string(), server.to_string(), name.to_string());
    std::thread::spawn(move || -> Result<(u16, String), String> {
        let e = |what: &str, x: std::io::Error| format!("{what} ({server} from {ns}): {x}");
        matador::net::netns::enter_thread(&ns).map_err(|x| e("setns", x))?;
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|x| e("bind", x))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .map_err(|x| e("timeout", x))?;
        s.send_to(&q, (server.as_str(), 53))
            .map_err(|x| e("send", x))?;
        let mut b = [0u8; 512];
        let n = s.recv(&mut b).map_err(|x| e("receive", x))?;
        if n < 16 {
            return Err(format!("short answer from {server}"));
        }
        let an = u16::from_be_bytes([b[6], b[7]]);
        let last = b[n - 4..n]
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(".");
        Ok((an, last))
    })
    .join()
    .unwrap_or_else(|_| Err("query thread panicked".into()))
}

#[test]
fn control_resolver_answers_honestly_outside_the_censor() {
    assert!(is_root(), "this test needs root (network namespaces)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/demo.yaml"))
        .expect("lab/demo.yaml");
    let topo = tmp.path().join("topo.yaml");
    std::fs::write(&topo, format!("{demo}\ncontrol_resolver: 198.18.96.53\n")).expect("write");
    let state = tmp.path().join("state");
    let lab_json = tmp.path().join("lab.json");
    let up = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["lab", "up", "--no-phones", "--no-ssh", "--state-dir"])
        .arg(&state)
        .arg("--topology")
        .arg(&topo)
        .arg("--lab-json")
        .arg(&lab_json)
        .output()
        .expect("lab up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let lab: Value =
        serde_json::from_str(&std::fs::read_to_string(&lab_json).expect("lab.json")).expect("json");
    let ns = |n: &str| format!("mt{}-{n}", lab["id"].as_str().unwrap_or(""));
    // Outside the censor (DE): honest answers, none for a name the zone lacks.
    let de = ask(&ns("de-1"), "198.18.96.53", "g.whatsapp.net");
    let blocked_de = ask(&ns("de-1"), "198.18.96.53", "blocked.example");
    // Behind the demo's censor (BR) even the control's answer is forged.
    let blocked_br = ask(&ns("br-1"), "198.18.96.53", "blocked.example");
    let down = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["lab", "down", "--state-dir"])
        .arg(&state)
        .arg(lab["id"].as_str().unwrap_or(""))
        .output()
        .expect("lab down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let whatsapp = lab["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find_map(|n| n["apps"]["whatsapp"].as_str())
        .expect("whatsapp backend")
        .to_string();
    assert_eq!(de, Ok((1, whatsapp)));
    assert_eq!(blocked_de.map(|a| a.0), Ok(0));
    assert_eq!(blocked_br, Ok((1, "198.18.250.1".to_string())));
}
