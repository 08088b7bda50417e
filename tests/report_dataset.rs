//! The Parquet dataset of `matador report` (docs/dataset.md) read by
//! DuckDB — an engine nobody here wrote — must give the report's numbers:
//! Table 2 recomputed in SQL from the low-level tables (measurements, paths,
//! hops, areas), and the row counts and sums of the other tables.
//!
//! DuckDB is the Python package from PyPI (scripts/install-deps.sh test puts
//! it in target/pyenv); without it the test fails and says how to install it.

mod report_common;

use assert_cmd::Command;
use report_common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The pinned DuckDB version of scripts/install-deps.sh.
const DUCKDB: &str = "2.0.1";

/// A Python interpreter that can `import duckdb`: $MATADOR_PYTHON, else
/// target/pyenv/bin/python3, else python3 on the PATH.
fn python() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("MATADOR_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            manifest.join("target/pyenv/bin/python3"),
            PathBuf::from("python3"),
        ])
        .collect();
    for p in &candidates {
        let ok = std::process::Command::new(p)
            .args(["-c", "import duckdb"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return p.clone();
        }
    }
    panic!(
        "DuckDB's Python package is missing (tried {candidates:?}); install it with \
         `bash scripts/install-deps.sh test` or `python3 -m venv target/pyenv && \
         target/pyenv/bin/pip install duckdb=={DUCKDB}`, or point MATADOR_PYTHON at a \
         python3 that has it"
    );
}

