//! What a generated campaign contains: conditions, apps and their hosts.
//!
//! App ids are labels only: the carrier, port and server layout given to
//! each app below is this generator's choice to cover TCP, UDP and QUIC,
//! one server per phone (WeChat-style split) and relays reached by IP only,
//! not a claim about the real app. Addresses of apps whose profile lists
//! prefixes are drawn inside those prefixes (device-profiles/apps/*.yaml), so
//! attribution behaves as on real traffic; the rest are ordinary public
//! addresses.

use crate::rng::Rng;
use std::net::{IpAddr, Ipv4Addr};

/// The conditions a campaign is generated under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// Receipts are noticed `U(0.1, lag_max)` seconds after the message arrived.
    pub lag_max: f64,
    /// Each phone's residual clock error per measurement is `U(-c, c)` seconds.
    pub clock_error: f64,
    /// Background flows per minute per phone (Poisson), bursts included.
    pub noise_per_min: f64,
    /// Share of events that carry their uncertainty (`uncertainty_ns` / `uncertainty_s`).
    pub uncertainty_share: f64,
    /// Empty baseline runs (one per app and phone pair) are present.
    pub baselines: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            lag_max: 3.0,
            clock_error: 0.3,
            noise_per_min: 30.0,
            uncertainty_share: 1.0,
            baselines: true,
        }
    }
}

/// How an app's messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Carrier {
    /// TLS-like records over TCP.
    Tcp,
    /// A datagram protocol over UDP (not QUIC).
    Udp,
    /// QUIC (UDP 443, short-header packets after an Initial).
    Quic,
}

impl Carrier {
    /// `"tcp"` or `"udp"` as matador names the transport.
    pub fn proto(self) -> &'static str {
        match self {
            Carrier::Tcp => "tcp",
            Carrier::Udp | Carrier::Quic => "udp",
        }
    }
}

/// A server endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// Carrier.
    pub carrier: Carrier,
}

/// An app's servers in one campaign.
#[derive(Debug, Clone)]
pub struct App {
    /// App id (a matador app profile id).
    pub id: &'static str,
    /// Messaging servers; phone `i` of a pair uses `messaging[i % len]`
    /// (two entries: sender's and receiver's servers differ).
    pub messaging: Vec<Host>,
    /// The same app's keep-alive / presence host (small periodic records
    /// and presence bursts of message-like sizes).
    pub keepalive: Host,
    /// The same app's media host (large downloads).
    pub media: Host,
    /// Per-message protocol overhead on the wire, bytes.
    pub overhead: u64,
}

/// Hosts shared by every app of a campaign.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The push service (FCM-like, TCP 5228): wake-ups before receipts.
    pub push: Host,
    /// A front-end/CDN host that every app uses.
    pub cdn: Host,
    /// Background hosts (popularity skewed towards the first).
    pub noise: Vec<Host>,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn host(ip: IpAddr, port: u16, carrier: Carrier) -> Host {
    Host { ip, port, carrier }
}

/// The apps of a campaign, with addresses drawn from `rng`.
pub fn apps(rng: &mut Rng) -> Vec<App> {
    let mut o = |n: u64| rng.int(1, n) as u8;
    let tcp = Carrier::Tcp;
    vec![
        App {
            id: "whatsapp",
            messaging: vec![host(v4(57, 144, o(250), o(250)), 5222, tcp)],
            keepalive: host(v4(57, 144, o(250), o(250)), 443, tcp),
            media: host(v4(57, 145, o(250), o(250)), 443, tcp),
            overhead: 60,
        },
        App {
            id: "wechat",
            messaging: vec![
                host(v4(203, 205, 128 + o(30), o(250)), 8080, tcp),
                host(v4(203, 205, 128 + o(30), o(250)), 8080, tcp),
            ],
            keepalive: host(v4(203, 205, 128 + o(30), o(250)), 443, tcp),
            media: host(v4(103, 7, 30, o(250)), 443, tcp),
            overhead: 120,
        },
        App {
            id: "telegram",
            messaging: vec![host(v4(149, 154, 167, o(250)), 443, tcp)],
            keepalive: host(v4(149, 154, 175, o(250)), 443, tcp),
            media: host(v4(149, 154, 164, o(250)), 443, tcp),
            overhead: 80,
        },
        App {
            id: "signal",
            messaging: vec![host(v4(76, 223, o(250), o(250)), 443, tcp)],
            keepalive: host(v4(13, 248, o(250), o(250)), 443, tcp),
            media: host(v4(104, 18, o(250), o(250)), 443, tcp),
            overhead: 100,
        },
        App {
            id: "line",
            messaging: vec![host(v4(147, 92, 128 + o(100), o(250)), 443, Carrier::Quic)],
            keepalive: host(v4(147, 92, 128 + o(100), o(250)), 443, tcp),
            media: host(v4(147, 92, 128 + o(100), o(250)), 443, tcp),
            overhead: 70,
        },
        App {
            id: "threema",
            messaging: vec![host(v4(185, 88, 236, o(250)), 5222, tcp)],
            keepalive: host(v4(185, 88, 237, o(250)), 443, tcp),
            media: host(v4(185, 88, 238, o(250)), 443, tcp),
            overhead: 50,
        },
        App {
            id: "kakaotalk",
            messaging: vec![
                host(v4(110, 76, 140, o(250)), 9282, Carrier::Udp),
                host(v4(110, 76, 141, o(250)), 9282, Carrier::Udp),
            ],
            keepalive: host(v4(110, 76, 142, o(250)), 5223, tcp),
            media: host(v4(110, 76, 143, o(250)), 443, tcp),
            overhead: 40,
        },
    ]
}

/// The shared hosts of a campaign: push, one CDN, 40 background hosts.
pub fn shared(rng: &mut Rng) -> Shared {
    let firsts = [
        13u8, 18, 34, 35, 44, 52, 54, 63, 92, 104, 140, 151, 162, 185, 199, 216,
    ];
    let noise = (0..40)
        .map(|_| {
            let a = firsts[rng.int(0, firsts.len() as u64 - 1) as usize];
            let ip = v4(
                a,
                rng.int(1, 250) as u8,
                rng.int(0, 255) as u8,
                rng.int(1, 254) as u8,
            );
            match rng.int(0, 19) {
                0..=12 => host(ip, 443, Carrier::Tcp),
                13..=17 => host(ip, 443, Carrier::Quic),
                18 => host(ip, 80, Carrier::Tcp),
                _ => host(ip, 123, Carrier::Udp),
            }
        })
        .collect();
    Shared {
        push: host(v4(142, 250, 102, 188), 5228, Carrier::Tcp),
        cdn: host(
            v4(23, 55, rng.int(1, 250) as u8, rng.int(1, 250) as u8),
            443,
            Carrier::Tcp,
        ),
        noise,
    }
}
