//! Geo module: fixtures written by matador's own mmdb writer, read back by
//! the maxminddb crate and by libmaxminddb's `mmdblookup`; the shipped M49
//! and group tables; the installed real databases.

use assert_cmd::Command;
use matador::geo::db::{GeoDb, MmdbFile, default_geo_dir};
use matador::geo::diff::{diff, read_ip_list};
use matador::geo::groups::GroupSet;
use matador::geo::m49::M49;
use matador::geo::mmdb::{MmdbRecord, MmdbValue, MmdbWriter};
use matador::geo::{GeoError, asn_csv, parse_ip};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The matador binary, ready for arguments.
fn matador() -> Command {
    Command::cargo_bin("matador").unwrap()
}

/// Fails with the command's stderr unless it succeeded.
fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rec(cc: &str, asn: u32, org: &str) -> MmdbRecord {
    MmdbRecord {
        country_code: Some(cc.into()),
        asn: Some(asn),
        org: Some(org.into()),
    }
}

/// The lab's kind of database: 198.18.0.0/15 and fd00::/8 mapped to countries.
fn lab_db(dir: &Path, name: &str, moved: bool) -> PathBuf {
    let mut w = MmdbWriter::new("matador-lab", "virtual lab test fixture");
    w.insert(ip("198.18.0.0"), 16, rec("DE", 64500, "Lab Frankfurt"))
        .unwrap();
    w.insert(ip("198.19.0.0"), 16, rec("US", 64501, "Lab Ashburn"))
        .unwrap();
    // More specific after covering: splits the /16.
    w.insert(
        ip("198.18.5.0"),
        24,
        rec(if moved { "JP" } else { "FR" }, 64502, "Lab Paris"),
    )
    .unwrap();
    w.insert(ip("fd00::"), 8, rec("JP", 64503, "Lab Tokyo"))
        .unwrap();
    w.insert(ip("fd00:1::"), 32, rec("CH", 64504, "Lab Zürich"))
        .unwrap();
    let p = dir.join(name);
    w.write(&p).unwrap();
    p
}

#[test]
fn writer_output_reads_back_with_maxminddb() {
    let t = tempfile::tempdir().unwrap();
    let p = lab_db(t.path(), "lab.mmdb", false);
    let db = GeoDb::open(&p, Some(&p)).unwrap();
    let cases = [
        ("198.18.0.1", Some("DE"), Some(64500), "198.18.0.0/22"),
        ("198.18.5.77", Some("FR"), Some(64502), "198.18.5.0/24"),
        ("198.18.6.1", Some("DE"), Some(64500), "198.18.6.0/23"),
        ("198.19.255.255", Some("US"), Some(64501), "198.19.0.0/16"),
        ("fd00::1", Some("JP"), Some(64503), "fd00::/32"),
        ("fd00:1:2::3", Some("CH"), Some(64504), "fd00:1::/32"),
        // IPv4-mapped IPv6 is looked up as IPv4.
        (
            "::ffff:198.18.5.1",
            Some("FR"),
            Some(64502),
            "198.18.5.0/24",
        ),
    ];
    for (addr, cc, asn, net) in cases {
        let a = db.lookup(parse_ip(addr, "test").unwrap()).unwrap();
        assert_eq!(a.country.as_deref(), cc, "{addr}");
        assert_eq!(a.asn, asn, "{addr}");
        assert_eq!(a.country_network.as_deref(), Some(net), "{addr}");
    }
    let a = db.lookup(ip("fd00:1::1")).unwrap();
    assert_eq!(a.org.as_deref(), Some("Lab Zürich"));
    let path = db
        .countries_of(&[
            Some(ip("198.18.0.1")),
            None,
            Some(ip("192.0.2.1")),
            Some(ip("fd00:1::1")),
        ])
        .unwrap();
    assert_eq!(
        path,
        [Some("DE".to_string()), None, None, Some("CH".to_string())]
    );
    // Outside every prefix: no record.
    let a = db.lookup(ip("192.0.2.1")).unwrap();
    assert_eq!((a.country, a.asn, a.country_network), (None, None, None));
    assert_eq!(db.country_db().database_type(), "matador-lab");
    assert!(db.country_db().build_epoch() > 0);
}

