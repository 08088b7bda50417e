//! Trace results in a RIPE-Atlas-like JSON layout.
//!
//! The fields RIPE Atlas traceroute results use keep their names and
//! meanings (`af`, `dst_addr`, `src_addr`, `proto`, `paris_id`, `timestamp`,
//! `endtime`, `size`, `result[].hop`, `result[].result[]` with `from`, `rtt`
//! in ms, `ttl`, `size`, `err`, `flags`, `icmpext`, or `{"x": "*"}`), so
//! tools written for Atlas read them. matador adds `schema`, `engine`,
//! `dst_port`, `stop_reason`, `packets` and, after geolocation, per-hop
//! `geo`; readers that do not know them ignore them.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Schema tag of a stored trace (docs/campaign-record.md).
pub const TRACE_SCHEMA: &str = "matador/trace/1";

/// Probe protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Proto {
    /// ICMP (v4) / ICMPv6 echo request, Paris (constant checksum).
    Icmp,
    /// UDP, Paris (constant ports, probe number in the checksum).
    Udp,
    /// TCP SYN to the server's own port (in-protocol).
    Tcp,
}

impl std::str::FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "icmp" | "icmp-paris" | "icmp-echo-paris" => Ok(Proto::Icmp),
            "udp" | "udp-paris" => Ok(Proto::Udp),
            "tcp" | "tcp-syn" => Ok(Proto::Tcp),
            _ => Err(format!("unknown probe protocol {s:?} (tcp, udp or icmp)")),
        }
    }
}

/// Why a trace stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The destination answered (echo reply, port unreachable, SYN-ACK/RST).
    Reached,
    /// ICMP network unreachable.
    UnreachNet,
    /// ICMP host / address unreachable.
    UnreachHost,
    /// ICMP communication administratively prohibited (a filter).
    UnreachProhibited,
    /// ICMP protocol unreachable.
    UnreachProto,
    /// ICMP port unreachable from a hop that is not the destination.
    UnreachPort,
    /// Another destination-unreachable code.
    UnreachOther,
    /// Too many consecutive silent hops.
    GapLimit,
    /// The maximum TTL was probed without reaching the destination.
    MaxTtl,
    /// The same address answered at consecutive hops (a loop).
    Loop,
    /// A TCP RST in the destination's name came from an on-path device
    /// (a censor), not from the destination.
    InjectedRst,
    /// Probing failed (sending was refused).
    Error,
}

/// One RFC 4950 MPLS label stack entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MplsLabel {
    /// Label value (20 bits).
    pub label: u32,
    /// Experimental / traffic class bits.
    pub exp: u8,
    /// Bottom-of-stack bit.
    pub s: u8,
    /// Label TTL.
    pub ttl: u8,
}

/// One RFC 4884 extension object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpExtObj {
    /// Class-Num (1 = MPLS label stack).
    pub class: u8,
    /// C-Type.
    #[serde(rename = "type")]
    pub ctype: u8,
    /// Decoded MPLS entries (class 1, type 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mpls: Vec<MplsLabel>,
}

/// RFC 4884 extension structure of an ICMP error (Atlas `icmpext`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpExt {
    /// Extension version (2).
    pub version: u8,
    /// 1 if the RFC 4884 length field was set, 0 for the legacy layout.
    pub rfc4884: u8,
    /// The objects.
    pub obj: Vec<IcmpExtObj>,
}

/// Geolocation of one answering address (added by [`super::geo`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopGeo {
    /// The address.
    pub addr: IpAddr,
    /// ISO country code, if the database knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Special-purpose block (private, benchmarking, …) the address falls in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special: Option<String>,
    /// Plausibility of the country given the hop's minimum RTT:
    /// `plausible`, `implausible` or `unknown`.
    pub plausibility: String,
    /// Why (implausible / unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// An answer to one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Who answered.
    pub from: IpAddr,
    /// Round-trip time, ms.
    pub rtt: f64,
    /// TTL / hop limit of the reply as received.
    pub ttl: u8,
    /// Reply size, bytes (IP header included).
    pub size: u16,
    /// Atlas error letter for ICMP unreachables: `N` network, `H` host,
    /// `A` administratively prohibited, `P` protocol, `p` port; or the
    /// numeric code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    /// TCP flags of a destination's answer (`SA`, `R`, `RA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// TTL of the probe as quoted back by the hop (Atlas `ittl`), when not 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ittl: Option<u8>,
    /// ICMP extensions (MPLS labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmpext: Option<IcmpExt>,
    /// Set on a TCP answer "from the destination" that an on-path device
    /// forged (see [`detect_injected_rst`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected: Option<bool>,
}

