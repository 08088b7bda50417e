//! Disk full while writing a capture: the campaign folder lives on a small
//! tmpfs mounted by the test, the router captures are real libpcap captures
//! (`campaign::captures::RouterCaptures` on the loopback of a namespace of
//! ours) fed by a UDP blast at every send. The third measurement fills the
//! disk: the run must end with a clear error naming the capture file and
//! the full disk, the measurements finished before must stay byte-identical
//! and listed in a valid index, and `--resume` on a disk with room again
//! completes the campaign. Needs root (mount, netns): fails without.

use matador::campaign::captures::RouterCaptures;
use matador::campaign::env::{EnvError, PhoneControl, PhoneFacts, Vantage};
use matador::campaign::plan::Plan;
use matador::campaign::record::{Index, Record, Status};
use matador::campaign::runner::{Env, RunOptions, Runner};
use matador::scenario::LoadedScenario;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCENARIO: &str = "name: diskfull
phones:
  - id: lab-a
  - id: lab-b
apps: [whatsapp]
countries:
  DE: [de-1]
pairs:
  explicit: [[DE, DE]]
messages:
  per_direction: 1
  texts: [one, two]
  interval: 0s
repetitions: 5
baseline: {runs: 0}
timeouts: {step: 20s, receive: 5s, measurement: 60s}
retries: 1
capture: {points: [router]}
lab: {}
";

/// Datagrams per send and their size: each capture grows by about 250 kB
/// per send, so a measurement writes about 1 MB (2 captures, 2 sends).
const BLAST: usize = 200;
const DGRAM: usize = 1200;
/// The tmpfs: room for a few measurements, not five.
const DISK: &str = "4m";

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Measurement id → file name → bytes.
type Snapshots = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