#[test]
fn writer_output_reads_back_with_mmdblookup() {
    let t = tempfile::tempdir().unwrap();
    let p = lab_db(t.path(), "lab.mmdb", false);
    let run = |addr: &str, path: &[&str]| -> String {
        let out = std::process::Command::new("mmdblookup")
            .arg("-f")
            .arg(&p)
            .arg("-i")
            .arg(addr)
            .args(path)
            .output()
            .expect("mmdblookup (Debian mmdb-bin) is required: bash scripts/install-deps.sh");
        assert!(
            out.status.success(),
            "mmdblookup {addr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run("198.18.5.9", &["country_code"]).contains("\"FR\""));
    assert!(run("198.18.5.9", &["country", "iso_code"]).contains("\"FR\""));
    assert!(run("198.19.1.1", &["autonomous_system_number"]).contains("64501 <uint32>"));
    assert!(run("fd00:1::5", &["autonomous_system_organization"]).contains("Lab Zürich"));
    assert!(run("fd00:2::5", &["country_code"]).contains("\"JP\""));
    // IPv4-mapped IPv6 reaches the IPv4 subtree through the alias.
    assert!(run("::ffff:198.18.5.9", &["country_code"]).contains("\"FR\""));
}

#[test]
fn covering_prefix_inserted_later_replaces_the_specific_one() {
    let t = tempfile::tempdir().unwrap();
    let mut w = MmdbWriter::new("t", "t");
    w.insert(ip("198.18.5.0"), 24, rec("FR", 1, "a")).unwrap();
    w.insert(ip("198.18.0.0"), 16, rec("DE", 2, "b")).unwrap();
    assert!(w.insert(ip("198.18.0.0"), 33, rec("DE", 2, "b")).is_err());
    assert!(w.insert(ip("::"), 0, rec("DE", 2, "b")).is_err());
    let p = t.path().join("o.mmdb");
    w.write(&p).unwrap();
    let f = MmdbFile::open(&p, "country", "--geo-db").unwrap();
    assert_eq!(f.country(ip("198.18.5.1")).unwrap(), Some("DE"));
    assert_eq!(f.asn(ip("198.18.5.1")).unwrap(), Some(2));
}

#[test]
fn asn_csv_import_clips_overlaps() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("asn.csv");
    std::fs::write(
        &csv,
        "198.18.0.0,198.18.3.255,64500,\"Lab, Inc.\"\n\
         198.18.2.0,198.18.7.255,64501,Other\n\
         198.18.4.0,198.18.4.255,64502,Inside\n\
         fd00::,fd00::ffff,64503,V6\n",
    )
    .unwrap();
    let (w, stats) = asn_csv::import(&[csv.as_path()]).unwrap();
    assert_eq!((stats.ranges, stats.clipped, stats.dropped), (4, 1, 1));
    let out = t.path().join("asn.mmdb");
    w.write(&out).unwrap();
    let f = MmdbFile::open(&out, "ASN", "--asn-db").unwrap();
    let a = f.lookup(ip("198.18.1.1")).unwrap().unwrap();
    assert_eq!((a.asn, a.org), (Some(64500), Some("Lab, Inc.")));
    assert_eq!(f.asn(ip("198.18.3.1")).unwrap(), Some(64500)); // kept by the first
    assert_eq!(f.asn(ip("198.18.4.1")).unwrap(), Some(64501)); // "Inside" dropped
    assert_eq!(f.asn(ip("198.18.8.1")).unwrap(), None);
    assert_eq!(f.asn(ip("fd00::fff")).unwrap(), Some(64503));

    std::fs::write(&csv, "198.18.0.0,banana,1,x\n").unwrap();
    let e = asn_csv::import(&[csv.as_path()]).unwrap_err().to_string();
    assert!(e.contains("asn.csv:1") && e.contains("banana"), "{e}");
}

#[test]
fn missing_corrupt_db_and_bad_ip_name_the_problem() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope.mmdb");
    let e = GeoDb::open(&missing, None).unwrap_err().to_string();
    assert!(
        e.contains("nope.mmdb") && e.contains("install-deps.sh"),
        "{e}"
    );
    let corrupt = t.path().join("corrupt.mmdb");
    std::fs::write(&corrupt, b"this is not a database at all").unwrap();
    let e = GeoDb::open(&corrupt, None).unwrap_err();
    assert!(matches!(e, GeoError::CorruptDb { .. }));
    assert!(e.to_string().contains("corrupt.mmdb"), "{e}");
    let e = parse_ip("8.8.8.256", "list.txt:3").unwrap_err().to_string();
    assert!(e.contains("list.txt:3") && e.contains("8.8.8.256"), "{e}");
}

