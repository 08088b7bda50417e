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

/// Countries of synthetic campaigns; country `i` owns 198.19.i.0/24.
pub const SYNTH_COUNTRIES: &[&str] = &[
    "DE", "FR", "GB", "NL", "CH", "NO", "US", "CA", "AR", "BR", "JP", "CN", "AU", "NZ", "SG", "HK",
    "IT", "ES", "SE", "PL", "RU", "IN", "KR", "ZA", "EG", "MX", "TR", "IR", "SA", "KE",
];

fn synth_index(cc: &str) -> usize {
    SYNTH_COUNTRIES
        .iter()
        .position(|c| *c == cc)
        .unwrap_or_else(|| panic!("{cc} is not a synthetic country"))
}

/// The mmdb of synthetic campaigns.
pub fn synth_db(dir: &Path) -> GeoDb {
    let p = dir.join("synth.mmdb");
    let cidrs: Vec<String> = (0..SYNTH_COUNTRIES.len())
        .map(|i| format!("198.19.{i}.0/24"))
        .collect();
    let prefixes: Vec<(&str, &str, u32, &str)> = cidrs
        .iter()
        .zip(SYNTH_COUNTRIES)
        .enumerate()
        .map(|(i, (c, cc))| (c.as_str(), *cc, 65000 + i as u32, "Synthetic AS"))
        .collect();
    write_mmdb(&p, &prefixes);
    GeoDb::open(&p, Some(&p)).unwrap()
}

/// Address of the `k`-th host of a synthetic country.
pub fn synth_addr(cc: &str, k: usize) -> String {
    format!("198.19.{}.{}", synth_index(cc), k)
}

/// One pair run of a synthetic campaign: vantage countries, the direct
/// path's countries, and per app the application paths' countries (each
/// path starts at a vantage and ends at the server's country).
pub struct RunSpec {
    /// Sender and receiver countries (nodes `<cc>-1`).
    pub pair: (&'static str, &'static str),
    /// Repetition.
    pub repetition: u32,
    /// Countries of the direct path, from the sender's node to the receiver's.
    pub network: Vec<&'static str>,
    /// (app, application paths).
    pub apps: Vec<(&'static str, Vec<Vec<&'static str>>)>,
}

fn synth_trace(countries: &[&str], hop_base: usize) -> serde_json::Value {
    let src = synth_addr(countries[0], 1);
    let dst_cc = countries[countries.len() - 1];
    let mut result = Vec::new();
    let mut rtt = 1.0;
    for (i, cc) in countries.iter().enumerate().skip(1) {
        rtt += 40.0;
        let addr = if i == countries.len() - 1 {
            synth_addr(dst_cc, hop_base)
        } else {
            synth_addr(cc, 10 + i)
        };
        result.push(serde_json::json!({"hop": i, "result": [
            {"from": addr, "rtt": rtt, "ttl": 60, "size": 44},
            {"x": "*"}
        ]}));
    }
    serde_json::json!({
        "af": 4, "src_addr": src, "dst_addr": synth_addr(dst_cc, hop_base),
        "proto": "TCP", "paris_id": 1, "timestamp": 1700000000, "result": result
    })
}

fn app_server_host(app: &str) -> usize {
    200 + app.bytes().map(usize::from).sum::<usize>() % 50
}

/// Writes a synthetic campaign folder following docs/campaign-record.md.
pub fn write_synthetic(dir: &Path, runs: &[RunSpec]) {
    let w = |p: &Path, v: &serde_json::Value| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, serde_json::to_vec(v).unwrap()).unwrap();
    };
    let node = |cc: &str| format!("{}-1", cc.to_ascii_lowercase());
    let nodes: Vec<serde_json::Value> = SYNTH_COUNTRIES
        .iter()
        .map(|cc| serde_json::json!({"name": node(cc), "country": cc, "addr": synth_addr(cc, 1), "kind": "node"}))
        .collect();
    w(
        &dir.join("lab.json"),
        &serde_json::json!({"schema": "matador/lab/1", "nodes": nodes, "phones": []}),
    );
    let mut index = Vec::new();
    let mut n = 0;
    for r in runs {
        let (s, rc) = r.pair;
        for (ai, (app, paths)) in r.apps.iter().enumerate() {
            n += 1;
            let id = format!("m{n:05}");
            let entry = serde_json::json!({
                "id": id, "kind": "message", "app": app,
                "sender": "phone-a", "receiver": "phone-b",
                "sender_country": s, "receiver_country": rc,
                "sender_node": node(s), "receiver_node": node(rc),
                "repetition": r.repetition, "messages": 2, "status": "complete",
                "error": null, "started": "1700000000.0", "ended": "1700000040.0",
                "files": ["analysis.json"]
            });
            let mdir = dir.join("measurements").join(&id);
            w(&mdir.join("meta.json"), &entry);
            index.push(entry);
            let host = app_server_host(app);
            let mut servers = Vec::new();
            for p in paths {
                let server_cc = p[p.len() - 1];
                let ip = synth_addr(server_cc, host);
                w(
                    &mdir
                        .join("traces")
                        .join(format!("{}--{ip}.json", node(p[0]))),
                    &synth_trace(p, host),
                );
                servers.push(
                    serde_json::json!({"app": app, "ip": ip, "port": 443, "proto": "tcp",
                    "names": [format!("chat.{app}.example")], "evidence": ["correlation:4/4 sends"],
                    "role": "messaging", "score": 0.9, "node": node(p[0])}),
                );
            }
            // The direct path is traced once per run (with its first app).
            if ai == 0 {
                w(
                    &mdir
                        .join("traces")
                        .join(format!("{}--{}.json", node(s), node(rc))),
                    &synth_trace(&r.network, 1),
                );
            }
            let dns: Vec<serde_json::Value> = servers
                .iter()
                .enumerate()
                .map(|(k, sv)| serde_json::json!({
                    "frame": k + 1, "ts": "1700000001.5", "transport": "udp",
                    "server": "198.18.0.53", "client": "198.18.30.2", "id": 1,
                    "query": format!("chat.{app}.example"), "qtype": "A", "rcode": "NOERROR",
                    "ip_ttl": 57, "ip_id": 1,
                    "answers": [{"name": format!("chat.{app}.example"), "type": "A", "data": sv["ip"], "ttl": 60}]
                }))
                .collect();
            let capture = serde_json::json!({
                "capture": format!("measurements/{id}/capture-node-{}.pcap", node(s)),
                "format": "pcap", "link_types": ["ethernet"], "packets": 10, "bytes": 1000,
                "first_ts": "1700000001.0", "last_ts": "1700000002.0", "flows": [],
                "dns": dns, "tls": [], "http": [], "servers": [], "interference": [],
                "errors": [], "warnings": []
            });
            w(
                &mdir.join("analysis.json"),
                &serde_json::json!({"schema": "matador/analysis/1", "captures": [capture], "servers": servers}),
            );
        }
    }
    w(
        &dir.join("index.json"),
        &serde_json::json!({"schema": "matador/index/1", "measurements": index}),
    );
}

