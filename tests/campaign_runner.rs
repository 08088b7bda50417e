//! The measurement state machine against in-process fakes of the phones,
//! tunnels and captures: the record it leaves, node failover, bounded
//! retries with failures recorded, Ctrl-C, and kill -9 + `--resume`
//! (each measurement exactly once, ids stable).

mod campaign_common;
mod wait_common;

use campaign_common::{P, write_pcap};
use matador::campaign::env::{CapturePoint, EnvError, PhoneControl, PhoneFacts, Vantage};
use matador::campaign::plan::Plan;
use matador::campaign::record::{Index, Record, Status, read_journal};
use matador::campaign::runner::{Env, RunOptions, Runner};
use matador::scenario::LoadedScenario;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCENARIO: &str = "name: fake
phones:
  - id: lab-a
  - id: lab-b
apps: [whatsapp, signal]
countries:
  DE: [de-1, de-2]
  BR: [br-1]
pairs:
  all: [DE, BR]
messages:
  per_direction: 2
  texts: [hello there, how are you doing, fine thanks and you, all good here]
  interval: 0s
repetitions: 2
baseline: {runs: 1, duration: 300ms}
timeouts: {step: 5s, receive: 5s, measurement: 60s}
retries: 1
lab: {}
";

/// (time, bytes, outgoing) of a message packet on a phone.
type Seen = (f64, usize, bool);

/// Shared state of the fake world: what each phone sent/received when.
#[derive(Default)]
struct World {
    /// phone → (time, bytes, outgoing)
    traffic: Mutex<BTreeMap<String, Vec<Seen>>>,
    calls: Mutex<Vec<String>>,
    broken_nodes: BTreeSet<String>,
    fail_app: Option<String>,
    /// Set the stop flag at the n-th send (Ctrl-C).
    stop_at_send: Option<(usize, Arc<AtomicBool>)>,
    /// Hang (sleep) at the n-th send: the kill -9 test kills us there.
    hang_at_send: Option<usize>,
    sends: AtomicUsize,
    connected: Mutex<BTreeMap<String, String>>,
    /// Most phones connected through one node at once, per node.
    node_peak: Mutex<BTreeMap<String, usize>>,
    /// Most phones connected at once.
    peak: AtomicUsize,
    /// A phone connected again before it was disconnected.
    reconnected: Mutex<Vec<String>>,
    open_captures: Mutex<BTreeMap<String, PathBuf>>,
    /// Running screen recordings: phone → file.
    recordings: Mutex<BTreeMap<String, PathBuf>>,
    /// Opening chats of this app hangs; the flag says whether a hung call
    /// has ended.
    hang_opening: Option<(String, Arc<AtomicBool>)>,
    /// The screen recorder never ends until the phone's action is
    /// cancelled (a real `screenrecord` whose adb stream hangs); the flag
    /// is set by `cancel`.
    stuck_recorder: Option<(Mutex<bool>, std::sync::Condvar)>,
}

fn now() -> f64 {
    matador::campaign::record::now()
}

fn relay() -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 1, 10)
}

fn phone_ip(p: &str) -> Ipv4Addr {
    match p {
        "lab-a" => Ipv4Addr::new(198, 18, 1, 10),
        "lab-c" => Ipv4Addr::new(198, 18, 3, 10),
        "lab-d" => Ipv4Addr::new(198, 18, 4, 10),
        _ => Ipv4Addr::new(198, 18, 2, 10),
    }
}

/// The other phone of a phone's pair.
fn partner(p: &str) -> &'static str {
    match p {
        "lab-a" => "lab-b",
        "lab-c" => "lab-d",
        "lab-d" => "lab-c",
        _ => "lab-a",
    }
}

struct Fake(Arc<World>);

