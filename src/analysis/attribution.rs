//! App attribution: which messaging app a flow belongs to, and the list of
//! backend servers per app with the evidence for each.
//!
//! Evidence, strongest first (docs/attribution.md has the full rules):
//! 1. `dns:<name>` / `wechat-httpdns:<name>` — a name matching the app's
//!    `domains` resolved to the server address *earlier* in the capture;
//! 2. `sni:<name>` / `host:<name>` — the flow's TLS/QUIC SNI or HTTP Host
//!    matches the app's `sni` patterns;
//! 3. `fingerprint:<name>` — the first payload bytes of the flow match one of
//!    the app's protocol fingerprints (WhatsApp Noise, WeChat MMTLS, LOCO,
//!    MTProto, Telegram reflectors);
//! 4. `prefix:<net>` — the address is in one of the app's blocks (on the
//!    app's `prefix_ports` when given);
//! 5. `asn:AS<n>` — with an ASN lookup, the address's AS is the app's, on
//!    one of its ports.
//!
//! A flow whose SNI/Host names another service is never attributed by
//! address alone (4, 5), which keeps shared cloud and CDN blocks from
//! pulling unrelated traffic in.

use crate::analysis::model::{DnsRecord, FlowRecord, HttpRecord, Role, ServerRecord, TlsRecord};
use crate::analysis::names::stream::{DirKey, FastMap, FastState};
use crate::analysis::packet::{Packet, PacketSink, Transport, tcp_flags};
use crate::capture::Timestamp;
use crate::scenario::apps::{AppProfile, AppProfiles, Fingerprint, NetworkProfile};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub mod evidence;
pub mod stun;

pub use evidence::Evidence;

/// Addresses whose DNS names are remembered; beyond this the half with the
/// oldest resolutions is forgotten, so memory stays bounded on captures
/// with endless distinct answers.
const MAX_RESOLVED: usize = 1 << 16;

/// Flows whose first payloads are tracked at once; beyond this the table is
/// reset (fingerprints already found are kept).
const MAX_TRACKED: usize = 1 << 20;

/// STUN client sockets remembered at once (see [`SocketFact`]); beyond this
/// the ones idle longest are forgotten.
const MAX_SOCKETS: usize = 1 << 16;

/// How far (seconds) before its first or after its last STUN exchange a
/// socket's other flows still count as the same call.
const CALL_SLACK_SECS: i64 = 120;

