//! The real-lab rehearsal (issue 19): `matador run SCENARIO` **without
//! `--lab`** against a lab built only from what a real lab team has —
//! a router namespace configured by applying the files `matador router
//! config` generates (docs/real-lab.md), two clean Debian nodes
//! provisioned by `matador node install` over OpenSSH and reached through
//! the tunnels those files set up, two phones on the adb server — with app
//! backends and an on-path hop chain beyond the nodes
//! (tests/rehearsal_lab/internet.rs). The run must exchange the messages,
//! capture on router and nodes, identify the servers, trace from the nodes
//! and probe through the node agent, and write the report; servers and
//! traced hops are checked against the truth of that internet.
//!
//! Needs root, ip, nft, sysctl, dnsmasq, wireguard-go, adb, sshd,
//! ssh-keygen, chroot, flock and the cached Debian root (built from
//! deb.debian.org the first time); a missing one FAILS. Everything is torn
//! down by the guard, also on panic.

mod rehearsal_lab;

use rehearsal_lab::{Guard, in_ns, internet, node, phones, run};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const APPS: &[&str] = &["whatsapp"];
const PHONES: &[&str] = &["phone-a", "phone-b"];
const MATADOR: &str = env!("CARGO_BIN_EXE_matador");

/// The lab description (schema matador/real-lab/1) a team would write.
fn lab_yaml(nodes: &[String], phones: &[phones::Phone]) -> String {
    let mut s = String::from(
        "schema: matador/real-lab/1\nname: rehearsal\ncountry: DE\nrouter:\n  wlan_if: wlan0\n  uplink: eth0\n  ssid: matador-rehearsal\n  passphrase_file: wlan.psk\n  channel: 6\nnodes:\n",
    );
    // de: upstream resolver from the node's /etc/resolv.conf (the
    // default); br: given explicitly.
    for (j, (n, c)) in nodes.iter().zip(["DE", "BR"]).enumerate() {
        let dns = match j {
            0 => String::new(),
            _ => format!(", dns_upstream: {}", internet::UPSTREAM_DNS),
        };
        s += &format!(
            "  - {{name: {n}, country: {c}, host: {}, identity: keys/lab, known_hosts: keys/known_hosts{dns}}}\n",
            internet::node_addr(j as u8),
        );
    }
    s += "phones:\n";
    for (p, n) in phones.iter().zip(nodes) {
        s += &format!(
            "  - {{name: {}, serial: \"{}\", mac: \"{}\", addr: {}, node: {n}}}\n",
            p.name, p.serial, p.mac, p.addr
        );
    }
    s
}

/// The scenario: one app, DE → BR, one message each way, paths and probes;
/// its `nodes:`/`router:` sections are the generated scenario-sections.yaml.
fn scenario(nodes: &[String], sections: &str) -> String {
    let mut s = format!(
        "name: rehearsal\ndescription: real-lab rehearsal (tests/rehearsal.rs)\nphones:\n  - {{id: phone-a, profile: phones/phone-a.yaml}}\n  - {{id: phone-b, profile: phones/phone-b.yaml}}\napps: [{}]\napp_profiles: {}\ncountries:\n  DE: [{}]\n  BR: [{}]\n",
        APPS.join(", "),
        rehearsal_lab::repo("device-profiles/apps").display(),
        nodes[0],
        nodes[1]
    );
    s += "pairs:\n  explicit: [[DE, BR]]\nmessages:\n  per_direction: 1\n  texts: [\"Hello from the rehearsal\"]\n  interval: 1s\nrepetitions: 1\nbaseline:\n  runs: 0\ntimeouts:\n  step: 30s\n  receive: 20s\n  measurement: 3m\nretries: 1\ncapture:\n  points: [router, node]\nsteps:\n  paths: true\n  probes: true\n";
    // The lab's hosts sit in the benchmarking range, a bogon to the world:
    // the team declares it its own, explicitly (docs/real-lab.md).
    s += "exempt_networks: [198.18.0.0/15]\n";
    // The agent runs as the unprivileged user `node install --agent-user`
    // made (capabilities on the binary), not as the install's root.
    s + &sections.replace("user: root", "user: matador")
}

