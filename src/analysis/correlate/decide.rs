//! The decision: which endpoints are messaging servers, and a role for the
//! app's other servers.

use super::capture::Endpoint;
use super::evidence::{Counts, Tallied};
use super::{CorrelateConfig, CorrelatedServer, Role};
use crate::analysis::attribution::Evidence;
use std::collections::HashMap;

/// Counts pooled over a campaign's message measurements, per (app, endpoint).
pub type Pool = HashMap<(String, Endpoint), Counts>;

/// Adds a measurement's counts to a campaign pool.
pub fn pool_add(pool: &mut Pool, app: &str, t: &[Tallied]) {
    for x in t {
        pool.entry((app.to_string(), x.ep))
            .or_default()
            .add(&x.counts);
    }
}

/// Events of one direction a messaging server may leave unexplained.
fn allowed_misses(events: u32, cfg: &CorrelateConfig) -> u32 {
    (f64::from(events) * cfg.miss_share).floor() as u32
}

/// The measurement's part: the endpoint explains (almost) every event of
/// the phones that used it, in each direction, and at least one.
pub fn consistent(c: &Counts, cfg: &CorrelateConfig) -> bool {
    c.send_hits + c.recv_hits > 0
        && c.send_hits + allowed_misses(c.sends, cfg) >= c.sends
        && c.recv_hits + allowed_misses(c.recvs, cfg) >= c.recvs
}

/// How the measurement's endpoints split for the prior: those that may be
/// the app's messaging server at all (`eligible`: not a DNS server, not
/// attributed to another app) and, of those, the ones attribution (the
/// app profile's domains, SNI, prefixes on chat ports) gives to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidates {
    /// Endpoints that may be the messaging server.
    pub eligible: usize,
    /// Of those, attributed to the measured app.
    pub attributed: usize,
}

impl Candidates {
    /// Counts the candidates among a measurement's endpoints.
    pub fn of(tallied: &[Tallied], app: &str) -> Candidates {
        let eligible: Vec<&Tallied> = tallied.iter().filter(|x| eligible(x, app)).collect();
        Candidates {
            eligible: eligible.len(),
            attributed: eligible.iter().filter(|x| own_app(x, app)).count(),
        }
    }
}

fn own_app(x: &Tallied, app: &str) -> bool {
    x.attr.as_ref().is_some_and(|s| s.app == app)
}

/// Whether attribution's evidence for the endpoint names a DoH resolver
/// (its evidence is stored as text; the kinds that carry no name are skipped).
fn is_doh(x: &Tallied) -> bool {
    x.attr.as_ref().is_some_and(|s| {
        s.evidence
            .iter()
            .filter_map(|e| e.parse::<Evidence>().ok())
            .any(|e| e.names_doh_resolver())
    })
}

/// Whether an endpoint may be the app's messaging server at all.
fn eligible(x: &Tallied, app: &str) -> bool {
    let other_app = x.attr.as_ref().is_some_and(|s| s.app != app);
    !other_app && !x.is_dns && !is_doh(x)
}

/// log10 prior odds that the endpoint is the app's messaging server,
/// before any timing evidence. With probability `outside_share` the
/// carrier is not among the captured endpoints at all; otherwise it is
/// one of the `eligible` ones, among the app's `attributed` endpoints with
/// probability `attributed_share` when attribution names any (then
/// uniform within each group), uniform over all when it names none.
pub fn prior_log10_odds(attributed_to_app: bool, c: Candidates, cfg: &CorrelateConfig) -> f64 {
    let p = prior(attributed_to_app, c, cfg);
    (p / (1.0 - p)).log10()
}

/// The prior probability behind [`prior_log10_odds`].
fn prior(attributed_to_app: bool, c: Candidates, cfg: &CorrelateConfig) -> f64 {
    let inside = 1.0 - cfg.outside_share;
    let n = c.eligible.max(1) as f64;
    let p = if c.attributed == 0 || c.attributed >= c.eligible {
        inside / n
    } else if attributed_to_app {
        inside * cfg.attributed_share / c.attributed as f64
    } else {
        inside * (1.0 - cfg.attributed_share) / (c.eligible - c.attributed) as f64
    };
    p.clamp(1e-9, 1.0 - 1e-9)
}

/// An eligible endpoint's prior probability and pooled log10 timing odds.
struct Standing<'a> {
    x: &'a Tallied,
    prior: f64,
    lr: f64,
}

