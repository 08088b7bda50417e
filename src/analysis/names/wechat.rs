//! WeChat's HTTP DNS: the app asks `dns.weixin.qq.com:8080` for
//! `/cgi-bin/micromsg-bin/newgetdns?...` and receives, DEFLATE-compressed
//! (`Content-Encoding: deflate`, raw or zlib-wrapped), an XML document:
//!
//! ```xml
//! <dns><retcode>0</retcode><domainlist>
//!   <domain name="long.weixin.qq.com" timeout="1860">
//!     <ipv6>::ffff:43.130.30.185</ipv6><ip>43.130.30.185</ip>
//!   </domain> …
//! </domainlist><builtiniplist>…</builtiniplist><clientip>…</clientip></dns>
//! ```
//!
//! Each `<domain>` becomes a [`DnsRecord`] with transport `"wechat-httpdns"`
//! so attribution and reports treat these resolutions like DNS answers.

use crate::analysis::model::{DnsAnswer, DnsRecord};
use crate::capture::Timestamp;
use quick_xml::events::Event;
use std::io::Read;
use std::net::IpAddr;

/// A decompressed domain list may not exceed this (real ones are ~20 KiB);
/// it bounds what a DEFLATE bomb can cost.
pub const MAX_XML: usize = 4 * 1024 * 1024;

/// Errors decoding a newgetdns response body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WechatError {
    /// The body is neither DEFLATE, zlib, nor plain XML.
    #[error("newgetdns body of {len} bytes could not be decompressed")]
    Compression {
        /// Body length.
        len: usize,
    },
    /// The decompressed document exceeds [`MAX_XML`].
    #[error("newgetdns body decompresses to more than {MAX_XML} bytes")]
    TooLarge,
    /// The XML is malformed.
    #[error("newgetdns XML malformed at byte {offset}: {message}")]
    Xml {
        /// Byte offset in the decompressed document.
        offset: u64,
        /// Parser message.
        message: String,
    },
}

/// True for a request that asks WeChat's HTTP DNS.
pub fn is_newgetdns(path: &str) -> bool {
    path.to_ascii_lowercase().contains("newgetdns")
}

/// One `<domain>` of the list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainEntry {
    /// `name` attribute.
    pub name: String,
    /// `timeout` attribute (seconds), used as the TTL.
    pub timeout: u32,
    /// `<ip>` and `<ipv6>` children, in document order.
    pub addrs: Vec<String>,
}

/// Reads at most [`MAX_XML`] + 1 bytes. A stream cut short (the capture
/// lost the tail of the body) still yields its prefix when that looks like
/// XML, so the domains before the cut are kept.
fn bounded_read(mut r: impl Read) -> Option<Result<Vec<u8>, WechatError>> {
    let mut out = Vec::new();
    let res = r.by_ref().take(MAX_XML as u64 + 1).read_to_end(&mut out);
    if out.len() > MAX_XML {
        return Some(Err(WechatError::TooLarge));
    }
    let xmlish = out.trim_ascii_start().starts_with(b"<");
    match res {
        Ok(_) if !out.is_empty() => Some(Ok(out)),
        Err(_) if xmlish => Some(Ok(out)),
        _ => None,
    }
}

/// Decompresses a response body: raw DEFLATE (what WeChat sends), zlib,
/// gzip, or plain XML.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>, WechatError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"<") {
        return Ok(body.to_vec());
    }
    if let Some(r) = bounded_read(flate2::read::DeflateDecoder::new(body)) {
        return r;
    }
    if let Some(r) = bounded_read(flate2::read::ZlibDecoder::new(body)) {
        return r;
    }
    if let Some(r) = bounded_read(flate2::read::GzDecoder::new(body)) {
        return r;
    }
    Err(WechatError::Compression { len: body.len() })
}

