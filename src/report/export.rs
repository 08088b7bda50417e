//! `matador export --anonymize`: a publishable copy of a campaign folder.
//!
//! - Phone and lab addresses (`lab.json` phones and nodes of kind `router`
//!   or `phone`; remote nodes and servers are the data and stay) are mapped
//!   prefix-preservingly (Crypto-PAn style: output bit i = input bit i XOR
//!   the first bit of HMAC-SHA256(key, i ‖ the first i input bits)), keeping
//!   the special-purpose block an address lies in (10/8 stays 10/8,
//!   198.18/15 stays 198.18/15), everywhere they appear as text (JSON, JSONL,
//!   YAML, logs) and in the IP headers of classic pcap files.
//! - pcap records are cut after the transport header (payloads removed;
//!   `orig_len` is kept, IP/TCP checksums are left stale); pcapng files and
//!   other binaries are not copied.
//! - ADB serials of `lab.json` become `serial-<phone>`; E.164 phone numbers
//!   (`+` and 7–15 digits) become `+0000000`; JSON keys naming phone numbers
//!   or accounts are dropped.
//! - `export-manifest.json` says what was changed, file by file (never the
//!   mapping or the key).

use super::ReportError;
use super::record::Lab;
use ring::hmac;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Schema of the manifest.
pub const MANIFEST_SCHEMA: &str = "matador/export-manifest/1";

/// JSON keys removed from every object (case-insensitive).
pub const REMOVED_KEYS: &[&str] = &[
    "phone_number",
    "phonenumber",
    "msisdn",
    "account",
    "account_id",
    "user_id",
    "imsi",
    "imei",
    "iccid",
    "contact",
];

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Path relative to the campaign folder.
    pub file: String,
    /// `rewritten`, `pcap-truncated` or `not-exported`.
    pub action: String,
    /// Addresses replaced.
    pub addresses: usize,
    /// Serials, phone numbers and keys removed.
    pub identifiers: usize,
    /// pcap records cut.
    pub records_truncated: usize,
    /// Why it was not exported, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `export-manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// `matador/export-manifest/1`.
    pub schema: &'static str,
    /// Source folder name.
    pub source: String,
    /// Distinct phone/lab addresses that were mapped.
    pub mapped_addresses: usize,
    /// How addresses were mapped.
    pub address_mapping: String,
    /// Keys removed from JSON objects.
    pub removed_keys: Vec<String>,
    /// Files, sorted.
    pub files: Vec<FileEntry>,
}

/// Prefix-preserving address mapping under a secret key.
pub struct Anonymizer {
    key: hmac::Key,
    /// Canonical address → mapped address.
    map: BTreeMap<IpAddr, IpAddr>,
    serials: Vec<(String, String)>,
}

/// Length of the special-purpose block an address lies in (kept unchanged).
fn kept_bits(ip: IpAddr) -> u32 {
    let blocks4: [([u8; 4], u32); 5] = [
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([100, 64, 0, 0], 10),
    ];
    match ip {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            blocks4
                .iter()
                .find(|(n, l)| (a ^ u32::from_be_bytes(*n)) >> (32 - l) == 0)
                .map_or(0, |(_, l)| *l)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            if a >> 121 == 0xfc00 >> 9 {
                7
            } else if a >> 118 == 0xfe80 >> 6 {
                10
            } else {
                0
            }
        }
    }
}