/// One arc of the HTML page's world map, as drawn (its `data-*` attributes).
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnArc {
    /// App of the map the arc is on.
    pub app: String,
    /// Vantage country.
    pub from: String,
    /// Server country.
    pub to: String,
    /// Countries crossed on the way.
    pub via: Vec<String>,
    /// `leaves`, `stays` or `unknown`.
    pub leaves: String,
    /// Measurements the arc stands for.
    pub measurements: Vec<String>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(tag[i..j].to_string())
}

/// The arcs drawn on the page's maps, read back from the HTML.
pub fn drawn_arcs(html: &str) -> Vec<DrawnArc> {
    let mut out = Vec::new();
    for map in html.split("<svg class=\"world\"").skip(1) {
        let head = &map[..map.find('>').unwrap()];
        let app = attr(head, "data-app").expect("map without data-app");
        let body = &map[..map.find("</svg>").unwrap()];
        for arc in body.split("<path class=\"arc ").skip(1) {
            let tag = &arc[..arc.find('>').unwrap()];
            let tag = format!(" {tag}");
            out.push(DrawnArc {
                app: app.clone(),
                from: attr(&tag, "data-from").unwrap(),
                to: attr(&tag, "data-to").unwrap(),
                via: attr(&tag, "data-via")
                    .unwrap()
                    .split(' ')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                leaves: attr(&tag, "data-leaves").unwrap(),
                measurements: attr(&tag, "data-m")
                    .unwrap()
                    .split(' ')
                    .map(str::to_string)
                    .collect(),
            });
        }
    }
    out
}

/// Recounts every region-level Table 2 cell (app × M49 region) from the
/// arcs drawn: a measurement leaves when one of its arcs from a vantage in
/// the region is drawn as leaving, stays when none leaves and one stays.
/// Exact when every run of a vantage in the region has both vantages in it
/// and measures each app once (as in the seed's and the synthetic
/// campaigns). Returns the cells compared.
pub fn assert_map_matches_table2(r: &matador::report::Report, html: &str) -> usize {
    use std::collections::BTreeSet;
    let m49 = matador::geo::m49::M49::shipped();
    let arcs = drawn_arcs(html);
    let mut compared = 0;
    for row in r.table2.iter().filter(|x| x.level == "region") {
        for (app, share) in &row.apps {
            let set = |leaves: &str| -> BTreeSet<&str> {
                arcs.iter()
                    .filter(|a| &a.app == app && a.leaves == leaves)
                    .filter(|a| m49.country(&a.from).is_some_and(|c| c.in_area(&row.code)))
                    .flat_map(|a| a.measurements.iter().map(String::as_str))
                    .collect()
            };
            let leaving = set("leaves");
            let staying: BTreeSet<&str> = set("stays").difference(&leaving).copied().collect();
            let unknown = set("unknown")
                .into_iter()
                .filter(|m| !leaving.contains(m) && !staying.contains(m))
                .count();
            assert_eq!(
                (leaving.len(), staying.len(), unknown),
                (share.k, share.n - share.k, share.unknown),
                "{} {app}: arcs (leave, stay, unknown) vs Table 2 (k, n-k, unknown)",
                row.name
            );
            compared += 1;
        }
    }
    compared
}

/// The seed paper's campaign size: 28 vantage countries, 406 pair runs, 4
/// apps (1,624 measurements), servers in US/CH/CN-HK/DE-US.
pub fn paper_sized_runs() -> Vec<RunSpec> {
    let cs = &SYNTH_COUNTRIES[..28];
    (0..406usize)
        .map(|i| {
            let a = cs[i % 28];
            let b = cs[(i + 1 + i / 28) % 28];
            let b = if a == b { cs[(i + 2) % 28] } else { b };
            let hub = cs[(i * 3 + 5) % 28];
            let app = |server: &'static str| vec![vec![a, hub, server], vec![b, server]];
            RunSpec {
                pair: (a, b),
                repetition: i as u32,
                network: vec![a, hub, b],
                apps: vec![
                    ("signal", app("US")),
                    ("threema", app("CH")),
                    ("wechat", app(if i % 2 == 0 { "CN" } else { "HK" })),
                    ("whatsapp", app(if i % 3 == 0 { "DE" } else { "US" })),
                ],
            }
        })
        .collect()
}
