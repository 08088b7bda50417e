//! DNS message decoding into the replay model's presentation form.
//!
//! Resource records are parsed with the `simple-dns` crate. The header and
//! the question are read here as well, because `simple-dns` rejects a whole
//! message for an unknown question type or class, and a replay must still
//! report such a response (with its id, rcode, IP TTL…) — forged replies are
//! exactly the odd ones. When the crate rejects the full message we retry
//! with the authority/additional sections and then the answers dropped, so a
//! snapped or partly malformed reply still yields what can be read.

use super::DnsError;
use crate::analysis::model::DnsAnswer;
use simple_dns::rdata::{RData, SVCB, SVCParam};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Maximum length of a presentation name (RFC 1035: 255 octets on the wire).
const MAX_NAME: usize = 255;

/// The facts of one DNS message that replay reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// QR bit: true for a response.
    pub response: bool,
    /// Opcode (0 = QUERY).
    pub opcode: u8,
    /// Header RCODE (low 4 bits).
    pub rcode: u8,
    /// TC bit.
    pub truncated: bool,
    /// First question: name and type number.
    pub question: Option<(String, u16)>,
    /// Answer section in presentation form.
    pub answers: Vec<DnsAnswer>,
    /// False when some sections could not be decoded and were left out.
    pub complete: bool,
}

/// The transaction id and QR bit (true for a response) of a DNS message:
/// what [`parse_message`] would report for them, without decoding the
/// rest. `None` when the 12-byte header is not all there.
pub fn id_and_response(data: &[u8]) -> Option<(u16, bool)> {
    let h = data.get(..4)?;
    (data.len() >= 12).then(|| (u16::from_be_bytes([h[0], h[1]]), h[2] & 0x80 != 0))
}

/// Decodes one DNS message (UDP payload or one TCP-framed message).
pub fn parse_message(data: &[u8]) -> Result<DnsMessage, DnsError> {
    if data.len() < 12 {
        return Err(DnsError::Truncated { len: data.len() });
    }
    let be16 = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    let id = be16(0);
    let flags = be16(2);
    let qdcount = be16(4);
    let mut msg = DnsMessage {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0f) as u8,
        rcode: (flags & 0x0f) as u8,
        truncated: flags & 0x0200 != 0,
        question: None,
        answers: Vec::new(),
        complete: false,
    };
    let mut qend = None;
    if qdcount > 0
        && let Some((name, end)) = read_name(data, 12)
        && end + 4 <= data.len()
    {
        msg.question = Some((name, be16(end)));
        qend = Some(end);
    }
    if !msg.response {
        msg.complete = msg.question.is_some() || qdcount == 0;
        return Ok(msg);
    }
    // simple-dns rejects unknown QTYPE/QCLASS values: give it a copy with
    // the (already read) question's type and class set to A/IN.
    let mut copy = data.to_vec();
    if let Some(end) = qend {
        copy[end..end + 4].copy_from_slice(&[0, 1, 0, 1]);
    }
    // Full message first; then without authority/additional; then with
    // fewer and fewer answers (a reply cut by the snap length or a first
    // IP fragment keeps the answers that are complete).
    let counts = [be16(6), be16(8), be16(10)];
    let mut attempts = vec![counts, [counts[0], 0, 0]];
    let mut an = counts[0];
    while an > 0 && attempts.len() < 40 {
        an = if an > 32 { an / 2 } else { an - 1 };
        attempts.push([an, 0, 0]);
    }
    for (n, attempt) in attempts.iter().enumerate() {
        if n > 0 && attempts[n - 1] == *attempt {
            continue;
        }
        // Each record needs at least 11 bytes: skip hopeless counts cheaply.
        let need = 12
            + usize::from(qdcount) * 5
            + attempt.iter().map(|&c| usize::from(c) * 11).sum::<usize>();
        if need > copy.len() {
            continue;
        }
        for (i, c) in attempt.iter().enumerate() {
            copy[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        if let Ok(packet) = simple_dns::Packet::parse(&copy) {
            msg.answers = packet.answers.iter().map(answer).collect();
            msg.complete = n == 0;
            return Ok(msg);
        }
    }
    // simple-dns gives up on the whole message for one bad name (nDPI
    // malformed_dns.pcap: a question whose name is a chain of forward
    // pointers). Walk the records by their wire framing instead and keep
    // every answer that decodes; the message stays flagged incomplete.
    msg.answers = walk_answers(data, qdcount, be16(6));
    Ok(msg)
}

/// The offset just after a name *on the wire* (labels up to the root or the
/// first pointer), without following pointers: enough to step over a
/// record whose name cannot be decoded.
fn skip_name(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *data.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => return (pos + 2 <= data.len()).then_some(pos + 2),
            _ => return None,
        }
    }
}

