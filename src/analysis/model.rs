//! The records `matador replay` produces: one [`CaptureReport`] per capture
//! file, serialised as one JSON object per line (`--json`). Field names are
//! the documented output contract (docs/replay-json.md); add fields, never
//! rename them.

use crate::analysis::attribution::Evidence;
use crate::analysis::packet::Encap;
use crate::capture::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything replay learned from one capture file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CaptureReport {
    /// Path of the capture as given (or found under a given directory).
    pub capture: String,
    /// `"pcap"` or `"pcapng"` (detected by magic, never by file name).
    pub format: String,
    /// Link types seen, by name (`"ethernet"`, `"linux_sll"`, `"linux_sll2"`, `"raw"`, `"null"`, …).
    pub link_types: Vec<String>,
    /// Frames read.
    pub packets: u64,
    /// Sum of the frames' original (on-the-wire) lengths.
    pub bytes: u64,
    /// Timestamp of the earliest frame.
    pub first_ts: Option<Timestamp>,
    /// Timestamp of the latest frame.
    pub last_ts: Option<Timestamp>,
    /// Conversations, both directions merged.
    pub flows: Vec<FlowRecord>,
    /// DNS transactions (queries with their answers).
    pub dns: Vec<DnsRecord>,
    /// TLS and QUIC ClientHellos.
    pub tls: Vec<TlsRecord>,
    /// HTTP requests (Host header etc.).
    #[serde(default)]
    pub http: Vec<HttpRecord>,
    /// Backend servers attributed to messaging apps, with evidence.
    pub servers: Vec<ServerRecord>,
    /// Network interference found (forged DNS, injected packets).
    pub interference: Vec<InterferenceEvent>,
    /// Problems reading the file; the records above hold everything decoded before them.
    pub errors: Vec<ErrorRecord>,
    /// Non-fatal remarks (short snap length, unknown link type, …).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One bidirectional conversation. `src`/`sport` is the side that sent the first packet seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowRecord {
    /// `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` or the protocol number.
    pub proto: String,
    /// Initiator address (first packet's source).
    pub src: IpAddr,
    /// Initiator port (0 for ICMP).
    pub sport: u16,
    /// Responder address.
    pub dst: IpAddr,
    /// Responder port (0 for ICMP).
    pub dport: u16,
    /// Packets in both directions.
    pub packets: u64,
    /// IP bytes in both directions.
    pub bytes: u64,
    /// First packet.
    pub first_ts: Timestamp,
    /// Last packet.
    pub last_ts: Timestamp,
    /// TCP flags seen in either direction, e.g. `"SYN,ACK,PSH,FIN"` (empty for UDP).
    pub tcp_flags: String,
    /// TLS/QUIC server name, if a ClientHello was seen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sni: Option<String>,
    /// App id this flow is attributed to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub app: Option<String>,
    /// Why the flow is attributed to `app`, strongest first
    /// (`stun-realm:signal.org`, `sni:…`, `dns:…`, `prefix:…`,
    /// `relay-from:…`; docs/attribution.md). Empty (and left out) when
    /// `app` is.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub evidence: Vec<Evidence>,
    /// Tunnels the flow's packets were carried in, outermost first
    /// (`pppoe`, `gre`, `vxlan`, `gtp-u`, `capwap`, `4in4`, `6in4`, `4in6`,
    /// `6in6`); the addresses and ports above are the innermost ones.
    /// Empty (and left out) for a flow outside any tunnel.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub encap: Vec<Encap>,
}

