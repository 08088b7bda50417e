//! The statistics: per event and endpoint, whether the endpoint explains
//! the event and how likely it would by chance; summed per endpoint into
//! poolable [`Counts`].
//!
//! Chance of endpoint `E` explaining event `e` (`p`): the share of
//! positions of `e`'s window (same width, same byte need, same direction),
//! slid by half its width over the phone's quiet time (no event window
//! overlapping) and over the phone's baseline captures, where `E` carries
//! the need; smoothed as `(k + ½) / (n + 1)`.

use super::CorrelateConfig;
use super::capture::{CaptureLog, Endpoint};
use super::events::{Event, EventKind};
use super::folder::captures_of;
use crate::analysis::model::ServerRecord;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Probability that a messaging server explains one of its events (the
/// alternative hypothesis of the odds; 1 in 20 missed for reasons the
/// windows cannot see).
pub const EXPLAIN_RATE: f64 = 0.95;

/// Counts of one endpoint over a measurement's events, poolable over a
/// campaign (sums).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Sends explained (the message's bytes left towards the endpoint in the window).
    pub send_hits: u32,
    /// Sends of the phones that used the endpoint.
    pub sends: u32,
    /// Receives explained (the message's bytes came from the endpoint in the window).
    pub recv_hits: u32,
    /// Receives of the phones that used the endpoint.
    pub recvs: u32,
    /// Sends expected to be explained by chance (sum of `p`).
    pub send_chance: f64,
    /// Receives expected to be explained by chance.
    pub recv_chance: f64,
    /// log10 odds from the sends.
    pub send_odds: f64,
    /// log10 odds from the receives.
    pub recv_odds: f64,
    /// Background positions where the endpoint carried an event's need.
    pub bg_hits: u32,
    /// Background positions considered.
    pub bg_n: u32,
    /// Of those, positions in baseline runs with traffic.
    pub base_hits: u32,
    /// Positions in baseline runs.
    pub base_n: u32,
}

fn corrected(hits: u32, n: u32, chance: f64) -> f64 {
    let n = f64::from(n);
    if n - chance <= 1e-9 {
        return 0.0;
    }
    ((f64::from(hits) - chance) / (n - chance)).clamp(0.0, 1.0)
}

impl Counts {
    /// Adds another measurement's counts (campaign pooling).
    pub fn add(&mut self, o: &Counts) {
        self.send_hits += o.send_hits;
        self.sends += o.sends;
        self.recv_hits += o.recv_hits;
        self.recvs += o.recvs;
        self.send_chance += o.send_chance;
        self.recv_chance += o.recv_chance;
        self.send_odds += o.send_odds;
        self.recv_odds += o.recv_odds;
        self.bg_hits += o.bg_hits;
        self.bg_n += o.bg_n;
        self.base_hits += o.base_hits;
        self.base_n += o.base_n;
    }

    /// (corrected send score, corrected receive score, combined score):
    /// `(hits − chance) / (events − chance)` per direction, the lower of
    /// the directions that have events.
    pub fn scores(&self) -> (f64, f64, f64) {
        let cs = corrected(self.send_hits, self.sends, self.send_chance);
        let cr = corrected(self.recv_hits, self.recvs, self.recv_chance);
        let score = match (self.sends > 0, self.recvs > 0) {
            (true, true) => cs.min(cr),
            (true, false) => cs,
            (false, true) => cr,
            (false, false) => 0.0,
        };
        (cs, cr, score)
    }

    /// log10 odds over both directions.
    pub fn odds(&self) -> f64 {
        self.send_odds + self.recv_odds
    }
}

/// One endpoint of a measurement before classification.
#[derive(Debug, Clone)]
pub struct Tallied {
    /// The endpoint.
    pub ep: Endpoint,
    /// Its counts.
    pub counts: Counts,
    /// Phones that talked to it.
    pub phones: BTreeSet<String>,
    /// Attribution's record for it, if any.
    pub attr: Option<ServerRecord>,
    /// DNS/SNI/Host names of the address.
    pub names: BTreeSet<String>,
    /// A DNS port or an address that answered DNS.
    pub is_dns: bool,
    /// Payload bytes in the measurement.
    pub bytes: u64,
    /// Payload packets in the measurement.
    pub packets: u64,
    /// 30-second intervals of the measurement with traffic to or from it.
    pub active_intervals: u32,
}

