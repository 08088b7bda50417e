//! One piece of attribution evidence, typed: what rule tied a flow or a
//! server to an app. Each kind serialises to the `kind:value` string of
//! docs/attribution.md (table "Evidence"), the form `servers[].evidence`
//! and `flows[].evidence` carry in the replay JSON.

use crate::scenario::apps::Fingerprint;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A reason a flow or server belongs to an app (strongest kinds first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// `dns:<name>`: a DNS answer for the address, seen before the flow, named the app.
    Dns(String),
    /// `wechat-httpdns:<name>`: the same from WeChat's HTTP DNS list.
    WechatHttpDns(String),
    /// `sni:<name>`: the flow's TLS/QUIC SNI matches the app.
    Sni(String),
    /// `host:<name>`: an HTTP request of the flow has a matching `Host`.
    Host(String),
    /// `stun-realm:<realm>`: the flow's STUN/TURN REALM matches the app's domains.
    StunRealm(String),
    /// `fingerprint:<name>`: the flow's payload matches one of the app's fingerprints.
    Fingerprint(Fingerprint),
    /// `prefix:<cidr>`: the server address lies in one of the app's blocks.
    Prefix(IpNetwork),
    /// `relay-from:<ip:port>`: a call leg tied to the app's STUN/TURN
    /// server `<ip:port>` (same local socket, or an address that server's
    /// TURN exchange handed out).
    RelayFrom(SocketAddr),
    /// `asn:AS<n>`: the address's autonomous system is the app's, on one of its ports.
    Asn(u32),
}

impl Evidence {
    /// Strength of the kind (higher is stronger; docs/attribution.md).
    pub fn strength(&self) -> u8 {
        match self {
            Evidence::Dns(_) | Evidence::WechatHttpDns(_) => 5,
            Evidence::Sni(_) | Evidence::Host(_) | Evidence::StunRealm(_) => 4,
            Evidence::Fingerprint(_) => 3,
            Evidence::Prefix(_) | Evidence::RelayFrom(_) => 2,
            Evidence::Asn(_) => 1,
        }
    }

    /// The kind's name, the part before the first `:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::Dns(_) => "dns",
            Evidence::WechatHttpDns(_) => "wechat-httpdns",
            Evidence::Sni(_) => "sni",
            Evidence::Host(_) => "host",
            Evidence::StunRealm(_) => "stun-realm",
            Evidence::Fingerprint(_) => "fingerprint",
            Evidence::Prefix(_) => "prefix",
            Evidence::RelayFrom(_) => "relay-from",
            Evidence::Asn(_) => "asn",
        }
    }

    /// The host name the evidence rests on (a DNS answer, an SNI, a Host
    /// header, a WeChat HTTPDNS answer), if it rests on one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Evidence::Dns(s)
            | Evidence::WechatHttpDns(s)
            | Evidence::Sni(s)
            | Evidence::Host(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the evidence names a known DNS-over-HTTPS resolver
    /// ([`crate::analysis::names::is_doh_server`]).
    pub fn names_doh_resolver(&self) -> bool {
        self.name()
            .is_some_and(crate::analysis::names::is_doh_server)
    }

    /// Sorts strongest first, then by the string form, without duplicates.
    pub fn sort(list: &mut Vec<Evidence>) {
        // Runs for every app and flow end of every flow: a stable sort with
        // the string form compared without building it where it can be (the
        // same order as sorting by `(Reverse(strength), to_string())`).
        list.sort_by(|a, b| b.strength().cmp(&a.strength()).then_with(|| a.cmp_text(b)));
        list.dedup();
    }

    /// The part after `kind:` where it is a plain string.
    fn text(&self) -> Option<&str> {
        match self {
            Evidence::Dns(s)
            | Evidence::WechatHttpDns(s)
            | Evidence::Sni(s)
            | Evidence::Host(s)
            | Evidence::StunRealm(s) => Some(s),
            Evidence::Fingerprint(fp) => Some(fp.name()),
            Evidence::Prefix(_) | Evidence::RelayFrom(_) | Evidence::Asn(_) => None,
        }
    }

    /// Compares the string forms (`to_string()`), allocating only for the
    /// kinds whose value is not a plain string.
    fn cmp_text(&self, other: &Evidence) -> std::cmp::Ordering {
        match (self.text(), other.text()) {
            (Some(a), Some(b)) => {
                fn form<'s>(kind: &'static str, v: &'s str) -> impl Iterator<Item = u8> + 's {
                    kind.bytes().chain(*b":").chain(v.bytes())
                }
                form(self.kind(), a).cmp(form(other.kind(), b))
            }
            _ => self.to_string().cmp(&other.to_string()),
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            Evidence::Dns(s)
            | Evidence::WechatHttpDns(s)
            | Evidence::Sni(s)
            | Evidence::Host(s)
            | Evidence::StunRealm(s) => write!(f, "{kind}:{s}"),
            Evidence::Fingerprint(fp) => write!(f, "{kind}:{}", fp.name()),
            Evidence::Prefix(n) => write!(f, "{kind}:{n}"),
            Evidence::RelayFrom(a) => write!(f, "{kind}:{a}"),
            Evidence::Asn(n) => write!(f, "{kind}:AS{n}"),
        }
    }
}

