//! Bring-up and teardown of a virtual lab.
//!
//! Every namespace gets the per-lab prefix `mt<id>-` (five random hex
//! digits), WireGuard interfaces (whose `wireguard-go` sockets live in one
//! machine-wide directory) are named `wg<id>r<i>` / `wg<id>n<i>`, and the
//! root-namespace management links to the nodes' SSH servers `mt<id>m<i>`,
//! so two labs coexist. Everything is recorded in the state file
//! `<state-dir>/<id>.json` before it is created; [`Lab`] tears down on drop,
//! and the next bring-up removes the leftovers of a crashed one.
//!
//! Topology (one namespace each): phones ─ router (WLAN bridge, tunnels,
//! policy routing) ─ core ─ per node a chain of ISP hops (the first one hosts
//! the country's resolver on the anycast [`RESOLVER`] address; an optional
//! censor sits between node and first hop) ─ node (tunnel end, NAT, sshd);
//! per data centre a chain of hops from the core (optionally two parallel
//! equal-cost hops) to the data-centre namespace hosting the app backends
//! and noise services on its server LAN.

use super::LabError;
use super::topology::{MGMT, P2p, Plan, RESOLVER, Topology, WLAN, v6, v6_token};
use crate::phone::config::{PhoneSimConfig, SimAppConfig, SimContact};
use matador::ipl;
use matador::net::cmd::{Cmd, require};
use matador::net::health::{DnsCheck, TunnelCheck, TunnelHealth};
use matador::net::labdesc::{LabDesc, NodeDesc, PhoneDesc, SshEndpoint, TunnelDesc};
use matador::net::netns;
use matador::net::state::{Guard, Phase, Resource, StateFile, alive};
use matador::net::{NetError, routing, wg};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Default directory of lab state files and lab folders.
pub const DEFAULT_STATE_DIR: &str = "/run/matador/lab";

/// The censor's own resolver address (where forged queries are diverted).
const CENSOR_DNS: Ipv4Addr = Ipv4Addr::new(198, 18, 97, 53);

/// Options of [`Lab::up`].
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The topology.
    pub topology: Topology,
    /// Where state files and lab folders go.
    pub state_dir: PathBuf,
    /// The matador binary (runs `lab-sim` and `lab noise`).
    pub exe: PathBuf,
    /// Start the phone simulators.
    pub phones: bool,
    /// Start an OpenSSH server on each node.
    pub ssh: bool,
    /// Set to abandon the bring-up (Ctrl-C); everything is removed.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// A running virtual lab; dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    guard: Guard,
    /// The lab description (also written to `desc_path`).
    pub desc: LabDesc,
    /// The lab folder (keys, configs, logs).
    pub dir: PathBuf,
    /// `lab.json`.
    pub desc_path: PathBuf,
    /// Bring-up time.
    pub up_time: Duration,
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn random_id() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    let n = u32::from_le_bytes(b) ^ std::process::id().rotate_left(13);
    format!("{:05x}", n & 0xfffff)
}

/// An account of phone number `i` in `app` (deterministic, per app format).
pub fn account(app: &str, i: usize) -> String {
    let n = i + 1;
    match app {
        "whatsapp" | "signal" | "telegram" => format!("+4915100000{n:03}"),
        "threema" => format!("LAB{n:05}"),
        "wechat" => format!("wxid_lab{n:04}"),
        _ => format!("lab{n:04}"),
    }
}