#[test]
fn diff_groups_changed_addresses_by_prefix() {
    let t = tempfile::tempdir().unwrap();
    let old = lab_db(t.path(), "old.mmdb", false);
    let new = lab_db(t.path(), "new.mmdb", true);
    let list = t.path().join("ips.txt");
    std::fs::write(
        &list,
        "# addresses\n198.18.5.1\n198.18.5.2 router\n198.18.0.1\n198.18.5.1\n\nfd00::1\n",
    )
    .unwrap();
    let ips = read_ip_list(&list).unwrap();
    assert_eq!(ips.len(), 5);
    let o = MmdbFile::open(&old, "old", "OLD").unwrap();
    let n = MmdbFile::open(&new, "new", "NEW").unwrap();
    let r = diff(&o, &n, &ips).unwrap();
    assert_eq!((r.compared, r.changed), (4, 2));
    assert_eq!(r.groups.len(), 1);
    let g = &r.groups[0];
    assert_eq!(g.prefix, "198.18.5.0/24");
    assert_eq!(
        (g.old.as_deref(), g.new.as_deref()),
        (Some("FR"), Some("JP"))
    );
    assert_eq!(g.addresses, vec![ip("198.18.5.1"), ip("198.18.5.2")]);

    std::fs::write(&list, "198.18.5.1\nnot-an-ip\n").unwrap();
    let e = read_ip_list(&list).unwrap_err().to_string();
    assert!(e.contains("ips.txt:2") && e.contains("not-an-ip"), "{e}");
}

#[test]
fn presets_match_the_issue_and_the_seed() {
    let count = |set: &GroupSet, id: &str| set.group(id).unwrap().members.len();
    let cur = GroupSet::preset("current").unwrap();
    assert_eq!(
        cur.groups.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["five_eyes", "eu", "arab_league", "russia", "china"]
    );
    assert_eq!(count(&cur, "five_eyes"), 5);
    assert_eq!(count(&cur, "eu"), 27);
    assert_eq!(count(&cur, "arab_league"), 22);
    assert!(!cur.group("eu").unwrap().contains("GB"));
    assert!(cur.group("five_eyes").unwrap().contains("au"));

    let pam = GroupSet::preset("pam2016").unwrap();
    let fe = pam.group("five_eyes").unwrap();
    assert_eq!(fe.members, ["GB", "US", "NZ", "CA"]);
    assert_eq!(count(&pam, "eu"), 28);
    assert!(pam.group("eu").unwrap().contains("GB"));
    assert_eq!(count(&pam, "arab_league"), 18);
    assert!(!pam.group("arab_league").unwrap().contains("SY"));
    assert_eq!(pam.group("russia").unwrap().members, ["RU"]);
    assert_eq!(pam.group("china").unwrap().members, ["CN"]);
    assert_eq!(pam.groups_of("GB"), ["five_eyes", "eu"]);

    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("groups.yaml");
    std::fs::write(
        &f,
        "extends: current\ngroups:\n  - id: nordics\n    name: Nordic\n    members: [DK, FI, IS, NO, SE]\n  - id: china\n    name: Greater China\n    members: [CN, HK, MO, TW]\n",
    )
    .unwrap();
    let s = GroupSet::resolve(f.to_str().unwrap()).unwrap();
    assert_eq!(s.groups.len(), 6);
    assert!(s.group("china").unwrap().contains("TW"));
    std::fs::write(&f, "groups:\n  - id: x\n    name: X\n    members: [ZZ]\n").unwrap();
    let e = GroupSet::resolve(f.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups.yaml") && e.contains("ZZ"), "{e}");
    std::fs::write(&f, "groups: [\n").unwrap();
    let e = GroupSet::resolve(f.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups.yaml"), "{e}");
    assert!(GroupSet::resolve("pam2015").is_err());
}

/// The shipped table equals the UNSD copy in shared/ (country by country).
#[test]
fn shipped_m49_matches_the_shared_unsd_copy() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/m49/UNSD-M49-en.csv");
    let text = std::fs::read_to_string(&shared).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the shared/ folder must sit beside the checkout",
            shared.display()
        )
    });
    let m = M49::shipped();
    let mut n = 0;
    for (i, line) in text
        .trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .skip(1)
    {
        let f = asn_csv::split_csv_line(line).unwrap();
        let c = m
            .country(&f[10])
            .unwrap_or_else(|| panic!("line {}: {} missing", i + 1, f[10]));
        assert_eq!(c.name, f[8]);
        assert_eq!(c.m49, f[9]);
        assert_eq!(c.iso3, f[11]);
        assert_eq!(
            c.region.as_ref().map(|a| a.code.as_str()).unwrap_or(""),
            f[2]
        );
        assert_eq!(
            c.region.as_ref().map(|a| a.name.as_str()).unwrap_or(""),
            f[3]
        );
        assert_eq!(
            c.subregion.as_ref().map(|a| a.code.as_str()).unwrap_or(""),
            f[4]
        );
        assert_eq!(
            c.intermediate
                .as_ref()
                .map(|a| a.name.as_str())
                .unwrap_or(""),
            f[7]
        );
        n += 1;
    }
    assert_eq!(n, m.countries().len());
    assert!(m.country("AQ").unwrap().region.is_none());
    assert_eq!(
        m.country("TW").unwrap().subregion.as_ref().unwrap().name,
        "Eastern Asia"
    );
}

