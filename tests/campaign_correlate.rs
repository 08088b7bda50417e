//! Server identification by timestamp correlation on synthetic campaigns
//! with known truth (relays, one reached by IP only) and decoys (media,
//! keep-alive servers, push wake-ups before receipts, noise bursts near
//! sends, background noise): precision ≥ 0.99 and recall ≥ 0.95, also with
//! the DNS packets removed and with heavy noise.

mod campaign_common;

use campaign_common::{SynOpts, campaign, truth};
use matador::analysis::correlate::{
    CorrelateConfig, EventKind, MeasurementAnalysis, campaign_servers, is_campaign, read_events,
    replay_campaign,
};
use matador::scenario::apps::AppProfiles;
use std::sync::Arc;

struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Score {
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
}

/// Per message measurement: the identified messaging servers against the truth.
fn score(analyses: &[MeasurementAnalysis], meta_kind: impl Fn(&str) -> Option<String>) -> Score {
    let truth = truth();
    let mut s = Score {
        tp: 0,
        fp: 0,
        fn_: 0,
    };
    for a in analyses {
        let Some(app) = meta_kind(&a.measurement) else {
            continue;
        };
        let want = truth.iter().find(|t| t.0 == app).unwrap();
        let got: Vec<_> = a.servers.iter().filter(|s| s.role == "messaging").collect();
        let hit = got.iter().any(|s| s.ip == want.1 && s.port == want.2);
        if hit {
            s.tp += 1;
        } else {
            s.fn_ += 1;
        }
        for g in got
            .iter()
            .filter(|s| !(s.ip == want.1 && s.port == want.2 && s.app == app))
        {
            eprintln!("false positive in {}: {g:?}", a.measurement);
            s.fp += 1;
        }
    }
    s
}

fn run(opts: &SynOpts) -> (Score, Vec<MeasurementAnalysis>) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = campaign(tmp.path(), opts);
    assert!(is_campaign(&dir));
    let profiles = Arc::new(AppProfiles::builtin());
    let out = replay_campaign(&dir, &profiles, &CorrelateConfig::default()).unwrap();
    // analysis.json written for every measurement.
    for (d, _) in &out {
        assert!(d.join("analysis.json").is_file());
    }
    let metas: std::collections::BTreeMap<String, (String, String)> = out
        .iter()
        .map(|(d, _)| {
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap())
                    .unwrap();
            (
                m["id"].as_str().unwrap().to_string(),
                (
                    m["kind"].as_str().unwrap().to_string(),
                    m["app"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let analyses: Vec<MeasurementAnalysis> = out.into_iter().map(|(_, a)| a).collect();
    let s = score(&analyses, |id| {
        metas
            .get(id)
            .filter(|(k, _)| k == "message")
            .map(|(_, a)| a.clone())
    });
    (s, analyses)
}

fn check(name: &str, opts: &SynOpts) -> Vec<MeasurementAnalysis> {
    let (s, analyses) = run(opts);
    eprintln!(
        "{name}: precision {:.3} recall {:.3} (tp {} fp {} fn {})",
        s.precision(),
        s.recall(),
        s.tp,
        s.fp,
        s.fn_
    );
    assert!(s.tp + s.fn_ > 0);
    assert!(
        s.precision() >= 0.99,
        "{name}: precision {:.3}",
        s.precision()
    );
    assert!(s.recall() >= 0.95, "{name}: recall {:.3}", s.recall());
    analyses
}

#[test]
fn demo_like_campaign_identifies_relays() {
    let analyses = check(
        "demo",
        &SynOpts {
            repetitions: 5,
            ..SynOpts::default()
        },
    );
    // Names come from DNS as evidence; the IP-only relay has none.
    let wa = analyses
        .iter()
        .flat_map(|a| &a.servers)
        .find(|s| s.app == "whatsapp" && s.role == "messaging")
        .unwrap();
    assert!(wa.names.iter().any(|n| n == "e1.whatsapp.net"), "{wa:?}");
    assert!(
        wa.evidence.iter().any(|e| e.starts_with("sends:")),
        "{wa:?}"
    );
    let tg = analyses
        .iter()
        .flat_map(|a| &a.servers)
        .find(|s| s.app == "telegram" && s.role == "messaging")
        .unwrap();
    assert!(tg.names.is_empty(), "{tg:?}");
    // Captures are reported too (replay's CaptureReport per file).
    assert!(analyses.iter().all(|a| a.captures.len() == 2));
    // Campaign pooling keeps exactly the relays as messaging servers.
    let pooled = campaign_servers(&analyses);
    let msg: Vec<_> = pooled.iter().filter(|s| s.role == "messaging").collect();
    assert_eq!(msg.len(), 4, "{msg:#?}");
}

#[test]
fn without_dns_packets() {
    check(
        "no-dns",
        &SynOpts {
            dns: false,
            seed: 7,
            repetitions: 5,
            ..SynOpts::default()
        },
    );
}

#[test]
fn noisy_campaign() {
    check(
        "noisy",
        &SynOpts {
            noise_rate: 3.0,
            seed: 11,
            repetitions: 6,
            dns: false,
            ..SynOpts::default()
        },
    );
}

#[test]
fn without_decoys_nothing_but_relays() {
    let (s, _) = run(&SynOpts {
        noise_rate: 0.0,
        seed: 3,
        repetitions: 2,
        ..SynOpts::default()
    });
    assert_eq!((s.fp, s.fn_), (0, 0));
}

#[test]
fn events_in_both_spellings_and_torn_last_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("events.jsonl");
    std::fs::write(
        &p,
        concat!(
            "{\"t\": 10.5, \"phone\": \"A\", \"app\": \"signal\", \"event\": \"send\", \"msg\": \"1\", \"bytes\": 5}\n",
            "{\"ts\": \"11.25\", \"device\": \"B\", \"app\": \"signal\", \"kind\": \"received\", \"message_id\": \"1\"}\n",
            "{\"ts\": \"9\", \"device\": \"A\", \"app\": \"signal\", \"kind\": \"app_launch\"}\n",
            "{\"ts\": \"12\", \"device\": \"A\", \"kind\": \"sent\", \"message_id\": \"1\"}\n",
            "{\"ts\": \"13\", \"dev"
        ),
    )
    .unwrap();
    let ev = read_events(&p).unwrap();
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0].kind, EventKind::Other);
    assert_eq!(
        (ev[1].t, ev[1].kind, ev[1].bytes),
        (10.5, EventKind::Send, Some(5))
    );
    assert_eq!(
        (ev[2].phone.as_str(), ev[2].kind),
        ("B", EventKind::Receive)
    );
    // `sent` after a `send` tap of the same message is not a second send.
    assert_eq!(ev[3].kind, EventKind::Other);
    // A bad line in the middle is an error naming file and line.
    std::fs::write(
        &p,
        "{\"t\": 1, \"phone\": \"A\"}\nnot json\n{\"t\": 2, \"phone\": \"A\"}\n",
    )
    .unwrap();
    let e = read_events(&p).unwrap_err().to_string();
    assert!(e.contains("events.jsonl:2:"), "{e}");
}