impl PhoneControl for Fake {
    fn prepare(&self, phone: &str, app: &str, country: &str) -> Result<PhoneFacts, EnvError> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("prepare {phone} {app} {country}"));
        if self.0.fail_app.as_deref() == Some(app) {
            return Err(EnvError::new(format!(
                "{phone}: app {app} is not installed"
            )));
        }
        Ok(PhoneFacts {
            model: "Fake 1".into(),
            android: "14".into(),
            ..Default::default()
        })
    }
    fn open_chat(&self, phone: &str, app: &str, peer: &str) -> Result<(), EnvError> {
        if let Some((hung, ended)) = &self.0.hang_opening
            && hung == app
        {
            // The hang is the scenario: the runner must give up on it
            // (longer than any run; the process ends with the test).
            std::thread::sleep(Duration::from_secs(600));
            ended.store(true, Ordering::SeqCst);
        }
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("open {phone} {app} {peer}"));
        Ok(())
    }
    fn send(&self, phone: &str, _app: &str, text: &str) -> Result<f64, EnvError> {
        let n = self.0.sends.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((k, stop)) = &self.0.stop_at_send
            && n == *k
        {
            stop.store(true, Ordering::SeqCst);
        }
        if self.0.hang_at_send == Some(n) {
            // The hang is the scenario (kill_and_resume's parent kills us
            // here); the marker tells the parent we are inside it.
            if let Ok(root) = std::env::var("MATADOR_TEST_CHILD") {
                std::fs::write(PathBuf::from(root).join("hanging"), n.to_string()).unwrap();
            }
            std::thread::sleep(Duration::from_secs(600));
        }
        let t = now();
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("send {phone} {text}"));
        let mut tr = self.0.traffic.lock().unwrap();
        tr.entry(phone.into())
            .or_default()
            .push((t + 0.05, text.len() + 60, true));
        let other = partner(phone);
        tr.entry(other.into())
            .or_default()
            .push((t + 0.1, text.len() + 60, false));
        Ok(t)
    }
    fn wait_receive(
        &self,
        phone: &str,
        _app: &str,
        _text: &str,
        _t: Duration,
    ) -> Result<f64, EnvError> {
        // The scenario, not a synchronisation: a message takes a while to
        // arrive (the receive time is after the send).
        std::thread::sleep(Duration::from_millis(150));
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("receive {phone}"));
        Ok(now())
    }
    fn finish(&self, phone: &str, app: &str) -> Result<(), EnvError> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("finish {phone} {app}"));
        Ok(())
    }
    fn diagnostics(&self, phone: &str, dir: &Path) -> Result<(), EnvError> {
        std::fs::write(dir.join(format!("ui-{phone}.xml")), "<hierarchy/>")
            .map_err(|e| EnvError::new(e.to_string()))
    }
    fn start_screenrecord(&self, p: &str, _l: Duration, f: &Path) -> Result<(), EnvError> {
        self.start_rec(p, f)
    }
    fn stop_screenrecord(&self, p: &str) -> Result<(), EnvError> {
        let Some((cancelled, cv)) = &self.0.stuck_recorder else {
            return self.stop_rec(p);
        };
        let mut done = cancelled.lock().unwrap();
        while !*done {
            done = cv.wait(done).unwrap();
        }
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("recorder ended {p}"));
        Err(EnvError::new("stream closed"))
    }
    fn cancel(&self, phone: &str, _limit: Duration) -> Result<Option<String>, EnvError> {
        // In-process calls end with their thread; only the stuck recorder
        // waits for its cancel.
        if let Some((cancelled, cv)) = &self.0.stuck_recorder {
            self.0.calls.lock().unwrap().push(format!("cancel {phone}"));
            *cancelled.lock().unwrap() = true;
            cv.notify_all();
        }
        Ok(None)
    }
}

impl Fake {
    fn start_rec(&self, phone: &str, file: &Path) -> Result<(), EnvError> {
        self.0
            .recordings
            .lock()
            .unwrap()
            .insert(phone.into(), file.to_path_buf());
        Ok(())
    }
    fn stop_rec(&self, phone: &str) -> Result<(), EnvError> {
        if let Some(f) = self.0.recordings.lock().unwrap().remove(phone) {
            std::fs::write(f, b"recording").map_err(|e| EnvError::new(e.to_string()))?;
        }
        Ok(())
    }
}

impl Vantage for Fake {
    fn connect(&self, phone: &str, node: &str) -> Result<(), EnvError> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("connect {phone} {node}"));
        let mut c = self.0.connected.lock().unwrap();
        if c.insert(phone.into(), node.into()).is_some() {
            self.0.reconnected.lock().unwrap().push(phone.into());
        }
        let on_node = c.values().filter(|n| *n == node).count();
        let mut peak = self.0.node_peak.lock().unwrap();
        let p = peak.entry(node.into()).or_default();
        *p = (*p).max(on_node);
        self.0.peak.fetch_max(c.len(), Ordering::SeqCst);
        Ok(())
    }
    fn check(&self, phone: &str, node: &str) -> Result<(), EnvError> {
        if self.0.broken_nodes.contains(node) {
            return Err(EnvError::node(format!(
                "{node}: no ping through the tunnel"
            )));
        }
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("check {phone} {node}"));
        Ok(())
    }
    fn disconnect(&self, phone: &str) -> Result<(), EnvError> {
        self.0.connected.lock().unwrap().remove(phone);
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("disconnect {phone}"));
        Ok(())
    }
}

impl CapturePoint for Fake {
    fn start(&self, point: &str, file: &Path) -> Result<(), EnvError> {
        self.0
            .open_captures
            .lock()
            .unwrap()
            .insert(point.into(), file.to_path_buf());
        // Traffic before the capture started is not in it.
        if let Some(ph) = point.strip_prefix("router-") {
            self.0.traffic.lock().unwrap().remove(ph);
        }
        Ok(())
    }
    fn stop(&self, point: &str) -> Result<(), EnvError> {
        let Some(file) = self.0.open_captures.lock().unwrap().remove(point) else {
            return Ok(()); // idempotent
        };
        let mut pkts = Vec::new();
        if let Some(ph) = point.strip_prefix("router-") {
            let ip = phone_ip(ph);
            for &(t, len, out) in self.0.traffic.lock().unwrap().get(ph).into_iter().flatten() {
                let (src, dst, sport, dport) = if out {
                    (ip, relay(), 40000, 5222)
                } else {
                    (relay(), ip, 5222, 40000)
                };
                pkts.push(P {
                    t,
                    src,
                    sport,
                    dst,
                    dport,
                    udp: false,
                    payload: vec![0x17; len],
                    syn: false,
                });
            }
        }
        write_pcap(&file, &mut pkts);
        Ok(())
    }
}

fn setup(root: &Path) -> (Record, Plan, LoadedScenario) {
    let sp = root.join("fake.yaml");
    std::fs::write(&sp, SCENARIO).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    let rec = Record::create(&root.join("campaigns"), &plan, &ls.source).unwrap();
    (rec, plan, ls)
}

