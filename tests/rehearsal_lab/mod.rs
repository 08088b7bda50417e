//! The rehearsal's lab, built only from what a real lab team has: a router
//! namespace configured by the files `matador router config` generates,
//! Debian nodes provisioned by `matador node install` over OpenSSH, phones
//! on the adb server (`adb connect`, as a USB hub would), and beyond the
//! nodes an "internet" of the virtual lab's building blocks (forwarding
//! namespaces as ISP/core/data-centre hops, dnsmasq as the nodes' upstream
//! resolvers, `lab-sim backend` app servers).
//!
//! [`Guard`] owns every namespace, process and file; dropping it (also on
//! panic) stops the processes of our namespaces by pid, deletes the
//! namespaces and the wireguard-go sockets named after this run.

#![allow(dead_code)] // each test binary uses a part

pub mod dhcp;
pub mod internet;
pub mod node;
pub mod phones;
pub mod router;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command that must succeed; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let o: Output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ip ARGS` (in namespace `ns` when given).
pub fn ip(ns: Option<&str>, args: &[&str]) -> String {
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    run(c.args(args))
}

/// `ip netns exec NS PROG ARGS` as a command to complete.
pub fn in_ns(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

/// Everything one rehearsal created.
pub struct Guard {
    /// Five hex digits naming this run's namespaces and tunnels.
    pub id: String,
    /// Work folder (keys, generated files, logs, campaigns).
    pub dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<Child>,
    /// wireguard-go sockets (machine-wide directory) of the router's tunnels.
    wg_sockets: Vec<PathBuf>,
}

impl Guard {
    /// A new run with its work folder (not under /tmp's overlay concerns:
    /// only files live here; the nodes' overlay layers are on a tmpfs).
    pub fn new() -> Guard {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!("{:05x}", (std::process::id() ^ nanos) & 0xfffff);
        let dir = std::env::temp_dir().join(format!("matador-rehearsal-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        Guard {
            id,
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
            wg_sockets: Vec::new(),
        }
    }

    /// Creates namespace `mr<id>-<role>` (loopback up) and returns its name.
    pub fn netns(&mut self, role: &str) -> String {
        let ns = format!("mr{}-{role}", self.id);
        ip(None, &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(Some(&ns), &["link", "set", "lo", "up"]);
        ns
    }

    /// Names of this run's namespaces.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Remembers a router tunnel interface served by wireguard-go, whose
    /// UAPI socket lives in the machine-wide /var/run/wireguard.
    pub fn wg_interface(&mut self, ifname: &str) {
        self.wg_sockets
            .push(PathBuf::from(format!("/var/run/wireguard/{ifname}.sock")));
    }

    /// Starts `ip netns exec NS ARGV…` with stdout+stderr into `log` and
    /// waits until the log holds `ready` (the process must stay alive).
    pub fn spawn(&mut self, ns: &str, argv: &[String], log: &str, ready: &str) -> PathBuf {
        let path = self.dir.join("logs").join(log);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&path).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("start {argv:?} in {ns}: {e}"));
        self.children.push(child);
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(ready) {
                return path;
            }
            let c = self.children.last_mut().unwrap();
            let exited = c.try_wait().ok().flatten();
            assert!(
                exited.is_none() && t0.elapsed() < Duration::from_secs(30),
                "{argv:?} in {ns} did not print {ready:?} ({exited:?}); log {}:\n{text}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pids(ns: &str) -> Vec<String> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Every process in our namespaces is ours (sshd and its sessions,
        // wireguard-go, dnsmasq, simulators, the adb server): TERM first
        // (wireguard-go removes its socket), then KILL what is left.
        for sig in ["-TERM", "-KILL"] {
            for ns in &self.namespaces {
                for p in Self::pids(ns) {
                    let _ = Command::new("kill").args([sig, &p]).status();
                }
            }
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3)
                && self.namespaces.iter().any(|ns| !Self::pids(ns).is_empty())
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for s in &self.wg_sockets {
            let _ = std::fs::remove_file(s);
        }
        if std::env::var_os("MATADOR_KEEP_REHEARSAL").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Fails with a clear message when a program the rehearsal needs is missing.
pub fn require(programs: &[&str]) {
    assert!(
        matador_lab::build::is_root(),
        "the rehearsal needs root (namespaces, chroot, mounts); CI runs it as root"
    );
    for p in programs {
        assert!(
            matador::net::cmd::which(p).is_some(),
            "{p} missing: run scripts/install-deps.sh"
        );
    }
}

/// Path of a file in the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
