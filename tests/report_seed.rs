//! The seed's Table 2 and Table 3 arithmetic (PAM 2016 slides): a synthetic
//! campaign whose per-run regions, network-path countries and
//! application-path countries are chosen so that, under the definitions of
//! docs/report.md, the seed's published rows must come out — counts and
//! rounded percentages exactly as printed in the seed.

mod report_common;

use matador::geo::groups::GroupSet;
use matador::report::model::Report;
use matador::report::{self, Campaign, Options};
use report_common::*;

fn v(c: &[&'static str]) -> Vec<&'static str> {
    c.to_vec()
}

fn run(
    pair: (&'static str, &'static str),
    repetition: u32,
    network: &[&'static str],
    signal: Vec<Vec<&'static str>>,
    threema: Vec<Vec<&'static str>>,
    wechat: Vec<Vec<&'static str>>,
    whatsapp: Vec<Vec<&'static str>>,
) -> RunSpec {
    RunSpec {
        pair,
        repetition,
        network: network.to_vec(),
        apps: vec![
            ("signal", signal),
            ("threema", threema),
            ("wechat", wechat),
            ("whatsapp", whatsapp),
        ],
    }
}

fn seed_runs() -> Vec<RunSpec> {
    let mut runs = Vec::new();
    // Europe: 120 runs; 118 between EU countries (DE, FR), 2 between CH and NO.
    for i in 0..120u32 {
        let (pair, network) = if i < 86 {
            (("DE", "FR"), v(&["DE", "GB", "FR"]))
        } else if i < 118 {
            (("DE", "FR"), v(&["DE", "NL", "FR"]))
        } else {
            (("CH", "NO"), v(&["CH", "NO"]))
        };
        let r = match i {
            0..=117 => run(
                pair,
                i + 1,
                &network,
                vec![v(&["DE", "US"])],
                vec![if i < 68 {
                    v(&["DE", "GB", "CH"])
                } else {
                    v(&["DE", "CH"])
                }],
                vec![v(&["DE", "US", "CN"])],
                vec![v(&["DE", "US"])],
            ),
            118 => run(
                pair,
                i + 1,
                &network,
                vec![v(&["CH", "US"]), v(&["NO", "DE", "US"])],
                vec![v(&["CH", "CH"]), v(&["NO", "DE", "CH"])],
                vec![v(&["CH", "US", "CN"]), v(&["NO", "DE", "US", "CN"])],
                vec![v(&["CH", "US"]), v(&["NO", "DE", "US"])],
            ),
            _ => run(
                pair,
                i + 1,
                &network,
                vec![v(&["CH", "US"]), v(&["NO", "US"])],
                vec![v(&["CH", "CH"]), v(&["NO", "CH"])],
                vec![v(&["CH", "CN"]), v(&["NO", "DE", "CN"])],
                vec![v(&["CH", "US"]), v(&["NO", "DE", "US"])],
            ),
        };
        runs.push(r);
    }
    // Oceania: 3 runs, everything served from other regions.
    for i in 0..3 {
        runs.push(run(
            ("AU", "NZ"),
            i + 1,
            &["AU", "NZ"],
            vec![v(&["AU", "US"])],
            vec![v(&["AU", "CH"])],
            vec![v(&["AU", "CN"])],
            vec![v(&["AU", "US"])],
        ));
    }
    // Asia: 28 runs, 6 direct paths through the US, WeChat local in half.
    for i in 0..28 {
        let net: &[&str] = if i < 6 {
            &["JP", "US", "CN"]
        } else {
            &["JP", "CN"]
        };
        runs.push(run(
            ("JP", "CN"),
            i + 1,
            net,
            vec![v(&["JP", "US"])],
            vec![v(&["JP", "CH"])],
            vec![if i < 14 {
                v(&["JP", "CN"])
            } else {
                v(&["JP", "US"])
            }],
            vec![v(&["JP", "US"])],
        ));
    }
    // Americas: 3 South America, 3 Northern America, 4 across.
    for i in 0..3 {
        let net: &[&str] = if i == 0 {
            &["AR", "US", "BR"]
        } else {
            &["AR", "BR"]
        };
        runs.push(run(
            ("AR", "BR"),
            i + 1,
            net,
            vec![v(&["AR", "US"])],
            vec![v(&["AR", "CH"])],
            vec![v(&["AR", "CN"])],
            vec![v(&["AR", "US"])],
        ));
        runs.push(run(
            ("US", "CA"),
            i + 1,
            &["US", "CA"],
            vec![v(&["US", "US"])],
            vec![v(&["US", "CH"])],
            vec![v(&["US", "CN"])],
            vec![v(&["US", "US"])],
        ));
    }
    for i in 0..4 {
        runs.push(run(
            ("AR", "US"),
            i + 1,
            &["AR", "US"],
            vec![v(&["AR", "US"])],
            vec![v(&["AR", "CH"])],
            vec![v(&["AR", "CN"])],
            vec![v(&["AR", "US"])],
        ));
    }
    runs
}

fn seed_report() -> Report {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("seed-campaign");
    write_synthetic(&dir, &seed_runs());
    let db = synth_db(tmp.path());
    let c = Campaign::load(&dir).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let g = GroupSet::preset("pam2016").unwrap();
    report::build(&c, &db, &g, &Options::default()).unwrap()
}

#[test]
fn seed_table2() {
    let r = seed_report();
    // Seed Table 2: Region, # Measurements, network #, %, TextSecure, Threema, WeChat, WhatsApp.
    let seed = [
        ("Europe", 120, 0, "0%", ["100%", "0%", "100%", "100%"]),
        ("Oceania", 3, 0, "0%", ["100%", "100%", "100%", "100%"]),
        ("Asia", 28, 6, "21%", ["100%", "100%", "50%", "100%"]),
        ("Americas", 10, 0, "0%", ["0%", "100%", "100%", "0%"]),
        (
            "South America",
            3,
            1,
            "33%",
            ["100%", "100%", "100%", "100%"],
        ),
        ("Northern America", 3, 0, "0%", ["0%", "100%", "100%", "0%"]),
    ];
    for (region, n, k, pct, apps) in seed {
        let row = r.table2.iter().find(|x| x.name == region).unwrap();
        assert_eq!(row.pairs, n, "{region}");
        assert_eq!(row.measurements, 4 * n, "{region}");
        assert_eq!((row.network.k, row.network.n), (k, n), "{region}");
        assert_eq!(row.network.pct_text(), pct, "{region}");
        for (app, want) in ["signal", "threema", "wechat", "whatsapp"].iter().zip(apps) {
            let s = &row.apps[*app];
            assert_eq!(s.n, n, "{region} {app}");
            assert_eq!(s.pct_text(), want, "{region} {app}");
        }
    }
    let level = |name: &str| r.table2.iter().find(|x| x.name == name).unwrap().level;
    assert_eq!(level("Americas"), "region");
    assert_eq!(level("Northern America"), "sub-region");
    assert_eq!(level("South America"), "intermediate region");
}

#[test]
fn seed_table3_europe() {
    let r = seed_report();
    // Seed Table 3, Europe rows: #Total, network #/%, then #/% per app
    // (TextSecure, Threema, WeChat, WhatsApp).
    let seed = [
        (
            "five_eyes",
            86,
            "72%",
            [(120, "100%"), (68, "57%"), (119, "99%"), (120, "100%")],
        ),
        (
            "eu",
            118,
            "98%",
            [(119, "99%"), (119, "99%"), (120, "100%"), (120, "100%")],
        ),
        (
            "china",
            0,
            "0%",
            [(0, "0%"), (0, "0%"), (120, "100%"), (0, "0%")],
        ),
    ];
    for (group, k, pct, apps) in seed {
        let row = r
            .table3
            .iter()
            .find(|x| x.region == "Europe" && x.group == group)
            .unwrap();
        assert_eq!(row.total, 120);
        assert_eq!((row.network.k, row.network.n), (k, 120), "{group}");
        assert_eq!(row.network.pct_text(), pct, "{group}");
        for (app, (k, want)) in ["signal", "threema", "wechat", "whatsapp"].iter().zip(apps) {
            let s = &row.apps[*app];
            assert_eq!((s.k, s.n), (k, 120), "{group} {app}");
            assert_eq!(s.pct_text(), want, "{group} {app}");
        }
    }
    // Oceania, 5 Eyes (pam2016: NZ but not AU is a member): 3 of 3.
    let oc = r
        .table3
        .iter()
        .find(|x| x.region == "Oceania" && x.group == "five_eyes")
        .unwrap();
    assert_eq!((oc.network.k, oc.network.n), (3, 3));
}

/// The world map draws what Table 2 counts: every region-level cell of the
/// seed's Table 2 (Europe 120 runs, Asia 28, Oceania 3, Americas 10) is
/// recounted from the arcs on the HTML page.
#[test]
fn seed_map_arcs_match_table2() {
    let r = seed_report();
    let html = report::render(&r, report::Format::Html);
    let compared = assert_map_matches_table2(&r, &html);
    // 4 regions × 4 apps.
    assert_eq!(compared, 16);
    let arcs = drawn_arcs(&html);
    // Threema from Germany: 68 runs through GB to CH, 50 straight to CH,
    // all staying in Europe (seed: Threema 0 % leaving Europe).
    let threema_de = |via: &[&str]| -> usize {
        arcs.iter()
            .filter(|a| a.app == "threema" && a.from == "DE" && a.to == "CH" && a.via == via)
            .inspect(|a| assert_eq!(a.leaves, "stays"))
            .map(|a| a.measurements.len())
            .sum()
    };
    assert_eq!(threema_de(&["GB"]), 68);
    assert_eq!(threema_de(&[]), 50);
    // Every application path of a counted measurement is drawn exactly once.
    let drawn: usize = arcs.iter().map(|a| a.measurements.len()).sum();
    let paths = r.paths.iter().filter(|p| p.class == "application").count();
    assert_eq!(drawn, paths);
}
