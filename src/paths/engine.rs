//! The raw-socket traceroute engine: many targets at once, one global
//! packets-per-second budget.
//!
//! One thread sends and schedules; one thread per receive socket (ICMPv4,
//! ICMPv6, TCP replies) parses what arrives and hands matched candidates
//! over a channel. Sockets are opened by a short-lived thread that entered
//! the requested network namespace, so they live in that namespace while
//! the rest of the engine runs anywhere.
//!
//! Per trace, TTLs are probed in order: all probes of a TTL are queued
//! together; the next TTL starts as soon as the current one got a
//! time-exceeded answer (it cannot be the destination), its first probe
//! timed out (a silent or rate-limited hop) or all its probes ended. The
//! probes of one hop go one after the other (the next when the previous is
//! answered or `spread` passed), which eases routers' ICMP rate limits. `window` bounds how many TTLs may be pending
//! that way, so the default never probes past the destination.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::model::{
    Answer, Hop, Proto, Reply, StopReason, TRACE_SCHEMA, Trace, detect_injected_rst, tcp_flags,
    unreach_err, unreach_stop,
};
use super::packet::{self, ParsedReply, ProbeKey, ProbeSpec, ReplyKind};
use super::{PathsError, sys};

/// Settings of a run (shared by all its targets unless a [`Target`]
/// overrides protocol, port or Paris id).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// Probe protocol.
    pub proto: Proto,
    /// Destination port for UDP/TCP (`None`: 33434 for UDP, 443 for TCP).
    pub port: Option<u16>,
    /// First TTL probed.
    pub first_ttl: u8,
    /// Last TTL probed.
    pub max_ttl: u8,
    /// Probes per hop.
    pub probes: u8,
    /// Global sending budget, packets per second (all targets together).
    pub pps: u32,
    /// How long to wait for each probe's answer.
    pub wait: Duration,
    /// Consecutive silent hops after which a trace gives up.
    pub gap_limit: u8,
    /// Flow identifier (RIPE Atlas `paris_id`): same id, same ECMP path.
    pub paris_id: u16,
    /// TTLs that may be awaiting their first answer at once (1: strictly
    /// hop by hop; more: faster across silent hops, may overshoot).
    pub window: u8,
    /// Probe size in bytes, IP header included (`None`: 60 for IPv4, 80
    /// for IPv6; TCP SYNs are always bare headers).
    pub size: Option<u16>,
    /// How long a repeat probe of a hop waits for the previous probe's
    /// answer before going anyway (`None`: the whole `wait`, as scamper
    /// does). Spacing the probes of a hop eases routers' ICMP rate limits.
    pub spread: Option<Duration>,
    /// Refuse targets outside the virtual lab's 198.18.0.0/15 and fd00::/8.
    pub lab_only: bool,
    /// Network namespace to probe from (name under /run/netns or a path).
    pub netns: Option<String>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            proto: Proto::Udp,
            port: None,
            first_ttl: 1,
            max_ttl: 30,
            probes: 3,
            pps: 100,
            wait: Duration::from_secs(2),
            gap_limit: 5,
            paris_id: 1,
            window: 1,
            size: None,
            spread: None,
            lab_only: false,
            netns: None,
        }
    }
}

/// One destination of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Address probed.
    pub addr: IpAddr,
    /// Name it came from, if any (stored as `dst_name`).
    pub name: Option<String>,
    /// Protocol for this target (default: the run's).
    pub proto: Option<Proto>,
    /// Port for this target (default: the run's): the app's server port for
    /// an in-protocol application path.
    pub port: Option<u16>,
    /// Paris id for this target (default: the run's).
    pub paris_id: Option<u16>,
}

impl Target {
    /// A target with the run's settings.
    pub fn addr(addr: IpAddr) -> Self {
        Target {
            addr,
            name: None,
            proto: None,
            port: None,
            paris_id: None,
        }
    }
}

/// Base of the flow port (UDP/TCP source port, ICMP id): `FLOW_BASE + paris_id`.
pub const FLOW_BASE: u16 = 40000;

/// Is `ip` inside the virtual lab's address space?
pub fn in_lab_space(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            u32::from(a) >> 17 == u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) >> 17
        }
        IpAddr::V6(a) => a.octets()[0] == 0xfd,
    }
}

