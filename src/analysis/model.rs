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
    /// `"dns_forgery"` or `"injected_packet"`.
    pub kind: String,
    /// Which rule fired (e.g. `"known_forged_answer"`, `"duplicate_reply"`, `"ttl_mismatch"`).
    pub rule: String,
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
