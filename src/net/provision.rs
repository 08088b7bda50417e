//! `matador node install|check|upgrade`: provisions a remote node over the
//! real OpenSSH client (key auth, host-key checking on, [`SshTarget`]).
//!
//! Install, in order, each step idempotent and reported only when it
//! changed something: packages (`wireguard-tools`, `wireguard-go`,
//! `iptables`, `libcap2-bin`, libpcap; apt on Debian/Ubuntu), the matador
//! binary (copied only when its SHA-256 differs), the agent user's capture
//! and raw-socket permission (file capabilities when it is not root), and
//! with a tunnel description (`nodes/<node>.json` from `matador router
//! config`): the WireGuard config (0600), interface, address, route to the
//! WLAN, forwarding, NAT of the WLAN out of the uplink and the DNAT of the
//! phones' resolver to the node's upstream resolver.
//!
//! Check gathers facts with one shell probe and, when the binary runs,
//! from `matador agent` itself (health: disk; clock offset measured over
//! the agent protocol), then judges them with pure functions
//! ([`judge_probe`], [`judge_agent`]) so conditions that cannot be made on a
//! test machine (a wrong wall clock) are tested on recorded answers.

use super::NetError;
use super::agent::client::{Agent, ClockOffset, NodeConfig};
use super::agent::protocol::Health;
use super::cmd::Cmd;
use super::router::check::{CheckResult, Status};
use super::router::generate::NodeTunnel;
use super::ssh::{SshTarget, shell_quote};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the binary is installed on nodes.
pub const REMOTE_BIN: &str = "/usr/local/bin/matador";

/// Below this many free bytes a node fails the disk check.
pub const MIN_DISK: u64 = 1 << 30;

/// A clock further off than this (beyond the measurement uncertainty)
/// fails: timestamp correlation between phone, router and node needs it.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_millis(500);

/// Errors of node provisioning, naming the node.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// SSH itself failed (host key, auth, unreachable).
    #[error("node {node}: ssh failed ({kind:?}): {stderr}")]
    Ssh {
        /// Node.
        node: String,
        /// Classified failure.
        kind: super::ssh::SshFailure,
        /// ssh's standard error.
        stderr: String,
    },
    /// A provisioning step failed on the node.
    #[error("node {node}: {step}: {message}")]
    Step {
        /// Node.
        node: String,
        /// Step.
        step: String,
        /// What went wrong (with a fix).
        message: String,
    },
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A node to provision.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// SSH access.
    pub ssh: SshTarget,
    /// The user `matador agent` runs as (needs capture and raw-socket permission).
    pub agent_user: String,
    /// Local matador binary to install.
    pub binary: PathBuf,
    /// Tunnel to configure (`nodes/<node>.json` of `matador router config`).
    pub tunnel: Option<NodeTunnel>,
}

/// What install/upgrade did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Changes {
    /// One line per change (empty: nothing changed).
    pub changed: Vec<String>,
    /// Seconds taken.
    pub secs: f64,
}

/// Parses `user@host[:port]`.
pub fn parse_node(s: &str) -> Option<(String, String, u16)> {
    let (user, rest) = s.split_once('@')?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            (h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)
        }
        _ => (rest.to_string(), 22),
    };
    (!user.is_empty() && !host.is_empty()).then(|| (user.to_string(), host, port))
}

fn step_err(node: &str, step: &str, message: impl Into<String>) -> ProvisionError {
    ProvisionError::Step {
        node: node.into(),
        step: step.into(),
        message: message.into(),
    }
}

/// Remote command that runs a script arriving on stdin: read whole into a
/// 0600 temp file first, so no command of the script can swallow the rest
/// of it from stdin, and secrets in it never appear on a command line.
const RUN_STDIN_SCRIPT: &str =
    "f=$(mktemp) && cat > \"$f\" && sh \"$f\" </dev/null; rc=$?; rm -f \"$f\"; exit $rc";

/// Runs `remote` (a shell command line) on the node with `stdin`; returns
/// (exit success, stdout, stderr). SSH failures (exit 255 with a
/// recognisable message) are errors.
fn ssh_run(
    t: &SshTarget,
    remote: &str,
    stdin: &[u8],
    timeout: Duration,
) -> Result<(bool, String, String), ProvisionError> {
    let (prog, args) = t.command(remote);
    let run = Cmd::new(prog)
        .args(args)
        .stdin(stdin)
        .timeout(timeout)
        .output_status();
    let (status, out, err) = run.map_err(|e| match e {
        NetError::Timeout { secs, .. } => step_err(
            &t.node,
            "ssh",
            format!("`{remote}` timed out after {secs} s"),
        ),
        other => step_err(&t.node, "ssh", other.to_string()),
    })?;
    if status.code() == Some(255) {
        let kind = super::ssh::classify_failure(&err);
        if kind != super::ssh::SshFailure::Other || err.contains("ssh:") {
            return Err(ProvisionError::Ssh {
                node: t.node.clone(),
                kind,
                stderr: err.trim().to_string(),
            });
        }
    }
    Ok((status.success(), out, err))
}

