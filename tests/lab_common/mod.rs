//! Shared helpers of the virtual-lab tests (root and network namespaces
//! required: a missing prerequisite FAILS with a message, never skips).
#![allow(dead_code)]

use matador_lab::build::{Lab, UpOptions};
use matador_lab::topology::Topology;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails clearly when the test cannot run here.
pub fn require_root() {
    assert!(
        matador_lab::build::is_root(),
        "the lab tests need root (network namespaces); CI runs them as root"
    );
    for p in [
        "ip",
        "wg",
        "wireguard-go",
        "dnsmasq",
        "tcpdump",
        "ping",
        "sshd",
        "iptables",
    ] {
        assert!(
            matador::net::cmd::which(p).is_some(),
            "{p} missing: run scripts/install-deps.sh ({})",
            matador::net::cmd::install_hint(p)
        );
    }
}

/// The matador binary under test.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_matador"))
}

/// Brings the demo lab up in `state_dir`.
pub fn demo(state_dir: &Path, phones: bool, ssh: bool) -> Lab {
    require_root();
    let t = Topology::load(&Topology::demo_path()).unwrap();
    Lab::up(UpOptions {
        topology: t,
        state_dir: state_dir.to_path_buf(),
        exe: exe(),
        phones,
        ssh,
        cancel: None,
    })
    .unwrap()
}

/// Everything of lab `id` still present on the machine: namespaces, root
/// links, WireGuard sockets and processes whose command line names the lab
/// or whose environment carries its spawn marker.
pub fn leftovers(id: &str) -> Vec<String> {
    let mut v = Vec::new();
    let tag = format!("mt{id}");
    for ns in matador::net::netns::list() {
        if ns.starts_with(&tag) {
            v.push(format!("netns {ns}"));
        }
    }
    for l in matador::net::netns::links(None).unwrap() {
        if l.starts_with(&tag) || l.starts_with(&format!("wg{id}")) {
            v.push(format!("link {l}"));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/var/run/wireguard") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("wg{id}")) {
                v.push(format!("socket {n}"));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            // Every process the lab started carries MATADOR_SPAWN=<id>:<n>.
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let marker = format!("{}={id}:", matador::net::state::SPAWN_ENV);
            let marked = env
                .split(|b| *b == 0)
                .any(|kv| kv.starts_with(marker.as_bytes()));
            if !zombie
                && (marked
                    || cmd.contains(&tag)
                    || cmd.contains(&format!("wg{id}"))
                    || cmd.contains(&format!("/{id}/")))
            {
                v.push(format!(
                    "process {}: {cmd}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    v
}

/// Pings `dst` from namespace `ns` (count packets); true when all answered.
pub fn ping(ns: &str, dst: &str, count: u32) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "1", "-c",
        ])
        .arg(count.to_string())
        .arg(dst)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A tcpdump capture running in a namespace.
pub struct Capture {
    child: Child,
    /// The pcap file.
    pub file: PathBuf,
}

impl Capture {
    /// Starts capturing on `iface` in `ns` with a BPF filter.
    pub fn start(ns: &str, iface: &str, filter: &str, file: &Path) -> Capture {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "tcpdump",
                "--immediate-mode",
                "-Z",
                "root",
                "-n",
                "-U",
                "-i",
                iface,
                "-w",
            ])
            .arg(file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        // tcpdump says "listening on …" once the capture is open.
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 512];
            let mut seen = Vec::new();
            let mut sent = false;
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if !sent && String::from_utf8_lossy(&seen).contains("listening on") {
                    let _ = tx.send(());
                    sent = true;
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("tcpdump on {ns}/{iface} did not start"));
        Capture {
            child,
            file: file.to_path_buf(),
        }
    }

    /// Stops the capture and returns tcpdump's one-line summaries.
    pub fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = Command::new("tcpdump")
            .arg("-nr")
            .arg(&self.file)
            .output()
            .expect("tcpdump -r");
        eprintln!(
            "capture {}: {} bytes, {}",
            self.file.display(),
            std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A labs' state folder of this test process (`run --lab-state-dir`): a lab
/// brought up sweeps the stale labs of its folder, so tests that leave
/// stale labs on purpose (SIGKILL) while others run beside them keep to
/// folders of their own.
pub fn own_state_dir(test: &str) -> PathBuf {
    PathBuf::from(format!("/run/matador/test-{test}-{}", std::process::id()))
}

/// Takes down every lab in `state_dir` owned by one of `pids` or named in
/// `labs` (only ours: other labs on the machine are not touched), then
/// removes the folder if that left it empty (a lab left keeps its state).
pub fn down_labs_of(state_dir: &Path, pids: &[u32], labs: &[String]) {
    let Ok(rd) = std::fs::read_dir(state_dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(st) = matador::net::state::StateFile::load(&p) else {
            continue;
        };
        let s = st.state();
        if pids.contains(&s.owner.pid) || labs.contains(&s.id) {
            eprintln!("tearing down lab {} left by a failed run", s.id);
            let _ = Command::new(env!("CARGO_BIN_EXE_matador"))
                .args(["lab", "down", &s.id, "--state-dir"])
                .arg(state_dir)
                .status();
        }
    }
    let _ = std::fs::remove_dir(state_dir);
}

/// A JSON file of a campaign record (panics naming the file).
pub fn read_json(p: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The complete lines of a campaign's `journal.jsonl` (a line still being
/// written is not complete yet).
pub fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}