/// Decodes the answer section record by record from the wire framing
/// (RFC 1035 §4.1.3); a record whose owner or data does not decode is left
/// out, the ones after it are still read. Stops where the framing ends.
fn walk_answers(data: &[u8], qdcount: u16, ancount: u16) -> Vec<DnsAnswer> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]));
    let mut pos = 12;
    for _ in 0..qdcount {
        let Some(end) = skip_name(data, pos) else {
            return Vec::new();
        };
        pos = end + 4;
    }
    let mut out = Vec::new();
    for _ in 0..ancount {
        let Some(end) = skip_name(data, pos) else {
            break;
        };
        let (Some(t), Some(hi), Some(lo), Some(rdlen)) =
            (be16(end), be16(end + 4), be16(end + 6), be16(end + 8))
        else {
            break;
        };
        let start = end + 10;
        let Some(rdata) = data.get(start..start + usize::from(rdlen)) else {
            break;
        };
        if let (Some((name, _)), Some(value)) =
            (read_name(data, pos), rdata_wire(data, t, start, rdata))
        {
            out.push(DnsAnswer {
                name,
                rtype: type_name(t),
                data: value,
                ttl: (u32::from(hi) << 16) | u32::from(lo),
            });
        }
        pos = start + rdata.len();
    }
    out
}

/// Presentation form of one record's data read straight from the wire:
/// addresses, names (which must end inside the record), and RFC 3597's
/// `\# <len> <hex>` for everything else. `None` when it does not decode.
fn rdata_wire(data: &[u8], t: u16, start: usize, rdata: &[u8]) -> Option<String> {
    match (t, rdata.len()) {
        (1, 4) => Some(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string()),
        (28, 16) => Some(Ipv6Addr::from(<[u8; 16]>::try_from(rdata).ok()?).to_string()),
        (1 | 28, _) => None,
        // CNAME, NS, PTR
        (5 | 2 | 12, _) => {
            let (name, end) = read_name(data, start)?;
            (end <= start + rdata.len()).then_some(name)
        }
        _ => {
            let mut s = format!("\\# {}", rdata.len());
            if !rdata.is_empty() {
                s.push(' ');
            }
            for b in rdata.iter().take(128) {
                let _ = write!(s, "{b:02x}");
            }
            Some(s)
        }
    }
}

/// Reads a (possibly compressed) name at `pos`; returns it and the offset
/// just after it in the original position. Pointers must go strictly
/// backwards, so loops are impossible; the name length is capped at 255.
pub fn read_name(data: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut end = None;
    let mut wire_len = 0usize;
    let mut limit = pos; // pointers must point before the first label read
    loop {
        let len = *data.get(pos)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let after = end.unwrap_or(pos + 1);
                    if out.is_empty() {
                        out.push_str("<Root>");
                    }
                    return Some((out, after));
                }
                let label = data.get(pos + 1..pos + 1 + usize::from(len))?;
                wire_len += 1 + label.len();
                if wire_len > MAX_NAME {
                    return None;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += 1 + label.len();
            }
            0xc0 => {
                let lo = *data.get(pos + 1)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                if end.is_none() {
                    end = Some(pos + 2);
                }
                if target >= limit {
                    return None;
                }
                limit = target;
                pos = target;
            }
            _ => return None, // extended label types (0x40/0x80) are obsolete
        }
    }
}

/// Appends a label, escaping dots and non-printable bytes as RFC 4343 does.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

/// Mnemonic of a record type number (`TYPE<n>` for unknown ones, RFC 3597).
pub fn type_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// Mnemonic of a response code (`RCODE<n>` for unassigned ones).
pub fn rcode_name(rcode: u8) -> String {
    let s = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{rcode}"),
    };
    s.to_string()
}

fn name_str(n: &simple_dns::Name<'_>) -> String {
    let mut out = String::new();
    for label in n.as_bytes() {
        if !out.is_empty() {
            out.push('.');
        }
        push_label(&mut out, label);
    }
    if out.is_empty() {
        out.push_str("<Root>");
    }
    out
}

