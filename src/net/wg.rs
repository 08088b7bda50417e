//! WireGuard tunnels between the lab router and remote nodes.
//!
//! The kernel module is used where present (detected by creating a probe
//! link); otherwise the userspace `wireguard-go` (a TUN device plus a UAPI
//! socket under `/var/run/wireguard/`, which is why interface names must be
//! unique machine-wide). Keys are generated per campaign with `wg genkey` /
//! `wg pubkey`, written to 0600 files and only ever passed to `wg` as file
//! paths: they never appear on a command line, in a log or in an error.

use super::NetError;
use super::cmd::{Cmd, require};
use super::state::{Resource, StateFile};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which WireGuard implementation runs the interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The Linux kernel module.
    Kernel,
    /// `wireguard-go` on a TUN device.
    Userspace,
}

/// Detects the implementation usable in namespace `ns`: tries to create a
/// kernel WireGuard link (named `probe`), else requires `wireguard-go`.
pub fn detect(ns: Option<&str>, probe: &str) -> Result<Backend, NetError> {
    require("wg")?;
    let mut add = Cmd::new("ip");
    let mut del = Cmd::new("ip");
    if let Some(n) = ns {
        add = add.args(["-n", n]);
        del = del.args(["-n", n]);
    }
    if add
        .args(["link", "add", probe, "type", "wireguard"])
        .succeeds()?
    {
        let _ = del.args(["link", "del", probe]).succeeds();
        return Ok(Backend::Kernel);
    }
    require("wireguard-go")?;
    Ok(Backend::Userspace)
}

/// A key pair: the private key in a 0600 file, the public key in memory.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// File holding the private key (mode 0600).
    pub private_path: PathBuf,
    /// Public key (base64).
    pub public: String,
}

/// Generates a key pair; the private key goes to `path` (created 0600, must
/// not exist).
pub fn genkey(path: &Path) -> Result<KeyPair, NetError> {
    let private = Cmd::new("wg").arg("genkey").run()?;
    let public = Cmd::new("wg").arg("pubkey").stdin(private.clone()).run()?;
    let io = |source| NetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(private.trim().as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    Ok(KeyPair {
        private_path: path.to_path_buf(),
        public: public.trim().to_string(),
    })
}

/// UAPI socket of a userspace interface.
pub fn socket_path(ifname: &str) -> PathBuf {
    PathBuf::from("/var/run/wireguard").join(format!("{ifname}.sock"))
}

/// Creates WireGuard interface `ifname` in `ns` (recorded in `state`).
/// Userspace interfaces run `wireguard-go -f` as a recorded process whose
/// output goes to `log`.
pub fn create_interface(
    state: &mut StateFile,
    ns: Option<&str>,
    ifname: &str,
    backend: Backend,
    log: &Path,
) -> Result<(), NetError> {
    super::netns::check_if_name(ifname)?;
    if ns.is_none() {
        state.add(Resource::Undo {
            argv: ["ip", "link", "del", ifname].map(String::from).to_vec(),
        })?;
    }
    match backend {
        Backend::Kernel => {
            let mut c = Cmd::new("ip");
            if let Some(n) = ns {
                c = c.args(["-n", n]);
            }
            c.args(["link", "add", ifname, "type", "wireguard"]).run()?;
        }
        Backend::Userspace => {
            let sock = socket_path(ifname);
            state.add(Resource::Path { path: sock.clone() })?;
            let cmd = Cmd::new("wireguard-go").args(["-f", ifname]).netns(ns);
            state.spawn(&cmd, &format!("wireguard-go {ifname}"), log)?;
            let t = Instant::now();
            while !sock.exists() {
                if t.elapsed() > Duration::from_secs(5) {
                    let detail = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(NetError::NotReady {
                        what: format!("wireguard-go {ifname}"),
                        secs: 5,
                        detail: detail.trim().chars().take(400).collect(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    Ok(())
}

/// The peer of one interface.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Peer public key.
    pub public: String,
    /// Where to send handshakes (the node's public address), if known.
    pub endpoint: Option<SocketAddr>,
    /// Addresses routed to / accepted from the peer (CIDRs).
    pub allowed_ips: Vec<String>,
    /// Keepalive interval (seconds), so NAT state and handshakes stay fresh.
    pub keepalive: Option<u16>,
}

/// Configures key, listen port and the single peer of an interface.
pub fn configure(
    ns: Option<&str>,
    ifname: &str,
    key: &KeyPair,
    listen_port: Option<u16>,
    peer: &Peer,
) -> Result<(), NetError> {
    let mut c = Cmd::new("wg")
        .netns(ns)
        .args(["set", ifname, "private-key"])
        .arg(key.private_path.to_string_lossy().into_owned());
    if let Some(p) = listen_port {
        c = c.args(["listen-port".to_string(), p.to_string()]);
    }
    c = c.args(["peer", &peer.public]);
    if let Some(e) = peer.endpoint {
        c = c.args(["endpoint".to_string(), e.to_string()]);
    }
    c = c.args(["allowed-ips".to_string(), peer.allowed_ips.join(",")]);
    if let Some(k) = peer.keepalive {
        c = c.args(["persistent-keepalive".to_string(), k.to_string()]);
    }
    c.run()?;
    Ok(())
}

/// Age of the latest handshake of `ifname`'s peers (`None`: never).
pub fn handshake_age(ns: Option<&str>, ifname: &str) -> Result<Option<Duration>, NetError> {
    let out = Cmd::new("wg")
        .netns(ns)
        .args(["show", ifname, "latest-handshakes"])
        .timeout(Duration::from_secs(5))
        .run()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let newest = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .filter(|&t| t > 0)
        .max();
    Ok(newest.map(|t| Duration::from_secs(now.saturating_sub(t))))
}
