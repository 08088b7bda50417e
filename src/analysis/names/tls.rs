//! TLS ClientHello: server name (SNI) and ALPN, from TLS records on TCP or
//! from a raw handshake message (QUIC CRYPTO stream).
//!
//! Record and handshake framing is walked here (a ClientHello may span
//! several records and TCP segments); the ClientHello body and its SNI/ALPN
//! extensions are decoded with the `tls-parser` crate. Each extension is
//! handed to the crate on its own, so one malformed or unknown extension
//! cannot hide the others.

use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake};

/// A ClientHello handshake message may not claim more than this (real ones
/// are below 2 KiB; post-quantum key shares and padding stay far under it).
pub const MAX_HELLO: usize = 64 * 1024;

/// What a ClientHello tells about the server the client wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelloInfo {
    /// Server name indication (host_name type), if present.
    pub sni: Option<String>,
    /// ALPN protocol ids offered, in order.
    pub alpn: Vec<String>,
}

/// Outcome of looking at the bytes collected so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not enough bytes yet.
    NeedMore,
    /// A complete ClientHello.
    Done(HelloInfo),
    /// Not a ClientHello (another handshake message, not TLS, malformed or too large): give up.
    NotClientHello,
}

/// True when a TCP payload starts like a TLS handshake record
/// (content type 22, record version 3.0–3.4).
pub fn looks_like_handshake_record(payload: &[u8]) -> bool {
    payload.len() >= 3 && payload[0] == 0x16 && payload[1] == 0x03 && payload[2] <= 0x04
}

/// Parses a ClientHello from the start of a TLS byte stream (records).
pub fn client_hello_from_records(stream: &[u8]) -> Progress {
    let mut hs: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        let Some(header) = stream.get(pos..pos + 5) else {
            return Progress::NeedMore;
        };
        if !looks_like_handshake_record(header) {
            return Progress::NotClientHello;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16384 + 2048 {
            return Progress::NotClientHello;
        }
        let Some(fragment) = stream.get(pos + 5..pos + 5 + len) else {
            // Parse what is there only once the record is complete.
            return Progress::NeedMore;
        };
        hs.extend_from_slice(fragment);
        pos += 5 + len;
        match client_hello_from_handshake(&hs) {
            Progress::NeedMore => continue,
            other => return other,
        }
    }
}

/// Parses a ClientHello from handshake-layer bytes (type 1, 24-bit length).
pub fn client_hello_from_handshake(hs: &[u8]) -> Progress {
    if hs.is_empty() {
        return Progress::NeedMore;
    }
    if hs[0] != 1 {
        return Progress::NotClientHello;
    }
    if hs.len() < 4 {
        return Progress::NeedMore;
    }
    let len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
    if len > MAX_HELLO {
        return Progress::NotClientHello;
    }
    if hs.len() < 4 + len {
        return Progress::NeedMore;
    }
    let msg = &hs[..4 + len];
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        tls_parser::parse_tls_message_handshake(msg)
    else {
        return Progress::NotClientHello;
    };
    let mut info = HelloInfo::default();
    let mut ext = ch.ext.unwrap_or_default();
    // Walk the extension list: type(2) length(2) data.
    while ext.len() >= 4 {
        let etype = u16::from_be_bytes([ext[0], ext[1]]);
        let elen = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        let Some(one) = ext.get(..4 + elen) else {
            break;
        };
        if (etype == 0 || etype == 16)
            && let Ok((_, parsed)) = tls_parser::parse_tls_client_hello_extensions(one)
        {
            for e in parsed {
                match e {
                    TlsExtension::SNI(names) => {
                        if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                            info.sni = Some(String::from_utf8_lossy(name).into_owned());
                        }
                    }
                    TlsExtension::ALPN(ids) => {
                        info.alpn = ids
                            .iter()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect();
                    }
                    _ => {}
                }
            }
        }
        ext = &ext[4 + elen..];
    }
    Progress::Done(info)
}