/// Recognises a protocol fingerprint in the first payload of a direction.
/// `first_dir` is true for the direction that sent the flow's first payload.
/// Returns the fingerprint and whether the *receiver* of this payload is the
/// server.
pub fn fingerprint(payload: &[u8], udp: bool, first_dir: bool) -> Option<(Fingerprint, bool)> {
    let p = payload;
    let le32 = |i: usize| {
        p.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if udp {
        if let Some(to_server) = telegram_reflector(p) {
            return Some((Fingerprint::TelegramReflector, to_server));
        }
        if line_call(p) {
            return Some((Fingerprint::LineCall, first_dir));
        }
        if p.starts_with(&[0x81, 0xc8, 0x00, 0x0c]) {
            return Some((Fingerprint::KakaoVoice, first_dir));
        }
        return None;
    }
    // WhatsApp: Noise prologue "WA" + major/minor version, or the edge
    // routing header "ED\0\1" that precedes it.
    if p.starts_with(b"ED\x00\x01")
        || (p.len() >= 4 && p.starts_with(b"WA") && (1..=9).contains(&p[2]) && p[3] <= 9)
    {
        return Some((Fingerprint::WhatsappNoise, first_dir));
    }
    // WeChat MMTLS record: type, version 0xf103/0xf104, length.
    if p.len() >= 5
        && matches!(p[0], 0x15..=0x17 | 0x19)
        && p[1] == 0xf1
        && matches!(p[2], 0x03 | 0x04)
    {
        let len = usize::from(u16::from_be_bytes([p[3], p[4]]));
        if len > 0 {
            return Some((Fingerprint::WechatMmtls, first_dir));
        }
    }
    if first_dir {
        // LOCO secure layer handshake: RSA-2048 key size 256, key-encrypt
        // type, encrypt type, then the 256-byte encrypted key.
        if p.len() >= 268
            && le32(0) == Some(256)
            && le32(4).is_some_and(|t| (1..=32).contains(&t))
            && le32(8).is_some_and(|t| (1..=8).contains(&t))
        {
            return Some((Fingerprint::KakaoLoco, true));
        }
        // Plain LOCO header: id(4) status(2) method(11, upper-case, NUL padded) body type(1) body length(4) then BSON.
        if p.len() >= 26 {
            let method = &p[6..17];
            let name_len = method.iter().take_while(|b| b.is_ascii_uppercase()).count();
            let padded = method[name_len..].iter().all(|&b| b == 0);
            let body = le32(18).unwrap_or(u32::MAX);
            if name_len >= 3 && padded && p[17] == 0 && body >= 5 && le32(22) == Some(body) {
                return Some((Fingerprint::KakaoLoco, true));
            }
        }
        // MTProto transports: abridged (0xef, then length/4 in one byte),
        // intermediate (0xeeeeeeee) and padded intermediate (0xdddddddd),
        // each followed by a consistent first message length.
        if p.len() >= 2
            && p[0] == 0xef
            && p[1] < 0x7f
            && p.len() == 2 + 4 * usize::from(p[1])
            && p[1] > 0
        {
            return Some((Fingerprint::TelegramMtproto, true));
        }
        if p.len() >= 8 && (p.starts_with(&[0xee; 4]) || p.starts_with(&[0xdd; 4])) {
            let len = le32(4).unwrap_or(0) as usize;
            if len > 0 && len == p.len() - 8 {
                return Some((Fingerprint::TelegramMtproto, true));
            }
        }
    }
    None
}

/// LINE's call signalling, the byte patterns of nDPI's `protocols/line.c`
/// (ntop/nDPI, LineCall dissector, "from reverse engineering packet
/// traces"): fixed-length messages starting `b6 18 00 6a` (110 bytes),
/// `b6 13 00 06` (46), `b6 07 00 04` (8), `b6 09 00 0c` (16), and longer
/// ones starting `da`/`db` (≥ 738 bytes) or `d8`/`d9` with a high nibble
/// 9/d/e in byte 1 (≥ 150 bytes), both with `06 02` at bytes 4–5. nDPI
/// applies them only to LINE's addresses, and so does the attributor
/// (see [`fingerprint_at`]). nDPI's looser rules (`d0 b3…` of any length,
/// RTP sequence counting) are left out.
fn line_call(p: &[u8]) -> bool {
    let head = |h: [u8; 4]| p.starts_with(&h);
    let tag = p.get(4..6) == Some(&[0x06, 0x02]);
    match p.len() {
        110 if head([0xb6, 0x18, 0x00, 0x6a]) => true,
        46 if head([0xb6, 0x13, 0x00, 0x06]) => true,
        8 if head([0xb6, 0x07, 0x00, 0x04]) => true,
        16 if head([0xb6, 0x09, 0x00, 0x0c]) => true,
        n if n >= 738 && matches!(p[0], 0xda | 0xdb) && tag => true,
        n if n >= 150
            && matches!(p[0], 0xd8 | 0xd9)
            && matches!(p[1] & 0xf0, 0x90 | 0xd0 | 0xe0) =>
        {
            tag
        }
        _ => false,
    }
}

/// Kakao's voice servers (nDPI `protocols/kakaotalk_voice.c`: inetnum
/// 1.201.0.0 – 1.201.255.255, KINXINC-KR). KINX hosts other customers, so
/// the block counts only with the `kakao-voice` fingerprint, never as a
/// `prefix` of the profile.
const KAKAO_VOICE_BLOCK: (std::net::Ipv4Addr, u32) = (std::net::Ipv4Addr::new(1, 201, 0, 0), 16);

/// True when a fingerprint found in a flow counts for endpoint `ctx` of
/// an app with profile `net`: the call fingerprints are bound to the
/// app's addresses (as nDPI binds them), the others to the endpoint the
/// payload pointed at.
fn fingerprint_at(hit: FpHit, ctx: &FlowCtx<'_>, net: &NetworkProfile) -> bool {
    match hit.fp {
        Fingerprint::LineCall => net.prefix_of(ctx.ip).is_some(),
        Fingerprint::KakaoVoice => match ctx.ip.to_canonical() {
            IpAddr::V4(v4) => {
                let (net4, len) = KAKAO_VOICE_BLOCK;
                u32::from(v4) >> (32 - len) == u32::from(net4) >> (32 - len)
            }
            IpAddr::V6(_) => false,
        },
        _ => hit.server == (ctx.ip, ctx.port),
    }
}

/// Telegram's call reflector ping (tgcalls, nDPI `telegram.pcap` frames
/// 170 and 176): a 16-byte peer tag, twelve `0xff` bytes, then either the
/// 40-byte request (`fe ff ff ff` + 8-byte query id; receiver = server) or
/// the 64-byte answer (8 bytes, the echoed query id, the client's mapped
/// IPv6/IPv4-mapped address and port; receiver = client). Exact lengths and
/// the `fe ff ff ff` / non-`ff` word keep G.711 µ-law silence (all `0xff`
/// after a 12-byte RTP header, nDPI `skinny.pcap`) from matching.
fn telegram_reflector(p: &[u8]) -> Option<bool> {
    if p.len() < 32 || !p[16..28].iter().all(|&b| b == 0xff) {
        return None;
    }
    // A peer tag is random: a run of one byte value is padding or silence.
    if p[..16].iter().all(|&b| b == p[0]) {
        return None;
    }
    let word = &p[28..32];
    match p.len() {
        40 if word == [0xfe, 0xff, 0xff, 0xff] => Some(true),
        64 if word != [0xff; 4] && word != [0xfe, 0xff, 0xff, 0xff] => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct FpState {
    /// Directions whose first payload was examined (bit 0: canonical order, bit 1: reversed).
    seen: u8,
    /// Which direction sent the first payload (bit as above).
    first: u8,
}

/// A flow's 5-tuple without direction.
type FlowKey = DirKey;

/// A found fingerprint and the server endpoint it points to.
#[derive(Debug, Clone, Copy)]
struct FpHit {
    fp: Fingerprint,
    server: (IpAddr, u16),
}

/// A local UDP socket that ran a STUN/TURN exchange with one app's server
/// (by fingerprint, REALM, prefix or DNS name): the other flows of that
/// socket around the same time are the call's peer and relay legs.
#[derive(Debug, Clone)]
struct SocketFact {
    app: usize,
    /// `relay-from:<server ip:port>`.
    evidence: Evidence,
    /// The server it was learned from.
    server: (IpAddr, u16),
    first: Timestamp,
    last: Timestamp,
}

/// An address → autonomous system number lookup (e.g. from an mmdb).
pub type AsnLookup = Box<dyn Fn(IpAddr) -> Option<u32> + Send + Sync>;

/// Attributes flows to apps; see the module documentation.
pub struct Attributor {
    profiles: Arc<AppProfiles>,
    asn: Option<AsnLookup>,
    state: FastMap<FlowKey, FpState>,
    hits: FastMap<FlowKey, FpHit>,
    next_sweep: Option<i64>,
    /// Address → names that resolved to it, earliest first.
    resolved: FastMap<IpAddr, Vec<Resolution>>,
    /// SNI per flow (first ClientHello wins).
    sni: FastMap<FlowKey, String>,
    /// STUN REALM per flow (first wins), with the STUN server endpoint.
    realms: FastMap<FlowKey, (String, (IpAddr, u16))>,
    /// STUN client sockets tied to an app.
    sockets: FastMap<(IpAddr, u16), SocketFact>,
    /// Peer and relayed transport addresses (XOR-PEER-ADDRESS,
    /// XOR-RELAYED-ADDRESS) an app's TURN exchange handed out: the far
    /// ends of the call's relay and peer legs.
    legs: FastMap<(IpAddr, u16), SocketFact>,
    /// HTTP requests by (client, server, port).
    hosts: HashMap<(IpAddr, IpAddr, u16), Vec<HttpRecord>>,
    /// What was found per server endpoint so far.
    servers: BTreeMap<ServerKey, ServerAcc>,
}

impl std::fmt::Debug for Attributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attributor")
            .field("apps", &self.profiles.apps.len())
            .field("tracked", &self.state.len())
            .field("fingerprinted", &self.hits.len())
            .finish()
    }
}

impl Attributor {
    /// A new attributor over these profiles.
    pub fn new(profiles: Arc<AppProfiles>) -> Self {
        Attributor {
            profiles,
            asn: None,
            state: FastMap::default(),
            hits: FastMap::default(),
            next_sweep: None,
            resolved: FastMap::default(),
            sni: FastMap::default(),
            realms: FastMap::default(),
            sockets: FastMap::default(),
            legs: FastMap::default(),
            hosts: HashMap::new(),
            servers: BTreeMap::new(),
        }
    }

    /// Adds an ASN lookup so `asns:` in the profiles can count.
    pub fn with_asn_lookup(mut self, lookup: AsnLookup) -> Self {
        self.asn = Some(lookup);
        self
    }

    /// Sets `flow.sni` and `flow.app` and returns the servers per app, each
    /// with its evidence strongest first; apps in profile order, and within
    /// an app the best-evidenced servers first. The whole-capture form of
    /// [`Attributor::add_dns`] … [`Attributor::servers`].
    pub fn finish(
        mut self,
        flows: &mut [FlowRecord],
        dns: &[DnsRecord],
        tls: &[TlsRecord],
        http: &[HttpRecord],
    ) -> Vec<ServerRecord> {
        for d in dns {
            self.add_dns(d);
        }
        for t in tls {
            self.add_tls(t);
        }
        for h in http {
            self.add_http(h);
        }
        for flow in flows.iter_mut() {
            self.attribute(flow);
        }
        self.servers()
    }

    /// Learns the names a DNS response resolved (used for flows that start
    /// after it).
    pub fn add_dns(&mut self, d: &DnsRecord) {
        add_resolutions(&mut self.resolved, &self.profiles, d);
        if self.resolved.len() > MAX_RESOLVED {
            let newest = |v: &Vec<Resolution>| v.iter().map(|r| r.ts).max();
            let mut times: Vec<Option<Timestamp>> = self.resolved.values().map(newest).collect();
            let mid = times.len() / 2;
            let (_, cut, _) = times.select_nth_unstable(mid);
            let cut = *cut;
            self.resolved.retain(|_, v| newest(v) > cut);
        }
    }

    /// Learns a ClientHello's SNI for its flow (the first one wins).
    pub fn add_tls(&mut self, t: &TlsRecord) {
        let proto = if t.proto == "quic" { 17 } else { 6 };
        if let Some(name) = &t.sni {
            let key = DirKey {
                proto,
                src: t.src,
                sport: t.sport,
                dst: t.dst,
                dport: t.dport,
            }
            .canonical();
            self.sni.entry(key).or_insert_with(|| name.clone());
        }
    }

    /// Learns an HTTP request (Host, WeChat paths) for the flows around it.
    pub fn add_http(&mut self, h: &HttpRecord) {
        self.hosts
            .entry((h.src, h.dst, h.dport))
            .or_default()
            .push(h.clone());
    }

    /// Forgets HTTP requests older than `before`: no flow still open (or
    /// starting later) began before them, so none can use them.
    pub fn prune_http(&mut self, before: Timestamp) {
        if self.hosts.is_empty() {
            return;
        }
        self.hosts.retain(|_, v| {
            v.retain(|h| h.ts >= before);
            !v.is_empty()
        });
    }

    /// Forgets the per-flow facts (SNI, fingerprint) of a flow that ended,
    /// so memory follows the open flows (streaming replay).
    pub fn forget_flow(&mut self, flow: &FlowRecord) {
        if let Some(key) = flow_key(flow) {
            self.sni.remove(&key);
            self.hits.remove(&key);
            self.realms.remove(&key);
        }
    }

    /// Attributes one finished flow: sets `flow.sni` and `flow.app` and adds
    /// its server (with the evidence) to the per-server aggregate.
    pub fn attribute(&mut self, flow: &mut FlowRecord) {
        let Some(key) = flow_key(flow) else {
            return;
        };
        if flow.sni.is_none()
            && let Some(n) = self.sni.get(&key)
        {
            flow.sni = Some(n.clone());
        }
        // HTTP requests of this flow (either orientation), within its time span.
        let mut flow_http: Vec<&HttpRecord> = Vec::new();
        for k in [
            (flow.src, flow.dst, flow.dport),
            (flow.dst, flow.src, flow.sport),
        ] {
            if let Some(v) = self.hosts.get(&k) {
                flow_http.extend(
                    v.iter()
                        .filter(|h| h.ts >= flow.first_ts && h.ts <= flow.last_ts),
                );
            }
        }
        let hit = self.hits.get(&key).copied();
        let realm = self.realms.get(&key);
        // The flow's names (SNI, then HTTP Hosts), without a `:port`.
        let names: Vec<(NameKind, &str)> = flow
            .sni
            .as_deref()
            .map(|s| (NameKind::Sni, s))
            .into_iter()
            .chain(
                flow_http
                    .iter()
                    .filter_map(|h| h.host.as_deref().map(|host| (NameKind::Host, host))),
            )
            .map(|(kind, name)| {
                let bare = name
                    .rsplit_once(':')
                    .filter(|(_, p)| p.parse::<u16>().is_ok())
                    .map_or(name, |(h, _)| h);
                (kind, bare)
            })
            .collect();
        let mut best: Option<Candidate> = None;
        let ends = [(flow.dst, flow.dport), (flow.src, flow.sport)];
        for (n, (ip, port)) in ends.into_iter().enumerate() {
            let ctx = FlowCtx {
                ip,
                port,
                proto: &flow.proto,
                first_ts: flow.first_ts,
                names: &names,
                resolved: self.resolved.get(&ip).map_or(&[], Vec::as_slice),
                http: &flow_http,
                hit,
                realm: realm
                    .filter(|(_, server)| *server == (ip, port))
                    .map(|(r, _)| r.as_str()),
                socket: call_fact(&self.sockets, flow, ends[1 - n]),
                leg: call_fact(&self.legs, flow, (ip, port)),
            };
            for (i, app) in self.profiles.apps.iter().enumerate() {
                let ev = self.evidence(i, app, &ctx);
                let Some(top) = ev.iter().map(Evidence::strength).max() else {
                    continue;
                };
                let better = match &best {
                    None => true,
                    Some((_, _, bev, btop)) => (top, ev.len()) > (*btop, bev.len()),
                };
                if better {
                    best = Some((i, (ip, port), ev, top));
                }
            }
        }
        let Some((i, (ip, port), evidence, _)) = best else {
            return;
        };
        flow.app = Some(self.profiles.apps[i].id.clone());
        flow.evidence.clone_from(&evidence);
        let entry = self
            .servers
            .entry((i, ip, port, flow.proto.clone()))
            .or_default();
        entry.evidence.extend(evidence);
        // Most flows of a server repeat its names: copy only new ones.
        let mut add_name = |name: &String| {
            if !entry.names.contains(name) {
                entry.names.insert(name.clone());
            }
        };
        if let Some(s) = &flow.sni {
            add_name(s);
        }
        for h in &flow_http {
            if let Some(host) = &h.host {
                add_name(host);
            }
            if crate::analysis::names::wechat::is_newgetdns(&h.path) {
                entry.dns_role = true;
            }
        }
        if let Some(names) = self.resolved.get(&ip) {
            for r in names.iter().filter(|r| r.ts <= flow.first_ts) {
                add_name(&r.name);
            }
        }
    }

    /// The servers per app, each with its evidence strongest first; apps in
    /// profile order, and within an app the best-evidenced servers first.
    pub fn servers(self) -> Vec<ServerRecord> {
        let mut out: Vec<(usize, u8, ServerRecord)> = self
            .servers
            .into_iter()
            .map(|((i, ip, port, proto), acc)| {
                let ServerAcc {
                    evidence,
                    names,
                    dns_role,
                } = acc;
                let mut evidence: Vec<Evidence> = evidence.into_iter().collect();
                Evidence::sort(&mut evidence);
                let top = evidence.first().map_or(0, Evidence::strength);
                let evidence: Vec<String> = evidence.iter().map(|e| e.to_string()).collect();
                (
                    i,
                    top,
                    ServerRecord {
                        app: self.profiles.apps[i].id.clone(),
                        ip,
                        port,
                        proto,
                        names: names.into_iter().collect(),
                        evidence,
                        role: dns_role.then_some(Role::Dns),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then(b.2.evidence.len().cmp(&a.2.evidence.len()))
                .then(a.2.ip.cmp(&b.2.ip))
                .then(a.2.port.cmp(&b.2.port))
        });
        out.into_iter().map(|(_, _, s)| s).collect()
    }

    /// Evidence that endpoint `ctx.ip:ctx.port` of a flow belongs to `app`.
    fn evidence(&self, i: usize, app: &AppProfile, ctx: &FlowCtx<'_>) -> Vec<Evidence> {
        let net = &app.network;
        let mut ev = Vec::new();
        for r in ctx.resolved.iter().filter(|r| r.ts <= ctx.first_ts) {
            if r.matches_domain_of(i, net) {
                ev.push(r.evidence());
            }
        }
        let mut foreign_name = false;
        for &(kind, bare) in ctx.names {
            if net.matches_sni(bare) {
                ev.push(kind.evidence(bare));
            } else {
                foreign_name = true;
            }
        }
        if let Some(hit) = ctx.hit
            && net.fingerprints.contains(&hit.fp)
            && fingerprint_at(hit, ctx, net)
        {
            ev.push(Evidence::Fingerprint(hit.fp));
        }
        if net.fingerprints.contains(&Fingerprint::WechatMmtls)
            && ctx
                .http
                .iter()
                .any(|h| h.dst == ctx.ip && h.path.starts_with("/mmtls/"))
        {
            ev.push(Evidence::Fingerprint(Fingerprint::WechatMmtls));
        }
        if let Some(r) = ctx.realm
            && net.matches_domain(r)
        {
            ev.push(Evidence::StunRealm(r.to_string()));
        }
        let named = ev.iter().any(|e| e.strength() >= 4);
        if !foreign_name || named {
            for s in [ctx.socket, ctx.leg].into_iter().flatten() {
                if s.app == i {
                    ev.push(s.evidence.clone());
                }
            }
            if let Some(n) = net.prefix_of(ctx.ip)
                && net.prefix_port_ok(ctx.proto, ctx.port)
            {
                ev.push(Evidence::Prefix(*n));
            }
            if let Some(asn) = self.asn.as_ref().and_then(|f| f(ctx.ip))
                && net.asns.contains(&asn)
                && net.uses_port(ctx.proto, ctx.port)
            {
                ev.push(Evidence::Asn(asn));
            }
        }
        Evidence::sort(&mut ev);
        ev
    }

    /// Learns from one STUN message: WhatsApp's relay attributes and the
    /// REALM for its flow, and which app the client socket calls with.
    fn stun_packet(&mut self, ts: Timestamp, dir: DirKey, key: FlowKey, payload: &[u8]) {
        let Some(info) = stun::parse(payload) else {
            return;
        };
        let (client, server) = if info.from_client {
            ((dir.src, dir.sport), (dir.dst, dir.dport))
        } else {
            ((dir.dst, dir.dport), (dir.src, dir.sport))
        };
        if info.whatsapp_attr {
            self.hits.entry(key).or_insert(FpHit {
                fp: Fingerprint::WhatsappStun,
                server,
            });
        }
        if let Some(r) = &info.realm {
            self.realms
                .entry(key)
                .or_insert_with(|| (r.clone(), server));
        }
        let Some(app) = self.tie_socket(ts, client, server, &info) else {
            return;
        };
        for a in &info.addresses {
            let leg = (a.ip().to_canonical(), a.port());
            if leg == server || leg == client {
                continue; // WhatsApp names the relay itself as the peer
            }
            match self.legs.get_mut(&leg) {
                Some(f) if f.app == app => f.last = f.last.max(ts),
                Some(_) => {} // the first app an address was handed out by wins
                None => remember(&mut self.legs, ts, leg, app, server),
            }
        }
    }

    /// Ties the STUN `client` socket to the app whose server `server` is
    /// (the first server a socket is tied to wins); the app, when this
    /// exchange is with that server.
    fn tie_socket(
        &mut self,
        ts: Timestamp,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        info: &stun::StunInfo,
    ) -> Option<usize> {
        if let Some(s) = self.sockets.get_mut(&client) {
            if s.server != server {
                return None;
            }
            s.last = s.last.max(ts);
            return Some(s.app);
        }
        let app = self.stun_server_app(ts, server, info)?;
        remember(&mut self.sockets, ts, client, app, server);
        Some(app)
    }

    /// The app whose STUN/TURN server `server` is, judged at time `ts` from
    /// the message itself (WhatsApp attributes, REALM) and the address
    /// (prefix on one of the app's prefix ports, or a DNS name resolved
    /// earlier).
    fn stun_server_app(
        &self,
        ts: Timestamp,
        server: (IpAddr, u16),
        info: &stun::StunInfo,
    ) -> Option<usize> {
        let resolved = self.resolved.get(&server.0).map_or(&[][..], Vec::as_slice);
        self.profiles.apps.iter().enumerate().find_map(|(i, app)| {
            let net = &app.network;
            let by_attr =
                info.whatsapp_attr && net.fingerprints.contains(&Fingerprint::WhatsappStun);
            let by_realm = info.realm.as_deref().is_some_and(|r| net.matches_domain(r));
            let by_prefix =
                net.prefix_of(server.0).is_some() && net.prefix_port_ok("udp", server.1);
            let by_dns = resolved
                .iter()
                .any(|r| r.ts <= ts && r.matches_domain_of(i, net));
            (by_attr || by_realm || by_prefix || by_dns).then_some(i)
        })
    }

    fn make_room(&mut self) {
        if self.state.len() >= MAX_TRACKED {
            self.state.clear();
        }
    }
}

/// Adds a call fact for `key` (a client socket or a leg address) learnt
/// from `app`'s STUN/TURN server `server` at `ts`, keeping the map bounded.
fn remember(
    map: &mut FastMap<(IpAddr, u16), SocketFact>,
    ts: Timestamp,
    key: (IpAddr, u16),
    app: usize,
    server: (IpAddr, u16),
) {
    if map.len() >= MAX_SOCKETS {
        let horizon = ts.secs - CALL_SLACK_SECS;
        map.retain(|_, s| s.last.secs >= horizon);
        if map.len() >= MAX_SOCKETS {
            map.clear();
        }
    }
    map.insert(
        key,
        SocketFact {
            app,
            evidence: Evidence::RelayFrom(SocketAddr::new(server.0, server.1)),
            server,
            first: ts,
            last: ts,
        },
    );
}

/// The call fact for a UDP flow's endpoint `end` (its local socket, or a
/// leg address), when learnt within [`CALL_SLACK_SECS`] of the flow.
fn call_fact<'a>(
    map: &'a FastMap<(IpAddr, u16), SocketFact>,
    flow: &FlowRecord,
    end: (IpAddr, u16),
) -> Option<&'a SocketFact> {
    if flow.proto != "udp" {
        return None;
    }
    map.get(&end).filter(|s| {
        flow.first_ts.secs <= s.last.secs + CALL_SLACK_SECS
            && flow.last_ts.secs + CALL_SLACK_SECS >= s.first.secs
    })
}

/// (app index, server address, port, protocol).
type ServerKey = (usize, IpAddr, u16, String);

/// The best app for a flow so far: app index, server endpoint, evidence, top strength.
type Candidate = (usize, (IpAddr, u16), Vec<Evidence>, u8);

/// What is collected for one server.
#[derive(Debug, Default)]
struct ServerAcc {
    /// Filled once per attributed flow: the cheap seeded hash, not SipHash
    /// (the set is sorted on output, so its order does not matter).
    evidence: HashSet<Evidence, FastState>,
    names: BTreeSet<String>,
    /// Serves WeChat's HTTP DNS.
    dns_role: bool,
}

/// What the evidence rules look at for one endpoint of one flow.
struct FlowCtx<'a> {
    ip: IpAddr,
    port: u16,
    proto: &'a str,
    first_ts: Timestamp,
    /// SNI and HTTP Hosts of the flow (kind, name without port).
    names: &'a [(NameKind, &'a str)],
    /// Names that resolved to `ip` (looked up once for all apps).
    resolved: &'a [Resolution],
    http: &'a [&'a HttpRecord],
    hit: Option<FpHit>,
    /// The flow's STUN REALM, when this endpoint is the STUN server.
    realm: Option<&'a str>,
    /// The app call the *other* endpoint's socket belongs to.
    socket: Option<&'a SocketFact>,
    /// The app call whose TURN exchange handed out this endpoint's address.
    leg: Option<&'a SocketFact>,
}