/// The real databases installed by scripts/install-geo.sh.
#[test]
fn installed_real_databases_know_stable_facts() {
    let dir = default_geo_dir();
    let db = GeoDb::open_default(None, None).unwrap_or_else(|e| {
        panic!(
            "real geolocation databases missing in {} ({e}); run `bash scripts/install-deps.sh` first",
            dir.display()
        )
    });
    let a = db.lookup(ip("8.8.8.8")).unwrap();
    assert_eq!(a.country.as_deref(), Some("US"));
    assert_eq!(a.asn, Some(15169));
    assert_eq!(a.org.as_deref(), Some("Google LLC"));
    let a = db.lookup(ip("2001:4860:4860::8888")).unwrap();
    assert_eq!((a.country.as_deref(), a.asn), (Some("US"), Some(15169)));
    assert_eq!(db.lookup(ip("1.1.1.1")).unwrap().asn, Some(13335));
    let a = db.lookup(ip("193.0.14.129")).unwrap(); // k.root-servers.net, RIPE NCC
    assert_eq!((a.country.as_deref(), a.asn), (Some("NL"), Some(25152)));
    // The one clipped overlap of the ASN CSV: the later range keeps its tail.
    assert_eq!(db.lookup(ip("215.1.0.1")).unwrap().asn, Some(721));
    assert_eq!(db.lookup(ip("215.0.0.1")).unwrap().asn, Some(749));
    // Private space has no record.
    assert_eq!(db.lookup(ip("198.18.0.1")).unwrap().country, None);
}