fn digests(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_file() {
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    m
}

/// Phones that "send" by blasting UDP over the namespace's loopback (which
/// both router captures watch); everything else succeeds at once.
struct Blaster {
    ns: String,
    /// The finished folders as they were when measured (id → file → bytes).
    campaign: PathBuf,
    before: Mutex<Option<Snapshots>>,
    sends: Mutex<usize>,
}

impl PhoneControl for Blaster {
    fn prepare(&self, _: &str, _: &str, _: &str) -> Result<PhoneFacts, EnvError> {
        Ok(PhoneFacts::default())
    }
    fn open_chat(&self, _: &str, _: &str, _: &str) -> Result<(), EnvError> {
        Ok(())
    }
    fn send(&self, _: &str, _: &str, _: &str) -> Result<f64, EnvError> {
        let n = {
            let mut s = self.sends.lock().unwrap();
            *s += 1;
            *s
        };
        // Keep what the finished measurements (those in index.json) hold
        // now, to compare after the disk filled up.
        let _ = n;
        if let Ok(text) = std::fs::read_to_string(self.campaign.join("index.json"))
            && let Ok(index) = serde_json::from_str::<Index>(&text)
        {
            let mut before = self.before.lock().unwrap();
            let all = before.get_or_insert_with(BTreeMap::new);
            for e in &index.measurements {
                all.entry(e.id.clone())
                    .or_insert_with(|| digests(&self.campaign.join("measurements").join(&e.id)));
            }
        }
        let t = matador::campaign::record::now();
        matador::net::netns::run_in(Some(&self.ns), || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
            let buf = vec![0x42u8; DGRAM];
            for _ in 0..BLAST {
                s.send_to(&buf, "127.0.0.1:9")?;
                // Paced (the scenario, not a wait): libpcap must keep up
                // (no drops, sizes stay known).
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        })
        .map_err(|e| EnvError::new(e.to_string()))?;
        // No grace sleep: stopping a capture reads what libpcap still holds.
        Ok(t)
    }
    fn wait_receive(&self, _: &str, _: &str, _: &str, _: Duration) -> Result<f64, EnvError> {
        Ok(matador::campaign::record::now())
    }
    fn finish(&self, _: &str, _: &str) -> Result<(), EnvError> {
        Ok(())
    }
    fn diagnostics(&self, _: &str, _: &Path) -> Result<(), EnvError> {
        Ok(())
    }
}

impl Vantage for Blaster {
    fn connect(&self, _: &str, _: &str) -> Result<(), EnvError> {
        Ok(())
    }
    fn check(&self, _: &str, _: &str) -> Result<(), EnvError> {
        Ok(())
    }
    fn disconnect(&self, _: &str) -> Result<(), EnvError> {
        Ok(())
    }
}

fn env(b: &Arc<Blaster>) -> Env {
    let ifaces: HashMap<String, String> = [("lab-a", "lo"), ("lab-b", "lo")]
        .iter()
        .map(|(p, i)| (p.to_string(), i.to_string()))
        .collect();
    Env {
        phones: b.clone(),
        vantage: b.clone(),
        capture: Arc::new(RouterCaptures::new(Some(b.ns.clone()), ifaces, 65535)),
        paths: None,
        probes: None,
    }
}

#[test]
fn disk_full_while_capturing_stops_clearly_and_keeps_earlier_measurements() {
    assert!(
        matador_lab::build::is_root(),
        "this test needs root (tmpfs mount, network namespace)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={DISK}"),
            "tmpfs",
            disk.to_str().unwrap(),
        ],
    );
    let mount = Mount(disk.clone());
    let ns = Netns(format!("mtdf{}", std::process::id()));
    sh("ip", &["netns", "add", &ns.0]);
    sh("ip", &["-n", &ns.0, "link", "set", "lo", "up"]);

    let sp = tmp.path().join("diskfull.yaml");
    std::fs::write(&sp, SCENARIO).unwrap();
    let ls = LoadedScenario::load(&sp).unwrap();
    let plan = Plan::expand(&ls);
    assert_eq!(plan.measurements.len(), 5);
    let rec = Record::create(&disk, &plan, &ls.source).unwrap();
    let dir = rec.dir.clone();
    let b = Arc::new(Blaster {
        ns: ns.0.clone(),
        campaign: dir.clone(),
        before: Mutex::new(None),
        sends: Mutex::new(0),
    });
    let t0 = std::time::Instant::now();
    let mut runner = Runner::new(
        rec,
        plan,
        env(&b),
        RunOptions::from_scenario(&ls.scenario, ls.profiles.clone()),
    );
    let r = runner.run();
    drop(runner);
    eprintln!("run ended after {:.1} s: {r:?}", t0.elapsed().as_secs_f64());

    // A clear error: the capture file and the full disk.
    let msg = match &r {
        Err(e) => e.to_string(),
        Ok(s) => panic!("the run went on with a full disk: {s:?}"),
    };
    assert!(
        msg.contains("capture-router-lab-") && msg.contains(".pcap"),
        "error does not name the capture file: {msg}"
    );
    assert!(
        msg.contains("No space left on device"),
        "error does not say the disk is full: {msg}"
    );
    // Earlier measurements intact: in a valid index, byte-identical.
    let index: Index =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap())
            .expect("index.json still valid");
    let ids: Vec<&str> = index.measurements.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.len() >= 2, "at least two measurements fit: {ids:?}");
    assert!(ids.len() < 5, "the disk never filled up: {ids:?}");
    let failed_id = format!("m{:04}", ids.len() + 1);
    assert!(
        msg.contains(&format!("{failed_id} ")) && msg.contains(&format!("/{failed_id}/")),
        "the error names the measurement and file being written: {msg}"
    );
    assert!(
        !dir.join("measurements").join(&failed_id).exists(),
        "the interrupted measurement's files are left behind"
    );
    assert!(
        index
            .measurements
            .iter()
            .all(|e| e.status == Status::Complete)
    );
    let before = b.before.lock().unwrap().clone().expect("snapshots taken");
    assert_eq!(before.len(), ids.len(), "{:?}", before.keys());
    for (id, files) in &before {
        let now = digests(&dir.join("measurements").join(id));
        for (f, bytes) in files {
            if f == "analysis.json" {
                continue;
            }
            assert_eq!(now.get(f), Some(bytes), "{id}/{f} changed");
        }
        assert!(
            files.keys().any(|f| f.starts_with("capture-router-")),
            "{id}: {files:?}"
        );
    }
    // The journal is readable and says why.
    let j = matador::campaign::record::read_journal(&dir.join("journal.jsonl")).unwrap();
    assert!(
        j.iter().any(|l| l
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("No space left on device"))),
        "the journal does not record the full disk"
    );

    // Room again (the tmpfs grows): --resume completes the rest, once each.
    sh("mount", &["-o", "remount,size=16m", disk.to_str().unwrap()]);
    let (rec, plan) = Record::open(&dir).unwrap();
    let mut runner = Runner::new(
        rec,
        plan,
        env(&b),
        RunOptions::from_scenario(&ls.scenario, ls.profiles.clone()),
    );
    let s = runner.run().expect("resume with room");
    drop(runner);
    assert_eq!((s.complete, s.failed, s.remaining), (5, 0, 0), "{s:?}");
    for (id, files) in &before {
        let now = digests(&dir.join("measurements").join(id));
        for (f, bytes) in files {
            if f != "analysis.json" {
                assert_eq!(now.get(f), Some(bytes), "{id}/{f} changed on resume");
            }
        }
    }
    drop(mount);
    drop(ns);
    assert!(
        !String::from_utf8_lossy(&std::fs::read("/proc/mounts").unwrap())
            .contains(disk.to_str().unwrap()),
        "tmpfs left mounted"
    );
    eprintln!("test took {:.1} s", t0.elapsed().as_secs_f64());
}