fn qname_hex(name: &str) -> String {
    let mut s = String::from("|");
    for label in name.trim_end_matches('.').split('.') {
        s.push_str(&format!("{:02x}", label.len().min(63)));
        for b in label.bytes() {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s.push_str("00|");
    s
}

fn cidr(a: Ipv4Addr, l: u8) -> String {
    format!("{a}/{l}")
}

/// The IPv6 twin of an IPv4 prefix as `addr/len`.
fn cidr6(a: Ipv4Addr, l: u8) -> String {
    let (n, l) = super::topology::v6_net(a, l);
    format!("{n}/{l}")
}

/// Dual stack: each `addr add` / `route …` line with IPv4 addresses is
/// followed by its IPv6 twin (addresses without duplicate address detection,
/// so they are usable at once and bring-up stays fast).
fn with_v6(lines: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut out = Vec::with_capacity(lines.len() * 2);
    for l in lines {
        let twin = match l.first().map(String::as_str) {
            Some("addr") | Some("route") => {
                let mut changed = false;
                let mut t: Vec<String> = l
                    .iter()
                    .map(|w| match v6_token(w) {
                        Some(x) => {
                            changed = true;
                            x
                        }
                        None => w.clone(),
                    })
                    .collect();
                if l[0] == "addr" {
                    t.push("nodad".into());
                }
                changed.then_some(t)
            }
            _ => None,
        };
        out.push(l);
        out.extend(twin);
    }
    out
}

fn tail(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

struct Pending {
    what: String,
    log: PathBuf,
    needle: &'static str,
    pid: u32,
}

struct Builder<'a> {
    t: &'a Topology,
    plan: &'a Plan,
    id: String,
    dir: PathBuf,
    st: &'a mut StateFile,
    cancel: Option<Arc<AtomicBool>>,
    links: Vec<Vec<String>>,
    pre: BTreeMap<String, Vec<Vec<String>>>,
    routes: BTreeMap<String, Vec<Vec<String>>>,
    ifc: BTreeMap<String, usize>,
    pending: Vec<Pending>,
}

impl Builder<'_> {
    fn ns(&self, role: &str) -> String {
        format!("mt{}-{role}", self.id)
    }

    fn cancelled(&self) -> Result<(), LabError> {
        match &self.cancel {
            Some(c) if c.load(Ordering::SeqCst) => Err(NetError::Cancelled.into()),
            _ => Ok(()),
        }
    }

    fn next_if(&mut self, ns: &str, stem: &str) -> String {
        let c = self.ifc.entry(ns.to_string()).or_insert(0);
        *c += 1;
        format!("{stem}{}", *c - 1)
    }

    /// A veth link `a`↔`b` with addresses; returns the interface names.
    fn link(&mut self, a: &str, a_ip: Ipv4Addr, b: &str, b_ip: Ipv4Addr) -> (String, String) {
        let ia = self.next_if(a, "e");
        let ib = self.next_if(b, "e");
        self.links.push(ipl![
            "link", "add", "name", ia, "netns", a, "type", "veth", "peer", "name", ib, "netns", b
        ]);
        self.pre.entry(a.into()).or_default().extend([
            ipl!["addr", "add", cidr(a_ip, 30), "dev", ia],
            ipl!["link", "set", ia, "up"],
        ]);
        self.pre.entry(b.into()).or_default().extend([
            ipl!["addr", "add", cidr(b_ip, 30), "dev", ib],
            ipl!["link", "set", ib, "up"],
        ]);
        (ia, ib)
    }

    /// A P2P link with `up` in namespace `upper`, `down` in `lower`.
    fn p2p(&mut self, upper: &str, lower: &str, l: P2p) -> (String, String) {
        self.link(upper, l.up, lower, l.down)
    }

    fn route(&mut self, ns: &str, line: Vec<String>) {
        self.routes.entry(ns.into()).or_default().push(line);
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), LabError> {
        let t = Instant::now();
        let mut left: Vec<Pending> = std::mem::take(&mut self.pending);
        while !left.is_empty() {
            self.cancelled()?;
            let mut still = Vec::new();
            for p in left {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                if text.contains(p.needle) {
                    continue;
                }
                let dead = matador::net::state::process_start(p.pid).is_none();
                if dead || t.elapsed() > timeout {
                    return Err(LabError::Process {
                        what: p.what.clone(),
                        message: format!(
                            "{} (log {}: {})",
                            if dead { "exited" } else { "not ready in time" },
                            p.log.display(),
                            tail(&p.log)
                        ),
                    });
                }
                still.push(p);
            }
            left = still;
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        cmd: Cmd,
        what: &str,
        log_name: &str,
        needle: &'static str,
    ) -> Result<u32, LabError> {
        let log = self.dir.join("logs").join(log_name);
        let pid = self.st.spawn(&cmd, what, &log)?;
        self.pending.push(Pending {
            what: what.into(),
            log,
            needle,
            pid,
        });
        Ok(pid)
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

fn mkdir_private(path: &Path) -> Result<(), LabError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| LabError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Held while a lab picks its management /30s and puts them on its links:
/// labs started at the same moment (the tasks of a Slurm job array) would
/// otherwise see the same /30s free and take them both. A directory
/// (created atomically) holding the holder's pid and start time; one left by a dead
/// process is taken over.
struct MgmtLock(PathBuf);

impl MgmtLock {
    fn take() -> Result<MgmtLock, LabError> {
        let dir = Path::new(DEFAULT_STATE_DIR).join("mgmt.lock");
        let io = |source| LabError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(DEFAULT_STATE_DIR).map_err(io)?;
        let t0 = Instant::now();
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let me = matador::net::state::me();
                    std::fs::write(dir.join("pid"), format!("{} {}", me.pid, me.start))
                        .map_err(io)?;
                    return Ok(MgmtLock(dir));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(dir.join("pid")).ok().and_then(|t| {
                        let (p, s) = t.trim().split_once(' ')?;
                        Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?))
                    });
                    // No pid yet: its holder is between mkdir and write.
                    if holder.is_some_and(|(p, s)| !alive(p, s))
                        || t0.elapsed() > Duration::from_secs(60)
                    {
                        let _ = std::fs::remove_dir_all(&dir);
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(io(e)),
            }
        }
    }
}

impl Drop for MgmtLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Picks free management /30s in the root namespace (not used by any
/// address there, so labs never collide; callers hold [`MgmtLock`]).
fn free_mgmt(n: usize) -> Result<Vec<P2p>, LabError> {
    let used = Cmd::new("ip").args(["-4", "-o", "addr", "show"]).run()?;
    let base = u32::from(MGMT.0);
    let mut out = Vec::new();
    let mut k = 0u32;
    while out.len() < n {
        if k >= 1 << (32 - MGMT.1 - 2) {
            return Err(LabError::Select(
                "no free management /30 left in 198.19.252.0/22 (too many labs?)".into(),
            ));
        }
        let b = base + 4 * k;
        let up = Ipv4Addr::from(b + 1);
        let down = Ipv4Addr::from(b + 2);
        if !used.contains(&format!(" {up}/")) && !used.contains(&format!(" {down}/")) {
            out.push(P2p { up, down });
        }
        k += 1;
    }
    Ok(out)
}

impl Lab {
    /// Brings a lab up. On any error (or cancellation) everything created so
    /// far is removed before returning.
    pub fn up(opts: UpOptions) -> Result<Lab, LabError> {
        let t0 = Instant::now();
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        for p in ["ip", "wg", "iptables", "sysctl", "ping", "dnsmasq"] {
            require(p)?;
        }
        if opts.ssh {
            require("sshd")?;
            require("ssh-keygen")?;
        }
        mkdir_private(&opts.state_dir)?;
        matador::net::state::sweep_stale(&opts.state_dir);
        let t = &opts.topology;
        let plan = Plan::new(t).map_err(|message| LabError::Topology {
            path: PathBuf::from(&t.name),
            message,
        })?;
        let mut id = random_id();
        while opts.state_dir.join(format!("{id}.json")).exists() {
            id = random_id();
        }
        let dir = opts.state_dir.join(&id);
        let mut st = StateFile::create(
            &opts.state_dir.join(format!("{id}.json")),
            &id,
            serde_json::json!({"name": t.name, "dir": dir}),
        )?;
        st.add(Resource::Path { path: dir.clone() })?;
        let mut guard = Guard::new(st);
        mkdir_private(&dir)?;
        mkdir_private(&dir.join("logs"))?;
        mkdir_private(&dir.join("keys"))?;
        let desc = {
            let mut b = Builder {
                t,
                plan: &plan,
                id: id.clone(),
                dir: dir.clone(),
                st: guard.state_mut(),
                cancel: opts.cancel.clone(),
                links: Vec::new(),
                pre: BTreeMap::new(),
                routes: BTreeMap::new(),
                ifc: BTreeMap::new(),
                pending: Vec::new(),
            };
            build(&mut b, &opts)?
        };
        let desc_path = dir.join("lab.json");
        desc.write(&desc_path)?;
        let st = guard.state_mut();
        st.set_info(serde_json::json!({"name": t.name, "dir": dir, "lab_json": desc_path}))?;
        st.set_phase(Phase::Owned)?;
        Ok(Lab {
            guard,
            desc,
            dir,
            desc_path,
            up_time: t0.elapsed(),
        })
    }

    /// The lab's unique id.
    pub fn id(&self) -> &str {
        &self.desc.id
    }

    /// Namespace name of a role (`router`, `core`, a phone, node or data
    /// centre name, `<node>-h1`, `censor`, …).
    pub fn ns(&self, role: &str) -> String {
        format!("mt{}-{role}", self.desc.id)
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.guard.state().path().to_path_buf()
    }

    /// Health of every tunnel (ping through it, handshake age).
    pub fn health(&self) -> Vec<Result<TunnelHealth, NetError>> {
        tunnel_checks(&self.desc)
            .iter()
            .map(matador::net::health::check_tunnel)
            .collect()
    }

    /// Leaves the lab running (state marked detached); returns the state file.
    pub fn detach(mut self) -> Result<PathBuf, LabError> {
        self.guard.state_mut().set_phase(Phase::Detached)?;
        let st = self.guard.disarm();
        Ok(st.path().to_path_buf())
    }

    /// Tears the lab down; returns problems met (empty when clean).
    pub fn down(self) -> Vec<String> {
        self.guard.teardown()
    }
}

/// The tunnel checks of a lab description.
pub fn tunnel_checks(d: &LabDesc) -> Vec<TunnelCheck> {
    let router_ns = d.router().and_then(|r| r.netns.clone());
    d.nodes
        .iter()
        .filter_map(|n| {
            let t = n.tunnel.as_ref()?;
            Some(TunnelCheck {
                node: n.name.clone(),
                router_ns: router_ns.clone(),
                ifname: t.router_if.clone(),
                peer: t.node_addr.parse().ok()?,
            })
        })
        .collect()
}

/// The DNS check of one phone of a lab description.
pub fn dns_check(d: &LabDesc, phone: &str, name: &str) -> Option<DnsCheck> {
    let p = d.phone(phone)?;
    let n = d.node(&p.node)?;
    Some(DnsCheck {
        node: n.name.clone(),
        router_ns: d.router()?.netns.clone(),
        wlan_if: d.wlan_if.clone(),
        tunnel_if: n.tunnel.as_ref()?.router_if.clone(),
        phone: p.addr.parse().ok()?,
        ask_from: p.netns.clone(),
        resolver: SocketAddr::new(d.resolver.parse().ok()?, 53),
        name: name.into(),
    })
}

const ROUTER_SYSCTLS: [(&str, &str); 8] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.icmp_ratelimit", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.fib_multipath_hash_policy", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.icmp.ratelimit", "0"),
    ("net.ipv6.fib_multipath_hash_policy", "1"),
];

const NO_DAD: [(&str, &str); 2] = [
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
];

/// Brings every part of the lab up, in order (each step only adds to what
/// the ones before made, and records it in the state file first), and
/// describes the result.
fn build(b: &mut Builder<'_>, opts: &UpOptions) -> Result<LabDesc, LabError> {
    let forwarders = create_namespaces(b)?;
    let wlan_if = wire_router_and_phones(b);
    let uplinks = wire_nodes(b);
    let dc_links = wire_datacenters(b);
    apply_links(b, &forwarders)?;
    throttle_uplinks(b, &uplinks)?;
    delay_links(b, opts, &uplinks, &dc_links)?;
    if let Some(c) = &b.t.censor {
        start_censor(b, opts, c, uplinks.censor_if.as_deref())?;
    }
    let tunnels = start_tunnels(b, &uplinks)?;
    let phone_rules = assign_phones(b)?;
    let zone = dns_zone(b.plan);
    start_resolvers(b, &zone)?;
    start_control_resolver(b, &zone)?;
    start_backends(b, opts)?;
    let ssh = start_ssh(b, opts)?;
    let phone_logs = if opts.phones {
        start_phones(b, opts)?
    } else {
        Vec::new()
    };
    b.wait_ready(Duration::from_secs(15))?;
    describe(b, opts, wlan_if, &tunnels, &ssh, &phone_logs, &phone_rules)
}

/// The lab's namespaces, all (`.0`) and those that forward packets (`.1`),
/// in creation order: router, core, phones, nodes with their hops, censor,
/// data centres with their hops and parallel hops.
fn namespace_roles(t: &Topology) -> (Vec<String>, Vec<String>) {
    let mut all = vec!["router".to_string(), "core".to_string()];
    let mut forwarders = all.clone();
    for p in &t.phones {
        all.push(p.name.clone());
    }
    for n in &t.nodes {
        all.push(n.name.clone());
        forwarders.push(n.name.clone());
        for h in 1..=n.hops {
            all.push(format!("{}-h{h}", n.name));
            forwarders.push(format!("{}-h{h}", n.name));
        }
    }
    if t.censor.is_some() {
        all.push("censor".into());
        forwarders.push("censor".into());
    }
    for d in &t.datacenters {
        all.push(d.name.clone());
        for h in 1..=d.hops {
            all.push(format!("{}-h{h}", d.name));
            forwarders.push(format!("{}-h{h}", d.name));
        }
        if d.multipath {
            for m in ["mpa", "mpb"] {
                all.push(format!("{}-{m}", d.name));
                forwarders.push(format!("{}-{m}", d.name));
            }
        }
    }
    (all, forwarders)
}

/// Creates every namespace; returns the forwarding ones.
fn create_namespaces(b: &mut Builder<'_>) -> Result<Vec<String>, LabError> {
    let (all, forwarders) = namespace_roles(b.t);
    for role in &all {
        b.cancelled()?;
        let ns = b.ns(role);
        netns::create(b.st, &ns)?;
        // No duplicate address detection: a tentative link-local address
        // stops the kernel from sending neighbour solicitations for
        // forwarded packets, which would blackhole IPv6 for ~1 s after
        // bring-up. Links created in this namespace inherit `default`.
        netns::net_sysctls_direct(&ns, &NO_DAD)?;
    }
    Ok(forwarders.iter().map(|r| b.ns(r)).collect())
}

/// Router: uplink to the core, WLAN bridge with the phones. Returns the
/// WLAN interface.
fn wire_router_and_phones(b: &mut Builder<'_>) -> String {
    let (t, plan) = (b.t, b.plan);
    let router = b.ns("router");
    let core = b.ns("core");
    b.p2p(&core, &router, plan.router_uplink);
    b.route(
        &router,
        ipl!["route", "add", "default", "via", plan.router_uplink.up],
    );
    let wlan_if = "wlan0".to_string();
    b.pre.entry(router.clone()).or_default().extend([
        ipl!["link", "add", "name", wlan_if, "type", "bridge"],
        ipl!["addr", "add", cidr(plan.gateway, WLAN.1), "dev", wlan_if],
        ipl!["link", "set", wlan_if, "up"],
    ]);
    for (i, p) in t.phones.iter().enumerate() {
        let pns = b.ns(&p.name);
        let rif = format!("p{i}");
        b.links.push(ipl![
            "link", "add", "name", rif, "netns", router, "type", "veth", "peer", "name", "wlan0",
            "netns", pns
        ]);
        b.pre.entry(router.clone()).or_default().extend([
            ipl!["link", "set", rif, "master", wlan_if],
            ipl!["link", "set", rif, "up"],
        ]);
        b.pre.entry(pns.clone()).or_default().extend([
            ipl!["addr", "add", cidr(plan.phones[i], WLAN.1), "dev", "wlan0"],
            ipl!["link", "set", "wlan0", "up"],
        ]);
        b.route(&pns, ipl!["route", "add", "default", "via", plan.gateway]);
    }
    wlan_if
}

/// The nodes' uplinks: per node (topology order) its interface and the
/// interface of the namespace above it (first hop or censor).
#[derive(Debug, Default)]
struct Uplinks {
    /// The node's side.
    node_if: Vec<String>,
    /// The side above the node.
    peer_if: Vec<String>,
    /// The censor's interface towards its node, when there is a censor.
    censor_if: Option<String>,
}

/// Nodes and their ISP chains (with the censor between its node and the
/// first hop).
fn wire_nodes(b: &mut Builder<'_>) -> Uplinks {
    let (t, plan) = (b.t, b.plan);
    let core = b.ns("core");
    let mut up = Uplinks::default();
    for (n, np) in t.nodes.iter().zip(&plan.nodes) {
        let node = b.ns(&n.name);
        let bid = b.id.clone();
        let hop = |h: u8| format!("mt{bid}-{}-h{h}", n.name);
        let first = hop(1);
        let below_ip = match np.censor_link {
            Some(cl) => {
                let censor = b.ns("censor");
                let (peer_if, node_if) = b.p2p(&censor, &node, np.uplink);
                up.censor_if = Some(peer_if.clone());
                up.node_if.push(node_if);
                up.peer_if.push(peer_if);
                b.p2p(&first, &censor, cl);
                b.route(&censor, ipl!["route", "add", "default", "via", cl.up]);
                b.route(
                    &first,
                    ipl![
                        "route",
                        "add",
                        cidr(Ipv4Addr::from(u32::from(np.uplink.up) - 1), 30),
                        "via",
                        cl.down
                    ],
                );
                cl.down
            }
            None => {
                let (peer_if, node_if) = b.p2p(&first, &node, np.uplink);
                up.node_if.push(node_if);
                up.peer_if.push(peer_if);
                np.uplink.down
            }
        };
        b.route(&node, ipl!["route", "add", "default", "via", np.uplink.up]);
        // The country's resolver on the first hop (anycast address).
        b.pre.entry(first.clone()).or_default().push(ipl![
            "addr",
            "add",
            cidr(RESOLVER, 32),
            "dev",
            "lo"
        ]);
        for h in 1..=n.hops {
            let this = hop(h);
            let link = np.chain[usize::from(h - 1)];
            let upper = if h == n.hops {
                core.clone()
            } else {
                hop(h + 1)
            };
            b.p2p(&upper, &this, link);
            b.route(&this, ipl!["route", "add", "default", "via", link.up]);
            let down_via = if h == 1 {
                below_ip
            } else {
                np.chain[usize::from(h - 2)].down
            };
            b.route(
                &this,
                ipl![
                    "route",
                    "add",
                    cidr(np.block.0, np.block.1),
                    "via",
                    down_via
                ],
            );
        }
        b.route(
            &core,
            ipl![
                "route",
                "add",
                cidr(np.block.0, np.block.1),
                "via",
                np.chain[usize::from(n.hops - 1)].down
            ],
        );
    }
    up
}

/// Data centres: their server LAN addresses and hop chains from the core
/// (with two parallel equal-cost hops when multipath). Returns each data
/// centre's own link interface.
fn wire_datacenters(b: &mut Builder<'_>) -> Vec<String> {
    let (t, plan) = (b.t, b.plan);
    let core = b.ns("core");
    let mut dc_links = Vec::new();
    for (d, dp) in t.datacenters.iter().zip(&plan.dcs) {
        let dc = b.ns(&d.name);
        let bid = b.id.clone();
        let hop = |h: u8| format!("mt{bid}-{}-h{h}", d.name);
        let blk = cidr(dp.block.0, dp.block.1);
        for ip in dp.apps.values().chain(dp.noise.iter()) {
            b.pre.entry(dc.clone()).or_default().push(ipl![
                "addr",
                "add",
                cidr(*ip, 32),
                "dev",
                "lo"
            ]);
        }
        let (_, dc_if) = b.p2p(&hop(1), &dc, dp.chain[0]);
        dc_links.push(dc_if);
        b.route(&dc, ipl!["route", "add", "default", "via", dp.chain[0].up]);
        for h in 1..=d.hops {
            let this = hop(h);
            let down = dp.chain[usize::from(h - 1)].down;
            b.route(&this, ipl!["route", "add", blk, "via", down]);
            if h < d.hops {
                let l = dp.chain[usize::from(h)];
                b.p2p(&hop(h + 1), &this, l);
                b.route(&this, ipl!["route", "add", "default", "via", l.up]);
            }
        }
        let top = hop(d.hops);
        let hc = usize::from(d.hops);
        if d.multipath {
            let mpa = b.ns(&format!("{}-mpa", d.name));
            let mpb = b.ns(&format!("{}-mpb", d.name));
            let (la, lb) = (dp.chain[hc], dp.chain[hc + 1]);
            let (da, db) = (dp.mp_down[0], dp.mp_down[1]);
            b.p2p(&core, &mpa, la);
            b.p2p(&core, &mpb, lb);
            b.p2p(&mpa, &top, da);
            b.p2p(&mpb, &top, db);
            b.route(
                &top,
                ipl![
                    "route", "add", "default", "nexthop", "via", da.up, "nexthop", "via", db.up
                ],
            );
            for (m, up, down) in [(&mpa, la, da), (&mpb, lb, db)] {
                b.route(m, ipl!["route", "add", "default", "via", up.up]);
                b.route(m, ipl!["route", "add", blk, "via", down.down]);
            }
            b.route(
                &core,
                ipl![
                    "route", "add", blk, "nexthop", "via", la.down, "nexthop", "via", lb.down
                ],
            );
        } else {
            let l = dp.chain[hc];
            b.p2p(&core, &top, l);
            b.route(&top, ipl!["route", "add", "default", "via", l.up]);
            b.route(&core, ipl!["route", "add", blk, "via", l.down]);
        }
    }
    dc_links
}

/// Creates every link at once, then configures each namespace in one
/// batch (addresses, then routes, each with its IPv6 twin), then turns
/// forwarding on.
fn apply_links(b: &mut Builder<'_>, forwarders: &[String]) -> Result<(), LabError> {
    b.cancelled()?;
    let links = std::mem::take(&mut b.links);
    netns::ip_batch(None, &links)?;
    let mut cfg: BTreeMap<String, Vec<Vec<String>>> = std::mem::take(&mut b.pre);
    for (ns, r) in std::mem::take(&mut b.routes) {
        cfg.entry(ns).or_default().extend(r);
    }
    for (ns, lines) in cfg {
        b.cancelled()?;
        netns::ip_batch(Some(&ns), &with_v6(lines))?;
    }
    for ns in forwarders {
        netns::sysctls(Some(ns), &ROUTER_SYSCTLS)?;
    }
    Ok(())
}

/// The namespace above node `n` (its censor, else its first hop).
fn above_node(b: &Builder<'_>, n: &super::topology::NodeDecl) -> String {
    match &b.t.censor {
        Some(c) if c.node == n.name => b.ns("censor"),
        _ => format!("mt{}-{}-h1", b.id, n.name),
    }
}

/// Throttled uplinks: a token bucket on both ends of the node's uplink.
fn throttle_uplinks(b: &mut Builder<'_>, up: &Uplinks) -> Result<(), LabError> {
    for (i, n) in b.t.nodes.iter().enumerate() {
        let Some(kbit) = n.throttle_kbit else {
            continue;
        };
        let node = b.ns(&n.name);
        let above = above_node(b, n);
        for (ns, dev) in [
            (node.clone(), up.node_if[i].clone()),
            (above, up.peer_if[i].clone()),
        ] {
            Cmd::new("tc")
                .args([
                    "-n", &ns, "qdisc", "add", "dev", &dev, "root", "tbf", "rate",
                ])
                .arg(format!("{kbit}kbit"))
                .args(["burst", "16kb", "latency", "200ms"])
                .run()?;
        }
    }
    Ok(())
}

/// Delayed links: a userspace NFQUEUE relay in the namespace owning the
/// link (the hop above a node, the data centre itself).
fn delay_links(
    b: &mut Builder<'_>,
    opts: &UpOptions,
    up: &Uplinks,
    dc_links: &[String],
) -> Result<(), LabError> {
    let mut delayed = Vec::new();
    for (i, n) in b.t.nodes.iter().enumerate() {
        if let Some(ms) = n.delay_ms {
            delayed.push((n.name.clone(), above_node(b, n), up.peer_if[i].clone(), ms));
        }
    }
    for (d, dev) in b.t.datacenters.iter().zip(dc_links) {
        if let Some(ms) = d.delay_ms {
            delayed.push((d.name.clone(), b.ns(&d.name), dev.clone(), ms));
        }
    }
    for (name, ns, dev, ms) in delayed {
        let cmd = Cmd::new(opts.exe.to_string_lossy().into_owned())
            .netns(Some(&ns))
            .args(["lab", "delay", "--ms"])
            .arg(ms.to_string());
        b.spawn(
            cmd,
            &format!("delay {name} {ms} ms (lab {})", b.id),
            &format!("delay-{name}.log"),
            "ready",
        )?;
        // --queue-bypass: packets pass undelayed until the relay is bound.
        for tool in ["iptables", "ip6tables"] {
            for rule in super::delay::rules(&dev) {
                Cmd::new(tool)
                    .netns(Some(&ns))
                    .args(["-w", "-A"])
                    .args(rule)
                    .run()?;
            }
        }
    }
    Ok(())
}

/// The censor's iptables rules (without the leading `iptables -w`): forged
/// names diverted to its own resolver, keyword and SYN resets.
fn censor_rules(c: &super::topology::CensorDecl) -> Vec<Vec<String>> {
    let mut rules = Vec::new();
    for name in c.forge_dns.keys() {
        rules.push(ipl![
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "udp",
            "--dport",
            "53",
            "-m",
            "string",
            "--algo",
            "bm",
            "--icase",
            "--hex-string",
            qname_hex(name),
            "-j",
            "DNAT",
            "--to-destination",
            format!("{CENSOR_DNS}:53")
        ]);
    }
    for k in &c.rst_keywords {
        rules.push(ipl![
            "-A",
            "FORWARD",
            "-p",
            "tcp",
            "-m",
            "string",
            "--algo",
            "bm",
            "--string",
            k,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset"
        ]);
    }
    for a in &c.rst_syn_to {
        rules.push(ipl![
            "-A",
            "FORWARD",
            "-p",
            "tcp",
            "--syn",
            "-d",
            a,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset"
        ]);
    }
    rules
}

/// The censor: its rules, its forging resolver and its on-path injector.
fn start_censor(
    b: &mut Builder<'_>,
    opts: &UpOptions,
    c: &super::topology::CensorDecl,
    censor_if: Option<&str>,
) -> Result<(), LabError> {
    let censor = b.ns("censor");
    netns::ip_batch(
        Some(&censor),
        &[ipl!["addr", "add", cidr(CENSOR_DNS, 32), "dev", "lo"]],
    )?;
    for rule in censor_rules(c) {
        Cmd::new("iptables")
            .netns(Some(&censor))
            .arg("-w")
            .args(rule)
            .run()?;
    }
    if !c.forge_dns.is_empty() {
        let mut cmd = Cmd::new("dnsmasq")
            .netns(Some(&censor))
            .args(dnsmasq_base(CENSOR_DNS, false));
        for (name, ip) in &c.forge_dns {
            cmd = cmd.arg(format!("--address=/{name}/{ip}"));
        }
        b.spawn(
            cmd,
            &format!("censor dnsmasq (lab {})", b.id),
            "dnsmasq-censor.log",
            "started",
        )?;
    }
    if let (Some(race), Some(iface)) = (&c.race, censor_if) {
        let config = serde_json::to_string(race).map_err(|e| LabError::Process {
            what: "censor injector".into(),
            message: e.to_string(),
        })?;
        let cmd = Cmd::new(opts.exe.to_string_lossy().into_owned())
            .netns(Some(&censor))
            .args(["lab", "censor", "--iface"])
            .arg(iface)
            .arg("--config")
            .arg(config);
        b.spawn(
            cmd,
            &format!("censor injector (lab {})", b.id),
            "censor-race.log",
            "started",
        )?;
    }
    Ok(())
}

/// Tunnels: router ↔ node, WireGuard, with the node's NAT and the router's
/// per-node routing table.
fn start_tunnels(b: &mut Builder<'_>, up: &Uplinks) -> Result<Vec<TunnelDesc>, LabError> {
    let (t, plan) = (b.t, b.plan);
    let router = b.ns("router");
    b.cancelled()?;
    let backend = wg::detect(Some(&router), &format!("wg{}probe", b.id))?;
    let mut tunnels = Vec::new();
    for (i, (n, np)) in t.nodes.iter().zip(&plan.nodes).enumerate() {
        let node = b.ns(&n.name);
        let rif = format!("wg{}r{i}", b.id);
        let nif = format!("wg{}n{i}", b.id);
        let logs = b.dir.join("logs");
        wg::create_interface(
            b.st,
            Some(&router),
            &rif,
            backend,
            &logs.join(format!("{rif}.log")),
        )?;
        wg::create_interface(
            b.st,
            Some(&node),
            &nif,
            backend,
            &logs.join(format!("{nif}.log")),
        )?;
        let rk = wg::genkey(&b.dir.join("keys").join(format!("{rif}.key")))?;
        let nk = wg::genkey(&b.dir.join("keys").join(format!("{nif}.key")))?;
        let endpoint = SocketAddr::new(IpAddr::V4(np.uplink.down), np.port);
        wg::configure(
            Some(&node),
            &nif,
            &nk,
            Some(np.port),
            &wg::Peer {
                public: rk.public.clone(),
                endpoint: None,
                allowed_ips: vec![
                    cidr(WLAN.0, WLAN.1),
                    cidr(np.tunnel.up, 32),
                    cidr6(WLAN.0, WLAN.1),
                    cidr6(np.tunnel.up, 32),
                ],
                keepalive: None,
            },
        )?;
        wg::configure(
            Some(&router),
            &rif,
            &rk,
            None,
            &wg::Peer {
                public: nk.public.clone(),
                endpoint: Some(endpoint),
                allowed_ips: vec!["0.0.0.0/0".into(), "::/0".into()],
                keepalive: Some(25),
            },
        )?;
        netns::ip_batch(
            Some(&router),
            &with_v6(vec![
                ipl!["addr", "add", cidr(np.tunnel.up, 30), "dev", rif],
                ipl!["link", "set", rif, "up"],
            ]),
        )?;
        netns::ip_batch(
            Some(&node),
            &with_v6(vec![
                ipl!["addr", "add", cidr(np.tunnel.down, 30), "dev", nif],
                ipl!["link", "set", nif, "up"],
                ipl!["route", "add", cidr(WLAN.0, WLAN.1), "dev", nif],
            ]),
        )?;
        routing::tunnel_table(b.st, Some(&router), np.table, &rif)?;
        routing::nat(
            b.st,
            Some(&node),
            &[cidr(WLAN.0, WLAN.1), cidr6(WLAN.0, WLAN.1)],
            &up.node_if[i],
        )?;
        tunnels.push(TunnelDesc {
            router_if: rif,
            node_if: nif,
            router_addr: np.tunnel.up.to_string(),
            node_addr: np.tunnel.down.to_string(),
            router_addr6: Some(v6(np.tunnel.up).to_string()),
            node_addr6: Some(v6(np.tunnel.down).to_string()),
            table: np.table,
            endpoint: endpoint.to_string(),
            node_uplink: up.node_if[i].clone(),
        });
    }
    Ok(tunnels)
}

/// The policy-routing rule priority of phone `i` (topology order).
fn phone_rule_priority(i: usize) -> u32 {
    1000 + i as u32
}

/// Sends each phone's traffic into its node's tunnel (policy routing on
/// the router); returns the rule priorities, per phone.
fn assign_phones(b: &mut Builder<'_>) -> Result<Vec<u32>, LabError> {
    let (t, plan) = (b.t, b.plan);
    let router = b.ns("router");
    let mut phone_rules = Vec::new();
    for (i, p) in t.phones.iter().enumerate() {
        let k = t.nodes.iter().position(|n| n.name == p.node).unwrap_or(0);
        let prio = phone_rule_priority(i);
        // IPv6 first: moving the IPv4 rule later moves the IPv6 one along.
        for addr in [IpAddr::V6(v6(plan.phones[i])), IpAddr::V4(plan.phones[i])] {
            routing::assign_phone(b.st, Some(&router), addr, plan.nodes[k].table, prio)?;
        }
        phone_rules.push(prio);
    }
    Ok(phone_rules)
}

/// Android's background-service names, answered by a data centre's noise
/// host.
const NOISE_NAMES: [&str; 6] = [
    "connectivitycheck.gstatic.com",
    "time.android.com",
    "mtalk.google.com",
    "play.googleapis.com",
    "android.clients.google.com",
    "www.google.com",
];

/// The shared DNS zone: each app backend's host name and the background
/// names, to their data-centre addresses.
fn dns_zone(plan: &Plan) -> BTreeMap<String, Ipv4Addr> {
    let mut zone: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for dp in &plan.dcs {
        for (app, ip) in &dp.apps {
            if let Some(def) = crate::phone::apps::app_def(app) {
                zone.insert(def.host.to_string(), *ip);
            }
        }
        if let Some(ip) = dp.noise {
            for h in NOISE_NAMES {
                zone.insert(h.into(), ip);
            }
        }
    }
    zone
}

/// The `--address=` arguments of node `n`'s country resolver: app and
/// background names answer A and AAAA (the IPv6 twin), unless the node
/// overrides them; the node's extra names A only.
fn resolver_addresses(
    n: &super::topology::NodeDecl,
    zone: &BTreeMap<String, Ipv4Addr>,
) -> Vec<String> {
    let mut args = Vec::new();
    for (name, ip) in zone {
        match n.dns.get(name) {
            Some(x) => args.push(format!("--address=/{name}/{x}")),
            None => {
                args.push(format!("--address=/{name}/{ip}"));
                args.push(format!("--address=/{name}/{}", v6(*ip)));
            }
        }
    }
    for (name, ip) in n.dns.iter().filter(|(k, _)| !zone.contains_key(*k)) {
        args.push(format!("--address=/{name}/{ip}"));
    }
    args
}

/// DNS: one resolver per country on the node's first hop.
fn start_resolvers(b: &mut Builder<'_>, zone: &BTreeMap<String, Ipv4Addr>) -> Result<(), LabError> {
    for n in &b.t.nodes {
        let first = format!("mt{}-{}-h1", b.id, n.name);
        let cmd = Cmd::new("dnsmasq")
            .netns(Some(&first))
            .args(dnsmasq_base(RESOLVER, true))
            .args(resolver_addresses(n, zone));
        b.spawn(
            cmd,
            &format!("dnsmasq {} (lab {})", n.name, b.id),
            &format!("dnsmasq-{}.log", n.name),
            "started",
        )?;
    }
    Ok(())
}

/// The control resolver: honest answers (the shared zone only) on the
/// core, which every node and data centre reaches by its default route.
fn start_control_resolver(
    b: &mut Builder<'_>,
    zone: &BTreeMap<String, Ipv4Addr>,
) -> Result<(), LabError> {
    let Some(ip) = b.t.control_resolver else {
        return Ok(());
    };
    let core = b.ns("core");
    netns::ip_batch(
        Some(&core),
        &[ipl!["addr", "add", cidr(ip, 32), "dev", "lo"]],
    )?;
    let mut cmd = Cmd::new("dnsmasq")
        .netns(Some(&core))
        .args(dnsmasq_base(ip, false));
    for (name, a) in zone {
        cmd = cmd.arg(format!("--address=/{name}/{a}"));
    }
    b.spawn(
        cmd,
        &format!("dnsmasq control (lab {})", b.id),
        "dnsmasq-control.log",
        "started",
    )?;
    Ok(())
}

/// App backends and noise hosts in their data centres.
fn start_backends(b: &mut Builder<'_>, opts: &UpOptions) -> Result<(), LabError> {
    let (t, plan) = (b.t, b.plan);
    for (d, dp) in t.datacenters.iter().zip(&plan.dcs) {
        let dc = b.ns(&d.name);
        for (app, ip) in &dp.apps {
            let Some(def) = crate::phone::apps::app_def(app) else {
                continue;
            };
            let cmd = Cmd::new(opts.exe.to_string_lossy().into_owned())
                .netns(Some(&dc))
                .args(["lab-sim", "backend", "--app", app, "--listen"])
                .arg(SocketAddr::new(IpAddr::V4(*ip), def.port).to_string())
                .arg("--listen")
                .arg(SocketAddr::new(IpAddr::V6(v6(*ip)), def.port).to_string())
                .arg("--control")
                .arg(
                    b.dir
                        .join(format!("backend-{app}.sock"))
                        .to_string_lossy()
                        .into_owned(),
                );
            b.spawn(
                cmd,
                &format!("backend {app} (lab {})", b.id),
                &format!("backend-{app}.log"),
                "ready",
            )?;
        }
        if let Some(ip) = dp.noise {
            let cmd = Cmd::new(opts.exe.to_string_lossy().into_owned())
                .netns(Some(&dc))
                .args(["lab", "noise", "--listen"])
                .arg(ip.to_string())
                .arg("--listen")
                .arg(v6(ip).to_string());
            b.spawn(
                cmd,
                &format!("noise {} (lab {})", d.name, b.id),
                &format!("noise-{}.log", d.name),
                "ready",
            )?;
        }
    }
    Ok(())
}

/// Generates an unencrypted ed25519 key pair at `path` (and `path.pub`).
fn ssh_keygen(path: &Path, comment: &str) -> Result<(), LabError> {
    Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path.to_string_lossy().into_owned())
        .run()?;
    Ok(())
}

