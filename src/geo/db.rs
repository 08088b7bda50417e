//! Country and ASN lookups from memory-mapped mmdb files.
//!
//! Field layouts differ between database vendors; one record type reads them
//! all: `country_code` (ip-location-db, matador's own files),
//! `country.iso_code` / `registered_country.iso_code` (MaxMind GeoIP2 /
//! GeoLite2, ip2location's mmdb), `country` as a plain string (ipinfo-style);
//! `autonomous_system_number` / `autonomous_system_organization` (GeoLite2-ASN,
//! matador) and `asn` (number or `"AS15169"`) with `as_name` / `as_org` /
//! `org` / `organization`.

use super::GeoError;
use maxminddb::{Mmap, Reader};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// File name of the default country database inside the geo directory.
pub const COUNTRY_FILE: &str = "country.mmdb";
/// File name of the default ASN database inside the geo directory.
pub const ASN_FILE: &str = "asn.mmdb";
/// Environment variable naming the directory of the default databases.
pub const GEO_DIR_ENV: &str = "MATADOR_GEO_DIR";

/// A network as (start address, prefix length).
pub type Network = (IpAddr, u8);

/// One opened, memory-mapped mmdb file.
#[derive(Debug)]
pub struct MmdbFile {
    path: PathBuf,
    reader: Reader<Mmap>,
}

/// `country` is an object in GeoIP2 layouts and a string in some others.
#[derive(Deserialize)]
#[serde(untagged)]
enum CountryField<'a> {
    Code(&'a str),
    Object {
        #[serde(borrow, default)]
        iso_code: Option<&'a str>,
    },
}

/// `asn` is a number in some layouts and `"AS123"` in others.
#[derive(Deserialize)]
#[serde(untagged)]
enum AsnField<'a> {
    Num(u32),
    Text(&'a str),
}

#[derive(Deserialize)]
struct IsoOnly<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// The union of the supported record layouts.
#[derive(Deserialize, Default)]
struct AnyRecord<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<CountryField<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<IsoOnly<'a>>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
    #[serde(borrow, default)]
    asn: Option<AsnField<'a>>,
    #[serde(borrow, default)]
    as_name: Option<&'a str>,
    #[serde(borrow, default)]
    as_org: Option<&'a str>,
    #[serde(borrow, default)]
    org: Option<&'a str>,
    #[serde(borrow, default)]
    organization: Option<&'a str>,
}

impl<'a> AnyRecord<'a> {
    fn country(&self) -> Option<&'a str> {
        let c = self
            .country_code
            .or(match &self.country {
                Some(CountryField::Code(c)) => Some(*c),
                Some(CountryField::Object { iso_code }) => *iso_code,
                None => None,
            })
            .or(self.registered_country.as_ref().and_then(|r| r.iso_code))?;
        // ip2location writes "-" for unknown.
        (!c.is_empty() && c != "-").then_some(c)
    }

    fn asn(&self) -> Option<u32> {
        self.autonomous_system_number.or(match &self.asn {
            Some(AsnField::Num(n)) => Some(*n),
            Some(AsnField::Text(t)) => t
                .trim_start_matches("AS")
                .trim_start_matches("as")
                .parse()
                .ok(),
            None => None,
        })
    }

    fn org(&self) -> Option<&'a str> {
        self.autonomous_system_organization
            .or(self.as_name)
            .or(self.as_org)
            .or(self.organization)
            .or(self.org)
    }
}

/// What one database says about one address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MmdbAnswer<'a> {
    /// ISO 3166-1 alpha-2 country code, when the record has one.
    pub country: Option<&'a str>,
    /// Autonomous system number, when the record has one.
    pub asn: Option<u32>,
    /// AS organisation, when the record has one.
    pub org: Option<&'a str>,
    /// The most specific network of the database containing the address.
    pub network: String,
}

