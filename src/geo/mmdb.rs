//! A small MaxMind DB (mmdb) writer.
//!
//! matador writes its own mmdb files for two reasons: the ASN database ships
//! as CSV and is converted at install time (`matador geo import-asn`), and the
//! virtual lab maps its own prefixes (198.18.0.0/15, fd00::/8) to countries
//! and ASNs. The output follows the MaxMind DB format 2.0 specification:
//! a binary search tree over the address bits, 16 zero bytes, a data section
//! of self-describing values, the marker `\xAB\xCD\xEFMaxMind.com` and a
//! metadata map. Files are readable by the `maxminddb` crate and by
//! libmaxminddb's `mmdblookup`.
//!
//! The tree is always an IPv6 tree (IPv4 prefixes live under `::/96`, which is
//! where readers look IPv4 addresses up), with 32-bit records.
//!
//! Record layout (one map per distinct record, deduplicated):
//! `country_code` (string, as in ip-location-db), `country.iso_code` (as in
//! GeoIP2), `autonomous_system_number` (uint32) and
//! `autonomous_system_organization` (string, as in GeoLite2-ASN); fields that
//! are `None` are left out.

use super::GeoError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// One record stored for a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MmdbRecord {
    /// ISO 3166-1 alpha-2 country code.
    pub country_code: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub org: Option<String>,
}

/// Any data-section value, for records in other layouts (GeoIP2,
/// ip2location, …) than [`MmdbRecord`]'s.
#[derive(Debug, Clone, PartialEq)]
pub enum MmdbValue {
    /// UTF-8 string.
    Str(String),
    /// Double.
    Double(f64),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Boolean.
    Bool(bool),
    /// Map with string keys, in the given order.
    Map(Vec<(String, MmdbValue)>),
    /// Array.
    Array(Vec<MmdbValue>),
}

impl MmdbValue {
    /// Shorthand for a map.
    pub fn map<const N: usize>(pairs: [(&str, MmdbValue); N]) -> Self {
        MmdbValue::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// Shorthand for a string.
    pub fn str(s: &str) -> Self {
        MmdbValue::Str(s.to_string())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MmdbValue::Str(s) => encode_str(out, s),
            MmdbValue::Double(d) => {
                encode_control(out, 3, 8);
                out.extend_from_slice(&d.to_be_bytes());
            }
            MmdbValue::U16(v) => encode_uint(out, 5, u64::from(*v)),
            MmdbValue::U32(v) => encode_uint(out, 6, u64::from(*v)),
            MmdbValue::U64(v) => encode_uint(out, 9, *v),
            MmdbValue::Bool(b) => encode_control(out, 14, usize::from(*b)),
            MmdbValue::Map(pairs) => {
                encode_map_header(out, pairs.len());
                for (k, v) in pairs {
                    encode_str(out, k);
                    v.encode(out);
                }
            }
            MmdbValue::Array(items) => {
                encode_control(out, 11, items.len());
                for v in items {
                    v.encode(out);
                }
            }
        }
    }
}

impl From<&MmdbRecord> for MmdbValue {
    fn from(r: &MmdbRecord) -> Self {
        let mut pairs = Vec::new();
        if let Some(c) = &r.country_code {
            pairs.push(("country_code".to_string(), MmdbValue::str(c)));
            pairs.push((
                "country".to_string(),
                MmdbValue::map([("iso_code", MmdbValue::str(c))]),
            ));
        }
        if let Some(a) = r.asn {
            pairs.push(("autonomous_system_number".to_string(), MmdbValue::U32(a)));
        }
        if let Some(o) = &r.org {
            pairs.push((
                "autonomous_system_organization".to_string(),
                MmdbValue::str(o),
            ));
        }
        MmdbValue::Map(pairs)
    }
}

/// A record slot of a tree node while building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds an mmdb file in memory: insert prefixes, then [`MmdbWriter::write`].
///
/// Later insertions win where prefixes overlap (a more specific prefix
/// inserted after a covering one splits it; a covering prefix inserted later
/// replaces everything below it).
#[derive(Debug)]
pub struct MmdbWriter {
    database_type: String,
    description: String,
    build_epoch: u64,
    nodes: Vec<[Slot; 2]>,
    /// Encoded distinct records.
    records: Vec<Vec<u8>>,
    record_index: HashMap<Vec<u8>, u32>,
    prefixes: u64,
}

/// Largest node count a 32-bit record can address together with the data.
const MAX_NODES: usize = 1 << 31;