/// Runs named SQL queries with DuckDB over `<dir>/*.parquet` (one view per
/// file) and returns each query's rows as JSON objects.
fn duckdb(dir: &Path, queries: &[(&str, &str)]) -> BTreeMap<String, Vec<Value>> {
    const SCRIPT: &str = r#"
import duckdb, json, os, sys
d = sys.argv[1]
con = duckdb.connect()
for f in sorted(os.listdir(d)):
    if f.endswith('.parquet'):
        path = os.path.join(d, f).replace("'", "''")
        con.execute(f"CREATE VIEW {f[:-8]} AS SELECT * FROM read_parquet('{path}')")
out = {}
for name, sql in json.loads(sys.argv[2]).items():
    cur = con.execute(sql)
    cols = [c[0] for c in cur.description]
    out[name] = [dict(zip(cols, r)) for r in cur.fetchall()]
print(json.dumps(out, default=str))
"#;
    let q: BTreeMap<&str, &str> = queries.iter().copied().collect();
    let o = std::process::Command::new(python())
        .args(["-c", SCRIPT])
        .arg(dir)
        .arg(serde_json::to_string(&q).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Table 2 from the dataset alone (the SQL of docs/dataset.md): pair runs,
/// the M49 areas holding both vantages of a run, and per path and area
/// whether a hop with a known M49 country lies outside the area.
const TABLE2_SQL: &str = r#"
WITH runs AS (
  SELECT run, any_value(run_sender_country) AS sc, any_value(run_receiver_country) AS rc,
         count(*) AS measurements
  FROM measurements WHERE run IS NOT NULL GROUP BY run),
area_list AS (
  SELECT country, 'region' AS level, region_code AS code, region AS name FROM areas WHERE region_code IS NOT NULL
  UNION ALL SELECT country, 'sub-region', subregion_code, subregion FROM areas WHERE subregion_code IS NOT NULL
  UNION ALL SELECT country, 'intermediate region', intermediate_code, intermediate FROM areas WHERE intermediate_code IS NOT NULL),
run_areas AS (
  SELECT r.run, r.measurements, a.level, a.code, a.name
  FROM runs r JOIN area_list a ON a.country = r.sc JOIN area_list b ON b.country = r.rc AND b.code = a.code),
run_paths AS (
  SELECT p.path_id, p.class, p.app, m.run FROM paths p JOIN measurements m ON m.id = p.measurement
  WHERE m.run IS NOT NULL),
verdicts AS (
  SELECT rp.path_id, rp.class, rp.app, ra.run, ra.code,
         CASE WHEN bool_or(x.country IS NOT NULL
                           AND ra.code NOT IN (coalesce(x.region_code, ''), coalesce(x.subregion_code, ''), coalesce(x.intermediate_code, '')))
              THEN true
              WHEN count(x.country) > 0 THEN false END AS leaves
  FROM run_paths rp JOIN run_areas ra ON ra.run = rp.run
  JOIN hops h ON h.path_id = rp.path_id LEFT JOIN areas x ON x.country = h.country
  GROUP BY rp.path_id, rp.class, rp.app, ra.run, ra.code),
run_net AS (
  SELECT ra.run, ra.code,
         CASE WHEN bool_or(v.leaves) THEN true WHEN count(v.leaves) > 0 THEN false END AS v
  FROM run_areas ra LEFT JOIN verdicts v ON v.run = ra.run AND v.code = ra.code AND v.class = 'direct'
  GROUP BY ra.run, ra.code),
unknown_hops AS (
  SELECT ra.code, count(*) AS n FROM run_areas ra
  JOIN run_paths rp ON rp.run = ra.run AND rp.class = 'direct'
  JOIN hops h ON h.path_id = rp.path_id WHERE h.country IS NULL GROUP BY ra.code)
SELECT ra.level, ra.code, ra.name, count(*) AS pairs, sum(ra.measurements) AS measurements,
       count(*) FILTER (WHERE n.v) AS k, count(n.v) AS n,
       count(*) FILTER (WHERE n.v IS NULL) AS unknown,
       round(100.0 * count(*) FILTER (WHERE n.v) / nullif(count(n.v), 0), 2) AS pct,
       coalesce(any_value(u.n), 0) AS unknown_hops
FROM run_areas ra JOIN run_net n ON n.run = ra.run AND n.code = ra.code
LEFT JOIN unknown_hops u ON u.code = ra.code
GROUP BY ra.level, ra.code, ra.name ORDER BY ra.code
"#;

/// Per area and app: runs that measured the app (or traced one of its
/// servers), each answering whether any of its application paths leaves.
const TABLE2_APPS_SQL: &str = r#"
WITH runs AS (
  SELECT run, any_value(run_sender_country) AS sc, any_value(run_receiver_country) AS rc
  FROM measurements WHERE run IS NOT NULL GROUP BY run),
area_list AS (
  SELECT country, region_code AS code FROM areas WHERE region_code IS NOT NULL
  UNION ALL SELECT country, subregion_code FROM areas WHERE subregion_code IS NOT NULL
  UNION ALL SELECT country, intermediate_code FROM areas WHERE intermediate_code IS NOT NULL),
run_areas AS (
  SELECT r.run, a.code FROM runs r JOIN area_list a ON a.country = r.sc
  JOIN area_list b ON b.country = r.rc AND b.code = a.code),
run_paths AS (
  SELECT p.path_id, p.class, p.app, m.run FROM paths p JOIN measurements m ON m.id = p.measurement
  WHERE m.run IS NOT NULL),
run_apps AS (
  SELECT DISTINCT run, app FROM measurements WHERE run IS NOT NULL AND app IS NOT NULL
  UNION SELECT DISTINCT run, app FROM run_paths WHERE class = 'application' AND app IS NOT NULL),
verdicts AS (
  SELECT rp.path_id, rp.app, ra.run, ra.code,
         CASE WHEN bool_or(x.country IS NOT NULL
                           AND ra.code NOT IN (coalesce(x.region_code, ''), coalesce(x.subregion_code, ''), coalesce(x.intermediate_code, '')))
              THEN true
              WHEN count(x.country) > 0 THEN false END AS leaves
  FROM run_paths rp JOIN run_areas ra ON ra.run = rp.run
  JOIN hops h ON h.path_id = rp.path_id LEFT JOIN areas x ON x.country = h.country
  WHERE rp.class = 'application'
  GROUP BY rp.path_id, rp.app, ra.run, ra.code),
run_app AS (
  SELECT ra.code, a.app, ra.run,
         CASE WHEN bool_or(v.leaves) THEN true WHEN count(v.leaves) > 0 THEN false END AS v
  FROM run_areas ra JOIN run_apps a ON a.run = ra.run
  LEFT JOIN verdicts v ON v.run = ra.run AND v.code = ra.code AND v.app = a.app
  GROUP BY ra.code, a.app, ra.run)
SELECT code, app, count(*) FILTER (WHERE v) AS k, count(v) AS n,
       count(*) FILTER (WHERE v IS NULL) AS unknown
FROM run_app GROUP BY code, app ORDER BY code, app
"#;

/// Table 3 from the dataset alone: per area, group and run, whether a
/// direct path (`app` null) or an application path of the app crosses a
/// member country of the group (a hop with a known M49 country in it).
const TABLE3_SQL: &str = r#"
WITH runs AS (
  SELECT run, any_value(run_sender_country) AS sc, any_value(run_receiver_country) AS rc
  FROM measurements WHERE run IS NOT NULL GROUP BY run),
area_list AS (
  SELECT country, region_code AS code FROM areas WHERE region_code IS NOT NULL
  UNION ALL SELECT country, subregion_code FROM areas WHERE subregion_code IS NOT NULL
  UNION ALL SELECT country, intermediate_code FROM areas WHERE intermediate_code IS NOT NULL),
run_areas AS (
  SELECT r.run, a.code FROM runs r JOIN area_list a ON a.country = r.sc
  JOIN area_list b ON b.country = r.rc AND b.code = a.code),
gs AS (SELECT DISTINCT group_id FROM groups),
run_paths AS (
  SELECT p.path_id, p.class, p.app, m.run FROM paths p JOIN measurements m ON m.id = p.measurement
  WHERE m.run IS NOT NULL),
run_apps AS (
  SELECT DISTINCT run, app FROM measurements WHERE run IS NOT NULL AND app IS NOT NULL
  UNION SELECT DISTINCT run, app FROM run_paths WHERE class = 'application' AND app IS NOT NULL),
verdicts AS (
  SELECT rp.path_id, rp.class, rp.app, rp.run, gs.group_id,
         CASE WHEN bool_or(x.country IS NOT NULL AND gm.country IS NOT NULL) THEN true
              WHEN count(x.country) > 0 THEN false END AS acc
  FROM run_paths rp CROSS JOIN gs
  JOIN hops h ON h.path_id = rp.path_id LEFT JOIN areas x ON x.country = h.country
  LEFT JOIN groups gm ON gm.group_id = gs.group_id AND gm.country = x.country
  GROUP BY rp.path_id, rp.class, rp.app, rp.run, gs.group_id),
per_run AS (
  SELECT ra.code, gs.group_id, NULL AS app, ra.run,
         CASE WHEN bool_or(v.acc) THEN true WHEN count(v.acc) > 0 THEN false END AS v
  FROM run_areas ra CROSS JOIN gs
  LEFT JOIN verdicts v ON v.run = ra.run AND v.group_id = gs.group_id AND v.class = 'direct'
  GROUP BY ra.code, gs.group_id, ra.run
  UNION ALL
  SELECT ra.code, gs.group_id, a.app, ra.run,
         CASE WHEN bool_or(v.acc) THEN true WHEN count(v.acc) > 0 THEN false END
  FROM run_areas ra JOIN run_apps a ON a.run = ra.run CROSS JOIN gs
  LEFT JOIN verdicts v ON v.run = ra.run AND v.group_id = gs.group_id
       AND v.class = 'application' AND v.app = a.app
  GROUP BY ra.code, gs.group_id, a.app, ra.run)
SELECT code, group_id, app, count(*) AS runs, count(*) FILTER (WHERE v) AS k, count(v) AS n,
       count(*) FILTER (WHERE v IS NULL) AS unknown
FROM per_run GROUP BY code, group_id, app ORDER BY code, group_id, app
"#;

/// Counts and sums of the other tables.
const COUNTS_SQL: &[(&str, &str)] = &[
    (
        "measurements",
        "SELECT status, count(*) AS n FROM measurements GROUP BY status ORDER BY status",
    ),
    ("runs", "SELECT count(DISTINCT run) AS n FROM measurements"),
    (
        "paths",
        "SELECT count(*) AS n, count(*) FILTER (WHERE class = 'direct') AS direct, \
         (SELECT count(*) FROM hops) AS hops, sum(unknown_hops) AS unknown FROM paths",
    ),
    (
        "servers",
        "SELECT count(*) AS n, coalesce(sum(measurements), 0) AS m, \
         count(*) FILTER (WHERE role = 'messaging') AS messaging FROM servers",
    ),
    (
        "dns",
        "SELECT count(*) AS n, count(*) FILTER (WHERE relevant) AS relevant, \
         coalesce(sum(ips), 0) AS ips FROM dns",
    ),
    (
        "interference",
        "SELECT count(*) AS n, coalesce(sum(json_array_length(frames)), 0) AS frames \
         FROM interference",
    ),
    (
        "flows",
        "SELECT count(*) AS n, coalesce(sum(bytes), 0) AS bytes FROM flows",
    ),
    ("probes", "SELECT count(*) AS n FROM probes"),
];

/// (area code, group id, app; empty for the network column).
type Table3Key = (String, String, String);

fn int(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        Value::Null => 0,
        o => panic!("not a count: {o}"),
    }
}

/// Runs `matador report --format json --out OUT` and checks the dataset it
/// wrote into OUT/dataset with DuckDB against the JSON report. Returns the
/// number of Table 2 rows compared.
fn check(campaign: &Path, db: &Path, out: &Path, want_exit: i32) -> usize {
    let o = Command::cargo_bin("matador")
        .unwrap()
        .arg("report")
        .arg(campaign)
        .args(["--format", "json", "--groups", "pam2016", "--geo-db"])
        .arg(db)
        .arg("--asn-db")
        .arg(db)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(want_exit),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let ds = out.join("dataset");
    for (t, _) in matador::report::dataset::TABLES {
        assert!(ds.join(format!("{t}.parquet")).is_file(), "{t}.parquet");
    }
    let mut queries = vec![
        ("table2", TABLE2_SQL),
        ("table2_apps", TABLE2_APPS_SQL),
        ("table3", TABLE3_SQL),
    ];
    queries.extend_from_slice(COUNTS_SQL);
    let res = duckdb(&ds, &queries);

    // Table 2: every row, every count, the network percentage.
    let t2 = r["table2"].as_array().unwrap();
    let sql = &res["table2"];
    assert!(!t2.is_empty());
    assert_eq!(sql.len(), t2.len(), "table 2 rows: {sql:#?}");
    let by_code: BTreeMap<&str, &Value> = sql
        .iter()
        .map(|x| (x["code"].as_str().unwrap(), x))
        .collect();
    let apps_sql: BTreeMap<(&str, &str), &Value> = res["table2_apps"]
        .iter()
        .map(|x| ((x["code"].as_str().unwrap(), x["app"].as_str().unwrap()), x))
        .collect();
    for row in t2 {
        let code = row["code"].as_str().unwrap();
        let s = by_code
            .get(code)
            .unwrap_or_else(|| panic!("area {code} not in the SQL result"));
        assert_eq!(s["level"], row["level"], "{code}");
        assert_eq!(s["name"], row["name"], "{code}");
        assert_eq!(int(&s["pairs"]), int(&row["pairs"]), "{code} pairs");
        assert_eq!(
            int(&s["measurements"]),
            int(&row["measurements"]),
            "{code} measurements"
        );
        let net = &row["network"];
        for (a, b) in [("k", "k"), ("n", "n"), ("unknown", "unknown")] {
            assert_eq!(int(&s[a]), int(&net[b]), "{code} network {b}");
        }
        assert_eq!(
            s["pct"]
                .as_str()
                .map(|p| p.parse::<f64>().unwrap())
                .or(s["pct"].as_f64()),
            net["pct"].as_f64(),
            "{code} network pct"
        );
        assert_eq!(
            int(&s["unknown_hops"]),
            int(&row["network_unknown_hops"]),
            "{code} unknown hops"
        );
        for (app, share) in row["apps"].as_object().unwrap() {
            let got = apps_sql.get(&(code, app.as_str())).map_or((0, 0, 0), |x| {
                (int(&x["k"]), int(&x["n"]), int(&x["unknown"]))
            });
            let want = (int(&share["k"]), int(&share["n"]), int(&share["unknown"]));
            assert_eq!(got, want, "{code} {app} (k, n, unknown)");
        }
    }

    // Table 3: every (area, group) row, network and per-app shares.
    let t3 = r["table3"].as_array().unwrap();
    assert!(!t3.is_empty());
    let sql3: BTreeMap<Table3Key, (u64, u64, u64, u64)> = res["table3"]
        .iter()
        .map(|x| {
            (
                (
                    x["code"].as_str().unwrap().to_string(),
                    x["group_id"].as_str().unwrap().to_string(),
                    x["app"].as_str().unwrap_or("").to_string(),
                ),
                (
                    int(&x["runs"]),
                    int(&x["k"]),
                    int(&x["n"]),
                    int(&x["unknown"]),
                ),
            )
        })
        .collect();
    let mut net_rows = 0;
    for row in t3 {
        let key = |app: &str| {
            (
                row["code"].as_str().unwrap().to_string(),
                row["group"].as_str().unwrap().to_string(),
                app.to_string(),
            )
        };
        let net = &row["network"];
        let got = sql3.get(&key("")).copied();
        let want = (
            int(&row["total"]),
            int(&net["k"]),
            int(&net["n"]),
            int(&net["unknown"]),
        );
        assert_eq!(got, Some(want), "table 3 {:?} network", key(""));
        net_rows += 1;
        for (app, share) in row["apps"].as_object().unwrap() {
            let got = sql3
                .get(&key(app))
                .map_or((0, 0, 0), |&(_, k, n, u)| (k, n, u));
            let want = (int(&share["k"]), int(&share["n"]), int(&share["unknown"]));
            assert_eq!(got, want, "table 3 {:?}", key(app));
        }
    }
    let sql_net_rows = sql3.keys().filter(|k| k.2.is_empty()).count();
    assert_eq!(net_rows, sql_net_rows, "table 3 rows");

    // The other tables: the report's counts.
    let c = &r["campaign"];
    let statuses: BTreeMap<String, u64> = res["measurements"]
        .iter()
        .map(|x| (x["status"].as_str().unwrap().to_string(), int(&x["n"])))
        .collect();
    let want: BTreeMap<String, u64> = c["by_status"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), int(v)))
        .collect();
    assert_eq!(statuses, want);
    assert_eq!(int(&res["runs"][0]["n"]), int(&c["pair_runs"]), "pair runs");
    let paths = r["paths"].as_array().unwrap();
    let p = &res["paths"][0];
    assert_eq!(int(&p["n"]) as usize, paths.len());
    assert_eq!(
        int(&p["direct"]) as usize,
        paths.iter().filter(|x| x["class"] == "direct").count()
    );
    assert_eq!(
        int(&p["hops"]) as usize,
        paths
            .iter()
            .map(|x| x["hops"].as_array().unwrap().len())
            .sum::<usize>()
    );
    assert_eq!(
        int(&p["unknown"]),
        paths.iter().map(|x| int(&x["unknown"])).sum::<u64>()
    );
    let servers = r["servers"].as_array().unwrap();
    let s = &res["servers"][0];
    assert_eq!(int(&s["n"]) as usize, servers.len());
    assert_eq!(
        int(&s["m"]),
        servers.iter().map(|x| int(&x["measurements"])).sum::<u64>()
    );
    assert_eq!(
        int(&s["messaging"]) as usize,
        servers.iter().filter(|x| x["role"] == "messaging").count()
    );
    let dns = r["dns"].as_array().unwrap();
    let d = &res["dns"][0];
    assert_eq!(int(&d["n"]) as usize, dns.len());
    assert_eq!(
        int(&d["relevant"]) as usize,
        dns.iter().filter(|x| x["relevant"] == true).count()
    );
    assert_eq!(
        int(&d["ips"]),
        dns.iter().map(|x| int(&x["ips"])).sum::<u64>()
    );
    let inter = r["interference"].as_array().unwrap();
    let i = &res["interference"][0];
    assert_eq!(int(&i["n"]) as usize, inter.len());
    assert_eq!(
        int(&i["frames"]) as usize,
        inter
            .iter()
            .map(|x| x["frames"].as_array().unwrap().len())
            .sum::<usize>()
    );
    let probes = r
        .get("probes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert_eq!(int(&res["probes"][0]["n"]) as usize, probes);
    t2.len()
}

