//! Import of `start,end,asn,org` CSV files (ip-location-db's `asn-ipv4.csv`,
//! `asn-ipv6.csv`: no header, RFC 4180 quoting) into an mmdb.
//!
//! Ranges are sorted per address family; a range that overlaps the one
//! before it is clipped to start after it (the 2026 IPv4 file has one such
//! pair: 214.95.0.0–215.0.255.255 AS749 and 215.0.0.0–215.1.3.255 AS721), and
//! a range wholly inside the one before it is dropped. Both are counted.

use super::GeoError;
use super::mmdb::{MmdbRecord, MmdbWriter};
use std::net::IpAddr;
use std::path::Path;

/// Counts from an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportStats {
    /// Ranges read.
    pub ranges: usize,
    /// Ranges clipped because they overlapped the previous one.
    pub clipped: usize,
    /// Ranges dropped because the previous one covered them.
    pub dropped: usize,
    /// CIDR prefixes written.
    pub prefixes: u64,
}

/// Splits one CSV line into fields (double-quoted fields may contain commas
/// and `""`).
pub fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

struct Range {
    start: u128,
    end: u128,
    v4: bool,
    asn: u32,
    org: String,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(v))
    }
}

/// Parses the CSV text of `path`.
fn parse(path: &Path, text: &str, out: &mut Vec<Range>) -> Result<(), GeoError> {
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| GeoError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let f = split_csv_line(line).map_err(bad)?;
        if f.len() < 3 {
            return Err(bad(format!(
                "expected start,end,asn[,org], got {} field(s)",
                f.len()
            )));
        }
        let start: IpAddr = f[0]
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad start address {:?}", f[0])))?;
        let end: IpAddr = f[1]
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad end address {:?}", f[1])))?;
        if start.is_ipv4() != end.is_ipv4() {
            return Err(bad("start and end are of different families".into()));
        }
        let asn: u32 = f[2]
            .trim()
            .trim_start_matches("AS")
            .parse()
            .map_err(|_| bad(format!("bad AS number {:?}", f[2])))?;
        let (s, e) = (to_u128(start), to_u128(end));
        if s > e {
            return Err(bad(format!("range {start}-{end} ends before it starts")));
        }
        out.push(Range {
            start: s,
            end: e,
            v4: start.is_ipv4(),
            asn,
            org: f.get(3).cloned().unwrap_or_default(),
        });
    }
    Ok(())
}

/// Reads the CSV files and builds the ASN database in memory.
pub fn import(paths: &[&Path]) -> Result<(MmdbWriter, ImportStats), GeoError> {
    let mut ranges = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|source| GeoError::Io {
            path: p.to_path_buf(),
            source,
        })?;
        parse(p, &text, &mut ranges)?;
    }
    let mut stats = ImportStats {
        ranges: ranges.len(),
        ..ImportStats::default()
    };
    ranges.sort_by_key(|r| (r.v4, r.start));
    let mut w = MmdbWriter::new(
        "matador-ASN",
        "IP to ASN (ip-location-db asn: RouteViews, RIRs, DB-IP; CC BY 4.0) converted by matador",
    );
    let mut prev: Option<(bool, u128)> = None; // family, end of previous range
    for r in ranges {
        let mut start = r.start;
        if let Some((v4, end)) = prev
            && v4 == r.v4
            && start <= end
        {
            if r.end <= end {
                stats.dropped += 1;
                continue;
            }
            start = end + 1;
            stats.clipped += 1;
        }
        let rec = MmdbRecord {
            country_code: None,
            asn: Some(r.asn),
            org: (!r.org.is_empty()).then(|| r.org.clone()),
        };
        w.insert_range(from_u128(start, r.v4), from_u128(r.end, r.v4), rec)?;
        prev = Some((r.v4, r.end));
    }
    stats.prefixes = w.prefix_count();
    Ok((w, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(
            split_csv_line(r#"1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc.""#).unwrap(),
            vec!["1.0.0.0", "1.0.0.255", "13335", "Cloudflare, Inc."]
        );
        assert_eq!(
            split_csv_line(r#"a,"b ""x"" c",d"#).unwrap(),
            vec!["a", r#"b "x" c"#, "d"]
        );
        assert!(split_csv_line(r#"a,"b"#).is_err());
    }
}