impl FromStr for Evidence {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("evidence {s:?} has no `kind:` prefix"))?;
        let bad = |e: &dyn fmt::Display| format!("bad {kind} evidence {s:?}: {e}");
        Ok(match kind {
            "dns" => Evidence::Dns(value.to_string()),
            "wechat-httpdns" => Evidence::WechatHttpDns(value.to_string()),
            "sni" => Evidence::Sni(value.to_string()),
            "host" => Evidence::Host(value.to_string()),
            "stun-realm" => Evidence::StunRealm(value.to_string()),
            "fingerprint" => Evidence::Fingerprint(value.parse().map_err(|e| bad(&e))?),
            "prefix" => Evidence::Prefix(value.parse().map_err(|e| bad(&e))?),
            "relay-from" => Evidence::RelayFrom(value.parse().map_err(|e| bad(&e))?),
            "asn" => Evidence::Asn(
                value
                    .strip_prefix("AS")
                    .ok_or_else(|| bad(&"no AS prefix"))?
                    .parse()
                    .map_err(|e| bad(&e))?,
            ),
            _ => return Err(format!("unknown evidence kind {kind:?} in {s:?}")),
        })
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doh_resolvers_are_named_by_name_evidence_only() {
        let doh = |s: &str| s.parse::<Evidence>().unwrap().names_doh_resolver();
        assert!(doh("sni:doh.pub"));
        assert!(doh("host:dns.google"));
        assert!(doh("dns:Cloudflare-DNS.com."));
        // A name that merely contains "doh" is not a resolver.
        assert!(!doh("sni:dohmain.whatsapp.net"));
        assert!(!doh("sni:chat.signal.org"));
        assert!(!doh("fingerprint:whatsapp-stun"));
        assert_eq!("asn:AS32934".parse::<Evidence>().unwrap().name(), None);
    }

    #[test]
    fn strings_round_trip() {
        for s in [
            "dns:e7.whatsapp.net",
            "wechat-httpdns:long.weixin.qq.com",
            "sni:chat.signal.org",
            "host:dns.weixin.qq.com",
            "stun-realm:signal.org",
            "fingerprint:whatsapp-stun",
            "prefix:157.240.0.0/16",
            "prefix:2a03:2880::/32",
            "relay-from:157.240.203.62:3478",
            "relay-from:[2a03:2880:f200:1c5:face:b00c:0:167]:3478",
            "asn:AS32934",
        ] {
            let e: Evidence = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{s}\""));
        }
        for bad in [
            "nothing",
            "port:udp/3478",
            "asn:32934",
            "fingerprint:x",
            "relay-from:1.2.3.4",
        ] {
            assert!(bad.parse::<Evidence>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sorted_strongest_first() {
        let mut v: Vec<Evidence> = [
            "prefix:157.240.0.0/16",
            "sni:b",
            "dns:a",
            "sni:b",
            "asn:AS1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        Evidence::sort(&mut v);
        let s: Vec<String> = v.iter().map(|e| e.to_string()).collect();
        assert_eq!(s, ["dns:a", "sni:b", "prefix:157.240.0.0/16", "asn:AS1"]);
    }

    /// The allocation-free comparison orders exactly as the string forms
    /// do: every kind, kinds of equal strength side by side, names that
    /// are prefixes of others, numbers that sort differently as text.
    #[test]
    fn sort_equals_sorting_by_string_form() {
        let all: Vec<Evidence> = [
            "dns:a.example",
            "dns:a",
            "wechat-httpdns:a",
            "dns:b",
            "wechat-httpdns:",
            "dns:",
            "sni:z",
            "host:z",
            "stun-realm:z",
            "sni:a.b",
            "host:a",
            "sni:a",
            "fingerprint:whatsapp-noise",
            "fingerprint:wechat-mmtls",
            "prefix:157.240.0.0/16",
            "prefix:10.0.0.0/8",
            "relay-from:1.2.3.4:3478",
            "relay-from:[2001:db8::1]:3478",
            "asn:AS12",
            "asn:AS2",
            "asn:AS100",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let reference = |v: &[Evidence]| {
            let mut v = v.to_vec();
            v.sort_by_cached_key(|e| (std::cmp::Reverse(e.strength()), e.to_string()));
            v.dedup();
            v
        };
        // Rotations and interleavings, with duplicates, as inputs.
        for step in 1..all.len() {
            let mut input: Vec<Evidence> = (0..all.len() * 2)
                .map(|i| all[(i * step + i / all.len()) % all.len()].clone())
                .collect();
            let want = reference(&input);
            Evidence::sort(&mut input);
            assert_eq!(input, want, "step {step}");
        }
    }
}