impl MmdbFile {
    /// Opens (memory-maps) and checks an mmdb file; `what`/`flag` name it in
    /// the missing-file error.
    pub fn open(path: &Path, what: &'static str, flag: &'static str) -> Result<Self, GeoError> {
        if !path.is_file() {
            return Err(GeoError::MissingDb {
                what,
                path: path.to_path_buf(),
                flag,
            });
        }
        // SAFETY: the map is read-only; the database files are written by
        // rename (install-geo.sh, MmdbWriter::write), never modified in place,
        // so the mapped bytes do not change under the reader.
        #[allow(unsafe_code)]
        let reader = unsafe { Reader::open_mmap(path) }.map_err(|source| GeoError::CorruptDb {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(MmdbFile {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// The file this database was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `database_type` from the metadata.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Build time from the metadata (seconds since 1970).
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// IPv6 addresses have no record in an IPv4-only database.
    fn v6_in_v4_db(&self, ip: IpAddr) -> bool {
        self.reader.metadata().ip_version == 4 && ip.to_canonical().is_ipv6()
    }

    fn record(&self, ip: IpAddr) -> Result<Option<(AnyRecord<'_>, String)>, GeoError> {
        let err = |source| GeoError::Lookup {
            path: self.path.clone(),
            ip,
            source,
        };
        if self.v6_in_v4_db(ip) {
            return Ok(None);
        }
        let res = self.reader.lookup(ip.to_canonical()).map_err(err)?;
        let rec: Option<AnyRecord<'_>> = res.decode().map_err(err)?;
        match rec {
            Some(r) => {
                let net = res.network().map_err(err)?;
                Ok(Some((r, net.to_string())))
            }
            None => Ok(None),
        }
    }

    /// The raw record for `ip` (borrowed from the map), if any.
    fn any_record(&self, ip: IpAddr) -> Result<Option<AnyRecord<'_>>, GeoError> {
        if self.v6_in_v4_db(ip) {
            return Ok(None);
        }
        let err = |source| GeoError::Lookup {
            path: self.path.clone(),
            ip,
            source,
        };
        self.reader
            .lookup(ip.to_canonical())
            .map_err(err)?
            .decode()
            .map_err(err)
    }

    /// Country code only: the fast path (no allocation).
    pub fn country(&self, ip: IpAddr) -> Result<Option<&str>, GeoError> {
        Ok(self.any_record(ip)?.and_then(|r| r.country()))
    }

    /// ASN only: the fast path (no allocation).
    pub fn asn(&self, ip: IpAddr) -> Result<Option<u32>, GeoError> {
        Ok(self.any_record(ip)?.and_then(|r| r.asn()))
    }

    /// Country of `ip` and the database's network containing it (also when
    /// the database has no record there), as (start address, prefix length).
    pub fn country_in_network(
        &self,
        ip: IpAddr,
    ) -> Result<(Option<&str>, Option<Network>), GeoError> {
        if self.v6_in_v4_db(ip) {
            return Ok((None, None));
        }
        let err = |source| GeoError::Lookup {
            path: self.path.clone(),
            ip,
            source,
        };
        let res = self.reader.lookup(ip.to_canonical()).map_err(err)?;
        let rec: Option<AnyRecord<'_>> = res.decode().map_err(err)?;
        let net = res.network().map_err(err)?;
        Ok((
            rec.and_then(|r| r.country()),
            Some(normalise_network(net.network(), net.prefix())),
        ))
    }

    /// Every network of the database's tree, with or without a record, as
    /// (start, length) with IPv4 networks in IPv4 form.
    pub fn networks(&self) -> Result<Vec<Network>, GeoError> {
        let err = |source| GeoError::CorruptDb {
            path: self.path.clone(),
            source,
        };
        let mut out = Vec::new();
        for r in self
            .reader
            .networks(maxminddb::WithinOptions::default().include_networks_without_data())
            .map_err(err)?
        {
            let r = r.map_err(err)?;
            let net = r.network().map_err(err)?;
            out.push(normalise_network(net.network(), net.prefix()));
        }
        Ok(out)
    }

    /// Everything the record says, with the matching network; `None` when
    /// the database has no record for the address.
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<MmdbAnswer<'_>>, GeoError> {
        Ok(self.record(ip)?.map(|(r, network)| MmdbAnswer {
            country: r.country(),
            asn: r.asn(),
            org: r.org(),
            network,
        }))
    }
}

/// `::a.b.c.d/96+n` (the IPv4 subtree of an IPv6 tree) becomes `a.b.c.d/n`.
fn normalise_network(addr: IpAddr, len: u8) -> Network {
    match addr {
        IpAddr::V6(v6) if len >= 96 && u128::from(v6) >> 32 == 0 => (
            IpAddr::V4(std::net::Ipv4Addr::from(u128::from(v6) as u32)),
            len - 96,
        ),
        a => (a, len),
    }
}

/// Where the default databases live: `$MATADOR_GEO_DIR`, else the first
/// `.geo-db/` found above the running binary (a checkout's `target/…/matador`)
/// or above the current directory, else the build's project folder.
pub fn default_geo_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(GEO_DIR_ENV) {
        return PathBuf::from(d);
    }
    let mut starts = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    for s in starts {
        for dir in s.ancestors() {
            let cand = dir.join(".geo-db");
            if cand.is_dir() {
                return cand;
            }
        }
    }
    crate::source_dir().join(".geo-db")
}

/// Country and ASN databases used together; either may be the same file
/// (matador's lab databases hold both).
#[derive(Debug)]
pub struct GeoDb {
    country: MmdbFile,
    asn: Option<MmdbFile>,
}

/// Full answer for one address: what `matador geo lookup` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GeoAnswer {
    /// The address.
    pub ip: IpAddr,
    /// Country code, if known.
    pub country: Option<String>,
    /// The country database's network containing the address.
    pub country_network: Option<String>,
    /// Country database file that answered.
    pub country_db: String,
    /// Autonomous system number, if known.
    pub asn: Option<u32>,
    /// AS organisation, if known.
    pub org: Option<String>,
    /// Special-purpose block of the address (private, documentation, …),
    /// whose database answers are not real locations.
    pub special: Option<&'static str>,
    /// The ASN database's network containing the address.
    pub asn_network: Option<String>,
    /// ASN database file that answered (if one is open).
    pub asn_db: Option<String>,
}

impl GeoDb {
    /// Opens the country database and optionally an ASN database.
    pub fn open(country: &Path, asn: Option<&Path>) -> Result<Self, GeoError> {
        let country = MmdbFile::open(country, "country", "--geo-db")?;
        let asn = asn
            .map(|p| MmdbFile::open(p, "ASN", "--asn-db"))
            .transpose()?;
        Ok(GeoDb { country, asn })
    }