impl crate::analysis::spill::JsonRecord for FlowRecord {
    /// Written by hand, byte for byte what `serde_json` writes (a test
    /// checks it): a capture has a record per flow, and serde's generic
    /// path (keys escaped like values, timestamps through the formatter)
    /// was a tenth of replay's time on real traffic.
    fn write_json(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut n = itoa::Buffer::new();
        let mut ts = [0u8; 32];
        out.extend_from_slice(b"{\"proto\":");
        json_str(out, &self.proto)?;
        out.extend_from_slice(b",\"src\":\"");
        push_ip(out, self.src);
        out.extend_from_slice(b"\",\"sport\":");
        out.extend_from_slice(n.format(self.sport).as_bytes());
        out.extend_from_slice(b",\"dst\":\"");
        push_ip(out, self.dst);
        out.extend_from_slice(b"\",\"dport\":");
        out.extend_from_slice(n.format(self.dport).as_bytes());
        out.extend_from_slice(b",\"packets\":");
        out.extend_from_slice(n.format(self.packets).as_bytes());
        out.extend_from_slice(b",\"bytes\":");
        out.extend_from_slice(n.format(self.bytes).as_bytes());
        out.extend_from_slice(b",\"first_ts\":\"");
        out.extend_from_slice(self.first_ts.format_into(&mut ts).as_bytes());
        out.extend_from_slice(b"\",\"last_ts\":\"");
        out.extend_from_slice(self.last_ts.format_into(&mut ts).as_bytes());
        out.extend_from_slice(b"\",\"tcp_flags\":");
        json_str(out, &self.tcp_flags)?;
        if let Some(sni) = &self.sni {
            out.extend_from_slice(b",\"sni\":");
            json_str(out, sni)?;
        }
        if let Some(app) = &self.app {
            out.extend_from_slice(b",\"app\":");
            json_str(out, app)?;
        }
        json_list(out, b",\"evidence\":[", &self.evidence)?;
        json_list(out, b",\"encap\":[", &self.encap)?;
        out.push(b'}');
        Ok(())
    }
}

/// Appends `key` (ending in `[`) and the items as JSON strings, then `]`;
/// nothing for an empty list (serde's `skip_serializing_if = "Vec::is_empty"`).
fn json_list<T: std::fmt::Display>(
    out: &mut Vec<u8>,
    key: &[u8],
    items: &[T],
) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    out.extend_from_slice(key);
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, &e.to_string())?;
    }
    out.push(b']');
    Ok(())
}

/// Appends a JSON string (quoted and escaped as `serde_json` does).
fn json_str(out: &mut Vec<u8>, s: &str) -> std::io::Result<()> {
    // serde_json escapes control characters, '"' and '\\' only.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(out, s).map_err(std::io::Error::from)
}

/// Appends an address as `Display` writes it (what serde serialises).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(n.format(o).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

impl crate::analysis::spill::JsonRecord for DnsRecord {}
impl crate::analysis::spill::JsonRecord for TlsRecord {}
impl crate::analysis::spill::JsonRecord for HttpRecord {}

/// One DNS answer record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Owner name.
    pub name: String,
    /// Record type (`"A"`, `"AAAA"`, `"CNAME"`, …).
    #[serde(rename = "type")]
    pub rtype: String,
    /// Presentation form of the data (address, target name, …).
    pub data: String,
    /// TTL in seconds.
    pub ttl: u32,
}

/// One DNS response (or an unanswered query), with what interference checks need.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DnsRecord {
    /// Frame of the response (or of the query if none came).
    pub frame: u64,
    /// Its timestamp.
    pub ts: Timestamp,
    /// `"udp"`, `"tcp"`, `"dot"`, `"doh"` or `"wechat-httpdns"`.
    pub transport: String,
    /// Resolver address.
    pub server: IpAddr,
    /// Client address.
    #[serde(default = "unspecified")]
    pub client: IpAddr,
    /// DNS transaction id.
    #[serde(default)]
    pub id: u16,
    /// Question name.
    pub query: String,
    /// Question type (`"A"`, `"AAAA"`, …).
    pub qtype: String,
    /// Response code (`"NOERROR"`, `"NXDOMAIN"`, …), `None` while unanswered.
    pub rcode: Option<String>,
    /// IP TTL of the response packet.
    pub ip_ttl: Option<u8>,
    /// IPv4 ID of the response packet.
    pub ip_id: Option<u16>,
    /// Answer section.
    pub answers: Vec<DnsAnswer>,
}

fn unspecified() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
}

/// A TLS or QUIC ClientHello.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TlsRecord {
    /// Frame that completed the ClientHello.
    pub frame: u64,
    /// Its timestamp.
    pub ts: Timestamp,
    /// Client address.
    pub src: IpAddr,
    /// Client port.
    #[serde(default)]
    pub sport: u16,
    /// Server address.
    pub dst: IpAddr,
    /// Server port.
    pub dport: u16,
    /// Server name indication, if present.
    pub sni: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<String>,
    /// `"tls"` or `"quic"`.
    #[serde(default)]
    pub proto: String,
}