fn answer(rr: &simple_dns::ResourceRecord<'_>) -> DnsAnswer {
    let t = u16::from(rr.rdata.type_code());
    DnsAnswer {
        name: name_str(&rr.name),
        rtype: type_name(t),
        data: rdata_str(&rr.rdata),
        ttl: rr.ttl,
    }
}

/// Presentation form of the record data for the common types; others get a
/// bounded debug rendering (their type number is kept in `type`).
fn rdata_str(rd: &RData<'_>) -> String {
    match rd {
        RData::A(a) => Ipv4Addr::from(a.address).to_string(),
        RData::AAAA(a) => Ipv6Addr::from(a.address).to_string(),
        RData::CNAME(n) => name_str(&n.0),
        RData::NS(n) => name_str(&n.0),
        RData::PTR(n) => name_str(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name_str(&mx.exchange)),
        RData::TXT(txt) => String::try_from(txt.clone()).unwrap_or_default(),
        RData::SOA(s) => format!(
            "{} {} {} {} {} {} {}",
            name_str(&s.mname),
            name_str(&s.rname),
            s.serial,
            s.refresh,
            s.retry,
            s.expire,
            s.minimum
        ),
        RData::SRV(s) => format!(
            "{} {} {} {}",
            s.priority,
            s.weight,
            s.port,
            name_str(&s.target)
        ),
        RData::SVCB(s) => svcb_str(s),
        RData::HTTPS(h) => svcb_str(&h.0),
        RData::Empty(_) => String::new(),
        other => {
            let mut s = format!("{other:?}");
            if s.len() > 256 {
                let mut cut = 256;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
            }
            s
        }
    }
}