/// SHA-256 of a local file (hex).
pub fn sha256_file(path: &Path) -> Result<String, ProvisionError> {
    let data = std::fs::read(path).map_err(|source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let d = ring::digest::digest(&ring::digest::SHA256, &data);
    Ok(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Shell prelude of every remote script: `sudo -n` when not root.
const PRELUDE: &str = r#"set -u
SUDO=; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
changed() { echo "CHANGED $*"; }
fail() { echo "FAIL $*"; exit 1; }
"#;

/// The facts one probe gathers (`key=value` lines).
pub fn probe_script(agent_user: &str, tunnel: Option<&NodeTunnel>) -> String {
    let mut s = String::from(PRELUDE);
    s += &format!(
        "B={}\nAU={}\n",
        shell_quote(REMOTE_BIN),
        shell_quote(agent_user)
    );
    s += r#"echo "uid=$(id -u)"
[ -r /etc/os-release ] && . /etc/os-release
echo "os=${ID:-unknown} ${ID_LIKE:-}"
echo "codename=${VERSION_CODENAME:-}"
echo "arch=$(uname -m)"
for p in wg wireguard-go iptables setcap getcap ip; do
  if command -v $p >/dev/null 2>&1; then echo "have.$p=1"; else echo "have.$p=0"; fi
done
if ldconfig -p 2>/dev/null | grep -q 'libpcap\.so\.0\.8'; then echo "have.libpcap=1"; else echo "have.libpcap=0"; fi
if [ -f "$B" ]; then
  echo "bin.sha=$(sha256sum "$B" | cut -d' ' -f1)"
  echo "bin.version=$("$B" --version 2>&1 | head -n 1)"
  command -v getcap >/dev/null 2>&1 && echo "bin.caps=$(getcap "$B" 2>/dev/null | cut -d' ' -f2-)"
fi
echo "agent.uid=$(id -u "$AU" 2>/dev/null || echo none)"
echo "disk.free_kb=$(df -Pk /var/tmp 2>/dev/null | awk 'NR==2 {print $4}')"
echo "forward=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)"
if command -v timedatectl >/dev/null 2>&1; then echo "ntp.sync=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)"; fi
if command -v chronyc >/dev/null 2>&1; then echo "ntp.chrony=$(chronyc -n tracking 2>/dev/null | grep 'System time' | tr -s ' ')"; fi
"#;
    if let Some(t) = tunnel {
        s += &format!(
            "IF={}\nADDR={}\n",
            shell_quote(&t.tunnel_if),
            shell_quote(&t.address)
        );
        s += r#"if ip link show "$IF" >/dev/null 2>&1; then echo "tun.link=1"; else echo "tun.link=0"; fi
if ip -4 addr show dev "$IF" 2>/dev/null | grep -q "inet $ADDR "; then echo "tun.addr=1"; else echo "tun.addr=0"; fi
echo "tun.hs=$($SUDO wg show "$IF" latest-handshakes 2>/dev/null | awk '{print $2}' | sort -n | tail -n 1)"
"#;
        for (i, src) in t.nat_sources.iter().enumerate() {
            s += &format!(
                "if $SUDO iptables -w -t nat -C POSTROUTING -s {} -o {} -j MASQUERADE 2>/dev/null; then echo nat.{i}=1; else echo nat.{i}=0; fi\n",
                shell_quote(src),
                shell_quote(&t.uplink)
            );
        }
        s += &format!(
            "if $SUDO iptables -w -t nat -S PREROUTING 2>/dev/null | grep -q -- '-d {}/32 .*--dport 53 .*DNAT'; then echo dnat=1; else echo dnat=0; fi\n",
            t.resolver
        );
    }
    s
}

/// Parses `key=value` lines.
pub fn parse_facts(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn res(name: &str, status: Status, detail: String, fix: Option<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        status,
        detail,
        fix,
    }
}

/// The probe's facts by key (`""` when absent).
#[derive(Clone, Copy)]
struct Facts<'a>(&'a BTreeMap<String, String>);

impl<'a> Facts<'a> {
    fn get(&self, k: &str) -> &'a str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
}

/// The fix for anything `matador node install` sets up.
fn install_fix() -> Option<String> {
    Some("`matador node install --node USER@HOST`".to_string())
}

/// Judges the probe's facts: packages, binary, permissions, disk,
/// forwarding, tunnel and NAT. `local_sha` is the local binary's.
pub fn judge_probe(
    f: &BTreeMap<String, String>,
    local_sha: &str,
    tunnel: Option<&NodeTunnel>,
) -> Vec<CheckResult> {
    let f = Facts(f);
    let mut v = vec![judge_arch(f), judge_packages(f), judge_binary(f, local_sha)];
    v.extend(judge_permissions(f));
    v.push(judge_disk(f));
    v.push(judge_ntp(f));
    if let Some(t) = tunnel {
        v.extend([
            judge_tunnel(f, t),
            judge_forwarding(f),
            judge_nat(f, t),
            judge_dnat(f, t),
        ]);
    }
    v
}

/// The node runs the architecture this matador was built for.
fn judge_arch(f: Facts) -> CheckResult {
    let arch = f.get("arch");
    if arch == std::env::consts::ARCH {
        res("arch", Status::Ok, format!("{} {arch}", f.get("os")), None)
    } else {
        res(
            "arch",
            Status::Fail,
            format!(
                "node is {arch:?}, this matador is {}",
                std::env::consts::ARCH
            ),
            Some(
                "install with --binary pointing to a matador built for the node's architecture"
                    .into(),
            ),
        )
    }
}

/// WireGuard, wireguard-go, iptables and libpcap are installed.
fn judge_packages(f: Facts) -> CheckResult {
    let missing: Vec<&str> = ["wg", "wireguard-go", "iptables", "libpcap"]
        .into_iter()
        .filter(|p| f.get(&format!("have.{p}")) != "1")
        .collect();
    if missing.is_empty() {
        res(
            "packages",
            Status::Ok,
            "wg, wireguard-go, iptables, libpcap".into(),
            None,
        )
    } else {
        res(
            "packages",
            Status::Fail,
            format!("missing: {}", missing.join(", ")),
            install_fix(),
        )
    }
}

/// The node's matador binary exists, runs, and is this one.
fn judge_binary(f: Facts, local_sha: &str) -> CheckResult {
    match (f.get("bin.sha"), f.get("bin.version")) {
        ("", _) => res(
            "binary",
            Status::Fail,
            format!("{REMOTE_BIN} missing"),
            install_fix(),
        ),
        (sha, ver) if !ver.starts_with("matador") => res(
            "binary",
            Status::Fail,
            format!(
                "{REMOTE_BIN} does not run: {ver:?} (sha256 {})",
                &sha[..sha.len().min(12)]
            ),
            install_fix(),
        ),
        (sha, ver) if sha != local_sha => res(
            "binary",
            Status::Warn,
            format!(
                "{ver} differs from this matador (sha256 {} vs {})",
                &sha[..sha.len().min(12)],
                &local_sha[..local_sha.len().min(12)]
            ),
            Some("`matador node upgrade --node USER@HOST`".into()),
        ),
        (_, ver) => res("binary", Status::Ok, format!("{ver}, same as here"), None),
    }
}

/// The agent user may capture and use raw sockets (root, or the binary's
/// file capabilities): one result each.
fn judge_permissions(f: Facts) -> [CheckResult; 2] {
    let agent_uid = f.get("agent.uid");
    let caps = f.get("bin.caps");
    let has = |c: &str| {
        caps.contains(c) && (caps.contains("=ep") || caps.contains("+ep") || caps.contains("=eip"))
    };
    [
        ("capture permission", "cap_net_admin", "libpcap capture"),
        (
            "raw-socket permission",
            "cap_net_raw",
            "traceroutes and capture",
        ),
    ]
    .map(|(name, cap, why)| {
        if agent_uid == "none" || agent_uid.is_empty() {
            res(
                name,
                Status::Fail,
                "agent user does not exist".into(),
                install_fix(),
            )
        } else if agent_uid == "0" {
            res(name, Status::Ok, "agent runs as root".into(), None)
        } else if has(cap) && has("cap_net_raw") {
            res(name, Status::Ok, format!("{REMOTE_BIN}: {caps}"), None)
        } else {
            res(
                name,
                Status::Fail,
                format!("agent user (uid {agent_uid}) lacks {cap} for {why} ({REMOTE_BIN} caps: {:?})", caps),
                Some(format!("`setcap cap_net_admin,cap_net_raw+ep {REMOTE_BIN}` on the node (or `matador node install`)")),
            )
        }
    })
}

/// At least [`MIN_DISK`] free in /var/tmp (where captures go).
fn judge_disk(f: Facts) -> CheckResult {
    match f.get("disk.free_kb").parse::<u64>() {
        Ok(kb) if kb * 1024 >= MIN_DISK => res(
            "disk",
            Status::Ok,
            format!("{:.1} GiB free in /var/tmp", kb as f64 / 1048576.0),
            None,
        ),
        Ok(kb) => res(
            "disk",
            Status::Fail,
            format!(
                "only {:.0} MiB free in /var/tmp (captures need ≥ 1 GiB)",
                kb as f64 / 1024.0
            ),
            Some("free space or point the agent dir to a larger file system".into()),
        ),
        Err(_) => res(
            "disk",
            Status::Warn,
            "free space unknown (df failed)".into(),
            None,
        ),
    }
}

/// The clock is disciplined (timedatectl or chrony).
fn judge_ntp(f: Facts) -> CheckResult {
    match f.get("ntp.sync") {
        "yes" => res(
            "ntp",
            Status::Ok,
            "NTP synchronised (timedatectl)".into(),
            None,
        ),
        "no" => res(
            "ntp",
            Status::Warn,
            "timedatectl: NTP not synchronised".into(),
            Some("`apt-get install chrony` (or `timedatectl set-ntp true`)".into()),
        ),
        _ if !f.get("ntp.chrony").is_empty() => {
            res("ntp", Status::Ok, f.get("ntp.chrony").to_string(), None)
        }
        _ => res(
            "ntp",
            Status::Warn,
            "no timedatectl or chrony: clock discipline unknown (the offset is measured below)"
                .into(),
            Some("`apt-get install chrony`".into()),
        ),
    }
}

/// The tunnel interface exists with its address.
fn judge_tunnel(f: Facts, t: &NodeTunnel) -> CheckResult {
    let ok = |k: &str| f.get(k) == "1";
    if ok("tun.link") && ok("tun.addr") {
        let hs = f.get("tun.hs").parse::<u64>().unwrap_or(0);
        res(
            "tunnel",
            Status::Ok,
            format!(
                "{} {}{}",
                t.tunnel_if,
                t.address,
                if hs > 0 {
                    ", handshake seen"
                } else {
                    ", no handshake yet (router not up?)"
                }
            ),
            None,
        )
    } else {
        res(
            "tunnel",
            Status::Fail,
            format!(
                "{} {}",
                t.tunnel_if,
                if ok("tun.link") {
                    format!("lacks address {}", t.address)
                } else {
                    "does not exist".into()
                }
            ),
            Some("`matador node install --tunnel nodes/<node>.json`".into()),
        )
    }
}

/// IPv4 forwarding is on (the node forwards the phones' traffic).
fn judge_forwarding(f: Facts) -> CheckResult {
    if f.get("forward") == "1" {
        res(
            "forwarding",
            Status::Ok,
            "net.ipv4.ip_forward = 1".into(),
            None,
        )
    } else {
        res(
            "forwarding",
            Status::Fail,
            "net.ipv4.ip_forward is off: the node drops the phones' traffic".into(),
            install_fix(),
        )
    }
}

/// Every NAT source is masqueraded out of the uplink.
fn judge_nat(f: Facts, t: &NodeTunnel) -> CheckResult {
    let missing: Vec<&String> = t
        .nat_sources
        .iter()
        .enumerate()
        .filter(|(i, _)| f.get(&format!("nat.{i}")) != "1")
        .map(|(_, s)| s)
        .collect();
    if missing.is_empty() {
        res(
            "nat",
            Status::Ok,
            format!(
                "MASQUERADE {} out of {}",
                t.nat_sources.join(", "),
                t.uplink
            ),
            None,
        )
    } else {
        res(
            "nat",
            Status::Fail,
            format!(
                "no MASQUERADE for {missing:?} out of {}: replies cannot come back",
                t.uplink
            ),
            Some(format!(
                "`iptables -t nat -A POSTROUTING -s {} -o {} -j MASQUERADE` on the node (or `matador node install --tunnel …`)",
                missing[0], t.uplink
            )),
        )
    }
}

/// The phones' resolver is DNATed to the node's upstream.
fn judge_dnat(f: Facts, t: &NodeTunnel) -> CheckResult {
    if f.get("dnat") == "1" {
        res(
            "dns",
            Status::Ok,
            format!("resolver {} DNATed to the node's upstream", t.resolver),
            None,
        )
    } else {
        res(
            "dns",
            Status::Fail,
            format!(
                "the phones' resolver {} is not DNATed on the node: their DNS goes unanswered",
                t.resolver
            ),
            Some("`matador node install --tunnel …`".into()),
        )
    }
}

/// Judges the agent's answers: its disk figures and the measured clock offset.
pub fn judge_agent(h: &Health, c: &ClockOffset) -> Vec<CheckResult> {
    let mut v = Vec::new();
    let off = c.offset_ns.unsigned_abs();
    let beyond = off.saturating_sub(c.uncertainty_ns);
    let secs = c.offset_ns as f64 / 1e9;
    if beyond > MAX_CLOCK_OFFSET.as_nanos() as u64 {
        v.push(res(
            "clock",
            Status::Fail,
            format!(
                "node {} clock is off by {secs:+.3} s (± {:.3} s): timestamps of node captures would not line up",
                h.hostname,
                c.uncertainty_ns as f64 / 1e9
            ),
            Some("on the node: `apt-get install chrony` and wait for `chronyc tracking` to settle (or `timedatectl set-ntp true`); check this machine's clock too".into()),
        ));
    } else {
        v.push(res(
            "clock",
            Status::Ok,
            format!(
                "offset {:+.1} ms ± {:.1} ms",
                c.offset_ns as f64 / 1e6,
                c.uncertainty_ns as f64 / 1e6
            ),
            None,
        ));
    }
    if h.disk_free_bytes < MIN_DISK {
        v.push(res(
            "agent disk",
            Status::Fail,
            format!("{} MiB free in {}", h.disk_free_bytes >> 20, h.dir),
            Some("free space on the node".into()),
        ));
    } else {
        v.push(res(
            "agent disk",
            Status::Ok,
            format!(
                "{:.1} GiB free in {}",
                h.disk_free_bytes as f64 / 1073741824.0,
                h.dir
            ),
            None,
        ));
    }
    v
}

fn packages_script() -> String {
    let mut s = String::from(PRELUDE);
    s += r#"[ -r /etc/os-release ] && . /etc/os-release
need=
command -v wg >/dev/null 2>&1 || need="$need wireguard-tools"
command -v wireguard-go >/dev/null 2>&1 || need="$need wireguard-go"
command -v iptables >/dev/null 2>&1 || need="$need iptables"
command -v setcap >/dev/null 2>&1 || need="$need libcap2-bin"
if ! ldconfig -p 2>/dev/null | grep -q 'libpcap\.so\.0\.8'; then
  if apt-cache show libpcap0.8t64 >/dev/null 2>&1; then need="$need libpcap0.8t64"; else need="$need libpcap0.8"; fi
fi
[ -z "$need" ] && exit 0
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) ;;
  *) fail "packages:$need missing and ${ID:-this system} is not Debian/Ubuntu: install them by hand";;
esac
log=/tmp/matador-apt.$$
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >"$log" 2>&1; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >>"$log" 2>&1 || fail "apt-get install$need: $(tail -n 3 "$log" | tr '\n' ' ')"
fi
rm -f "$log"
changed "packages:$need"
"#;
    s
}