fn env(w: &Arc<World>) -> Env {
    let f = Arc::new(Fake(w.clone()));
    Env {
        phones: f.clone(),
        vantage: f.clone(),
        capture: f,
        paths: None,
        probes: None,
    }
}

fn opts(ls: &LoadedScenario) -> RunOptions {
    RunOptions::from_scenario(&ls.scenario, ls.profiles.clone())
}

fn index(dir: &Path) -> Index {
    serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap()
}

/// `index.sqlite` holds exactly what `index.json` and the analyses hold.
fn assert_sqlite_matches(dir: &Path) {
    let idx = index(dir);
    let db = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    type Row = (String, String, String, Option<String>, String, Option<u32>);
    let mut rows: Vec<Row> = db
        .prepare("SELECT id, status, app, error, sender_node, pair FROM measurements ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    let want: Vec<_> = idx
        .measurements
        .iter()
        .map(|e| {
            let st = serde_json::to_value(e.status).unwrap();
            (
                e.id.clone(),
                st.as_str().unwrap().to_string(),
                e.app.clone(),
                e.error.clone(),
                e.sender_node.clone(),
                e.pair,
            )
        })
        .collect();
    assert_eq!(rows, want, "measurements table = index.json");
    let failures: i64 = db
        .query_row("SELECT count(*) FROM failures", [], |r| r.get(0))
        .unwrap();
    let not_complete = idx
        .measurements
        .iter()
        .filter(|e| e.status != Status::Complete)
        .count();
    assert_eq!(
        failures as usize, not_complete,
        "one failure row per failed/skipped"
    );
    for e in &idx.measurements {
        let a = dir.join("measurements").join(&e.id).join("analysis.json");
        let n = std::fs::read_to_string(&a)
            .map(|t| {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                v["servers"].as_array().map_or(0, |s| s.len())
            })
            .unwrap_or(0);
        let k: i64 = db
            .query_row(
                "SELECT count(*) FROM servers WHERE measurement = ?1",
                [&e.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(k as usize, n, "{}: servers table = analysis.json", e.id);
    }
}

#[test]
fn full_campaign_leaves_a_complete_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, plan, ls) = setup(tmp.path());
    let dir = rec.dir.clone();
    let w = Arc::new(World::default());
    let s = Runner::new(rec, plan.clone(), env(&w), opts(&ls))
        .run()
        .unwrap();
    assert_eq!(
        (s.complete, s.failed, s.remaining, s.interrupted),
        (6, 0, 0, false)
    );
    // One pair: no lines per pair in the summary.
    assert!(s.pairs.is_empty() && s.pair_lines().is_empty(), "{s:?}");
    // Record files.
    assert_eq!(
        std::fs::read_to_string(dir.join("scenario.yaml")).unwrap(),
        SCENARIO
    );
    let saved: Plan =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(saved, plan);
    let idx = index(&dir);
    let ids: Vec<&str> = idx.measurements.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["m0001", "m0002", "m0003", "m0004", "m0005", "m0006"]);
    let m2 = &idx.measurements[1];
    assert_eq!(
        (m2.kind.as_str(), m2.app.as_str(), m2.status),
        ("message", "whatsapp", Status::Complete)
    );
    assert_eq!(
        (m2.sender_node.as_str(), m2.receiver_node.as_str()),
        ("de-1", "br-1")
    );
    for f in [
        "analysis.json",
        "capture-node-br-1.pcap",
        "capture-node-de-1.pcap",
        "capture-router-lab-a.pcap",
        "capture-router-lab-b.pcap",
        "events.jsonl",
        "phones.json",
    ] {
        assert!(
            m2.files.iter().any(|x| x == f),
            "{f} missing from {:?}",
            m2.files
        );
    }
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("measurements/m0002/meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["id"], "m0002");
    // Events: 4 sends and 4 receives, alternating, with text hashes.
    let ev = std::fs::read_to_string(dir.join("measurements/m0002/events.jsonl")).unwrap();
    let ev: Vec<serde_json::Value> = ev
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sends: Vec<&str> = ev
        .iter()
        .filter(|e| e["kind"] == "send_tap")
        .map(|e| e["device"].as_str().unwrap())
        .collect();
    assert_eq!(sends, ["lab-a", "lab-b", "lab-a", "lab-b"]);
    assert_eq!(ev.iter().filter(|e| e["kind"] == "received").count(), 4);
    assert!(ev.iter().all(|e| e["ts"].is_string()));
    assert_eq!(
        ev.iter().find(|e| e["kind"] == "send_tap").unwrap()["text_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    // Journal: every step started and done, in order, seq increasing.
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    assert!(j.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let steps: Vec<String> = j
        .iter()
        .filter(|l| {
            l.measurement.as_deref() == Some("m0002")
                && l.state == matador::campaign::record::StepState::Done
        })
        .map(|l| l.step.clone())
        .collect();
    assert_eq!(
        steps,
        [
            "prepare-phones",
            "connect",
            "check-connectivity",
            "start-captures",
            "exchange",
            // Both phones' screen recordings end as the captures stop.
            "screenrecord",
            "screenrecord",
            "stop-captures",
            "analyse",
            "teardown",
            "measurement"
        ]
    );
    assert!(
        j.iter().any(|l| l.step == "campaign-analysis"
            && l.state == matador::campaign::record::StepState::Done)
    );
    // Teardown left nothing connected; the analysis found the fake relay.
    assert!(w.connected.lock().unwrap().is_empty());
    let a: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("measurements/m0002/analysis.json")).unwrap(),
    )
    .unwrap();
    let servers = a["servers"].as_array().unwrap();
    assert!(
        servers
            .iter()
            .any(|s| s["ip"] == "198.19.1.10" && s["role"] == "messaging"),
        "{servers:#?}"
    );
    // `matador replay` on the folder gives exactly what the live run wrote.
    let live: Vec<String> = (1..=6)
        .map(|i| {
            std::fs::read_to_string(dir.join(format!("measurements/m{i:04}/analysis.json")))
                .unwrap()
        })
        .collect();
    let profiles = Arc::new(matador::scenario::apps::AppProfiles::builtin());
    matador::analysis::correlate::replay_campaign(&dir, &profiles, &Default::default()).unwrap();
    for (i, l) in live.iter().enumerate() {
        let again =
            std::fs::read_to_string(dir.join(format!("measurements/m{:04}/analysis.json", i + 1)))
                .unwrap();
        assert_eq!(&again, l, "m{:04}", i + 1);
    }
}

/// The shipped app profiles, WhatsApp's also claiming the fake relay's /24
/// (a lab team's own profiles): written to `dir`.
fn custom_profiles(dir: &Path) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles/apps");
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let p = e.unwrap().path();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if p.file_name().unwrap() == "whatsapp.yaml" {
            assert!(text.contains("\n  prefixes:\n"));
            text = text.replace("\n  prefixes:\n", "\n  prefixes:\n    - 198.19.1.0/24\n");
        }
        std::fs::write(dir.join(p.file_name().unwrap()), text).unwrap();
    }
}

