//! `matador router config`: golden files (insta) for everything generated,
//! incl. hostapd.conf (no Wi-Fi card here, and hostapd has no test mode:
//! it is run up to its driver), and validation by the real tools:
//! `hostapd`'s parser, `dnsmasq --test`, `nft -c -f`,
//! `iptables-restore --test`, `sh -n`, `wg setconf` on a real userspace
//! WireGuard interface, and router-up.sh applied (twice) in a namespace.
//! Root is needed for nft/iptables/wireguard-go in a namespace; a missing
//! tool FAILS.

use matador::net::router::RealLab;
use matador::net::router::generate::{self, Keys, TunnelKeys};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reallab/lab.yaml")
}

fn run(prog: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} missing ({e}): run scripts/install-deps.sh"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn fake_keys(n: usize) -> Vec<TunnelKeys> {
    (0..n)
        .map(|i| TunnelKeys {
            router: Keys {
                private: format!("ROUTER-PRIVATE-{i}"),
                public: format!("ROUTER-PUBLIC-{i}"),
            },
            node: Keys {
                private: format!("NODE-PRIVATE-{i}"),
                public: format!("NODE-PUBLIC-{i}"),
            },
        })
        .collect()
}

#[test]
fn golden_files() {
    let lab = RealLab::load(&fixture()).unwrap();
    let files = generate::render(
        &lab,
        "not-the-real-passphrase",
        &fake_keys(2),
        Path::new(generate::INSTALL_DIR),
    )
    .unwrap();
    let names: Vec<String> = files.iter().map(|f| f.rel.display().to_string()).collect();
    insta::assert_snapshot!("files", names.join("\n"));
    for f in &files {
        let name = f.rel.display().to_string().replace('/', "__");
        insta::assert_snapshot!(name, f.text);
    }
    // Secrets are exactly the files with keys or the passphrase.
    for f in &files {
        let has_secret = f.text.contains("PRIVATE") || f.text.contains("not-the-real-passphrase");
        assert_eq!(f.secret, has_secret, "{}", f.rel.display());
        assert_eq!(f.secret, f.mode == 0o600, "{}", f.rel.display());
    }
}