/// Flows of a campaign straight from its analysis files (not via the report).
fn flows_in_record(dir: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    for m in std::fs::read_dir(dir.join("measurements")).unwrap() {
        let a = m.unwrap().path().join("analysis.json");
        let Ok(text) = std::fs::read_to_string(&a) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        for c in v["captures"].as_array().into_iter().flatten() {
            for f in c["flows"].as_array().into_iter().flatten() {
                n += 1;
                bytes += f["bytes"].as_u64().unwrap();
            }
        }
    }
    (n, bytes)
}

#[test]
fn duckdb_reproduces_tables_2_and_3_of_the_fixture_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = lab_db(tmp.path());
    let out = tmp.path().join("out");
    // Exit 1: the fixture has a corrupt analysis.json (still reported).
    let rows = check(&fixtures().join("small"), &db, &out, 1);
    assert_eq!(rows, 7);
    // The same record gives byte-identical files.
    let again = tmp.path().join("again");
    check(&fixtures().join("small"), &db, &again, 1);
    for (t, _) in matador::report::dataset::TABLES {
        let f = format!("dataset/{t}.parquet");
        assert!(
            std::fs::read(out.join(&f)).unwrap() == std::fs::read(again.join(&f)).unwrap(),
            "{f} differs between two runs"
        );
    }
    // Flows are not in the report: compare with the record itself.
    let res = duckdb(&out.join("dataset"), COUNTS_SQL);
    let f = &res["flows"][0];
    let (n, bytes) = flows_in_record(&fixtures().join("small"));
    assert!(n > 0, "the fixture has flows");
    assert_eq!((int(&f["n"]), int(&f["bytes"])), (n, bytes));
}

