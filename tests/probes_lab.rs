//! Active probes in the virtual lab: the censor in front of `cn-1` forges
//! DNS for `line.naver.jp` and `kakao.com` (and every subdomain) and resets
//! TCP payloads with the keywords `line.naver`, `naver.jp` (overlapping in
//! `line.naver.jp`) and `kakao.com`; `cn-1`'s uplink is throttled (tbf).
//! An on-path injector races forged answers for `venus.web.telegram.org`
//! (the genuine answer arrives too); SYNs to Threema's server are reset. `cn-2` (same country) and the apps
//! WhatsApp and Signal are unfiltered. The same probes run through the
//! node agents over SSH give the same verdicts.
//! The probes must recover exactly that, with no other verdict.

mod lab_common;

use lab_common::{exe, leftovers, require_root};
use matador::campaign::env::StepHook;
use matador::net::netns::run_in;
use matador::probes::limit::Limits;
use matador::probes::session;
use matador::probes::spec::{AppTargets, EndpointSpec, ProbeSpec, app_targets};
use matador::probes::step::{ProbeNode, ProbeStep};
use matador::probes::vantage::run_in_netns;
use matador::probes::verdict::{Knowledge, Verdict};
use matador::scenario::apps::AppProfiles;
use matador_lab::build::{Lab, UpOptions};
use matador_lab::topology::Topology;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

// Backends: line 198.19.7.10:443, kakaotalk 198.19.15.10:443,
// whatsapp 198.19.23.10:5222, signal 198.19.23.11:443, telegram 198.19.23.12:443,
// threema 198.19.31.10:5222.
const NAMES: &str = "{gd2.line.naver.jp: 198.19.7.10, dl.stickershop.line.naver.jp: 198.19.7.10, line.me: 198.19.7.10, katalk.kakao.com: 198.19.15.10}";

fn topology() -> String {
    format!(
        "
name: probes
country: DE
asn: 64600
phones: [{{name: p1, node: cn-1, apps: [], background: false}}]
nodes:
  - {{name: cn-1, country: CN, asn: 64621, hops: 1, throttle_kbit: 2000, dns: {NAMES}}}
  - {{name: cn-2, country: CN, asn: 64622, hops: 1, dns: {NAMES}}}
  - {{name: ca-1, country: CA, asn: 64623, hops: 1, dns: {NAMES}}}
datacenters:
  - {{name: jp, country: JP, asn: 64631, apps: [line]}}
  - {{name: kr, country: KR, asn: 64632, apps: [kakaotalk]}}
  - {{name: us, country: US, asn: 64633, apps: [whatsapp, signal, telegram]}}
  - {{name: ch, country: CH, asn: 64634, apps: [threema]}}
censor:
  node: cn-1
  forge_dns: {{line.naver.jp: 198.18.250.1, kakao.com: 198.18.250.2}}
  rst_keywords: [line.naver, naver.jp, kakao.com]
  rst_syn_to: [198.19.31.10]
  race:
    dns: {{venus.web.telegram.org: 198.18.250.7}}
"
    )
}

/// The endpoints probed: names from the shipped profiles' `probe:` lists,
/// on the port each lab backend serves.
fn apps() -> Vec<AppTargets> {
    let pick = |app: &str, hosts: &[&str], port: u16| {
        let shipped = app_targets(app, &AppProfiles::builtin()).unwrap();
        let endpoints = hosts
            .iter()
            .map(|h| {
                assert!(
                    shipped.endpoints.iter().any(|e| e.host == *h),
                    "{h} not in {app}.yaml"
                );
                EndpointSpec {
                    host: h.to_string(),
                    ports: vec![port],
                }
            })
            .collect();
        AppTargets {
            app: app.into(),
            endpoints,
        }
    };
    vec![
        pick(
            "line",
            &[
                "gd2.line.naver.jp",
                "dl.stickershop.line.naver.jp",
                "line.me",
            ],
            443,
        ),
        pick("kakaotalk", &["katalk.kakao.com", "loco.kakao.com"], 443),
        pick("whatsapp", &["g.whatsapp.net"], 5222),
        pick("signal", &["chat.signal.org"], 443),
        pick("telegram", &["venus.web.telegram.org"], 443),
        pick("threema", &["g-33.0.threema.ch"], 5222),
    ]
}

