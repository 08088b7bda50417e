//! A clean Debian node: the cached debootstrap root of
//! tests/reallab_node/build-root.sh (minbase + openssh-server; the packages
//! `matador node install` needs are in its apt cache, not installed) as
//! the lower layer of an overlay whose upper layer is on a **tmpfs** (a
//! container's / may itself be overlayfs, which cannot hold an overlay's
//! upper directory), running its own sshd in a chroot inside the node's
//! namespace. The mounts live in the mount namespace `ip netns exec`
//! creates, so they go away with the node's processes.

use super::{Guard, run};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Debian release of this host (the node runs this matador binary,
/// which links the host's glibc and libpcap).
fn suite() -> String {
    let s = run(Command::new("sh").args(["-c", ". /etc/os-release && echo \"$VERSION_CODENAME\""]));
    let s = s.trim().to_string();
    assert!(
        !s.is_empty(),
        "/etc/os-release names no VERSION_CODENAME (the node root must match this host's Debian release)"
    );
    s
}

/// The cached root (built once under a lock by build-root.sh, shared with
/// tests/reallab_node.rs; $MATADOR_NODE_CACHE or /var/cache/matador).
pub fn cached_root() -> PathBuf {
    let cache = std::env::var_os("MATADOR_NODE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/matador"));
    std::fs::create_dir_all(&cache).unwrap();
    let suite = suite();
    let t = Instant::now();
    run(Command::new("flock")
        .arg(cache.join(".lock"))
        .arg(super::repo("tests/reallab_node/build-root.sh"))
        .arg(&cache)
        .arg(&suite));
    eprintln!("node root ready in {:.1} s", t.elapsed().as_secs_f64());
    cache.join(format!("root-{suite}"))
}

/// sshd's configuration on the node: key authentication only (each
/// user's `~/.ssh/authorized_keys`), PAM on as Debian ships it (without
/// PAM, sshd refuses the agent user `node install` creates: its password
/// is locked).
fn sshd_config(addr: Ipv4Addr) -> String {
    format!(
        "ListenAddress {addr}\nPort 22\nHostKey /etc/ssh/matador_host_key\nPidFile none\n\
         StrictModes no\nUsePAM yes\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\nPrintMotd no\nLogLevel INFO\nClientAliveInterval 2\nClientAliveCountMax 3\n"
    )
}

/// Generates an ed25519 key pair at `path` (and `path`.pub).
pub fn keygen(path: &Path, comment: &str) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path));
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// Starts node `name`'s sshd in namespace `ns` (address `addr` on its
/// `eth0`, set up by the internet builder) over the cached `root`; the
/// lab team's public key `user_pub` is in root's authorized_keys (as the
/// provider sets up a VPS); its resolver
/// is the provider's (the ISP hop's dnsmasq), as DHCP would set it on a
/// VPS. Returns the node's public host key line.
pub fn start(
    g: &mut Guard,
    root: &Path,
    ns: &str,
    name: &str,
    addr: Ipv4Addr,
    user_pub: &Path,
) -> String {
    let dir = g.dir.join(format!("node-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let host_pub = keygen(&dir.join("host_key"), &format!("host-{name}"));
    std::fs::write(dir.join("sshd_config"), sshd_config(addr)).unwrap();
    let t = dir.join("tmpfs");
    std::fs::create_dir_all(&t).unwrap();
    let (u, m) = (t.join("upper"), t.join("merged"));
    let script = format!(
        "set -e\n\
         mount -t tmpfs -o mode=0755 tmpfs {t}\n\
         mkdir -p {u}/etc/ssh {u}/run/sshd {t}/work {m}\n\
         install -m 600 {d}/host_key {u}/etc/ssh/matador_host_key\n\
         install -d -m 700 {u}/root/.ssh\n\
         install -m 600 {k} {u}/root/.ssh/authorized_keys\n\
         install -m 644 {d}/sshd_config {u}/etc/ssh/sshd_config_matador\n\
         echo 'nameserver {dns}' > {u}/etc/resolv.conf\n\
         mount -t overlay overlay -o lowerdir={root},upperdir={u},workdir={t}/work {m}\n\
         mount -t proc proc {m}/proc\nmount --rbind /dev {m}/dev\nmount -t sysfs sysfs {m}/sys\n\
         mount -t tmpfs tmpfs {m}/tmp\n\
         exec chroot {m} /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config_matador\n",
        t = t.display(),
        u = u.display(),
        m = m.display(),
        d = dir.display(),
        k = user_pub.display(),
        root = root.display(),
        dns = super::internet::UPSTREAM_DNS,
    );
    let argv = vec!["sh".to_string(), "-c".into(), script];
    g.spawn(ns, &argv, &format!("sshd-{name}.log"), "Server listening");
    host_pub
}

/// What docs/real-lab.md step 4 asks of the team after `node install`:
/// the lab key in the agent user's `~/.ssh/authorized_keys`, over SSH as
/// root from the lab machine (`lab`: the team's folder with `keys/`).
pub fn authorize_agent_user(router: &str, lab: &Path, addr: Ipv4Addr, user: &str) {
    let key = std::fs::read_to_string(lab.join("keys/lab.pub")).unwrap();
    let script = format!(
        "set -e; h=$(getent passwd {user} | cut -d: -f6); mkdir -p $h/.ssh; \
         printf '%s\\n' '{}' > $h/.ssh/authorized_keys; chown -R {user}: $h/.ssh; \
         chmod 700 $h/.ssh; chmod 600 $h/.ssh/authorized_keys",
        key.trim()
    );
    run(super::in_ns(router, "ssh")
        .current_dir(lab)
        .args(["-F", "none", "-T", "-i", "keys/lab", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UserKnownHostsFile=keys/known_hosts",
        ])
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-l", "root"])
        .arg(addr.to_string())
        .arg(script));
}
