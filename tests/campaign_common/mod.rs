//! Synthetic campaign folders for the correlation tests and benchmark: two
//! phones, per-app relays (one reached by IP only), and the decoys the issue
//! lists — media hosts, same-app keep-alive servers, push wake-ups just
//! before receipts, noise bursts near send times, Android background noise
//! — written as real pcap files (LINKTYPE_RAW IPv4) plus `events.jsonl`,
//! `meta.json` and `index.json` as docs/campaign-record.md describes.
#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Deterministic xorshift64* generator (no dependency, reproducible).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f()
    }
    pub fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One packet to write.
#[derive(Clone)]
pub struct P {
    pub t: f64,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub udp: bool,
    pub payload: Vec<u8>,
    pub syn: bool,
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn ip_packet(p: &P) -> Vec<u8> {
    let l4_len = if p.udp { 8 } else { 20 } + p.payload.len();
    let total = 20 + l4_len;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(&[0x45, 0]);
    v.extend_from_slice(&(total as u16).to_be_bytes());
    v.extend_from_slice(&[0, 1, 0x40, 0, 64, if p.udp { 17 } else { 6 }, 0, 0]);
    v.extend_from_slice(&p.src.octets());
    v.extend_from_slice(&p.dst.octets());
    let c = csum(&v[..20]);
    v[10..12].copy_from_slice(&c.to_be_bytes());
    v.extend_from_slice(&p.sport.to_be_bytes());
    v.extend_from_slice(&p.dport.to_be_bytes());
    if p.udp {
        v.extend_from_slice(&((8 + p.payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
    } else {
        v.extend_from_slice(&1000u32.to_be_bytes());
        v.extend_from_slice(&(if p.syn { 0u32 } else { 1u32 }).to_be_bytes());
        let flags = if p.syn { 0x02 } else { 0x18 };
        v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    }
    v.extend_from_slice(&p.payload);
    v
}

/// Writes a pcap (LINKTYPE_RAW) with the packets sorted by time.
pub fn write_pcap(path: &Path, pkts: &mut [P]) {
    pkts.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for p in pkts.iter() {
        let d = ip_packet(p);
        let secs = p.t.floor();
        let us = ((p.t - secs) * 1e6) as u32;
        out.extend_from_slice(&(secs as u32).to_le_bytes());
        out.extend_from_slice(&us.min(999_999).to_le_bytes());
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        out.extend_from_slice(&d);
    }
    std::fs::write(path, out).unwrap();
}

/// A DNS response packet (resolver → phone) answering `name` with `addr`.
fn dns_answer(
    t: f64,
    phone: Ipv4Addr,
    resolver: Ipv4Addr,
    name: &str,
    addr: Ipv4Addr,
    id: u16,
) -> Vec<P> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let mut qname = Vec::new();
    for l in name.split('.') {
        qname.push(l.len() as u8);
        qname.extend_from_slice(l.as_bytes());
    }
    qname.push(0);
    q.extend_from_slice(&qname);
    q.extend_from_slice(&[0, 1, 0, 1]);
    let mut r = q.clone();
    r[2] = 0x81;
    r[3] = 0x80;
    r[7] = 1;
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&addr.octets());
    vec![
        P {
            t,
            src: phone,
            sport: 20000 + id % 10000,
            dst: resolver,
            dport: 53,
            udp: true,
            payload: q,
            syn: false,
        },
        P {
            t: t + 0.01,
            src: resolver,
            sport: 53,
            dst: phone,
            dport: 20000 + id % 10000,
            udp: true,
            payload: r,
            syn: false,
        },
    ]
}

/// An app of the synthetic lab.
#[derive(Clone)]
pub struct SynApp {
    pub id: &'static str,
    pub relay: Ipv4Addr,
    pub port: u16,
    /// DNS name of the relay; `None`: reached by IP only.
    pub name: Option<&'static str>,
    pub keepalive: Ipv4Addr,
    pub media: Ipv4Addr,
    pub push: Ipv4Addr,
}

pub fn apps() -> Vec<SynApp> {
    let a = |i: u8, id, name, port| SynApp {
        id,
        relay: Ipv4Addr::new(198, 19, i, 10),
        port,
        name,
        keepalive: Ipv4Addr::new(198, 19, i, 20),
        media: Ipv4Addr::new(198, 19, i, 30),
        push: Ipv4Addr::new(198, 19, 200, 1),
    };
    vec![
        a(1, "whatsapp", Some("e1.whatsapp.net"), 5222),
        a(2, "wechat", Some("long.weixin.qq.com"), 8080),
        a(3, "signal", Some("chat.signal.org"), 443),
        a(4, "telegram", None, 443), // reached by IP only
    ]
}

pub const PHONE_A: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const PHONE_B: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 10);
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 53);

/// Options of a synthetic campaign.
#[derive(Clone)]
pub struct SynOpts {
    pub seed: u64,
    /// Message measurements per app.
    pub repetitions: usize,
    pub per_direction: usize,
    /// Write DNS packets.
    pub dns: bool,
    /// Decoys near events (push, noise bursts) and background noise rate (packets/s).
    pub noise_rate: f64,
    pub baseline_secs: f64,
}

