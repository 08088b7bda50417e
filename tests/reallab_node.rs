//! `matador node install|check|upgrade` against a clean Debian node: a
//! debootstrap root (minbase + openssh-server, cached under
//! /var/cache/matador or $MATADOR_NODE_CACHE, built from deb.debian.org the
//! first time by tests/reallab_node/build-root.sh) mounted as an overlay (its
//! upper layer on a tmpfs: / may itself be an overlay, in a container) in
//! its own network namespace, running its own sshd in a chroot. The ssh
//! client runs in a second namespace joined by a veth (198.18.0.0/30), with
//! host-key checking on. The node has no route to the internet: apt
//! installs from the packages the cache build downloaded (not installed).
//!
//! Needs root, debootstrap, ssh, ssh-keygen, ip, iptables; a missing one
//! FAILS. Mounts live in the mount namespace `ip netns exec` creates, so
//! they vanish with the node's processes; the guard kills only processes
//! inside our node namespace, deletes both namespaces and the temp dir.

use matador::net::router::generate;
use matador::net::router::{RealLab, RealNode, RealPhone, RouterConf};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NODE_ADDR: &str = "198.18.0.2";
const CLIENT_ADDR: &str = "198.18.0.1";

fn sh(prog: &str, args: &[&str]) -> Output {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        o.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn require() {
    assert!(
        matador_lab::build::is_root(),
        "reallab_node needs root (namespaces, chroot, mounts); CI runs it as root"
    );
    for p in [
        "debootstrap",
        "ssh",
        "ssh-keygen",
        "ip",
        "iptables",
        "chroot",
        "mount",
        "flock",
    ] {
        assert!(
            matador::net::cmd::which(p).is_some(),
            "{p} missing: run scripts/install-deps.sh (debootstrap, openssh-client, iproute2, iptables, util-linux)"
        );
    }
}

fn suite() -> String {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .expect("the node root must match this host's Debian release (the matador binary links its glibc and libpcap); /etc/os-release has no VERSION_CODENAME")
}

/// The cached root, built once (under a lock, so parallel test binaries wait).
fn cached_root() -> PathBuf {
    let cache = std::env::var_os("MATADOR_NODE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/matador"));
    std::fs::create_dir_all(&cache).unwrap();
    let suite = suite();
    let root = cache.join(format!("root-{suite}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reallab_node/build-root.sh");
    let t = Instant::now();
    let o = Command::new("flock")
        .arg(cache.join(".lock"))
        .arg(&script)
        .arg(&cache)
        .arg(&suite)
        .output()
        .expect("run build-root.sh");
    assert!(
        o.status.success(),
        "building the Debian node root failed (needs deb.debian.org reachable the first time): {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "node root {} ready in {:.1} s",
        root.display(),
        t.elapsed().as_secs_f64()
    );
    root
}

struct Node {
    node_ns: String,
    client_ns: String,
    dir: PathBuf,
    sshd: Option<std::process::Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        // Every process of the node namespace is ours (sshd, its sessions,
        // wireguard-go started by node install).
        for _ in 0..3 {
            let out = Command::new("ip")
                .args(["netns", "pids", &self.node_ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let pids: Vec<&str> = out.split_whitespace().collect();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = Command::new("kill").args(["-KILL", p]).status();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.node_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    fn up(root: &Path) -> Node {
        let id = format!(
            "{:x}",
            std::process::id() ^ Instant::now().elapsed().subsec_nanos()
        );
        let dir = std::env::temp_dir().join(format!("matador-node-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut n = Node {
            node_ns: format!("mtnode-n-{id}"),
            client_ns: format!("mtnode-c-{id}"),
            dir: dir.clone(),
            sshd: None,
        };
        sh("ip", &["netns", "add", &n.node_ns]);
        sh("ip", &["netns", "add", &n.client_ns]);
        sh(
            "ip",
            &[
                "-n",
                &n.node_ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "c0",
                "netns",
                &n.client_ns,
            ],
        );
        for (ns, dev, a) in [
            (&n.node_ns, "eth0", NODE_ADDR),
            (&n.client_ns, "c0", CLIENT_ADDR),
        ] {
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{a}/30"), "dev", dev],
            );
            sh("ip", &["-n", ns, "link", "set", dev, "up"]);
            sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        for k in ["host_key", "user_key"] {
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
                    dir.join(k).to_str().unwrap(),
                ],
            );
        }
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        matador::net::ssh::write_known_hosts(
            &dir.join("known_hosts"),
            &[(NODE_ADDR, 22, &host_pub)],
        )
        .unwrap();
        // The overlay's upper layer gets sshd's config, host key and our
        // key: prepared here in `seed`, copied into the upper dir at mount.
        let seed = dir.join("seed");
        for d in ["etc/ssh", "run/sshd", "merged", "layers"] {
            std::fs::create_dir_all(if d == "merged" || d == "layers" {
                dir.join(d)
            } else {
                seed.join(d)
            })
            .unwrap();
        }
        std::fs::copy(dir.join("host_key"), seed.join("etc/ssh/matador_host_key")).unwrap();
        std::fs::copy(
            dir.join("user_key.pub"),
            seed.join("etc/ssh/matador_authorized_keys"),
        )
        .unwrap();
        std::fs::write(
            seed.join("etc/ssh/sshd_config_matador"),
            format!(
                "ListenAddress {NODE_ADDR}\nPort 22\nHostKey /etc/ssh/matador_host_key\nPidFile none\n\
                 AuthorizedKeysFile /etc/ssh/matador_authorized_keys\nStrictModes no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPrintMotd no\nLogLevel INFO\nClientAliveInterval 2\nClientAliveCountMax 3\n"
            ),
        )
        .unwrap();
        let m = dir.join("merged");
        // The upper and work dirs live on a tmpfs of their own, not in the
        // temp dir: overlayfs refuses an upper dir on an overlay file system
        // ("wrong fs type"), which /tmp is in a container whose / is itself
        // an overlay (Docker, a fresh Debian root). The tmpfs is mounted in
        // the mount namespace `ip netns exec` makes, so it goes with the
        // node's processes like the overlay does.
        let script = format!(
            "set -e\nmount -t tmpfs -o mode=0755 tmpfs {layers}\n\
             mkdir {layers}/upper {layers}/work\ncp -a {seed}/. {layers}/upper/\n\
             mount -t overlay overlay -o lowerdir={root},upperdir={layers}/upper,workdir={layers}/work {m}\n\
             mount -t proc proc {m}/proc\nmount --rbind /dev {m}/dev\nmount -t sysfs sysfs {m}/sys\n\
             mount -t tmpfs tmpfs {m}/tmp\n\
             exec chroot {m} /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config_matador\n",
            root = root.display(),
            layers = dir.join("layers").display(),
            seed = seed.display(),
            m = m.display()
        );
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &n.node_ns, "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the node's sshd");
        n.sshd = Some(child);
        let t0 = Instant::now();
        loop {
            let l = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            if l.contains("Server listening") {
                break;
            }
            let exited = n.sshd.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && t0.elapsed() < Duration::from_secs(15),
                "the chroot's sshd did not start (overlay mount or sshd in the chroot failed): {l}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    /// Runs `matador node ...` in the client namespace.
    fn matador(&self, args: &[&str]) -> (bool, String) {
        let mut a: Vec<String> = [
            "netns",
            "exec",
            &self.client_ns,
            env!("CARGO_BIN_EXE_matador"),
            "node",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(args.iter().map(|s| s.to_string()));
        a.extend([
            "--node".into(),
            format!("root@{NODE_ADDR}"),
            "--identity".into(),
            self.dir.join("user_key").display().to_string(),
            "--known-hosts".into(),
            self.dir.join("known_hosts").display().to_string(),
            "--name".into(),
            "de-1".into(),
        ]);
        let o = Command::new("ip").args(&a).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    }

    /// Runs a command in the node (chroot) over ssh as root.
    fn on_node(&self, cmd: &str) -> String {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "ssh",
                "-F",
                "none",
                "-T",
                "-i",
            ])
            .arg(self.dir.join("user_key"))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
            ])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-l",
                "root",
                NODE_ADDR,
                cmd,
            ])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

/// The tunnel description `matador router config` writes for node de-1.
fn tunnel_json(dir: &Path) -> PathBuf {
    let pass = dir.join("wlan.psk");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let lab = RealLab {
        schema: matador::net::router::SCHEMA.into(),
        name: "nodetest".into(),
        country: "DE".into(),
        router: RouterConf {
            wlan_if: "wlan0".into(),
            uplink: "eth0".into(),
            ssid: "matador-lab".into(),
            passphrase_file: pass,
            channel: 6,
            wlan_addr: "198.18.100.1/24".into(),
            resolver: "198.18.98.53".parse().unwrap(),
            tunnel_net: "198.18.99.0".parse().unwrap(),
            table_base: 100,
            priority_base: 1000,
        },
        phones: vec![RealPhone {
            name: "phone-a".into(),
            serial: "R58N00TEST".into(),
            mac: "02:00:00:00:00:0a".into(),
            addr: "198.18.100.2".parse().unwrap(),
            node: "de-1".into(),
        }],
        nodes: vec![RealNode {
            name: "de-1".into(),
            country: "DE".into(),
            host: NODE_ADDR.into(),
            user: "root".into(),
            ssh_port: 22,
            identity: None,
            known_hosts: None,
            wg_port: 51820,
            uplink: "eth0".into(),
            tunnel_if: "wg-matador".into(),
            dns_upstream: Some(CLIENT_ADDR.parse().unwrap()),
        }],
    };
    let out = dir.join("router");
    generate::generate(&lab, &out, Path::new(generate::INSTALL_DIR)).unwrap();
    out.join("nodes/de-1.json")
}

fn changes(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("changed: ")).collect()
}