/// Reads a file of the lab folder, naming it on failure.
fn read_lab_file(path: &Path) -> Result<String, LabError> {
    std::fs::read_to_string(path).map_err(|source| LabError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A node's sshd configuration: listening on its management address only,
/// keys only, the agent's `MATADOR_*` environment accepted.
fn sshd_config(listen: Ipv4Addr, host_key: &Path, authorized_keys: &Path) -> String {
    format!(
        "ListenAddress {}\nPort 22\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPrintMotd no\nAcceptEnv MATADOR_*\nSubsystem sftp internal-sftp\n",
        listen,
        host_key.display(),
        authorized_keys.display()
    )
}

/// The known_hosts line of a host at `addr` with public key file text
/// `pubkey` (`type base64 [comment]`).
fn known_hosts_line(addr: Ipv4Addr, pubkey: &str) -> String {
    let mut hw = pubkey.split_whitespace();
    format!(
        "{} {} {}\n",
        addr,
        hw.next().unwrap_or(""),
        hw.next().unwrap_or("")
    )
}

/// Management links from the root namespace to every node and, with
/// `opts.ssh`, an OpenSSH server on each; returns each node's endpoint.
fn start_ssh(b: &mut Builder<'_>, opts: &UpOptions) -> Result<Vec<Option<SshEndpoint>>, LabError> {
    // Until every root-side address is on its link (end of this function).
    let _lock = MgmtLock::take()?;
    let mgmt = free_mgmt(b.t.nodes.len())?;
    let mut ssh = Vec::new();
    let client_key = b.dir.join("keys").join("id_ed25519");
    if opts.ssh {
        ssh_keygen(&client_key, &format!("matador-lab-{}", b.id))?;
        mkdir_private(Path::new("/run/sshd"))?;
    }
    for (i, n) in b.t.nodes.iter().enumerate() {
        let node = b.ns(&n.name);
        let root_if = format!("mt{}m{i}", b.id);
        b.st.add(Resource::Undo {
            argv: ipl!["ip", "link", "del", root_if],
        })?;
        netns::veth(None, &root_if, Some(&node), "mgmt0")?;
        netns::ip_batch(
            None,
            &[
                ipl!["addr", "add", cidr(mgmt[i].up, 30), "dev", root_if],
                ipl!["link", "set", root_if, "up"],
            ],
        )?;
        netns::ip_batch(
            Some(&node),
            &[
                ipl!["addr", "add", cidr(mgmt[i].down, 30), "dev", "mgmt0"],
                ipl!["link", "set", "mgmt0", "up"],
            ],
        )?;
        if opts.ssh {
            let known_hosts = start_sshd(b, n, &node, mgmt[i].down, &client_key)?;
            ssh.push(Some(SshEndpoint {
                host: mgmt[i].down.to_string(),
                port: 22,
                user: "root".into(),
                identity: client_key.clone(),
                known_hosts,
            }));
        } else {
            ssh.push(None);
        }
    }
    Ok(ssh)
}

/// One node's sshd on its management address `addr`, accepting
/// `client_key`; returns the known_hosts file naming its host key.
fn start_sshd(
    b: &mut Builder<'_>,
    n: &super::topology::NodeDecl,
    node: &str,
    addr: Ipv4Addr,
    client_key: &Path,
) -> Result<PathBuf, LabError> {
    let sdir = b.dir.join(format!("sshd-{}", n.name));
    mkdir_private(&sdir)?;
    let hk = sdir.join("ssh_host_ed25519_key");
    ssh_keygen(&hk, &format!("{}-{}", n.name, b.id))?;
    let pubk = read_lab_file(&client_key.with_extension("pub"))?;
    let ak = sdir.join("authorized_keys");
    write_private(&ak, &pubk)?;
    let hpub = read_lab_file(&hk.with_extension("pub"))?;
    let kh = sdir.join("known_hosts");
    write_private(&kh, &known_hosts_line(addr, &hpub))?;
    let cfgp = sdir.join("sshd_config");
    write_private(&cfgp, &sshd_config(addr, &hk, &ak))?;
    let sshd = require("sshd")?;
    let cmd = Cmd::new(sshd.to_string_lossy().into_owned())
        .netns(Some(node))
        .args(["-D", "-e", "-f"])
        .arg(cfgp.to_string_lossy().into_owned());
    b.spawn(
        cmd,
        &format!("sshd {} (lab {})", n.name, b.id),
        &format!("sshd-{}.log", n.name),
        "Server listening",
    )?;
    Ok(kh)
}

/// The simulator configuration of phone `i` of lab `id`: set up as
/// docs/real-lab.md asks of a lab's phones, with every other phone of the
/// lab as a contact in each of its apps.
fn phone_sim_config(t: &Topology, plan: &Plan, id: &str, ns: String, i: usize) -> PhoneSimConfig {
    let p = &t.phones[i];
    let mut c = PhoneSimConfig::new(&p.name);
    c.adb_keyboard = true;
    // Interrupting as real phones do: Android 13's notification
    // prompt on each app's first start, and one cold start in ten
    // shows a "what's new" sheet, the store, or an ANR dialog.
    c.interruptions = crate::phone::dialog::InterruptionConfig {
        notification_prompt: true,
        rate: 0.1,
    };
    c.netns = Some(ns);
    c.dns = Some(SocketAddr::new(IpAddr::V4(RESOLVER), 53));
    c.background = p.background;
    c.rooted = p.rooted;
    if let Some(m) = &p.model {
        c.model = m.clone();
    }
    c.wlan_addr = cidr(plan.phones[i], WLAN.1);
    c.wlan_gateway = plan.gateway.to_string();
    c.serialno = Some(format!("LAB{}{:02}", id.to_ascii_uppercase(), i));
    let apps: Vec<String> = p.apps.clone().unwrap_or_else(|| {
        crate::phone::apps::APPS
            .iter()
            .map(|a| a.id.to_string())
            .collect()
    });
    for app in &apps {
        let contacts = t
            .phones
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, q)| SimContact {
                name: q.name.clone(),
                account: q
                    .accounts
                    .get(app)
                    .cloned()
                    .unwrap_or_else(|| account(app, j)),
            })
            .collect();
        c.apps.insert(
            app.clone(),
            SimAppConfig {
                variant: p.variant,
                account: p
                    .accounts
                    .get(app)
                    .cloned()
                    .unwrap_or_else(|| account(app, i)),
                contacts,
                server: None,
            },
        );
    }
    c
}