/// A probe's outcome: an answer or a timeout (`{"x": "*"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// Answered.
    Answer(Answer),
    /// No answer within the wait time.
    Star {
        /// Always `"*"`.
        x: String,
    },
}

impl Reply {
    /// A timeout.
    pub fn star() -> Self {
        Reply::Star { x: "*".into() }
    }

    /// The answer, if any.
    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Reply::Answer(a) => Some(a),
            Reply::Star { .. } => None,
        }
    }
}

/// One hop (TTL) of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// TTL of the probes.
    pub hop: u8,
    /// One entry per probe, in sending order.
    pub result: Vec<Reply>,
    /// Geolocation of the answering addresses (after [`super::geo::annotate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub geo: Vec<HopGeo>,
}

impl Hop {
    /// Distinct answering addresses, in order of first appearance.
    pub fn addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = Vec::new();
        for a in self.result.iter().filter_map(Reply::answer) {
            if !v.contains(&a.from) {
                v.push(a.from);
            }
        }
        v
    }

    /// Smallest RTT among the answers, ms.
    pub fn min_rtt(&self) -> Option<f64> {
        self.result
            .iter()
            .filter_map(Reply::answer)
            .map(|a| a.rtt)
            .reduce(f64::min)
    }
}

/// One traceroute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// `matador/trace/1`.
    pub schema: String,
    /// Who measured: `matador` or `scamper` (imported).
    pub engine: String,
    /// Address family, 4 or 6.
    pub af: u8,
    /// Destination address.
    pub dst_addr: IpAddr,
    /// Destination name as given, when not an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_name: Option<String>,
    /// Source address of the probes.
    pub src_addr: IpAddr,
    /// Probe protocol.
    pub proto: Proto,
    /// Destination port (UDP/TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Flow identifier: probes of one Paris id share their ECMP flow (for
    /// imported scamper traces: scamper's source port, 0 for ICMP).
    pub paris_id: u16,
    /// Start, UNIX seconds.
    pub timestamp: u64,
    /// End, UNIX seconds.
    pub endtime: u64,
    /// Probe packet size, bytes (IP header included).
    pub size: u16,
    /// Why probing stopped.
    pub stop_reason: StopReason,
    /// Probes sent.
    #[serde(default)]
    pub packets: u32,
    /// What went wrong locally (no route, sending refused), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Hops in TTL order.
    pub result: Vec<Hop>,
}

impl Trace {
    /// Per hop, the first answering address (`None` for a silent hop).
    pub fn hop_addrs(&self) -> Vec<Option<IpAddr>> {
        self.result
            .iter()
            .map(|h| h.addrs().first().copied())
            .collect()
    }

    /// Did the destination answer?
    pub fn reached(&self) -> bool {
        self.stop_reason == StopReason::Reached
    }
}

/// Atlas `err` letter of an ICMP destination-unreachable code.
pub fn unreach_err(is_v6: bool, code: u8) -> String {
    let s = if is_v6 {
        match code {
            0 => "N",
            1 | 5 | 6 => "A",
            3 => "H",
            4 => "p",
            _ => return code.to_string(),
        }
    } else {
        match code {
            0 | 6 | 11 => "N",
            1 | 7 | 12 => "H",
            2 => "P",
            3 => "p",
            9 | 10 | 13 => "A",
            _ => return code.to_string(),
        }
    };
    s.to_string()
}

/// Stop reason of an unreachable with code `code` from a non-destination hop.
pub fn unreach_stop(is_v6: bool, code: u8) -> StopReason {
    match unreach_err(is_v6, code).as_str() {
        "N" => StopReason::UnreachNet,
        "H" => StopReason::UnreachHost,
        "A" => StopReason::UnreachProhibited,
        "P" => StopReason::UnreachProto,
        "p" => StopReason::UnreachPort,
        _ => StopReason::UnreachOther,
    }
}

