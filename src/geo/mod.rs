//! Geolocation: mmdb country and ASN lookups, UN M49 regions, interest groups, plausibility.
//!
//! A leaf module: it reads its databases (mmdb files, the shipped M49 and
//! interest-group tables, an optional groups YAML) and does nothing else.
//!
//! - [`db`]: country + ASN lookups from memory-mapped mmdb files (the
//!   installed ip-location-db databases, MaxMind GeoLite2 or ip2location);
//! - [`mmdb`]: a MaxMind DB writer (ASN CSV import, virtual-lab databases);
//! - [`asn_csv`]: the `start,end,asn,org` CSV import;
//! - [`m49`]: country → UN M49 region / sub-region / intermediate region;
//! - [`groups`]: interest groups (`current`, `pam2016` presets, YAML files);
//! - [`plausibility`]: speed-of-light checks of geolocations and hop sequences;
//! - [`locality`]: "leaves the region" / "accessible to the group" for paths;
//! - [`diff`]: addresses whose country changed between two databases.
//!
//! Definitions and data sources: `docs/geo.md`.

pub mod asn_csv;
pub mod db;
pub mod diff;
pub mod groups;
pub mod locality;
pub mod m49;
pub mod mmdb;
pub mod plausibility;

use std::path::PathBuf;

/// Command that installs the default databases (named in error messages).
pub const INSTALL_COMMAND: &str = "bash scripts/install-deps.sh (or bash scripts/install-geo.sh)";

/// Errors of the geo module; each names the file or input concerned.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A database file does not exist.
    #[error(
        "{what} database {path} not found; install it with `{INSTALL_COMMAND}` or pass {flag} FILE"
    )]
    MissingDb {
        /// Which database ("country" or "ASN").
        what: &'static str,
        /// Path looked at.
        path: PathBuf,
        /// Command-line flag that overrides it.
        flag: &'static str,
    },
    /// A database file exists but is not a valid mmdb file.
    #[error("{path}: not a valid MaxMind DB (mmdb) file: {source}")]
    CorruptDb {
        /// The file.
        path: PathBuf,
        /// Reader error.
        source: maxminddb::MaxMindDbError,
    },
    /// A lookup failed inside a database (corrupt tree or record).
    #[error("{path}: lookup of {ip} failed: {source}")]
    Lookup {
        /// The database file.
        path: PathBuf,
        /// The address looked up.
        ip: std::net::IpAddr,
        /// Reader error.
        source: maxminddb::MaxMindDbError,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Text that should be an IP address is not one.
    #[error("{context}: {input:?} is not an IPv4 or IPv6 address")]
    BadIp {
        /// The offending text.
        input: String,
        /// Where it came from (file:line or "command line").
        context: String,
    },
    /// A prefix or range is malformed.
    #[error("bad prefix or range {0}")]
    BadPrefix(String),
    /// The tree would exceed the format's 32-bit record limit.
    #[error("mmdb tree too large ({0} nodes)")]
    TooLarge(usize),
    /// A line of an input data file is malformed.
    #[error("{path}:{line}: {message}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An interest-group definition (preset or YAML file) is invalid.
    #[error("{source_name}: {message}")]
    Groups {
        /// Preset name or file path.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A region name or code matches no M49 area.
    #[error(
        "unknown UN M49 region {0:?} (use a region, sub-region or intermediate-region name or code)"
    )]
    UnknownRegion(String),
    /// A country code is not in the M49 table.
    #[error("unknown country code {0:?} (expected ISO 3166-1 alpha-2)")]
    UnknownCountry(String),
    /// A location string is neither a country code nor `LAT,LON`.
    #[error("bad location {0:?} (expected an ISO country code or LAT,LON)")]
    BadLocation(String),
}