#[test]
fn cli_lookup_json_and_errors() {
    let t = tempfile::tempdir().unwrap();
    let p = lab_db(t.path(), "lab.mmdb", false);
    let out = matador()
        .args(["geo", "lookup", "--json", "--groups", "pam2016", "--geo-db"])
        .arg(&p)
        .arg("--asn-db")
        .arg(&p)
        .args(["198.18.5.1", "198.19.0.1"])
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["country"], "FR");
    assert_eq!(v[0]["m49"]["region"]["name"], "Europe");
    assert_eq!(v[0]["groups"][0], "eu");
    assert_eq!(v[0]["asn"], 64502);
    assert_eq!(v[0]["special"], "benchmarking (RFC 2544)");
    assert_eq!(v[1]["groups"][0], "five_eyes");
    assert_eq!(v[1]["m49"]["subregion"]["name"], "Northern America");

    let out = matador()
        .args(["geo", "lookup", "--geo-db"])
        .arg(&p)
        .arg("--asn-db")
        .arg(&p)
        .arg("1.2.3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"1.2.3\" is not an IPv4 or IPv6 address"),
        "{err}"
    );

    let out = matador()
        .args([
            "geo",
            "lookup",
            "--asn-db",
            "/nonexistent/asn.mmdb",
            "8.8.8.8",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/asn.mmdb") && err.contains("install"),
        "{err}"
    );

    let out = matador()
        .args(["geo", "check", "--from", "DE", "--rtt", "20", "AU"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Implausible"));
}

/// Truncated, empty and byte-flipped files give errors naming the file, never
/// a panic.
#[test]
fn damaged_databases_fail_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let good = std::fs::read(lab_db(t.path(), "lab.mmdb", false)).unwrap();
    let p = t.path().join("bad.mmdb");
    std::fs::write(&p, b"").unwrap();
    let e = MmdbFile::open(&p, "country", "--geo-db").unwrap_err();
    assert!(e.to_string().contains("bad.mmdb"), "{e}");
    std::fs::write(&p, &good[..good.len() / 2]).unwrap();
    let e = MmdbFile::open(&p, "country", "--geo-db").unwrap_err();
    assert!(matches!(e, GeoError::CorruptDb { .. }), "{e}");
    let probes = [
        "198.18.0.1",
        "198.18.5.1",
        "198.19.3.3",
        "fd00:1::1",
        "fd00::9",
    ];
    let mut lookup_errors = 0;
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        let Ok(f) = MmdbFile::open(&p, "country", "--geo-db") else {
            continue;
        };
        for a in probes {
            if let Err(e) = f.lookup(ip(a)) {
                assert!(e.to_string().contains("bad.mmdb"), "{e}");
                lookup_errors += 1;
            }
        }
    }
    // Damage in the tree or data section must surface as lookup errors.
    assert!(lookup_errors > 0);
}

#[test]
fn whole_database_diff_finds_changed_and_removed_prefixes() {
    let t = tempfile::tempdir().unwrap();
    let old = lab_db(t.path(), "old.mmdb", false);
    let new = lab_db(t.path(), "new.mmdb", true);
    let o = MmdbFile::open(&old, "old", "OLD").unwrap();
    let n = MmdbFile::open(&new, "new", "NEW").unwrap();
    let r = matador::geo::diff::diff_all(&o, &n).unwrap();
    let rows: Vec<_> = r
        .groups
        .iter()
        .map(|g| (g.prefix.as_str(), g.old.as_deref(), g.new.as_deref()))
        .collect();
    assert_eq!(rows, [("198.18.5.0/24", Some("FR"), Some("JP"))]);
    assert!(
        matador::geo::diff::diff_all(&o, &o)
            .unwrap()
            .groups
            .is_empty()
    );

    // A database where 198.19.0.0/17 lost its record and fd00:1::/32 moved.
    let mut w = MmdbWriter::new("t", "t");
    w.insert_cidr("198.18.0.0/16", rec("DE", 64500, "a"))
        .unwrap();
    w.insert_cidr("198.18.5.0/24", rec("FR", 64502, "b"))
        .unwrap();
    w.insert_cidr("198.19.128.0/17", rec("US", 64501, "c"))
        .unwrap();
    w.insert_cidr("fd00::/8", rec("JP", 64503, "d")).unwrap();
    let p = t.path().join("third.mmdb");
    w.write(&p).unwrap();
    let third = MmdbFile::open(&p, "new", "NEW").unwrap();
    let r = matador::geo::diff::diff_all(&o, &third).unwrap();
    let rows: Vec<_> = r
        .groups
        .iter()
        .map(|g| (g.prefix.as_str(), g.old.as_deref(), g.new.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("198.19.0.0/17", Some("US"), None),
            ("fd00:1::/32", Some("CH"), Some("JP")),
        ]
    );
}

