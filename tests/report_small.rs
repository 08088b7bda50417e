//! Golden tests of `matador report` on the hand-designed fixture campaign
//! tests/fixtures/campaigns/small (make_small.py says what each measurement
//! holds). Numbers are checked twice: hand-derived values written down here,
//! and an independent recomputation from the fixture files with the test's
//! own prefix table and region map.

mod report_common;

use matador::geo::groups::GroupSet;
use matador::report::model::Report;
use matador::report::{self, Campaign, Format, Options};
use report_common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

fn small() -> PathBuf {
    fixtures().join("small")
}

fn build(groups: &str) -> Report {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let c = Campaign::load(&small()).unwrap();
    let g = GroupSet::preset(groups).unwrap();
    report::build(&c, &db, &g, &Options::default()).unwrap()
}

fn t2<'a>(r: &'a Report, name: &str) -> &'a matador::report::model::RegionRow {
    r.table2.iter().find(|x| x.name == name).unwrap()
}

fn kn(s: &matador::report::stats::Share) -> (usize, usize, usize) {
    (s.k, s.n, s.unknown)
}

#[test]
fn table2_hand_checked() {
    let r = build("pam2016");
    assert_eq!(r.apps, ["signal", "threema", "wechat", "whatsapp"]);
    // Runs: (de-1,fr-1,1) = m0001 whatsapp + m0002 threema; (jp-1,cn-1,1) =
    // m0003 wechat + m0008 whatsapp; (ar-1,br-1,1) = m0004 threema (m0005
    // failed); (ar-1,br-1,2) = m0010 whatsapp; (de-1,jp-1,1) = m0007 signal.
    assert_eq!(r.campaign.pair_runs, 5);
    let names: Vec<(&str, &str)> = r
        .table2
        .iter()
        .map(|x| (x.level, x.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("region", "Americas"),
            ("region", "Asia"),
            ("region", "Europe"),
            ("sub-region", "Eastern Asia"),
            ("sub-region", "Latin America and the Caribbean"),
            ("sub-region", "Western Europe"),
            ("intermediate region", "South America"),
        ]
    );
    // Europe: DE→NL→FR stays; WhatsApp via the US leaves; Threema in CH
    // (via GB from FR) stays in Europe ...
    let eu = t2(&r, "Europe");
    assert_eq!((eu.pairs, eu.measurements), (1, 2));
    assert_eq!(kn(&eu.network), (0, 1, 0));
    assert_eq!(kn(&eu.apps["whatsapp"]), (1, 1, 0));
    assert_eq!(kn(&eu.apps["threema"]), (0, 1, 0));
    assert_eq!(kn(&eu.apps["wechat"]), (0, 0, 0));
    // ... but leaves Western Europe (GB is Northern Europe).
    let we = t2(&r, "Western Europe");
    assert_eq!(kn(&we.apps["threema"]), (1, 1, 0));
    assert_eq!(kn(&we.network), (0, 1, 0));
    // Asia: JP→SG→US→CN leaves; WeChat stays (HK from JP, CN from CN).
    let asia = t2(&r, "Asia");
    assert_eq!(kn(&asia.network), (1, 1, 0));
    assert_eq!(kn(&asia.apps["wechat"]), (0, 1, 0));
    assert_eq!(kn(&asia.apps["whatsapp"]), (1, 1, 0));
    // Americas: the IPv6 AR→US→BR path stays in the Americas but leaves
    // South America; repetition 2 has only silent/unmapped hops: unknown.
    let am = t2(&r, "Americas");
    assert_eq!((am.pairs, am.measurements), (2, 2));
    assert_eq!(kn(&am.network), (0, 1, 1));
    assert_eq!(am.network_unknown_hops, 3);
    assert_eq!(kn(&am.apps["threema"]), (1, 1, 0));
    assert_eq!(kn(&am.apps["whatsapp"]), (0, 0, 1));
    let sa = t2(&r, "South America");
    assert_eq!(kn(&sa.network), (1, 1, 1));
    assert_eq!(sa.network.pct, Some(100.0));
    // Wilson 95 % for 1/1: [20.65 %, 100 %].
    assert_eq!(sa.network.ci_low, Some(20.65));
    assert_eq!(sa.network.ci_high, Some(100.0));
}