#[test]
fn duckdb_reproduces_tables_2_and_3_of_a_paper_sized_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("paper-campaign");
    let runs = paper_sized_runs();
    write_synthetic(&dir, &runs);
    synth_db(tmp.path());
    let rows = check(
        &dir,
        &tmp.path().join("synth.mmdb"),
        &tmp.path().join("out"),
        0,
    );
    assert!(rows > 10, "{rows} table 2 rows");
}

#[test]
fn schema_is_documented() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dataset.md"))
            .unwrap();
    for (table, cols) in matador::report::dataset::TABLES {
        let head = format!("### `{table}`");
        let start = doc
            .find(&head)
            .unwrap_or_else(|| panic!("docs/dataset.md: no {head}"));
        let section = &doc[start + head.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        for c in *cols {
            assert!(
                section.contains(&format!("| `{}` |", c.name)),
                "docs/dataset.md: {table}.{} undocumented",
                c.name
            );
        }
    }
}

/// `events.jsonl` of every measurement becomes the `events` table; an
/// unreadable one is named (exit 1) and left out, the rest still written.
#[test]
fn events_table_and_unreadable_events_named() {
    use matador::device::events::{DeviceEvent, EventKind, EventLog, TimeUncertainty};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaign");
    write_synthetic(
        &dir,
        &[RunSpec {
            pair: ("DE", "FR"),
            repetition: 1,
            network: vec!["DE", "NL", "FR"],
            apps: vec![
                ("signal", vec![vec!["DE", "US"], vec!["FR", "US"]]),
                ("threema", vec![vec!["DE", "CH"], vec!["FR", "CH"]]),
            ],
        }],
    );
    let log = EventLog::new(&dir.join("measurements/m00001/events.jsonl"));
    let ev = |ts: &str, kind, unc| DeviceEvent {
        ts: ts.parse().unwrap(),
        device: "lab-a".into(),
        app: "signal".into(),
        kind,
        message_id: Some("m00001-1".into()),
        text_sha256: None,
        clock_offset_ns: Some(-1_500),
        clock_uncertainty_ns: Some(200),
        uncertainty_ns: unc,
    };
    log.append(&ev("1700000001.250000", EventKind::SendTap, None))
        .unwrap();
    log.append(&ev("1700000001.500000", EventKind::Sent, None))
        .unwrap();
    let late = TimeUncertainty {
        before: 700_000_000,
        after: 0,
    };
    log.append(&ev("1700000003.000000", EventKind::Received, Some(late)))
        .unwrap();
    std::fs::write(
        dir.join("measurements/m00002/events.jsonl"),
        "not json\n{}\n",
    )
    .unwrap();
    synth_db(tmp.path());
    let db = tmp.path().join("synth.mmdb");
    let ds = tmp.path().join("ds");
    let o = Command::cargo_bin("matador")
        .unwrap()
        .arg("report")
        .arg(&dir)
        .arg("--dataset")
        .arg(&ds)
        .arg("--geo-db")
        .arg(&db)
        .arg("--asn-db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("measurements/m00002/events.jsonl"), "{err}");
    let res = duckdb(
        &ds,
        &[(
            "events",
            "SELECT measurement, seq, kind, ts, clock_offset_ns, uncertainty_before_ns \
             FROM events ORDER BY seq",
        )],
    );
    let rows = &res["events"];
    let got: Vec<(String, u64, String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["measurement"].as_str().unwrap().to_string(),
                int(&r["seq"]),
                r["kind"].as_str().unwrap().to_string(),
                r["ts"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("m00001".into(), 0, "send_tap".into(), 1_700_000_001.25),
            ("m00001".into(), 1, "sent".into(), 1_700_000_001.5),
            ("m00001".into(), 2, "received".into(), 1_700_000_003.0),
        ]
    );
    assert_eq!(rows[0]["clock_offset_ns"], -1500);
    assert_eq!(rows[2]["uncertainty_before_ns"], 700_000_000);
    assert_eq!(rows[0]["uncertainty_before_ns"], Value::Null);
}

/// A campaign folder holding its dataset (as `matador run` leaves it): the
/// anonymized export leaves the Parquet files out (they hold the raw
/// addresses) and says so in its manifest.
#[test]
fn export_leaves_the_dataset_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaign");
    write_synthetic(
        &dir,
        &[RunSpec {
            pair: ("DE", "FR"),
            repetition: 1,
            network: vec!["DE", "NL", "FR"],
            apps: vec![("signal", vec![vec!["DE", "US"], vec!["FR", "US"]])],
        }],
    );
    synth_db(tmp.path());
    let db = tmp.path().join("synth.mmdb");
    Command::cargo_bin("matador")
        .unwrap()
        .arg("report")
        .arg(&dir)
        .arg("--dataset")
        .arg(dir.join("dataset"))
        .arg("--geo-db")
        .arg(&db)
        .arg("--asn-db")
        .arg(&db)
        .assert()
        .success();
    let hops = std::fs::read(dir.join("dataset/hops.parquet")).unwrap();
    assert_eq!(&hops[..4], b"PAR1");
    let out = tmp.path().join("export");
    let m = matador::report::export::export(&dir, &out, b"test key").unwrap();
    let parquet: Vec<_> = m
        .files
        .iter()
        .filter(|f| f.file.ends_with(".parquet"))
        .collect();
    assert_eq!(parquet.len(), matador::report::dataset::TABLES.len());
    assert!(parquet.iter().all(|f| f.action == "not-exported"));
    assert!(!out.join("dataset").exists());
}