/// Phone simulators (ADB on the host's loopback = the USB cable); returns
/// each phone's log and control socket.
fn start_phones(
    b: &mut Builder<'_>,
    opts: &UpOptions,
) -> Result<Vec<(PathBuf, PathBuf)>, LabError> {
    let mut phone_logs = Vec::new();
    for (i, p) in b.t.phones.iter().enumerate() {
        let c = phone_sim_config(b.t, b.plan, &b.id, b.ns(&p.name), i);
        let path = b.dir.join(format!("phone-{}.yaml", p.name));
        let yaml = serde_yaml_ng::to_string(&c).map_err(|e| LabError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_private(&path, &yaml)?;
        let ctl = b.dir.join(format!("phone-{}.sock", p.name));
        let cmd = Cmd::new(opts.exe.to_string_lossy().into_owned())
            .args(["lab-sim", "phone", "--config"])
            .arg(path.to_string_lossy().into_owned())
            .arg("--control")
            .arg(ctl.to_string_lossy().into_owned());
        let log = format!("phone-{}.log", p.name);
        b.spawn(
            cmd,
            &format!("phone {} (lab {})", p.name, b.id),
            &log,
            "ready",
        )?;
        phone_logs.push((b.dir.join("logs").join(log), ctl));
    }
    Ok(phone_logs)
}

/// The router, nodes and data centres as the lab description lists them.
fn node_descs(
    b: &Builder<'_>,
    tunnels: &[TunnelDesc],
    ssh: &[Option<SshEndpoint>],
) -> Vec<NodeDesc> {
    let (t, plan) = (b.t, b.plan);
    let router = b.ns("router");
    let router_desc = NodeDesc {
        name: "router".into(),
        country: t.country.clone(),
        addr: plan.router_uplink.down.to_string(),
        addr6: Some(v6(plan.router_uplink.down).to_string()),
        kind: "router".into(),
        asn: Some(t.asn),
        netns: Some(router.clone()),
        exec: ipl!["ip", "netns", "exec", router],
        ssh: None,
        tunnel: None,
        apps: BTreeMap::new(),
        apps6: BTreeMap::new(),
    };
    let mut nodes = vec![router_desc];
    for (i, (n, np)) in t.nodes.iter().zip(&plan.nodes).enumerate() {
        let ns = b.ns(&n.name);
        nodes.push(NodeDesc {
            name: n.name.clone(),
            country: n.country.clone(),
            addr: np.uplink.down.to_string(),
            addr6: Some(v6(np.uplink.down).to_string()),
            kind: "node".into(),
            asn: Some(n.asn),
            netns: Some(ns.clone()),
            exec: ipl!["ip", "netns", "exec", ns],
            ssh: ssh[i].clone(),
            tunnel: Some(tunnels[i].clone()),
            apps: BTreeMap::new(),
            apps6: BTreeMap::new(),
        });
    }
    for (d, dp) in t.datacenters.iter().zip(&plan.dcs) {
        let ns = b.ns(&d.name);
        let addr = d
            .apps
            .first()
            .and_then(|a| dp.apps.get(a))
            .copied()
            .or(dp.noise)
            .unwrap_or(dp.chain[0].down);
        nodes.push(NodeDesc {
            name: d.name.clone(),
            country: d.country.clone(),
            addr: addr.to_string(),
            addr6: Some(v6(addr).to_string()),
            kind: "server".into(),
            asn: Some(d.asn),
            netns: Some(ns.clone()),
            exec: ipl!["ip", "netns", "exec", ns],
            ssh: None,
            tunnel: None,
            apps: dp
                .apps
                .iter()
                .map(|(a, ip)| (a.clone(), ip.to_string()))
                .collect(),
            apps6: dp
                .apps
                .iter()
                .map(|(a, ip)| (a.clone(), v6(*ip).to_string()))
                .collect(),
        });
    }
    nodes
}

/// The serial and ADB address a phone simulator announced on its
/// `ready phone=… serial=… adb=…` log line (empty when absent).
fn ready_fields(log_text: &str) -> (String, String) {
    let line = log_text
        .lines()
        .find(|l| l.starts_with("ready phone="))
        .unwrap_or("");
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or("")
            .to_string()
    };
    (field("serial="), field("adb="))
}

