//! Interference detection against ground truth: real injected traffic.
//!
//! Three network namespaces on 198.18.0.0/15: a client, a censor that
//! routes between them, and a server running dnsmasq and an HTTP server.
//! The censor runs `interference_netns/injector.py`, which races forged DNS
//! answers (an address in no shipped list) and injects RSTs on a keyword
//! in the HTTP Host header or the TLS SNI, with its own TTL and IP-ID habits, and logs what it injected.
//! The client's traffic is captured with tcpdump and replayed by matador;
//! the injected frames in the capture (found by the injector's TTL/IP-ID,
//! cross-checked with its log) are the ground truth for precision/recall.
//! Everything is torn down by a Drop guard, also on failure.
//!
//! Needs root, ip, dnsmasq, tcpdump and python3: missing ones FAIL the test.

use matador::analysis::decode::decode;
use matador::analysis::model::InterferenceRule;
use matador::analysis::replay::{ReplayOptions, analyze_file};
use matador::capture::CaptureReader;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INJECTOR: &str = include_str!("interference_netns/injector.py");
const CLIENT: &str = include_str!("interference_netns/client.py");
const INJ_TTL: u8 = 40;
const INJ_IPID: u16 = 0x5a5a;

const CLIENT_IP: &str = "198.18.40.2";
const CENSOR_C: &str = "198.18.40.1";
const CENSOR_S: &str = "198.18.41.1";
const SERVER_IP: &str = "198.18.41.2";

/// Namespaces and processes of one run; removed on drop.
struct Lab {
    id: String,
    children: Vec<Child>,
    namespaces: Vec<String>,
}

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("mi{role}{}", self.id)
    }

    fn new() -> Lab {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Lab {
            id: format!("{}{:03}", std::process::id() % 100_000, nanos % 1000),
            children: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    fn add_ns(&mut self, role: &str) -> String {
        let n = self.ns(role);
        run("ip", &["netns", "add", &n]);
        self.namespaces.push(n.clone());
        run("ip", &["-n", &n, "link", "set", "lo", "up"]);
        n
    }

    fn spawn(&mut self, ns: &str, argv: &[&str]) -> &mut Child {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?} in {ns}: {e}"));
        self.children.push(child);
        self.children.last_mut().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required by the interference netns test (bash scripts/install-deps.sh)"
    );
}

fn wait_for(path: &Path, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} never became ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Frames (1-based) whose IP header carries the injector's TTL and IP-ID.
fn injected_frames(pcap: &Path) -> BTreeSet<u64> {
    let f = std::fs::File::open(pcap).unwrap();
    let mut r = CaptureReader::new(f, "capture").unwrap();
    let mut out = BTreeSet::new();
    while let Some(raw) = r.next_frame().unwrap() {
        let p = decode(&raw);
        if let Some(ip) = p.ip
            && ip.ttl == INJ_TTL
            && ip.ip_id == Some(INJ_IPID)
        {
            out.insert(p.frame);
        }
    }
    out
}