fn config_script(agent_user: &str, tunnel: Option<&NodeTunnel>) -> String {
    let mut s = String::from(PRELUDE);
    s += &format!(
        "B={}\nAU={}\n",
        shell_quote(REMOTE_BIN),
        shell_quote(agent_user)
    );
    s += r#"if ! id -u "$AU" >/dev/null 2>&1; then
  $SUDO useradd --system --create-home --shell /bin/sh "$AU" || fail "cannot create agent user $AU"
  changed "agent user $AU"
fi
if [ "$(id -u "$AU")" != 0 ]; then
  caps=$(getcap "$B" 2>/dev/null | cut -d' ' -f2-)
  case "$caps" in
    *cap_net_admin,cap_net_raw=ep*) ;;
    *) $SUDO setcap cap_net_admin,cap_net_raw+ep "$B" || fail "setcap on $B (file system without xattrs?)"
       changed "capture + raw-socket permission for $AU (setcap cap_net_admin,cap_net_raw+ep $B)";;
  esac
fi
"#;
    let Some(t) = tunnel else { return s };
    s += &format!(
        "IF={}\nADDR={}\nUP={}\nRES={}\nUPSTREAM={}\n",
        shell_quote(&t.tunnel_if),
        shell_quote(&t.address),
        shell_quote(&t.uplink),
        t.resolver,
        t.dns_upstream.map(|a| a.to_string()).unwrap_or_default()
    );
    // The conf (with the private key) travels inside this script on ssh's
    // stdin: never on a command line.
    s += "umask 077\n$SUDO mkdir -p /etc/matador\nconf=/etc/matador/$IF.conf\ntmp=$(mktemp)\ncat > \"$tmp\" <<'MATADOR_WG_EOF'\n";
    s += &t.wg_conf;
    s += "MATADOR_WG_EOF\n";
    s += r#"reload=0
