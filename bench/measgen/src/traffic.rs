//! One measurement: two phones' router-side traffic and their events.
//!
//! Timeline of a message (host clock, seconds): the sender types (a typing
//! record goes out), taps at `tap`; the app sends `bytes + overhead` on its
//! messaging server `d_send` later; the receiver's server delivers it
//! `transit` later — when the receiving app sleeps (half the messages) a
//! push wake-up arrives first and the app fetches the message after it
//! wakes; the receiver notices it `lag` later (`U(0.1, lag_max)`), and both
//! sides exchange delivery and read receipts. Recorded event times carry
//! the phone's residual clock error. Background: keep-alives on every
//! connection, the app's presence bursts (message-like sizes), media
//! downloads, the shared CDN, push heartbeats and Poisson noise flows with
//! bursts of message-like sizes.

use crate::conn::Conn;
use crate::model::{App, Conditions, Host, Shared};
use crate::pcap::Frame;
use crate::rng::Rng;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A phone in a measurement.
#[derive(Debug, Clone)]
pub struct Phone {
    /// Device name (`capture-router-<name>.pcap`).
    pub name: String,
    /// Its address behind the router.
    pub ip: IpAddr,
    /// Index in its pair (0 sender side, 1 receiver side): picks the server of split apps.
    pub index: usize,
}

/// One event as recorded (times already include the clock error).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRec {
    /// Recorded host-clock time.
    pub t: f64,
    /// Phone index (0 or 1).
    pub phone: usize,
    /// `app_launch`, `send_tap`, `received`, `baseline_start`, `baseline_end`.
    pub kind: &'static str,
    /// Message number.
    pub msg: Option<u32>,
    /// Message length, bytes.
    pub bytes: Option<u64>,
    /// (before, after) seconds, when written.
    pub uncertainty: Option<(f64, f64)>,
}

/// What a measurement produced.
#[derive(Debug, Default)]
pub struct Generated {
    /// Frames per phone (router capture of that phone).
    pub frames: [Vec<Frame>; 2],
    /// Events in time order.
    pub events: Vec<EventRec>,
    /// Servers that carried a message's content (the truth).
    pub truth: BTreeSet<Host>,
    /// Messages sent.
    pub messages: u32,
}

/// Per-phone connections that live through the measurement.
struct Side {
    msg: Conn,
    push: Conn,
    keep: Conn,
    clock: f64,
}

struct Ctx<'a> {
    app: &'a App,
    shared: &'a Shared,
    cond: Conditions,
    phones: &'a [Phone; 2],
    rng: Rng,
    out: Generated,
}

/// Generates a measurement from `start` with `messages` messages (0: an
/// empty baseline run of `quiet` seconds).
pub fn measurement(
    app: &App,
    shared: &Shared,
    cond: Conditions,
    phones: &[Phone; 2],
    start: f64,
    messages: u32,
    rng: Rng,
) -> Generated {
    let mut c = Ctx {
        app,
        shared,
        cond,
        phones,
        rng,
        out: Generated::default(),
    };
    let mut sides: Vec<Side> = (0..2).map(|i| c.side(i)).collect();
    let end = if messages == 0 {
        c.baseline(start)
    } else {
        c.messages(&mut sides, start, messages)
    };
    for (i, s) in sides.iter_mut().enumerate() {
        c.background(i, s, start, end);
    }
    c.out.events.sort_by(|a, b| a.t.total_cmp(&b.t));
    c.out.messages = messages;
    c.out
}