fn analyses(dir: &Path, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let p = dir.join(format!("measurements/m{i:04}/analysis.json"));
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

fn replay_cli(dir: &Path, extra: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matador"))
        .arg("replay")
        .args(extra)
        .arg(dir)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "matador replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A campaign run with its own app profiles keeps a copy of them, and
/// `matador replay CAMPAIGN` (the command, from another directory) uses
/// the copy: its analysis equals the live one byte for byte. The same
/// record replayed with the shipped profiles differs, so the check can fail.
#[test]
fn replay_uses_the_profiles_the_campaign_ran_with() {
    let tmp = tempfile::tempdir().unwrap();
    custom_profiles(&tmp.path().join("my-apps"));
    let sp = tmp.path().join("fake.yaml");
    std::fs::write(&sp, format!("{SCENARIO}app_profiles: my-apps\n")).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    let rec = Record::create(&tmp.path().join("campaigns"), &plan, &ls.source).unwrap();
    let dir = rec.dir.clone();
    let w = Arc::new(World::default());
    let s = Runner::new(rec, plan, env(&w), opts(&ls)).run().unwrap();
    assert_eq!((s.complete, s.failed), (6, 0));
    // The copy: every profile, byte-identical, in load order.
    let copy = dir.join(matador::campaign::record::APP_PROFILES_DIR);
    for a in &ls.profiles.apps {
        let f = copy.join(format!("{}.yaml", a.id));
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            a.text,
            "{}",
            f.display()
        );
    }
    let kept = matador::scenario::apps::AppProfiles::load_copy(&copy).unwrap();
    let ids = |s: &matador::scenario::apps::AppProfiles| {
        s.apps.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&kept), ids(&ls.profiles));
    let live = analyses(&dir, 6);
    // The shipped profiles give another analysis of the same files…
    replay_cli(
        &dir,
        &[
            "--apps",
            concat!(env!("CARGO_MANIFEST_DIR"), "/device-profiles/apps"),
        ],
    );
    let shipped = analyses(&dir, 6);
    assert_ne!(
        shipped, live,
        "the custom profiles change nothing: the test proves nothing"
    );
    // …the campaign's own copy gives back the live one.
    replay_cli(&dir, &[]);
    assert_eq!(analyses(&dir, 6), live);
    // A measurement folder alone is analysed with its campaign's copy too.
    replay_cli(&dir.join("measurements/m0002"), &["--json"]);
}

#[test]
fn node_failover_and_failures_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, plan, ls) = setup(tmp.path());
    let dir = rec.dir.clone();
    let w = Arc::new(World {
        broken_nodes: ["de-1".to_string()].into(),
        fail_app: Some("signal".into()),
        ..World::default()
    });
    let s = Runner::new(rec, plan, env(&w), opts(&ls)).run().unwrap();
    assert_eq!((s.complete, s.failed), (3, 3));
    let idx = index(&dir);
    for e in &idx.measurements {
        if e.app == "signal" {
            assert_eq!(e.status, Status::Failed);
            assert_eq!(e.attempts, 2, "1 + retries");
            let err = e.error.as_deref().unwrap();
            assert!(
                err.starts_with("prepare-phones: ") && err.contains("not installed"),
                "{err}"
            );
            assert!(e.files.iter().any(|f| f == "ui-lab-a.xml"), "{:?}", e.files);
        } else {
            assert_eq!(e.status, Status::Complete, "{e:?}");
            assert_eq!(e.sender_node, "de-2", "failover to the country's next node");
        }
    }
    assert_sqlite_matches(&dir);
    let db = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    let steps: Vec<String> = db
        .prepare("SELECT DISTINCT step FROM failures")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(steps, ["prepare-phones"]);
    let messaging: i64 = db
        .query_row(
            "SELECT count(*) FROM servers s JOIN measurements m ON m.id = s.measurement
             WHERE s.role = 'messaging' AND s.ip = '198.19.1.10' AND m.app = 'whatsapp'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(messaging >= 2, "the relay is queryable: {messaging}");
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    let fo: Vec<_> = j.iter().filter(|l| l.step == "node-failover").collect();
    assert_eq!(fo.len(), 1, "de-1 is marked failed once");
    assert!(fo[0].detail.as_deref().unwrap().contains("de-1"));
    assert!(w.connected.lock().unwrap().is_empty());
}