if ! $SUDO cmp -s "$tmp" "$conf"; then
  $SUDO cp "$tmp" "$conf" && $SUDO chmod 600 "$conf" || fail "cannot write $conf"
  changed "tunnel config $conf"; reload=1
fi
rm -f "$tmp"
if ! ip link show "$IF" >/dev/null 2>&1; then
  $SUDO ip link add "$IF" type wireguard 2>/dev/null || $SUDO wireguard-go "$IF" >/dev/null 2>&1 || fail "cannot create $IF: no kernel WireGuard and wireguard-go failed (is /dev/net/tun there?)"
  changed "tunnel interface $IF"; reload=1
fi
if [ $reload = 1 ]; then $SUDO wg setconf "$IF" "$conf" || fail "wg setconf $IF $conf"; fi
ip -4 addr show dev "$IF" | grep -q "inet $ADDR " || { $SUDO ip addr replace "$ADDR" dev "$IF" || fail "address $ADDR"; changed "address $ADDR on $IF"; }
ip link show "$IF" | grep -q ',UP[,>]' || { $SUDO ip link set "$IF" up || fail "link up $IF"; changed "$IF up"; }
"#;
    for r in &t.routes {
        s += &format!(
            "ip -4 route show {r} dev \"$IF\" | grep -q . || {{ $SUDO ip route replace {r} dev \"$IF\" || fail \"route {r}\"; changed \"route {r} dev $IF\"; }}\n",
            r = shell_quote(r)
        );
    }
    s += r#"if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
  $SUDO sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' || fail "cannot enable forwarding"
  changed "net.ipv4.ip_forward = 1"