/// `matador ARGS` on the lab machine (the router namespace), in `cwd`.
fn matador(router: &str, cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let o = in_ns(router, MATADOR)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run matador");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Installs every node in parallel over SSH from the lab machine.
fn install_nodes(router: &str, lab: &Path, nodes: &[String]) {
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(j, n)| {
                s.spawn(move || {
                    let target = format!("root@{}", internet::node_addr(j as u8));
                    let tunnel = format!("router/nodes/{n}.json");
                    let (ok, out, err) = matador(
                        router,
                        lab,
                        &[
                            "node",
                            "install",
                            "--node",
                            &target,
                            "--identity",
                            "keys/lab",
                            "--known-hosts",
                            "keys/known_hosts",
                            "--tunnel",
                            &tunnel,
                            "--name",
                            n,
                            "--agent-user",
                            "matador",
                        ],
                    );
                    assert!(ok, "node install {n} failed:\n{out}{err}");
                })
            })
            .collect();
        for h in handles {
            h.join().expect("node install thread");
        }
    });
    eprintln!(
        "node install (2 nodes, parallel): {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// The lab team's folder: keys, lab.yaml, generated router files; the
/// nodes started with the team's key authorised.
fn lab_folder(
    g: &mut Guard,
    root: &Path,
    node_ns: &[String],
    nodes: &[String],
    phones: &[phones::Phone],
) -> PathBuf {
    let lab = g.dir.join("lab");
    std::fs::create_dir_all(lab.join("keys")).unwrap();
    std::fs::create_dir_all(lab.join("phones")).unwrap();
    node::keygen(&lab.join("keys/lab"), "rehearsal");
    let mut known = Vec::new();
    for (j, (ns, n)) in node_ns.iter().zip(nodes).enumerate() {
        let addr = internet::node_addr(j as u8);
        known.push((
            addr.to_string(),
            node::start(g, root, ns, n, addr, &lab.join("keys/lab.pub")),
        ));
    }
    let entries: Vec<(&str, u16, &str)> = known
        .iter()
        .map(|(a, k)| (a.as_str(), 22, k.as_str()))
        .collect();
    matador::net::ssh::write_known_hosts(&lab.join("keys/known_hosts"), &entries).unwrap();
    std::fs::write(lab.join("wlan.psk"), "rehearsal passphrase\n").unwrap();
    std::fs::write(lab.join("lab.yaml"), lab_yaml(nodes, phones)).unwrap();
    for (i, p) in phones.iter().enumerate() {
        std::fs::write(
            lab.join(format!("phones/{}.yaml", p.name)),
            phones::profile(p, APPS, i),
        )
        .unwrap();
    }
    lab
}

#[test]
fn real_lab_rehearsal_runs_the_campaign_without_lab() {
    rehearsal_lab::require(&[
        "ip",
        "nft",
        "sysctl",
        "dnsmasq",
        "wireguard-go",
        "wg",
        "adb",
        "ssh",
        "ssh-keygen",
        "debootstrap",
        "chroot",
        "mount",
        "flock",
        "iptables",
        "tc",
    ]);
    let t0 = Instant::now();
    let root = node::cached_root();
    let mut g = Guard::new();
    let router = g.netns("router");
    let nodes = vec![format!("de-{}", g.id), format!("br-{}", g.id)];
    let node_ns: Vec<String> = (0..2).map(|j| g.netns(&format!("node{j}"))).collect();
    let _net = internet::build(&mut g, &router, &node_ns, APPS);
    let wlan = phones::wlan(&mut g, &router, PHONES);
    let phones = phones::start(&mut g, &router, &wlan, APPS);
    let lab = lab_folder(&mut g, &root, &node_ns, &nodes, &phones);

    // docs/real-lab.md: generate, install the nodes, apply on the router.
    let install_dir = lab.join("router");
    router_config(&router, &lab, &install_dir, None);
    install_nodes(&router, &lab, &nodes);
    for j in 0..nodes.len() {
        node::authorize_agent_user(&router, &lab, internet::node_addr(j as u8), "matador");
    }
    let tunnels: Vec<String> = nodes.iter().map(|n| format!("wg-{n}")).collect();
    let leases = rehearsal_lab::router::apply(&mut g, &router, &install_dir, &tunnels);
    // docs step 6: the phones join the WLAN (DHCP from the generated
    // dnsmasq.conf: static lease, gateway, the resolver of their tunnel).
    for ((_, ns, mac), p) in wlan.iter().zip(&phones) {
        let l = phones::join(ns, mac);
        assert_eq!(l.addr.to_string(), p.addr, "{}: {l:?}", p.name);
        assert_eq!(
            l.router,
            Some("198.18.100.1".parse().unwrap()),
            "{}: {l:?}",
            p.name
        );
        assert_eq!(
            l.dns,
            Some("198.18.98.53".parse().unwrap()),
            "{}: {l:?}",
            p.name
        );
    }
    let sections = std::fs::read_to_string(install_dir.join("scenario-sections.yaml")).unwrap();
    std::fs::write(lab.join("scenario.yaml"), scenario(&nodes, &sections)).unwrap();
    router_config(&router, &lab, &install_dir, Some("scenario.yaml"));
    eprintln!("lab ready in {:.1} s", t0.elapsed().as_secs_f64());
    router_check(&router, &lab, &leases);

    // The campaign, from another directory, without --lab.
    let elsewhere = g.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let scen = lab.join("scenario.yaml");
    // docs/real-lab.md "A first one-country campaign", step 4.
    let s = scen.to_str().unwrap();
    for args in [vec!["scenario", "check", s], vec!["run", s, "--dry-run"]] {
        let (ok, out, err) = matador(&router, &elsewhere, &args);
        assert!(ok, "{args:?}:\n{out}{err}");
        if args[0] == "run" {
            assert!(
                out.contains("1 measurements (1 message, 0 baseline)"),
                "{out}"
            );
        }
    }
    // The campaign's record of what it set up on the router
    // (`/run/matador/campaign-<scenario>-<pid>.json`) is undone and removed
    // at its end.
    let router_states = || -> BTreeSet<PathBuf> {
        std::fs::read_dir("/run/matador")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("campaign-rehearsal-"))
            })
            .collect()
    };
    let states_before = router_states();
    let t = Instant::now();
    let (ok, stdout, stderr) = matador(
        &router,
        &elsewhere,
        &["run", scen.to_str().unwrap(), "--out", "campaigns"],
    );
    eprintln!("campaign: {:.1} s", t.elapsed().as_secs_f64());
    let campaigns = elsewhere.join("campaigns");
    assert!(
        ok,
        "matador run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    check_record(&campaigns, &nodes);
    let left: Vec<_> = router_states()
        .difference(&states_before)
        .cloned()
        .collect();
    assert!(left.is_empty(), "router state files left: {left:?}");
    for n in &nodes {
        let log = std::fs::read_to_string(g.dir.join(format!("logs/sshd-{n}.log"))).unwrap();
        assert!(
            log.contains("Accepted publickey for matador "),
            "{n}: the agent did not log in as matador:\n{log}"
        );
    }
    eprintln!("rehearsal total {:.1} s", t0.elapsed().as_secs_f64());
    let ours: Vec<String> = g.namespaces().to_vec();
    drop(g);
    let left = run(Command::new("ip").args(["netns", "list"]));
    let left: Vec<&str> = left
        .lines()
        .filter(|l| ours.iter().any(|o| l.starts_with(o.as_str())))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}

