//! End-to-end tests of the node agent over a real OpenSSH server.
//!
//! Each test builds its own pair of network namespaces (node + peer, joined
//! by a veth with 198.18.x.x addresses), starts `sshd -D` in the node
//! namespace with its own config, host key and authorized key in a temp
//! dir, and connects with the real `ssh` client (run in the peer namespace)
//! with strict host-key checking. Needs root, `ip`, `sshd`, `ssh`,
//! `ssh-keygen`, `ping` and `tcpdump`: a missing one FAILS the test.
//! Namespaces and sshd are removed by guards, also on panic.

use matador::capture::CaptureReader;
use matador::capture::live::LiveSpec;
use matador::net::agent::{Agent, AgentError, NodeConfig};
use matador::net::ssh::{SshTarget, write_known_hosts};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod wait_common;
use wait_common::{wait_until, wait_until_async};

/// How long a condition may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// Waits until capture `name` of `agent` has written `n` packets.
async fn wait_written(agent: &Agent, name: &str, n: u64) {
    wait_until_async(
        &format!("capture {name} to write {n} packets"),
        WAIT,
        || async move {
            let list = agent.list_captures().await.unwrap();
            let w = list
                .iter()
                .find(|c| c.capture == name)
                .and_then(|c| c.stats.as_ref())
                .map_or(0, |s| s.written);
            if w >= n { Ok(()) } else { Err(w) }
        },
    )
    .await;
}

const NODE_ADDR: &str = "198.18.250.1";
const PEER_ADDR: &str = "198.18.250.2";