impl MmdbWriter {
    /// A new empty database with the given `database_type` metadata and an
    /// English description.
    pub fn new(database_type: &str, description: &str) -> Self {
        MmdbWriter {
            database_type: database_type.to_string(),
            description: description.to_string(),
            build_epoch: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs().max(1)),
            nodes: vec![[Slot::Empty, Slot::Empty]],
            records: Vec::new(),
            record_index: HashMap::new(),
            prefixes: 0,
        }
    }

    /// Sets the `build_epoch` metadata (seconds since 1970; the current time
    /// by default; libmaxminddb rejects 0).
    pub fn set_build_epoch(&mut self, epoch: u64) {
        self.build_epoch = epoch;
    }

    /// Number of prefixes inserted so far.
    pub fn prefix_count(&self) -> u64 {
        self.prefixes
    }

    /// Inserts `addr/len` (IPv4 or IPv6) with its record.
    pub fn insert(&mut self, addr: IpAddr, len: u8, record: MmdbRecord) -> Result<(), GeoError> {
        self.insert_value(addr, len, &MmdbValue::from(&record))
    }

    /// Inserts `addr/len` with an arbitrary value (normally a map).
    pub fn insert_value(
        &mut self,
        addr: IpAddr,
        len: u8,
        value: &MmdbValue,
    ) -> Result<(), GeoError> {
        let (bits, total) = match addr {
            IpAddr::V4(v4) => {
                if len > 32 {
                    return Err(GeoError::BadPrefix(format!("{addr}/{len}")));
                }
                (u128::from(u32::from(v4)), 96 + u32::from(len))
            }
            IpAddr::V6(v6) => {
                if len > 128 {
                    return Err(GeoError::BadPrefix(format!("{addr}/{len}")));
                }
                (u128::from(v6), u32::from(len))
            }
        };
        if total == 0 {
            // A record for the whole address space would be the root itself,
            // which the format cannot express.
            return Err(GeoError::BadPrefix(format!("{addr}/{len}")));
        }
        let mut encoded = Vec::new();
        value.encode(&mut encoded);
        let data = self.intern(encoded);
        self.insert_bits(bits, total, data)
    }

    /// Inserts a prefix written as `"198.18.0.0/15"` or `"fd00::/8"` (a bare
    /// address is a /32 or /128).
    pub fn insert_cidr(&mut self, cidr: &str, record: MmdbRecord) -> Result<(), GeoError> {
        let bad = || GeoError::BadPrefix(cidr.to_string());
        let (a, l) = match cidr.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (cidr.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = match l {
            Some(l) => l.parse().map_err(|_| bad())?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        self.insert(addr, len, record)
    }

    /// Inserts every address from `start` to `end` inclusive (same family),
    /// split into the fewest CIDR prefixes.
    pub fn insert_range(
        &mut self,
        start: IpAddr,
        end: IpAddr,
        record: MmdbRecord,
    ) -> Result<(), GeoError> {
        for (addr, len) in range_to_prefixes(start, end)? {
            self.insert(addr, len, record.clone())?;
        }
        Ok(())
    }

    fn intern(&mut self, encoded: Vec<u8>) -> u32 {
        if let Some(&i) = self.record_index.get(&encoded) {
            return i;
        }
        let i = self.records.len() as u32;
        self.records.push(encoded.clone());
        self.record_index.insert(encoded, i);
        i
    }

    /// Walks `total` bits of the 128-bit key `bits` (aligned to the left of
    /// the IPv6 address: for IPv4, `bits` holds the low 32 bits and the first
    /// 96 bits are zero).
    fn insert_bits(&mut self, bits: u128, total: u32, data: u32) -> Result<(), GeoError> {
        let bit = |i: u32| ((bits >> (127 - i)) & 1) as usize;
        let mut node = 0usize;
        for i in 0..total - 1 {
            let b = bit(i);
            node = match self.nodes[node][b] {
                Slot::Node(n) => n as usize,
                other => {
                    if self.nodes.len() >= MAX_NODES {
                        return Err(GeoError::TooLarge(self.nodes.len()));
                    }
                    // Pushing an existing data record down keeps it for the
                    // rest of its prefix when a more specific one arrives.
                    let fill = match other {
                        Slot::Data(d) => Slot::Data(d),
                        _ => Slot::Empty,
                    };
                    let n = self.nodes.len();
                    self.nodes.push([fill, fill]);
                    self.nodes[node][b] = Slot::Node(n as u32);
                    n
                }
            };
        }
        self.nodes[node][bit(total - 1)] = Slot::Data(data);
        self.prefixes += 1;
        Ok(())
    }

    /// Tree with `::ffff:0:0/96` (IPv4-mapped IPv6) pointing at the IPv4
    /// subtree, as MaxMind's own databases do, so `mmdblookup -i
    /// ::ffff:a.b.c.d` answers like `a.b.c.d`. Skipped when there is no IPv4
    /// subtree or IPv6 data was inserted on that path.
    fn nodes_with_alias(&self) -> Vec<[Slot; 2]> {
        let mut nodes = self.nodes.clone();
        let mut cur = 0usize;
        for _ in 0..95 {
            match nodes[cur][0] {
                Slot::Node(n) => cur = n as usize,
                _ => return nodes,
            }
        }
        let v4 = nodes[cur][0];
        if v4 == Slot::Empty {
            return nodes;
        }
        let mut cur = 0usize;
        for i in 0..95 {
            let b = usize::from(i >= 80);
            cur = match nodes[cur][b] {
                Slot::Node(n) => n as usize,
                Slot::Data(_) => return nodes,
                Slot::Empty => {
                    let n = nodes.len();
                    nodes.push([Slot::Empty, Slot::Empty]);
                    nodes[cur][b] = Slot::Node(n as u32);
                    n
                }
            };
        }
        if nodes[cur][1] == Slot::Empty {
            nodes[cur][1] = v4;
        }
        nodes
    }

    /// Serialises the database.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GeoError> {
        let nodes = self.nodes_with_alias();
        // Renumber reachable nodes depth-first from the root so that nodes
        // orphaned by overwrites are dropped; the alias makes the IPv4
        // subtree reachable twice, it is written once.
        let mut order: Vec<u32> = Vec::new();
        let mut new_index = vec![u32::MAX; nodes.len()];
        let mut stack = vec![0u32];
        while let Some(n) = stack.pop() {
            if new_index[n as usize] != u32::MAX {
                continue;
            }
            new_index[n as usize] = order.len() as u32;
            order.push(n);
            for slot in nodes[n as usize].iter().rev() {
                if let Slot::Node(c) = slot {
                    stack.push(*c);
                }
            }
        }
        let node_count = order.len() as u64;

        // Data section: each distinct record encoded once.
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.records.len());
        for r in &self.records {
            offsets.push(data.len() as u64);
            data.extend_from_slice(r);
        }
        if node_count + 16 + data.len() as u64 > u64::from(u32::MAX) {
            return Err(GeoError::TooLarge(order.len()));
        }

        let mut out = Vec::with_capacity(order.len() * 8 + 16 + data.len() + 256);
        for &n in &order {
            for slot in &nodes[n as usize] {
                let v: u64 = match *slot {
                    Slot::Empty => node_count,
                    Slot::Node(c) => u64::from(new_index[c as usize]),
                    Slot::Data(d) => node_count + 16 + offsets[d as usize],
                };
                out.extend_from_slice(&(v as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        // Metadata map (keys sorted for determinism).
        encode_map_header(&mut out, 9);
        encode_str(&mut out, "binary_format_major_version");
        encode_uint(&mut out, 5, 2);
        encode_str(&mut out, "binary_format_minor_version");
        encode_uint(&mut out, 5, 0);
        encode_str(&mut out, "build_epoch");
        encode_uint(&mut out, 9, self.build_epoch);
        encode_str(&mut out, "database_type");
        encode_str(&mut out, &self.database_type);
        encode_str(&mut out, "description");
        encode_map_header(&mut out, 1);
        encode_str(&mut out, "en");
        encode_str(&mut out, &self.description);
        encode_str(&mut out, "ip_version");
        encode_uint(&mut out, 5, 6);
        encode_str(&mut out, "languages");
        encode_control(&mut out, 11, 1);
        encode_str(&mut out, "en");
        encode_str(&mut out, "node_count");
        encode_uint(&mut out, 6, node_count);
        encode_str(&mut out, "record_size");
        encode_uint(&mut out, 5, 32);
        Ok(out)
    }

    /// Writes the database to `path` (via a temporary file and a rename, so
    /// a reader never sees a half-written file).
    pub fn write(&self, path: &Path) -> Result<(), GeoError> {
        let bytes = self.to_bytes()?;
        let io = |e| GeoError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        crate::atomic_file::write(path, &bytes).map_err(io)
    }
}

/// Splits an inclusive address range into CIDR prefixes.
pub fn range_to_prefixes(start: IpAddr, end: IpAddr) -> Result<Vec<(IpAddr, u8)>, GeoError> {
    let (s, e, width) = match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => {
            return Err(GeoError::BadPrefix(format!(
                "{start}-{end}: mixed families"
            )));
        }
    };
    if s > e {
        return Err(GeoError::BadPrefix(format!(
            "{start}-{end}: start after end"
        )));
    }
    let mut out = Vec::new();
    let mut cur = s;
    loop {
        // The block must be aligned at `cur` and must not run past `end`.
        let by_align = if cur == 0 {
            width
        } else {
            cur.trailing_zeros().min(width)
        };
        let rest = e - cur; // number of addresses left, minus one
        let by_rest = if rest == u128::MAX {
            128
        } else {
            127 - (rest + 1).leading_zeros()
        };
        let k = by_align.min(by_rest);
        let addr = if width == 32 {
            IpAddr::V4(std::net::Ipv4Addr::from(cur as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(cur))
        };
        out.push((addr, (width - k) as u8));
        if k == 128 {
            break;
        }
        let last = cur + ((1u128 << k) - 1);
        if last >= e {
            break;
        }
        cur = last + 1;
    }
    Ok(out)
}

/// Writes a control byte (and extended type byte) for `type_num` and `size`.
fn encode_control(out: &mut Vec<u8>, type_num: u8, size: usize) {
    let (first_type, ext) = if type_num > 7 {
        (0u8, Some(type_num - 7))
    } else {
        (type_num, None)
    };
    let mut size_bytes: Vec<u8> = Vec::new();
    let size_field: u8 = if size < 29 {
        size as u8
    } else if size < 29 + 256 {
        size_bytes.push((size - 29) as u8);
        29
    } else if size < 285 + 65536 {
        size_bytes.extend_from_slice(&((size - 285) as u16).to_be_bytes());
        30
    } else {
        let v = (size - 65821) as u32;
        size_bytes.extend_from_slice(&v.to_be_bytes()[1..]);
        31
    };
    out.push((first_type << 5) | size_field);
    if let Some(e) = ext {
        out.push(e);
    }
    out.extend_from_slice(&size_bytes);
}

fn encode_map_header(out: &mut Vec<u8>, pairs: usize) {
    encode_control(out, 7, pairs);
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    encode_control(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Unsigned integers use as few big-endian bytes as the value needs.
fn encode_uint(out: &mut Vec<u8>, type_num: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    encode_control(out, type_num, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_split_into_cidrs() {
        let v = range_to_prefixes(p("1.0.0.0"), p("1.0.0.255")).unwrap();
        assert_eq!(v, vec![(p("1.0.0.0"), 24)]);
        let v = range_to_prefixes(p("1.0.0.1"), p("1.0.0.4")).unwrap();
        assert_eq!(
            v,
            vec![(p("1.0.0.1"), 32), (p("1.0.0.2"), 31), (p("1.0.0.4"), 32)]
        );
        let v = range_to_prefixes(p("0.0.0.0"), p("255.255.255.255")).unwrap();
        assert_eq!(v, vec![(p("0.0.0.0"), 0)]);
        let v = range_to_prefixes(p("::"), p("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).unwrap();
        assert_eq!(v, vec![(p("::"), 0)]);
        assert!(range_to_prefixes(p("1.0.0.2"), p("1.0.0.1")).is_err());
        assert!(range_to_prefixes(p("1.0.0.2"), p("::1")).is_err());
    }

    #[test]
    fn alias_shares_the_ipv4_subtree() {
        let mut w = MmdbWriter::new("t", "t");
        let r = MmdbRecord {
            country_code: Some("DE".into()),
            ..MmdbRecord::default()
        };
        w.insert_cidr("198.18.0.0/15", r).unwrap();
        let bytes = w.to_bytes().unwrap();
        // 111 nodes on the IPv4 path (96 + 15 bits), 15 more for the alias
        // branch (depths 81..=95): the IPv4 subtree is written once.
        assert_eq!(w.nodes_with_alias().len(), 111 + 15);
        let r = maxminddb::Reader::from_source(bytes).unwrap();
        assert_eq!(r.metadata().node_count, 111 + 15);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mapped = r.lookup(ip("::ffff:198.19.1.1")).unwrap();
        assert!(mapped.has_data());
        assert!(!r.lookup(ip("::ffff:198.20.1.1")).unwrap().has_data());
    }

    #[test]
    fn cidr_strings() {
        let mut w = MmdbWriter::new("t", "t");
        let r = MmdbRecord::default();
        w.insert_cidr("198.18.0.0/15", r.clone()).unwrap();
        w.insert_cidr("fd00::/8", r.clone()).unwrap();
        w.insert_cidr("198.18.0.1", r.clone()).unwrap();
        assert_eq!(w.prefix_count(), 3);
        assert!(w.insert_cidr("198.18.0.0/", r.clone()).is_err());
        assert!(w.insert_cidr("fd00::/129", r.clone()).is_err());
        assert!(w.insert_cidr("lab", r).is_err());
    }

    #[test]
    fn control_bytes_follow_the_spec() {
        let mut v = Vec::new();
        encode_control(&mut v, 2, 3);
        assert_eq!(v, vec![0x43]);
        v.clear();
        encode_control(&mut v, 2, 100);
        assert_eq!(v, vec![0x5d, 71]);
        v.clear();
        encode_control(&mut v, 2, 300);
        assert_eq!(v, vec![0x5e, 0, 15]);
        v.clear();
        encode_control(&mut v, 11, 1);
        assert_eq!(v, vec![0x01, 4]);
        v.clear();
        encode_uint(&mut v, 6, 15169);
        assert_eq!(v, vec![0xc2, 0x3b, 0x41]);
    }
}