#[test]
fn no_node_left_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, plan, ls) = setup(tmp.path());
    let w = Arc::new(World {
        broken_nodes: ["br-1".to_string()].into(),
        ..World::default()
    });
    let s = Runner::new(rec, plan, env(&w), opts(&ls)).run().unwrap();
    // The first attempt fails on br-1; its retry and all the others are skipped.
    assert_eq!((s.complete, s.skipped, s.remaining), (0, 6, 0));
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_completes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, plan, ls) = setup(tmp.path());
    let dir = rec.dir.clone();
    let o = opts(&ls);
    // Third send = second message of m0002.
    let w = Arc::new(World {
        stop_at_send: Some((2, o.stop.clone())),
        ..World::default()
    });
    let s = Runner::new(rec, plan, env(&w), o).run().unwrap();
    assert!(s.interrupted);
    assert_eq!((s.complete, s.remaining), (1, 5));
    assert!(
        w.connected.lock().unwrap().is_empty(),
        "teardown after Ctrl-C"
    );
    assert!(w.open_captures.lock().unwrap().is_empty());
    let (rec, plan) = Record::open(&dir).unwrap();
    let w2 = Arc::new(World::default());
    let s = Runner::new(rec, plan, env(&w2), opts(&ls)).run().unwrap();
    assert_eq!((s.complete, s.remaining, s.interrupted), (6, 0, false));
    // m0001 was not redone; m0002 was redone from scratch.
    let calls = w2.calls.lock().unwrap();
    let prepares = calls
        .iter()
        .filter(|c| c.starts_with("prepare lab-a"))
        .count();
    assert_eq!(prepares, 5);
    let ev = std::fs::read_to_string(dir.join("measurements/m0002/events.jsonl")).unwrap();
    assert_eq!(ev.lines().filter(|l| l.contains("send_tap")).count(), 4);
    assert_sqlite_matches(&dir);
}

/// kill -9 in the middle of a measurement, then `--resume`: the child is
/// this test binary re-run with MATADOR_TEST_CHILD set.
#[test]
fn kill_and_resume() {
    if let Ok(root) = std::env::var("MATADOR_TEST_CHILD") {
        let root = PathBuf::from(root);
        let (rec, plan, ls) = setup(&root);
        std::fs::write(root.join("dir"), rec.dir.display().to_string()).unwrap();
        // Hang at the 6th send (m0003, second message): the parent kills us.
        let w = Arc::new(World {
            hang_at_send: Some(6),
            ..World::default()
        });
        let _ = Runner::new(rec, plan, env(&w), opts(&ls)).run();
        panic!("the child should have been killed");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_and_resume", "--nocapture"])
        .env("MATADOR_TEST_CHILD", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child hangs in m0003's second send (its marker).
    let hanging = tmp.path().join("hanging");
    let dir = wait_common::wait_until(
        "the child to hang at the 6th send",
        Duration::from_secs(60),
        || match std::fs::read_to_string(&hanging) {
            Ok(_) => Ok(PathBuf::from(
                std::fs::read_to_string(tmp.path().join("dir")).unwrap(),
            )),
            Err(e) => Err(e.kind()),
        },
    );
    let ev = dir.join("measurements/m0003/events.jsonl");
    assert_eq!(
        std::fs::read_to_string(&ev)
            .unwrap()
            .matches("send_tap")
            .count(),
        1,
        "inside m0003's exchange"
    );
    // Child::kill sends SIGKILL (kill -9).
    child.kill().unwrap();
    child.wait().unwrap();
    let before = index(&dir);
    assert_eq!(
        before.measurements.len(),
        2,
        "m0001, m0002 recorded before the kill"
    );
    // A kill in the middle of an atomic write leaves its temporary: the
    // resume removes it, and nothing that is not one of ours.
    let stale = dir.join("measurements/m0001/analysis.json.4242-7.matador-tmp");
    std::fs::write(&stale, b"").unwrap();
    let foreign = dir.join("measurements/m0001/notes.tmp");
    std::fs::write(&foreign, b"mine").unwrap();
    // Resume in-process.
    let sp = tmp.path().join("fake.yaml");
    let ls = LoadedScenario::load(&sp).unwrap();
    let (rec, plan) = Record::open(&dir).unwrap();
    assert!(!stale.exists(), "stale temporary left by the kill");
    assert_eq!(std::fs::read(&foreign).unwrap(), b"mine");
    std::fs::remove_file(&foreign).unwrap();
    let w = Arc::new(World::default());
    let s = Runner::new(rec, plan, env(&w), opts(&ls)).run().unwrap();
    assert_eq!((s.complete, s.remaining), (6, 0));
    let after = index(&dir);
    let ids: Vec<&str> = after.measurements.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["m0001", "m0002", "m0003", "m0004", "m0005", "m0006"]);
    // Finished ones kept byte for byte; the interrupted one redone cleanly.
    assert_eq!(&after.measurements[..2], &before.measurements[..]);
    let ev = std::fs::read_to_string(dir.join("measurements/m0003/events.jsonl")).unwrap();
    assert_eq!(ev.lines().filter(|l| l.contains("send_tap")).count(), 4);
    assert_eq!(
        w.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("prepare lab-a"))
            .count(),
        4
    );
    assert_sqlite_matches(&dir);
    // A crash between index.json and index.sqlite: a stale row and a lost
    // one heal when the campaign is opened again.
    {
        let db = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
        db.execute("DELETE FROM measurements WHERE id = 'm0006'", [])
            .unwrap();
        db.execute(
            "UPDATE measurements SET status = 'failed' WHERE id = 'm0001'",
            [],
        )
        .unwrap();
    }
    drop(Record::open(&dir).unwrap());
    assert_sqlite_matches(&dir);
    // The journal continues with increasing seq after the kill.
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    assert!(j.windows(2).all(|w| w[1].seq > w[0].seq));
    assert!(j.iter().any(|l| l.step == "resume"));
}