    /// Opens the installed defaults from [`default_geo_dir`], with optional
    /// overrides; both files are required.
    pub fn open_default(country: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoError> {
        let dir = default_geo_dir();
        let c = country.map_or_else(|| dir.join(COUNTRY_FILE), Path::to_path_buf);
        let a = asn.map_or_else(|| dir.join(ASN_FILE), Path::to_path_buf);
        Self::open(&c, Some(&a))
    }

    /// The country database.
    pub fn country_db(&self) -> &MmdbFile {
        &self.country
    }

    /// The ASN database, if any.
    pub fn asn_db(&self) -> Option<&MmdbFile> {
        self.asn.as_ref()
    }

    /// Country code of `ip` (fast path).
    pub fn country(&self, ip: IpAddr) -> Result<Option<&str>, GeoError> {
        self.country.country(ip)
    }

    /// Countries of a path's hops (`None` for silent hops and addresses
    /// without a record), ready for [`super::locality`].
    pub fn countries_of(&self, hops: &[Option<IpAddr>]) -> Result<Vec<Option<String>>, GeoError> {
        hops.iter()
            .map(|h| match h {
                Some(ip) => Ok(self.country(*ip)?.map(str::to_string)),
                None => Ok(None),
            })
            .collect()
    }

    /// Country and ASN of `ip` with the networks and files that answered.
    pub fn lookup(&self, ip: IpAddr) -> Result<GeoAnswer, GeoError> {
        let c = self.country.lookup(ip)?;
        let a = match &self.asn {
            Some(db) => db.lookup(ip)?,
            None => None,
        };
        Ok(GeoAnswer {
            ip,
            country: c.as_ref().and_then(|c| c.country.map(str::to_string)),
            country_network: c.as_ref().map(|c| c.network.clone()),
            country_db: self.country.path.display().to_string(),
            asn: a.as_ref().and_then(|a| a.asn),
            org: a.as_ref().and_then(|a| a.org.map(str::to_string)),
            special: super::special_purpose(ip),
            asn_network: a.as_ref().map(|a| a.network.clone()),
            asn_db: self.asn.as_ref().map(|d| d.path.display().to_string()),
        })
    }
}
