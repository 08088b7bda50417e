//! Targets of a measurement: the identified app servers (application path,
//! probed in-protocol) and the other node (direct network path).

use std::net::IpAddr;

use crate::analysis::model::ServerRecord;

use super::engine::Target;
use super::model::Proto;

/// One target per server address from the analysis' server records, probed
/// with the server's own protocol and port (in-protocol). When an address
/// was seen with several ports, a TCP one is preferred: a SYN is answered by
/// every TCP server (SYN-ACK or RST), while a UDP service (QUIC, STUN)
/// ignores a foreign datagram and the last hop would stay silent.
/// Order: first appearance.
pub fn application_targets(servers: &[ServerRecord]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for s in servers {
        let proto = if s.proto.eq_ignore_ascii_case("udp") {
            Proto::Udp
        } else {
            Proto::Tcp
        };
        let ip = s.ip.to_canonical();
        let target = Target {
            addr: ip,
            name: s.names.first().cloned(),
            proto: Some(proto),
            port: Some(s.port),
            paris_id: None,
        };
        match out.iter_mut().find(|t| t.addr == ip) {
            Some(t) if t.proto == Some(Proto::Udp) && proto == Proto::Tcp => *t = target,
            Some(_) => {}
            None => out.push(target),
        }
    }
    out
}

/// The direct-path target: the other node, probed with `proto` (ICMP
/// Paris by default in campaigns: nodes answer echo requests).
pub fn direct_target(other_node: IpAddr, proto: Proto) -> Target {
    Target {
        proto: Some(proto),
        ..Target::addr(other_node.to_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, port: u16, proto: &str, name: &str) -> ServerRecord {
        ServerRecord {
            app: "whatsapp".into(),
            ip: ip.parse().unwrap(),
            port,
            proto: proto.into(),
            names: vec![name.into()],
            evidence: Vec::new(),
            role: None,
        }
    }

    #[test]
    fn one_in_protocol_target_per_address_tcp_preferred() {
        let t = application_targets(&[
            rec("198.18.20.1", 3478, "udp", "stun.example"),
            rec("198.18.20.2", 5222, "tcp", "chat.example"),
            rec("198.18.20.1", 443, "tcp", "e1.example"),
            rec("198.18.20.2", 443, "tcp", "other.example"),
        ]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].addr, "198.18.20.1".parse::<IpAddr>().unwrap());
        assert_eq!((t[0].proto, t[0].port), (Some(Proto::Tcp), Some(443)));
        assert_eq!(t[0].name.as_deref(), Some("e1.example"));
        assert_eq!((t[1].proto, t[1].port), (Some(Proto::Tcp), Some(5222)));
        let d = direct_target("::ffff:198.18.30.1".parse().unwrap(), Proto::Icmp);
        assert_eq!(d.addr, "198.18.30.1".parse::<IpAddr>().unwrap());
    }
}