/// A plain-HTTP request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpRecord {
    /// Frame holding the request line.
    pub frame: u64,
    /// Its timestamp.
    pub ts: Timestamp,
    /// Client address.
    pub src: IpAddr,
    /// Server address.
    pub dst: IpAddr,
    /// Server port.
    pub dport: u16,
    /// Method (`GET`, `POST`, …).
    pub method: String,
    /// Request target.
    pub path: String,
    /// Host header, if present.
    pub host: Option<String>,
}

/// What a server endpoint does for the app, as correlation judged it.
/// Serialised as the lower-case strings `analysis.json` always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Carries the messages (identified by correlation).
    #[serde(rename = "messaging")]
    Messaging,
    /// Wakes the app before receipts (explains receives, never sends).
    #[serde(rename = "push")]
    Push,
    /// Large transfers (media, attachments, updates).
    #[serde(rename = "media")]
    Media,
    /// Small periodic traffic through the measurement (keep-alive, presence).
    #[serde(rename = "keep-alive")]
    KeepAlive,
    /// Name resolution (DNS port, a resolver, DoH).
    #[serde(rename = "dns")]
    Dns,
    /// Any other server of the app.
    #[serde(rename = "auxiliary")]
    Auxiliary,
}

impl Role {
    /// The string written to `analysis.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Messaging => "messaging",
            Role::Push => "push",
            Role::Media => "media",
            Role::KeepAlive => "keep-alive",
            Role::Dns => "dns",
            Role::Auxiliary => "auxiliary",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A backend server of a messaging app and why matador thinks so.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerRecord {
    /// App id (`whatsapp`, `wechat`, `threema`, `signal`, `telegram`, `line`, `kakaotalk`).
    pub app: String,
    /// Server address.
    pub ip: IpAddr,
    /// Server port.
    pub port: u16,
    /// `"tcp"` or `"udp"`.
    pub proto: String,
    /// DNS names / SNI / Host names seen for this address.
    pub names: Vec<String>,
    /// Human-readable evidence, strongest first (e.g. `"dns:e1.whatsapp.net"`, `"sni:…"`, `"fingerprint:noise"`).
    pub evidence: Vec<String>,
    /// Role, when attribution knows it (`dns` for an app's own resolver).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<Role>,
}

/// One finding of network interference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterferenceEvent {
    /// What was forged: a DNS answer or a TCP packet.
    pub kind: InterferenceKind,
    /// Which rule fired.
    pub rule: InterferenceRule,
    /// Frames involved (1-based).
    pub frames: Vec<u64>,
    /// Address the packet claims to come from.
    pub claimed_src: IpAddr,
    /// Field values that betray it (`ip_ttl`, `ip_id`, `window`, expected values, …).
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// Confidence in [0, 1]; see docs/interference.md for what raises it.
    pub confidence: f64,
    /// Estimated hop distance of the injector from the capture point, when the genuine TTL is known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub injector_hops: Option<u8>,
    /// One-line explanation.
    pub summary: String,
}

/// Defines a closed set of names written as JSON strings, plus `Other`
/// for a name this build does not know (see [`InterferenceRule`] for why
/// unknown names are kept rather than refused). Equality, order and hash
/// go by the name, so `Other("bogon_answer")` equals `BogonAnswer` and
/// sorting gives exactly the order the strings had.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A name this build does not know, kept verbatim from a
            /// stored record (never produced by this build's detector).
            Other(String),
        }

        impl $name {
            /// Every name this build knows, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The JSON spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(s) => s,
                }
            }

            /// Parses a JSON spelling; an unknown one becomes `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            // By name: tables and event lists sorted by rule keep the order
            // they had when the rule was a string.
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
                self.as_str().hash(h);
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

named_enum! {
    /// `kind` of an [`InterferenceEvent`]: what was forged
    /// (docs/interference.md, "Rules").
    ///
    /// An unknown kind in a stored record is kept as `Other`, for the
    /// reason given at [`InterferenceRule`].
    pub enum InterferenceKind {
        /// A DNS answer (`dns_forgery`): the rules of
        /// `interference/dns_rules.rs` and `interference/control.rs`.
        DnsForgery = "dns_forgery",
        /// A TCP packet claiming to be the server's (`injected_packet`):
        /// the rules of `interference/tcp_rules.rs`.
        InjectedPacket = "injected_packet",
    }
}

