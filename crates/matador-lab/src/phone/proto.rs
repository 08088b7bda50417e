//! The wire format between simulated apps and their lab backends: a TLS-like
//! exchange (a parseable ClientHello with SNI, ServerHello, ChangeCipherSpec,
//! a certificate-sized record) followed by application-data records whose
//! payload is an obfuscated, padded JSON frame. Sizes resemble real TLS 1.3
//! messaging traffic; content is not readable on the wire.

use serde::{Deserialize, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A frame inside application data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Frame {
    /// Client login with its account.
    Hello {
        /// Account.
        account: String,
    },
    /// Client → server: a chat message.
    Msg {
        /// Sender's message id.
        id: u64,
        /// Recipient account.
        to: String,
        /// Text.
        text: String,
    },
    /// Server → client: message accepted.
    Ack {
        /// Message id.
        id: u64,
    },
    /// Server → client: an incoming message.
    Deliver {
        /// Sender account.
        from: String,
        /// Text.
        text: String,
        /// The backend's delivery number: the client confirms it with
        /// [`Frame::Received`]; unconfirmed deliveries are sent again when
        /// the client logs in anew (a message written into a connection
        /// that died on the way is not lost).
        #[serde(default)]
        seq: u64,
    },
    /// Client → server: the delivery `seq` arrived.
    Received {
        /// Delivery number.
        seq: u64,
    },
    /// Keepalive.
    Ping,
    /// Keepalive answer.
    Pong,
}

fn keystream(nonce: u64, len: usize) -> Vec<u8> {
    let mut x = nonce ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Wraps bytes in a TLS record.
pub fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 3, if kind == 0x16 { 1 } else { 3 }];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// Encodes a frame as one application-data record.
pub fn encode_frame(f: &Frame, nonce: u64) -> Vec<u8> {
    let mut json = serde_json::to_vec(f).unwrap_or_default();
    // Pad to a block size, like an AEAD record with padding.
    let target = json.len().div_ceil(64) * 64 + 32;
    json.push(b'\n');
    json.resize(target, b' ');
    let ks = keystream(nonce, json.len());
    let mut body = nonce.to_be_bytes().to_vec();
    body.extend(json.iter().zip(ks).map(|(a, b)| a ^ b));
    body.extend_from_slice(&keystream(!nonce, 16));
    record(0x17, &body)
}

/// Decodes an application-data record body into a frame.
pub fn decode_frame(body: &[u8]) -> Option<Frame> {
    if body.len() < 8 + 16 {
        return None;
    }
    let nonce = u64::from_be_bytes(body[..8].try_into().ok()?);
    let data = &body[8..body.len() - 16];
    let plain: Vec<u8> = data
        .iter()
        .zip(keystream(nonce, data.len()))
        .map(|(a, b)| a ^ b)
        .collect();
    let end = plain.iter().position(|&b| b == b'\n')?;
    serde_json::from_slice(&plain[..end]).ok()
}

fn filler(seed: u64, len: usize) -> Vec<u8> {
    keystream(seed.wrapping_mul(31).wrapping_add(7), len)
}

/// A TLS 1.3-style ClientHello record with SNI, padded to 517 bytes.
pub fn client_hello(sni: &str, seed: u64) -> Vec<u8> {
    let mut ext = Vec::new();
    let push_ext = |ext: &mut Vec<u8>, kind: u16, data: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    };
    let name = sni.as_bytes();
    let mut sn = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sn.push(0);
    sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sn.extend_from_slice(name);
    push_ext(&mut ext, 0x0000, &sn);
    push_ext(&mut ext, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]);
    push_ext(&mut ext, 0x000b, &[1, 0]);
    push_ext(&mut ext, 0x000d, &[0, 8, 4, 3, 8, 4, 4, 1, 5, 3]);
    push_ext(&mut ext, 0x002b, &[4, 3, 4, 3, 3]);
    let mut ks = vec![0, 38, 0, 0x1d, 0, 32];
    ks.extend_from_slice(&filler(seed ^ 1, 32));
    push_ext(&mut ext, 0x0033, &ks);
    let mut body = vec![3, 3];
    body.extend_from_slice(&filler(seed, 32));
    body.push(32);
    body.extend_from_slice(&filler(seed ^ 2, 32));
    let suites: [u16; 9] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
    ];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    // Padding extension up to a 517-byte record, like Chrome/BoringSSL.
    let fixed = 5 + 4 + body.len() + 2 + ext.len() + 4;
    let pad = 517usize.saturating_sub(fixed);
    push_ext(&mut ext, 0x0015, &vec![0u8; pad]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    record(0x16, &hs)
}