impl Default for SynOpts {
    fn default() -> Self {
        SynOpts {
            seed: 1,
            repetitions: 3,
            per_direction: 2,
            dns: true,
            noise_rate: 0.5,
            baseline_secs: 60.0,
        }
    }
}

struct Builder<'a> {
    rng: &'a mut Rng,
    a: Vec<P>,
    b: Vec<P>,
    sport: u16,
}

impl Builder<'_> {
    fn side(&mut self, phone: Ipv4Addr) -> &mut Vec<P> {
        if phone == PHONE_A {
            &mut self.a
        } else {
            &mut self.b
        }
    }
    /// A client→server exchange on a phone: out payload, small reply.
    #[allow(clippy::too_many_arguments)]
    fn talk(
        &mut self,
        phone: Ipv4Addr,
        t: f64,
        srv: Ipv4Addr,
        port: u16,
        sport: u16,
        out: usize,
        back: usize,
        udp: bool,
    ) {
        let rt = self.rng.range(0.02, 0.15);
        let v = self.side(phone);
        if out > 0 {
            v.push(P {
                t,
                src: phone,
                sport,
                dst: srv,
                dport: port,
                udp,
                payload: vec![0x17; out],
                syn: false,
            });
        }
        if back > 0 {
            v.push(P {
                t: t + rt,
                src: srv,
                sport: port,
                dst: phone,
                dport: sport,
                udp,
                payload: vec![0x17; back],
                syn: false,
            });
        }
    }
    fn syn(&mut self, phone: Ipv4Addr, t: f64, srv: Ipv4Addr, port: u16, sport: u16) {
        self.side(phone).push(P {
            t,
            src: phone,
            sport,
            dst: srv,
            dport: port,
            udp: false,
            payload: vec![],
            syn: true,
        });
    }
    fn port(&mut self) -> u16 {
        self.sport = self.sport.wrapping_add(1).max(30000);
        self.sport
    }
}