/// Where a flow's own name comes from.
#[derive(Debug, Clone, Copy)]
enum NameKind {
    /// TLS/QUIC ClientHello.
    Sni,
    /// HTTP `Host` header.
    Host,
}

impl NameKind {
    fn evidence(self, name: &str) -> Evidence {
        match self {
            NameKind::Sni => Evidence::Sni(name.to_string()),
            NameKind::Host => Evidence::Host(name.to_string()),
        }
    }
}

/// A name that resolved to an address, and when.
#[derive(Debug, Clone)]
struct Resolution {
    ts: Timestamp,
    name: String,
    /// Learnt from WeChat's HTTP DNS (else from DNS).
    httpdns: bool,
    /// Bit `i` set when app `i`'s `domains` match `name` (apps 0..64),
    /// worked out once per name instead of once per flow and app.
    domain_apps: u64,
}

impl Resolution {
    /// The evidence this resolution gives.
    fn evidence(&self) -> Evidence {
        if self.httpdns {
            Evidence::WechatHttpDns(self.name.clone())
        } else {
            Evidence::Dns(self.name.clone())
        }
    }

    /// True when the name matches the `domains` of app `i` (profile `net`).
    fn matches_domain_of(&self, i: usize, net: &NetworkProfile) -> bool {
        if i < 64 {
            self.domain_apps & (1 << i) != 0
        } else {
            net.matches_domain(&self.name)
        }
    }
}