/// GeoLite2-Country / -ASN, ip2location and ipinfo-style field layouts.
#[test]
fn other_vendors_layouts_are_understood() {
    let t = tempfile::tempdir().unwrap();
    let s = MmdbValue::str;
    let mut w = MmdbWriter::new("GeoLite2-Country", "GeoLite2 layout fixture");
    let geolite = |iso: &str| {
        MmdbValue::map([
            (
                "continent",
                MmdbValue::map([("code", s("EU")), ("geoname_id", MmdbValue::U32(6255148))]),
            ),
            (
                "country",
                MmdbValue::map([
                    ("geoname_id", MmdbValue::U32(2921044)),
                    ("is_in_european_union", MmdbValue::Bool(true)),
                    ("iso_code", s(iso)),
                    (
                        "names",
                        MmdbValue::map([("de", s("Deutschland")), ("en", s("Germany"))]),
                    ),
                ]),
            ),
            (
                "location",
                MmdbValue::map([("latitude", MmdbValue::Double(51.5))]),
            ),
        ])
    };
    w.insert_value(ip("198.18.0.0"), 16, &geolite("DE"))
        .unwrap();
    // Only a registered country (e.g. anycast or satellite ranges).
    let reg = MmdbValue::map([(
        "registered_country",
        MmdbValue::map([("iso_code", s("SE"))]),
    )]);
    w.insert_value(ip("198.19.0.0"), 24, &reg).unwrap();
    // ip2location: country object with "-" for unknown.
    let i2l = MmdbValue::map([(
        "country",
        MmdbValue::map([
            ("iso_code", s("-")),
            ("names", MmdbValue::map([("en", s("-"))])),
        ]),
    )]);
    w.insert_value(ip("198.19.1.0"), 24, &i2l).unwrap();
    // ipinfo-style: plain strings.
    let ipinfo = MmdbValue::map([
        ("country", s("CH")),
        ("asn", s("AS64510")),
        ("as_name", s("Lab Bern")),
        ("continent", s("EU")),
    ]);
    w.insert_value(ip("fd00::"), 8, &ipinfo).unwrap();
    let country = t.path().join("GeoLite2-Country.mmdb");
    w.write(&country).unwrap();

    let mut w = MmdbWriter::new("GeoLite2-ASN", "GeoLite2 ASN layout fixture");
    let asn = MmdbValue::map([
        ("autonomous_system_number", MmdbValue::U32(64500)),
        ("autonomous_system_organization", s("Lab AS")),
    ]);
    w.insert_value(ip("198.18.0.0"), 15, &asn).unwrap();
    let asn_p = t.path().join("GeoLite2-ASN.mmdb");
    w.write(&asn_p).unwrap();

    let db = GeoDb::open(&country, Some(&asn_p)).unwrap();
    let a = db.lookup(ip("198.18.1.1")).unwrap();
    assert_eq!(a.country.as_deref(), Some("DE"));
    assert_eq!((a.asn, a.org.as_deref()), (Some(64500), Some("Lab AS")));
    assert_eq!(
        db.lookup(ip("198.19.0.1")).unwrap().country.as_deref(),
        Some("SE")
    );
    let a = db.lookup(ip("198.19.1.1")).unwrap();
    assert_eq!(
        (a.country, a.country_network.as_deref()),
        (None, Some("198.19.1.0/24"))
    );
    let f = MmdbFile::open(&country, "country", "--geo-db").unwrap();
    let a = f.lookup(ip("fd00::1")).unwrap().unwrap();
    assert_eq!(
        (a.country, a.asn, a.org),
        (Some("CH"), Some(64510), Some("Lab Bern"))
    );
    // mmdblookup reads the nested layout too.
    let out = std::process::Command::new("mmdblookup")
        .arg("-f")
        .arg(&country)
        .args(["-i", "198.18.3.3", "country", "names", "de"])
        .output()
        .expect("mmdblookup (Debian mmdb-bin) is required: bash scripts/install-deps.sh");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Deutschland"));
}

#[test]
fn cli_finds_databases_through_matador_geo_dir() {
    let t = tempfile::tempdir().unwrap();
    let p = lab_db(t.path(), "lab.mmdb", false);
    let dir = t.path().join("geo");
    std::fs::create_dir(&dir).unwrap();
    let out = matador()
        .env("MATADOR_GEO_DIR", &dir)
        .args(["geo", "lookup", "198.18.5.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.join("country.mmdb").display().to_string())
            && err.contains("install-deps.sh"),
        "{err}"
    );
    std::fs::copy(&p, dir.join("country.mmdb")).unwrap();
    std::fs::copy(&p, dir.join("asn.mmdb")).unwrap();
    let out = matador()
        .env("MATADOR_GEO_DIR", &dir)
        .args(["geo", "lookup", "198.18.5.1"])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("country: FR") && text.contains("AS64502 Lab Paris"),
        "{text}"
    );
    assert!(text.contains("150 Europe / 155 Western Europe"), "{text}");
}