fn status_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.len() > 5 && l[5..].starts_with(name))
        .map(|l| &l[..4])
        .unwrap_or_else(|| panic!("no check {name:?} in:\n{out}"))
}

#[test]
fn install_twice_check_and_repair_a_clean_debian_node() {
    require();
    let root = cached_root();
    let node = Node::up(&root);
    let tunnel = tunnel_json(&node.dir);
    let tunnel = tunnel.to_str().unwrap();
    let args = ["--tunnel", tunnel, "--agent-user", "matador"];

    // Before: nothing installed, the check says so and fails.
    let (ok, out) = node.matador(&[&["check"][..], &args].concat());
    assert!(!ok, "check of a clean node must fail:\n{out}");
    assert_eq!(status_of(&out, "packages"), "FAIL", "{out}");
    assert_eq!(status_of(&out, "binary"), "FAIL", "{out}");

    // First install really installs.
    let t = Instant::now();
    let (ok, out) = node.matador(&[&["install"][..], &args].concat());
    let first = t.elapsed();
    assert!(
        ok,
        "first install failed:\n{out}\nsshd log: {}",
        std::fs::read_to_string(node.dir.join("sshd.log")).unwrap_or_default()
    );
    let ch = changes(&out);
    eprintln!(
        "first install: {:.1} s, {} changes:\n{}",
        first.as_secs_f64(),
        ch.len(),
        ch.join("\n")
    );
    for want in [
        "wireguard-tools",
        "wireguard-go",
        "libpcap0.8",
        "binary /usr/local/bin/matador",
        "agent user matador",
        "capture + raw-socket permission",
        "tunnel config",
        "tunnel interface wg-matador",
        "NAT 198.18.100.0/24 out of eth0",
        "DNS 198.18.98.53/udp",
    ] {
        assert!(
            ch.iter().any(|c| c.contains(want)),
            "no change {want:?} in:\n{out}"
        );
    }
    let dpkg = node.on_node("dpkg-query -W -f '${Package} ${Status}\\n' wireguard-tools wireguard-go 'libpcap0.8*' iptables libcap2-bin");
    assert_eq!(dpkg.matches("install ok installed").count(), 5, "{dpkg}");

    // Second run: nothing to do.
    let t = Instant::now();
    let (ok, out) = node.matador(&[&["install"][..], &args].concat());
    let second = t.elapsed();
    assert!(ok, "second install failed:\n{out}");
    assert!(
        changes(&out).is_empty(),
        "second install changed something:\n{out}"
    );
    assert!(out.contains("0 change(s)"), "{out}");
    eprintln!("second install: {:.1} s, 0 changes", second.as_secs_f64());
    let (ok, out) = node.matador(&["upgrade", "--agent-user", "matador"]);
    assert!(
        ok && changes(&out).is_empty(),
        "upgrade with the same binary must change nothing:\n{out}"
    );

    // A healthy node passes the check (the agent answers over SSH).
    let (ok, out) = node.matador(&[&["check"][..], &args].concat());
    assert!(ok, "check after install failed:\n{out}");
    for c in [
        "packages",
        "binary",
        "capture permission",
        "raw-socket permission",
        "disk",
        "tunnel",
        "forwarding",
        "nat",
        "dns",
        "clock",
        "agent disk",
    ] {
        assert_eq!(status_of(&out, c), "ok  ", "{c}:\n{out}");
    }

    // Broken node: NAT gone and the binary's capabilities removed.
    sh(
        "ip",
        &[
            "netns",
            "exec",
            &node.node_ns,
            "iptables",
            "-w",
            "-t",
            "nat",
            "-F",
            "POSTROUTING",
        ],
    );
    let r = node.on_node("setcap -r /usr/local/bin/matador && echo removed");
    assert!(r.contains("removed"), "{r}");
    let (ok, out) = node.matador(&[&["check"][..], &args].concat());
    assert!(!ok, "broken node passed:\n{out}");
    assert_eq!(status_of(&out, "nat"), "FAIL", "{out}");
    assert_eq!(status_of(&out, "capture permission"), "FAIL", "{out}");
    assert_eq!(status_of(&out, "raw-socket permission"), "FAIL", "{out}");
    assert!(
        out.contains(
            "fix: `iptables -t nat -A POSTROUTING -s 198.18.100.0/24 -o eth0 -j MASQUERADE`"
        ),
        "{out}"
    );
    assert!(
        out.contains("fix: `setcap cap_net_admin,cap_net_raw+ep /usr/local/bin/matador`"),
        "{out}"
    );

    // install repairs exactly what was broken.
    let (ok, out) = node.matador(&[&["install"][..], &args].concat());
    assert!(ok, "{out}");
    let ch = changes(&out);
    assert_eq!(
        ch.len(),
        3,
        "repair should re-add 2 NAT rules + caps:\n{out}"
    );
    let (ok, out) = node.matador(&[&["check"][..], &args].concat());
    assert!(ok, "check after repair failed:\n{out}");

    // A new binary is copied by upgrade (and its capabilities restored).
    let other = node.dir.join("matador-other");
    std::fs::copy(env!("CARGO_BIN_EXE_matador"), &other).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap();
    std::io::Write::write_all(&mut f, b"\0upgrade-marker").unwrap();
    drop(f);
    let (ok, out) = node.matador(&[
        "upgrade",
        "--agent-user",
        "matador",
        "--binary",
        other.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let ch = changes(&out);
    assert!(
        ch.iter().any(|c| c.contains("binary")) && ch.iter().any(|c| c.contains("setcap")),
        "{out}"
    );
    eprintln!(
        "install {:.1} s (first), {:.1} s (second, 0 changes)",
        first.as_secs_f64(),
        second.as_secs_f64()
    );
}