/// The [`Resolution::domain_apps`] mask of a name.
fn domain_apps(profiles: &AppProfiles, name: &str) -> u64 {
    profiles
        .apps
        .iter()
        .take(64)
        .enumerate()
        .filter(|(_, a)| a.network.matches_domain(name))
        .fold(0, |m, (i, _)| m | (1 << i))
}

/// Adds the names a DNS response resolved to each of its addresses
/// (question name and CNAME chain), keeping the earliest time per name.
fn add_resolutions(
    map: &mut FastMap<IpAddr, Vec<Resolution>>,
    profiles: &AppProfiles,
    d: &DnsRecord,
) {
    if d.rcode.is_none() {
        return;
    }
    let httpdns = d.transport == "wechat-httpdns";
    let mut names: Vec<&str> = vec![d.query.as_str()];
    names.extend(d.answers.iter().map(|a| a.name.as_str()));
    names.sort_unstable();
    names.dedup();
    for a in d
        .answers
        .iter()
        .filter(|a| a.rtype == "A" || a.rtype == "AAAA")
    {
        let Ok(ip) = a.data.parse::<IpAddr>() else {
            continue;
        };
        // WeChat lists IPv4-mapped IPv6 forms too; flows carry the IPv4 address.
        let ip = ip.to_canonical();
        let list = map.entry(ip).or_default();
        for n in &names {
            if n.is_empty() {
                continue;
            }
            match list
                .iter_mut()
                .find(|r| r.name == *n && r.httpdns == httpdns)
            {
                Some(r) if r.ts > d.ts => r.ts = d.ts,
                Some(_) => {}
                None => list.push(Resolution {
                    ts: d.ts,
                    name: n.to_string(),
                    httpdns,
                    domain_apps: domain_apps(profiles, n),
                }),
            }
        }
    }
}