#[test]
fn censor_namespace_injections_are_detected() {
    for t in ["ip", "dnsmasq", "tcpdump", "python3"] {
        require(t);
    }
    // Only root can create namespaces.
    let uid = run("id", &["-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "the interference netns test must run as root"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("injector.py"), INJECTOR).unwrap();
    std::fs::write(d.join("client.py"), CLIENT).unwrap();
    std::fs::write(d.join("index.html"), "hello\n").unwrap();
    std::fs::write(
        d.join("censor.json"),
        format!(
            r#"{{"ttl": {INJ_TTL}, "ipid": {INJ_IPID}, "blocked": "blocked.example.org", "keyword": "blocked.example.org", "forged": "198.19.66.6"}}"#
        ),
    )
    .unwrap();

    let mut lab = Lab::new();
    let cli = lab.add_ns("c");
    let cen = lab.add_ns("x");
    let srv = lab.add_ns("s");
    let (vc, vxc) = (format!("ic{}", lab.id), format!("ixc{}", lab.id));
    let (vs, vxs) = (format!("is{}", lab.id), format!("ixs{}", lab.id));
    run(
        "ip",
        &[
            "link", "add", &vc, "netns", &cli, "type", "veth", "peer", "name", &vxc, "netns", &cen,
        ],
    );
    run(
        "ip",
        &[
            "link", "add", &vs, "netns", &srv, "type", "veth", "peer", "name", &vxs, "netns", &cen,
        ],
    );
    for (ns, dev, addr) in [
        (&cli, &vc, CLIENT_IP),
        (&cen, &vxc, CENSOR_C),
        (&cen, &vxs, CENSOR_S),
        (&srv, &vs, SERVER_IP),
    ] {
        run(
            "ip",
            &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
        );
        run("ip", &["-n", ns, "link", "set", dev, "up"]);
    }
    run(
        "ip",
        &["-n", &cli, "route", "add", "default", "via", CENSOR_C],
    );
    run(
        "ip",
        &["-n", &srv, "route", "add", "default", "via", CENSOR_S],
    );
    run(
        "ip",
        &[
            "netns",
            "exec",
            &cen,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    );

    // Server: a real resolver and a web server.
    let srv_dir = d.to_str().unwrap().to_string();
    lab.spawn(
        &srv,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--bind-interfaces",
            &format!("--listen-address={SERVER_IP}"),
            "--pid-file=",
            "--user=root",
            &format!("--address=/example.org/{SERVER_IP}"),
        ],
    );
    for port in ["80", "443"] {
        lab.spawn(
            &srv,
            &[
                "python3",
                "-m",
                "http.server",
                port,
                "--bind",
                SERVER_IP,
                "--directory",
                &srv_dir,
            ],
        );
    }
    // Censor.
    let log = d.join("injections.jsonl");
    let ready = d.join("injector.ready");
    lab.spawn(
        &cen,
        &[
            "python3",
            &format!("{srv_dir}/injector.py"),
            &vxc,
            &format!("{srv_dir}/censor.json"),
            log.to_str().unwrap(),
            ready.to_str().unwrap(),
        ],
    );
    wait_for(&ready, "injector");
    // Capture at the client.
    let pcap = d.join("client.pcap");
    let dump = lab.spawn(
        &cli,
        &[
            "tcpdump",
            "-i",
            &vc,
            "-n",
            "-U",
            "-s",
            "0",
            "-w",
            pcap.to_str().unwrap(),
        ],
    );
    let stderr = dump.stderr.take().unwrap();
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "tcpdump: {line}");
    // Let dnsmasq and the web server come up.
    let start = Instant::now();
    let listening = |port: &str| {
        run("ip", &["netns", "exec", &srv, "ss", "-ltnu"]).contains(&format!(":{port} "))
    };
    while !(listening("53") && listening("80") && listening("443")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "servers never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let seen = run(
        "ip",
        &[
            "netns",
            "exec",
            &cli,
            "python3",
            &format!("{srv_dir}/client.py"),
            SERVER_IP,
            SERVER_IP,
            "a.example.org",
            "b.example.org",
            "c.example.org",
            "d.example.org",
            "blocked.example.org",
            "e.example.org",
            "--",
            "example.org",
            "blocked.example.org",
            "www.example.org",
        ],
    );
    // Left as a grace, not a condition: tcpdump shows no progress we could
    // wait on (how many packets the censor injects is what is measured),
    // and SIGINT ends it without draining its ring.
    std::thread::sleep(Duration::from_millis(500));
    // Stop tcpdump cleanly (SIGINT flushes the file), by its pid.
    let pid = lab.children.last().unwrap().id().to_string();
    run("kill", &["-INT", &pid]);
    let _ = lab.children.last_mut().unwrap().wait();
    eprintln!("client saw: {seen}");

    let logged = std::fs::read_to_string(&log).unwrap();
    let to_client = logged.lines().filter(|l| l.contains(CLIENT_IP)).count();
    let truth = injected_frames(&pcap);
    assert_eq!(
        truth.len(),
        to_client,
        "the capture should hold every injection towards the client: {logged}"
    );
    assert!(truth.len() >= 2, "the censor injected nothing: {logged}");

    let report = analyze_file(&pcap, &ReplayOptions::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let ev = &report.interference;
    let mut detected = BTreeSet::new();
    for e in ev {
        let suspects: Vec<u64> = match e.evidence.get("suspect_frames") {
            Some(v) => v
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_u64().unwrap())
                .collect(),
            None => vec![e.frames[0]],
        };
        detected.extend(suspects);
    }
    let tp = detected.intersection(&truth).count() as f64;
    let precision = if detected.is_empty() {
        0.0
    } else {
        tp / detected.len() as f64
    };
    let recall = tp / truth.len() as f64;
    eprintln!(
        "ground truth frames {truth:?}, detected {detected:?}: precision {precision:.2}, recall {recall:.2}"
    );
    eprintln!("{}", serde_json::to_string_pretty(ev).unwrap());
    assert_eq!(precision, 1.0, "false alarms: {ev:#?}");
    assert_eq!(recall, 1.0, "missed injections: {ev:#?}");

    let kinds: BTreeSet<&str> = ev.iter().map(|e| e.rule.as_str()).collect();
    assert!(kinds.contains("duplicate_reply"), "{kinds:?}");
    assert!(kinds.contains("injected_rst"), "{kinds:?}");
    let dns = ev
        .iter()
        .find(|e| e.rule == InterferenceRule::DuplicateReply)
        .unwrap();
    assert_eq!(dns.evidence["forged_addresses"][0], "198.19.66.6");
    assert_eq!(dns.evidence["suspect_reason"], "resolver_misfit");
    // One RST on the HTTP Host keyword, one on the TLS SNI.
    let rsts: Vec<_> = ev
        .iter()
        .filter(|e| e.rule == InterferenceRule::InjectedRst)
        .collect();
    assert_eq!(rsts.len(), 2, "{ev:#?}");
    let triggers: Vec<&str> = rsts
        .iter()
        .map(|e| e.evidence["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(
        triggers,
        [
            "GET / HTTP/1.1 | Host: blocked.example.org",
            "TLS ClientHello | SNI: blocked.example.org"
        ]
    );
    for rst in rsts {
        assert_eq!(rst.claimed_src.to_string(), SERVER_IP);
        assert_eq!(rst.evidence["ip_ttl"], INJ_TTL);
        assert_eq!(rst.evidence["expected_ip_ttl"], 63);
    }
    drop(lab);
}