/// Test vectors: a ClientHello built from parts.
#[cfg(test)]
pub(crate) mod build {
    /// A ClientHello handshake message (type 1) with the given SNI and ALPN ids.
    pub fn client_hello(sni: Option<&str>, alpn: &[&str], pad: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(s) = sni {
            let mut list = vec![0u8];
            list.extend_from_slice(&(s.len() as u16).to_be_bytes());
            list.extend_from_slice(s.as_bytes());
            let mut body = (list.len() as u16).to_be_bytes().to_vec();
            body.extend(list);
            exts.extend_from_slice(&0u16.to_be_bytes());
            exts.extend_from_slice(&(body.len() as u16).to_be_bytes());
            exts.extend(body);
        }
        // supported_groups, an extension we don't read, in between
        exts.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d]);
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for a in alpn {
                list.push(a.len() as u8);
                list.extend_from_slice(a.as_bytes());
            }
            let mut body = (list.len() as u16).to_be_bytes().to_vec();
            body.extend(list);
            exts.extend_from_slice(&16u16.to_be_bytes());
            exts.extend_from_slice(&(body.len() as u16).to_be_bytes());
            exts.extend(body);
        }
        if pad > 0 {
            exts.extend_from_slice(&21u16.to_be_bytes());
            exts.extend_from_slice(&(pad as u16).to_be_bytes());
            exts.extend(std::iter::repeat_n(0u8, pad));
        }
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1u8];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        hs
    }

    /// Wraps handshake bytes into TLS records of at most `max` bytes each.
    pub fn records(hs: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in hs.chunks(max) {
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn info(sni: &str, alpn: &[&str]) -> Progress {
        Progress::Done(HelloInfo {
            sni: Some(sni.into()),
            alpn: alpn.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn sni_and_alpn_from_one_record() {
        let s = records(
            &client_hello(Some("e1.whatsapp.net"), &["h2", "http/1.1"], 0),
            16384,
        );
        assert_eq!(
            client_hello_from_records(&s),
            info("e1.whatsapp.net", &["h2", "http/1.1"])
        );
    }

    #[test]
    fn hello_split_over_records_and_truncated_prefixes() {
        let s = records(&client_hello(Some("chat.signal.org"), &["h2"], 3000), 700);
        assert!(s.len() > 3000);
        for cut in 0..s.len() {
            assert_eq!(
                client_hello_from_records(&s[..cut]),
                Progress::NeedMore,
                "cut {cut}"
            );
        }
        assert_eq!(
            client_hello_from_records(&s),
            info("chat.signal.org", &["h2"])
        );
    }

    #[test]
    fn hostile_lengths_and_other_messages() {
        // handshake claims 16 MiB
        assert_eq!(
            client_hello_from_handshake(&[1, 0xff, 0xff, 0xff, 0]),
            Progress::NotClientHello
        );
        // ServerHello
        assert_eq!(
            client_hello_from_handshake(&[2, 0, 0, 1, 0]),
            Progress::NotClientHello
        );
        // record claiming 65535 bytes
        assert_eq!(
            client_hello_from_records(&[0x16, 3, 1, 0xff, 0xff, 1]),
            Progress::NotClientHello
        );
        // application data record
        assert_eq!(
            client_hello_from_records(&[0x17, 3, 3, 0, 1, 0]),
            Progress::NotClientHello
        );
        // a complete but garbage ClientHello body
        let mut hs = vec![1, 0, 0, 40];
        hs.extend([0xffu8; 40]);
        assert_eq!(client_hello_from_handshake(&hs), Progress::NotClientHello);
    }

    #[test]
    fn malformed_extension_lengths_do_not_panic() {
        let good = client_hello(Some("a.b"), &["h2"], 10);
        for i in 40..good.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut m = good.clone();
                m[i] = v;
                let _ = client_hello_from_handshake(&m);
            }
        }
        let none = client_hello(None, &[], 0);
        assert_eq!(
            client_hello_from_handshake(&none),
            Progress::Done(HelloInfo::default())
        );
    }
}
