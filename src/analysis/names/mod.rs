//! Server names seen in a capture: TLS ClientHello SNI/ALPN (TCP), QUIC
//! Initial ClientHellos (decrypted with the version's initial keys), HTTP/1.x
//! request lines and Host headers, DNS-over-HTTPS recognition and WeChat's
//! HTTP DNS (`newgetdns`).
//!
//! [`NameExtractor`] keeps a small state per TCP direction only while it can
//! still learn something: a ClientHello being reassembled (dropped once
//! parsed or after [`tls::MAX_HELLO`] bytes), an HTTP request head, or the
//! response to a `newgetdns` request. Everything else is a tombstone.

pub mod http;
pub mod quic;
pub(crate) mod stream;
pub mod tls;
pub mod wechat;

use crate::analysis::dns::encrypted_dns_record;
use crate::analysis::model::{DnsRecord, HttpRecord, TlsRecord};
use crate::analysis::packet::{Packet, PacketSink, Transport, tcp_flags};
use http::Head;
use stream::{DirKey, FastMap, Push, StreamBuf};
use tls::{HelloInfo, Progress};

/// What [`NameExtractor::finish`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameResults {
    /// TLS and QUIC ClientHellos, in frame order.
    pub tls: Vec<TlsRecord>,
    /// Plain HTTP requests, in frame order.
    pub http: Vec<HttpRecord>,
    /// DNS learnt outside port 53: WeChat HTTP DNS answers, DoH/DoQ/DoT-by-ALPN connections.
    pub dns: Vec<DnsRecord>,
}

/// Public DNS-over-HTTPS resolver names (SNI or Host) recognised as DoH.
pub const DOH_SERVERS: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "dns64.dns.google",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "chrome.cloudflare-dns.com",
    "security.cloudflare-dns.com",
    "family.cloudflare-dns.com",
    "1dot1dot1dot1.cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "dns9.quad9.net",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "doh.opendns.com",
    "doh.familyshield.opendns.com",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "unfiltered.adguard-dns.com",
    "family.adguard-dns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "doh.pub",
    "doh.360.cn",
    "dns.alidns.com",
    "dns.twnic.tw",
    "doh.dns.sb",
    "dns.controld.com",
    "freedns.controld.com",
    "doh.mullvad.net",
    "dns.mullvad.net",
    "dns.switch.ch",
    "dns.digitale-gesellschaft.ch",
    "doh.libredns.gr",
    "ordns.he.net",
    "doh.applied-privacy.net",
    "dns0.eu",
];

/// True for a known DoH resolver name (exact, case-insensitive; NextDNS
/// profile names `*.dns.nextdns.io` too).
pub fn is_doh_server(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    DOH_SERVERS.contains(&n.as_str()) || n.ends_with(".dns.nextdns.io")
}

/// Buffer for a newgetdns response (head + compressed body).
const RESPONSE_LIMIT: usize = 512 * 1024;
/// Requests parsed per connection before we stop looking.
const MAX_REQUESTS: u16 = 64;
/// Segments of a direction looked at for a late ClientHello (STARTTLS).
const PROBE_SEGMENTS: u8 = 8;
/// TCP directions tracked at once.
const MAX_TCP: usize = 65_536;
/// Every this many seconds of capture time, finished (tombstone) states are
/// forgotten, so memory follows the number of recent flows, not the file size.
pub(crate) const SWEEP_SECS: i64 = 300;

enum TcpState {
    /// ClientHello reassembly.
    Tls(StreamBuf),
    /// HTTP client side: buffered bytes, body bytes still to skip, requests seen.
    Http {
        buf: StreamBuf,
        skip: usize,
        requests: u16,
    },
    /// Server side of a newgetdns request.
    WechatResponse(StreamBuf),
    /// Not TLS or HTTP so far: segments seen.
    Probing(u8),
    /// Nothing more to learn from this direction.
    Done,
}

/// Extracts TLS/QUIC/HTTP names and non-port-53 DNS from a capture.
#[derive(Default)]
pub struct NameExtractor {
    tcp: FastMap<DirKey, TcpState>,
    quic: quic::QuicTracker,
    out: NameResults,
    next_sweep: Option<i64>,
}

impl NameExtractor {
    /// A new extractor with no state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The records, each list in frame order.
    pub fn finish(mut self) -> NameResults {
        self.out.tls.sort_by_key(|r| r.frame);
        self.out.http.sort_by_key(|r| r.frame);
        self.out.dns.sort_by_key(|r| r.frame);
        self.out
    }

    /// True when records were produced since the last [`NameExtractor::take`].
    pub fn has_records(&self) -> bool {
        !(self.out.tls.is_empty() && self.out.http.is_empty() && self.out.dns.is_empty())
    }

    /// Moves the records produced so far out, in the order they were found.
    pub fn take(&mut self) -> NameResults {
        std::mem::take(&mut self.out)
    }

