//! `dns_forgery` rules that need nothing but the capture:
//!
//! - `known_forged_answer`: an A/AAAA answer is on the shipped list of
//!   addresses censors put in forged answers (confidence 0.95);
//! - `bogon_answer`: a public name answered with a loopback, reserved,
//!   documentation or multicast address (0.8) or a private/CGN/link-local
//!   one (0.5);
//! - `duplicate_reply`: one query (same client, port, resolver, id, name)
//!   drew replies with different answers — an injector racing the resolver.
//!   The suspect is the reply whose TTL/IP-ID misfit the resolver or whose
//!   answer is listed/bogon, else the first one (the injector sits closer);
//!   when the injector races so many queries that the resolver's overall
//!   TTL mode is unstable, the TTL habit of the undisputed replies decides;
//!   an ICMP port unreachable for a later reply confirms the client had
//!   already taken the first;
//! - `resolver_misfit`: an address answer whose IP TTL (≥ 3 off a stable
//!   mode) or IP-ID (breaking a zero, constant or counter pattern, or a known
//!   injector constant) does not fit the resolver's other replies.

use super::data::{BogonKind, RuleData, is_public_name};
use super::{DnsFindings, DnsMeta, PortUnreachable, event, round2};
use crate::analysis::model::{DnsRecord, InterferenceEvent, InterferenceRule};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Replies from one resolver needed before its TTL/IP-ID habits are trusted.
const MIN_BASELINE: usize = 3;
/// TTL distance from the resolver's usual value that counts as a misfit.
const TTL_MISFIT: u8 = 3;
/// IP-ID distance from a counter's neighbours that counts as a misfit.
const IPID_MISFIT: u16 = 4096;

/// Applies the rules to the DNS records of one capture.
pub fn check(
    records: &[DnsRecord],
    meta: &HashMap<u64, DnsMeta>,
    unreachable: &[PortUnreachable],
    data: &RuleData,
) -> DnsFindings {
    let responses: Vec<&DnsRecord> = records
        .iter()
        .filter(|r| r.rcode.is_some() && (r.transport == "udp" || r.transport == "tcp"))
        .collect();
    let mut by_server: HashMap<(IpAddr, &str), Vec<&DnsRecord>> = HashMap::new();
    for r in &responses {
        by_server
            .entry((r.server, r.transport.as_str()))
            .or_default()
            .push(r);
    }
    let stats: HashMap<(IpAddr, &str), ServerStats> = by_server
        .iter()
        .map(|(k, v)| (*k, ServerStats::new(v)))
        .collect();
    let misfits: HashMap<u64, Misfit> = responses
        .iter()
        .filter_map(|r| {
            let st = &stats[&(r.server, r.transport.as_str())];
            misfit(r, st, data).map(|m| (r.frame, m))
        })
        .collect();

    let mut found = DnsFindings::default();
    let mut covered = BTreeSet::new();
    for r in &responses {
        let known: Vec<(IpAddr, &String)> = addresses(r)
            .filter_map(|ip| data.forged.get_key_value(&ip).map(|(ip, n)| (*ip, n)))
            .collect();
        if !known.is_empty() {
            covered.insert(r.frame);
            let mut e = event(
                InterferenceRule::KnownForgedAnswer,
                vec![r.frame],
                r.server,
                0.95,
                format!(
                    "{} answered with known forged address {}",
                    r.query,
                    join(known.iter().map(|k| k.0))
                ),
            );
            base_evidence(&mut e.evidence, r, meta.get(&r.frame));
            e.evidence.insert(
                "forged_addresses".into(),
                json!(known.iter().map(|k| k.0.to_string()).collect::<Vec<_>>()),
            );
            e.evidence.insert(
                "sources".into(),
                json!(known.iter().map(|k| k.1).collect::<Vec<_>>()),
            );
            add_misfit(&mut e.evidence, misfits.get(&r.frame));
            found.push(e, r.ip_id, known.iter().map(|k| k.0));
            continue;
        }
        if !is_public_name(&r.query) {
            continue;
        }
        let bogons: Vec<(IpAddr, &str, BogonKind)> = addresses(r)
            .filter_map(|ip| data.bogon(ip).map(|b| (ip, b.category.as_str(), b.kind)))
            .collect();
        // A private resolver handing out private addresses is the local
        // network's own policy (split horizon, ad-block sinkhole), not a
        // censor on the path; impossible addresses are flagged whoever
        // serves them, since local resolvers forward upstream forgeries.
        let local_resolver = data.bogon(r.server).is_some();
        let impossible = bogons.iter().any(|b| b.2 == BogonKind::Impossible);
        if !bogons.is_empty() && (impossible || !local_resolver) {
            covered.insert(r.frame);
            let mut conf = match (impossible, local_resolver) {
                (true, false) => 0.8,
                (true, true) => 0.6,
                _ => 0.5,
            };
            if misfits.contains_key(&r.frame) {
                conf += 0.1;
            }
            let mut e = event(
                InterferenceRule::BogonAnswer,
                vec![r.frame],
                r.server,
                conf,
                format!(
                    "public name {} answered with {} address {}",
                    r.query,
                    bogons[0].1,
                    join(bogons.iter().map(|b| b.0))
                ),
            );
            base_evidence(&mut e.evidence, r, meta.get(&r.frame));
            e.evidence.insert(
                "forged_addresses".into(),
                json!(bogons.iter().map(|b| b.0.to_string()).collect::<Vec<_>>()),
            );
            e.evidence.insert(
                "categories".into(),
                json!(bogons.iter().map(|b| b.1).collect::<Vec<_>>()),
            );
            add_misfit(&mut e.evidence, misfits.get(&r.frame));
            found.push(e, r.ip_id, bogons.iter().map(|b| b.0));
        }
    }

    for (e, forged) in duplicates(&responses, meta, unreachable, &misfits, &covered) {
        for f in &e.frames {
            covered.insert(*f);
        }
        // Its evidence has no single `ip_id` (one per reply).
        found.push(e, None, forged);
    }

    for r in &responses {
        let Some(m) = misfits.get(&r.frame) else {
            continue;
        };
        if covered.contains(&r.frame) || addresses(r).next().is_none() {
            continue;
        }
        let conf = if m.fields().len() > 1 { 0.65 } else { 0.45 };
        let mut e = event(
            InterferenceRule::ResolverMisfit,
            vec![r.frame],
            r.server,
            conf,
            format!(
                "reply for {} has {} unlike {}'s other replies",
                r.query,
                m.fields().join(" and "),
                r.server
            ),
        );
        base_evidence(&mut e.evidence, r, meta.get(&r.frame));
        add_misfit(&mut e.evidence, Some(m));
        found.push(e, r.ip_id, []);
    }
    found
}