impl Anonymizer {
    /// A mapping under `key` for the addresses and serials of `lab`.
    pub fn new(key: &[u8], lab: &Lab) -> Self {
        let mut a = Anonymizer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            map: BTreeMap::new(),
            serials: Vec::new(),
        };
        let mut addrs: Vec<IpAddr> = Vec::new();
        // Remote nodes and servers are the measurement's vantage points
        // and targets (their locations are the data); phones and lab
        // routers are private.
        for n in lab
            .nodes
            .iter()
            .filter(|n| matches!(n.kind.as_deref(), Some("router" | "phone")))
        {
            addrs.extend(n.addr);
            addrs.extend(n.addrs.iter().copied());
        }
        for p in &lab.phones {
            addrs.extend(p.addr);
            if let Some(s) = p.serial.as_ref().filter(|s| s.len() >= 4) {
                a.serials.push((s.clone(), format!("serial-{}", p.name)));
            }
        }
        // Longest first, so no serial is replaced inside another.
        a.serials
            .sort_by(|x, y| y.0.len().cmp(&x.0.len()).then(x.0.cmp(&y.0)));
        for ip in addrs {
            let ip = ip.to_canonical();
            let m = a.map_addr(ip);
            a.map.insert(ip, m);
        }
        a
    }

    fn bits(&self, value: u128, width: u32) -> u128 {
        let mut out = 0u128;
        for i in 0..width {
            let shift = width - i;
            let prefix = if i == 0 { 0 } else { value >> shift << shift };
            let mut msg = vec![i as u8];
            msg.extend_from_slice(&prefix.to_be_bytes());
            let tag = hmac::sign(&self.key, &msg);
            let flip = u128::from(tag.as_ref()[0] >> 7);
            let bit = (value >> (width - 1 - i)) & 1;
            out |= (bit ^ flip) << (width - 1 - i);
        }
        out
    }

    /// The mapped form of `ip` (prefix-preserving, block kept).
    pub fn map_addr(&self, ip: IpAddr) -> IpAddr {
        let ip = ip.to_canonical();
        let keep = kept_bits(ip);
        match ip {
            IpAddr::V4(v4) => {
                let a = u128::from(u32::from(v4));
                let m = self.bits(a, 32);
                let mask = if keep == 0 {
                    0
                } else {
                    (u128::from(u32::MAX) >> (32 - keep)) << (32 - keep)
                };
                let out = (a & mask) | (m & !mask & u128::from(u32::MAX));
                IpAddr::V4(std::net::Ipv4Addr::from(out as u32))
            }
            IpAddr::V6(v6) => {
                let a = u128::from(v6);
                let m = self.bits(a, 128);
                let mask = if keep == 0 {
                    0
                } else {
                    u128::MAX << (128 - keep)
                };
                IpAddr::V6(std::net::Ipv6Addr::from((a & mask) | (m & !mask)))
            }
        }
    }

    /// A mapped address at the start of `tok`: the whole token, the token
    /// without trailing `.`/`:` (end of a sentence), or the address of an
    /// `a.b.c.d:port` token. Returns its length and the mapped address.
    fn address_in(&self, tok: &str) -> Option<(usize, IpAddr)> {
        let trimmed = tok.trim_end_matches(['.', ':']);
        let v4_port = tok
            .split_once(':')
            .map(|(a, _)| a)
            .filter(|a| a.contains('.'));
        [Some(tok), Some(trimmed), v4_port]
            .into_iter()
            .flatten()
            .find_map(|c| {
                let ip = c.parse::<IpAddr>().ok()?;
                self.map.get(&ip.to_canonical()).map(|m| (c.len(), *m))
            })
    }

    /// Addresses that will be mapped.
    pub fn mapped(&self) -> usize {
        self.map.len()
    }

    /// Rewrites a text: lab addresses, serials, phone numbers. Returns
    /// (text, addresses replaced, identifiers replaced).
    pub fn text(&self, s: &str) -> (String, usize, usize) {
        let is_ipch = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
        let mut out = String::with_capacity(s.len());
        let (mut na, mut ni) = (0, 0);
        let mut rest = s;
        while let Some(start) = rest.find(is_ipch) {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let end = tail.find(|c: char| !is_ipch(c)).unwrap_or(tail.len());
            let tok = &tail[..end];
            match self.address_in(tok) {
                Some((len, m)) => {
                    out.push_str(&m.to_string());
                    out.push_str(&tok[len..]);
                    na += 1;
                }
                None => out.push_str(tok),
            }
            rest = &tail[end..];
        }
        out.push_str(rest);
        for (serial, pseudo) in &self.serials {
            let n = out.matches(serial.as_str()).count();
            if n > 0 {
                out = out.replace(serial.as_str(), pseudo);
                ni += n;
            }
        }
        let (out, n) = scrub_phone_numbers(&out);
        (out, na, ni + n)
    }
}