    fn hello(&mut self, pkt: &Packet<'_>, dir: DirKey, info: HelloInfo, proto: &str) {
        if let Some(sni) = &info.sni
            && is_doh_server(sni)
        {
            self.out.dns.push(encrypted_dns_record(
                pkt.frame,
                pkt.ts,
                "doh",
                dir.dst,
                dir.src,
                sni.clone(),
            ));
        } else if info.alpn.iter().any(|a| a == "doq") {
            let name = info.sni.clone().unwrap_or_default();
            self.out.dns.push(encrypted_dns_record(
                pkt.frame, pkt.ts, "doq", dir.dst, dir.src, name,
            ));
        } else if info.alpn.iter().any(|a| a == "dot")
            && dir.dport != crate::analysis::dns::DOT_PORT
        {
            let name = info.sni.clone().unwrap_or_default();
            self.out.dns.push(encrypted_dns_record(
                pkt.frame, pkt.ts, "dot", dir.dst, dir.src, name,
            ));
        }
        self.out.tls.push(TlsRecord {
            frame: pkt.frame,
            ts: pkt.ts,
            src: dir.src,
            sport: dir.sport,
            dst: dir.dst,
            dport: dir.dport,
            sni: info.sni,
            alpn: info.alpn,
            proto: proto.to_string(),
        });
    }