struct Slot {
    seq: u16,
    sent: Option<Instant>,
    done: bool,
    reply: Option<(Answer, ReplyKind)>,
}

struct TtlState {
    slots: Vec<Slot>,
    cleared: bool,
}

impl TtlState {
    fn resolved(&self) -> bool {
        self.slots.iter().all(|s| s.done)
    }
}

struct Run {
    dst: IpAddr,
    name: Option<String>,
    src: Option<IpAddr>,
    proto: Proto,
    dport: u16,
    paris_id: u16,
    flow: u16,
    icmp_sum: u16,
    size: u16,
    next_seq: u16,
    next_ttl: u8,
    finalized: u8,
    gap: u8,
    /// Probes to send: TTL, slot, not before.
    queue: VecDeque<(u8, u16, Instant)>,
    ttls: BTreeMap<u8, TtlState>,
    stop: Option<(StopReason, u8)>,
    error: Option<String>,
    packets: u32,
    start: SystemTime,
    end: Option<SystemTime>,
}

/// Sockets of a run, opened inside the namespace.
struct Sockets {
    send4: Option<Socket>,
    send6: Option<Socket>,
    recv: Vec<(Socket, RecvKind)>,
}

#[derive(Clone, Copy)]
enum RecvKind {
    V4,
    Icmp6,
    Tcp6,
}

fn raw(domain: Domain, proto: i32, what: &str) -> Result<Socket, PathsError> {
    Socket::new(domain, Type::RAW, Some(Protocol::from(proto))).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
            PathsError::RawSocketDenied {
                what: what.to_string(),
                source: e,
            }
        } else {
            PathsError::Socket {
                what: what.to_string(),
                source: e,
            }
        }
    })
}

fn sockerr(what: &str) -> impl Fn(std::io::Error) -> PathsError + '_ {
    move |e| PathsError::Socket {
        what: what.to_string(),
        source: e,
    }
}

fn open_sockets(v4: bool, v6: bool, tcp4: bool, tcp6: bool) -> Result<Sockets, PathsError> {
    let mut s = Sockets {
        send4: None,
        send6: None,
        recv: Vec::new(),
    };
    // Receivers poll the stop flag this often.
    let rt = Some(Duration::from_millis(20));
    if v4 {
        let send = raw(Domain::IPV4, libc::IPPROTO_RAW, "raw IPv4 send socket")?;
        send.set_header_included_v4(true)
            .map_err(sockerr("IP_HDRINCL"))?;
        s.send4 = Some(send);
        let icmp = raw(Domain::IPV4, libc::IPPROTO_ICMP, "raw ICMP socket")?;
        icmp.set_read_timeout(rt).map_err(sockerr("SO_RCVTIMEO"))?;
        s.recv.push((icmp, RecvKind::V4));
        if tcp4 {
            let tcp = raw(Domain::IPV4, libc::IPPROTO_TCP, "raw TCP socket")?;
            tcp.set_read_timeout(rt).map_err(sockerr("SO_RCVTIMEO"))?;
            s.recv.push((tcp, RecvKind::V4));
        }
    }
    if v6 {
        let send = raw(Domain::IPV6, libc::IPPROTO_RAW, "raw IPv6 send socket")?;
        send.set_header_included_v6(true)
            .map_err(sockerr("IPV6_HDRINCL"))?;
        s.send6 = Some(send);
        let icmp = raw(Domain::IPV6, libc::IPPROTO_ICMPV6, "raw ICMPv6 socket")?;
        icmp.set_recv_hoplimit_v6(true)
            .map_err(sockerr("IPV6_RECVHOPLIMIT"))?;
        icmp.set_read_timeout(rt).map_err(sockerr("SO_RCVTIMEO"))?;
        s.recv.push((icmp, RecvKind::Icmp6));
        if tcp6 {
            let tcp = raw(Domain::IPV6, libc::IPPROTO_TCP, "raw TCPv6 socket")?;
            tcp.set_recv_hoplimit_v6(true)
                .map_err(sockerr("IPV6_RECVHOPLIMIT"))?;
            tcp.set_read_timeout(rt).map_err(sockerr("SO_RCVTIMEO"))?;
            s.recv.push((tcp, RecvKind::Tcp6));
        }
    }
    Ok(s)
}