/// The presets as `matador geo groups` prints them (reviewed snapshots).
#[test]
fn cli_groups_snapshots() {
    for preset in ["current", "pam2016"] {
        let out = matador().args(["geo", "groups", preset]).output().unwrap();
        assert_ok(&out);
        insta::assert_snapshot!(
            format!("groups_{preset}"),
            String::from_utf8(out.stdout).unwrap()
        );
    }
}

#[test]
fn cli_check_path_flags_a_country_jump() {
    let t = tempfile::tempdir().unwrap();
    let p = lab_db(t.path(), "lab.mmdb", false);
    let hops = t.path().join("hops.txt");
    std::fs::write(
        &hops,
        "198.18.0.1 2.0\n* *\n198.18.5.1 9.5\nfd00::1 11.0ms\n",
    )
    .unwrap();
    let out = matador()
        .args(["geo", "check-path", "--json", "--from", "DE", "--geo-db"])
        .arg(&p)
        .arg(&hops)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["verdict"]["status"].as_str().unwrap().to_string())
        .collect();
    // DE, silent, FR (neighbour: fine), JP 1.5 ms after FR and 11 ms from DE.
    assert_eq!(status, ["plausible", "unknown", "plausible", "implausible"]);
    let reasons = v[3]["verdict"]["reasons"].to_string();
    assert!(
        reasons.contains("JP") && reasons.contains("jump FR (hop 3) → JP (hop 4)"),
        "{reasons}"
    );

    std::fs::write(&hops, "198.18.0.1 fast\n").unwrap();
    let out = matador()
        .args(["geo", "check-path", "--geo-db"])
        .arg(&p)
        .arg(&hops)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hops.txt:1: bad RTT \"fast\""));
}

/// A classic pcap, Ethernet link type, one UDP packet per address pair.
fn write_pcap(path: &Path, pairs: &[([u8; 4], [u8; 4])]) {
    let mut buf = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for (i, (s, d)) in pairs.iter().enumerate() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(*s, *d, 64)
            .udp(40000, 443);
        let mut p = Vec::new();
        b.write(&mut p, b"hello").unwrap();
        for v in [i as u32 + 1, 0, p.len() as u32, p.len() as u32] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        buf.extend_from_slice(&p);
    }
    std::fs::write(path, buf).unwrap();
}

#[test]
fn cli_diff_reads_captures_and_campaign_folders() {
    let t = tempfile::tempdir().unwrap();
    let old = lab_db(t.path(), "old.mmdb", false);
    let new = lab_db(t.path(), "new.mmdb", true);
    // A campaign-like folder: captures of two measurements, plus a file that
    // is not a capture (ignored inside directories).
    let m1 = t.path().join("camp/measurements/m0001");
    let m2 = t.path().join("camp/measurements/m0002");
    std::fs::create_dir_all(&m1).unwrap();
    std::fs::create_dir_all(&m2).unwrap();
    write_pcap(
        &m1.join("capture-router-phone-a.pcap"),
        &[([198, 18, 0, 9], [198, 18, 5, 7])],
    );
    write_pcap(
        &m2.join("capture-node-de-1.pcap"),
        &[([198, 18, 5, 8], [198, 19, 0, 1])],
    );
    std::fs::write(m2.join("events.jsonl"), "{}\n").unwrap();
    let run = |inputs: &[&Path]| {
        let out = matador()
            .args(["geo", "diff", "--json"])
            .arg(&old)
            .arg(&new)
            .args(inputs)
            .output()
            .unwrap();
        assert_ok(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // One capture: 198.18.0.9 (DE both) and 198.18.5.7 (FR → JP).
    let v = run(&[&m1.join("capture-router-phone-a.pcap")]);
    assert_eq!(
        (v["compared"].as_u64(), v["changed"].as_u64()),
        (Some(2), Some(1))
    );
    // The folder: four distinct addresses, two of them moved.
    let v = run(&[&t.path().join("camp")]);
    assert_eq!(
        (v["compared"].as_u64(), v["changed"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(v["groups"][0]["prefix"], "198.18.5.0/24");
    assert_eq!(v["groups"][0]["addresses"][0], "198.18.5.7");
    assert_eq!(v["groups"][0]["addresses"][1], "198.18.5.8");
    // A directory without captures is an error naming it.
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = matador()
        .args(["geo", "diff"])
        .arg(&old)
        .arg(&new)
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty") && err.contains("no pcap"), "{err}");
}