/// Writes one measurement folder; returns the message events written.
#[allow(clippy::too_many_arguments)]
fn measurement(
    dir: &Path,
    id: &str,
    app: &SynApp,
    baseline: bool,
    rep: usize,
    t0: f64,
    o: &SynOpts,
    rng: &mut Rng,
) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut b = Builder {
        rng,
        a: Vec::new(),
        b: Vec::new(),
        sport: 30000,
    };
    let ports: Vec<u16> = (0..4).map(|_| b.port()).collect();
    let (ra, rb, ka, kb) = (ports[0], ports[1], ports[2], ports[3]);
    let mut events = Vec::new();
    // Connection set-up: DNS, SYNs.
    for (phone, rp, kp) in [(PHONE_A, ra, ka), (PHONE_B, rb, kb)] {
        if o.dns {
            if let Some(n) = app.name {
                let pk = dns_answer(t0 + 0.1, phone, RESOLVER, n, app.relay, rp);
                b.side(phone).extend(pk);
            }
            let pk = dns_answer(
                t0 + 0.2,
                phone,
                RESOLVER,
                &format!("ka.{}.example", app.id),
                app.keepalive,
                kp,
            );
            b.side(phone).extend(pk);
        }
        b.syn(phone, t0 + 0.3, app.relay, app.port, rp);
        b.syn(phone, t0 + 0.35, app.keepalive, 443, kp);
    }
    let mut t = t0 + 2.0;
    let mut sends = Vec::new();
    if baseline {
        t += o.baseline_secs;
    } else {
        let n = o.per_direction * 2;
        for k in 0..n {
            let (from, to, fp, tp) = if k % 2 == 0 {
                (PHONE_A, PHONE_B, ra, rb)
            } else {
                (PHONE_B, PHONE_A, rb, ra)
            };
            let (fname, tname) = if k % 2 == 0 {
                ("lab-a", "lab-b")
            } else {
                ("lab-b", "lab-a")
            };
            let bytes = 12 + b.rng.pick(30);
            let msg = format!("{id}-{}", k + 1);
            events.push(format!(
                "{{\"ts\":\"{t:.6}\",\"device\":\"{fname}\",\"app\":\"{}\",\"kind\":\"send_tap\",\"message_id\":\"{msg}\",\"bytes\":{bytes}}}",
                app.id
            ));
            sends.push(t);
            let up = t + b.rng.range(0.2, 1.2);
            b.talk(from, up, app.relay, app.port, fp, bytes + 60, 40, false);
            let arrive = up + b.rng.range(0.1, 0.8);
            // Push wake-up just before the message reaches the receiver.
            if o.noise_rate > 0.0 {
                let pt = arrive - b.rng.range(0.05, 0.4);
                let pp = b.port();
                b.talk(to, pt, app.push, 5228, pp, 0, 180 + bytes, false);
            }
            b.talk(to, arrive, app.relay, app.port, tp, 40, bytes + 60, false);
            // The receiver's ack back to the relay.
            let seen = arrive + b.rng.range(0.2, 1.5);
            events.push(format!(
                "{{\"ts\":\"{seen:.6}\",\"device\":\"{tname}\",\"app\":\"{}\",\"kind\":\"received\",\"message_id\":\"{msg}\",\"bytes\":{bytes}}}",
                app.id
            ));
            t = seen + b.rng.range(2.0, 4.0);
        }
        t += 3.0;
    }
    let end = t;
    // Keep-alives: relay (small) and the app's keep-alive server (medium, periodic).
    for (phone, rp, kp) in [(PHONE_A, ra, ka), (PHONE_B, rb, kb)] {
        let mut k = t0 + b.rng.range(0.0, 10.0);
        while k < end {
            b.talk(phone, k, app.relay, app.port, rp, 8, 8, false);
            k += 15.0;
        }
        let mut k = t0 + b.rng.range(0.0, 6.0);
        while k < end {
            b.talk(phone, k, app.keepalive, 443, kp, 120, 120, false);
            k += b.rng.range(5.0, 9.0);
        }
        // Media downloads at random times.
        let mp = b.port();
        let mt = b.rng.range(t0, end);
        b.syn(phone, mt - 0.1, app.media, 443, mp);
        for i in 0..40 {
            b.talk(
                phone,
                mt + i as f64 * 0.01,
                app.media,
                443,
                mp,
                if i == 0 { 300 } else { 0 },
                1400,
                false,
            );
        }
    }
    if o.noise_rate > 0.0 {
        // Noise bursts near send times, on both phones, from a pool of hosts.
        for &s in &sends {
            for phone in [PHONE_A, PHONE_B] {
                let h = Ipv4Addr::new(198, 18, 100, 1 + b.rng.pick(6) as u8);
                let nt = s + b.rng.range(-1.0, 2.5);
                let np = b.port();
                b.talk(phone, nt, h, 443, np, 400, 600, false);
            }
        }
        // Android background noise: Poisson-ish, random hosts.
        for phone in [PHONE_A, PHONE_B] {
            let mut k = t0;
            loop {
                k += -(1.0 - b.rng.f()).ln() / o.noise_rate;
                if k >= end {
                    break;
                }
                let h = Ipv4Addr::new(198, 18, 101, 1 + b.rng.pick(40) as u8);
                let np = b.port();
                let sz = 50 + b.rng.pick(400);
                let udp = b.rng.pick(4) == 0;
                b.talk(phone, k, h, 443, np, sz, sz, udp);
            }
        }
    }
    let (mut pa, mut pb) = (std::mem::take(&mut b.a), std::mem::take(&mut b.b));
    write_pcap(&dir.join("capture-router-lab-a.pcap"), &mut pa);
    write_pcap(&dir.join("capture-router-lab-b.pcap"), &mut pb);
    let mut f = std::fs::File::create(dir.join("events.jsonl")).unwrap();
    for e in &events {
        writeln!(f, "{e}").unwrap();
    }
    let kind = if baseline { "baseline" } else { "message" };
    let meta = format!(
        "{{\"id\":\"{id}\",\"kind\":\"{kind}\",\"app\":\"{}\",\"sender\":\"lab-a\",\"receiver\":\"lab-b\",\"sender_country\":\"DE\",\"receiver_country\":\"BR\",\"sender_node\":\"de-1\",\"receiver_node\":\"br-1\",\"repetition\":{rep},\"messages\":{},\"status\":\"complete\",\"error\":null,\"started\":\"{t0:.3}\",\"ended\":\"{end:.3}\",\"files\":[\"capture-router-lab-a.pcap\",\"capture-router-lab-b.pcap\",\"events.jsonl\"]}}",
        app.id,
        if baseline { 0 } else { o.per_direction * 2 }
    );
    std::fs::write(dir.join("meta.json"), &meta).unwrap();
    end
}

/// Writes a synthetic campaign; returns its folder and the number of messages.
pub fn campaign(root: &Path, o: &SynOpts) -> (PathBuf, usize) {
    let dir = root.join("synthetic-20261123T000000Z");
    let mut rng = Rng::new(o.seed);
    let mut n = 0;
    let mut t = 1_763_856_000.0;
    let mut metas = Vec::new();
    let mut msgs = 0;
    for app in apps() {
        for (baseline, reps) in [(true, 1), (false, o.repetitions)] {
            for rep in 1..=reps {
                n += 1;
                let id = format!("m{n:04}");
                let md = dir.join("measurements").join(&id);
                t = measurement(&md, &id, &app, baseline, rep, t, o, &mut rng) + 5.0;
                metas.push(std::fs::read_to_string(md.join("meta.json")).unwrap());
                if !baseline {
                    msgs += o.per_direction * 2;
                }
            }
        }
    }
    std::fs::write(
        dir.join("index.json"),
        format!(
            "{{\"schema\":\"matador/index/1\",\"measurements\":[{}]}}",
            metas.join(",")
        ),
    )
    .unwrap();
    (dir, msgs)
}

/// The lab truth: (app, relay address, port).
pub fn truth() -> Vec<(String, std::net::IpAddr, u16)> {
    apps()
        .into_iter()
        .map(|a| (a.id.to_string(), std::net::IpAddr::V4(a.relay), a.port))
        .collect()
}