/// A/AAAA answer addresses of a record.
fn addresses<'a>(r: &'a DnsRecord) -> impl Iterator<Item = IpAddr> + 'a {
    r.answers
        .iter()
        .filter(|a| a.rtype == "A" || a.rtype == "AAAA")
        .filter_map(|a| a.data.parse().ok())
}

fn join(ips: impl Iterator<Item = IpAddr>) -> String {
    ips.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Evidence of an event about one reply: the query's and the reply's.
fn base_evidence(ev: &mut BTreeMap<String, Value>, r: &DnsRecord, meta: Option<&DnsMeta>) {
    query_evidence(ev, r, meta);
    reply_evidence(ev, r, meta);
}

/// The query a reply answers: name, type, client, query frame.
fn query_evidence(ev: &mut BTreeMap<String, Value>, r: &DnsRecord, meta: Option<&DnsMeta>) {
    ev.insert("query".into(), json!(r.query));
    ev.insert("qtype".into(), json!(r.qtype));
    ev.insert("client".into(), json!(r.client.to_string()));
    if let Some(q) = meta.and_then(|m| m.query_frame) {
        ev.insert("query_frame".into(), json!(q));
    }
}

/// One reply's own fields: answers, IP TTL and ID, delay after the query.
fn reply_evidence(ev: &mut BTreeMap<String, Value>, r: &DnsRecord, meta: Option<&DnsMeta>) {
    ev.insert("answers".into(), json!(answer_data(r)));
    if let Some(t) = r.ip_ttl {
        ev.insert("ip_ttl".into(), json!(t));
    }
    if let Some(id) = r.ip_id {
        ev.insert("ip_id".into(), json!(format!("{id:#06x}")));
    }
    if let Some(ts) = meta.and_then(|m| m.query_ts) {
        ev.insert("delay_ms".into(), json!(round2(r.ts.since(&ts) * 1000.0)));
    }
}

fn answer_data(r: &DnsRecord) -> Vec<String> {
    r.answers
        .iter()
        .map(|a| format!("{} {}", a.rtype, a.data))
        .collect()
}

/// How a reply departs from its resolver's habits.
#[derive(Debug, Clone, PartialEq)]
struct Misfit {
    ttl: Option<(u8, u8)>,
    ip_id: Option<(u16, &'static str)>,
}

impl Misfit {
    fn fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.ttl.is_some() {
            f.push("ip_ttl");
        }
        if self.ip_id.is_some() {
            f.push("ip_id");
        }
        f
    }
}

fn add_misfit(ev: &mut BTreeMap<String, Value>, m: Option<&Misfit>) {
    let Some(m) = m else { return };
    if let Some((got, usual)) = m.ttl {
        ev.insert("ip_ttl".into(), json!(got));
        ev.insert("expected_ip_ttl".into(), json!(usual));
    }
    if let Some((id, pattern)) = m.ip_id {
        ev.insert("ip_id".into(), json!(format!("{id:#06x}")));
        ev.insert("expected_ip_id_pattern".into(), json!(pattern));
    }
}

/// A resolver's reply habits, computed once so that comparing each reply
/// with "all the others" stays linear-logarithmic on long captures.
struct ServerStats {
    ttl_counts: [usize; 256],
    ttl_n: usize,
    /// IP-IDs in capture order, with the frame.
    ids: Vec<(u64, u16)>,
    /// The same IP-IDs, sorted.
    sorted: Vec<u16>,
    /// Position of each frame in `ids`.
    pos: HashMap<u64, usize>,
    /// Consecutive IP-ID steps (in capture order) that look like a counter.
    good_steps: usize,
}

/// A step between consecutive IP-IDs that a counter would make.
fn counter_step(a: u16, b: u16) -> bool {
    (1..=2000).contains(&b.wrapping_sub(a))
}

impl ServerStats {
    fn new(replies: &[&DnsRecord]) -> Self {
        let mut ttl_counts = [0usize; 256];
        let mut ttl_n = 0;
        for t in replies.iter().filter_map(|r| r.ip_ttl) {
            ttl_counts[usize::from(t)] += 1;
            ttl_n += 1;
        }
        let ids: Vec<(u64, u16)> = replies
            .iter()
            .filter_map(|r| r.ip_id.map(|i| (r.frame, i)))
            .collect();
        let mut sorted: Vec<u16> = ids.iter().map(|x| x.1).collect();
        sorted.sort_unstable();
        let pos = ids.iter().enumerate().map(|(i, x)| (x.0, i)).collect();
        let good_steps = ids
            .windows(2)
            .filter(|w| counter_step(w[0].1, w[1].1))
            .count();
        ServerStats {
            ttl_counts,
            ttl_n,
            ids,
            sorted,
            pos,
            good_steps,
        }
    }

    /// Stable TTL mode of the replies other than one with `ttl`.
    fn ttl_mode_without(&self, ttl: u8) -> Option<u8> {
        let mut counts = self.ttl_counts;
        counts[usize::from(ttl)] -= 1;
        mode_of_counts(&counts, self.ttl_n - 1, MIN_BASELINE)
    }

    /// How the IP-ID `id` of the reply at `frame` departs from the others'.
    fn ipid_misfit(&self, frame: u64, id: u16) -> Option<(u16, &'static str)> {
        let n = self.ids.len() - 1; // others
        if n < MIN_BASELINE {
            return None;
        }
        // Others' extremes: the sorted list minus one occurrence of `id`.
        let at = self.sorted.binary_search(&id).ok()?;
        let first = if at == 0 {
            self.sorted[1]
        } else {
            self.sorted[0]
        };
        let last_i = self.sorted.len() - 1;
        let last = if at == last_i {
            self.sorted[last_i - 1]
        } else {
            self.sorted[last_i]
        };
        if first == last {
            return (id != first).then_some((id, if first == 0 { "zero" } else { "constant" }));
        }
        // Counter steps among the others: drop the two steps touching this
        // reply, add the step that bridges it.
        let p = *self.pos.get(&frame)?;
        let mut good = self.good_steps;
        let prev = p.checked_sub(1).map(|i| self.ids[i].1);
        let next = self.ids.get(p + 1).map(|x| x.1);
        if let Some(a) = prev {
            good -= usize::from(counter_step(a, id));
        }
        if let Some(b) = next {
            good -= usize::from(counter_step(id, b));
        }
        if let (Some(a), Some(b)) = (prev, next) {
            good += usize::from(counter_step(a, b));
        }
        let steps = n - 1;
        if good * 5 < steps * 4 {
            return None; // random IP-IDs: no expectation
        }
        // Far from *every* other reply: a genuine reply always sits near
        // some other genuine one on the counter, whatever forged replies lie
        // between. Nearest neighbours in the sorted (circular) list.
        let dist = |a: u16, b: u16| a.wrapping_sub(b).min(b.wrapping_sub(a));
        let len = self.sorted.len();
        let below = self.sorted[(at + len - 1) % len];
        let above = self.sorted[(at + 1) % len];
        (dist(below, id) > IPID_MISFIT && dist(above, id) > IPID_MISFIT).then_some((id, "counter"))
    }
}

/// Compares `r` with the other replies of its resolver (same transport).
fn misfit(r: &DnsRecord, st: &ServerStats, data: &RuleData) -> Option<Misfit> {
    let mut m = Misfit {
        ttl: None,
        ip_id: None,
    };
    if let Some(ttl) = r.ip_ttl
        && let Some(mode) = st.ttl_mode_without(ttl)
        && ttl.abs_diff(mode) >= TTL_MISFIT
    {
        m.ttl = Some((ttl, mode));
    }
    if let Some(id) = r.ip_id {
        let shared = st.sorted.binary_search(&id).is_ok_and(|at| {
            st.sorted.get(at + 1) == Some(&id) || (at > 0 && st.sorted[at - 1] == id)
        });
        let pattern = st.ipid_misfit(r.frame, id);
        let few = st.ids.len() <= MIN_BASELINE;
        // A known injector constant counts unless the resolver's own
        // pattern explains it (a counter passes through 0x3412 too).
        if data.injector_ip_ids.contains_key(&id) && !shared && (few || pattern.is_some()) {
            m.ip_id = Some((id, "known_injector_constant"));
        } else {
            m.ip_id = pattern;
        }
    }
    (m.ttl.is_some() || m.ip_id.is_some()).then_some(m)
}

/// The most common value when at least [`MIN_BASELINE`] values exist and
/// 80 % of them lie within one of it; `None` for unstable baselines.
pub(crate) fn stable_mode(values: &[u8]) -> Option<u8> {
    stable_mode_min(values, MIN_BASELINE)
}

/// [`stable_mode`] with an explicit minimum number of values.
pub(crate) fn stable_mode_min(values: &[u8], min: usize) -> Option<u8> {
    let mut counts = [0usize; 256];
    for &v in values {
        counts[usize::from(v)] += 1;
    }
    mode_of_counts(&counts, values.len(), min)
}

/// The stable mode of `n` values given as a histogram.
fn mode_of_counts(counts: &[usize; 256], n: usize, min: usize) -> Option<u8> {
    if n == 0 || n < min {
        return None;
    }
    let mode = (0..256).max_by_key(|&i| (counts[i], i))?;
    let near: usize = counts[mode.saturating_sub(1)..=(mode + 1).min(255)]
        .iter()
        .sum();
    (near * 5 >= n * 4).then_some(mode as u8)
}

/// Key of one query as the client sent it.
type DupKey = (IpAddr, u16, IpAddr, u16, String, String);

fn answer_set(r: &DnsRecord) -> (Option<String>, BTreeSet<String>) {
    (
        r.rcode.clone(),
        r.answers
            .iter()
            .filter(|a| matches!(a.rtype.as_str(), "A" | "AAAA" | "CNAME"))
            .map(|a| format!("{} {}", a.rtype, a.data.to_ascii_lowercase()))
            .collect(),
    )
}

/// True when every reply carries the same IP TTL and IP-IDs close enough
/// to be one stack's counter: the resolver itself answered twice.
fn same_sender(replies: &[&DnsRecord]) -> bool {
    let ttls: BTreeSet<_> = replies.iter().map(|r| r.ip_ttl).collect();
    let ids: Vec<u16> = replies.iter().filter_map(|r| r.ip_id).collect();
    ttls.len() == 1
        && ids.len() == replies.len()
        && ids.iter().all(|&i| i != 0)
        && ids.windows(2).all(|w| w[1].wrapping_sub(w[0]) <= 256)
}

/// `duplicate_reply`: several replies to one query (same client port,
/// server, id, name and type) with different answers, from different
/// senders. Each event comes with the addresses only the suspect replies
/// carried.
fn duplicates(
    responses: &[&DnsRecord],
    meta: &HashMap<u64, DnsMeta>,
    unreachable: &[PortUnreachable],
    misfits: &HashMap<u64, Misfit>,
    flagged: &BTreeSet<u64>,
) -> Vec<(InterferenceEvent, Vec<IpAddr>)> {
    let groups = reply_groups(responses, meta);
    let habits = TtlHabits::new(responses, &groups);
    let mut out = Vec::new();
    for (key, mut replies) in groups {
        if replies.len() < 2 {
            continue;
        }
        replies.sort_by_key(|r| r.frame);
        let sets: BTreeSet<_> = replies.iter().map(|r| answer_set(r).1).collect();
        if sets.len() < 2 {
            continue; // identical answers (or rcode-only differences)
        }
        if same_sender(&replies) {
            continue;
        }
        let (suspects, reason) = suspects(&replies, flagged, misfits, habits.of(key.2));
        let header_diff = replies
            .iter()
            .map(|r| r.ip_ttl)
            .collect::<BTreeSet<_>>()
            .len()
            > 1;
        let retransmitted = meta
            .get(&replies[0].frame)
            .is_some_and(|m| m.query_count > 1);
        if retransmitted && reason == SuspectReason::FirstToArrive && !header_diff {
            // The client asked twice and a load-balanced name answered
            // differently: not evidence of a race.
            continue;
        }
        let (client, port, server, id, _, _) = key;
        let icmp: Vec<u64> = unreachable
            .iter()
            .filter(|u| {
                u.quoted_src == server
                    && u.quoted_dst == client
                    && u.dport == port
                    && u.dns_id.is_none_or(|d| d == id)
            })
            .map(|u| u.frame)
            .collect();
        let verdict = DuplicateVerdict {
            suspects,
            reason,
            header_diff,
            icmp,
            retransmitted,
        };
        out.push(duplicate_event(&key, &replies, meta, verdict));
    }
    out
}

/// Replies grouped by the query they answer; TCP and unmatched replies
/// (no client port) are left out.
fn reply_groups<'a>(
    responses: &[&'a DnsRecord],
    meta: &HashMap<u64, DnsMeta>,
) -> BTreeMap<DupKey, Vec<&'a DnsRecord>> {
    let mut groups: BTreeMap<DupKey, Vec<&DnsRecord>> = BTreeMap::new();
    for r in responses {
        let Some(m) = meta.get(&r.frame) else {
            continue; // TCP or unmatched: no client port
        };
        groups
            .entry((
                r.client,
                m.client_port,
                r.server,
                r.id,
                r.query.to_ascii_lowercase(),
                r.qtype.clone(),
            ))
            .or_default()
            .push(r);
    }
    groups
}