/// The phones as the lab description lists them (serial and ADB address
/// from each simulator's ready line).
fn phone_descs(
    b: &Builder<'_>,
    phone_logs: &[(PathBuf, PathBuf)],
    phone_rules: &[u32],
) -> Vec<PhoneDesc> {
    let (t, plan) = (b.t, b.plan);
    let mut phones = Vec::new();
    for (i, p) in t.phones.iter().enumerate() {
        let (serial, adb, control) = match phone_logs.get(i) {
            Some((log, ctl)) => {
                let (serial, adb) = ready_fields(&std::fs::read_to_string(log).unwrap_or_default());
                (serial, adb, Some(ctl.clone()))
            }
            None => (String::new(), String::new(), None),
        };
        phones.push(PhoneDesc {
            name: p.name.clone(),
            serial,
            adb,
            addr: plan.phones[i].to_string(),
            addr6: Some(v6(plan.phones[i]).to_string()),
            node: p.node.clone(),
            rule_priority: phone_rules[i],
            netns: Some(b.ns(&p.name)),
            control,
        });
    }
    phones
}

/// The lab description (after the lab's adb server and mmdb), once every
/// tunnel works: a lab is not declared up before.
fn describe(
    b: &mut Builder<'_>,
    opts: &UpOptions,
    wlan_if: String,
    tunnels: &[TunnelDesc],
    ssh: &[Option<SshEndpoint>],
    phone_logs: &[(PathBuf, PathBuf)],
    phone_rules: &[u32],
) -> Result<LabDesc, LabError> {
    let nodes = node_descs(b, tunnels, ssh);
    let phones = phone_descs(b, phone_logs, phone_rules);
    let adb_server = if phones.iter().any(|p| !p.adb.is_empty()) {
        Some(connect_adb_server(b, &phones)?)
    } else {
        None
    };
    let mmdb = b.dir.join("lab.mmdb");
    super::geo::write_mmdb(b.t, b.plan, &mmdb)?;
    let desc = LabDesc {
        schema: matador::net::labdesc::SCHEMA.into(),
        name: b.t.name.clone(),
        id: b.id.clone(),
        virtual_lab: true,
        nodes,
        phones,
        resolver: RESOLVER.to_string(),
        resolver6: Some(v6(RESOLVER).to_string()),
        wlan_if,
        mmdb: Some(mmdb),
        state: Some(b.st.path().to_path_buf()),
        node_matador: Some(opts.exe.clone()),
        allowed_targets: super::topology::LAB_NETWORKS.map(String::from).to_vec(),
        adb_server,
    };
    for c in tunnel_checks(&desc) {
        b.cancelled()?;
        matador::net::health::check_tunnel(&c)?;
    }
    Ok(desc)
}