#[test]
fn table3_hand_checked() {
    let r = build("pam2016");
    let row = |region: &str, group: &str| {
        r.table3
            .iter()
            .find(|x| x.region == region && x.group == group)
            .unwrap()
    };
    // 5 areas × 5 pam2016 groups + 2 more areas.
    assert_eq!(r.table3.len(), 7 * 5);
    let e = row("Europe", "five_eyes");
    assert_eq!(e.total, 1);
    assert_eq!(kn(&e.network), (0, 1, 0));
    assert_eq!(kn(&e.apps["threema"]), (1, 1, 0)); // FR→GB→CH
    assert_eq!(kn(&e.apps["whatsapp"]), (1, 1, 0)); // US
    assert_eq!(kn(&row("Europe", "eu").network), (1, 1, 0)); // DE, NL, FR
    assert_eq!(kn(&row("Europe", "china").apps["whatsapp"]), (0, 1, 0));
    let c = row("Asia", "china");
    assert_eq!(kn(&c.network), (1, 1, 0));
    assert_eq!(kn(&c.apps["wechat"]), (1, 1, 0));
    assert_eq!(kn(&c.apps["whatsapp"]), (1, 1, 0)); // the CN side starts in CN
    assert_eq!(kn(&row("Asia", "five_eyes").apps["wechat"]), (0, 1, 0));
    let a = row("Americas", "five_eyes");
    assert_eq!(kn(&a.network), (1, 1, 1));
    assert_eq!(kn(&a.apps["whatsapp"]), (0, 0, 1));
    assert_eq!(kn(&row("Americas", "eu").apps["threema"]), (0, 1, 0));
}

/// Region of the few countries of the fixture (independent of geo::m49).
fn region_of(cc: &str) -> &'static str {
    match cc {
        "DE" | "FR" | "NL" | "CH" | "GB" => "Europe",
        "US" | "AR" | "BR" => "Americas",
        "JP" | "CN" | "SG" | "HK" => "Asia",
        other => panic!("fixture country {other} not in the test's map"),
    }
}

/// Addresses of a RIPE-Atlas-like trace: src, every responder, dst.
fn trace_countries(v: &serde_json::Value) -> Vec<Option<&'static str>> {
    let items = match v {
        serde_json::Value::Array(a) => a.clone(),
        o => vec![o.clone()],
    };
    let mut out = Vec::new();
    for t in items {
        let ip = |s: &serde_json::Value| s.as_str().map(|s| s.parse::<IpAddr>().unwrap());
        if let Some(a) = t.get("src_addr").and_then(&ip) {
            out.push(country_of(a));
        }
        for hop in t["result"].as_array().unwrap() {
            let rs: Vec<IpAddr> = hop["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r.get("from").and_then(&ip))
                .collect();
            if rs.is_empty() {
                out.push(None);
            }
            for a in rs {
                out.push(country_of(a));
            }
        }
        out.push(country_of(ip(&t["dst_addr"]).unwrap()));
    }
    out
}

fn leaves(cs: &[Option<&str>], region: &str) -> Option<bool> {
    let known: Vec<&str> = cs.iter().flatten().copied().collect();
    if known.is_empty() {
        None
    } else {
        Some(known.iter().any(|c| region_of(c) != region))
    }
}

fn any_true(v: &[Option<bool>]) -> Option<bool> {
    if v.contains(&Some(true)) {
        Some(true)
    } else if v.contains(&Some(false)) {
        Some(false)
    } else {
        None
    }
}