/// Each resolver's TTL habit learnt from the replies nobody disputes (not
/// part of a multi-answer group): when an injector races many queries, its
/// replies can be too numerous for the all-replies mode to be stable.
struct TtlHabits(HashMap<IpAddr, ([usize; 256], usize)>);

impl TtlHabits {
    fn new(responses: &[&DnsRecord], groups: &BTreeMap<DupKey, Vec<&DnsRecord>>) -> TtlHabits {
        let disputed: BTreeSet<u64> = groups
            .values()
            .filter(|g| {
                // (a lone reply disputes nothing: no answer sets to build)
                g.len() > 1
                    && g.iter()
                        .map(|r| answer_set(r).1)
                        .collect::<BTreeSet<_>>()
                        .len()
                        > 1
            })
            .flat_map(|g| g.iter().map(|r| r.frame))
            .collect();
        let mut undisputed: HashMap<IpAddr, ([usize; 256], usize)> = HashMap::new();
        for r in responses.iter().filter(|r| !disputed.contains(&r.frame)) {
            if let Some(t) = r.ip_ttl {
                let e = undisputed.entry(r.server).or_insert(([0; 256], 0));
                e.0[usize::from(t)] += 1;
                e.1 += 1;
            }
        }
        TtlHabits(undisputed)
    }

