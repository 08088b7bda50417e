//! A phone's connection to a host, turned into frames: TCP with sequence
//! numbers, segmentation at the MSS and ACKs; QUIC and plain UDP as
//! datagrams of at most 1200/1350 bytes.

use crate::model::{Carrier, Host};
use crate::pcap::{Frame, L4};
use crate::rng::Rng;
use std::net::IpAddr;

const TCP_MSS: u64 = 1380;
const QUIC_MAX: u64 = 1200;
const UDP_MAX: u64 = 1350;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// One connection between a phone and a host.
#[derive(Debug, Clone)]
pub struct Conn {
    phone: IpAddr,
    port: u16,
    host: Host,
    seq_out: u32,
    seq_in: u32,
    /// One-way network delay between the capture point and the host.
    rtt: f64,
}

impl Conn {
    /// A connection from an ephemeral port of `phone`.
    pub fn new(phone: IpAddr, host: Host, rng: &mut Rng) -> Conn {
        Conn {
            phone,
            port: rng.int(32768, 60999) as u16,
            host,
            seq_out: rng.next_u64() as u32,
            seq_in: rng.next_u64() as u32,
            rtt: rng.uniform(0.02, 0.25),
        }
    }

    /// The round trip to the host, seconds.
    pub fn rtt(&self) -> f64 {
        self.rtt
    }

    fn frame(&self, t: f64, to_server: bool, l4: L4, payload: Vec<u8>) -> Frame {
        let (src, sport, dst, dport) = if to_server {
            (self.phone, self.port, self.host.ip, self.host.port)
        } else {
            (self.host.ip, self.host.port, self.phone, self.port)
        };
        Frame {
            t,
            src,
            sport,
            dst,
            dport,
            l4,
            payload,
        }
    }

    fn tcp(&mut self, t: f64, to_server: bool, flags: u8, payload: Vec<u8>) -> Frame {
        let (seq, ack) = if to_server {
            (self.seq_out, self.seq_in)
        } else {
            (self.seq_in, self.seq_out)
        };
        let n = payload.len() as u32 + u32::from(flags & SYN != 0);
        if to_server {
            self.seq_out = self.seq_out.wrapping_add(n);
        } else {
            self.seq_in = self.seq_in.wrapping_add(n);
        }
        self.frame(t, to_server, L4::Tcp { flags, seq, ack }, payload)
    }

    /// The opening of the connection at `t`: TCP three-way handshake, or a
    /// QUIC Initial exchange (padded to 1200 bytes, RFC 9000 §14.1).
    pub fn open(&mut self, t: f64, rng: &mut Rng, out: &mut Vec<Frame>) {
        match self.host.carrier {
            Carrier::Tcp => {
                out.push(self.tcp(t, true, SYN, Vec::new()));
                out.push(self.tcp(t + self.rtt, false, SYN | ACK, Vec::new()));
                out.push(self.tcp(t + self.rtt + 0.0002, true, ACK, Vec::new()));
            }
            Carrier::Quic => {
                let mut hello = payload(rng, 1200);
                hello[0] = 0xc3;
                hello[1..5].copy_from_slice(&1u32.to_be_bytes());
                out.push(self.frame(t, true, L4::Udp, hello.clone()));
                hello[0] = 0xc1;
                out.push(self.frame(t + self.rtt, false, L4::Udp, hello));
            }
            Carrier::Udp => {}
        }
    }

    /// `n` payload bytes in one direction starting at `t` (segmented, a few
    /// hundred microseconds apart), with the peer's ACK for TCP.
    pub fn data(&mut self, t: f64, to_server: bool, n: u64, rng: &mut Rng, out: &mut Vec<Frame>) {
        let max = match self.host.carrier {
            Carrier::Tcp => TCP_MSS,
            Carrier::Quic => QUIC_MAX,
            Carrier::Udp => UDP_MAX,
        };
        let mut left = n.max(1);
        let mut at = t;
        while left > 0 {
            let k = left.min(max);
            left -= k;
            let mut p = payload(rng, k as usize);
            match self.host.carrier {
                Carrier::Tcp => {
                    if p.len() >= 5 {
                        p[..3].copy_from_slice(&[0x17, 0x03, 0x03]);
                        p[3..5].copy_from_slice(&((k - 5) as u16).to_be_bytes());
                    }
                    let f = self.tcp(at, to_server, ACK | PSH, p);
                    out.push(f);
                }
                Carrier::Quic => {
                    p[0] = 0x40 | (p[0] & 0x3f);
                    out.push(self.frame(at, to_server, L4::Udp, p));
                }
                Carrier::Udp => out.push(self.frame(at, to_server, L4::Udp, p)),
            }
            at += rng.uniform(0.0001, 0.0008);
        }
        if self.host.carrier == Carrier::Tcp {
            let f = self.tcp(at + self.rtt, !to_server, ACK, Vec::new());
            out.push(f);
        }
    }
}

fn payload(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(n);
    v
}