#[test]
fn table2_regions_recomputed_independently() {
    let r = build("current");
    let dir = small();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    // run key → (countries, [(app, [(is_direct, countries)])])
    type Paths = Vec<(bool, Vec<Option<&'static str>>)>;
    type Run = (String, String, Vec<(String, Paths)>);
    let mut runs: BTreeMap<(String, String, u64), Run> = BTreeMap::new();
    for e in index["measurements"].as_array().unwrap() {
        if e["status"] != "complete" || e["kind"] != "message" {
            continue;
        }
        let id = e["id"].as_str().unwrap();
        let nodes = [
            e["sender_node"].as_str().unwrap(),
            e["receiver_node"].as_str().unwrap(),
        ];
        let mut paths = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("measurements").join(id).join("traces")) {
            for f in rd {
                let f = f.unwrap().path();
                let stem = f.file_stem().unwrap().to_str().unwrap().to_string();
                let target = stem.split_once("--").unwrap().1;
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
                paths.push((nodes.contains(&target), trace_countries(&v)));
            }
        }
        runs.entry((
            nodes[0].to_string(),
            nodes[1].to_string(),
            e["repetition"].as_u64().unwrap(),
        ))
        .or_insert_with(|| {
            (
                e["sender_country"].as_str().unwrap().to_string(),
                e["receiver_country"].as_str().unwrap().to_string(),
                Vec::new(),
            )
        })
        .2
        .push((e["app"].as_str().unwrap().to_string(), paths));
    }
    let mut checked = 0;
    for region in ["Europe", "Asia", "Americas"] {
        let in_region: Vec<_> = runs
            .values()
            .filter(|(a, b, _)| region_of(a) == region && region_of(b) == region)
            .collect();
        let row = t2(&r, region);
        assert_eq!(row.pairs, in_region.len(), "{region}");
        let count = |vs: Vec<Option<bool>>| {
            (
                vs.iter().filter(|v| **v == Some(true)).count(),
                vs.iter().filter(|v| v.is_some()).count(),
                vs.iter().filter(|v| v.is_none()).count(),
            )
        };
        let net: Vec<Option<bool>> = in_region
            .iter()
            .map(|(_, _, ms)| {
                let v: Vec<Option<bool>> = ms
                    .iter()
                    .flat_map(|(_, ps)| ps.iter())
                    .filter(|(d, _)| *d)
                    .map(|(_, cs)| leaves(cs, region))
                    .collect();
                any_true(&v)
            })
            .collect();
        assert_eq!(kn(&row.network), count(net), "{region} network");
        for app in &r.apps {
            let vs: Vec<Option<bool>> = in_region
                .iter()
                .filter(|(_, _, ms)| ms.iter().any(|(a, _)| a == app))
                .map(|(_, _, ms)| {
                    let v: Vec<Option<bool>> = ms
                        .iter()
                        .filter(|(a, _)| a == app)
                        .flat_map(|(_, ps)| ps.iter())
                        .filter(|(d, _)| !*d)
                        .map(|(_, cs)| leaves(cs, region))
                        .collect();
                    any_true(&v)
                })
                .collect();
            assert_eq!(kn(&row.apps[app]), count(vs), "{region} {app}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn dns_servers_interference_anomalies() {
    let r = build("pam2016");
    let dns = |app: &str, name: &str| {
        r.dns
            .iter()
            .filter(|d| d.app == app && d.name == name)
            .collect::<Vec<_>>()
    };
    // e1.whatsapp.net: 198.18.20.10 and .11 (US) plus the forged
    // 198.18.15.66 (no geolocation) → 3 unique, two prefixes.
    let e1 = dns("whatsapp", "e1.whatsapp.net");
    assert_eq!(e1.len(), 2);
    assert!(
        e1.iter()
            .all(|d| d.name_ips == 3 && d.relevant == Some(true) && d.measurements == 2)
    );
    let us = e1.iter().find(|d| d.prefix == "198.18.20.0/24").unwrap();
    assert_eq!(
        (us.ips, us.asn, us.countries.clone()),
        (2, Some(64520), vec!["US".to_string()])
    );
    assert_eq!(
        e1.iter().find(|d| d.prefix == "-").unwrap().countries,
        ["?"]
    );
    assert_eq!(dns("whatsapp", "mmg.whatsapp.net")[0].relevant, Some(false)); // media
    // Names learned through WeChat's HTTP DNS.
    let hk = dns("wechat", "hkshort.weixin.qq.com");
    assert_eq!(hk[0].transport, "wechat-httpdns");
    assert_eq!((hk[0].ips, hk[0].relevant), (2, Some(true)));
    assert_eq!(dns("threema", "api.threema.ch")[0].relevant, Some(false));
    // Background noise (also in the baseline run) is set aside.
    assert!(dns("whatsapp", "connectivitycheck.gstatic.com").is_empty());
    assert_eq!(r.campaign.dns_noise_names, 1);

    // WeChat's regional choice: HK server from JP, mainland server from CN.
    let wc: Vec<(String, String, Option<String>)> = r
        .servers
        .iter()
        .filter(|s| s.app == "wechat" && s.role == Some(matador::analysis::model::Role::Messaging))
        .map(|s| (s.vantage.clone(), s.ip.to_string(), s.country.clone()))
        .collect();
    assert_eq!(
        wc,
        [
            ("cn-1".into(), "198.18.22.7".into(), Some("CN".into())),
            ("jp-1".into(), "198.18.23.7".into(), Some("HK".into()))
        ]
    );
    let choice = matador::report::tables::server_choice(&r);
    let wechat: Vec<&Vec<String>> = choice.rows.iter().filter(|r| r[0] == "wechat").collect();
    assert_eq!(wechat[0][1..], ["cn-1 (CN)", "198.18.22.7 (CN)"]);
    assert_eq!(wechat[1][1..], ["jp-1 (JP)", "198.18.23.7 (HK)"]);
    // Vantages of WhatsApp's server found from the captures that saw it.
    let wa: BTreeSet<&str> = r
        .servers
        .iter()
        .filter(|s| s.app == "whatsapp" && s.ip.to_string() == "198.18.20.10")
        .map(|s| s.vantage.as_str())
        .collect();
    assert_eq!(wa, BTreeSet::from(["cn-1", "de-1", "fr-1", "jp-1"]));

    assert_eq!(r.interference.len(), 1);
    let i = &r.interference[0];
    assert_eq!(
        (i.vantage.as_str(), i.measurement.as_str()),
        ("cn-1", "m0008")
    );
    assert_eq!(i.frames, [12, 13]);

    let kinds: Vec<(&str, &str)> = r
        .anomalies
        .iter()
        .map(|a| (a.kind.as_str(), a.measurement.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("detour", "m0003"),
            ("group_bypass", "m0004"),
            ("implausible_hop", "m0008")
        ]
    );
    assert!(
        r.anomalies[1]
            .description
            .contains("from US without crossing European Union")
    );
    assert_eq!(r.anomalies[1].hops.len(), 5);

    let f: Vec<&str> = r.failures.iter().map(|f| f.measurement.as_str()).collect();
    assert_eq!(f, ["m0005", "m0009"]);
    assert_eq!(
        r.failures[0].error.as_deref(),
        Some("tunnel to br-1 did not come up within 30 s")
    );

    let rtt: Vec<(&str, usize, f64)> = r
        .rtt
        .iter()
        .map(|s| (s.app.as_str(), s.n, s.median))
        .collect();
    assert_eq!(
        rtt,
        [
            ("signal", 1, 93.0),
            ("threema", 4, 15.0),
            ("wechat", 2, 3.0),
            ("whatsapp", 4, 86.0)
        ]
    );
}

#[test]
fn corrupt_analysis_is_named_and_the_rest_reported() {
    let r = build("current");
    let p = r
        .problems
        .iter()
        .find(|p| p.file == "measurements/m0007/analysis.json")
        .expect("corrupt analysis.json is reported");
    assert!(p.message.contains("EOF"), "{}", p.message);
    // Its trace is still there (classified as the measurement's app path).
    let t: Vec<_> = r
        .paths
        .iter()
        .filter(|p| p.measurement == "m0007")
        .collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].app.as_deref(), Some("signal"));
    // Capture read errors from the analysis are listed too.
    assert!(r.problems.iter().any(
        |p| p.file == "measurements/m0008/capture-router-phone-d.pcap"
            && p.message == "frame 311: truncated record"
    ));
}

#[test]
fn ipv6_and_unknown_hops() {
    let r = build("current");
    let v6 = r
        .paths
        .iter()
        .find(|p| p.measurement == "m0004" && p.class == "direct")
        .unwrap();
    assert_eq!(v6.countries, ["AR", "US", "BR"]);
    let unk = r.paths.iter().find(|p| p.measurement == "m0010").unwrap();
    // silent hop, unmapped hop, unmapped (unreached) destination
    assert_eq!(unk.unknown, 3);
    assert_eq!(unk.countries, ["?"]);
}

#[test]
fn geolocation_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let old = matador::geo::db::MmdbFile::open(&old_db(tmp.path()), "country", "--x").unwrap();
    let c = Campaign::load(&small()).unwrap();
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(
        &c,
        &db,
        &g,
        &Options {
            old_geo_db: Some(&old),
        },
    )
    .unwrap();
    let ch = r.geo_changes.unwrap();
    let groups: Vec<(String, Option<String>, Option<String>, usize)> = ch
        .diff
        .groups
        .iter()
        .map(|g| {
            (
                g.prefix.clone(),
                g.old.clone(),
                g.new.clone(),
                g.addresses.len(),
            )
        })
        .collect();
    // 198.18.11.1–.7 are hops; 198.18.21.5 (server), .6 and .9 (DNS answers).
    assert_eq!(
        groups,
        [
            (
                "198.18.11.0/24".into(),
                Some("CA".into()),
                Some("US".into()),
                7
            ),
            (
                "198.18.21.0/24".into(),
                Some("DE".into()),
                Some("CH".into()),
                3
            )
        ]
    );
}