/// The source address the kernel would use towards `dst`.
fn route_source(dst: IpAddr) -> std::io::Result<IpAddr> {
    let domain = if dst.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, None)?;
    s.connect(&SockAddr::from(SocketAddr::new(dst, 33434)))?;
    s.local_addr()?
        .as_socket()
        .map(|a| a.ip())
        .ok_or_else(|| std::io::Error::other("no local address"))
}

/// Runs `f` on a thread that entered `netns` first (or on a plain thread).
fn in_netns<T: Send>(
    netns: Option<&str>,
    f: impl FnOnce() -> Result<T, PathsError> + Send,
) -> Result<T, PathsError> {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            if let Some(ns) = netns {
                sys::enter_netns(ns).map_err(|e| PathsError::Netns {
                    netns: ns.to_string(),
                    source: e,
                })?;
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(PathsError::Socket {
                what: "namespace thread".into(),
                source: std::io::Error::other("panicked"),
            })
        })
    })
}

fn receiver(
    sock: &Socket,
    kind: RecvKind,
    stop: &AtomicBool,
    tx: &mpsc::Sender<(ParsedReply, Instant)>,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let parsed = match kind {
            RecvKind::V4 => {
                use std::io::Read;
                match (&mut &*sock).read(&mut buf) {
                    Ok(n) => packet::parse_v4(&buf[..n]),
                    Err(_) => continue,
                }
            }
            RecvKind::Icmp6 | RecvKind::Tcp6 => match sys::recv_v6(sock, &mut buf) {
                Ok((n, from, hlim)) => {
                    let from = IpAddr::V6(from);
                    let hlim = hlim.unwrap_or(0);
                    if matches!(kind, RecvKind::Icmp6) {
                        packet::parse_icmp6(from, &buf[..n], hlim)
                    } else {
                        let size = (n + 40).min(65535) as u16;
                        packet::parse_tcp(from, &buf[..n], hlim, size)
                    }
                }
                Err(_) => continue,
            },
        };
        let now = Instant::now();
        if let Some(p) = parsed
            && tx.send((p, now)).is_err()
        {
            return;
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Constant ICMP checksum of a Paris id (any value works; it must not
/// change between the probes of one flow).
fn icmp_sum_of(paris_id: u16) -> u16 {
    0x8000 ^ paris_id.rotate_left(5)
}

/// Traces every target; blocks until all are done. Errors only when nothing
/// can be measured at all (bad settings, raw sockets refused, unknown
/// namespace, lab-space violation); a target without a route yields a
/// trace with `stop_reason: error` and its `error` text.
pub fn trace(cfg: &TraceConfig, targets: &[Target]) -> Result<Vec<Trace>, PathsError> {
    if cfg.probes == 0 || cfg.probes > 16 {
        return Err(PathsError::Config(format!(
            "probes per hop must be 1..=16, not {}",
            cfg.probes
        )));
    }
    if cfg.first_ttl == 0 || cfg.max_ttl < cfg.first_ttl {
        return Err(PathsError::Config(format!(
            "TTL range {}..={} is empty",
            cfg.first_ttl, cfg.max_ttl
        )));
    }
    if cfg.pps == 0 || cfg.window == 0 {
        return Err(PathsError::Config(
            "pps and window must be at least 1".into(),
        ));
    }
    if cfg.lab_only
        && let Some(t) = targets.iter().find(|t| !in_lab_space(t.addr))
    {
        return Err(PathsError::OutsideLab(t.addr));
    }
    let proto_of = |t: &Target| t.proto.unwrap_or(cfg.proto);
    let v4 = targets.iter().any(|t| t.addr.is_ipv4());
    let v6 = targets.iter().any(|t| t.addr.is_ipv6());
    let tcp4 = targets
        .iter()
        .any(|t| t.addr.is_ipv4() && proto_of(t) == Proto::Tcp);
    let tcp6 = targets
        .iter()
        .any(|t| t.addr.is_ipv6() && proto_of(t) == Proto::Tcp);
    let addrs: Vec<IpAddr> = targets.iter().map(|t| t.addr.to_canonical()).collect();
    let (socks, sources) = in_netns(cfg.netns.as_deref(), || {
        let s = open_sockets(v4, v6, tcp4, tcp6)?;
        let src: Vec<Result<IpAddr, String>> = addrs
            .iter()
            .map(|d| route_source(*d).map_err(|e| format!("no route to {d}: {e}")))
            .collect();
        Ok((s, src))
    })?;

    let now = SystemTime::now();
    // Probe numbers start at a per-run offset so two runs tracing the same
    // flow at the same time (both see every reply) rarely share numbers;
    // the offset is not part of the flow, so the path does not change.
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = nanos ^ std::process::id().rotate_left(16);
    let mut runs: Vec<Run> = targets
        .iter()
        .zip(sources)
        .enumerate()
        .map(|(i, (t, src))| {
            let proto = proto_of(t);
            let paris_id = t.paris_id.unwrap_or(cfg.paris_id);
            let dst = t.addr.to_canonical();
            let default_size = if dst.is_ipv6() { 80 } else { 60 };
            let (src, error) = match src {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            Run {
                dst,
                name: t.name.clone(),
                src,
                proto,
                dport: t.port.or(cfg.port).unwrap_or(match proto {
                    Proto::Tcp => 443,
                    _ => 33434,
                }),
                paris_id,
                flow: FLOW_BASE.wrapping_add(paris_id),
                icmp_sum: icmp_sum_of(paris_id),
                size: cfg.size.unwrap_or(default_size),
                next_seq: (seed.wrapping_add(i as u32 * 7919) % 0xfff0) as u16 + 1,
                next_ttl: cfg.first_ttl,
                finalized: cfg.first_ttl - 1,
                gap: 0,
                queue: VecDeque::new(),
                ttls: BTreeMap::new(),
                stop: error.as_ref().map(|_| (StopReason::Error, 0)),
                error,
                packets: 0,
                start: now,
                end: None,
            }
        })
        .collect();

    // Receivers are detached: they notice the stop flag (or the closed
    // channel) within one read timeout and close their sockets, so the
    // caller does not wait for them.
    let stop_flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(ParsedReply, Instant)>();
    let Sockets { send4, send6, recv } = socks;
    for (sock, kind) in recv {
        let tx = tx.clone();
        let stop_flag = Arc::clone(&stop_flag);
        std::thread::Builder::new()
            .name("trace-recv".into())
            .spawn(move || receiver(&sock, kind, &stop_flag, &tx))
            .map_err(sockerr("spawning a receiver thread"))?;
    }
    drop(tx);
    let socks = Sockets {
        send4,
        send6,
        recv: Vec::new(),
    };
    let r = drive(cfg, &mut runs, &socks, &rx);
    stop_flag.store(true, Ordering::Relaxed);
    r?;

    Ok(runs.into_iter().map(|r| finish(cfg, r)).collect())
}

/// Where a probe key points: run index, TTL, slot index.
type Pending = HashMap<ProbeKey, (usize, u8, usize)>;

fn drive(
    cfg: &TraceConfig,
    runs: &mut [Run],
    socks: &Sockets,
    rx: &mpsc::Receiver<(ParsedReply, Instant)>,
) -> Result<(), PathsError> {
    let mut pending: Pending = HashMap::new();
    let rate = f64::from(cfg.pps);
    // A little burst lets the sender catch up after a late wake-up instead
    // of losing tokens (which would undershoot the configured rate).
    let burst = (rate * 0.02).max(2.0);
    let mut tokens = 1.0f64;
    let mut last_refill = Instant::now();
    let mut rr = 0usize;
    loop {
        let now = Instant::now();
        // Timeouts.
        for run in runs.iter_mut().filter(|r| r.stop.is_none()) {
            for st in run.ttls.values_mut() {
                for s in st.slots.iter_mut().filter(|s| !s.done) {
                    if let Some(t) = s.sent
                        && now.duration_since(t) >= cfg.wait
                    {
                        s.done = true;
                    }
                }
            }
        }
        // Progress and scheduling.
        for (i, run) in runs.iter_mut().enumerate() {
            if run.stop.is_none() {
                advance(cfg, run);
                if run.stop.is_some() {
                    run.end = Some(SystemTime::now());
                    pending.retain(|_, (ri, _, _)| *ri != i);
                }
            }
        }
        if runs.iter().all(|r| r.stop.is_some()) {
            return Ok(());
        }
        // Sending, paced by the global token bucket, round-robin over runs.
        let t = Instant::now();
        tokens = (tokens + t.duration_since(last_refill).as_secs_f64() * rate).min(burst);
        last_refill = t;
        let n = runs.len();
        let mut idle = 0;
        while tokens >= 1.0 && idle < n {
            rr = (rr + 1) % n;
            let run = &mut runs[rr];
            let ready = if run.stop.is_none() {
                run.queue.iter().position(|e| {
                    ready_at(run, e, cfg.spread.unwrap_or(cfg.wait)).is_some_and(|r| r <= t)
                })
            } else {
                None
            };
            let Some((ttl, slot, _)) = ready.and_then(|i| run.queue.remove(i)) else {
                idle += 1;
                continue;
            };
            idle = 0;
            tokens -= 1.0;
            send_probe(socks, run, rr, ttl, slot, &mut pending)?;
        }
        // Wait for a reply, the next token or the next timeout.
        let next_ready = runs
            .iter()
            .filter(|r| r.stop.is_none())
            .flat_map(|r| {
                r.queue
                    .iter()
                    .filter_map(|e| ready_at(r, e, cfg.spread.unwrap_or(cfg.wait)))
            })
            .min();
        let mut wake = Instant::now() + Duration::from_millis(50);
        if let Some(nb) = next_ready {
            let need = ((1.0 - tokens).max(0.0) / rate).min(0.05);
            wake = wake.min(nb.max(Instant::now() + Duration::from_secs_f64(need)));
        }
        for run in runs.iter().filter(|r| r.stop.is_none()) {
            for st in run.ttls.values() {
                for s in st.slots.iter().filter(|s| !s.done) {
                    if let Some(t) = s.sent {
                        wake = wake.min(t + cfg.wait);
                    }
                }
            }
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok((r, at)) => {
                deliver(runs, &pending, r, at);
                while let Ok((r, at)) = rx.try_recv() {
                    deliver(runs, &pending, r, at);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PathsError::Socket {
                    what: "receiver threads".into(),
                    source: std::io::Error::other("all receivers stopped"),
                });
            }
        }
    }
}

fn send_probe(
    socks: &Sockets,
    run: &mut Run,
    idx: usize,
    ttl: u8,
    slot: u16,
    pending: &mut Pending,
) -> Result<(), PathsError> {
    let Some(src) = run.src else {
        return Ok(());
    };
    let seq = run.ttls[&ttl].slots[usize::from(slot)].seq;
    let spec = ProbeSpec {
        src,
        dst: run.dst,
        proto: run.proto,
        flow: run.flow,
        dport: run.dport,
        icmp_sum: run.icmp_sum,
        ttl,
        seq,
        size: run.size,
    };
    let pkt = packet::build_probe(&spec);
    let sock = if run.dst.is_ipv6() {
        socks.send6.as_ref()
    } else {
        socks.send4.as_ref()
    };
    let key = ProbeKey {
        dst: run.dst,
        proto: run.proto,
        flow: run.flow,
        seq,
    };
    pending.insert(key, (idx, ttl, usize::from(slot)));
    let sent_at = Instant::now();
    let res = match sock {
        Some(s) => s.send_to(&pkt, &SockAddr::from(SocketAddr::new(run.dst, 0))),
        None => Err(std::io::Error::other("no socket for this address family")),
    };
    let st = run.ttls.get_mut(&ttl).expect("ttl state exists");
    let s = &mut st.slots[usize::from(slot)];
    match res {
        Ok(_) => {
            s.sent = Some(sent_at);
            run.packets += 1;
        }
        Err(e) => {
            // A local refusal (no route, firewall): the probe is lost.
            s.done = true;
            if run.error.is_none() {
                run.error = Some(format!("sending to {}: {e}", run.dst));
            }
        }
    }
    Ok(())
}

fn deliver(runs: &mut [Run], pending: &Pending, r: ParsedReply, at: Instant) {
    let Some(&(ri, ttl, si)) = pending.get(&r.key) else {
        return;
    };
    let run = &mut runs[ri];
    let is_v6 = run.dst.is_ipv6();
    let Some(st) = run.ttls.get_mut(&ttl) else {
        return;
    };
    let Some(slot) = st.slots.get_mut(si) else {
        return;
    };
    let (Some(sent), None) = (slot.sent, &slot.reply) else {
        return;
    };
    // A TCP answer must come from the destination itself.
    if matches!(r.kind, ReplyKind::Tcp(_) | ReplyKind::EchoReply) && r.from != run.dst {
        return;
    }
    let rtt = at.saturating_duration_since(sent).as_secs_f64() * 1000.0;
    let answer = Answer {
        from: r.from,
        rtt: (rtt * 1000.0).round() / 1000.0,
        ttl: r.ttl,
        size: r.size,
        err: match r.kind {
            ReplyKind::Unreachable(code) => {
                let e = unreach_err(is_v6, code);
                // Port unreachable from the destination is the normal UDP answer.
                (!(e == "p" && r.from == run.dst)).then_some(e)
            }
            _ => None,
        },
        flags: match r.kind {
            ReplyKind::Tcp(f) => Some(tcp_flags(f)),
            _ => None,
        },
        ittl: r.quoted_ttl.filter(|t| *t != 1),
        icmpext: r.ext,
        injected: None,
    };
    if r.kind == ReplyKind::TimeExceeded {
        st.cleared = true;
    }
    slot.reply = Some((answer, r.kind));
    slot.done = true;
}

/// The first probe of a hop timed out: the hop is silent or rate limited,
/// and (unless a late destination answer says otherwise) not the target,
/// so the next TTL need not wait for the hop's remaining probes.
fn first_lost(st: &TtlState) -> bool {
    st.slots
        .first()
        .is_some_and(|s| s.done && s.reply.is_none())
}

/// When a queued probe may go: the first probe of a hop at once; a repeat
/// once the previous probe of its hop was answered or timed out, or `spread`
/// after it was sent. Spacing the probes of a hop lets routers that rate
/// limit their ICMP errors (Linux: a burst of 6, then a steady rate per
/// source) answer more distinct hops, while a silent hop still costs about
/// one wait. `None`: not yet known (the previous probe is not sent).
fn ready_at(
    run: &Run,
    &(ttl, slot, queued): &(u8, u16, Instant),
    spread: Duration,
) -> Option<Instant> {
    if slot == 0 {
        return Some(queued);
    }
    let prev = run.ttls.get(&ttl)?.slots.get(usize::from(slot) - 1)?;
    if prev.done {
        return Some(queued);
    }
    prev.sent.map(|s| (s + spread).max(queued))
}

/// Finalises resolved TTLs in order, decides stops, queues the next TTLs.
fn advance(cfg: &TraceConfig, run: &mut Run) {
    let is_v6 = run.dst.is_ipv6();
    while let Some(st) = run.ttls.get(&(run.finalized + 1)) {
        if !st.resolved() {
            break;
        }
        let t = run.finalized + 1;
        run.finalized = t;
        let replies: Vec<&(Answer, ReplyKind)> =
            st.slots.iter().filter_map(|s| s.reply.as_ref()).collect();
        let from_dst = replies.iter().any(|(a, k)| {
            a.from == run.dst
                && matches!(
                    k,
                    ReplyKind::EchoReply | ReplyKind::Tcp(_) | ReplyKind::Unreachable(_)
                )
        });
        let unreach = replies.iter().find_map(|(a, k)| match k {
            ReplyKind::Unreachable(c) if a.from != run.dst => Some(*c),
            _ => None,
        });
        if from_dst {
            run.stop = Some((StopReason::Reached, t));
        } else if let Some(code) = unreach {
            run.stop = Some((unreach_stop(is_v6, code), t));
        } else if replies.is_empty() {
            run.gap += 1;
            if cfg.gap_limit > 0 && run.gap >= cfg.gap_limit {
                run.stop = Some((StopReason::GapLimit, t));
            }
        } else {
            run.gap = 0;
        }
        if run.stop.is_none() && t >= cfg.max_ttl {
            run.stop = Some((StopReason::MaxTtl, t));
        }
        if run.stop.is_some() {
            return;
        }
    }
    // A pending TTL answered by the destination (or an unreachable) ends
    // the trace once it is finalised: probe no further meanwhile.
    let dst = run.dst;
    let terminal = run.ttls.range(run.finalized + 1..).any(|(_, s)| {
        s.slots
            .iter()
            .filter_map(|x| x.reply.as_ref())
            .any(|(a, k)| a.from == dst || matches!(k, ReplyKind::Unreachable(_)))
    });
    if terminal {
        return;
    }
    let mut blocking = run
        .ttls
        .range(run.finalized + 1..)
        .filter(|(_, s)| !s.cleared && !s.resolved() && !first_lost(s))
        .count();
    while blocking < usize::from(cfg.window) && run.next_ttl <= cfg.max_ttl && run.next_ttl >= 1 {
        let ttl = run.next_ttl;
        let mut slots = Vec::new();
        for i in 0..cfg.probes {
            let seq = run.next_seq;
            run.next_seq = run.next_seq.wrapping_add(1).max(1);
            slots.push(Slot {
                seq,
                sent: None,
                done: false,
                reply: None,
            });
            run.queue.push_back((ttl, u16::from(i), Instant::now()));
        }
        run.ttls.insert(
            ttl,
            TtlState {
                slots,
                cleared: false,
            },
        );
        blocking += 1;
        run.next_ttl = run.next_ttl.saturating_add(1);
        if ttl == u8::MAX {
            break;
        }
    }
}

fn finish(cfg: &TraceConfig, run: Run) -> Trace {
    let (stop, last) = run.stop.unwrap_or((StopReason::Error, 0));
    let result = run
        .ttls
        .into_iter()
        .filter(|(t, _)| *t <= last)
        .map(|(t, st)| Hop {
            hop: t,
            result: st
                .slots
                .into_iter()
                .map(|s| match s.reply {
                    Some((a, _)) => Reply::Answer(a),
                    None => Reply::star(),
                })
                .collect(),
            geo: Vec::new(),
        })
        .collect();
    let size = match run.proto {
        Proto::Tcp => {
            if run.dst.is_ipv6() {
                60
            } else {
                40
            }
        }
        _ => run.size.max(if run.dst.is_ipv6() { 50 } else { 30 }),
    };
    let _ = cfg;
    let mut trace = Trace {
        schema: TRACE_SCHEMA.into(),
        engine: "matador".into(),
        af: if run.dst.is_ipv6() { 6 } else { 4 },
        dst_addr: run.dst,
        dst_name: run.name,
        src_addr: run.src.unwrap_or(if run.dst.is_ipv6() {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        }),
        proto: run.proto,
        dst_port: (run.proto != Proto::Icmp).then_some(run.dport),
        paris_id: run.paris_id,
        timestamp: unix_secs(run.start),
        endtime: unix_secs(run.end.unwrap_or_else(SystemTime::now)),
        size,
        stop_reason: stop,
        packets: run.packets,
        error: run.error,
        result,
    };
    detect_injected_rst(&mut trace);
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_space() {
        assert!(in_lab_space("198.18.0.1".parse().unwrap()));
        assert!(in_lab_space("198.19.255.254".parse().unwrap()));
        assert!(!in_lab_space("198.20.0.1".parse().unwrap()));
        assert!(!in_lab_space("8.8.8.8".parse().unwrap()));
        assert!(in_lab_space("fd00::1".parse().unwrap()));
        assert!(!in_lab_space("2001:db8::1".parse().unwrap()));
        assert!(in_lab_space("::ffff:198.18.1.1".parse().unwrap()));
    }

    #[test]
    fn lab_only_refuses_outside_targets_before_opening_sockets() {
        let cfg = TraceConfig {
            lab_only: true,
            ..TraceConfig::default()
        };
        let e = trace(&cfg, &[Target::addr("8.8.8.8".parse().unwrap())]).unwrap_err();
        assert!(matches!(e, PathsError::OutsideLab(_)), "{e}");
        assert!(e.to_string().contains("8.8.8.8"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let t = [Target::addr("198.18.0.1".parse().unwrap())];
        for cfg in [
            TraceConfig {
                probes: 0,
                ..TraceConfig::default()
            },
            TraceConfig {
                max_ttl: 0,
                ..TraceConfig::default()
            },
            TraceConfig {
                pps: 0,
                ..TraceConfig::default()
            },
        ] {
            assert!(matches!(trace(&cfg, &t), Err(PathsError::Config(_))));
        }
    }
}