fi
if [ -d /etc/sysctl.d ] && ! grep -qx 'net.ipv4.ip_forward = 1' /etc/sysctl.d/99-matador.conf 2>/dev/null; then
  echo 'net.ipv4.ip_forward = 1' | $SUDO tee /etc/sysctl.d/99-matador.conf >/dev/null
  changed "/etc/sysctl.d/99-matador.conf"
fi
"#;
    for src in &t.nat_sources {
        s += &format!(
            "$SUDO iptables -w -t nat -C POSTROUTING -s {src} -o \"$UP\" -j MASQUERADE 2>/dev/null || {{ $SUDO iptables -w -t nat -A POSTROUTING -s {src} -o \"$UP\" -j MASQUERADE || fail \"NAT {src}\"; changed \"NAT {src} out of $UP\"; }}\n",
            src = shell_quote(src)
        );
    }
    s += r#"if [ -z "$UPSTREAM" ]; then UPSTREAM=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf 2>/dev/null); fi
case "$UPSTREAM" in
  ""|127.*|*:*) fail "DNS: no usable IPv4 upstream resolver in /etc/resolv.conf (${UPSTREAM:-none}); set dns_upstream for this node in the lab description";;
esac
for proto in udp tcp; do
  if ! $SUDO iptables -w -t nat -C PREROUTING -i "$IF" -d "$RES" -p $proto --dport 53 -j DNAT --to-destination "$UPSTREAM" 2>/dev/null; then
    $SUDO iptables -w -t nat -A PREROUTING -i "$IF" -d "$RES" -p $proto --dport 53 -j DNAT --to-destination "$UPSTREAM" || fail "DNAT $RES"
    changed "DNS $RES/$proto -> $UPSTREAM"
  fi