/// Counts its runs and records the (sender, receiver) nodes it was given.
struct TraceHook(AtomicUsize, Mutex<Vec<(String, String)>>);

impl matador::campaign::env::StepHook for TraceHook {
    fn via(&self) -> &'static str {
        "fake"
    }

    fn run(
        &self,
        dir: &Path,
        m: &matador::campaign::plan::PlannedMeasurement,
    ) -> Result<matador::campaign::env::StepReport, EnvError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1
            .lock()
            .unwrap()
            .push((m.sender_nodes[0].clone(), m.receiver_nodes[0].clone()));
        assert!(
            dir.join("analysis.json").is_file(),
            "paths run after the analysis"
        );
        std::fs::create_dir_all(dir.join("traces")).unwrap();
        std::fs::write(
            dir.join(format!("traces/{}--198.19.1.10.json", m.sender_nodes[0])),
            "{}",
        )
        .map_err(|e| EnvError::new(e.to_string()))?;
        let mut r = matador::campaign::env::StepReport::via("fake");
        r.nodes = vec![m.sender_nodes[0].clone(), m.receiver_nodes[0].clone()];
        Ok(r)
    }
}

#[test]
fn a_hung_screen_recording_is_cancelled_on_the_phone() {
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().join("fake.yaml");
    let text = SCENARIO
        .replace("timeouts: {step: 5s,", "timeouts: {step: 1s,")
        .replace("apps: [whatsapp, signal]", "apps: [whatsapp]")
        .replace("repetitions: 2", "repetitions: 1")
        .replace("pairs:\n  all: [DE, BR]", "pairs:\n  explicit: [[DE, DE]]")
        .replace("lab: {}", "capture: {screenrecord_limit: 1s}\nlab: {}");
    std::fs::write(&sp, &text).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    let rec = Record::create(&tmp.path().join("campaigns"), &plan, &ls.source).unwrap();
    let dir = rec.dir.clone();
    let w = Arc::new(World {
        stuck_recorder: Some((Mutex::new(false), std::sync::Condvar::new())),
        ..World::default()
    });
    let e = env(&w);
    let s = Runner::new(rec, plan, e, opts(&ls)).run().unwrap();
    // A recording is evidence, not the measurement: the measurements end.
    assert!(s.complete >= 1, "{s:?}");
    let calls = w.calls.lock().unwrap().clone();
    let cancel = calls.iter().position(|c| c.starts_with("cancel "));
    let ended = calls.iter().position(|c| c.starts_with("recorder ended "));
    assert!(
        cancel.is_some(),
        "the stuck recorder was never cancelled: {calls:?}"
    );
    assert!(
        ended > cancel,
        "the recorder ended after its cancel: {calls:?}"
    );
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    let failed: Vec<String> = j
        .iter()
        .filter(|l| {
            l.step == "screenrecord" && l.state == matador::campaign::record::StepState::Failed
        })
        .filter_map(|l| l.detail.clone())
        .collect();
    assert!(
        failed.iter().any(|d| d.contains("cancelled")),
        "journal says why: {failed:?}"
    );
}