    /// The server's usual IP TTL, when enough undisputed replies show one.
    fn of(&self, server: IpAddr) -> Option<u8> {
        self.0
            .get(&server)
            .and_then(|(c, n)| mode_of_counts(c, *n, MIN_BASELINE))
    }
}

/// Which replies of a disputed group are the injector's, and why: a
/// listed/bogon answer, else a header misfit, else a TTL off the
/// resolver's habit, else the first to arrive.
fn suspects(
    replies: &[&DnsRecord],
    flagged: &BTreeSet<u64>,
    misfits: &HashMap<u64, Misfit>,
    habit: Option<u8>,
) -> (Vec<u64>, SuspectReason) {
    let by_answer: Vec<u64> = replies
        .iter()
        .filter(|r| flagged.contains(&r.frame))
        .map(|r| r.frame)
        .collect();
    let by_misfit: Vec<u64> = replies
        .iter()
        .filter(|r| misfits.contains_key(&r.frame))
        .map(|r| r.frame)
        .collect();
    if !by_answer.is_empty() && by_answer.len() < replies.len() {
        (by_answer, SuspectReason::ListedOrBogonAnswer)
    } else if !by_misfit.is_empty() && by_misfit.len() < replies.len() {
        (by_misfit, SuspectReason::ResolverMisfit)
    } else if let Some(off) = habit
        .map(|h| {
            replies
                .iter()
                .filter(|r| r.ip_ttl.is_some_and(|t| t.abs_diff(h) >= TTL_MISFIT))
                .map(|r| r.frame)
                .collect::<Vec<u64>>()
        })
        .filter(|off| !off.is_empty() && off.len() < replies.len())
    {
        (off, SuspectReason::TtlOffUndisputedReplies)
    } else {
        (vec![replies[0].frame], SuspectReason::FirstToArrive)
    }
}