done
"#;
    s
}

fn changes_of(out: &str) -> (Vec<String>, Option<String>) {
    let mut ch = Vec::new();
    let mut fail = None;
    for l in out.lines() {
        if let Some(c) = l.strip_prefix("CHANGED ") {
            ch.push(c.to_string());
        } else if let Some(f) = l.strip_prefix("FAIL ") {
            fail = Some(f.to_string());
        }
    }
    (ch, fail)
}

fn run_script(
    spec: &NodeSpec,
    step: &str,
    script: &str,
    timeout: Duration,
    changes: &mut Vec<String>,
) -> Result<(), ProvisionError> {
    let (ok, out, err) = ssh_run(&spec.ssh, RUN_STDIN_SCRIPT, script.as_bytes(), timeout)?;
    let (ch, fail) = changes_of(&out);
    changes.extend(ch);
    if let Some(f) = fail {
        return Err(step_err(&spec.ssh.node, step, f));
    }
    if !ok {
        return Err(step_err(&spec.ssh.node, step, err.trim().to_string()));
    }
    Ok(())
}

/// Copies the binary when its SHA-256 differs from the node's.
fn upload(spec: &NodeSpec, changes: &mut Vec<String>) -> Result<(), ProvisionError> {
    let local = sha256_file(&spec.binary)?;
    let (_, out, _) = ssh_run(
        &spec.ssh,
        &format!("sha256sum {} 2>/dev/null", shell_quote(REMOTE_BIN)),
        b"",
        Duration::from_secs(30),
    )?;
    let remote = out.split_whitespace().next().unwrap_or("").to_string();
    if remote == local {
        return Ok(());
    }
    let data = std::fs::read(&spec.binary).map_err(|source| ProvisionError::Io {
        path: spec.binary.clone(),
        source,
    })?;
    let tmp = format!("{REMOTE_BIN}.new");
    let remote_cmd = format!(
        "set -e; S=; [ \"$(id -u)\" = 0 ] || S='sudo -n'; $S mkdir -p /usr/local/bin; $S sh -c 'cat > {t}'; [ \"$($S sha256sum {t} | cut -d\" \" -f1)\" = {local} ]; $S chmod 0755 {t}; $S mv {t} {b}",
        t = shell_quote(&tmp),
        b = shell_quote(REMOTE_BIN)
    );
    let (ok, _, err) = ssh_run(&spec.ssh, &remote_cmd, &data, Duration::from_secs(600))?;
    if !ok {
        return Err(step_err(
            &spec.ssh.node,
            "binary",
            format!("upload failed: {}", err.trim()),
        ));
    }
    changes.push(format!(
        "binary {REMOTE_BIN} ({}, sha256 {} → {})",
        human(data.len() as u64),
        if remote.is_empty() {
            "none".into()
        } else {
            remote[..12.min(remote.len())].to_string()
        },
        &local[..12]
    ));
    Ok(())
}