#[test]
fn snapshots_md_csv_json() {
    let r = build("pam2016");
    insta::assert_snapshot!("small_md", report::render(&r, Format::Markdown));
    insta::assert_snapshot!("small_csv", report::render(&r, Format::Csv));
    insta::assert_snapshot!("small_json", report::render(&r, Format::Json));
    // Same input, same bytes.
    let again = build("pam2016");
    for f in [Format::Markdown, Format::Csv, Format::Json, Format::Html] {
        assert_eq!(report::render(&r, f), report::render(&again, f));
    }
}

#[test]
fn empty_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let c = Campaign::load(&fixtures().join("empty")).unwrap();
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    assert!(r.table2.is_empty() && r.dns.is_empty() && r.paths.is_empty());
    insta::assert_snapshot!("empty_md", report::render(&r, Format::Markdown));
    // The HTML page still renders (empty plots).
    assert!(report::render(&r, Format::Html).contains("</html>"));
}

#[test]
fn bad_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Campaign::load(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("index.json"), "{e}");
    std::fs::write(
        tmp.path().join("index.json"),
        r#"{"schema":"matador/index/9"}"#,
    )
    .unwrap();
    let e = Campaign::load(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("index.json") && e.contains("matador/index/9"),
        "{e}"
    );
    let e = Campaign::load(&tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    // Hostile ids never become paths.
    std::fs::write(
        tmp.path().join("index.json"),
        r#"{"schema":"matador/index/1","measurements":[{"id":"../x","status":"complete"}]}"#,
    )
    .unwrap();
    let c = Campaign::load(tmp.path()).unwrap();
    assert!(c.measurements.is_empty());
    assert!(c.problems[0].message.contains("../x"));
}