/// How the injector's replies of a duplicate group were picked (evidence
/// `suspect_reason`; docs/interference.md, `duplicate_reply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SuspectReason {
    /// Their answers are listed forgeries or bogons.
    ListedOrBogonAnswer,
    /// Their IP TTL or IP-ID misfits the resolver.
    ResolverMisfit,
    /// Their TTL is off the resolver's habit learnt from undisputed replies.
    TtlOffUndisputedReplies,
    /// Nothing told them apart: the first reply (injectors sit closer).
    FirstToArrive,
}

impl SuspectReason {
    /// The evidence spelling.
    fn as_str(self) -> &'static str {
        match self {
            SuspectReason::ListedOrBogonAnswer => "listed_or_bogon_answer",
            SuspectReason::ResolverMisfit => "resolver_misfit",
            SuspectReason::TtlOffUndisputedReplies => "ttl_off_undisputed_replies",
            SuspectReason::FirstToArrive => "first_to_arrive",
        }
    }
}

/// What was decided about a group of duplicate replies.
struct DuplicateVerdict {
    /// The injector's replies (frames), never empty.
    suspects: Vec<u64>,
    /// How they were picked ([`suspects`]).
    reason: SuspectReason,
    /// The replies' IP TTLs differ.
    header_diff: bool,
    /// ICMP port-unreachable frames for the query's port (the client had
    /// closed it: the later reply came after the first was taken).
    icmp: Vec<u64>,
    /// The client sent the query more than once.
    retransmitted: bool,
}