/// The direction-free 5-tuple of a TCP/UDP flow record.
fn flow_key(flow: &FlowRecord) -> Option<FlowKey> {
    let proto = match flow.proto.as_str() {
        "tcp" => 6,
        "udp" => 17,
        _ => return None,
    };
    Some(
        DirKey {
            proto,
            src: flow.src,
            sport: flow.sport,
            dst: flow.dst,
            dport: flow.dport,
        }
        .canonical(),
    )
}

impl PacketSink for Attributor {
    fn packet(&mut self, pkt: &Packet<'_>) {
        let Some(dir) = DirKey::of(pkt) else {
            return;
        };
        let (payload, udp, flags) = match pkt.transport {
            Transport::Tcp { payload, flags, .. } => (payload, false, flags),
            Transport::Udp { payload, .. } => (payload, true, 0),
            _ => return,
        };
        // Periodically forget first-payload bookkeeping: flows older than
        // the period are past their first payloads.
        let due = *self
            .next_sweep
            .get_or_insert(pkt.ts.secs + crate::analysis::names::SWEEP_SECS);
        if pkt.ts.secs >= due {
            self.state.clear();
            self.next_sweep = Some(pkt.ts.secs + crate::analysis::names::SWEEP_SECS);
        }
        let key = dir.canonical();
        if udp && stun::looks_like_stun(payload) {
            self.stun_packet(pkt.ts, dir, key, payload);
        }
        if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 {
            self.state.remove(&key); // a new connection on a reused tuple
        }
        if payload.is_empty() {
            if flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
                self.state.remove(&key);
            }
            return;
        }
        let bit = if key == dir { 1u8 } else { 2u8 };
        // Past its first payload in this direction (most packets): one lookup.
        match self.state.get(&key) {
            Some(st) if st.seen & bit != 0 || st.seen == 3 => return,
            Some(_) => {}
            None => self.make_room(),
        }
        let st = self.state.entry(key).or_default();
        if st.seen == 0 {
            st.first = bit;
        }
        st.seen |= bit;
        let first_dir = st.first == bit;
        if !self.hits.contains_key(&key)
            && let Some((fp, receiver_is_server)) = fingerprint(payload, udp, first_dir)
        {
            let server = if receiver_is_server {
                (dir.dst, dir.dport)
            } else {
                (dir.src, dir.sport)
            };
            self.hits.insert(key, FpHit { fp, server });
        }
        if flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
            self.state.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;