fn sh(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (install it: scripts/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_root_and_tools() {
    // Effective uid from /proc (no unsafe geteuid call needed).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let euid = uid_line.split_whitespace().nth(2).unwrap();
    assert_eq!(
        euid, "0",
        "agent tests need root (network namespaces, sshd); run as root"
    );
    for tool in [
        "/usr/sbin/sshd",
        "ssh",
        "ssh-keygen",
        "ip",
        "ping",
        "tcpdump",
    ] {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        assert!(
            found,
            "{tool} is missing: run scripts/install-deps.sh (openssh-server, openssh-client, iproute2, iputils-ping, tcpdump)"
        );
    }
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        // Everything still running in our namespace was started by this test
        // (sshd sessions, agents): end it by pid, then remove the namespace.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A process we started, killed (by pid) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Node + peer namespaces with sshd on the node.
struct Lab {
    // Field order = drop order: sshd first, then namespaces, then files.
    _sshd: Proc,
    peer: Netns,
    node: Netns,
    dir: tempfile::TempDir,
    host_pub: String,
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}-{:x}", std::process::id(), nanos & 0xfffff)
}

impl Lab {
    fn up() -> Lab {
        require_root_and_tools();
        let id = unique();
        let node = Netns(format!("mtagent-n-{id}"));
        sh("ip", &["netns", "add", &node.0]);
        let peer = Netns(format!("mtagent-p-{id}"));
        sh("ip", &["netns", "add", &peer.0]);
        sh(
            "ip",
            &[
                "-n", &node.0, "link", "add", "n0", "type", "veth", "peer", "name", "p0", "netns",
                &peer.0,
            ],
        );
        for (ns, dev, addr) in [(&node.0, "n0", NODE_ADDR), (&peer.0, "p0", PEER_ADDR)] {
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
            );
            sh("ip", &["-n", ns, "link", "set", dev, "up"]);
            sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for k in ["host_key", "user_key", "other_key"] {
            sh(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    k,
                    "-f",
                    d.join(k).to_str().unwrap(),
                ],
            );
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let cfg = format!(
            "ListenAddress {NODE_ADDR}\nPort 22\nHostKey {hk}\nPidFile {pid}\n\
             AuthorizedKeysFile {ak}\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PrintMotd no\nLogLevel INFO\nClientAliveInterval 1\nClientAliveCountMax 3\n",
            hk = d.join("host_key").display(),
            pid = d.join("sshd.pid").display(),
            ak = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        // sshd's privilege-separation directory (normally made by systemd).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &node.0, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let sshd = Proc(child);
        let t0 = Instant::now();
        loop {
            let l = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            if l.contains("Server listening") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not start: {l}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        Lab {
            _sshd: sshd,
            peer,
            node,
            dir,
            host_pub,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Client config: ssh from the peer namespace, host key pinned.
    fn config(&self, known_host_key: &str) -> NodeConfig {
        let kh = self.path("known_hosts");
        write_known_hosts(&kh, &[(NODE_ADDR, 22, known_host_key)]).unwrap();
        let mut t = SshTarget::new("test-node", NODE_ADDR, "root", self.path("user_key"), kh);
        t.connect_timeout = Duration::from_secs(5);
        t.wrapper = ["ip", "netns", "exec", &self.peer.0]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut cfg = NodeConfig::new(t, self.path("agent").display().to_string());
        cfg.agent_program = env!("CARGO_BIN_EXE_matador").into();
        cfg.request_timeout = Duration::from_secs(20);
        cfg
    }

    fn ping(&self, args: &[&str]) {
        let mut a = vec!["netns", "exec", &self.peer.0, "ping", "-q", "-n"];
        a.extend_from_slice(args);
        a.push(NODE_ADDR);
        sh("ip", &a);
    }

    /// tcpdump on the node's veth, ready when it says "listening".
    fn tcpdump(&self, file: &Path, filter: &str) -> Proc {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node.0,
                "tcpdump",
                "-Z",
                "root",
                "-U",
                "-n",
            ])
            .args(["-i", "n0", "-s", "0", "-B", "32768", "-w"])
            .arg(file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "tcpdump: {line}");
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Proc(child)
    }
}

/// Stops tcpdump with SIGINT (so it writes its last packets) and waits.
fn stop_tcpdump(mut p: Proc) {
    sh("kill", &["-INT", &p.0.id().to_string()]);
    let _ = p.0.wait();
}

/// Frames of a capture file (the data bytes), and whether it ended cleanly.
fn frames(path: &Path) -> (Vec<Vec<u8>>, bool) {
    let mut r = CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    loop {
        match r.next_frame() {
            Ok(Some(f)) => v.push(f.data.to_vec()),
            Ok(None) => return (v, true),
            Err(_) => return (v, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_over_ssh_health_clock_capture_rotation_fetch() {
    let t_all = Instant::now();
    let lab = Lab::up();
    let t_conn = Instant::now();
    let agent = Agent::connect(&lab.config(&lab.host_pub)).await.unwrap();
    eprintln!("connect: {:?}", t_conn.elapsed());

    let h = agent.health().await.unwrap();
    assert_eq!(h.pid, agent.banner().pid);
    assert!(h.uptime_secs > 0.0 && h.disk_total_bytes > 0 && h.disk_free_bytes > 0);
    assert_eq!(h.captures_running, 0);

    let c = agent.clock_offset(20).await.unwrap();
    eprintln!(
        "clock offset {} ns ± {} ns ({} rounds)",
        c.offset_ns, c.uncertainty_ns, c.rounds
    );
    // Same machine, same clock: the estimate must contain zero (1 ms slack
    // for scheduling asymmetry) and be tight.
    assert!(c.uncertainty_ns < 50_000_000, "{c:?}");
    assert!(
        c.offset_ns.unsigned_abs() <= c.uncertainty_ns + 1_000_000,
        "{c:?}"
    );

    // Allow-list: refused programs are errors, allowed ones run.
    let e = agent
        .run(
            "rm",
            &["-rf".into(), "/nonexistent".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("allow-list") && e.to_string().contains("test-node"),
        "{e}"
    );
    let r = agent
        .run("uname", &["-s".into()], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.stdout.trim(), "Linux");

    // 1. Capture vs tcpdump on the same interface: same packets.
    let tcpd_file = lab.path("tcpdump.pcap");
    let tcpd = lab.tcpdump(&tcpd_file, "icmp");
    let mut spec = LiveSpec::new("n0", "capture-node-test");
    spec.filter = Some("icmp".into());
    // Generous buffers on both sides: a loaded 2-core CI box must not drop.
    spec.buffer_size = 32 << 20;
    let info = agent.start_capture("m0001", &spec).await.unwrap();
    assert!(info.running);
    let e = agent.start_capture("m0001", &spec).await.unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    let t_flood = Instant::now();
    lab.ping(&["-f", "-c", "5000", "-s", "1000"]);
    let flood = t_flood.elapsed();
    lab.ping(&["-c", "3", "-i", "0.05"]);
    // Stop once both captures hold every packet (5003 requests + 5003
    // replies): ours by its counter, tcpdump (-U) by its file.
    wait_written(&agent, "m0001", 10_006).await;
    wait_until("tcpdump to write 10006 packets", WAIT, || {
        let n = frames(&tcpd_file).0.len();
        if n >= 10_006 { Ok(()) } else { Err(n) }
    });
    let dest = lab.path("local/m0001");
    let t_stop = Instant::now();
    let got = agent.stop_capture("m0001", &dest).await.unwrap();
    let size = got.info.files[0].size;
    eprintln!(
        "stop + fetch of {size} bytes: {:?} ({:.1} MB/s)",
        t_stop.elapsed(),
        size as f64 / t_stop.elapsed().as_secs_f64() / 1e6
    );
    stop_tcpdump(tcpd);
    let stats = got.info.stats.unwrap();
    eprintln!(
        "capture: {} packets in {:?} flood = {:.0} pkt/s, dropped {} if_dropped {}",
        stats.written,
        flood,
        10_000.0 / flood.as_secs_f64(),
        stats.dropped,
        stats.if_dropped
    );
    assert_eq!(got.files.len(), 1);
    assert_eq!(got.files[0], dest.join("capture-node-test.pcap"));
    let (ours, clean) = frames(&got.files[0]);
    assert!(clean);
    let (theirs, _) = frames(&tcpd_file);
    assert_eq!(ours.len(), 10_006, "ping: 5003 requests + 5003 replies");
    assert_eq!(ours.len(), theirs.len(), "same packet count as tcpdump");
    assert_eq!(stats.written, 10_006);
    assert_eq!(
        (stats.dropped, stats.if_dropped, stats.truncated),
        (0, 0, 0)
    );
    let (mut a, mut b) = (ours.clone(), theirs);
    a.sort();
    b.sort();
    assert!(a == b, "same packet bytes as tcpdump");

    // 2. Rotation by size into numbered files, fetched with checksums.
    let mut spec = LiveSpec::new("n0", "rot");
    spec.filter = Some("icmp".into());
    spec.rotate_bytes = Some(8_000);
    agent.start_capture("m0002", &spec).await.unwrap();
    lab.ping(&["-c", "30", "-i", "0.01", "-s", "1000"]);
    wait_written(&agent, "m0002", 60).await;
    let dest = lab.path("local/m0002");
    let got = agent.stop_capture("m0002", &dest).await.unwrap();
    let names: Vec<_> = got.info.files.iter().map(|f| f.name.clone()).collect();
    assert!(names.len() >= 7, "{names:?}");
    assert_eq!(names[0], "rot-0001.pcap");
    assert_eq!(names[1], "rot-0002.pcap");
    let mut total = 0;
    for (f, remote) in got.files.iter().zip(&got.info.files) {
        assert_eq!(std::fs::metadata(f).unwrap().len(), remote.size);
        let (fr, clean) = frames(f);
        assert!(clean && !fr.is_empty(), "{}", f.display());
        total += fr.len();
    }
    assert_eq!(total, 60);
    // A wrong snaplen truncates and is reported.
    let mut spec = LiveSpec::new("n0", "small");
    spec.filter = Some("icmp".into());
    spec.snaplen = 100;
    agent.start_capture("m0003", &spec).await.unwrap();
    lab.ping(&["-c", "2", "-i", "0.05", "-s", "1000"]);
    wait_written(&agent, "m0003", 4).await;
    let got = agent
        .stop_capture("m0003", &lab.path("local/m0003"))
        .await
        .unwrap();
    assert_eq!(got.info.stats.unwrap().truncated, 4);
    assert!(
        got.info.warnings[0].contains("truncated"),
        "{:?}",
        got.info.warnings
    );
    // A bad filter is a clear error, not a crash.
    let mut spec = LiveSpec::new("n0", "bad");
    spec.filter = Some("icmp and and".into());
    let e = agent.start_capture("m0004", &spec).await.unwrap_err();
    assert!(e.to_string().contains("filter"), "{e}");
    let list = agent.list_captures().await.unwrap();
    let names: Vec<_> = list.iter().map(|c| c.capture.as_str()).collect();
    assert_eq!(names, ["m0001", "m0002", "m0003"]);

    agent.shutdown().await.unwrap();
    eprintln!("whole test: {:?}", t_all.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_key_is_refused() {
    let lab = Lab::up();
    let other = std::fs::read_to_string(lab.path("other_key.pub")).unwrap();
    let e = Agent::connect(&lab.config(&other)).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AgentError::HostKey { .. }), "{msg}");
    assert!(
        msg.contains("test-node") && msg.contains("host key"),
        "{msg}"
    );
    // A missing agent binary on the node is named as such.
    let mut cfg = lab.config(&lab.host_pub);
    cfg.agent_program = "/nonexistent/matador".into();
    let e = Agent::connect(&cfg).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AgentError::NoAgent { .. }), "{msg}");
    assert!(
        msg.contains("test-node") && msg.contains("/nonexistent/matador"),
        "{msg}"
    );
    // A key the node does not accept.
    let mut cfg = lab.config(&lab.host_pub);
    cfg.ssh.identity = lab.path("other_key");
    let e = Agent::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, AgentError::Auth { .. }), "{e}");
    // Nobody listening.
    let mut cfg = lab.config(&lab.host_pub);
    cfg.ssh.port = 2;
    let e = Agent::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, AgentError::Unreachable { .. }), "{e}");
    // And the right key still works (the refusal was about the key).
    let agent = Agent::connect(&lab.config(&lab.host_pub)).await.unwrap();
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_gives_clear_error_and_files_stay_fetchable() {
    let lab = Lab::up();
    let cfg = lab.config(&lab.host_pub);
    let agent = Agent::connect(&cfg).await.unwrap();
    let mut spec = LiveSpec::new("n0", "capture-node-test");
    spec.filter = Some("icmp".into());
    agent.start_capture("m0009", &spec).await.unwrap();
    lab.ping(&["-c", "10", "-i", "0.02"]);
    // The agent dies next: wait until the capture thread has flushed the
    // 20 packets to disk (it does at least every 250 ms), i.e. the files
    // hold the pcap header and every record written.
    let a = &agent;
    wait_until_async("the capture to flush 20 packets", WAIT, || async move {
        let list = a.list_captures().await.unwrap();
        let c = list.iter().find(|c| c.capture == "m0009").unwrap();
        let s = c.stats.as_ref().unwrap();
        let on_disk: u64 = c.files.iter().map(|f| f.size).sum();
        let want = 24 + 16 * s.written + s.bytes;
        if s.written >= 20 && on_disk >= want {
            Ok(())
        } else {
            Err((s.written, on_disk, want))
        }
    })
    .await;
    let pid = agent.banner().pid.to_string();
    sh("kill", &["-KILL", &pid]);
    let e = agent.health().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AgentError::Dead { .. }), "{msg}");
    assert!(msg.contains("test-node") && msg.contains("lost"), "{msg}");
    // Later requests fail the same way, at once.
    let t = Instant::now();
    assert!(matches!(
        agent.clock_offset(3).await,
        Err(AgentError::Dead { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
    drop(agent);

    // A new agent finds the capture on disk and fetches it.
    let agent = Agent::connect(&cfg).await.unwrap();
    let list = agent.list_captures().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(!list[0].running);
    assert!(list[0].stats.is_none());
    let dest = lab.path("local");
    let got = agent.fetch_capture("m0009", &dest).await.unwrap();
    assert_eq!(got, [dest.join("capture-node-test.pcap")]);
    let f = &got[0];
    let (fr, _) = frames(f);
    assert_eq!(
        fr.len(),
        20,
        "all packets flushed before the kill are readable"
    );
    let e = agent.fetch_capture("m0010", &dest).await.unwrap_err();
    assert!(e.to_string().contains("no capture m0010"), "{e}");
    // Fetching something absent is a clear error naming node and file.
    let e = agent.fetch("m0009", "nope.pcap", &dest).await.unwrap_err();
    assert!(e.to_string().contains("test-node") && e.to_string().contains("nope.pcap"));
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_ssh_link_is_detected_and_names_the_node() {
    let lab = Lab::up();
    let mut cfg = lab.config(&lab.host_pub);
    // Keep-alive every second: a silent link is declared dead after ~3 s.
    cfg.ssh.server_alive = Duration::from_secs(1);
    let agent = Agent::connect(&cfg).await.unwrap();
    agent.health().await.unwrap();
    // Cut the link: packets vanish silently, no RST, no FIN.
    sh("ip", &["-n", &lab.node.0, "link", "set", "n0", "down"]);
    let t = Instant::now();
    // ServerAlive (1 s) finds it; without, TCP would retry for ~15 min:
    // a minute tells the two apart and is no speed target.
    let e = tokio::time::timeout(Duration::from_secs(60), agent.health())
        .await
        .expect("a dead link is not detected by ServerAlive")
        .unwrap_err();
    let msg = e.to_string();
    eprintln!("dead link detected after {:?}: {msg}", t.elapsed());
    assert!(matches!(e, AgentError::Dead { .. }), "{msg}");
    assert!(msg.contains("test-node"), "{msg}");
    // The node side would notice via ClientAlive; do not wait for it.
    sh("kill", &["-KILL", &agent.banner().pid.to_string()]);
}