/// An event's window on the host clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Start.
    pub from: f64,
    /// End.
    pub to: f64,
    /// Payload bytes the message needs (its length; 1 when unknown).
    pub need: u64,
    /// 0: to the server (a send), 1: from the server (a receive).
    pub dir: usize,
}

/// The window of a send or receive event (`None` for other events):
/// sends `[t − send_before, t + send_after]`, receives `[t − recv_before −
/// lag, t + recv_after]` with the lag from the event's uncertainty (else
/// `default_recv_lag`), both widened by the event's uncertainty, its clock
/// uncertainty and the clock slack.
pub fn window(e: &Event, cfg: &CorrelateConfig) -> Option<Window> {
    let clk = cfg.clock_slack + e.clock_uncertainty.unwrap_or(0.0);
    let (from, to, dir) = match e.kind {
        EventKind::Send => {
            let (b, a) = e.uncertainty.unwrap_or((0.0, 0.0));
            (e.t - cfg.send_before - b, e.t + cfg.send_after + a, 0)
        }
        EventKind::Receive => {
            let (b, a) = e.uncertainty.unwrap_or((cfg.default_recv_lag, 0.0));
            (e.t - cfg.recv_before - b, e.t + cfg.recv_after + a, 1)
        }
        EventKind::Other => return None,
    };
    Some(Window {
        from: from - clk,
        to: to + clk,
        need: e.bytes.unwrap_or(1).max(1),
        dir,
    })
}

/// The captures of one phone, indexed by endpoint.
struct PhoneLogs<'a> {
    logs: Vec<&'a CaptureLog>,
    index: Vec<HashMap<Endpoint, usize>>,
}

impl<'a> PhoneLogs<'a> {
    fn new(logs: Vec<&'a CaptureLog>) -> Self {
        let index = logs
            .iter()
            .map(|l| {
                l.endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (*e, i))
                    .collect()
            })
            .collect();
        PhoneLogs { logs, index }
    }

    fn sum(&self, ep: &Endpoint, dir: usize, from: f64, to: f64) -> u64 {
        let mut s = 0;
        for (l, ix) in self.logs.iter().zip(&self.index) {
            if let Some(&i) = ix.get(ep) {
                s += l.series[i][dir].sum(from, to);
            }
        }
        s
    }

    fn total(&self, ep: &Endpoint, dir: usize) -> u64 {
        let mut s = 0;
        for (l, ix) in self.logs.iter().zip(&self.index) {
            if let Some(&i) = ix.get(ep) {
                s += l.series[i][dir].total();
            }
        }
        s
    }

    fn span(&self) -> Option<(f64, f64)> {
        self.logs
            .iter()
            .filter_map(|l| l.span)
            .fold(None, |acc, (a, b)| {
                Some(acc.map_or((a, b), |(x, y): (f64, f64)| (x.min(a), y.max(b))))
            })
    }
}

/// Window start positions of width `w`, half a width apart, over `span`,
/// skipping those that overlap any of `busy`.
fn positions(span: Option<(f64, f64)>, w: f64, busy: &[Window]) -> Vec<f64> {
    let Some((a, b)) = span else {
        return Vec::new();
    };
    let step = (w / 2.0).max(0.5);
    let mut out = Vec::new();
    let mut x = a;
    while x + w <= b {
        if !busy.iter().any(|o| x < o.to && o.from < x + w) {
            out.push(x);
        }
        x += step;
    }
    out
}

/// Chance positions (own quiet time, baselines) where `ep` carries the need.
fn chance_hits(logs: &PhoneLogs<'_>, ep: &Endpoint, w: &Window, pos: &[f64]) -> u32 {
    if logs.total(ep, w.dir) < w.need {
        return 0;
    }
    let width = w.to - w.from;
    pos.iter()
        .filter(|&&x| logs.sum(ep, w.dir, x, x + width) >= w.need)
        .count() as u32
}