#[test]
fn bad_descriptions_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixture()).unwrap();
    for (from, to, want) in [
        (
            "node: br-1}",
            "node: xx-9}",
            "phone phone-b: unknown node \"xx-9\"",
        ),
        ("3c:2e:f9:00:00:02", "3C:2E:F9:00:00:01", "MAC"),
        (
            "addr: 198.18.100.3",
            "addr: 198.18.101.3",
            "not a host address of the WLAN",
        ),
        ("channel: 6", "channel: 14", "router.channel 14"),
        (
            "country: DE\nrouter",
            "country: Germany\nrouter",
            "ISO 3166",
        ),
        (
            "ssid: matador-berlin",
            "ssid: matador-berlin\n  bogus: 1",
            "line",
        ),
        (
            "host: 198.51.100.7",
            "host: \"198.51.100.7; rm -rf /\"",
            "is not a host name",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let p = dir.path().join("lab.yaml");
        std::fs::write(&p, base.replacen(from, to, 1)).unwrap();
        let e = RealLab::load(&p).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("lab.yaml"), "{from} → {e}");
    }
    // A short passphrase is refused when generating.
    let p = dir.path().join("lab.yaml");
    std::fs::write(&p, &base).unwrap();
    std::fs::write(dir.path().join("wlan.psk"), "short\n").unwrap();
    let lab = RealLab::load(&p).unwrap();
    let e = generate::generate(&lab, &dir.path().join("out"), Path::new("/x")).unwrap_err();
    assert!(e.to_string().contains("8-63"), "{e}");
}

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        // wireguard-go processes of this namespace are ours.
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(p).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn generated_files_pass_the_real_tools_and_apply() {
    assert!(
        matador_lab::build::is_root(),
        "reallab_router needs root (nft/iptables/wireguard-go in a namespace)"
    );
    for p in [
        "dnsmasq",
        "nft",
        "iptables-restore",
        "wg",
        "wireguard-go",
        "ip",
    ] {
        assert!(
            matador::net::cmd::which(p).is_some(),
            "{p} missing: run scripts/install-deps.sh"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // The namespace has no DNS: `wg setconf` needs the endpoints as addresses.
    let yaml = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("host: de-1.nodes.example.org", "host: 198.51.100.1");
    std::fs::write(dir.path().join("lab.yaml"), yaml).unwrap();
    std::fs::copy(
        fixture().with_file_name("wlan.psk"),
        dir.path().join("wlan.psk"),
    )
    .unwrap();
    let lab = RealLab::load(&dir.path().join("lab.yaml")).unwrap();
    let files = generate::generate(&lab, &out, &out).unwrap();
    for f in &files {
        let mode = std::fs::metadata(out.join(&f.rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, f.mode, "{}", f.rel.display());
    }
    for k in ["router-de-1", "node-de-1", "router-br-1", "node-br-1"] {
        let m = std::fs::metadata(out.join(format!("keys/{k}.key"))).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
    // Keys are generated once: a second run keeps them.
    let wg1 = std::fs::read_to_string(out.join("wg/router-de-1.conf")).unwrap();
    generate::generate(&lab, &out, &out).unwrap();
    assert_eq!(
        wg1,
        std::fs::read_to_string(out.join("wg/router-de-1.conf")).unwrap()
    );

    let p = |n: &str| out.join(n).display().to_string();
    let (ok, msg) = run("dnsmasq", &["--test", "-C", &p("dnsmasq.conf")]);
    assert!(ok && msg.contains("syntax check OK"), "dnsmasq: {msg}");
    let (ok, msg) = run("sh", &["-n", &p("router-up.sh")]);
    assert!(ok, "sh -n: {msg}");

    let ns = Ns(format!("mtrl-r-{}", std::process::id()));
    assert!(run("ip", &["netns", "add", &ns.0]).0);
    // hostapd has no test mode, but it parses the whole file (and reads the
    // PSK and MAC files) before touching the driver: in a namespace without
    // a Wi-Fi card it must get as far as the driver.
    let (_, msg) = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "timeout",
            "10",
            "hostapd",
            &p("hostapd.conf"),
        ],
    );
    assert!(
        msg.contains("Failed to initialize driver")
            && !msg.contains("errors found in configuration"),
        "hostapd did not accept hostapd.conf: {msg}"
    );
    let bad = dir.path().join("bad-hostapd.conf");
    let text = std::fs::read_to_string(out.join("hostapd.conf")).unwrap();
    std::fs::write(
        &bad,
        text.replace("rsn_pairwise=CCMP", "rsn_pairwise=CCMP\nwpa_bogus=1"),
    )
    .unwrap();
    let (_, msg) = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "timeout",
            "10",
            "hostapd",
            bad.to_str().unwrap(),
        ],
    );
    assert!(msg.contains("errors found in configuration"), "{msg}");
    let (ok, msg) = run(
        "ip",
        &["netns", "exec", &ns.0, "nft", "-c", "-f", &p("router.nft")],
    );
    assert!(ok, "nft -c: {msg}");
    let (ok, msg) = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "iptables-restore",
            "--test",
            &p("router.iptables"),
        ],
    );
    assert!(ok, "iptables-restore --test: {msg}");

    // Apply for real in the namespace: interfaces as on the router, then
    // router-up.sh (wireguard-go tunnels, tables, rules), twice.
    // (no dummy module on CI: veth pairs stand in for the card and the uplink)
    for (dev, peer) in [("wlp2s0", "wlp2s0p"), ("enp1s0", "enp1s0p")] {
        let (ok, msg) = run(
            "ip",
            &[
                "-n", &ns.0, "link", "add", dev, "type", "veth", "peer", "name", peer,
            ],
        );
        assert!(ok, "{msg}");
        for d in [dev, peer] {
            assert!(run("ip", &["-n", &ns.0, "link", "set", d, "up"]).0);
        }
    }
    // No address on the card: router-up.sh gives the WLAN its address
    // (the phones' gateway, which dnsmasq binds to).
    assert!(
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1"
            ]
        )
        .0
    );
    // wireguard-go's UAPI sockets live machine-wide (/var/run/wireguard).
    for name in ["wg-de-1", "wg-br-1"] {
        assert!(
            !Path::new(&format!("/var/run/wireguard/{name}.sock")).exists(),
            "{name} already exists on this machine (another run?)"
        );
    }
    let up = || {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.0, "sh"])
            .arg(out.join("router-up.sh"))
            .env("MATADOR_ROUTER_DIR", &out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "router-up.sh: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (_, rules) = run("ip", &["-n", &ns.0, "-4", "rule", "show"]);
        let (_, ing) = run(
            "tc",
            &["-n", &ns.0, "filter", "show", "dev", "wlp2s0", "ingress"],
        );
        let (_, eg) = run(
            "tc",
            &["-n", &ns.0, "filter", "show", "dev", "wlp2s0", "egress"],
        );
        // Action indices are allocated anew on every run: not part of the state.
        let filters: String = (ing + &eg)
            .lines()
            .filter(|l| !l.trim_start().starts_with("index "))
            .map(|l| format!("{l}\n"))
            .collect();
        rules + &filters
    };
    let rules1 = up();
    let rules2 = up();
    assert_eq!(rules1, rules2, "router-up.sh is not idempotent");
    for want in [
        "1000:\tfrom 198.18.100.2 lookup 100",
        "1001:\tfrom 198.18.100.3 lookup 101",
        "1500:\tfrom 198.18.99.1 lookup 100",
        "1501:\tfrom 198.18.99.5 lookup 101",
        "1999:\tfrom all iif wlp2s0 unreachable",
    ] {
        assert!(rules1.contains(want), "{want:?} not in\n{rules1}");
    }
    assert!(
        rules1.contains("mirred (Egress Mirror to device c-phone-a)"),
        "{rules1}"
    );
    // Phone A (the WLAN peer, moved to its own namespace) pings the router:
    // both directions are mirrored to c-phone-a, nothing to c-phone-b.
    let phone = Ns(format!("mtrl-p-{}", std::process::id()));
    assert!(run("ip", &["netns", "add", &phone.0]).0);
    assert!(
        run(
            "ip",
            &["-n", &ns.0, "link", "set", "wlp2s0p", "netns", &phone.0]
        )
        .0
    );
    for a in [
        vec!["addr", "add", "198.18.100.2/24", "dev", "wlp2s0p"],
        vec!["link", "set", "wlp2s0p", "up"],
    ] {
        let mut v = vec!["-n", phone.0.as_str()];
        v.extend(a);
        assert!(run("ip", &v).0);
    }
    let (ok, msg) = run(
        "ip",
        &[
            "netns",
            "exec",
            &phone.0,
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "198.18.100.1",
        ],
    );
    assert!(ok, "{msg}");
    let tx = |dev: &str| -> u64 {
        let (_, s) = run("ip", &["-n", &ns.0, "-s", "-j", "link", "show", dev]);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
    };
    assert!(
        tx("c-phone-a") >= 6,
        "c-phone-a saw {} packets",
        tx("c-phone-a")
    );
    assert_eq!(tx("c-phone-b"), 0);
    let (_, t) = run("ip", &["-n", &ns.0, "route", "show", "table", "101"]);
    assert!(
        t.contains("default dev wg-br-1") && t.contains("unreachable default"),
        "{t}"
    );
    let (_, show) = run("ip", &["netns", "exec", &ns.0, "wg", "show", "wg-br-1"]);
    assert!(
        show.contains("endpoint: 198.51.100.7:51821")
            && show.contains("persistent keepalive: every 25 seconds"),
        "{show}"
    );
    // The node side parses too (its private key gives the public key the router expects).
    let node_conf = out.join("wg/node-br-1.conf");
    assert!(run("ip", &["netns", "exec", &ns.0, "wireguard-go", "wg-mtrl-n"]).0);
    let (ok, msg) = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "wg",
            "setconf",
            "wg-mtrl-n",
            node_conf.to_str().unwrap(),
        ],
    );
    assert!(ok, "wg setconf node conf: {msg}");
    let (_, pubkey) = run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.0,
            "wg",
            "show",
            "wg-mtrl-n",
            "public-key",
        ],
    );
    let (_, peer) = run(
        "ip",
        &["netns", "exec", &ns.0, "wg", "show", "wg-br-1", "peers"],
    );
    assert_eq!(pubkey.trim(), peer.trim());
    // With the tunnel down the phone's table is unreachable (no leak).
    assert!(run("ip", &["-n", &ns.0, "link", "set", "wg-br-1", "down"]).0);
    let (ok, msg) = run(
        "ip",
        &[
            "-n",
            &ns.0,
            "route",
            "get",
            "203.0.113.1",
            "from",
            "198.18.100.3",
            "iif",
            "wlp2s0",
        ],
    );
    assert!(
        !ok && (msg.contains("unreachable") || msg.contains("No route to host")),
        "{msg}"
    );
    // And an unknown WLAN host never reaches the main table.
    let (ok, msg) = run(
        "ip",
        &[
            "-n",
            &ns.0,
            "route",
            "get",
            "203.0.113.1",
            "from",
            "198.18.100.77",
            "iif",
            "wlp2s0",
        ],
    );
    assert!(
        !ok && (msg.contains("unreachable") || msg.contains("No route to host")),
        "{msg}"
    );
    let (ok, msg) = run(
        "ip",
        &["netns", "exec", &ns.0, "nft", "-f", &p("router.nft")],
    );
    assert!(ok, "nft -f: {msg}");

    // `router check` on this router: what is there passes, what is not
    // (no nodes behind the tunnels, phone B absent, tunnel br-1 down) fails.
    let leases = dir.path().join("leases");
    std::fs::write(
        &leases,
        "1795430000 3c:2e:f9:00:00:01 198.18.100.2 phone-a *\n",
    )
    .unwrap();
    let mut site = matador::net::router::RouterSite::real(&lab);
    site.netns = Some(ns.0.clone());
    site.leases = Some(leases);
    let results = matador::net::router::check::check(&lab, &site);
    let st = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("no {n} in {results:#?}"))
            .status
    };
    use matador::net::router::check::Status::{Fail, Ok as Pass, Warn};
    for (n, want) in [
        ("interface wlp2s0", Pass),
        ("interface wg-de-1", Pass),
        ("interface wg-br-1", Fail),
        ("lease phone-a", Pass),
        ("lease phone-b", Fail),
        ("phone phone-a", Pass),
        ("phone phone-b", Fail),
        ("capture phone-a", Pass),
        ("capture phone-b", Pass),
        ("rule phone-a", Pass),
        ("rule phone-b", Pass),
        ("table 100 (de-1)", Pass),
        ("table 101 (br-1)", Fail),
        ("tunnel de-1", Fail),
        ("leak phone-a → 203.0.113.1", Pass),
        ("leak phone-b → 203.0.113.1", Fail),
        ("dns phone-a", Fail),
        ("wlan catch-all", Pass),
        ("firewall", Pass),
    ] {
        assert_eq!(st(n), want, "{n}: {results:#?}");
    }
    assert!(results.iter().all(|r| r.status != Warn));
    // Every failure comes with a fix.
    assert!(
        results
            .iter()
            .filter(|r| r.status == Fail)
            .all(|r| r.fix.is_some())
    );
    // The tc filters gone: the capture check says so.
    assert!(
        run(
            "tc",
            &["-n", &ns.0, "qdisc", "del", "dev", "wlp2s0", "clsact"]
        )
        .0
    );
    let results = matador::net::router::check::check(&lab, &site);
    let cap = results
        .iter()
        .find(|r| r.name == "capture phone-a")
        .unwrap();
    assert_eq!(cap.status, Fail, "{cap:?}");
}