/// `matador router config` (with `--scenario`: it must agree with the lab).
fn router_config(router: &str, lab: &Path, install_dir: &Path, scenario: Option<&str>) {
    let mut args = vec!["router", "config", "--lab", "lab.yaml", "--out", "router"];
    args.extend(["--install-dir", install_dir.to_str().unwrap()]);
    if let Some(s) = scenario {
        args.extend(["--scenario", s]);
    }
    let (ok, out, err) = matador(router, lab, &args);
    assert!(ok, "router config {scenario:?}:\n{out}{err}");
}

/// docs/real-lab.md step 7 on the lab machine: every check passes (DHCP
/// leases per MAC, phones, capture mirrors, rules, tables, tunnels, DNS
/// through each node, leak checks, firewall).
fn router_check(router: &str, lab: &Path, leases: &Path) {
    let leases = leases.to_str().unwrap();
    let (ok, out, err) = matador(
        router,
        lab,
        &[
            "router",
            "check",
            "--lab",
            "lab.yaml",
            "--dns-name",
            internet::CHECK_NAME,
            "--leases",
            leases,
        ],
    );
    assert!(ok, "router check:\n{out}{err}");
    for p in PHONES {
        for check in ["lease", "dns", "capture"] {
            let prefix = format!("ok   {check} {p}");
            assert!(
                out.lines().any(|l| l.starts_with(&prefix)),
                "{prefix}:\n{out}"
            );
        }
    }
}

