//! Connection-level measurements: TCP connect, a TLS ClientHello (with the
//! SNI, without, or with a decoy) up to the ServerHello, an HTTP request
//! with a chosen `Host` header, and bulk throughput.
//!
//! The TLS test writes its own ClientHello and stops at the ServerHello:
//! what a censor inspects is the ClientHello, and a raw hello needs no
//! certificate store (so the lab's simulated backends answer it too).
//! Certificate validation is left to OONI-style follow-ups (docs/probes.md).

use super::dns::io_failure;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The User-Agent of every probe request: identifies matador.
pub const USER_AGENT: &str = concat!(
    "matador-probe/",
    env!("CARGO_PKG_VERSION"),
    " (network measurement; docs/probes.md)"
);

/// The result of one TCP connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpResult {
    /// Target.
    pub addr: SocketAddr,
    /// Where the address came from: `dns` (vantage) or `control`.
    pub via: String,
    /// Connected.
    pub ok: bool,
    /// OONI failure string.
    #[serde(default)]
    pub failure: Option<String>,
    /// Milliseconds.
    pub ms: f64,
}

/// Connects to `addr` within `timeout`.
pub fn tcp_connect(addr: SocketAddr, via: &str, timeout: Duration) -> TcpResult {
    let t0 = Instant::now();
    let r = TcpStream::connect_timeout(&addr, timeout);
    TcpResult {
        addr,
        via: via.into(),
        ok: r.is_ok(),
        failure: r.err().map(|e| io_failure(&e)),
        ms: t0.elapsed().as_secs_f64() * 1000.0,
    }
}

/// The result of one TLS handshake attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsResult {
    /// Target.
    pub addr: SocketAddr,
    /// `sni`, `none` or `decoy`.
    pub mode: String,
    /// The SNI sent.
    #[serde(default)]
    pub server_name: Option<String>,
    /// A ServerHello came back.
    pub ok: bool,
    /// OONI failure string (`connection_reset`, `generic_timeout_error`,
    /// `eof_error`, `ssl_alert`, `ssl_invalid_hostname`…).
    #[serde(default)]
    pub failure: Option<String>,
    /// Milliseconds from connect to ServerHello (or failure).
    pub ms: f64,
}

/// A TLS 1.2/1.3-compatible ClientHello record, with `sni` if given.
pub fn client_hello(sni: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let n = name.as_bytes();
        let mut list = vec![0u8];
        list.extend_from_slice(&(n.len() as u16).to_be_bytes());
        list.extend_from_slice(n);
        let mut body = (list.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&list);
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
        ext.extend_from_slice(&body);
    }
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0, 0x0a, 0, 6, 0, 4, 0, 0x1d, 0, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0, 0x0b, 0, 2, 1, 0]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend_from_slice(&[0, 0x0d, 0, 8, 0, 6, 4, 3, 8, 4, 4, 1]);
    // supported_versions: TLS 1.3, 1.2
    ext.extend_from_slice(&[0, 0x2b, 0, 5, 4, 3, 4, 3, 3]);
    // key_share: x25519 with a public value derived from the random
    ext.extend_from_slice(&[0, 0x33, 0, 38, 0, 36, 0, 0x1d, 0, 32]);
    ext.extend_from_slice(&random);
    let mut body = vec![3, 3];
    body.extend_from_slice(&random);
    body.push(32);
    body.extend_from_slice(&random);
    // TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, ECDHE-ECDSA/RSA-AES128-GCM
    let suites: [u16; 4] = [0x1301, 0x1302, 0xc02b, 0xc02f];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// Sends a ClientHello to `addr` and waits for the ServerHello.
pub fn tls_handshake(
    addr: SocketAddr,
    mode: &str,
    sni: Option<&str>,
    timeout: Duration,
    seed: u64,
) -> TlsResult {
    let t0 = Instant::now();
    let mut random = [0u8; 32];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (seed.rotate_left(i as u32 * 7) >> (i % 8)) as u8 ^ i as u8;
    }
    let out = (|| -> std::io::Result<Result<(), String>> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(&client_hello(sni, random))?;
        let mut head = [0u8; 6];
        s.read_exact(&mut head)?;
        Ok(match (head[0], head[5]) {
            (0x16, 2) => Ok(()),
            (0x15, _) => Err("ssl_alert".to_string()),
            _ => Err("ssl_unexpected_reply".to_string()),
        })
    })();
    let (ok, failure) = match out {
        Ok(Ok(())) => (true, None),
        Ok(Err(f)) => (false, Some(f)),
        Err(e) => (false, Some(io_failure(&e))),
    };
    TlsResult {
        addr,
        mode: mode.into(),
        server_name: sni.map(str::to_string),
        ok,
        failure,
        ms: t0.elapsed().as_secs_f64() * 1000.0,
    }
}