/// log10 posterior odds that `e` carries its phones' messages, against
/// the hypotheses that one of its `rivals` (eligible endpoints sharing a
/// phone with it: a phone's messages have one carrier) carries them, or
/// that nothing captured does (the remaining prior mass, without timing
/// evidence). With no rival this is the prior odds plus the timing odds.
fn posterior(e: &Standing<'_>, all: &[Standing<'_>]) -> f64 {
    let rivals: Vec<&Standing<'_>> = all
        .iter()
        .filter(|k| k.x.ep != e.x.ep && !k.x.phones.is_disjoint(&e.x.phones))
        .collect();
    let rest = (1.0 - e.prior - rivals.iter().map(|k| k.prior).sum::<f64>()).max(1e-9);
    // log10(rest + Σ prior·10^lr), computed without overflow.
    let terms: Vec<f64> = std::iter::once(rest.log10())
        .chain(rivals.iter().map(|k| k.prior.log10() + k.lr))
        .collect();
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let against = top
        + terms
            .iter()
            .map(|t| 10f64.powf(t - top))
            .sum::<f64>()
            .log10();
    e.prior.log10() + e.lr - against
}

/// The campaign's part: the posterior odds (see [`classify`]) reach
/// `min_log10_odds`, no direction with events speaks against it, and most
/// of the pooled events are explained beyond chance.
pub fn convincing(c: &Counts, cfg: &CorrelateConfig, posterior_log10_odds: f64) -> bool {
    posterior_log10_odds >= cfg.min_log10_odds
        && c.scores().2 >= cfg.min_share
        && (c.sends == 0 || c.send_odds >= 0.0)
        && (c.recvs == 0 || c.recv_odds >= 0.0)
}

/// The role of an endpoint that is not a messaging server (`None`: not the
/// app's, left out as background).
fn other_role(x: &Tallied, app: &str, cfg: &CorrelateConfig) -> Option<Role> {
    let attr = x.attr.as_ref()?;
    if attr.app != app {
        return None;
    }
    let (cs, cr, _) = x.counts.scores();
    Some(if x.is_dns || is_doh(x) {
        Role::Dns
    } else if x.counts.recvs > 0 && cr >= cfg.threshold && cs < cfg.threshold {
        Role::Push
    } else if x.bytes >= cfg.media_bytes {
        Role::Media
    } else if x.active_intervals >= 3 && x.bytes / x.packets.max(1) < 300 {
        Role::KeepAlive
    } else {
        Role::Auxiliary
    })
}