#[test]
fn extra_steps_and_step_timeouts() {
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().join("fake.yaml");
    let text = SCENARIO
        .replace("timeouts: {step: 5s,", "timeouts: {step: 1s,")
        .replace(
            "retries: 1\n",
            "retries: 0\nsteps: {paths: true, probes: true}\n",
        );
    std::fs::write(&sp, &text).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    let rec = Record::create(&tmp.path().join("campaigns"), &plan, &ls.source).unwrap();
    let dir = rec.dir.clone();
    let hang_ended = Arc::new(AtomicBool::new(false));
    let w = Arc::new(World {
        hang_opening: Some(("signal".into(), hang_ended.clone())),
        ..World::default()
    });
    let hook = Arc::new(TraceHook(AtomicUsize::new(0), Mutex::default()));
    let mut e = env(&w);
    e.paths = Some(hook.clone());
    // A step the scenario turns on and the environment cannot run is
    // refused before the first measurement (never skipped-but-complete).
    let refused = Runner::new(rec, plan.clone(), e.clone(), opts(&ls))
        .run()
        .unwrap_err();
    assert!(
        refused.to_string().contains("steps.probes is on"),
        "{refused}"
    );
    assert!(index(&dir).measurements.is_empty());
    let probes = Arc::new(TraceHook(AtomicUsize::new(0), Mutex::default()));
    e.probes = Some(probes.clone());
    let (rec, _) = Record::open(&dir).unwrap();
    let s = Runner::new(rec, plan, e, opts(&ls)).run().unwrap();
    // Bounded: the run ended while the hung calls were still hanging (no
    // wall-clock bound: a slow machine does not change this).
    assert!(
        !hang_ended.load(Ordering::SeqCst),
        "the runner waited for a hung step"
    );
    assert_eq!((s.complete, s.failed), (3, 3));
    // Paths and probes ran once per whatsapp message measurement.
    assert_eq!(hook.0.load(Ordering::SeqCst), 2);
    assert_eq!(probes.0.load(Ordering::SeqCst), 2);
    let idx = index(&dir);
    let m2 = idx.measurements.iter().find(|m| m.id == "m0002").unwrap();
    assert!(
        std::path::Path::new(&dir.join("measurements/m0002/traces/de-1--198.19.1.10.json"))
            .is_file(),
        "{m2:?}"
    );
    let m5 = idx.measurements.iter().find(|m| m.id == "m0005").unwrap();
    let err = m5.error.as_deref().unwrap();
    assert!(
        err.starts_with("exchange: ") && err.contains("no answer within 1s"),
        "{err}"
    );
    // The failed attempt keeps its screen recordings with its UI dumps.
    for f in ["screen-lab-a.mp4", "screen-lab-b.mp4", "ui-lab-a.xml"] {
        assert!(m5.files.iter().any(|x| x == f), "{f}: {:?}", m5.files);
    }
    assert!(
        m2.files.iter().any(|x| x == "screen-lab-a.mp4"),
        "{:?}",
        m2.files
    );
    assert!(
        w.recordings.lock().unwrap().is_empty(),
        "every recording ended"
    );
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    // Every paths/probes record names its nodes and how they were reached;
    // none is skipped.
    let node_steps: Vec<_> = j
        .iter()
        .filter(|l| l.step == "paths" || l.step == "probes")
        .collect();
    assert!(!node_steps.is_empty());
    for l in node_steps {
        assert_ne!(
            l.state,
            matador::campaign::record::StepState::Skipped,
            "{l:?}"
        );
        assert_eq!(l.via.as_deref(), Some("fake"), "{l:?}");
        assert!(!l.nodes.is_empty(), "{l:?}");
    }
    // Baselines never run paths.
    assert!(!dir.join("measurements/m0001/traces").exists());
}

/// A one-app campaign with the paths step on: the scenario, its plan and
/// a fresh record.
fn paths_campaign(tmp: &Path) -> (Record, Plan, LoadedScenario) {
    let sp = tmp.join("fake.yaml");
    let text = SCENARIO
        .replace("apps: [whatsapp, signal]", "apps: [whatsapp]")
        .replace("retries: 1\n", "retries: 1\nsteps: {paths: true}\n");
    std::fs::write(&sp, &text).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    let rec = Record::create(&tmp.join("campaigns"), &plan, &ls.source).unwrap();
    (rec, plan, ls)
}

#[test]
fn paths_trace_from_the_failover_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, plan, ls) = paths_campaign(tmp.path());
    let dir = rec.dir.clone();
    let w = Arc::new(World {
        broken_nodes: ["de-1".to_string()].into(),
        ..World::default()
    });
    let hook = Arc::new(TraceHook(AtomicUsize::new(0), Mutex::default()));
    let mut e = env(&w);
    e.paths = Some(hook.clone());
    let s = Runner::new(rec, plan, e, opts(&ls)).run().unwrap();
    assert_eq!(s.complete, 3, "{s:?}");
    let seen = hook.1.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "one path step per message measurement: {seen:?}"
    );
    // The DE side failed over from de-1 to de-2: traces start there.
    for (a, b) in &seen {
        assert_ne!(a, "de-1", "{seen:?}");
        assert_ne!(b, "de-1", "{seen:?}");
    }
    assert!(
        seen.contains(&("de-2".to_string(), "br-1".to_string())),
        "{seen:?}"
    );
    let idx = index(&dir);
    for m in idx
        .measurements
        .iter()
        .filter(|m| m.kind == matador::campaign::record::MeasurementKind::Message)
    {
        assert_eq!(m.sender_node, "de-2");
        let traces = dir.join("measurements").join(&m.id).join("traces");
        assert!(traces.join("de-2--198.19.1.10.json").is_file(), "{m:?}");
        assert!(!traces.join("de-1--198.19.1.10.json").exists(), "{m:?}");
    }
    // Probes are off in this scenario: journalled as such for every
    // complete message measurement, never as skipped.
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    for m in idx
        .measurements
        .iter()
        .filter(|m| m.kind == matador::campaign::record::MeasurementKind::Message)
    {
        let off = j.iter().filter(|l| {
            l.measurement.as_deref() == Some(m.id.as_str())
                && l.step == "probes"
                && l.state == matador::campaign::record::StepState::Off
                && l.detail.as_deref() == Some("off by scenario")
        });
        assert_eq!(off.count(), 1, "{m:?}");
    }
    assert!(!j.iter().any(
        |l| l.state == matador::campaign::record::StepState::Skipped && l.measurement.is_some()
    ));
}

