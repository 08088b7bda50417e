//! Report time on a large synthetic campaign: 10,000 measurements (2,500
//! pair runs × 4 apps, each with analysis.json, DNS records, servers and
//! two or three traces). Checks the report's figures and prints the
//! timings; the time budget (the whole report — load + build + all four
//! formats — under 60 s even in a debug build) is checked by
//! `bench/report_scale.sh`, not here: a loaded machine must not fail a test.
//! The campaign is written to /dev/shm when present. `MATADOR_REPORT_BENCH_DIR=DIR` keeps the generated campaign (and its
//! mmdb) in DIR for benchmarking the binary with hyperfine.

mod report_common;

use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options};
use report_common::*;
use std::time::Instant;

const PAIRS: &[(&str, &str, &[&str])] = &[
    ("DE", "FR", &["DE", "NL", "FR"]),
    ("JP", "CN", &["JP", "SG", "CN"]),
    ("AR", "BR", &["AR", "US", "BR"]),
    ("AU", "NZ", &["AU", "NZ"]),
    ("US", "CA", &["US", "CA"]),
    ("CH", "NO", &["CH", "DE", "NO"]),
    ("DE", "JP", &["DE", "US", "JP"]),
    ("GB", "US", &["GB", "US"]),
];

#[test]
fn ten_thousand_measurements() {
    let keep = std::env::var_os("MATADOR_REPORT_BENCH_DIR").map(std::path::PathBuf::from);
    // tmpfs when there is one: 50,000 small files are slow to create and
    // delete on a busy shared disk, and the cost measured here is the
    // report's, not the disk's (a fresh campaign is in the page cache too).
    let shm = std::path::Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let base = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let dir = base.join("bench-campaign");
    let _ = std::fs::remove_dir_all(&dir);
    let runs: Vec<RunSpec> = (0..2500u32)
        .map(|i| {
            let (a, b, net) = PAIRS[i as usize % PAIRS.len()];
            let app = |server: &'static str| vec![vec![a, server], vec![b, "US", server]];
            RunSpec {
                pair: (a, b),
                repetition: i,
                network: net.to_vec(),
                apps: vec![
                    ("signal", app("US")),
                    ("threema", app("CH")),
                    ("wechat", app(if i % 2 == 0 { "CN" } else { "HK" })),
                    ("whatsapp", app("US")),
                ],
            }
        })
        .collect();
    let t = Instant::now();
    write_synthetic(&dir, &runs);
    let generate = t.elapsed();
    let db = synth_db(&base);
    let g = GroupSet::preset("current").unwrap();

    let t = Instant::now();
    let c = Campaign::load(&dir).unwrap();
    let load = t.elapsed();
    assert_eq!(c.measurements.len(), 10_000);
    assert!(c.problems.is_empty());
    let t = Instant::now();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    let build = t.elapsed();
    let t = Instant::now();
    let sizes: Vec<(Format, usize)> = [Format::Markdown, Format::Csv, Format::Json, Format::Html]
        .into_iter()
        .map(|f| (f, report::render(&r, f).len()))
        .collect();
    let render = t.elapsed();
    let total = load + build + render;
    println!(
        "10,000 measurements: generate {generate:?}; load {load:?}, build {build:?}, render md+csv+json+html {render:?} (sizes {sizes:?}); report total {total:?}"
    );
    // 2500 runs, 8 pair kinds; 3 traces per measurement (+1 direct per run).
    assert_eq!(r.campaign.pair_runs, 2500);
    assert_eq!(r.paths.len(), 10_000 * 2 + 2500);
    let eu = r.table2.iter().find(|x| x.name == "Europe").unwrap();
    // DE–FR and CH–NO runs: 2 of every 8.
    assert_eq!(eu.pairs, 2 * 2500 / 8);
    // Read by bench/report_scale.sh.
    println!("report_total_s {:.3}", total.as_secs_f64());
    let t = Instant::now();
    drop(r);
    drop(c);
    println!("drop {:?}", t.elapsed());
    let t = Instant::now();
    drop(tmp);
    println!("cleanup {:?}", t.elapsed());
}

/// A campaign of the seed paper's size — 28 vantage countries, 4 apps,
/// 1,624 measurements (406 pair runs) — gives one HTML page under 2 MB with
/// a world map per app and the (vantage × app) path diagrams.
#[test]
fn paper_sized_page_stays_under_two_megabytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("paper-campaign");
    let runs = paper_sized_runs();
    write_synthetic(&dir, &runs);
    let db = synth_db(tmp.path());
    let c = Campaign::load(&dir).unwrap();
    assert_eq!(c.measurements.len(), 1624);
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    let html = report::render(&r, Format::Html);
    let vantages: std::collections::BTreeSet<&str> =
        runs.iter().flat_map(|r| [r.pair.0, r.pair.1]).collect();
    assert_eq!(vantages.len(), 28);
    println!(
        "paper-sized campaign (28 countries, 4 apps, 1,624 measurements): report.html {} bytes",
        html.len()
    );
    // Bytes per section, largest first.
    let mut sections: Vec<(usize, &str)> = html
        .split("<h2 id=\"")
        .skip(1)
        .map(|s| (s.len(), &s[..s.find('"').unwrap_or(0)]))
        .collect();
    sections.sort_by(|a, b| b.cmp(a));
    println!("sections (bytes): {sections:?}");
    assert!(
        html.len() < 2_000_000,
        "report.html is {} bytes",
        html.len()
    );
    assert_eq!(html.matches("<svg class=\"world\"").count(), 4);
    // One diagram per (vantage node, app): 28 × 4.
    assert_eq!(html.matches("<figure class=\"pd\">").count(), 28 * 4);
    let arcs = drawn_arcs(&html);
    let drawn: usize = arcs.iter().map(|a| a.measurements.len()).sum();
    assert_eq!(drawn, 1624 * 2);
}
