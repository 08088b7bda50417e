//! DNS measurements: an A query over UDP (collecting every reply that
//! arrives shortly after the first, as racing injectors send theirs first)
//! and over TCP, with OONI-style failure strings.

use serde::{Deserialize, Serialize};
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, RCODE, TYPE};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long to keep listening for further replies after the first one
/// (default of [`crate::probes::spec::ProbeSpec::race_window_ms`]).
pub const RACE_WINDOW: Duration = Duration::from_millis(250);

/// The result of one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsResult {
    /// Queried name.
    pub name: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Resolver address.
    pub resolver: SocketAddr,
    /// A records of the first reply.
    pub answers: Vec<IpAddr>,
    /// Response code of the first reply (`NoError`, `NameError`, …).
    #[serde(default)]
    pub rcode: Option<String>,
    /// A records of further replies to the same query (UDP: an injector's
    /// forged reply and the genuine one both arrive).
    #[serde(default)]
    pub later_replies: Vec<Vec<IpAddr>>,
    /// OONI failure string (`generic_timeout_error`, `dns_nxdomain_error`,
    /// `dns_refused_error`, `dns_no_answer`, `connection_refused`, …).
    #[serde(default)]
    pub failure: Option<String>,
    /// Time to the first reply (or the failure), in milliseconds.
    pub ms: f64,
}

impl DnsResult {
    fn new(name: &str, transport: &str, resolver: SocketAddr) -> DnsResult {
        DnsResult {
            name: name.into(),
            transport: transport.into(),
            resolver,
            answers: Vec::new(),
            rcode: None,
            later_replies: Vec::new(),
            failure: None,
            ms: 0.0,
        }
    }

    /// Every address of every reply.
    pub fn all_answers(&self) -> Vec<IpAddr> {
        let mut v = self.answers.clone();
        v.extend(self.later_replies.iter().flatten());
        v.sort();
        v.dedup();
        v
    }
}

/// Builds an A query for `name`.
pub fn query_bytes(name: &str, id: u16) -> Result<Vec<u8>, String> {
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        Name::new(name).map_err(|e| e.to_string())?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    q.build_bytes_vec().map_err(|e| e.to_string())
}

/// Reads id, rcode and A records of a reply.
fn parse_reply(b: &[u8]) -> Option<(u16, RCODE, Vec<IpAddr>)> {
    let p = Packet::parse(b).ok()?;
    let ips = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(IpAddr::from(std::net::Ipv4Addr::from(a.address))),
            _ => None,
        })
        .collect();
    Some((p.id(), p.rcode(), ips))
}

fn rcode_failure(rcode: RCODE, answers: &[IpAddr]) -> Option<String> {
    match rcode {
        RCODE::NoError if answers.is_empty() => Some("dns_no_answer".into()),
        RCODE::NoError => None,
        RCODE::NameError => Some("dns_nxdomain_error".into()),
        RCODE::Refused => Some("dns_refused_error".into()),
        RCODE::ServerFailure => Some("dns_server_failure".into()),
        other => Some(format!("dns_{other:?}_error").to_ascii_lowercase()),
    }
}

/// OONI failure string of an I/O error.
pub fn io_failure(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::TimedOut | K::WouldBlock => "generic_timeout_error".into(),
        K::ConnectionRefused => "connection_refused".into(),
        K::ConnectionReset => "connection_reset".into(),
        K::ConnectionAborted => "connection_aborted".into(),
        K::UnexpectedEof => "eof_error".into(),
        K::HostUnreachable => "host_unreachable".into(),
        K::NetworkUnreachable => "network_unreachable".into(),
        _ => match e.raw_os_error() {
            Some(libc::EHOSTUNREACH) => "host_unreachable".into(),
            Some(libc::ENETUNREACH) => "network_unreachable".into(),
            _ => format!("unknown_failure: {e}"),
        },
    }
}

fn apply(r: &mut DnsResult, rcode: RCODE, ips: Vec<IpAddr>) {
    r.failure = rcode_failure(rcode, &ips);
    r.rcode = Some(format!("{rcode:?}"));
    r.answers = ips;
}

/// An A query over UDP; one send and one retry within `timeout`, then
/// [`RACE_WINDOW`] for further replies.
pub fn query_udp(resolver: SocketAddr, name: &str, id: u16, timeout: Duration) -> DnsResult {
    query_udp_within(resolver, name, id, timeout, RACE_WINDOW)
}