fn svcb_str(s: &SVCB<'_>) -> String {
    let target = if s.target.get_labels().is_empty() {
        ".".to_string()
    } else {
        name_str(&s.target)
    };
    let mut out = format!("{} {}", s.priority, target);
    for p in s.iter_params() {
        match p {
            SVCParam::Alpn(ids) => {
                let ids: Vec<String> = ids.iter().map(|c| c.to_string()).collect();
                let _ = write!(out, " alpn={}", ids.join(","));
            }
            SVCParam::NoDefaultAlpn => out.push_str(" no-default-alpn"),
            SVCParam::Port(p) => {
                let _ = write!(out, " port={p}");
            }
            SVCParam::Ipv4Hint(v) => {
                let v: Vec<String> = v.iter().map(|a| Ipv4Addr::from(*a).to_string()).collect();
                let _ = write!(out, " ipv4hint={}", v.join(","));
            }
            SVCParam::Ipv6Hint(v) => {
                let v: Vec<String> = v.iter().map(|a| Ipv6Addr::from(*a).to_string()).collect();
                let _ = write!(out, " ipv6hint={}", v.join(","));
            }
            SVCParam::Ech(_) => out.push_str(" ech"),
            SVCParam::Mandatory(keys) => {
                let k: Vec<String> = keys.iter().map(|k| format!("key{k}")).collect();
                let _ = write!(out, " mandatory={}", k.join(","));
            }
            SVCParam::InvalidKey => {}
            SVCParam::Unknown(k, _) => {
                let _ = write!(out, " key{k}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dns::tests::hex;

    /// Builds a response for `name` with the given answer records (raw).
    fn response(id: u16, name: &str, qtype: u16, answers: &[(u16, u32, Vec<u8>)]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x81, 0x80]);
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        for (t, ttl, data) in answers {
            m.extend_from_slice(&[0xc0, 0x0c]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn a_and_cname_answers() {
        let cname = vec![3, b'w', b'w', b'w', 0xc0, 0x0c];
        let msg = response(
            7,
            "example.com",
            1,
            &[(5, 60, cname), (1, 300, vec![37, 61, 54, 158])],
        );
        let m = parse_message(&msg).unwrap();
        assert!(m.response && m.complete);
        assert_eq!(m.id, 7);
        assert_eq!(m.question, Some(("example.com".into(), 1)));
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].rtype, "CNAME");
        assert_eq!(m.answers[0].data, "www.example.com");
        assert_eq!(m.answers[1].data, "37.61.54.158");
        assert_eq!(m.answers[1].ttl, 300);
    }

    #[test]
    fn unknown_qtype_and_rdata_types_still_decode() {
        let msg = response(1, "x.org", 65400, &[(65400, 5, vec![1, 2, 3])]);
        let m = parse_message(&msg).unwrap();
        assert_eq!(m.question, Some(("x.org".into(), 65400)));
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].rtype, "TYPE65400");
    }

    #[test]
    fn mx_srv_soa_txt_https() {
        let mx = vec![0, 10, 2, b'm', b'x', 0xc0, 0x0c];
        let srv = vec![0, 1, 0, 2, 0x14, 0x66, 0xc0, 0x0c];
        let txt = vec![5, b'h', b'e', b'l', b'l', b'o'];
        let mut soa = vec![2, b'n', b's', 0xc0, 0x0c, 1, b'h', 0xc0, 0x0c];
        for v in [1u32, 2, 3, 4, 5] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        let https = vec![0, 1, 0, 0, 1, 0, 3, 2, b'h', b'2'];
        let msg = response(
            2,
            "a.b",
            15,
            &[
                (15, 1, mx),
                (33, 1, srv),
                (16, 1, txt),
                (6, 1, soa),
                (65, 1, https),
            ],
        );
        let m = parse_message(&msg).unwrap();
        let data: Vec<&str> = m.answers.iter().map(|a| a.data.as_str()).collect();
        assert_eq!(
            data,
            [
                "10 mx.a.b",
                "1 2 5222 a.b",
                "hello",
                "ns.a.b h.a.b 1 2 3 4 5",
                "1 . alpn=h2"
            ]
        );
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_rejected() {
        let mut msg = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]); // points to itself
        let m = parse_message(&msg).unwrap();
        assert_eq!(m.question, None);
        assert!(
            read_name(&[1, b'a', 0xc0, 0x00], 0).is_none(),
            "pointer back to the start of the same name"
        );
        assert!(
            read_name(&[0xc0, 0x05, 0, 0, 0, 0], 0).is_none(),
            "forward pointer"
        );
    }

    #[test]
    fn cut_reply_keeps_its_complete_answers() {
        let answers: Vec<(u16, u32, Vec<u8>)> =
            (0..5u8).map(|i| (1, 60, vec![10, 0, 0, i])).collect();
        let msg = response(9, "many.example", 1, &answers);
        let m = parse_message(&msg[..msg.len() - 3]).unwrap();
        assert!(!m.complete);
        let got: Vec<&str> = m.answers.iter().map(|a| a.data.as_str()).collect();
        assert_eq!(got, ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    }

    /// nDPI malformed_dns.pcap frame 2 (1388-byte reply, tshark
    /// `udp.payload`): the second question's name is a chain of forward
    /// compression pointers (tshark: `<Name too long>`), the answers are `A
    /// 66.66.66.66` and a CNAME whose target is unreadable. tshark shows the
    /// A record; so must we, flagged incomplete.
    #[test]
    fn malformed_record_keeps_the_valid_answer() {
        let mut m = hex("84b4810000020002000000000377777702787403636f6d0000010001");
        // Stand-in for the real 1250-byte name (tests/attribution_ndpi.rs
        // reads the capture itself): labels ending in a forward pointer.
        m.push(0x22);
        m.extend(std::iter::repeat_n(b'A', 34));
        m.push(0x3f);
        m.extend(std::iter::repeat_n(b'?', 63));
        m.extend(hex("c0ff00010001"));
        m.extend(hex("c00c0001000100000000000442424242"));
        m.extend(hex("c00c0005000100000000000703414141c0ff00"));
        let m2 = parse_message(&m).unwrap();
        assert!(!m2.complete);
        assert_eq!(m2.question, Some(("www.xt.com".into(), 1)));
        let got: Vec<(&str, &str, &str)> = m2
            .answers
            .iter()
            .map(|a| (a.name.as_str(), a.rtype.as_str(), a.data.as_str()))
            .collect();
        assert_eq!(got, [("www.xt.com", "A", "66.66.66.66")]);
    }

    #[test]
    fn hostile_counts_and_truncation_do_not_panic() {
        assert!(matches!(
            parse_message(&[0; 5]),
            Err(DnsError::Truncated { len: 5 })
        ));
        let mut msg = response(3, "a.b", 1, &[(1, 1, vec![1, 2, 3, 4])]);
        msg[6] = 0xff;
        msg[7] = 0xff; // 65535 answers claimed
        let m = parse_message(&msg).unwrap();
        assert_eq!(m.question, Some(("a.b".into(), 1)));
        assert!(!m.complete);
        for cut in 0..msg.len() {
            let _ = parse_message(&msg[..cut]);
        }
        let long: Vec<u8> = std::iter::repeat_n([63u8; 64], 10).flatten().collect();
        assert!(
            read_name(&long, 0).is_none(),
            "label data past the end or name over 255"
        );
    }
}