/// ServerHello + ChangeCipherSpec + a certificate-sized encrypted record.
pub fn server_flight(seed: u64, cert_len: usize) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&filler(seed, 32));
    body.push(32);
    body.extend_from_slice(&filler(seed ^ 3, 32));
    body.extend_from_slice(&[0x13, 0x01, 0]);
    let mut ext = vec![0, 0x2b, 0, 2, 3, 4, 0, 0x33, 0, 36, 0, 0x1d, 0, 32];
    ext.extend_from_slice(&filler(seed ^ 4, 32));
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![2];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut out = record(0x16, &hs);
    out[2] = 3;
    out.extend_from_slice(&record(0x14, &[1]));
    out.extend_from_slice(&record(0x17, &filler(seed ^ 5, cert_len)));
    out
}

/// The client's CCS + Finished.
pub fn client_finished(seed: u64) -> Vec<u8> {
    let mut out = record(0x14, &[1]);
    out.extend_from_slice(&record(0x17, &filler(seed ^ 6, 53)));
    out
}

/// Reads one TLS record: (content type, body).
pub async fn read_record<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 5];
    r.read_exact(&mut h).await?;
    if !(0x14..=0x17).contains(&h[0]) || h[1] != 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a TLS record",
        ));
    }
    let len = u16::from_be_bytes([h[3], h[4]]) as usize;
    if len > 16384 + 256 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "TLS record too long",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok((h[0], body))
}

/// Client side of the handshake.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    sni: &str,
    seed: u64,
) -> io::Result<()> {
    s.write_all(&client_hello(sni, seed)).await?;
    // ServerHello, CCS, encrypted flight.
    for want in [0x16u8, 0x14, 0x17] {
        let (kind, _) = read_record(s).await?;
        if kind != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected TLS record in handshake",
            ));
        }
    }
    s.write_all(&client_finished(seed)).await
}

/// Server side of the handshake, after the ClientHello record was read.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seed: u64,
) -> io::Result<()> {
    s.write_all(&server_flight(seed, 2400 + (seed % 1200) as usize))
        .await?;
    for want in [0x14u8, 0x17] {
        let (kind, _) = read_record(s).await?;
        if kind != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected TLS record in handshake",
            ));
        }
    }
    Ok(())
}

/// Extracts the SNI from a ClientHello record body (for backend logs).
pub fn sni_of(hello: &[u8]) -> Option<String> {
    // hs type(1) len(3) version(2) random(32) sid
    let mut i = 4 + 2 + 32;
    let sid = *hello.get(i)? as usize;
    i += 1 + sid;
    let cs = u16::from_be_bytes([*hello.get(i)?, *hello.get(i + 1)?]) as usize;
    i += 2 + cs;
    let comp = *hello.get(i)? as usize;
    i += 1 + comp + 2;
    while i + 4 <= hello.len() {
        let kind = u16::from_be_bytes([hello[i], hello[i + 1]]);
        let len = u16::from_be_bytes([hello[i + 2], hello[i + 3]]) as usize;
        if kind == 0 {
            let n = u16::from_be_bytes([*hello.get(i + 7)?, *hello.get(i + 8)?]) as usize;
            return String::from_utf8(hello.get(i + 9..i + 9 + n)?.to_vec()).ok();
        }
        i += 4 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_parses_with_tls_parser() {
        let rec = client_hello("g.whatsapp.net", 42);
        assert_eq!(rec.len(), 517);
        let (_, plain) = tls_parser::parse_tls_plaintext(&rec).unwrap();
        let tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)) =
            &plain.msg[0]
        else {
            panic!("not a ClientHello")
        };
        let (_, exts) = tls_parser::parse_tls_client_hello_extensions(ch.ext.unwrap()).unwrap();
        assert!(
            exts.iter().any(
                |e| matches!(e, tls_parser::TlsExtension::SNI(v) if v[0].1 == b"g.whatsapp.net")
            )
        );
        assert_eq!(sni_of(&rec[5..]).as_deref(), Some("g.whatsapp.net"));
    }

    #[test]
    fn frames_round_trip_and_hide_text() {
        let f = Frame::Msg {
            id: 3,
            to: "+49".into(),
            text: "secret $(x) ü".into(),
        };
        let rec = encode_frame(&f, 99);
        assert!(!rec.windows(6).any(|w| w == b"secret"));
        assert_eq!(decode_frame(&rec[5..]), Some(f));
        assert_eq!(decode_frame(&[1, 2, 3]), None);
    }
}
