//! Several phone pairs in one campaign (issue 24), in the virtual lab:
//! `matador run --lab` with three pairs is killed with SIGKILL while all
//! three are mid-measurement (the journal shows each pair inside a
//! measurement, its captures running), then `run --resume` finishes the campaign.
//!
//! Asserted: every planned measurement exactly once in the index, complete,
//! with its folder; the interrupted ones redone; every journal line of a
//! measurement names its pair and the pair's phones carried it; no lab
//! left. Waits only on the orchestrator's own journal and exit (polled),
//! never on a fixed delay. Needs root (fails, never skips, without it).

mod lab_common;

use lab_common::{journal, read_json};

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
name: pairs
description: tests/campaign_pairs.rs
phones:
  - id: lab-a
  - id: lab-b
  - id: lab-c
  - id: lab-d
  - id: lab-e
  - id: lab-f
phone_pairs: [[lab-a, lab-b], [lab-c, lab-d], [lab-e, lab-f]]
# Three measurements at once on the two nodes; node captures are per node,
# so they are off (the phones' router captures stay).
node_capacity: 3
apps: [whatsapp]
countries:
  DE: [de-1]
  BR: [br-1]
pairs:
  explicit: [[DE, BR]]
messages:
  per_direction: 1
  texts: ["pairs one", "pairs two"]
  interval: 0s
repetitions: 5
baseline:
  runs: 1
  duration: 1s
timeouts:
  step: 10s
  receive: 8s
  measurement: 60s
retries: 1
capture:
  points: [router]
  screenrecord: false
lab:
  noise: false
"#;

/// The labs' state folder of this test (`run --lab-state-dir`): a lab
/// brought up sweeps the stale labs of its folder, and this test leaves
/// stale labs on purpose (SIGKILL) while other lab tests run beside it
/// (nextest group `lab-long`): each keeps to its own folder.
fn state_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| lab_common::own_state_dir("pairs"))
}

/// The measurements inside an attempt with their captures running, and
/// their pair: `start-captures done` after a `measurement started` line
/// not yet followed by that measurement's done/failed/skipped line.
fn in_flight(j: &[Value]) -> BTreeMap<String, u64> {
    let mut open: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for l in j {
        let id = l["measurement"].as_str().unwrap_or("").to_string();
        match (l["step"].as_str(), l["state"].as_str()) {
            (Some("measurement"), Some("started")) => {
                open.insert(id, (l["pair"].as_u64().unwrap_or(0), false));
            }
            (Some("measurement"), _) => {
                open.remove(&id);
            }
            (Some("start-captures"), Some("done")) => {
                if let Some(o) = open.get_mut(&id) {
                    o.1 = true;
                }
            }
            _ => {}
        }
    }
    open.into_iter()
        .filter(|(_, (_, capturing))| *capturing)
        .map(|(id, (pair, _))| (id, pair))
        .collect()
}

/// The running lab of a run (from its "lab ID up" line on stderr).
fn lab_of(stderr: &Path) -> Option<String> {
    let text = std::fs::read_to_string(stderr).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("lab ")?;
        let (id, tail) = rest.split_once(' ')?;
        tail.starts_with("up in").then(|| id.to_string())
    })
}

/// Takes down, when the test fails, every lab one of our orchestrators
/// owned (only ours), and kills an orchestrator still running.
struct Guard {
    pids: Vec<u32>,
    labs: Vec<String>,
    child: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        lab_common::down_labs_of(state_dir(), &self.pids, &self.labs);
    }
}