impl DuplicateVerdict {
    /// 0.6, more for a picked (not first-to-arrive) suspect, differing
    /// headers and ICMP, less for a retransmitted query; at most 0.95.
    fn confidence(&self) -> f64 {
        let mut conf: f64 = 0.6;
        if self.reason != SuspectReason::FirstToArrive {
            conf += 0.2;
        }
        if self.header_diff {
            conf += 0.1;
        }
        if !self.icmp.is_empty() {
            conf += 0.1;
        }
        if self.retransmitted {
            conf -= 0.2;
        }
        conf.min(0.95)
    }
}

/// The `duplicate_reply` event of a group (replies in frame order), and
/// the addresses only its suspect replies carried.
fn duplicate_event(
    key: &DupKey,
    replies: &[&DnsRecord],
    meta: &HashMap<u64, DnsMeta>,
    v: DuplicateVerdict,
) -> (InterferenceEvent, Vec<IpAddr>) {
    let (_, port, server, id, query, _) = key;
    let suspects = &v.suspects;
    let mut frames = suspects.clone();
    frames.extend(
        replies
            .iter()
            .map(|r| r.frame)
            .filter(|f| !suspects.contains(f)),
    );
    let genuine: BTreeSet<IpAddr> = replies
        .iter()
        .filter(|r| !suspects.contains(&r.frame))
        .flat_map(|r| addresses(r))
        .collect();
    let forged: Vec<IpAddr> = replies
        .iter()
        .filter(|r| suspects.contains(&r.frame))
        .flat_map(|r| addresses(r))
        .filter(|a| !genuine.contains(a))
        .collect();
    let first = replies[0];
    let mut e = event(
        InterferenceRule::DuplicateReply,
        frames,
        *server,
        v.confidence(),
        format!(
            "{} replies with different answers to one query for {query} (id {id:#06x}); suspect frame {}",
            replies.len(),
            suspects[0]
        ),
    );
    // Each reply's own fields go under `replies`, below.
    query_evidence(&mut e.evidence, first, meta.get(&first.frame));
    let q_ts = meta.get(&first.frame).and_then(|m| m.query_ts);
    let detail: Vec<Value> = replies
        .iter()
        .map(|r| {
            let mut v = json!({
                "frame": r.frame,
                "ip_ttl": r.ip_ttl,
                "ip_id": r.ip_id.map(|i| format!("{i:#06x}")),
                "rcode": r.rcode,
                "answers": answer_data(r),
            });
            if let Some(ts) = q_ts {
                v["delay_ms"] = json!(round2(r.ts.since(&ts) * 1000.0));
            }
            v
        })
        .collect();
    e.evidence.insert("replies".into(), Value::Array(detail));
    e.evidence.insert("suspect_frames".into(), json!(suspects));
    e.evidence
        .insert("suspect_reason".into(), json!(v.reason.as_str()));
    e.evidence.insert(
        "forged_addresses".into(),
        json!(forged.iter().map(IpAddr::to_string).collect::<Vec<_>>()),
    );
    e.evidence.insert("client_port".into(), json!(port));
    if !v.icmp.is_empty() {
        e.evidence
            .insert("icmp_unreachable_frames".into(), json!(v.icmp));
    }
    if v.retransmitted {
        e.evidence.insert("query_retransmitted".into(), json!(true));
    }
    (e, forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::analysis::model::DnsAnswer;
    use crate::capture::Timestamp;

    fn reply(frame: u64, ttl: u8, id: u16, addr: &str) -> DnsRecord {
        DnsRecord {
            frame,
            ts: Timestamp::new(frame as i64, 0, 6),
            transport: "udp".into(),
            server: "9.9.9.9".parse().unwrap(),
            client: "198.18.0.2".parse().unwrap(),
            id: frame as u16,
            query: format!("n{frame}.example.org"),
            qtype: "A".into(),
            rcode: Some("NOERROR".into()),
            ip_ttl: Some(ttl),
            ip_id: Some(id),
            answers: vec![DnsAnswer {
                name: format!("n{frame}.example.org"),
                rtype: "A".into(),
                data: addr.into(),
                ttl: 60,
            }],
        }
    }

    #[test]
    fn suspects_by_answer_then_misfit_then_habit_then_arrival() {
        let (a, b) = (reply(1, 60, 1, "192.0.2.1"), reply(2, 48, 2, "192.0.2.2"));
        let replies = [&a, &b];
        let none = HashMap::new();
        let flagged: BTreeSet<u64> = [2].into();
        assert_eq!(
            suspects(&replies, &flagged, &none, None),
            (vec![2], SuspectReason::ListedOrBogonAnswer)
        );
        // Every reply flagged says nothing: the next rule decides.
        let all: BTreeSet<u64> = [1, 2].into();
        assert_eq!(
            suspects(&replies, &all, &none, Some(60)),
            (vec![2], SuspectReason::TtlOffUndisputedReplies)
        );
        assert_eq!(
            suspects(&replies, &BTreeSet::new(), &none, Some(59)),
            (vec![2], SuspectReason::TtlOffUndisputedReplies)
        );
        assert_eq!(
            suspects(&replies, &BTreeSet::new(), &none, None),
            (vec![1], SuspectReason::FirstToArrive)
        );
    }

    #[test]
    fn duplicate_confidence() {
        let v = |reason, header_diff, icmp: Vec<u64>, retransmitted| {
            DuplicateVerdict {
                suspects: vec![1],
                reason,
                header_diff,
                icmp,
                retransmitted,
            }
            .confidence()
        };
        assert!((v(SuspectReason::FirstToArrive, false, vec![], false) - 0.6).abs() < 1e-9);
        assert!((v(SuspectReason::ResolverMisfit, true, vec![], true) - 0.7).abs() < 1e-9);
        assert_eq!(v(SuspectReason::ResolverMisfit, true, vec![7], false), 0.95);
    }

    #[test]
    fn habits_ignore_disputed_replies() {
        // Three undisputed replies at TTL 57; a disputed pair (one query,
        // two answers) at 40 and 41 does not move the habit.
        let mut recs: Vec<DnsRecord> = (1..=3)
            .map(|f| reply(f, 57, f as u16, "192.0.2.1"))
            .collect();
        let mut x = reply(10, 40, 10, "192.0.2.1");
        let mut y = reply(11, 41, 11, "192.0.2.9");
        y.id = x.id;
        y.query = x.query.clone();
        x.answers[0].name = y.answers[0].name.clone();
        recs.extend([x, y]);
        let refs: Vec<&DnsRecord> = recs.iter().collect();
        let meta: HashMap<u64, DnsMeta> = recs
            .iter()
            .map(|r| {
                let m = DnsMeta {
                    client_port: 5000 + u16::from(r.frame < 10) * r.frame as u16,
                    query_frame: None,
                    query_ts: None,
                    query_count: 1,
                };
                (r.frame, m)
            })
            .collect();
        let groups = reply_groups(&refs, &meta);
        assert_eq!(groups.len(), 4);
        let habits = TtlHabits::new(&refs, &groups);
        assert_eq!(habits.of("9.9.9.9".parse().unwrap()), Some(57));
        assert_eq!(habits.of("9.9.9.8".parse().unwrap()), None);
    }

    #[test]
    fn ipid_counter_misfit_and_scale() {
        let data = RuleData::shipped().unwrap();
        // 50 000 replies of one resolver with a counter IP-ID (wrapping),
        // one forged reply in the middle with a far-off ID: linear enough
        // to finish at once, and exactly one event.
        // Reply 9234 carries 0x3412 (PacketLogic's constant) as a plain
        // counter value: the counter explains it, no event.
        let mut recs: Vec<DnsRecord> = (0..50_000u64)
            .map(|f| reply(f, 57, (0x1000 + f) as u16, "93.184.216.34"))
            .collect();
        assert_eq!(recs[9234].ip_id, Some(0x3412));
        recs[25_000] = reply(
            25_000,
            57,
            (0x1000 + 25_000u16).wrapping_add(0x8000),
            "45.33.12.7",
        );
        let ev = check(&recs, &HashMap::new(), &[], &data).into_events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].rule, InterferenceRule::ResolverMisfit);
        assert_eq!(ev[0].frames, vec![25_000]);
        assert_eq!(ev[0].evidence["expected_ip_id_pattern"], "counter");
    }

    #[test]
    fn heavy_racing_is_judged_by_the_undisputed_replies() {
        // 4 clean replies (TTL 61, random IP-IDs), then 4 raced queries
        // whose genuine reply (TTL 61) arrives first and the forged one
        // (TTL 48) second: a third of all replies are forged, so the overall
        // TTL mode is not stable, but the undisputed replies' habit is.
        let data = RuleData::shipped().unwrap();
        let ids = [0x1234u16, 0xfe01, 0x7777, 0x0042, 0xa0a0, 0x5151];
        let mut recs = Vec::new();
        let mut meta = HashMap::new();
        for f in 0..4u64 {
            recs.push(reply(f, 61, ids[f as usize], "198.18.251.3"));
        }
        for q in 0..4u64 {
            let (g, b) = (10 + 2 * q, 11 + 2 * q);
            let mut genuine = reply(g, 61, ids[(q % 6) as usize] ^ 0x0f0f, "198.18.251.1");
            let mut forged = reply(b, 48, 0x2b2b, "198.18.250.7");
            for r in [&mut genuine, &mut forged] {
                r.id = 0x1000 + q as u16;
                r.query = "blocked.example".into();
            }
            recs.extend([genuine, forged]);
            for f in [g, b] {
                meta.insert(
                    f,
                    DnsMeta {
                        client_port: 40_000 + q as u16,
                        query_frame: None,
                        query_ts: None,
                        query_count: 1,
                    },
                );
            }
        }
        let found = check(&recs, &meta, &[], &data);
        // The typed forged addresses are the ones the evidence lists.
        let listed: Vec<IpAddr> = found
            .events
            .iter()
            .filter_map(|f| {
                f.event
                    .evidence
                    .get("forged_addresses")?
                    .as_array()
                    .cloned()
            })
            .flatten()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        assert!(!listed.is_empty());
        assert_eq!(found.forged, listed);
        // The typed IP-ID the repeated-ID pass reads is the evidence's.
        for f in &found.events {
            let shown = f.event.evidence.get("ip_id").and_then(|v| v.as_str());
            assert_eq!(f.ip_id.map(|i| format!("{i:#06x}")).as_deref(), shown);
        }
        let ev = found.into_events();
        let dup: Vec<_> = ev
            .iter()
            .filter(|e| e.rule == InterferenceRule::DuplicateReply)
            .collect();
        assert_eq!(dup.len(), 4, "{ev:#?}");
        for (q, e) in dup.iter().enumerate() {
            assert_eq!(e.evidence["suspect_frames"], json!([11 + 2 * q as u64]));
            assert_eq!(e.evidence["suspect_reason"], "ttl_off_undisputed_replies");
        }
    }

    #[test]
    fn ipid_zero_and_constant_patterns() {
        let data = RuleData::shipped().unwrap();
        let mut recs: Vec<DnsRecord> = (0..5).map(|f| reply(f, 57, 0, "93.184.216.34")).collect();
        recs.push(reply(5, 57, 0x4242, "45.33.12.7"));
        let ev = check(&recs, &HashMap::new(), &[], &data).into_events();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].evidence["expected_ip_id_pattern"], "zero");
        // A known injector constant is a misfit even without a baseline.
        let recs = vec![reply(1, 57, 0x3412, "45.33.12.7")];
        let ev = check(&recs, &HashMap::new(), &[], &data).into_events();
        assert_eq!(
            ev[0].evidence["expected_ip_id_pattern"],
            "known_injector_constant"
        );
        // Random IP-IDs: no expectation, no event.
        let recs: Vec<DnsRecord> = [0x1234u16, 0xfe01, 0x7777, 0x0042, 0xa0a0]
            .iter()
            .enumerate()
            .map(|(f, &id)| reply(f as u64, 57, id, "93.184.216.34"))
            .collect();
        assert!(check(&recs, &HashMap::new(), &[], &data).events.is_empty());
    }

    #[test]
    fn modes() {
        assert_eq!(stable_mode(&[61, 61, 61]), Some(61));
        assert_eq!(stable_mode(&[61, 60, 61, 62, 61]), Some(61));
        assert_eq!(stable_mode(&[61, 61]), None);
        assert_eq!(stable_mode(&[61, 120, 45, 61]), None);
    }
}
