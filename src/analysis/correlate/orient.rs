//! Flow orientation: which side of a 5-tuple is the server.

use super::capture::Endpoint;
use crate::analysis::packet::tcp_flags;
use std::collections::HashMap;
use std::net::IpAddr;

/// Remembers, per 5-tuple, which side its first packet called the server.
#[derive(Debug, Default)]
pub struct Orient {
    map: HashMap<(u8, IpAddr, u16, IpAddr, u16), bool>,
}

impl Orient {
    /// Returns (server endpoint, packet goes to the server). The first
    /// packet of a flow decides: a SYN's receiver (a SYN-ACK's sender) is
    /// the server; otherwise the side with the well-known (lower) port.
    pub fn of(
        &mut self,
        proto: u8,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
    ) -> (Endpoint, bool) {
        let fwd = (proto, src, sport, dst, dport);
        let rev = (proto, dst, dport, src, sport);
        let to_server = if let Some(&s) = self.map.get(&fwd) {
            s
        } else if let Some(&s) = self.map.get(&rev) {
            !s
        } else {
            let s = if proto == 6 && flags & tcp_flags::SYN != 0 {
                flags & tcp_flags::ACK == 0
            } else {
                dport < 1024 || dport <= sport
            };
            self.map.insert(fwd, s);
            s
        };
        let (ip, port) = if to_server {
            (dst, dport)
        } else {
            (src, sport)
        };
        (Endpoint { ip, port, proto }, to_server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_then_ports_decide() {
        let mut o = Orient::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "1.2.3.4".parse().unwrap());
        // A SYN from the server side of an odd port pair still makes its receiver the server.
        let (ep, to) = o.of(6, a, 8080, b, 50000, tcp_flags::SYN);
        assert_eq!((ep.ip, ep.port, to), (b, 50000, true));
        let (ep, to) = o.of(6, b, 50000, a, 8080, tcp_flags::ACK);
        assert_eq!((ep.port, to), (50000, false));
        // No SYN: the lower port is the server.
        let (ep, to) = o.of(17, b, 443, a, 40000, 0);
        assert_eq!((ep.ip, ep.port, to), (b, 443, false));
    }
}