/// Parses the XML domain list.
pub fn parse_domain_list(xml: &[u8]) -> Result<Vec<DomainEntry>, WechatError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut current: Option<DomainEntry> = None;
    let mut in_addr = false;
    loop {
        let ev = reader.read_event().map_err(|e| WechatError::Xml {
            offset: reader.buffer_position(),
            message: e.to_string(),
        })?;
        match ev {
            Event::Start(e) => match e.name().as_ref() {
                b"domain" => {
                    let attr = |n: &str| {
                        e.try_get_attribute(n)
                            .ok()
                            .flatten()
                            .and_then(|a| a.unescape_value().ok().map(|v| v.trim().to_string()))
                    };
                    current = Some(DomainEntry {
                        name: attr("name").unwrap_or_default(),
                        timeout: attr("timeout").and_then(|t| t.parse().ok()).unwrap_or(0),
                        addrs: Vec::new(),
                    });
                }
                b"ip" | b"ipv6" => in_addr = current.is_some(),
                _ => {}
            },
            Event::Text(t) if in_addr => {
                if let (Some(d), Ok(text)) = (current.as_mut(), t.decode()) {
                    let text = text.trim();
                    if !text.is_empty() {
                        d.addrs.push(text.to_string());
                    }
                }
            }
            Event::End(e) => match e.name().as_ref() {
                b"domain" => {
                    if let Some(d) = current.take()
                        && !d.name.is_empty()
                    {
                        out.push(d);
                    }
                }
                b"ip" | b"ipv6" => in_addr = false,
                _ => {}
            },
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// Turns the domain list into DNS records (one per domain, A/AAAA answers).
pub fn records(
    entries: &[DomainEntry],
    frame: u64,
    ts: Timestamp,
    server: IpAddr,
    client: IpAddr,
) -> Vec<DnsRecord> {
    entries
        .iter()
        .map(|d| DnsRecord {
            frame,
            ts,
            transport: "wechat-httpdns".to_string(),
            server,
            client,
            id: 0,
            query: d.name.clone(),
            qtype: "A".to_string(),
            rcode: Some("NOERROR".to_string()),
            ip_ttl: None,
            ip_id: None,
            answers: d
                .addrs
                .iter()
                .map(|a| DnsAnswer {
                    name: d.name.clone(),
                    rtype: match a.parse::<IpAddr>() {
                        Ok(IpAddr::V6(_)) => "AAAA",
                        _ => "A",
                    }
                    .to_string(),
                    data: a.clone(),
                    ttl: d.timeout,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<dns>
<retcode>0</retcode>
<domainlist>
<domain name="long.weixin.qq.com" timeout="1860">
<ipv6>::ffff:43.130.30.185</ipv6>
<ip>43.130.30.185</ip>
</domain>
<domain name="localhost" timeout="1800"><ip>127.0.0.1</ip></domain>
</domainlist>
<builtiniplist><ip>203.205.151.164</ip></builtiniplist>
<clientip>193.190.168.49</clientip>
</dns>"#;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn raw_deflate_xml_to_records() {
        let body = deflate(XML.as_bytes());
        let xml = decompress(&body).unwrap();
        let entries = parse_domain_list(&xml).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "long.weixin.qq.com");
        assert_eq!(entries[0].timeout, 1860);
        assert_eq!(entries[0].addrs, ["::ffff:43.130.30.185", "43.130.30.185"]);
        let recs = records(
            &entries,
            55,
            Timestamp::default(),
            "43.130.30.240".parse().unwrap(),
            "10.0.2.16".parse().unwrap(),
        );
        assert_eq!(recs[0].transport, "wechat-httpdns");
        assert_eq!(recs[0].answers[0].rtype, "AAAA");
        assert_eq!(recs[0].answers[1].rtype, "A");
        assert_eq!(recs[0].answers[1].data, "43.130.30.185");
        assert_eq!(recs[1].query, "localhost");
    }

    #[test]
    fn zlib_and_plain_bodies() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(XML.as_bytes()).unwrap();
        assert_eq!(decompress(&z.finish().unwrap()).unwrap(), XML.as_bytes());
        assert_eq!(decompress(XML.as_bytes()).unwrap(), XML.as_bytes());
    }

    #[test]
    fn bombs_garbage_and_broken_xml() {
        let bomb = deflate(&vec![b'<'; MAX_XML + 10]);
        assert_eq!(decompress(&bomb), Err(WechatError::TooLarge));
        assert!(matches!(
            decompress(&[0xff, 0xfe, 0xfd]),
            Err(WechatError::Compression { .. })
        ));
        assert!(matches!(
            parse_domain_list(b"<dns><domain name=\"a\"></dns>"),
            Err(WechatError::Xml { .. })
        ));
        let xml = deflate(XML.as_bytes());
        for cut in 0..xml.len() {
            if let Ok(x) = decompress(&xml[..cut]) {
                let _ = parse_domain_list(&x);
            }
        }
    }
}