named_enum! {
    /// `rule` of an [`InterferenceEvent`]: which rule fired
    /// (docs/interference.md is the reference for thresholds and
    /// confidence).
    ///
    /// An unknown rule in a stored record (an `analysis.json` or replay
    /// JSON written by a newer matador, or by another tool) is kept as
    /// `Other` rather than refused: readers only count and print rules,
    /// and refusing would drop the whole file (a measurement's servers,
    /// DNS and flows) from a report over one finding's label. The name
    /// round-trips unchanged.
    pub enum InterferenceRule {
        /// An A/AAAA answer is in `data/forged-answers.txt` (known
        /// forgery addresses). Kind `dns_forgery`.
        KnownForgedAnswer = "known_forged_answer",
        /// A public name answered with a bogon (loopback, reserved,
        /// multicast, documentation; private/CGN/link-local only from a
        /// public resolver). Kind `dns_forgery`.
        BogonAnswer = "bogon_answer",
        /// One query drew UDP replies with different answer sets; the
        /// suspect reply is singled out by answer, TTL/IP-ID misfit or
        /// arrival order. Kind `dns_forgery`.
        DuplicateReply = "duplicate_reply",
        /// An answer whose IP TTL or IP-ID does not fit the resolver's
        /// other replies. Kind `dns_forgery`.
        ResolverMisfit = "resolver_misfit",
        /// The answer does not overlap the control resolutions (by
        /// address, or AS with an ASN lookup), or NXDOMAIN where the
        /// control resolves; only with control resolutions given. Kind
        /// `dns_forgery`.
        ControlInconsistency = "control_inconsistency",
        /// A server RST whose TTL/IP-ID (plus window, later server
        /// traffic, trigger) betray an injector. Kind `injected_packet`.
        InjectedRst = "injected_rst",
        /// A server FIN judged injected as for `injected_rst`. Kind
        /// `injected_packet`.
        InjectedFin = "injected_fin",
        /// A server HTTP response (blockpage, redirect) judged injected as
        /// for `injected_rst`. Kind `injected_packet`.
        InjectedHttpResponse = "injected_http_response",
        /// A SYN/ACK acknowledging a client SYN but arriving on other
        /// ports than the SYN's (the Great Firewall answering SYNs to its
        /// forged addresses). Kind `injected_packet`.
        BogusSynack = "bogus_synack",
    }
}

impl InterferenceRule {
    /// The kind of event this rule produces (`None` for `Other`).
    pub fn kind(&self) -> Option<InterferenceKind> {
        use InterferenceRule::*;
        match self {
            KnownForgedAnswer | BogonAnswer | DuplicateReply | ResolverMisfit
            | ControlInconsistency => Some(InterferenceKind::DnsForgery),
            InjectedRst | InjectedFin | InjectedHttpResponse | BogusSynack => {
                Some(InterferenceKind::InjectedPacket)
            }
            Other(_) => None,
        }
    }
}