/// Starts the lab's own adb server (Debian's real `adb`) on a free port and
/// connects every simulated phone to it, as a USB hub would. Its stop is
/// recorded before the start, so teardown (also of a stale lab) kills it.
fn connect_adb_server(b: &mut Builder, phones: &[PhoneDesc]) -> Result<u16, LabError> {
    // A free port now; adb binds it a moment later (a race only with another
    // program picking the same ephemeral port in between).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| LabError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })?
        .port()
        .to_string();
    b.st.add(Resource::Undo {
        argv: ipl!["adb", "-P", port.clone(), "kill-server"],
    })?;
    Cmd::new("adb").args(["-P", &port, "start-server"]).run()?;
    for p in phones.iter().filter(|p| !p.adb.is_empty()) {
        let out = Cmd::new("adb")
            .args(["-P", &port, "connect", &p.adb])
            .run()?;
        if !out.contains("connected to") {
            return Err(LabError::Process {
                what: format!("phone {} on the lab adb server (port {port})", p.name),
                message: format!("adb connect {} answered: {}", p.adb, out.trim()),
            });
        }
    }
    port.parse().map_err(|_| LabError::Process {
        what: "lab adb server".into(),
        message: format!("bad port {port}"),
    })
}

/// dnsmasq options common to the lab's resolvers (`dual`: also listen on
/// the address's IPv6 twin).
fn dnsmasq_base(listen: Ipv4Addr, dual: bool) -> Vec<String> {
    let mut v = ipl![
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        format!("--listen-address={listen}"),
        "--except-interface=nonexistent0",
        "--user=root",
        "--group=root",
        "--pid-file=",
        "--log-facility=-",
        "--cache-size=0"
    ];
    if dual {
        v.push(format!("--listen-address={}", v6(listen)));
    }
    v
}