/// Classifies a measurement's endpoints. An endpoint is `messaging` when
/// it is [`consistent`] in this measurement, [`convincing`] over the pool
/// (all the campaign's measurements of the app where it was used; `None`:
/// this measurement alone), it is not a DNS server and attribution does not
/// give it to another app. The app's other servers get a role; the rest is
/// background and left out.
pub fn classify(
    tallied: &[Tallied],
    app: &str,
    pool: Option<&Pool>,
    cfg: &CorrelateConfig,
) -> Vec<CorrelatedServer> {
    let mut out = Vec::new();
    let cands = Candidates::of(tallied, app);
    let pooled_of = |x: &Tallied| {
        pool.and_then(|p| p.get(&(app.to_string(), x.ep)))
            .copied()
            .unwrap_or(x.counts)
    };
    let standing: Vec<Standing<'_>> = tallied
        .iter()
        .filter(|x| eligible(x, app))
        .map(|x| Standing {
            x,
            prior: prior(own_app(x, app), cands, cfg),
            lr: pooled_of(x).odds(),
        })
        .collect();
    for x in tallied {
        let c = &x.counts;
        let pooled = pooled_of(x);
        let prior = prior_log10_odds(own_app(x, app), cands, cfg);
        let post = standing
            .iter()
            .find(|s| s.x.ep == x.ep)
            .map_or(f64::NEG_INFINITY, |s| posterior(s, &standing));
        let messaging = eligible(x, app) && consistent(c, cfg) && convincing(&pooled, cfg, post);
        let role = if messaging {
            Role::Messaging
        } else {
            match other_role(x, app, cfg) {
                Some(r) => r,
                None => continue,
            }
        };
        out.push(server(x, app, role, &pooled, (prior, post)));
    }
    out.sort_by(|a, b| {
        (b.role == Role::Messaging)
            .cmp(&(a.role == Role::Messaging))
            .then(b.score.total_cmp(&a.score))
            .then((a.ip, a.port).cmp(&(b.ip, b.port)))
    });
    out
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn server(
    x: &Tallied,
    app: &str,
    role: Role,
    pooled: &Counts,
    (prior, post): (f64, f64),
) -> CorrelatedServer {
    let c = &x.counts;
    let mut evidence = vec![
        format!("sends:{}/{}", c.send_hits, c.sends),
        format!("receives:{}/{}", c.recv_hits, c.recvs),
        format!("chance:{:.2}/{:.2}", c.send_chance, c.recv_chance),
        format!("background:{}/{}", c.bg_hits, c.bg_n),
        format!("log10-odds:{:.1}/{:.1}", c.send_odds, c.recv_odds),
        format!(
            "campaign-log10-odds:{:.1}/{:.1}",
            pooled.send_odds, pooled.recv_odds
        ),
        format!("campaign-score:{:.3}", pooled.scores().2),
        format!("prior-log10-odds:{prior:.2}"),
        format!("posterior-log10-odds:{post:.2}"),
    ];
    if let Some(s) = &x.attr {
        evidence.extend(s.evidence.iter().cloned());
    }
    CorrelatedServer {
        app: app.to_string(),
        ip: x.ep.ip,
        port: x.ep.port,
        proto: x.ep.proto_name().to_string(),
        role,
        score: round(c.scores().2, 3),
        hits: c.send_hits + c.recv_hits,
        events: c.sends + c.recvs,
        baseline_hits: c.base_hits,
        baseline_windows: c.base_n,
        phones: x.phones.iter().cloned().collect(),
        names: x.names.iter().cloned().collect(),
        evidence,
        log10_odds: Some(round(c.odds(), 2)),
        campaign_log10_odds: Some(round(pooled.odds(), 2)),
        node: None,
        phone: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::model::ServerRecord;
    use std::collections::BTreeSet;

    fn tallied(last: u8, phones: &[&str], odds: f64) -> Tallied {
        Tallied {
            ep: Endpoint {
                ip: std::net::IpAddr::from([203, 0, 113, last]),
                port: 443,
                proto: 6,
            },
            counts: Counts {
                send_hits: 2,
                sends: 2,
                recv_hits: 2,
                recvs: 2,
                send_odds: odds / 2.0,
                recv_odds: odds / 2.0,
                ..Counts::default()
            },
            phones: phones
                .iter()
                .map(|p| p.to_string())
                .collect::<BTreeSet<_>>(),
            attr: None,
            names: BTreeSet::new(),
            is_dns: false,
            bytes: 1000,
            packets: 10,
            active_intervals: 1,
        }
    }

    #[test]
    fn a_doh_resolver_is_never_the_messaging_server() {
        let attr = |evidence: &str| ServerRecord {
            app: "x".into(),
            ip: std::net::IpAddr::from([203, 0, 113, 1]),
            port: 443,
            proto: "tcp".into(),
            names: Vec::new(),
            evidence: vec!["prefix:203.0.113.0/24".into(), evidence.into()],
            role: None,
        };
        let mut t = tallied(1, &["a", "b"], 4.0);
        t.attr = Some(attr("sni:doh.pub"));
        assert!(is_doh(&t));
        assert!(!eligible(&t, "x"));
        t.attr = Some(attr("sni:dohmain.example"));
        assert!(!is_doh(&t));
        assert!(eligible(&t, "x"));
    }

    fn messaging(t: &[Tallied]) -> Vec<u8> {
        let cfg = CorrelateConfig::default();
        classify(t, "x", None, &cfg)
            .iter()
            .filter(|s| s.role == Role::Messaging)
            .map(|s| match s.ip {
                std::net::IpAddr::V4(a) => a.octets()[3],
                std::net::IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn prior_follows_candidates_and_attribution() {
        let cfg = CorrelateConfig::default();
        let one = Candidates {
            eligible: 1,
            attributed: 0,
        };
        // A lone candidate: 0.95 against the 0.05 of "not captured".
        assert!((prior_log10_odds(false, one, &cfg) - 19f64.log10()).abs() < 1e-9);
        let many = Candidates {
            eligible: 50,
            attributed: 3,
        };
        let own = prior_log10_odds(true, many, &cfg);
        let other = prior_log10_odds(false, many, &cfg);
        let p: f64 = 0.95 * 0.5 / 3.0;
        assert!((own - (p / (1.0 - p)).log10()).abs() < 1e-9, "{own}");
        let p: f64 = 0.95 * 0.5 / 47.0;
        assert!((other - (p / (1.0 - p)).log10()).abs() < 1e-9, "{other}");
    }

    #[test]
    fn a_lone_candidate_with_weak_timing_passes_a_decoy_beside_a_strong_one_does_not() {
        // The rehearsal's case: one endpoint, timing odds 1.25 → posterior 2.53.
        assert_eq!(messaging(&[tallied(1, &["a", "b"], 1.25)]), vec![1]);
        // Below the prior's reach: timing 0.5 → posterior 1.78 < 2.
        assert!(messaging(&[tallied(1, &["a", "b"], 0.5)]).is_empty());
        // A decoy that met all 4 events by chance (3.65) beside the real
        // server of the same phones (12.8): the server only.
        let t = [tallied(1, &["a", "b"], 12.8), tallied(2, &["a", "b"], 3.65)];
        assert_eq!(messaging(&t), vec![1]);
        // Split servers (one per phone) are not rivals.
        let t = [tallied(1, &["a"], 6.0), tallied(2, &["b"], 6.0)];
        assert_eq!(messaging(&t), vec![1, 2]);
    }
}