#[test]
fn scenario_is_checked_against_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let scn = fixture().with_file_name("scenario.yaml");
    let cfg = |s: &Path| {
        Command::new(env!("CARGO_BIN_EXE_matador"))
            .args(["router", "config", "--lab"])
            .arg(fixture())
            .arg("--scenario")
            .arg(s)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let o = cfg(&scn);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sections = std::fs::read_to_string(dir.path().join("out/scenario-sections.yaml")).unwrap();
    assert!(
        sections.contains("phone-b: {addr: 198.18.100.3, interface: c-phone-b, priority: 1001"),
        "{sections}"
    );
    let bad = dir.path().join("scenario.yaml");
    let text = std::fs::read_to_string(&scn)
        .unwrap()
        .replace("table: 100", "table: 107")
        .replace("priority: 1001", "priority: 1005")
        .replace(
            "../../../device-profiles",
            &format!("{}/device-profiles", env!("CARGO_MANIFEST_DIR")),
        );
    std::fs::write(&bad, text).unwrap();
    let o = cfg(&bad);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("nodes.de-1.table: should be 100")
            && err.contains("router.phones.phone-b.priority: should be 1001"),
        "{err}"
    );
}

#[test]
fn cli_writes_files_and_never_prints_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["router", "config", "--lab"])
        .arg(fixture())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("hostapd.conf") && text.contains("wg/router-de-1.conf  (secret)"),
        "{text}"
    );
    let key = std::fs::read_to_string(out.join("keys/router-de-1.key")).unwrap();
    assert!(!text.contains(key.trim()), "a private key was printed");
    assert!(
        !text.contains("not-the-real-passphrase"),
        "the passphrase was printed"
    );
}