fn human(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

fn verify_binary(spec: &NodeSpec) -> Result<String, ProvisionError> {
    let (ok, out, err) = ssh_run(
        &spec.ssh,
        &format!("{} --version", shell_quote(REMOTE_BIN)),
        b"",
        Duration::from_secs(30),
    )?;
    if !ok || !out.starts_with("matador") {
        return Err(step_err(
            &spec.ssh.node,
            "binary",
            format!(
                "{REMOTE_BIN} does not run on the node: {} (missing library? `ldd {REMOTE_BIN}`)",
                (out + &err).trim()
            ),
        ));
    }
    Ok(out.trim().to_string())
}

/// `matador node install`: packages, binary, permissions, tunnel; returns
/// what changed (nothing on a second run).
pub fn install(spec: &NodeSpec) -> Result<Changes, ProvisionError> {
    let t = Instant::now();
    let mut ch = Vec::new();
    run_script(
        spec,
        "packages",
        &packages_script(),
        Duration::from_secs(900),
        &mut ch,
    )?;
    upload(spec, &mut ch)?;
    verify_binary(spec)?;
    run_script(
        spec,
        "configure",
        &config_script(&spec.agent_user, spec.tunnel.as_ref()),
        Duration::from_secs(120),
        &mut ch,
    )?;
    Ok(Changes {
        changed: ch,
        secs: t.elapsed().as_secs_f64(),
    })
}

/// `matador node upgrade`: only the binary (and its capabilities, which a
/// new file loses).
pub fn upgrade(spec: &NodeSpec) -> Result<Changes, ProvisionError> {
    let t = Instant::now();
    let mut ch = Vec::new();
    upload(spec, &mut ch)?;
    verify_binary(spec)?;
    run_script(
        spec,
        "configure",
        &config_script(&spec.agent_user, None),
        Duration::from_secs(60),
        &mut ch,
    )?;
    Ok(Changes {
        changed: ch,
        secs: t.elapsed().as_secs_f64(),
    })
}

/// `matador node check`: every check with its fix.
pub async fn check(spec: &NodeSpec) -> Result<Vec<CheckResult>, ProvisionError> {
    let local = sha256_file(&spec.binary)?;
    let spec2 = spec.clone();
    let script = probe_script(&spec.agent_user, spec.tunnel.as_ref());
    let (_, out, err) = tokio::task::spawn_blocking(move || {
        ssh_run(
            &spec2.ssh,
            RUN_STDIN_SCRIPT,
            script.as_bytes(),
            Duration::from_secs(60),
        )
    })
    .await
    .map_err(|e| step_err(&spec.ssh.node, "probe", e.to_string()))??;
    let facts = parse_facts(&out);
    if !facts.contains_key("uid") {
        return Err(step_err(
            &spec.ssh.node,
            "probe",
            format!("no answer from the probe: {}", err.trim()),
        ));
    }
    let mut v = judge_probe(&facts, &local, spec.tunnel.as_ref());
    if facts
        .get("bin.version")
        .is_some_and(|x| x.starts_with("matador"))
    {
        let mut cfg = NodeConfig::new(spec.ssh.clone(), "/var/tmp/matador-agent");
        cfg.agent_program = REMOTE_BIN.into();
        cfg.request_timeout = Duration::from_secs(10);
        match Agent::connect(&cfg).await {
            Ok(agent) => {
                let h = agent.health().await;
                let c = agent.clock_offset(10).await;
                let _ = agent.shutdown().await;
                match (h, c) {
                    (Ok(h), Ok(c)) => v.extend(judge_agent(&h, &c)),
                    (Err(e), _) | (_, Err(e)) => {
                        v.push(res("agent", Status::Fail, e.to_string(), None))
                    }
                }
            }
            Err(e) => v.push(res(
                "agent",
                Status::Fail,
                e.to_string(),
                Some("`matador node install` (the agent must start over SSH)".into()),
            )),
        }
    }
    Ok(v)
}

/// Reads a node tunnel description (`nodes/<node>.json`).
pub fn read_tunnel(path: &Path) -> Result<NodeTunnel, ProvisionError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ProvisionError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses() {
        assert_eq!(
            parse_node("root@de-1.example.org"),
            Some(("root".into(), "de-1.example.org".into(), 22))
        );
        assert_eq!(
            parse_node("m@198.18.1.2:2222"),
            Some(("m".into(), "198.18.1.2".into(), 2222))
        );
        assert_eq!(parse_node("nouser"), None);
    }

    /// A recorded agent answer from a node whose wall clock was 93 s fast.
    #[test]
    fn wrong_wall_clock_is_caught() {
        let h: Health = serde_json::from_str(
            r#"{"hostname":"de-1","pid":4242,"uptime_secs":86400.5,"agent_uptime_secs":0.2,"load":[0.1,0.2,0.3],"dir":"/var/tmp/matador-agent","disk_free_bytes":53687091200,"disk_total_bytes":107374182400,"clock":"1795430493.123456789","captures_running":0}"#,
        )
        .unwrap();
        let c: ClockOffset = serde_json::from_str(
            r#"{"offset_ns":93012345678,"uncertainty_ns":41000000,"rounds":10}"#,
        )
        .unwrap();
        let v = judge_agent(&h, &c);
        let clock = v.iter().find(|r| r.name == "clock").unwrap();
        assert_eq!(clock.status, Status::Fail, "{clock:?}");
        assert!(clock.detail.contains("+93.012 s"), "{}", clock.detail);
        assert!(clock.fix.as_deref().unwrap().contains("chrony"));
        let good: ClockOffset =
            serde_json::from_str(r#"{"offset_ns":-3000,"uncertainty_ns":40000,"rounds":10}"#)
                .unwrap();
        assert_eq!(judge_agent(&h, &good)[0].status, Status::Ok);
        // Offset within the uncertainty is not blamed on the node.
        let fuzzy = ClockOffset {
            offset_ns: 700_000_000,
            uncertainty_ns: 400_000_000,
            rounds: 3,
        };
        assert_eq!(judge_agent(&h, &fuzzy)[0].status, Status::Ok);
        let small = Health {
            disk_free_bytes: 10 << 20,
            ..h
        };
        assert_eq!(judge_agent(&small, &good)[1].status, Status::Fail);
    }

    #[test]
    fn probe_facts_judged() {
        let f = parse_facts(
            "uid=0\nos=debian \narch=x86_64\nhave.wg=1\nhave.wireguard-go=1\nhave.iptables=0\nhave.libpcap=1\nagent.uid=1001\nbin.sha=abc\nbin.version=matador 0.1.0\nbin.caps=\ndisk.free_kb=100\n",
        );
        let v = judge_probe(&f, "abc", None);
        let by = |n: &str| v.iter().find(|r| r.name == n).unwrap().status;
        assert_eq!(by("packages"), Status::Fail);
        assert_eq!(by("binary"), Status::Ok);
        assert_eq!(by("capture permission"), Status::Fail);
        assert_eq!(by("raw-socket permission"), Status::Fail);
        assert_eq!(by("disk"), Status::Fail);
    }

    fn facts(text: &str) -> BTreeMap<String, String> {
        parse_facts(text)
    }

    fn tunnel() -> NodeTunnel {
        NodeTunnel {
            node: "de-1".into(),
            tunnel_if: "wg-lab".into(),
            address: "198.18.2.2/30".into(),
            listen_port: 51820,
            wg_conf: String::new(),
            nat_sources: vec!["198.18.1.0/24".into(), "198.18.2.1/32".into()],
            routes: vec!["198.18.1.0/24".into()],
            uplink: "eth0".into(),
            resolver: "198.18.3.53".parse().unwrap(),
            dns_upstream: None,
        }
    }

    #[test]
    fn arch_packages_and_binary() {
        let here = std::env::consts::ARCH;
        let f = facts(&format!("arch={here}\nos=debian"));
        assert_eq!(judge_arch(Facts(&f)).detail, format!("debian {here}"));
        let f = facts("arch=mips");
        assert_eq!(judge_arch(Facts(&f)).status, Status::Fail);
        let f = facts("have.wg=1\nhave.wireguard-go=0\nhave.iptables=1\n");
        let c = judge_packages(Facts(&f));
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Fail, "missing: wireguard-go, libpcap")
        );
        let all = facts("have.wg=1\nhave.wireguard-go=1\nhave.iptables=1\nhave.libpcap=1");
        assert_eq!(judge_packages(Facts(&all)).status, Status::Ok);
        let bin = |t: &str| judge_binary(Facts(&facts(t)), "0123456789abcdef");
        assert_eq!(bin("").detail, format!("{REMOTE_BIN} missing"));
        let c = bin("bin.sha=0123456789abcdef\nbin.version=Illegal instruction");
        assert_eq!(
            c.detail,
            format!("{REMOTE_BIN} does not run: \"Illegal instruction\" (sha256 0123456789ab)")
        );
        let c = bin("bin.sha=ffff\nbin.version=matador 0.1.0");
        assert_eq!(
            (c.status, c.detail.as_str()),
            (
                Status::Warn,
                "matador 0.1.0 differs from this matador (sha256 ffff vs 0123456789ab)"
            )
        );
        assert_eq!(
            bin("bin.sha=0123456789abcdef\nbin.version=matador 0.1.0").status,
            Status::Ok
        );
    }

    #[test]
    fn permissions_need_root_or_both_capabilities() {
        let st = |t: &str| judge_permissions(Facts(&facts(t))).map(|c| c.status);
        assert_eq!(st("agent.uid=none"), [Status::Fail; 2]);
        assert_eq!(st("agent.uid=0"), [Status::Ok; 2]);
        assert_eq!(
            st("agent.uid=1001\nbin.caps=cap_net_admin,cap_net_raw=ep"),
            [Status::Ok; 2]
        );
        // Raw sockets alone do not make capture possible.
        assert_eq!(
            st("agent.uid=1001\nbin.caps=cap_net_raw=ep"),
            [Status::Fail, Status::Ok]
        );
        assert_eq!(
            st("agent.uid=1001\nbin.caps=cap_net_admin,cap_net_raw=e"),
            [Status::Fail; 2]
        );
    }

    #[test]
    fn disk_and_ntp() {
        let disk = |t: &str| judge_disk(Facts(&facts(t)));
        assert_eq!(
            disk("disk.free_kb=2097152").detail,
            "2.0 GiB free in /var/tmp"
        );
        assert_eq!(disk("disk.free_kb=1024").status, Status::Fail);
        assert_eq!(disk("").status, Status::Warn);
        let ntp = |t: &str| judge_ntp(Facts(&facts(t)));
        assert_eq!(ntp("ntp.sync=yes").status, Status::Ok);
        assert_eq!(ntp("ntp.sync=no").status, Status::Warn);
        let c = ntp("ntp.chrony=System time : 0.000001 seconds fast");
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Ok, "System time : 0.000001 seconds fast")
        );
        assert_eq!(ntp("").status, Status::Warn);
    }

    #[test]
    fn tunnel_forwarding_nat_and_dnat() {
        let t = tunnel();
        let f =
            facts("tun.link=1\ntun.addr=1\ntun.hs=1700000000\nforward=1\nnat.0=1\nnat.1=1\ndnat=1");
        let v = judge_probe(&f, "", Some(&t));
        let tail: Vec<_> = v[v.len() - 4..]
            .iter()
            .map(|c| (c.name.as_str(), c.status))
            .collect();
        assert_eq!(
            tail,
            [
                ("tunnel", Status::Ok),
                ("forwarding", Status::Ok),
                ("nat", Status::Ok),
                ("dns", Status::Ok)
            ]
        );
        assert_eq!(
            judge_tunnel(Facts(&f), &t).detail,
            "wg-lab 198.18.2.2/30, handshake seen"
        );
        let f = facts("tun.link=1\ntun.addr=0\nnat.0=1\nnat.1=0");
        assert_eq!(
            judge_tunnel(Facts(&f), &t).detail,
            "wg-lab lacks address 198.18.2.2/30"
        );
        assert_eq!(judge_forwarding(Facts(&f)).status, Status::Fail);
        let c = judge_nat(Facts(&f), &t);
        assert_eq!(
            c.detail,
            "no MASQUERADE for [\"198.18.2.1/32\"] out of eth0: replies cannot come back"
        );
        assert!(
            c.fix
                .unwrap()
                .starts_with("`iptables -t nat -A POSTROUTING -s 198.18.2.1/32 -o eth0")
        );
        assert_eq!(judge_dnat(Facts(&f), &t).status, Status::Fail);
        // Without a tunnel description, none of the four is judged.
        assert!(
            judge_probe(&f, "", None)
                .iter()
                .all(|c| c.name != "nat" && c.name != "tunnel")
        );
    }
}