/// A paths step whose agent on de-1 is gone (as `campaign::agents` reports
/// it: a node failure naming the node).
struct DeadAgentOnDe1;

impl matador::campaign::env::StepHook for DeadAgentOnDe1 {
    fn run(
        &self,
        _dir: &Path,
        m: &matador::campaign::plan::PlannedMeasurement,
    ) -> Result<matador::campaign::env::StepReport, EnvError> {
        if m.sender_nodes[0] == "de-1" {
            return Err(EnvError::node(
                "node de-1: agent connection lost during trace (agent killed or SSH link down)",
            ));
        }
        Ok(matador::campaign::env::StepReport::via("fake"))
    }
}

#[test]
fn a_dead_agent_in_the_paths_step_fails_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, plan, ls) = paths_campaign(tmp.path());
    let dir = rec.dir.clone();
    let w = Arc::new(World::default());
    let mut e = env(&w);
    e.paths = Some(Arc::new(DeadAgentOnDe1));
    let s = Runner::new(rec, plan, e, opts(&ls)).run().unwrap();
    assert_eq!((s.complete, s.failed), (3, 0), "{s:?}");
    let idx = index(&dir);
    for m in idx
        .measurements
        .iter()
        .filter(|m| m.kind == matador::campaign::record::MeasurementKind::Message)
    {
        assert_eq!(m.sender_node, "de-2", "{m:?}");
    }
    let j = read_journal(&dir.join("journal.jsonl")).unwrap();
    assert!(
        j.iter().any(|l| l.step == "node-failover"
            && l.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("node de-1 marked failed"))),
        "no failover from de-1"
    );
}

/// Two phone pairs share the plan: each measurement runs on one pair (its
/// phones, named in the index and journal), a node carries one
/// measurement at a time (`node_capacity: 1`), a phone is never in two
/// measurements at once, and the pairs do run at the same time.
#[test]
fn two_pairs_share_the_plan_within_node_capacity() {
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().join("pairs.yaml");
    let text = SCENARIO
        .replace(
            "phones:\n  - id: lab-a\n  - id: lab-b\n",
            "phones: [{id: lab-a}, {id: lab-b}, {id: lab-c}, {id: lab-d}]\n\
             phone_pairs: [[lab-a, lab-b], [lab-c, lab-d]]\n",
        )
        .replace(
            "  DE: [de-1, de-2]\n  BR: [br-1]\n",
            "  DE: [de-1]\n  BR: [br-1]\n  US: [us-1]\n  IN: [in-1]\n",
        )
        .replace("  all: [DE, BR]\n", "  explicit: [[DE, BR], [US, IN]]\n");
    std::fs::write(&sp, &text).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    assert_eq!(plan.phone_pairs.len(), 2);
    let rec = Record::create(&tmp.path().join("campaigns"), &plan, &ls.source).unwrap();
    let dir = rec.dir.clone();
    let w = Arc::new(World::default());
    let s = Runner::new(rec, plan.clone(), env(&w), opts(&ls))
        .run()
        .unwrap();
    assert_eq!((s.complete, s.failed, s.remaining), (12, 0, 0));
    let peaks = w.node_peak.lock().unwrap().clone();
    assert!(
        peaks.values().all(|&p| p == 1),
        "node capacity 1: {peaks:?}"
    );
    assert!(w.reconnected.lock().unwrap().is_empty());
    assert_eq!(w.peak.load(Ordering::SeqCst), 4, "the two pairs at once");
    let idx = index(&dir);
    let ids: Vec<&str> = idx.measurements.iter().map(|e| e.id.as_str()).collect();
    let planned: Vec<&str> = plan.measurements.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, planned);
    let mut by_pair = BTreeMap::new();
    for e in &idx.measurements {
        let p = e.pair.expect("pair in the index");
        let want = &plan.phone_pairs[p as usize - 1];
        assert_eq!([&e.sender, &e.receiver], [&want[0], &want[1]], "{}", e.id);
        *by_pair.entry(p).or_insert(0) += 1;
    }
    assert_eq!(by_pair.len(), 2, "both pairs measured: {by_pair:?}");
    for l in read_journal(&dir.join("journal.jsonl")).unwrap() {
        assert_eq!(l.measurement.is_some(), l.pair.is_some(), "{l:?}");
    }
    // index.sqlite names the pair of each measurement as index.json does.
    assert_sqlite_matches(&dir);
    // The summary per pair: what the index says each pair carried, busy
    // for part of the run (both pairs measured at once, so neither was
    // busy the whole time plus the other's share).
    assert_eq!(s.pairs.len(), 2);
    let mut busy = Duration::ZERO;
    for p in &s.pairs {
        assert_eq!(p.phones, plan.phone_pairs[p.pair as usize - 1]);
        assert_eq!(p.complete, by_pair[&p.pair], "pair {}", p.pair);
        assert_eq!((p.failed, p.skipped), (0, 0));
        assert!(p.busy > Duration::ZERO && p.busy <= s.measuring, "{p:?}");
        busy += p.busy;
    }
    assert!(busy > s.measuring, "the pairs overlapped: {s:?}");
    let lines = s.pair_lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].starts_with(&format!(
            "pair 2 (lab-c/lab-d): {} done, 0 failed, busy ",
            by_pair[&2]
        )),
        "{lines:?}"
    );
}