/// TCP flags as Atlas writes them (`S`, `A`, `R`, `F` letters).
pub fn tcp_flags(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(0x02, 'S'), (0x04, 'R'), (0x10, 'A'), (0x01, 'F')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Hops a reply travelled, from its received TTL, assuming the sender
/// started at the next common initial value (32, 64, 128 or 255).
pub fn reply_distance(ttl: u8) -> u8 {
    let init = [32u8, 64, 128, 255]
        .into_iter()
        .find(|i| *i >= ttl)
        .unwrap_or(255);
    init - ttl + 1
}

/// Flags forged TCP answers of a TCP trace that stopped as `reached`.
///
/// On a path where every answering router's reply travelled exactly as many
/// hops as its probe (symmetric path: reply distance from the TTL equals
/// the hop number), a genuine answer of the destination at hop `h` travels
/// `h` hops too. A RST injected by a device at hop `k < h` in the
/// destination's name travels `k` hops: it arrives with one TTL too many.
/// Such answers get `injected: true` and the trace stops as
/// `injected_rst`. With no symmetric evidence (no router answered, or
/// some router's distance differs, as on asymmetric Internet paths) nothing
/// is flagged. Returns whether the trace was flagged.
pub fn detect_injected_rst(trace: &mut Trace) -> bool {
    if trace.proto != Proto::Tcp || trace.stop_reason != StopReason::Reached {
        return false;
    }
    let Some((last, earlier)) = trace.result.split_last_mut() else {
        return false;
    };
    let mut evidence = 0;
    for h in earlier.iter() {
        for a in h.result.iter().filter_map(Reply::answer) {
            if a.from == trace.dst_addr || reply_distance(a.ttl) != h.hop {
                return false;
            }
            evidence += 1;
        }
    }
    if evidence == 0 {
        return false;
    }
    let mut flagged = false;
    for r in &mut last.result {
        if let Reply::Answer(a) = r
            && a.flags.is_some()
            && a.from == trace.dst_addr
            && reply_distance(a.ttl) < last.hop
        {
            a.injected = Some(true);
            flagged = true;
        }
    }
    if flagged {
        trace.stop_reason = StopReason::InjectedRst;
    }
    flagged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(from: &str, ttl: u8, flags: Option<&str>) -> Reply {
        Reply::Answer(Answer {
            from: from.parse().unwrap(),
            rtt: 1.0,
            ttl,
            size: 40,
            err: None,
            flags: flags.map(str::to_string),
            ittl: None,
            icmpext: None,
            injected: None,
        })
    }

    fn tcp_trace(hops: Vec<Vec<Reply>>) -> Trace {
        Trace {
            schema: TRACE_SCHEMA.into(),
            engine: "matador".into(),
            af: 4,
            dst_addr: "198.18.4.2".parse().unwrap(),
            dst_name: None,
            src_addr: "198.18.1.1".parse().unwrap(),
            proto: Proto::Tcp,
            dst_port: Some(443),
            paris_id: 1,
            timestamp: 0,
            endtime: 0,
            size: 40,
            stop_reason: StopReason::Reached,
            packets: 3,
            error: None,
            result: hops
                .into_iter()
                .enumerate()
                .map(|(i, result)| Hop {
                    hop: i as u8 + 1,
                    result,
                    geo: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn reply_distances() {
        assert_eq!(reply_distance(64), 1);
        assert_eq!(reply_distance(61), 4);
        assert_eq!(reply_distance(255), 1);
        assert_eq!(reply_distance(120), 9);
        assert_eq!(reply_distance(0), 33);
    }

    #[test]
    fn injected_rst_needs_symmetric_evidence() {
        // Symmetric routers, RST one hop "too close": flagged.
        let mut t = tcp_trace(vec![
            vec![answer("198.18.1.2", 64, None)],
            vec![answer("198.18.2.2", 63, None)],
            vec![answer("198.18.4.2", 63, Some("RA")), Reply::star()],
        ]);
        assert!(detect_injected_rst(&mut t));
        assert_eq!(t.stop_reason, StopReason::InjectedRst);
        // Genuine answer at its own distance: not flagged.
        let mut t = tcp_trace(vec![
            vec![answer("198.18.1.2", 64, None)],
            vec![answer("198.18.4.2", 63, Some("SA"))],
        ]);
        assert!(!detect_injected_rst(&mut t));
        assert_eq!(t.stop_reason, StopReason::Reached);
        // An asymmetric router (distance 3 at hop 2): no evidence, no flag.
        let mut t = tcp_trace(vec![
            vec![answer("198.18.1.2", 64, None)],
            vec![answer("198.18.2.2", 62, None)],
            vec![answer("198.18.4.2", 63, Some("RA"))],
        ]);
        assert!(!detect_injected_rst(&mut t));
        // No router answered: no evidence.
        let mut t = tcp_trace(vec![
            vec![Reply::star()],
            vec![answer("198.18.4.2", 64, Some("RA"))],
        ]);
        assert!(!detect_injected_rst(&mut t));
    }
}