/// `--redact` scrubs phone numbers from the dataset's text cells as from the report.
#[test]
fn redact_scrubs_phone_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaign");
    write_synthetic(
        &dir,
        &[RunSpec {
            pair: ("DE", "FR"),
            repetition: 1,
            network: vec!["DE", "FR"],
            apps: vec![("signal", vec![vec!["DE", "US"]])],
        }],
    );
    let index = dir.join("index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    assert!(text.contains("\"error\":null"));
    std::fs::write(
        &index,
        text.replacen(
            "\"error\":null",
            "\"error\":\"+491701234567 did not answer\"",
            1,
        ),
    )
    .unwrap();
    synth_db(tmp.path());
    let db = tmp.path().join("synth.mmdb");
    for (redact, want) in [(false, "+491701234567"), (true, "+0000000")] {
        let ds = tmp.path().join(format!("ds-{redact}"));
        let mut c = Command::cargo_bin("matador").unwrap();
        c.arg("report")
            .arg(&dir)
            .arg("--dataset")
            .arg(&ds)
            .arg("--geo-db")
            .arg(&db)
            .arg("--asn-db")
            .arg(&db);
        if redact {
            c.arg("--redact");
        }
        c.assert().success();
        let res = duckdb(
            &ds,
            &[(
                "e",
                "SELECT error FROM measurements WHERE error IS NOT NULL",
            )],
        );
        assert_eq!(res["e"].len(), 1);
        assert_eq!(res["e"][0]["error"], format!("{want} did not answer"));
    }
}
