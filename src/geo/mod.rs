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