/// One lab found in a state directory.
#[derive(Debug, Clone)]
pub struct LabEntry {
    /// Lab id.
    pub id: String,
    /// State file.
    pub state_path: PathBuf,
    /// Phase.
    pub phase: Phase,
    /// Whether its owner died before it was detached (removed on next up).
    pub stale: bool,
    /// Its description, if written.
    pub desc: Option<LabDesc>,
    /// Recorded processes and whether they run.
    pub processes: Vec<(String, bool)>,
}

/// Lists the labs recorded in `state_dir`.
pub fn list(state_dir: &Path) -> Vec<LabEntry> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(state_dir) else {
        return v;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Ok(s) = StateFile::load(&p) else { continue };
        let desc = s
            .state()
            .info
            .get("lab_json")
            .and_then(|x| x.as_str())
            .and_then(|x| LabDesc::read(Path::new(x)).ok());
        let processes = s
            .state()
            .resources
            .iter()
            .filter_map(|r| match r {
                Resource::Process { pid, start, name } => Some((name.clone(), alive(*pid, *start))),
                _ => None,
            })
            .collect();
        v.push(LabEntry {
            id: s.state().id.clone(),
            state_path: p,
            phase: s.state().phase,
            stale: s.is_stale(),
            desc,
            processes,
        });
    }
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// Tears down the lab `id` in `state_dir` (any phase); returns problems met.
pub fn down(state_dir: &Path, id: &str) -> Result<Vec<String>, LabError> {
    let p = state_dir.join(format!("{id}.json"));
    if !p.exists() {
        return Err(LabError::Select(format!(
            "no lab {id} in {}",
            state_dir.display()
        )));
    }
    Ok(StateFile::load(&p)?.teardown())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> (Topology, Plan) {
        let t = Topology::load(&Topology::demo_path()).unwrap();
        let p = Plan::new(&t).unwrap();
        (t, p)
    }

    #[test]
    fn namespaces_follow_the_topology() {
        let (mut t, _) = demo();
        let (all, fwd) = namespace_roles(&t);
        assert_eq!(&all[..4], ["router", "core", "lab-a", "lab-b"]);
        // de-1 (2 hops), de-2 (1), br-1 (3), then the censor.
        assert_eq!(
            &all[4..14],
            [
                "de-1", "de-1-h1", "de-1-h2", "de-2", "de-2-h1", "br-1", "br-1-h1", "br-1-h2",
                "br-1-h3", "censor"
            ]
        );
        // us-east: 2 hops and two parallel ones.
        assert_eq!(
            &all[14..19],
            [
                "us-east",
                "us-east-h1",
                "us-east-h2",
                "us-east-mpa",
                "us-east-mpb"
            ]
        );
        // Phones and data centres end routes, they do not forward.
        for leaf in ["lab-a", "lab-b", "us-east"] {
            assert!(!fwd.iter().any(|f| f == leaf), "{leaf}");
        }
        assert!(fwd.iter().all(|f| all.contains(f)));
        let set: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len(), "namespace names unique");
        // Without a censor there is no censor namespace.
        t.censor = None;
        let (all2, _) = namespace_roles(&t);
        assert_eq!(all2.len() + 1, all.len());
        assert!(!all2.iter().any(|n| n == "censor"));
    }

    #[test]
    fn censor_rules_divert_names_and_reset() {
        let c = super::super::topology::CensorDecl {
            node: "de-1".into(),
            forge_dns: [("blocked.example".to_string(), Ipv4Addr::new(198, 18, 7, 7))].into(),
            rst_keywords: vec!["signal.org".into()],
            rst_syn_to: vec![Ipv4Addr::new(198, 19, 1, 2)],
            race: None,
        };
        let r = censor_rules(&c);
        assert_eq!(r.len(), 3);
        let line = r[0].join(" ");
        assert!(
            line.starts_with("-t nat -A PREROUTING -p udp --dport 53"),
            "{line}"
        );
        // The query name in DNS wire form (length-prefixed labels).
        assert!(
            line.contains("--hex-string |07626c6f636b6564076578616d706c6500|"),
            "{line}"
        );
        assert!(
            line.ends_with("-j DNAT --to-destination 198.18.97.53:53"),
            "{line}"
        );
        assert_eq!(
            r[1].join(" "),
            "-A FORWARD -p tcp -m string --algo bm --string signal.org -j REJECT --reject-with tcp-reset"
        );
        assert_eq!(
            r[2].join(" "),
            "-A FORWARD -p tcp --syn -d 198.19.1.2 -j REJECT --reject-with tcp-reset"
        );
    }

    #[test]
    fn resolvers_answer_the_zone_in_both_families_unless_overridden() {
        let (mut t, p) = demo();
        let zone = dns_zone(&p);
        // The demo's data centres host apps and the background names.
        assert!(zone.contains_key("connectivitycheck.gstatic.com"));
        let app_host = crate::phone::apps::app_def("whatsapp").unwrap().host;
        assert!(zone.contains_key(app_host));
        let n = &mut t.nodes[0];
        n.dns.clear();
        n.dns
            .insert(app_host.to_string(), Ipv4Addr::new(198, 18, 5, 5));
        n.dns
            .insert("extra.example".into(), Ipv4Addr::new(198, 18, 5, 6));
        let args = resolver_addresses(n, &zone);
        let ip = zone["connectivitycheck.gstatic.com"];
        assert!(args.contains(&format!("--address=/connectivitycheck.gstatic.com/{ip}")));
        assert!(args.contains(&format!(
            "--address=/connectivitycheck.gstatic.com/{}",
            v6(ip)
        )));
        // The override replaces both answers; extra names are A only.
        let for_app: Vec<_> = args.iter().filter(|a| a.contains(app_host)).collect();
        assert_eq!(for_app, [&format!("--address=/{app_host}/198.18.5.5")]);
        assert_eq!(args.last().unwrap(), "--address=/extra.example/198.18.5.6");
        // Two answers per zone name, one for the override and the extra.
        assert_eq!(args.len(), 2 * zone.len());
    }

    #[test]
    fn sshd_accepts_keys_only_on_the_management_address() {
        let cfg = sshd_config(
            Ipv4Addr::new(198, 19, 252, 2),
            Path::new("/l/hk"),
            Path::new("/l/ak"),
        );
        for line in [
            "ListenAddress 198.19.252.2",
            "HostKey /l/hk",
            "AuthorizedKeysFile /l/ak",
            "PasswordAuthentication no",
            "AcceptEnv MATADOR_*",
        ] {
            assert!(cfg.lines().any(|l| l == line), "{line}");
        }
        assert_eq!(
            known_hosts_line(
                Ipv4Addr::new(198, 19, 252, 2),
                "ssh-ed25519 AAAAC3 de-1-abcde\n"
            ),
            "198.19.252.2 ssh-ed25519 AAAAC3\n"
        );
    }

    #[test]
    fn phone_configs_know_every_other_phone() {
        let (t, p) = demo();
        let c = phone_sim_config(&t, &p, "ab12c", "mtab12c-lab-b".into(), 1);
        assert_eq!(c.serialno.as_deref(), Some("LABAB12C01"));
        assert_eq!(c.netns.as_deref(), Some("mtab12c-lab-b"));
        assert_eq!(c.wlan_addr, format!("{}/{}", p.phones[1], WLAN.1));
        assert!(c.adb_keyboard);
        let wa = &c.apps["whatsapp"];
        assert_eq!(wa.account, "+4915100000002");
        assert_eq!(wa.contacts.len(), 1);
        assert_eq!(wa.contacts[0].name, "lab-a");
        assert_eq!(wa.contacts[0].account, "+4915100000001");
        assert_eq!(phone_rule_priority(1), 1001);
    }

    #[test]
    fn ready_line_gives_serial_and_adb() {
        let log = "starting\nready phone=lab-a serial=LAB1 adb=127.0.0.1:40001 control=/x\n";
        assert_eq!(
            ready_fields(log),
            ("LAB1".to_string(), "127.0.0.1:40001".to_string())
        );
        assert_eq!(ready_fields("crashed\n"), (String::new(), String::new()));
    }
}