fn spawn(g: &mut Guard, args: &[&std::ffi::OsStr], tmp: &Path, n: usize) -> PathBuf {
    let err = tmp.join(format!("run{n}.err"));
    let child = Command::new(env!("CARGO_BIN_EXE_matador"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--lab", "--lab-state-dir"])
        .arg(state_dir())
        .args(args)
        .stdout(std::fs::File::create(tmp.join(format!("run{n}.out"))).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        // A process group of its own, like a terminal's foreground job
        // (the Ctrl-C test signals the group; SIGKILL goes to the pid).
        .process_group(0)
        .spawn()
        .expect("start matador run");
    g.pids.push(child.id());
    g.child = Some(child);
    err
}

/// Waits for the running orchestrator to exit (noting the labs it brings
/// up); `limit` from `t0` is a hang detector, not a speed target.
fn wait_exit(g: &mut Guard, err: &Path, t0: Instant, limit: Duration, what: &str) -> ExitStatus {
    loop {
        let c = g.child.as_mut().unwrap();
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        if let Some(id) = lab_of(err)
            && !g.labs.contains(&id)
        {
            g.labs.push(id);
        }
        assert!(
            t0.elapsed() < limit,
            "{what}; stderr:\n{}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(15));
    }
}

fn campaign_dir(out: &Path) -> Option<PathBuf> {
    let rd = std::fs::read_dir(out).ok()?;
    rd.flatten().map(|e| e.path()).find(|p| p.is_dir())
}

#[test]
fn a_kill_with_three_pairs_mid_measurement_loses_and_duplicates_nothing() {
    lab_common::require_root();
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("pairs.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = tmp.path().join("campaigns");
    let mut g = Guard {
        pids: Vec::new(),
        labs: Vec::new(),
        child: None,
    };

    // Run 1: killed once all three pairs are inside a measurement.
    let err = spawn(
        &mut g,
        &["--out".as_ref(), out.as_os_str(), scenario.as_os_str()],
        tmp.path(),
        1,
    );
    let killed_in = loop {
        let c = g.child.as_mut().unwrap();
        if let Some(s) = c.try_wait().unwrap() {
            panic!(
                "run 1 ended ({s}) before three pairs were mid-measurement; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        if g.labs.is_empty()
            && let Some(id) = lab_of(&err)
        {
            g.labs.push(id);
        }
        if let Some(d) = campaign_dir(&out) {
            let open = in_flight(&journal(&d));
            let pairs: BTreeSet<u64> = open.values().copied().collect();
            if pairs == BTreeSet::from([1, 2, 3]) {
                c.kill().expect("SIGKILL");
                let _ = c.wait();
                break open;
            }
        }
        // A hang detector, not a speed target.
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "three pairs never mid-measurement; stderr:\n{}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(15));
    };
    let dir = campaign_dir(&out).expect("campaign folder");
    let before = journal(&dir).len();
    eprintln!(
        "killed at {:.1} s with {killed_in:?} in flight",
        t0.elapsed().as_secs_f64()
    );

    // Run 2: resume to the end.
    let err = spawn(
        &mut g,
        &["--resume".as_ref(), dir.as_os_str()],
        tmp.path(),
        2,
    );
    let status = wait_exit(
        &mut g,
        &err,
        t0,
        Duration::from_secs(600),
        "the resume hangs",
    );
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "resume: {status}; stderr:\n{stderr}");

    // Every planned measurement exactly once, complete, in its folder.
    let plan = read_json(&dir.join("plan.json"));
    let planned: Vec<String> = (plan["measurements"].as_array().unwrap().iter())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned.len(), 6);
    let pairs = plan["phone_pairs"]
        .as_array()
        .expect("plan names the pairs");
    assert_eq!(pairs.len(), 3);
    let index = read_json(&dir.join("index.json"));
    let entries = index["measurements"].as_array().unwrap();
    let ids: Vec<String> = (entries.iter())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, planned, "index: lost or duplicated measurements");
    let folders: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("measurements"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(folders, planned, "measurement folders");
    for e in entries {
        assert_eq!(e["status"], "complete", "{e}");
        // The pair that carried it, and its phones.
        let p = e["pair"].as_u64().unwrap_or_else(|| panic!("no pair: {e}"));
        let phones = &pairs[p as usize - 1];
        assert_eq!(
            (&e["sender"], &e["receiver"]),
            (&phones[0], &phones[1]),
            "{e}"
        );
        let id = e["id"].as_str().unwrap();
        let meta = read_json(&dir.join("measurements").join(id).join("meta.json"));
        assert_eq!(&meta, e, "{id}: meta.json differs from index.json");
    }

    // The journal: continuous, every measurement line names a pair, the
    // interrupted measurements redone by the resume and finished once.
    let j = journal(&dir);
    for (k, l) in j.iter().enumerate() {
        assert_eq!(l["seq"].as_u64(), Some(k as u64), "journal line {k}: {l}");
        if l.get("measurement").is_some() {
            let p = l["pair"].as_u64().unwrap_or(0);
            assert!((1..=3).contains(&p), "journal line without its pair: {l}");
        }
    }
    for id in killed_in.keys() {
        assert!(
            j[before..].iter().any(|l| l["measurement"] == id.as_str()
                && l["step"] == "measurement"
                && l["state"] == "started"),
            "{id} was not redone by the resume"
        );
        let done = (j.iter())
            .filter(|l| {
                l["measurement"] == id.as_str()
                    && l["step"] == "measurement"
                    && l["state"] == "done"
            })
            .count();
        assert_eq!(done, 1, "{id} finished {done} times");
    }
    let used: BTreeSet<u64> = entries.iter().filter_map(|e| e["pair"].as_u64()).collect();
    assert_eq!(used.len(), 3, "the pairs sharing the work: {used:?}");

    // Nothing of either lab left.
    let mut left = Vec::new();
    for id in &g.labs {
        left.extend(lab_common::leftovers(id));
        if state_dir().join(format!("{id}.json")).exists() {
            left.push(format!("state file of lab {id}"));
        }
    }
    assert!(left.is_empty(), "left behind: {left:#?}");
    eprintln!(
        "3 pairs: kill -9 with {} in flight, resume: {} measurements exactly once; {:.1} s",
        killed_in.len(),
        ids.len(),
        t0.elapsed().as_secs_f64()
    );
}

/// File magics of pcap (µs and ns, either byte order) and pcapng.
const PCAP_MAGICS: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

const CTRL_C_SCENARIO: &str = r#"
name: ctrl-c
description: tests/campaign_pairs.rs (Ctrl-C of the terminal)
phones:
  - id: lab-a
  - id: lab-b
  - id: lab-c
  - id: lab-d
phone_pairs: [[lab-a, lab-b], [lab-c, lab-d]]
node_capacity: 1
apps: [whatsapp]
countries:
  DE: [de-1]
  BR: [br-1]
  US: [us-1]
  JP: [jp-1]
pairs:
  explicit: [[DE, BR], [US, JP]]
messages:
  per_direction: 2
  texts: ["ctrl-c one", "ctrl-c two"]
  interval: 1s
repetitions: 2
baseline:
  runs: 0
timeouts:
  step: 20s
  receive: 15s
  measurement: 90s
retries: 0
capture:
  points: [router, node]
  screenrecord: false
lab:
  noise: false
"#;

/// Ctrl-C in the terminal signals the whole foreground process group, not
/// only matador. The ssh clients of the node agents were in that group and
/// died at once, so the measurements in flight lost their node captures
/// ("agent connection lost during capture_stop", found by the paper-sized
/// lab run). Now: two pairs mid-exchange with node captures running, SIGINT
/// to the orchestrator and then to its whole group, as `timeout -s INT`
/// sends it (two SIGINTs at once: they were taken for a second Ctrl-C and
/// aborted without teardown): each pair ends its step, stops its
/// captures over the still-open agent connections, and the record says
/// "interrupted" with nothing failed but the stopped exchanges.
#[test]
fn ctrl_c_of_the_terminal_keeps_the_node_captures_of_the_pairs_in_flight() {
    lab_common::require_root();
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("ctrl-c.yaml");
    std::fs::write(&scenario, CTRL_C_SCENARIO).unwrap();
    let out = tmp.path().join("campaigns");
    let mut g = Guard {
        pids: Vec::new(),
        labs: Vec::new(),
        child: None,
    };
    let err = spawn(
        &mut g,
        &["--out".as_ref(), out.as_os_str(), scenario.as_os_str()],
        tmp.path(),
        1,
    );
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    // Both pairs inside their exchange, node captures running.
    let in_exchange = |j: &[Value]| -> BTreeSet<String> {
        let capturing = in_flight(j);
        j.iter()
            .filter(|l| l["step"] == "exchange" && l["state"] == "started")
            .filter_map(|l| l["measurement"].as_str())
            .filter(|id| capturing.contains_key(*id))
            .map(str::to_string)
            .collect()
    };
    let pid = g.child.as_ref().unwrap().id();
    let stopped = loop {
        let c = g.child.as_mut().unwrap();
        if let Some(s) = c.try_wait().unwrap() {
            panic!(
                "ended ({s}) before two pairs were mid-exchange:\n{}",
                stderr()
            );
        }
        if g.labs.is_empty()
            && let Some(id) = lab_of(&err)
        {
            g.labs.push(id);
        }
        if let Some(d) = campaign_dir(&out) {
            let open = in_exchange(&journal(&d));
            if open.len() == 2 {
                // As `timeout -s INT` does: the command, then its group.
                for target in [pid.to_string(), format!("-{pid}")] {
                    let st = Command::new("kill")
                        .args(["-INT", "--", &target])
                        .status()
                        .expect("kill");
                    assert!(st.success(), "kill -INT {target}");
                }
                break open;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "two pairs never mid-exchange:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(15));
    };
    let status = wait_exit(
        &mut g,
        &err,
        t0,
        Duration::from_secs(300),
        "no exit after Ctrl-C",
    );
    let text = stderr();
    assert_eq!(status.code(), Some(130), "{status}; stderr:\n{text}");
    let dir = campaign_dir(&out).expect("campaign folder");
    let stdout = std::fs::read_to_string(tmp.path().join("run1.out")).unwrap_or_default();
    assert!(stdout.contains("interrupted: continue with"), "{stdout}");
    let j = journal(&dir);
    // Nothing failed but the stopped exchanges; no agent was lost.
    for l in &j {
        let detail = l["detail"].as_str().unwrap_or("");
        assert!(!detail.contains("connection lost"), "agent lost: {l}");
        if l["state"] == "failed" && l["step"] != "measurement" {
            assert_eq!(
                (l["step"].as_str(), detail),
                (Some("exchange"), "stopped"),
                "{l}"
            );
        }
    }
    // The interrupted measurements' captures were stopped and kept: each
    // node's and phone's pcap is whole (a pcap header at least).
    for id in &stopped {
        let m = dir.join("measurements").join(id);
        let pcaps: Vec<PathBuf> = std::fs::read_dir(&m)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
            .collect();
        let nodes = pcaps
            .iter()
            .filter(|p| p.to_string_lossy().contains("capture-node-"))
            .count();
        assert_eq!(nodes, 2, "{id}: node captures {pcaps:?}");
        for p in &pcaps {
            let b = std::fs::read(p).unwrap();
            assert!(
                b.len() >= 24 && PCAP_MAGICS.contains(&[b[0], b[1], b[2], b[3]]),
                "{}: not a whole pcap ({} bytes)",
                p.display(),
                b.len()
            );
        }
    }
    let mut left = Vec::new();
    for id in &g.labs {
        left.extend(lab_common::leftovers(id));
    }
    assert!(left.is_empty(), "left behind: {left:#?}");
    eprintln!(
        "Ctrl-C with {stopped:?} mid-exchange: captures kept, exit 130; {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