/// Post-processing time of a synthetic campaign; the paper's size with
/// `MATADOR_BENCH_MESSAGES=6496` (target < 60 s), a small one otherwise.
#[test]
fn post_processing_time() {
    let messages: usize = std::env::var("MATADOR_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let reps = messages.div_ceil(16).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let opts = SynOpts {
        repetitions: reps,
        seed: 5,
        ..SynOpts::default()
    };
    let (dir, n) = campaign(tmp.path(), &opts);
    let profiles = Arc::new(AppProfiles::builtin());
    let t = std::time::Instant::now();
    let out = replay_campaign(&dir, &profiles, &CorrelateConfig::default()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "post-processing: {n} messages, {} measurements in {secs:.2} s",
        out.len()
    );
    assert!(
        secs < 60.0 * (n as f64 / 6496.0).max(0.05),
        "{secs:.1} s for {n} messages"
    );
}

#[test]
fn replay_cli_on_campaign_folder_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = campaign(
        tmp.path(),
        &SynOpts {
            repetitions: 2,
            seed: 9,
            ..SynOpts::default()
        },
    );
    let run = || {
        let out = assert_cmd::Command::cargo_bin("matador")
            .unwrap()
            .args(["replay", "--json"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    let lines: Vec<serde_json::Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 4 apps × (1 baseline + 2 repetitions) measurements, 2 captures each.
    let measurements: Vec<_> = lines
        .iter()
        .filter(|v| v.get("measurement").is_some())
        .collect();
    assert_eq!(measurements.len(), 12);
    assert_eq!(
        lines.iter().filter(|v| v.get("capture").is_some()).count(),
        24
    );
    // Each measurement object follows its captures.
    assert!(lines[2].get("measurement").is_some() && lines[0].get("capture").is_some());
    let messaging: Vec<_> = measurements
        .iter()
        .flat_map(|m| m["servers"].as_array().unwrap())
        .filter(|s| s["role"] == "messaging")
        .collect();
    assert_eq!(messaging.len(), 8, "{messaging:#?}");
    assert!(
        messaging
            .iter()
            .all(|s| s["score"].as_f64().unwrap() >= 0.6)
    );
    let analysis = std::fs::read_to_string(dir.join("measurements/m0002/analysis.json")).unwrap();
    assert!(analysis.contains("\"schema\": \"matador/analysis/1\""));
    // Replaying again gives the same bytes.
    assert_eq!(run(), first);
    assert_eq!(
        std::fs::read_to_string(dir.join("measurements/m0002/analysis.json")).unwrap(),
        analysis
    );
}

/// The campaign runner's live analysis pools the measurements analysed so
/// far; a fresh pool (a resumed campaign) rebuilds the same evidence from
/// the folder.
#[test]
fn live_analysis_pools_what_was_done_so_far() {
    use matador::analysis::correlate::{
        BaselineCache, LivePool, analyze_measurement_cached, measurement_dirs, write_analysis,
    };
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = campaign(
        tmp.path(),
        &SynOpts {
            repetitions: 2,
            seed: 9,
            ..SynOpts::default()
        },
    );
    let profiles = Arc::new(AppProfiles::builtin());
    let cfg = CorrelateConfig::default();
    let (cache, live) = (BaselineCache::default(), LivePool::default());
    let mut last = None;
    for d in measurement_dirs(&dir).unwrap() {
        let a = analyze_measurement_cached(&d, &dir, &profiles, &cfg, &cache, &live).unwrap();
        write_analysis(&d, &a).unwrap();
        last = Some((d, a));
    }
    let (d, a) = last.unwrap();
    let m = a
        .servers
        .iter()
        .find(|s| s.role == "messaging")
        .expect("messaging server");
    // Pooled over this app's measurements (two repetitions): more than its own.
    assert!(
        m.campaign_log10_odds.unwrap() > m.log10_odds.unwrap() + 1.0,
        "{m:?}"
    );
    // Resume: a fresh pool rebuilt from the folder gives the same analysis.
    let again = analyze_measurement_cached(
        &d,
        &dir,
        &profiles,
        &cfg,
        &BaselineCache::default(),
        &LivePool::default(),
    )
    .unwrap();
    assert_eq!(again.servers, a.servers);
}