/// Counts of every endpoint one phone used, over that phone's events.
fn phone_counts(
    own: &PhoneLogs<'_>,
    base: &PhoneLogs<'_>,
    wins: &[Window],
    endpoints: &BTreeSet<Endpoint>,
) -> BTreeMap<Endpoint, Counts> {
    let mut out: BTreeMap<Endpoint, Counts> =
        endpoints.iter().map(|e| (*e, Counts::default())).collect();
    let span = own.span();
    let base_span = base.span();
    for w in wins {
        let width = w.to - w.from;
        let own_pos = positions(span, width, wins);
        let base_pos = positions(base_span, width, &[]);
        let n = (own_pos.len() + base_pos.len()) as u32;
        for (ep, c) in out.iter_mut() {
            let hit = own.sum(ep, w.dir, w.from, w.to) >= w.need;
            let k_own = chance_hits(own, ep, w, &own_pos);
            let k_base = chance_hits(base, ep, w, &base_pos);
            let p = ((f64::from(k_own + k_base) + 0.5) / (f64::from(n) + 1.0)).clamp(1e-4, 0.999);
            let odds = if hit {
                (EXPLAIN_RATE / p).log10()
            } else {
                ((1.0 - EXPLAIN_RATE) / (1.0 - p)).log10()
            };
            let (hits, events, chance, o) = if w.dir == 0 {
                (
                    &mut c.send_hits,
                    &mut c.sends,
                    &mut c.send_chance,
                    &mut c.send_odds,
                )
            } else {
                (
                    &mut c.recv_hits,
                    &mut c.recvs,
                    &mut c.recv_chance,
                    &mut c.recv_odds,
                )
            };
            *hits += u32::from(hit);
            *events += 1;
            *chance += p;
            *o += odds;
            c.bg_hits += k_own + k_base;
            c.bg_n += n;
            c.base_hits += k_base;
            c.base_n += base_pos.len() as u32;
        }
    }
    out
}

/// Distinct 30-second intervals in which `logs` carry traffic for `ep`.
fn active_intervals(logs: &PhoneLogs<'_>, ep: &Endpoint) -> BTreeSet<i64> {
    let mut bins = BTreeSet::new();
    for (l, ix) in logs.logs.iter().zip(&logs.index) {
        if let Some(&i) = ix.get(ep) {
            for s in &l.series[i] {
                bins.extend(s.t.iter().map(|t| (t / 30.0).floor() as i64));
            }
        }
    }
    bins
}

/// The windows of a phone's events that its captures cover (the window
/// overlaps the captures' span), and how many are not.
fn covered_windows(
    events: &[Event],
    phone: &str,
    span: Option<(f64, f64)>,
    cfg: &CorrelateConfig,
) -> (Vec<Window>, usize) {
    let mut outside = 0;
    let mut wins = Vec::new();
    for e in events.iter().filter(|e| e.phone == phone) {
        let Some(w) = window(e, cfg) else { continue };
        match span {
            Some((a, b)) if w.to >= a && w.from <= b => wins.push(w),
            _ => outside += 1,
        }
    }
    (wins, outside)
}

/// Counts every endpoint of a measurement (`logs`, `events`) against
/// chance; `baseline(phone)` gives that phone's baseline captures. Events
/// outside their phone's captures are left out and noted in `notes`.
pub fn tally<'a>(
    logs: &'a [CaptureLog],
    events: &[Event],
    baseline: &dyn Fn(&str) -> Vec<&'a CaptureLog>,
    cfg: &CorrelateConfig,
    notes: &mut Vec<String>,
) -> Vec<Tallied> {
    let phones: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind != EventKind::Other)
        .map(|e| e.phone.as_str())
        .collect();
    let mut acc: BTreeMap<Endpoint, (Counts, BTreeSet<String>, BTreeSet<i64>)> = BTreeMap::new();
    for ph in phones {
        let own = PhoneLogs::new(captures_of(logs, ph));
        let base = PhoneLogs::new(baseline(ph));
        let (wins, outside) = covered_windows(events, ph, own.span(), cfg);
        if outside > 0 {
            notes.push(format!(
                "{outside} send/receive events of {ph} lie outside its captures' time span (capture started late, stopped early or is damaged); not counted"
            ));
        }
        let endpoints: BTreeSet<Endpoint> = own
            .logs
            .iter()
            .flat_map(|l| l.endpoints.iter().copied())
            .collect();
        for (ep, c) in phone_counts(&own, &base, &wins, &endpoints) {
            let bins = active_intervals(&own, &ep);
            let e = acc.entry(ep).or_default();
            e.0.add(&c);
            e.1.insert(ph.to_string());
            e.2.extend(bins);
        }
    }
    let ev = Evidence::of(logs);
    acc.into_iter()
        .map(|(ep, (counts, phones, bins))| ev.tallied(ep, counts, phones, bins.len() as u32))
        .collect()
}