impl Ctx<'_> {
    fn side(&mut self, i: usize) -> Side {
        let ph = &self.phones[i];
        let srv = self.app.messaging[ph.index % self.app.messaging.len()];
        let r = &mut self.rng;
        Side {
            msg: Conn::new(ph.ip, srv, r),
            push: Conn::new(ph.ip, self.shared.push, r),
            keep: Conn::new(ph.ip, self.app.keepalive, r),
            clock: r.uniform(-self.cond.clock_error, self.cond.clock_error),
        }
    }

    fn event(&mut self, phone: usize, t: f64, kind: &'static str, clock: f64) -> &mut EventRec {
        self.out.events.push(EventRec {
            t: t + clock,
            phone,
            kind,
            msg: None,
            bytes: None,
            uncertainty: None,
        });
        self.out.events.last_mut().unwrap()
    }

    fn baseline(&mut self, start: f64) -> f64 {
        let end = start + self.rng.uniform(90.0, 150.0);
        for i in 0..2 {
            self.event(i, start + 0.5, "baseline_start", 0.0);
            self.event(i, end - 0.5, "baseline_end", 0.0);
        }
        end
    }

    fn messages(&mut self, sides: &mut [Side], start: f64, n: u32) -> f64 {
        for (i, s) in sides.iter().enumerate() {
            self.event(i, start + 1.0, "app_launch", s.clock);
        }
        let mut t = start + self.rng.uniform(8.0, 15.0);
        for m in 0..n {
            let from = usize::from(self.rng.chance(0.4));
            self.message(sides, from, m, t);
            t += self.rng.uniform(5.0, 25.0);
        }
        t + self.rng.uniform(10.0, 20.0)
    }

    /// Message sizes 1–4000 bytes, log-uniform (short texts are common).
    fn message(&mut self, sides: &mut [Side], from: usize, m: u32, tap: f64) {
        let to = 1 - from;
        let r = &mut self.rng;
        let bytes = r.log_uniform(1.0, 4000.0).round() as u64;
        let wire = bytes + self.app.overhead + r.int(0, 16);
        let typing = tap - r.uniform(0.5, 4.0);
        let d_send = if r.chance(0.05) {
            r.uniform(1.0, 2.5)
        } else {
            r.uniform(0.03, 0.8)
        };
        let server = |i: usize| self.app.messaging[self.phones[i].index % self.app.messaging.len()];
        let split = server(from) != server(to);
        let transit = r.uniform(0.05, 0.5) + if split { r.uniform(0.1, 0.6) } else { 0.0 };
        let asleep = r.chance(0.5);
        let (s, rcv) = two(sides, from, to);
        let f = &mut self.out.frames;
        let small = |r: &mut Rng| r.int(40, 120);
        let n = small(r);
        s.msg.data(typing, true, n, r, &mut f[from]);
        let n = small(r);
        rcv.msg.data(typing + transit, false, n, r, &mut f[to]);
        let sent = tap + d_send;
        s.msg.data(sent, true, wire, r, &mut f[from]);
        let n = r.int(40, 80);
        s.msg.data(sent + s.msg.rtt(), false, n, r, &mut f[from]);
        let mut arrive = sent + transit;
        if asleep {
            let n = r.int(150, 900);
            rcv.push.data(arrive, false, n, r, &mut f[to]);
            let n = r.int(40, 90);
            rcv.push.data(arrive + 0.01, true, n, r, &mut f[to]);
            arrive += r.uniform(0.2, 1.5);
        }
        rcv.msg.data(arrive, false, wire, r, &mut f[to]);
        let n = r.int(40, 90);
        rcv.msg.data(arrive + 0.05, true, n, r, &mut f[to]);
        let n = r.int(40, 100);
        s.msg.data(arrive + transit, false, n, r, &mut f[from]);
        let lag = r.uniform(0.1, self.cond.lag_max.max(0.1));
        let seen = arrive + lag;
        let read = seen + r.uniform(0.2, 2.0);
        let n = r.int(60, 150);
        rcv.msg.data(read, true, n, r, &mut f[to]);
        let n = r.int(60, 150);
        s.msg.data(read + transit, false, n, r, &mut f[from]);
        let (sc, rc) = (s.clock, rcv.clock);
        self.out.truth.insert(server(from));
        self.out.truth.insert(server(to));
        self.record(from, tap, "send_tap", sc, m, bytes, (0.05, 0.3));
        let lag_max = self.cond.lag_max;
        self.record(to, seen, "received", rc, m, bytes, (lag_max + 0.05, 0.05));
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        phone: usize,
        t: f64,
        kind: &'static str,
        clock: f64,
        m: u32,
        bytes: u64,
        unc: (f64, f64),
    ) {
        let written = self.rng.chance(self.cond.uncertainty_share);
        let jitter = self.rng.uniform(-0.02, 0.02);
        let e = self.event(phone, t + jitter, kind, clock);
        e.msg = Some(m);
        e.bytes = Some(bytes);
        e.uncertainty = written.then_some(unc);
    }

    fn background(&mut self, i: usize, s: &mut Side, start: f64, end: f64) {
        let r = &mut self.rng;
        let f = &mut self.out.frames[i];
        let ping =
            |c: &mut Conn, every: (f64, f64), size: (u64, u64), r: &mut Rng, f: &mut Vec<Frame>| {
                let mut t = start + r.uniform(0.0, every.1);
                while t < end {
                    let n = r.int(size.0, size.1);
                    c.data(t, true, n, r, f);
                    let n = r.int(size.0, size.1);
                    c.data(t + c.rtt(), false, n, r, f);
                    t += r.uniform(every.0, every.1);
                }
            };
        ping(&mut s.msg, (20.0, 60.0), (30, 60), r, f);
        ping(&mut s.keep, (15.0, 45.0), (40, 150), r, f);
        ping(&mut s.push, (60.0, 240.0), (20, 40), r, f);
        // Presence bursts on the app's keep-alive host: message-like sizes.
        let mut t = start + r.exp(0.5 / 60.0);
        while t < end {
            let n = r.log_uniform(200.0, 3000.0) as u64;
            s.keep.data(t, r.chance(0.5), n, r, f);
            t += r.exp(0.5 / 60.0);
        }
        let ip = self.phones[i].ip;
        for _ in 0..r.int(0, 2) {
            let t = r.uniform(start, end);
            let mut c = Conn::new(ip, self.app.media, r);
            flow(&mut c, t, r.int(300, 800), r.int(20_000, 400_000), r, f);
        }
        // The shared CDN, 0.5–2 requests per minute.
        let cdn_rate = r.uniform(0.5, 2.0) / 60.0;
        let mut t = start + r.exp(cdn_rate);
        while t < end {
            let mut c = Conn::new(ip, self.shared.cdn, r);
            let (q, a) = (r.int(200, 1500), r.log_uniform(300.0, 6000.0) as u64);
            flow(&mut c, t, q, a, r, f);
            t += r.exp(cdn_rate);
        }
        self.noise(i, start, end);
    }

    /// Poisson background flows; a fifth start a burst of 3–8 flows within
    /// 3 s with message-like sizes (50–4000 bytes each way).
    fn noise(&mut self, i: usize, start: f64, end: f64) {
        let rate = self.cond.noise_per_min / 60.0;
        let r = &mut self.rng;
        let f = &mut self.out.frames[i];
        let ip = self.phones[i].ip;
        let hosts = &self.shared.noise;
        let mut t = start + r.exp(rate);
        while t < end {
            let burst = if r.chance(0.2) { r.int(3, 8) } else { 1 };
            for k in 0..burst {
                let h = hosts[r.skewed(hosts.len())];
                let mut c = Conn::new(ip, h, r);
                let at = t + if k == 0 { 0.0 } else { r.uniform(0.0, 3.0) };
                let (q, a) = if burst > 1 {
                    (
                        r.log_uniform(50.0, 4000.0) as u64,
                        r.log_uniform(50.0, 4000.0) as u64,
                    )
                } else {
                    (
                        r.log_uniform(80.0, 1500.0) as u64,
                        r.log_uniform(100.0, 30_000.0) as u64,
                    )
                };
                flow(&mut c, at, q, a, r, f);
            }
            t += r.exp(rate / (1.0 + 0.2 * 4.5));
        }
    }
}

/// A short flow: open, request, response.
fn flow(c: &mut Conn, t: f64, req: u64, resp: u64, r: &mut Rng, f: &mut Vec<Frame>) {
    c.open(t, r, f);
    let t = t + 2.0 * c.rtt();
    c.data(t, true, req, r, f);
    c.data(t + c.rtt() + r.uniform(0.005, 0.2), false, resp, r, f);
}

fn two(sides: &mut [Side], a: usize, b: usize) -> (&mut Side, &mut Side) {
    let (x, y) = sides.split_at_mut(1);
    if a == 0 {
        let _ = b;
        (&mut x[0], &mut y[0])
    } else {
        (&mut y[0], &mut x[0])
    }
}