#[test]
fn probes_recover_exactly_the_configured_censorship() {
    require_root();
    let t = Topology::parse(&topology(), Path::new("probes.yaml")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let t_up = Instant::now();
    let lab = Lab::up(UpOptions {
        topology: t,
        state_dir: state.path().to_path_buf(),
        exe: exe(),
        phones: false,
        ssh: true,
        cancel: None,
    })
    .unwrap();
    eprintln!("lab up in {:.1} s", t_up.elapsed().as_secs_f64());
    let id = lab.id().to_string();

    // A bulk source in the US data centre for the throughput test.
    let bulk: SocketAddr = "198.19.23.100:9000".parse().unwrap();
    matador::net::netns::ip_batch(
        Some(&lab.ns("us")),
        &[matador::ipl![
            "addr",
            "add",
            "198.19.23.100/32",
            "dev",
            "lo"
        ]],
    )
    .unwrap();
    let listener = run_in(Some(&lab.ns("us")), move || {
        std::net::TcpListener::bind(bulk)
    })
    .unwrap();
    std::thread::spawn(move || {
        let data = std::sync::Arc::new(vec![0x42u8; 64 * 1024]);
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let data = data.clone();
            std::thread::spawn(move || {
                for _ in 0..8 {
                    if s.write_all(data.as_slice()).is_err() {
                        break;
                    }
                }
            });
        }
    });

    let mut spec = ProbeSpec::new(apps(), Some("198.18.98.53:53".parse().unwrap()));
    spec.neutral = Some("198.19.23.10:5222".parse().unwrap());
    spec.bulk = Some(bulk);
    spec.bulk_bytes = 400_000;
    spec.lab = true;
    spec.timeout_ms = 1500;
    spec.race_window_ms = 100;
    spec.seed = 7;
    spec.limits = Limits {
        rate_per_s: 200.0,
        max_requests: 400,
    };
    let capdir = tempfile::tempdir().unwrap();
    let desc = lab.desc.clone();
    let mut runner = |name: &str, s: &ProbeSpec| {
        let mut s = s.clone();
        let node = desc.node(name).unwrap();
        s.capture_iface = node.tunnel.as_ref().map(|t| t.node_uplink.clone());
        s.capture_dir = Some(capdir.path().join(name));
        run_in_netns(name, node.netns.as_deref().unwrap(), &s)
    };
    let t0 = Instant::now();
    let knowledge = Knowledge::shipped(&matador_lab::topology::lab_networks());
    let r = session::round(
        &spec,
        "ca-1",
        &["cn-1".to_string(), "cn-2".to_string()],
        &knowledge,
        &mut runner,
    )
    .unwrap();
    let probe_secs = t0.elapsed().as_secs_f64();

    // Expected verdicts: (vantage, host) → set; everything else ok.
    let line_blocked = vec![
        Verdict::DnsTampered,
        Verdict::TlsBlocked,
        Verdict::HttpKeywordBlocked,
    ];
    let mut expected: BTreeMap<(&str, &str), Vec<Verdict>> = BTreeMap::new();
    for h in [
        "gd2.line.naver.jp",
        "dl.stickershop.line.naver.jp",
        "katalk.kakao.com",
        "loco.kakao.com",
    ] {
        expected.insert(("cn-1", h), line_blocked.clone());
    }
    expected.insert(
        ("cn-1", "venus.web.telegram.org"),
        vec![Verdict::DnsTampered],
    );
    expected.insert(("cn-1", "g-33.0.threema.ch"), vec![Verdict::TcpBlocked]);
    let mut total = 0;
    let mut correct = 0;
    for v in &r.verdicts {
        for a in &v.apps {
            for e in &a.endpoints {
                total += 1;
                let want = expected
                    .get(&(v.vantage.as_str(), e.host.as_str()))
                    .cloned()
                    .unwrap_or(vec![Verdict::Ok]);
                if e.verdicts == want {
                    correct += 1;
                } else {
                    eprintln!(
                        "MISMATCH {} {}: got {:?} want {want:?}\n  {:#?}",
                        v.vantage, e.host, e.verdicts, e.reasons
                    );
                }
            }
        }
    }
    // Keywords: isolated exactly, overlapping ones both.
    let mut kw_requests = Vec::new();
    for v in &r.verdicts {
        for a in &v.apps {
            for e in &a.endpoints {
                let want: Vec<&str> = match (v.vantage.as_str(), e.host.as_str()) {
                    ("cn-1", h) if h.contains("line.naver.jp") => vec!["line.naver", "naver.jp"],
                    ("cn-1", h) if h.contains("kakao.com") => vec!["kakao.com"],
                    _ => vec![],
                };
                assert_eq!(e.keywords, want, "{} {}", v.vantage, e.host);
                if !want.is_empty() {
                    let bound = matador::probes::keyword::request_bound(e.host.len(), want.len());
                    assert!(
                        e.keyword_requests <= bound && e.keyword_requests > 0,
                        "{} {}: {} requests (bound {bound})",
                        v.vantage,
                        e.host,
                        e.keyword_requests
                    );
                    kw_requests.push(format!("{}: {} requests", e.host, e.keyword_requests));
                }
            }
        }
    }
    // Throttling: cn-1 only.
    for v in &r.verdicts {
        let t = v.throttle.as_ref().expect("throughput measured");
        eprintln!(
            "{}: {:.0} kbit/s vs control {:.0} kbit/s (ratio {:.3})",
            v.vantage, t.vantage_kbit_s, t.control_kbit_s, t.ratio
        );
        assert_eq!(t.throttled, v.vantage == "cn-1", "{}: {t:?}", v.vantage);
        for a in &v.apps {
            assert_eq!(
                a.verdicts.contains(&Verdict::Throttled),
                v.vantage == "cn-1",
                "{} {}",
                v.vantage,
                a.app
            );
        }
    }
    // Evidence: the capture fed to the interference rules backs the DNS
    // verdicts of cn-1 with frames.
    let cn1 = r.vantages.iter().find(|v| v.vantage == "cn-1").unwrap();
    assert!(cn1.capture.is_some(), "{:?}", cn1.errors);
    let with_frames = r.verdicts[0]
        .apps
        .iter()
        .flat_map(|a| &a.endpoints)
        .filter(|e| e.verdicts.contains(&Verdict::DnsTampered) && !e.evidence_frames.is_empty())
        .count();
    for v in &r.vantages {
        eprintln!(
            "{}: {} requests in {:.1} s, interference events {:?}, errors {:?}",
            v.vantage,
            v.requests,
            v.runtime_s,
            v.events.iter().map(|e| e.rule.as_str()).collect::<Vec<_>>(),
            v.errors
        );
        assert!(!v.budget_exhausted);
    }
    eprintln!(
        "verdicts correct {correct}/{total}; keyword isolation: {kw_requests:?}; \
         {with_frames} dns-tampered endpoints with evidence frames; probes {probe_secs:.1} s"
    );
    assert_eq!(correct, total, "verdict precision");
    assert!(with_frames >= 1, "no DNS verdict carries capture frames");
    // OONI-style output per app.
    let ooni =
        matador::probes::verdict::ooni_measurements(cn1, &r.verdicts[0], &Default::default());
    assert_eq!(ooni.len(), 6);
    assert_eq!(ooni[0]["test_keys"]["dns_consistency"], "inconsistent");
    assert_eq!(ooni[0]["probe_cc"], "ZZ");
    let cn2 = matador::probes::verdict::ooni_measurements(
        &r.vantages[1],
        &r.verdicts[1],
        &Default::default(),
    );
    assert_eq!(cn2[2]["input"], "whatsapp");
    assert_eq!(cn2[2]["test_keys"]["accessible"], true);
    assert_eq!(cn2[2]["test_keys"]["blocking"], false);

    // The campaign's probe step: KakaoTalk after a CN ↔ CN measurement,
    // control chosen outside CN, every vantage through its node agent (SSH).
    let agent_root = tempfile::tempdir().unwrap();
    let mut configs = std::collections::HashMap::new();
    let step_nodes = ["cn-1", "cn-2", "ca-1"]
        .iter()
        .map(|n| {
            let d = desc.node(n).unwrap();
            let cfg = matador::campaign::world::lab_agent(&desc, d, &agent_root.path().join(n))
                .expect("lab node with SSH");
            configs.insert(n.to_string(), cfg);
            (
                n.to_string(),
                ProbeNode {
                    country: d.country.clone(),
                    asn: d.asn,
                    uplink: d.tunnel.as_ref().map(|t| t.node_uplink.clone()),
                },
            )
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = std::sync::Arc::new(matador::campaign::agents::AgentPool::new(
        rt.handle().clone(),
        configs,
    ));
    let step = ProbeStep::new(step_nodes, pool, None, true)
        .with(
            Some("198.18.98.53:53".parse().unwrap()),
            spec.neutral,
            spec.limits,
            None,
        )
        .race_window_ms(100);
    let mdir = tempfile::tempdir().unwrap();
    let cn: matador::scenario::types::CountryCode = "CN".parse().unwrap();
    let m = matador::campaign::plan::PlannedMeasurement {
        id: "m0001".into(),
        kind: matador::campaign::plan::Kind::Message,
        app: "kakaotalk".into(),
        sender: "p1".into(),
        receiver: "p2".into(),
        sender_country: cn.clone(),
        receiver_country: cn,
        sender_nodes: vec!["cn-1".into()],
        receiver_nodes: vec!["cn-2".into()],
        repetition: 1,
        messages: Vec::new(),
        baseline_secs: 0.0,
        estimated_secs: 0.0,
    };
    let t_step = Instant::now();
    let report = step.run(mdir.path(), &m).unwrap();
    assert_eq!(report.via, "agent");
    assert_eq!(report.nodes, ["ca-1", "cn-1", "cn-2"]);
    // The evidence capture came back from the node.
    let cap = mdir.path().join("probes/cn-1");
    assert!(
        std::fs::read_dir(&cap).map(|d| d.count()).unwrap_or(0) > 0,
        "no probe capture fetched into {}",
        cap.display()
    );
    let round: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mdir.path().join("probes/round.json")).unwrap())
            .unwrap();
    assert_eq!(round["control"]["vantage"], "ca-1");
    let v = &round["verdicts"];
    assert_eq!(v[0]["vantage"], "cn-1");
    let cn1_kakao = v[0]["apps"][0]["verdicts"].as_array().unwrap().clone();
    for want in ["dns-tampered", "http-keyword-blocked"] {
        assert!(
            cn1_kakao.contains(&serde_json::json!(want)),
            "{cn1_kakao:?}"
        );
    }
    assert_eq!(
        v[1]["apps"][0]["verdicts"],
        serde_json::json!(["ok"]),
        "{}",
        v[1]
    );
    assert!(mdir.path().join("probes/ooni.jsonl").is_file());
    assert!(mdir.path().join("probes/matrix.md").is_file());
    eprintln!("probe step: {:.1} s", t_step.elapsed().as_secs_f64());

    // The command line: two monitoring rounds of one LINE endpoint.
    let out = tempfile::tempdir().unwrap();
    let t_cli = Instant::now();
    let cli = assert_cmd::Command::new(exe())
        .args(["probe", "--lab-desc"])
        .arg(&lab.desc_path)
        .args([
            "--app",
            "line",
            "--endpoint",
            "gd2.line.naver.jp:443",
            "--vantage",
            "cn-1",
            "--vantage",
            "cn-2",
            "--vantage",
            "p1",
            "--control",
            "ca-1",
            "--neutral",
            "198.19.23.10:5222",
            "--rate",
            "200",
            "--timeout-ms",
            "1500",
            "--repeat",
            "2",
            "--interval",
            "0",
            "--capture",
            "--json",
            "--out",
        ])
        .arg(out.path())
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&cli.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&cli.get_output().stderr).into_owned();
    assert!(stderr.contains("informed-consent"), "{stderr}");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        first[0]["apps"][0]["endpoints"][0]["keywords"],
        serde_json::json!(["line.naver", "naver.jp"])
    );
    // The phone behind cn-1 sees what cn-1 sees, through its tunnel.
    assert_eq!(first[2]["vantage"], "p1");
    assert_eq!(
        first[2]["apps"][0]["endpoints"][0]["verdicts"],
        first[0]["apps"][0]["endpoints"][0]["verdicts"]
    );
    assert_eq!(
        first[2]["apps"][0]["endpoints"][0]["keywords"],
        serde_json::json!(["line.naver", "naver.jp"])
    );
    let series = std::fs::read_to_string(out.path().join("series.jsonl")).unwrap();
    assert_eq!(series.lines().count(), 2);
    let ooni = std::fs::read_to_string(out.path().join("ooni.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(ooni.lines().next().unwrap()).unwrap();
    assert_eq!(m["probe_cc"], "CN");
    assert_eq!(m["probe_asn"], "AS64621");
    assert_eq!(
        m["test_keys"]["blocking"],
        "dns-tampered,tls-blocked,http-keyword-blocked"
    );
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("changes.json")).unwrap()).unwrap();
    // Blocked since round 1 at cn-1 and p1; nothing changes in round 2.
    assert_eq!(changes.as_array().unwrap().len(), 2, "{changes}");
    for c in changes.as_array().unwrap() {
        assert_eq!(c["change"], "blocked");
        assert_eq!(c["round"], 1);
        assert!(c["vantage"] == "cn-1" || c["vantage"] == "p1", "{c}");
    }
    assert!(out.path().join("round-0001-cn-1").is_dir());
    let matrix = std::fs::read_to_string(out.path().join("matrix.md")).unwrap();
    assert!(matrix.contains("| cn-1 (CN, AS64621) | dns-tampered, tls-blocked, http-keyword-blocked | [round-0001.json](round-0001.json)"), "{matrix}");
    assert!(matrix.contains("| cn-2 (CN, AS64622) | ok |"), "{matrix}");
    assert!(
        matrix.contains(
            "- CN / line: cn-1: dns-tampered, tls-blocked, http-keyword-blocked; cn-2: ok"
        ),
        "{matrix}"
    );
    assert!(matrix.contains("`line.naver`, `naver.jp`"), "{matrix}");
    eprintln!("CLI: 2 rounds in {:.1} s", t_cli.elapsed().as_secs_f64());

    // Through the node agents over SSH (the `probe` op).
    let t_agent = Instant::now();
    let via = assert_cmd::Command::new(exe())
        .args(["probe", "--via", "agent", "--lab-desc"])
        .arg(&lab.desc_path)
        .args([
            "--app",
            "kakaotalk",
            "--endpoint",
            "katalk.kakao.com:443",
            "--vantage",
            "cn-1",
            "--control",
            "ca-1",
            "--neutral",
            "198.19.23.10:5222",
            "--rate",
            "200",
            "--timeout-ms",
            "1500",
            "--json",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&via.get_output().stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let e = &v[0]["apps"][0]["endpoints"][0];
    assert_eq!(
        e["verdicts"],
        serde_json::json!(["dns-tampered", "tls-blocked", "http-keyword-blocked"]),
        "{v}"
    );
    assert_eq!(e["keywords"], serde_json::json!(["kakao.com"]));
    eprintln!("via agent (SSH): {:.1} s", t_agent.elapsed().as_secs_f64());

    // Lab mode refuses targets outside the lab.
    let refused = assert_cmd::Command::new(exe())
        .args(["probe", "--lab-desc"])
        .arg(&lab.desc_path)
        .args([
            "--app",
            "signal",
            "--endpoint",
            "192.0.2.1:443",
            "--vantage",
            "cn-2",
            "--control",
            "ca-1",
            "--json",
            "--rate",
            "200",
        ])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&refused.get_output().stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        v[0]["apps"][0]["endpoints"][0]["verdicts"],
        serde_json::json!(["inconclusive"])
    );

    assert!(lab.down().is_empty());
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));
}