/// Attribution, names, resolvers and volumes merged over a measurement's captures.
struct Evidence<'a> {
    attributed: HashMap<(IpAddr, u16, &'a str), &'a ServerRecord>,
    names: BTreeMap<IpAddr, BTreeSet<String>>,
    resolvers: BTreeSet<IpAddr>,
    volume: HashMap<Endpoint, (u64, u64)>,
}

impl<'a> Evidence<'a> {
    fn of(logs: &'a [CaptureLog]) -> Self {
        let mut ev = Evidence {
            attributed: HashMap::new(),
            names: BTreeMap::new(),
            resolvers: BTreeSet::new(),
            volume: HashMap::new(),
        };
        for l in logs {
            for s in &l.servers {
                ev.attributed
                    .entry((s.ip, s.port, s.proto.as_str()))
                    .or_insert(s);
            }
            for (ip, n) in &l.names {
                ev.names.entry(*ip).or_default().extend(n.iter().cloned());
            }
            ev.resolvers.extend(l.resolvers.iter().copied());
            for (i, ep) in l.endpoints.iter().enumerate() {
                let v = ev.volume.entry(*ep).or_default();
                v.0 += l.bytes(i);
                v.1 += l.series[i].iter().map(|s| s.t.len() as u64).sum::<u64>();
            }
        }
        ev
    }

    fn tallied(
        &self,
        ep: Endpoint,
        counts: Counts,
        phones: BTreeSet<String>,
        bins: u32,
    ) -> Tallied {
        let attr = self
            .attributed
            .get(&(ep.ip, ep.port, ep.proto_name()))
            .map(|s| (*s).clone());
        let mut names = self.names.get(&ep.ip).cloned().unwrap_or_default();
        if let Some(s) = &attr {
            names.extend(s.names.iter().cloned());
        }
        let (bytes, packets) = self.volume.get(&ep).copied().unwrap_or_default();
        Tallied {
            ep,
            counts,
            phones,
            attr,
            names,
            is_dns: matches!(ep.port, 53 | 853 | 5353) || self.resolvers.contains(&ep.ip),
            bytes,
            packets,
            active_intervals: bins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: f64, kind: EventKind, unc: Option<(f64, f64)>) -> Event {
        Event {
            t,
            phone: "a".into(),
            app: String::new(),
            kind,
            msg: None,
            bytes: Some(10),
            uncertainty: unc,
            clock_uncertainty: Some(0.001),
        }
    }

    #[test]
    fn windows_widen_by_uncertainty_or_default_lag() {
        let cfg = CorrelateConfig::default();
        let w = window(&ev(100.0, EventKind::Receive, Some((2.0, 0.1))), &cfg).unwrap();
        assert!((w.from - (100.0 - 0.5 - 2.0 - 0.501)).abs() < 1e-9, "{w:?}");
        assert!((w.to - (100.0 + 0.2 + 0.1 + 0.501)).abs() < 1e-9, "{w:?}");
        let w = window(&ev(100.0, EventKind::Receive, None), &cfg).unwrap();
        assert!((w.from - (100.0 - 0.5 - 6.0 - 0.501)).abs() < 1e-9, "{w:?}");
        let w = window(&ev(100.0, EventKind::Send, None), &cfg).unwrap();
        assert_eq!((w.dir, w.need), (0, 10));
        assert!(window(&ev(1.0, EventKind::Other, None), &cfg).is_none());
    }

    #[test]
    fn corrected_score_and_odds_pool() {
        let mut a = Counts {
            send_hits: 4,
            sends: 4,
            send_chance: 0.4,
            send_odds: 3.0,
            ..Counts::default()
        };
        assert_eq!(a.scores().2, 1.0);
        a.add(&Counts {
            recv_hits: 1,
            recvs: 2,
            recv_chance: 0.0,
            recv_odds: -1.0,
            ..Counts::default()
        });
        let (cs, cr, s) = a.scores();
        assert_eq!((cs, cr, s), (1.0, 0.5, 0.5));
        assert_eq!(a.odds(), 2.0);
    }
}