/// Parses an IP address, naming `context` (file:line, "command line") on error.
pub fn parse_ip(input: &str, context: &str) -> Result<std::net::IpAddr, GeoError> {
    input
        .trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| GeoError::BadIp {
            input: input.to_string(),
            context: context.to_string(),
        })
}

/// The special-purpose block (RFC 6890 and successors) `ip` falls in, if any.
///
/// Public databases have no meaningful location for these (the pinned
/// ip-location-db country file even maps 2001:db8::/32 to JP), while the
/// virtual lab maps its 198.18.0.0/15 and fd00::/8 on purpose; lookups report
/// the block so callers can tell.
pub fn special_purpose(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    let in4 = |a: u32, net: [u8; 4], len: u32| {
        let n = u32::from_be_bytes(net);
        len == 0 || (a ^ n) >> (32 - len) == 0
    };
    let in6 = |a: u128, net: u128, len: u32| len == 0 || (a ^ net) >> (128 - len) == 0;
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            const V4: [([u8; 4], u32, &str); 15] = [
                ([0, 0, 0, 0], 8, "this network (RFC 791)"),
                ([10, 0, 0, 0], 8, "private (RFC 1918)"),
                ([100, 64, 0, 0], 10, "shared address space (RFC 6598)"),
                ([127, 0, 0, 0], 8, "loopback (RFC 1122)"),
                ([169, 254, 0, 0], 16, "link-local (RFC 3927)"),
                ([172, 16, 0, 0], 12, "private (RFC 1918)"),
                ([192, 0, 0, 0], 24, "IETF protocol assignments (RFC 6890)"),
                ([192, 0, 2, 0], 24, "documentation (RFC 5737)"),
                ([192, 168, 0, 0], 16, "private (RFC 1918)"),
                ([198, 18, 0, 0], 15, "benchmarking (RFC 2544)"),
                ([198, 51, 100, 0], 24, "documentation (RFC 5737)"),
                ([203, 0, 113, 0], 24, "documentation (RFC 5737)"),
                ([224, 0, 0, 0], 4, "multicast (RFC 5771)"),
                ([255, 255, 255, 255], 32, "broadcast (RFC 919)"),
                ([240, 0, 0, 0], 4, "reserved (RFC 1112)"),
            ];
            V4.iter()
                .find(|(n, l, _)| in4(a, *n, *l))
                .map(|(_, _, d)| *d)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            const V6: [(u128, u32, &str); 8] = [
                (0, 128, "unspecified (RFC 4291)"),
                (1, 128, "loopback (RFC 4291)"),
                (0x0100_0000_0000_0000 << 64, 64, "discard-only (RFC 6666)"),
                (0x2001_0db8 << 96, 32, "documentation (RFC 3849)"),
                (0xfc00 << 112, 7, "unique local (RFC 4193)"),
                (0xfe80 << 112, 10, "link-local (RFC 4291)"),
                (0xff00 << 112, 8, "multicast (RFC 4291)"),
                (0x3fff << 112, 20, "documentation (RFC 9637)"),
            ];
            V6.iter()
                .find(|(n, l, _)| in6(a, *n, *l))
                .map(|(_, _, d)| *d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_blocks() {
        let sp = |s: &str| special_purpose(s.parse().unwrap());
        assert_eq!(sp("198.19.255.1"), Some("benchmarking (RFC 2544)"));
        assert_eq!(sp("198.20.0.1"), None);
        assert_eq!(sp("8.8.8.8"), None);
        assert_eq!(sp("255.255.255.255"), Some("broadcast (RFC 919)"));
        assert_eq!(sp("2001:db8::1"), Some("documentation (RFC 3849)"));
        assert_eq!(sp("fd00::1"), Some("unique local (RFC 4193)"));
        assert_eq!(sp("::ffff:10.1.2.3"), Some("private (RFC 1918)"));
        assert_eq!(sp("::1"), Some("loopback (RFC 4291)"));
        assert_eq!(sp("2001:4860:4860::8888"), None);
    }
}
