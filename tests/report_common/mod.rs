//! Shared helpers of the report tests: the fixture campaigns and the lab
//! mmdb their addresses are geolocated with (written with
//! `geo::mmdb::MmdbWriter`, so lookups are real).
#![allow(dead_code)]

use matador::geo::db::GeoDb;
use matador::geo::mmdb::{MmdbRecord, MmdbWriter};
use std::path::{Path, PathBuf};

/// The fixture campaigns folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/campaigns")
}

/// Prefix → (country, ASN, AS organisation) of the fixture's lab world.
/// 198.18.15.0/24 is deliberately absent (unknown geolocation).
pub const PREFIXES: &[(&str, &str, u32, &str)] = &[
    ("198.18.1.0/24", "DE", 64501, "Lab node DE"),
    ("198.18.2.0/24", "FR", 64502, "Lab node FR"),
    ("198.18.3.0/24", "JP", 64503, "Lab node JP"),
    ("198.18.4.0/24", "CN", 64504, "Lab node CN"),
    ("198.18.5.0/24", "AR", 64505, "Lab node AR"),
    ("198.18.6.0/24", "BR", 64506, "Lab node BR"),
    ("198.18.10.0/24", "NL", 64510, "Lab transit NL"),
    ("198.18.11.0/24", "US", 64511, "Lab transit US"),
    ("198.18.12.0/24", "CH", 64512, "Lab transit CH"),
    ("198.18.13.0/24", "GB", 64513, "Lab transit GB"),
    ("198.18.14.0/24", "SG", 64514, "Lab transit SG"),
    ("198.18.20.0/24", "US", 64520, "Lab WhatsApp"),
    ("198.18.21.0/24", "CH", 64521, "Lab Threema"),
    ("198.18.22.0/24", "CN", 64522, "Lab Tencent CN"),
    ("198.18.23.0/24", "HK", 64523, "Lab Tencent HK"),
    ("198.18.24.0/24", "US", 64524, "Lab Signal"),
    ("198.18.40.0/24", "US", 64540, "Lab Google"),
    ("fd00:5::/32", "AR", 64505, "Lab node AR"),
    ("fd00:6::/32", "BR", 64506, "Lab node BR"),
    ("fd00:11::/32", "US", 64511, "Lab transit US"),
];

/// Writes an mmdb (country + ASN) with the given prefixes to `path`.
pub fn write_mmdb(path: &Path, prefixes: &[(&str, &str, u32, &str)]) {
    let mut w = MmdbWriter::new("matador-lab", "report test lab");
    w.set_build_epoch(1_700_000_000);
    for (cidr, cc, asn, org) in prefixes {
        w.insert_cidr(
            cidr,
            MmdbRecord {
                country_code: Some(cc.to_string()),
                asn: Some(*asn),
                org: Some(org.to_string()),
            },
        )
        .unwrap();
    }
    w.write(path).unwrap();
}

/// The fixture's lab mmdb in `dir` (file name `lab.mmdb`, so reports do not
/// depend on the temporary folder), opened as country and ASN database.
pub fn lab_db(dir: &Path) -> (PathBuf, GeoDb) {
    let p = dir.join("lab.mmdb");
    write_mmdb(&p, PREFIXES);
    let db = GeoDb::open(&p, Some(&p)).unwrap();
    (p, db)
}

/// An older database: the Threema prefix was in DE and the US transit in CA.
pub fn old_db(dir: &Path) -> PathBuf {
    let p = dir.join("old.mmdb");
    let changed: Vec<(&str, &str, u32, &str)> = PREFIXES
        .iter()
        .map(|&(c, cc, a, o)| match c {
            "198.18.21.0/24" => (c, "DE", a, o),
            "198.18.11.0/24" => (c, "CA", a, o),
            _ => (c, cc, a, o),
        })
        .collect();
    write_mmdb(&p, &changed);
    p
}

/// Country of an address by the fixture table (independent of the mmdb reader).
pub fn country_of(ip: std::net::IpAddr) -> Option<&'static str> {
    PREFIXES.iter().find_map(|(cidr, cc, _, _)| {
        let (net, len) = cidr.split_once('/').unwrap();
        let net: std::net::IpAddr = net.parse().unwrap();
        let len: u32 = len.parse().unwrap();
        let inside = match (ip, net) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
                (u32::from(a) ^ u32::from(n)) >> (32 - len) == 0
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => {
                (u128::from(a) ^ u128::from(n)) >> (128 - len) == 0
            }
            _ => false,
        };
        inside.then_some(*cc)
    })
}