/// [`query_udp`] with a chosen window for further replies.
pub fn query_udp_within(
    resolver: SocketAddr,
    name: &str,
    id: u16,
    timeout: Duration,
    race_window: Duration,
) -> DnsResult {
    let mut r = DnsResult::new(name, "udp", resolver);
    let t0 = Instant::now();
    let out = (|| -> std::io::Result<()> {
        let bytes = query_bytes(name, id).map_err(std::io::Error::other)?;
        let bind: SocketAddr = if resolver.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(bind)?;
        s.connect(resolver)?;
        let mut buf = [0u8; 4096];
        s.send(&bytes)?;
        let mut sends = 1;
        let mut first_at: Option<Instant> = None;
        loop {
            let now = t0.elapsed();
            let until = match first_at {
                Some(f) => (f + race_window).saturating_duration_since(Instant::now()),
                None => {
                    if sends == 1 && now >= timeout / 2 {
                        s.send(&bytes)?;
                        sends = 2;
                    }
                    let next = if sends == 1 { timeout / 2 } else { timeout };
                    next.saturating_sub(now)
                }
            };
            if until.is_zero() {
                return match first_at {
                    Some(_) => Ok(()),
                    None => Err(std::io::ErrorKind::TimedOut.into()),
                };
            }
            s.set_read_timeout(Some(until))?;
            match s.recv(&mut buf) {
                Ok(n) => {
                    let Some((rid, rcode, ips)) = parse_reply(&buf[..n]) else {
                        continue;
                    };
                    if rid != id {
                        continue;
                    }
                    if first_at.is_some() {
                        r.later_replies.push(ips);
                    } else {
                        first_at = Some(Instant::now());
                        r.ms = t0.elapsed().as_secs_f64() * 1000.0;
                        apply(&mut r, rcode, ips);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    return match first_at {
                        Some(_) => Ok(()),
                        None => Err(e),
                    };
                }
            }
        }
    })();
    if let Err(e) = out {
        r.failure = Some(io_failure(&e));
        r.ms = t0.elapsed().as_secs_f64() * 1000.0;
    }
    r
}

/// An A query over TCP (RFC 7766 length prefix).
pub fn query_tcp(resolver: SocketAddr, name: &str, id: u16, timeout: Duration) -> DnsResult {
    let mut r = DnsResult::new(name, "tcp", resolver);
    let t0 = Instant::now();
    let out = (|| -> std::io::Result<(RCODE, Vec<IpAddr>)> {
        let bytes = query_bytes(name, id).map_err(std::io::Error::other)?;
        let mut s = TcpStream::connect_timeout(&resolver, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut msg = (bytes.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&bytes);
        s.write_all(&msg)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body)?;
        match parse_reply(&body) {
            Some((rid, rcode, ips)) if rid == id => Ok((rcode, ips)),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "unparsable DNS reply",
            )),
        }
    })();
    r.ms = t0.elapsed().as_secs_f64() * 1000.0;
    match out {
        Ok((rcode, ips)) => apply(&mut r, rcode, ips),
        Err(e) => r.failure = Some(io_failure(&e)),
    }
    r
}

/// A name that should not exist: a random label under `host`.
pub fn random_subdomain(host: &str, seed: u64) -> String {
    // splitmix64 over the seed and the host, so names differ per run/host.
    let mut x = seed
        ^ host.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^= x >> 31;
    format!("mtp{:012x}.{host}", x & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_are_stable_per_seed_and_differ_per_host() {
        let a = random_subdomain("line.naver.jp", 1);
        assert!(a.ends_with(".line.naver.jp") && a.starts_with("mtp"));
        assert_eq!(a, random_subdomain("line.naver.jp", 1));
        assert_ne!(a, random_subdomain("line.naver.jp", 2));
        assert_ne!(a, random_subdomain("kakao.com", 1));
    }

    #[test]
    fn udp_query_collects_racing_replies_and_maps_failures() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let q = Packet::parse(&buf[..n]).unwrap();
            for ip in [[198, 18, 250, 1], [198, 19, 7, 10]] {
                let mut a = q.clone().into_reply();
                a.answers.push(simple_dns::ResourceRecord::new(
                    q.questions[0].qname.clone(),
                    CLASS::IN,
                    60,
                    RData::A(simple_dns::rdata::A {
                        address: u32::from_be_bytes(ip),
                    }),
                ));
                server.send_to(&a.build_bytes_vec().unwrap(), from).unwrap();
            }
        });
        let r = query_udp(addr, "gd2.line.naver.jp", 7, Duration::from_secs(2));
        h.join().unwrap();
        assert_eq!(r.failure, None, "{r:?}");
        assert_eq!(r.answers, vec!["198.18.250.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.later_replies.len(), 1);
        assert_eq!(r.all_answers().len(), 2);
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = query_udp(
            silent.local_addr().unwrap(),
            "a.example",
            8,
            Duration::from_millis(300),
        );
        assert_eq!(r.failure.as_deref(), Some("generic_timeout_error"));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = closed.local_addr().unwrap();
        drop(closed);
        let r = query_tcp(a, "a.example", 9, Duration::from_millis(500));
        assert_eq!(r.failure.as_deref(), Some("connection_refused"));
    }
}