/// A problem reading a capture. Everything decoded before it is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The file.
    pub file: String,
    /// Byte offset in the file where reading failed, when known.
    pub offset: Option<u64>,
    /// Frame number (1-based) that could not be read, when known.
    pub frame: Option<u64>,
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::spill::JsonRecord;

    /// Every known kind and rule is written as its documented name, read
    /// back as itself, and named in docs/interference.md.
    #[test]
    fn interference_names_round_trip_and_are_documented() {
        let doc = include_str!("../../docs/interference.md");
        let kinds = InterferenceKind::KNOWN
            .iter()
            .map(|k| k.as_str().to_string());
        let rules = InterferenceRule::KNOWN
            .iter()
            .map(|r| r.as_str().to_string());
        for name in kinds.chain(rules) {
            assert!(doc.contains(&format!("`{name}`")), "{name} not in the docs");
        }
        for r in InterferenceRule::KNOWN {
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            let back: InterferenceRule = serde_json::from_str(&json).unwrap();
            assert!(!matches!(back, InterferenceRule::Other(_)), "{json}");
            assert_eq!(&back, r);
            assert!(r.kind().is_some(), "{r}");
        }
        assert_eq!(
            serde_json::to_string(&InterferenceKind::DnsForgery).unwrap(),
            "\"dns_forgery\""
        );
        assert_eq!(
            InterferenceRule::BogusSynack.kind(),
            Some(InterferenceKind::InjectedPacket)
        );
        assert_eq!(
            InterferenceRule::DuplicateReply.kind(),
            Some(InterferenceKind::DnsForgery)
        );
    }

    /// A stored event with a rule and kind this build does not know is
    /// read (as `Other`) and written back byte for byte.
    #[test]
    fn unknown_interference_names_are_kept_verbatim() {
        let text = r#"{"kind":"quic_forgery","rule":"ttl_mismatch","frames":[3],"claimed_src":"192.0.2.1","evidence":{},"confidence":0.5,"summary":"x"}"#;
        let e: InterferenceEvent = serde_json::from_str(text).unwrap();
        assert_eq!(e.kind, InterferenceKind::Other("quic_forgery".into()));
        assert_eq!(e.rule, InterferenceRule::Other("ttl_mismatch".into()));
        assert_eq!(e.rule.kind(), None);
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
    }

    /// Equality and order go by name: sorting rules gives the order their
    /// strings had, and an `Other` spelling a known name equals it.
    #[test]
    fn interference_rules_compare_by_name() {
        let mut rules: Vec<InterferenceRule> = InterferenceRule::KNOWN.to_vec();
        rules.push(InterferenceRule::Other("aaa".into()));
        rules.sort();
        let names: Vec<&str> = rules.iter().map(InterferenceRule::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "aaa");
        assert_eq!(
            InterferenceRule::Other("bogon_answer".into()),
            InterferenceRule::BogonAnswer
        );
        assert_eq!(
            InterferenceRule::parse("injected_fin"),
            InterferenceRule::InjectedFin
        );
    }

    /// The hand-written flow JSON is exactly serde's, for odd values too.
    #[test]
    fn flow_json_is_what_serde_writes() {
        let base = FlowRecord {
            proto: "tcp".into(),
            src: "198.18.0.1".parse().unwrap(),
            sport: 443,
            dst: "fd00::1:0:0:2".parse().unwrap(),
            dport: 0,
            packets: u64::MAX,
            bytes: 0,
            first_ts: Timestamp::new(1_405_545_681, 123_456_789, 9),
            last_ts: Timestamp::new(-3, 0, 0),
            tcp_flags: "SYN,ACK".into(),
            sni: None,
            app: None,
            evidence: Vec::new(),
            encap: Vec::new(),
        };
        let variants = [
            base.clone(),
            FlowRecord {
                proto: "254".into(),
                src: "::ffff:1.2.3.4".parse().unwrap(),
                dst: "0.0.0.0".parse().unwrap(),
                sni: Some("a\"b\\c\u{1}\u{7f}é\u{fffd}.example".into()),
                app: Some("whatsapp".into()),
                tcp_flags: String::new(),
                evidence: ["stun-realm:signal.org", "relay-from:[fd00::1]:3478"]
                    .map(|e| e.parse().unwrap())
                    .to_vec(),
                encap: vec![Encap::Pppoe, Encap::IpInIp { inner: 6, outer: 4 }],
                ..base.clone()
            },
            FlowRecord {
                src: "255.255.255.255".parse().unwrap(),
                dst: "::".parse().unwrap(),
                app: Some("line".into()),
                sni: Some("é\u{7f}x\u{1f}".into()),
                tcp_flags: "SYN\tACK".into(),
                evidence: vec!["sni:é\u{7f}x\u{1f}\"".parse().unwrap()],
                first_ts: Timestamp::new(0, 5, 6),
                ..base.clone()
            },
            FlowRecord {
                sni: Some("ünïcode\u{7f}.example".into()),
                ..base
            },
        ];
        for f in variants {
            let mut got = Vec::new();
            f.write_json(&mut got).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                serde_json::to_string(&f).unwrap()
            );
            let back: FlowRecord =
                serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
            // (timestamps are printed to their digits, so compare the lists)
            assert_eq!((back.evidence, back.encap), (f.evidence, f.encap));
        }
    }
}