/// The record: every measurement complete, servers = truth, captures,
/// traces whose hops are the internet's, probes, report.
fn check_record(campaigns: &Path, nodes: &[String]) {
    let dirs: Vec<PathBuf> = std::fs::read_dir(campaigns)
        .expect("campaign folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    let index = read_json(&dir.join("index.json"));
    let ms = index["measurements"].as_array().expect("measurements");
    let truth: BTreeSet<(String, String)> = APPS
        .iter()
        .enumerate()
        .map(|(i, a)| (a.to_string(), internet::server_addr(i as u8).to_string()))
        .collect();
    let mut found = BTreeSet::new();
    for m in ms {
        let id = m["id"].as_str().expect("id");
        assert_eq!(m["status"], "complete", "{id}: {m}");
        let md = dir.join("measurements").join(id);
        let points = PHONES.iter().map(|p| format!("router-{p}"));
        for point in points.chain(nodes.iter().map(|n| format!("node-{n}"))) {
            let f = md.join(format!("capture-{point}.pcap"));
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            assert!(len > 24, "{}: {len} bytes (no packets)", f.display());
        }
        let a = read_json(&md.join("analysis.json"));
        // The messaging servers (issue 21: named by the decision, not only
        // listed with another role).
        let servers = a["servers"].as_array().expect("servers");
        for s in servers.iter().filter(|s| s["role"] == "messaging") {
            found.insert((
                s["app"].as_str().unwrap_or("").to_string(),
                s["ip"].as_str().unwrap_or("").to_string(),
            ));
        }
        check_events(&md, id);
        check_traces(&md, nodes);
        check_probes(&md);
    }
    check_journal(dir, nodes);
    assert_eq!(found, truth, "identified servers vs the internet's truth");
    check_report_and_provenance(dir, nodes);
    assert!(
        dir.join("report.html").is_file(),
        "no report.html in {}",
        dir.display()
    );
}

/// Each node's trace to each server shows exactly the hops of the
/// internet (first answer per TTL).
fn check_traces(md: &Path, nodes: &[String]) {
    for (j, n) in nodes.iter().enumerate() {
        for (i, _) in APPS.iter().enumerate() {
            let server = internet::server_addr(i as u8);
            let f = md.join("traces").join(format!("{n}--{server}.json"));
            let t = read_json(&f);
            let hops: Vec<String> = t["result"]
                .as_array()
                .expect("result")
                .iter()
                .map(|h| {
                    h["result"]
                        .as_array()
                        .and_then(|r| r.iter().find_map(|a| a["from"].as_str()))
                        .unwrap_or("*")
                        .to_string()
                })
                .collect();
            assert_eq!(
                hops,
                internet::truth_hops_to_server(j as u8, server),
                "{}",
                f.display()
            );
        }
    }
}

/// Both messages were sent and received (one each way).
fn check_events(md: &Path, id: &str) {
    let events = std::fs::read_to_string(md.join("events.jsonl")).expect("events.jsonl");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for l in events.lines() {
        let e: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{id}: {e}: {l}"));
        *kinds
            .entry(e["kind"].as_str().unwrap_or("").into())
            .or_default() += 1;
    }
    for k in ["send_tap", "received"] {
        assert_eq!(kinds.get(k), Some(&2), "{id}: {kinds:?}");
    }
}

/// Paths and probes ran through the agent on both nodes; nothing skipped.
fn check_journal(dir: &Path, nodes: &[String]) {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal.jsonl");
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect();
    assert!(
        recs.iter().all(|r| r["state"] != "skipped"),
        "skipped steps in a complete campaign:\n{text}"
    );
    for step in ["paths", "probes"] {
        let done: Vec<&Value> = recs
            .iter()
            .filter(|r| r["step"] == step && r["state"] == "done")
            .collect();
        assert!(!done.is_empty(), "no {step} step done:\n{text}");
        for r in done {
            assert_eq!(r["via"], "agent", "{step}: {r}");
            let on: BTreeSet<&str> = r["nodes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let want: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
            assert_eq!(on, want, "{step}: {r}");
        }
    }
}

/// The probe round through the agents: both nodes resolved each app's host
/// to its backend through their upstream resolver, and nothing between
/// them interferes (no censor in this internet), so the app is `ok`.
fn check_probes(md: &Path) {
    let f = md.join("probes/round.json");
    let r = read_json(&f);
    let mut rounds = vec![&r["control"]];
    rounds.extend(r["vantages"].as_array().expect("vantages"));
    assert_eq!(rounds.len(), 2, "{}", f.display());
    for (i, app) in APPS.iter().enumerate() {
        let host = matador_lab::phone::apps::app_def(app).expect("app").host;
        for v in &rounds {
            let ep = v["apps"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["app"] == *app))
                .and_then(|x| x["endpoints"].as_array())
                .and_then(|e| e.iter().find(|x| x["host"] == host))
                .unwrap_or_else(|| panic!("{}: no {host} from {}", f.display(), v["vantage"]));
            assert_eq!(
                ep["dns_udp"]["answers"],
                serde_json::json!([internet::server_addr(i as u8).to_string()]),
                "{}: {}",
                f.display(),
                v["vantage"]
            );
        }
        let verdicts: Vec<&Value> = r["verdicts"]
            .as_array()
            .expect("verdicts")
            .iter()
            .flat_map(|v| v["apps"].as_array().into_iter().flatten())
            .filter(|a| a["app"] == *app)
            .collect();
        assert!(
            !verdicts.is_empty()
                && verdicts
                    .iter()
                    .all(|a| a["verdicts"] == serde_json::json!(["ok"])),
            "{}: {verdicts:?}",
            f.display()
        );
    }
}

/// A panic in the middle of building tears everything down: the guard
/// stops our processes by pid and deletes our namespaces and folder.
#[test]
fn a_panic_leaves_no_namespace_process_or_folder() {
    rehearsal_lab::require(&["ip", "sleep"]);
    let seen = std::sync::Mutex::new((Vec::new(), PathBuf::new(), Vec::new()));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut g = Guard::new();
        let a = g.netns("x");
        let b = g.netns("y");
        rehearsal_lab::internet::link(&a, "e0", "198.18.1.1", &b, "e0", "198.18.1.2");
        let argv = ["sh", "-c", "echo up; exec sleep 600"].map(String::from);
        g.spawn(&a, &argv, "sleep.log", "up");
        let pids = run(Command::new("ip").args(["netns", "pids", &a]));
        *seen.lock().unwrap() = (
            g.namespaces().to_vec(),
            g.dir.clone(),
            pids.split_whitespace().map(String::from).collect(),
        );
        panic!("deliberate panic while the lab is up");
    }));
    assert!(r.is_err());
    let (ns, dir, pids) = seen.into_inner().unwrap();
    assert_eq!(ns.len(), 2);
    assert!(!pids.is_empty(), "the process was not in the namespace");
    let list = run(Command::new("ip").args(["netns", "list"]));
    for n in &ns {
        assert!(!list.lines().any(|l| l.starts_with(n.as_str())), "{n} left");
    }
    for p in &pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "process {p} left"
        );
    }
    assert!(!dir.exists(), "{} left", dir.display());
}

/// The report names the servers; the provenance has each of the two nodes'
/// OS as its agent reported it over SSH (and no other node).
fn check_report_and_provenance(dir: &Path, nodes: &[String]) {
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(html.contains("Table 2"), "report.html has no Table 2");
    for i in 0..APPS.len() {
        let ip = internet::server_addr(i as u8).to_string();
        assert!(html.contains(&ip), "report.html does not name {ip}");
    }
    let prov = read_json(&dir.join("provenance.json"));
    let got: BTreeSet<(&str, &str)> = prov["runs"][0]["nodes"]
        .as_array()
        .expect("provenance nodes")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or(""),
                n["os"]["os_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let want: BTreeSet<(&str, &str)> = nodes.iter().map(|n| (n.as_str(), "debian")).collect();
    assert_eq!(got, want, "provenance.json nodes");
}