/// The result of one HTTP request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResult {
    /// Target.
    pub addr: SocketAddr,
    /// `Host` header sent.
    pub host: String,
    /// Status code of the response, if one came.
    #[serde(default)]
    pub status: Option<u16>,
    /// OONI failure string (`connection_reset` for an injected RST).
    #[serde(default)]
    pub failure: Option<String>,
    /// Milliseconds.
    pub ms: f64,
}

impl HttpResult {
    /// The request was answered.
    pub fn ok(&self) -> bool {
        self.status.is_some()
    }

    /// The request was answered by a reset.
    pub fn reset(&self) -> bool {
        self.failure.as_deref() == Some("connection_reset")
    }
}

/// `GET / HTTP/1.1` to `addr` with `Host: host` and matador's User-Agent.
pub fn http_host(addr: SocketAddr, host: &str, timeout: Duration) -> HttpResult {
    let t0 = Instant::now();
    let out = (|| -> std::io::Result<Option<u16>> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while buf.len() < 8192 && !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        Ok(line
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|c| c.parse().ok()))
    })();
    let (status, failure) = match out {
        Ok(Some(s)) => (Some(s), None),
        Ok(None) => (None, Some("http_invalid_response".to_string())),
        Err(e) => (None, Some(io_failure(&e))),
    };
    HttpResult {
        addr,
        host: host.into(),
        status,
        failure,
        ms: t0.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Throughput from a bulk source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Source.
    pub addr: SocketAddr,
    /// Bytes received.
    pub bytes: u64,
    /// Seconds from the first to the last byte.
    pub secs: f64,
    /// kbit/s.
    pub kbit_s: f64,
    /// OONI failure string.
    #[serde(default)]
    pub failure: Option<String>,
}

/// Reads up to `want` bytes from `addr` (a source that sends on connect),
/// for at most `limit`.
pub fn bulk(addr: SocketAddr, want: u64, timeout: Duration, limit: Duration) -> Throughput {
    let mut got = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let out = (|| -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let t0 = Instant::now();
        let mut buf = vec![0u8; 65536];
        while got < want && t0.elapsed() < limit {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            got += n as u64;
        }
        Ok(())
    })();
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    Throughput {
        addr,
        bytes: got,
        secs,
        kbit_s: if secs > 0.0 {
            got as f64 * 8.0 / 1000.0 / secs
        } else {
            0.0
        },
        failure: out.err().map(|e| io_failure(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_parses_and_carries_the_sni() {
        for sni in [Some("gd2.line.naver.jp"), None] {
            let rec = client_hello(sni, [7; 32]);
            let (_, recs) = tls_parser::parse_tls_plaintext(&rec).unwrap();
            match &recs.msg[0] {
                tls_parser::TlsMessage::Handshake(
                    tls_parser::TlsMessageHandshake::ClientHello(ch),
                ) => {
                    let (_, exts) =
                        tls_parser::parse_tls_client_hello_extensions(ch.ext.unwrap()).unwrap();
                    let names: Vec<_> = exts
                        .iter()
                        .filter_map(|e| match e {
                            tls_parser::TlsExtension::SNI(v) => {
                                Some(String::from_utf8_lossy(v[0].1).into_owned())
                            }
                            _ => None,
                        })
                        .collect();
                    assert_eq!(names.first().map(String::as_str), sni);
                }
                m => panic!("not a ClientHello: {m:?}"),
            }
        }
    }

    #[test]
    fn http_reports_status_and_reset() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1024];
            let n = s.read(&mut b).unwrap();
            let req = String::from_utf8_lossy(&b[..n]).into_owned();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            // Second connection: reset (linger 0).
            let (s2, _) = l.accept().unwrap();
            socket2::SockRef::from(&s2)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(s2);
            req
        });
        let r = http_host(addr, "line.naver.jp", Duration::from_secs(2));
        assert_eq!(r.status, Some(204), "{r:?}");
        let r2 = http_host(addr, "x", Duration::from_secs(2));
        let req = h.join().unwrap();
        assert!(req.contains("Host: line.naver.jp\r\n"));
        assert!(req.contains("User-Agent: matador-probe/"));
        assert!(r2.reset(), "{r2:?}");
    }
}