    fn tcp(&mut self, pkt: &Packet<'_>, dir: DirKey, seq: u32, flags: u8, payload: &[u8]) {
        if flags & tcp_flags::SYN != 0 {
            self.tcp.remove(&dir);
        }
        // Most segments belong to directions already done with: one
        // lookup and out (FIN/RST still handled below).
        let done = !payload.is_empty() && matches!(self.tcp.get(&dir), Some(TcpState::Done));
        if done && flags & (tcp_flags::FIN | tcp_flags::RST) == 0 {
            return;
        }
        if !payload.is_empty() && !done {
            // A direction that started with something else (XMPP, SMTP…)
            // may switch to TLS (STARTTLS) within its first few segments.
            if let Some(TcpState::Probing(n)) = self.tcp.get_mut(&dir) {
                if tls::looks_like_handshake_record(payload) || http::looks_like_request(payload) {
                    self.tcp.remove(&dir);
                } else {
                    *n += 1;
                    if *n >= PROBE_SEGMENTS {
                        self.tcp.insert(dir, TcpState::Done);
                    }
                    return;
                }
            }
            if !self.tcp.contains_key(&dir) {
                let tls_limit = tls::MAX_HELLO + 1024;
                let tls = tls::looks_like_handshake_record(payload);
                // Most handshakes are decided by their first segment (a
                // whole ClientHello, or a ServerHello): then no buffer.
                let first = if tls && payload.len() <= tls_limit {
                    tls::client_hello_from_records(payload)
                } else {
                    Progress::NeedMore
                };
                self.make_room();
                match first {
                    Progress::NeedMore => {
                        let state = if tls {
                            TcpState::Tls(StreamBuf::new(tls_limit))
                        } else if http::looks_like_request(payload) {
                            TcpState::Http {
                                buf: StreamBuf::new(http::MAX_HEAD + 64 * 1024),
                                skip: 0,
                                requests: 0,
                            }
                        } else {
                            TcpState::Probing(1)
                        };
                        self.tcp.insert(dir, state);
                        self.segment(pkt, dir, seq, payload);
                    }
                    Progress::NotClientHello => {
                        self.tcp.insert(dir, TcpState::Done);
                    }
                    Progress::Done(info) => {
                        self.tcp.insert(dir, TcpState::Done);
                        self.hello(pkt, dir, info, "tls");
                    }
                }
            } else {
                self.segment(pkt, dir, seq, payload);
            }
        }
        if flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
            if let Some(TcpState::WechatResponse(buf)) = self.tcp.remove(&dir) {
                self.wechat_body(pkt, dir, &buf.buf, true);
            }
            if flags & tcp_flags::RST != 0 {
                self.tcp.remove(&dir.reversed());
            }
        }
    }

    /// Periodic clean-up by capture time: drop tombstones and idle HTTP
    /// states (a later request re-creates them); keep reassembly in progress.
    fn sweep(&mut self, now: i64) {
        let due = *self.next_sweep.get_or_insert(now + SWEEP_SECS);
        if now >= due {
            self.tcp
                .retain(|_, s| matches!(s, TcpState::Tls(_) | TcpState::WechatResponse(_)));
            self.quic.sweep();
            self.next_sweep = Some(now + SWEEP_SECS);
        }
    }

    fn make_room(&mut self) {
        if self.tcp.len() >= MAX_TCP {
            self.tcp
                .retain(|_, s| !matches!(s, TcpState::Done | TcpState::Probing(_)));
            if self.tcp.len() >= MAX_TCP {
                self.tcp.clear();
            }
        }
    }

    fn segment(&mut self, pkt: &Packet<'_>, dir: DirKey, seq: u32, payload: &[u8]) {
        let Some(state) = self.tcp.get_mut(&dir) else {
            return;
        };
        let buf = match state {
            TcpState::Done | TcpState::Probing(_) => return,
            TcpState::Tls(b) | TcpState::Http { buf: b, .. } | TcpState::WechatResponse(b) => b,
        };
        match buf.push(seq, payload) {
            Push::Nothing => return,
            Push::Broken => {
                let old = std::mem::replace(state, TcpState::Done);
                if let TcpState::WechatResponse(b) = old {
                    self.wechat_body(pkt, dir, &b.buf, true);
                }
                return;
            }
            Push::Appended => {}
        }
        match state {
            TcpState::Tls(b) => match tls::client_hello_from_records(&b.buf) {
                Progress::NeedMore => {}
                Progress::NotClientHello => *state = TcpState::Done,
                Progress::Done(info) => {
                    *state = TcpState::Done;
                    self.hello(pkt, dir, info, "tls");
                }
            },
            TcpState::Http { .. } => self.http_requests(pkt, dir),
            TcpState::WechatResponse(b) => {
                let bytes = std::mem::take(&mut b.buf);
                if self.wechat_body(pkt, dir, &bytes, false) {
                    self.tcp.insert(dir, TcpState::Done);
                } else if let Some(TcpState::WechatResponse(b)) = self.tcp.get_mut(&dir) {
                    b.buf = bytes;
                }
            }
            TcpState::Done | TcpState::Probing(_) => {}
        }
    }

    /// Parses every complete request head buffered for `dir`.
    fn http_requests(&mut self, pkt: &Packet<'_>, dir: DirKey) {
        loop {
            let Some(TcpState::Http {
                buf,
                skip,
                requests,
            }) = self.tcp.get_mut(&dir)
            else {
                return;
            };
            if *skip > 0 {
                let n = (*skip).min(buf.buf.len());
                buf.buf.drain(..n);
                *skip -= n;
                if *skip > 0 {
                    return;
                }
            }
            if buf.buf.is_empty() {
                return;
            }
            let head = match http::parse_request(&buf.buf) {
                Head::NeedMore => return,
                Head::Invalid => {
                    self.tcp.insert(dir, TcpState::Done);
                    return;
                }
                Head::Done(h) => h,
            };
            buf.buf.drain(..head.head_len);
            *skip = head.content_length.unwrap_or(0);
            *requests += 1;
            let exhausted = *requests >= MAX_REQUESTS;
            if exhausted {
                self.tcp.insert(dir, TcpState::Done);
            }
            let host_or_path_doh = head.host.as_deref().is_some_and(is_doh_server)
                || head.path.starts_with("/dns-query")
                || head.content_type.as_deref() == Some("application/dns-message");
            if host_or_path_doh {
                let name = head.host.clone().unwrap_or_default();
                self.out.dns.push(encrypted_dns_record(
                    pkt.frame, pkt.ts, "doh", dir.dst, dir.src, name,
                ));
            }
            if wechat::is_newgetdns(&head.path) {
                self.tcp.insert(
                    dir.reversed(),
                    TcpState::WechatResponse(StreamBuf::new(RESPONSE_LIMIT)),
                );
            }
            self.out.http.push(HttpRecord {
                frame: pkt.frame,
                ts: pkt.ts,
                src: dir.src,
                dst: dir.dst,
                dport: dir.dport,
                method: head.method,
                path: head.path,
                host: head.host,
            });
            if exhausted {
                return;
            }
        }
    }

    /// Tries to decode a newgetdns response from `bytes` (server → client
    /// direction `dir`). Returns true when done with it (decoded or hopeless).
    /// `closing`: the stream ended, decode whatever body there is.
    fn wechat_body(&mut self, pkt: &Packet<'_>, dir: DirKey, bytes: &[u8], closing: bool) -> bool {
        let head = match http::parse_response(bytes) {
            Head::NeedMore => return closing,
            Head::Invalid => return true,
            Head::Done(h) => h,
        };
        let raw = &bytes[head.head_len..];
        let body = if head.chunked {
            match http::dechunk(raw, RESPONSE_LIMIT) {
                Some(b) => b,
                None if closing => return true,
                None => return false,
            }
        } else {
            match head.content_length {
                Some(n) if raw.len() >= n => raw[..n].to_vec(),
                _ if closing => raw.to_vec(),
                _ => return false,
            }
        };
        if body.is_empty() {
            return true;
        }
        if let Ok(xml) = wechat::decompress(&body)
            && let Ok(entries) = wechat::parse_domain_list(&xml)
        {
            let recs = wechat::records(&entries, pkt.frame, pkt.ts, dir.src, dir.dst);
            self.out.dns.extend(recs);
        }
        true
    }
}

impl PacketSink for NameExtractor {
    fn packet(&mut self, pkt: &Packet<'_>) {
        let Some(dir) = DirKey::of(pkt) else {
            return;
        };
        self.sweep(pkt.ts.secs);
        match pkt.transport {
            Transport::Tcp {
                seq,
                flags,
                payload,
                ..
            } => self.tcp(pkt, dir, seq, flags, payload),
            Transport::Udp { payload, .. } => {
                if let Some(info) = self.quic.datagram(dir, payload) {
                    self.hello(pkt, dir, info, "quic");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