/// Replaces `+` followed by 7–15 digits (E.164) with `+0000000`; returns
/// the text and how many numbers were replaced (`matador report --redact`).
pub fn scrub_phone_numbers(s: &str) -> (String, usize) {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut last, mut n) = (0, 0, 0);
    while i < b.len() {
        if b[i] == b'+' && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let after = b.get(i + 1 + digits);
            if (7..=15).contains(&digits)
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.')
            {
                out.push_str(&s[last..i]);
                out.push_str("+0000000");
                i += 1 + digits;
                last = i;
                n += 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    (out, n)
}

/// Drops [`REMOVED_KEYS`] from every object; returns how many.
fn drop_keys(v: &mut serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(o) => {
            let before = o.len();
            o.retain(|k, _| !REMOVED_KEYS.iter().any(|r| k.eq_ignore_ascii_case(r)));
            let mut n = before - o.len();
            for x in o.values_mut() {
                n += drop_keys(x);
            }
            n
        }
        serde_json::Value::Array(a) => a.iter_mut().map(drop_keys).sum(),
        _ => 0,
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Cuts each record of a classic pcap after its transport header and maps
/// lab addresses in the IP headers. Returns (bytes, records cut, addresses).
pub fn anonymize_pcap(a: &Anonymizer, data: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    if data.len() < 24 {
        return Err("shorter than a pcap header".into());
    }
    let magic = [data[0], data[1], data[2], data[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        [0x0a, 0x0d, 0x0d, 0x0a] => return Err("pcapng is not supported by the anonymizer".into()),
        _ => return Err("not a pcap file".into()),
    };
    let u32_at = |b: &[u8], o: usize| {
        let x = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    };
    let put = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let linktype = u32_at(data, 20) & 0x0fff_ffff;
    let mut out = data[..24].to_vec();
    let (mut off, mut cut, mut addrs) = (24usize, 0, 0);
    while off + 16 <= data.len() {
        let incl = u32_at(data, off + 8) as usize;
        let orig = u32_at(data, off + 12);
        let body_start = off + 16;
        let Some(body) = data.get(body_start..body_start + incl) else {
            return Err(format!("record at byte {off} runs past the end"));
        };
        let mut pkt = body.to_vec();
        let keep = rewrite_packet(a, linktype, &mut pkt, &mut addrs);
        if keep < pkt.len() {
            pkt.truncate(keep);
            cut += 1;
        }
        out.extend_from_slice(&data[off..off + 8]);
        out.extend_from_slice(&put(pkt.len() as u32));
        out.extend_from_slice(&put(orig));
        out.extend_from_slice(&pkt);
        off = body_start + incl;
    }
    Ok((out, cut, addrs))
}

/// Maps addresses in place; returns how many bytes to keep.
fn rewrite_packet(a: &Anonymizer, linktype: u32, p: &mut [u8], addrs: &mut usize) -> usize {
    let (mut l3, mut ethertype) = match linktype {
        1 => {
            if p.len() < 14 {
                return p.len();
            }
            (14usize, u16::from_be_bytes([p[12], p[13]]))
        }
        113 => {
            if p.len() < 16 {
                return p.len();
            }
            (16, u16::from_be_bytes([p[14], p[15]]))
        }
        276 => {
            if p.len() < 20 {
                return p.len();
            }
            (20, u16::from_be_bytes([p[0], p[1]]))
        }
        101 | 12 | 14 => match p.first().map(|b| b >> 4) {
            Some(4) => (0, 0x0800),
            Some(6) => (0, 0x86dd),
            _ => return 0,
        },
        _ => return 0,
    };
    // VLAN tags.
    while (ethertype == 0x8100 || ethertype == 0x88a8) && p.len() >= l3 + 4 {
        ethertype = u16::from_be_bytes([p[l3 + 2], p[l3 + 3]]);
        l3 += 4;
    }
    let mut map = |p: &mut [u8], at: usize, len: usize| {
        let ip = if len == 4 {
            let b: [u8; 4] = p[at..at + 4].try_into().unwrap_or([0; 4]);
            IpAddr::from(b)
        } else {
            let b: [u8; 16] = p[at..at + 16].try_into().unwrap_or([0; 16]);
            IpAddr::from(b)
        };
        if let Some(m) = a.map.get(&ip.to_canonical()) {
            match (m, len) {
                (IpAddr::V4(v), 4) => p[at..at + 4].copy_from_slice(&v.octets()),
                (IpAddr::V4(v), _) => p[at..at + 16].copy_from_slice(&v.to_ipv6_mapped().octets()),
                (IpAddr::V6(v), 16) => p[at..at + 16].copy_from_slice(&v.octets()),
                (IpAddr::V6(_), _) => return,
            }
            *addrs += 1;
        }
    };
    let (l4, proto) = match ethertype {
        0x0800 if p.len() >= l3 + 20 => {
            let ihl = usize::from(p[l3] & 0x0f) * 4;
            map(p, l3 + 12, 4);
            map(p, l3 + 16, 4);
            (l3 + ihl.max(20), p[l3 + 9])
        }
        0x86dd if p.len() >= l3 + 40 => {
            map(p, l3 + 8, 16);
            map(p, l3 + 24, 16);
            (l3 + 40, p[l3 + 6])
        }
        _ => return l3.min(p.len()),
    };
    let l4_len = match proto {
        6 if p.len() >= l4 + 13 => usize::from(p[l4 + 12] >> 4) * 4,
        17 | 1 | 58 => 8,
        _ => 0,
    };
    (l4 + l4_len).min(p.len())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Writes the anonymized copy of the campaign `src` into `dst` (which must
/// not exist yet) under `key`, and returns the manifest (also written as
/// `export-manifest.json`).
pub fn export(src: &Path, dst: &Path, key: &[u8]) -> Result<Manifest, ReportError> {
    if dst.exists() {
        return Err(ReportError::BadFile {
            path: dst.to_path_buf(),
            message: "already exists; the export needs a new folder".into(),
        });
    }
    let lab_path = src.join("lab.json");
    let lab: Lab = match std::fs::read_to_string(&lab_path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| ReportError::BadFile {
            path: lab_path.clone(),
            message: format!("needed to know the lab addresses: {e}"),
        })?,
        Err(e) => return Err(io(&lab_path)(e)),
    };
    let a = Anonymizer::new(key, &lab);
    let mut files = Vec::new();
    walk(src, &mut files)?;
    let mut entries = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap_or(&f).to_path_buf();
        let name = rel.display().to_string();
        let out = dst.join(&rel);
        let data = std::fs::read(&f).map_err(io(&f))?;
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
        let mut e = FileEntry {
            file: name,
            action: "rewritten".into(),
            addresses: 0,
            identifiers: 0,
            records_truncated: 0,
            reason: None,
        };
        let bytes: Option<Vec<u8>> = if ext == "parquet" {
            // The dataset (docs/dataset.md) holds the raw addresses; it is
            // derived, so `matador report` on the copy rebuilds it anonymized.
            e.action = "not-exported".into();
            e.reason = Some("derived dataset: run matador report on the copy".into());
            None
        } else if ext == "pcap" || ext == "pcapng" {
            match anonymize_pcap(&a, &data) {
                Ok((b, cut, n)) => {
                    e.action = "pcap-truncated".into();
                    e.records_truncated = cut;
                    e.addresses = n;
                    Some(b)
                }
                Err(reason) => {
                    e.action = "not-exported".into();
                    e.reason = Some(reason);
                    None
                }
            }
        } else if let Ok(text) = String::from_utf8(data) {
            let (mut t, na, ni) = a.text(&text);
            e.addresses = na;
            e.identifiers = ni;
            if ext == "json" {
                if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&t) {
                    let n = drop_keys(&mut v);
                    if n > 0 {
                        e.identifiers += n;
                        t = serde_json::to_string_pretty(&v).unwrap_or(t);
                        t.push('\n');
                    }
                }
            } else if ext == "jsonl" {
                let mut lines = Vec::new();
                for l in t.lines() {
                    match serde_json::from_str::<serde_json::Value>(l) {
                        Ok(mut v) => {
                            let n = drop_keys(&mut v);
                            e.identifiers += n;
                            lines.push(if n > 0 {
                                serde_json::to_string(&v).unwrap_or_default()
                            } else {
                                l.to_string()
                            });
                        }
                        Err(_) => lines.push(l.to_string()),
                    }
                }
                t = lines.join("\n");
                t.push('\n');
            }
            Some(t.into_bytes())
        } else {
            e.action = "not-exported".into();
            e.reason = Some("binary file other than pcap".into());
            None
        };
        if let Some(b) = bytes {
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            crate::atomic_file::write(&out, &b).map_err(io(&out))?;
        }
        entries.push(e);
    }
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA,
        source: src
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
        mapped_addresses: a.mapped(),
        address_mapping: "prefix-preserving (HMAC-SHA256 per bit, secret key not stored); special-purpose block kept".into(),
        removed_keys: REMOVED_KEYS.iter().map(|s| s.to_string()).collect(),
        files: entries,
    };
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    let mp = dst.join("export-manifest.json");
    let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    text.push('\n');
    crate::atomic_file::write(&mp, text.as_bytes()).map_err(io(&mp))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::record::LabPhone;

    fn anon() -> Anonymizer {
        let lab = Lab {
            phones: vec![
                LabPhone {
                    name: "a".into(),
                    serial: Some("SERIAL123".into()),
                    addr: Some("10.1.2.3".parse().unwrap()),
                    node: None,
                },
                LabPhone {
                    name: "b".into(),
                    serial: None,
                    addr: Some("fd00::7".parse().unwrap()),
                    node: None,
                },
            ],
            ..Lab::default()
        };
        Anonymizer::new(b"k", &lab)
    }

    #[test]
    fn text_tokens() {
        let a = anon();
        let m = a.map_addr("10.1.2.3".parse().unwrap()).to_string();
        assert!(m.starts_with("10."), "{m}");
        let m6 = a.map_addr("fd00::7".parse().unwrap()).to_string();
        let (t, na, ni) = a.text(
            "10.1.2.3 10.1.2.3:5222 at 10.1.2.3. [fd00::7]:443 10.1.2.30 110.1.2.3 SERIAL123 +4915112345678 1700000000.5",
        );
        assert_eq!(
            t,
            format!(
                "{m} {m}:5222 at {m}. [{m6}]:443 10.1.2.30 110.1.2.3 serial-a +0000000 1700000000.5"
            )
        );
        assert_eq!((na, ni), (4, 2));
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            scrub_phone_numbers("+123456 +1234567 a+1234567 +1234567890123456").1,
            1
        );
    }
}
