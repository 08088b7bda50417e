//! The network layer on its own, in "real router" mode: the router side runs
//! in the caller's own namespace (no `ip netns exec`), as on a lab router,
//! so policy rules, tables and the tunnel link are recorded as undo commands
//! in the state file. Checks keys (0600, never logged), the tunnel and its
//! health, the per-phone rule, NAT on the node, a handshake that never
//! completes, and that teardown removes everything.

use matador::net::cmd::Cmd;
use matador::net::state::{Guard, Resource, StateFile};
use matador::net::{health, netns, routing, wg};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn ns_exists(n: &str) -> bool {
    netns::exists(n)
}

/// Runs `f` with the calling thread (and the commands it starts) inside `ns`.
fn as_router<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, matador::net::NetError> + Send + 'static,
) -> T {
    netns::run_in(Some(ns), move || f().map_err(std::io::Error::other)).unwrap()
}

/// Tears the state down if the test panics half-way.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(s) = StateFile::load(&self.0) {
            let _ = s.teardown();
        }
    }
}

#[test]
fn tunnel_policy_routing_nat_and_teardown_in_router_mode() {
    assert!(
        matador_lab::build::is_root(),
        "net tests need root (namespaces)"
    );
    assert!(
        matador::net::cmd::which("wireguard-go").is_some()
            || Path::new("/sys/module/wireguard").exists(),
        "no WireGuard: apt-get install wireguard-go"
    );
    let t0 = std::time::Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("{:05x}", std::process::id() & 0xfffff);
    let (r, n, p, srv) = (
        format!("mtnet{tag}-r"),
        format!("mtnet{tag}-n"),
        format!("mtnet{tag}-p"),
        format!("mtnet{tag}-s"),
    );
    let mut st =
        StateFile::create(&tmp.path().join("state.json"), "net", serde_json::json!({})).unwrap();
    let _cleanup = Cleanup(st.path().to_path_buf());
    netns::create(&mut st, &r).unwrap();
    netns::create(&mut st, &n).unwrap();
    netns::create(&mut st, &p).unwrap();
    netns::create(&mut st, &srv).unwrap();
    // A server behind the node that has no route back to the phones: only
    // NATed traffic can be answered.
    netns::veth(Some(&n), "srv0", Some(&srv), "up0").unwrap();
    netns::ip_batch(
        Some(&srv),
        &[
            matador::ipl!["addr", "add", "198.18.201.2/30", "dev", "up0"],
            matador::ipl!["link", "set", "up0", "up"],
        ],
    )
    .unwrap();
    netns::veth(Some(&r), "wlan0", Some(&p), "wlan0").unwrap();
    netns::ip_batch(
        Some(&p),
        &[
            matador::ipl!["addr", "add", "198.18.100.2/24", "dev", "wlan0"],
            matador::ipl!["link", "set", "wlan0", "up"],
            matador::ipl!["route", "add", "default", "via", "198.18.100.1"],
        ],
    )
    .unwrap();
    netns::veth(Some(&r), "up0", Some(&n), "up0").unwrap();
    netns::ip_batch(
        Some(&r),
        &[
            matador::ipl!["addr", "add", "198.18.200.1/30", "dev", "up0"],
            matador::ipl!["link", "set", "up0", "up"],
            matador::ipl!["addr", "add", "198.18.100.1/24", "dev", "wlan0"],
            matador::ipl!["link", "set", "wlan0", "up"],
        ],
    )
    .unwrap();
    netns::ip_batch(
        Some(&n),
        &[
            matador::ipl!["addr", "add", "198.18.200.2/30", "dev", "up0"],
            matador::ipl!["link", "set", "up0", "up"],
            matador::ipl!["addr", "add", "198.18.201.1/30", "dev", "srv0"],
            matador::ipl!["link", "set", "srv0", "up"],
        ],
    )
    .unwrap();
    netns::sysctls(Some(&n), &[("net.ipv4.ip_forward", "1")]).unwrap();
    netns::sysctls(Some(&r), &[("net.ipv4.ip_forward", "1")]).unwrap();

    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let rk = wg::genkey(&keys.join("r.key")).unwrap();
    let nk = wg::genkey(&keys.join("n.key")).unwrap();
    let bad = wg::genkey(&keys.join("bad.key")).unwrap();
    for k in [&rk, &nk] {
        let mode = std::fs::metadata(&k.private_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", k.private_path.display());
    }
    assert!(
        wg::genkey(&keys.join("r.key")).is_err(),
        "keys are never overwritten"
    );

    let rif = format!("wgnet{tag}r");
    let nif = format!("wgnet{tag}n");
    let logs = tmp.path().to_path_buf();
    let backend = wg::detect(Some(&n), &format!("wgnet{tag}p")).unwrap();
    wg::create_interface(&mut st, Some(&n), &nif, backend, &logs.join("n.log")).unwrap();
    wg::configure(
        Some(&n),
        &nif,
        &nk,
        Some(51820),
        &wg::Peer {
            public: rk.public.clone(),
            endpoint: None,
            allowed_ips: vec!["198.18.100.0/24".into(), "198.18.99.1/32".into()],
            keepalive: None,
        },
    )
    .unwrap();
    netns::ip_batch(
        Some(&n),
        &[
            matador::ipl!["addr", "add", "198.18.99.2/30", "dev", nif],
            matador::ipl!["link", "set", nif, "up"],
            matador::ipl!["route", "add", "198.18.100.0/24", "dev", nif],
        ],
    )
    .unwrap();
    routing::nat(&mut st, Some(&n), &["198.18.100.0/24".into()], "srv0").unwrap();

    // Router side in router mode (no namespace argument).
    let (rif2, rk2, npub, logs2) = (rif.clone(), rk.clone(), nk.public.clone(), logs.clone());
    let st_path = st.path().to_path_buf();
    drop(st);
    let st = as_router(&r, move || {
        let mut st = StateFile::load(&st_path)?;
        let backend = wg::detect(None, "wgnetprobe")?;
        wg::create_interface(&mut st, None, &rif2, backend, &logs2.join("r.log"))?;
        wg::configure(
            None,
            &rif2,
            &rk2,
            None,
            &wg::Peer {
                public: npub,
                endpoint: Some("198.18.200.2:51820".parse().unwrap()),
                allowed_ips: vec!["0.0.0.0/0".into()],
                keepalive: Some(25),
            },
        )?;
        netns::ip_batch(
            None,
            &[
                matador::ipl!["addr", "add", "198.18.99.1/30", "dev", rif2],
                matador::ipl!["link", "set", rif2, "up"],
            ],
        )?;
        routing::tunnel_table(&mut st, None, 100, &rif2)?;
        routing::assign_phone(&mut st, None, "198.18.100.2".parse().unwrap(), 100, 1000)?;
        Ok(st)
    });
    // Router-mode objects are recorded as undo commands.
    let undo: Vec<String> = st
        .state()
        .resources
        .iter()
        .filter_map(|r| match r {
            Resource::Undo { argv } => Some(argv.join(" ")),
            _ => None,
        })
        .collect();
    assert!(
        undo.iter().any(|u| u == "ip -4 rule del priority 1000"),
        "{undo:?}"
    );
    assert!(
        undo.iter().any(|u| u == "ip -4 route flush table 100"),
        "{undo:?}"
    );
    assert!(
        undo.iter().any(|u| u == &format!("ip link del {rif}")),
        "{undo:?}"
    );

    let check = health::TunnelCheck {
        node: "node-x".into(),
        router_ns: Some(r.clone()),
        ifname: rif.clone(),
        peer: "198.18.99.2".parse().unwrap(),
    };
    let h = health::check_tunnel(&check).unwrap();
    assert!(h.handshake_age_s < 5, "{h:?}");
    eprintln!("tunnel rtt {:.3} ms", h.rtt_ms);
    assert_eq!(
        routing::route_dev(
            Some(&r),
            "198.18.200.99".parse().unwrap(),
            "198.18.100.2".parse().unwrap(),
            "wlan0"
        )
        .unwrap()
        .as_deref(),
        Some(rif.as_str())
    );
    // The phone reaches the server only through the tunnel, NATed by the
    // node (the MASQUERADE rule counts the flow).
    let out = Cmd::new("ping")
        .netns(Some(&p))
        .args(["-c", "1", "-W", "1", "198.18.201.2"])
        .run();
    assert!(out.is_ok(), "{out:?}");
    let nat = Cmd::new("iptables")
        .netns(Some(&n))
        .args(["-t", "nat", "-L", "POSTROUTING", "-v", "-n", "-x"])
        .run()
        .unwrap();
    let line = nat.lines().find(|l| l.contains("MASQUERADE")).unwrap_or("");
    let pkts: u64 = line
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(pkts >= 1, "{nat}");

    // Keys never appear in logs, the state file or command lines.
    let secret = std::fs::read_to_string(&rk.private_path).unwrap();
    for f in [
        logs.join("r.log"),
        logs.join("n.log"),
        st.path().to_path_buf(),
    ] {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            !text.contains(secret.trim()),
            "private key in {}",
            f.display()
        );
    }

    // A peer with the wrong key: the handshake never completes, named by node.
    Cmd::new("wg")
        .netns(Some(&n))
        .args(["set", &nif, "private-key"])
        .arg(bad.private_path.to_string_lossy().into_owned())
        .run()
        .unwrap();
    Cmd::new("wg")
        .netns(Some(&r))
        .args(["set", &rif, "peer", &nk.public, "remove"])
        .run()
        .unwrap();
    Cmd::new("wg")
        .netns(Some(&r))
        .args([
            "set",
            &rif,
            "peer",
            &nk.public,
            "endpoint",
            "198.18.200.2:51820",
            "allowed-ips",
            "0.0.0.0/0",
        ])
        .run()
        .unwrap();
    let e = health::check_tunnel(&check).unwrap_err().to_string();
    assert!(
        e.contains("node-x") && e.contains("handshake never completed"),
        "{e}"
    );

    // Teardown: rule, tables, link, processes, namespaces gone.
    let procs: Vec<(u32, u64)> = st
        .state()
        .resources
        .iter()
        .filter_map(|r| match r {
            Resource::Process { pid, start, .. } => Some((*pid, *start)),
            _ => None,
        })
        .collect();
    assert_eq!(
        procs.len(),
        if backend == wg::Backend::Userspace {
            2
        } else {
            0
        }
    );
    let problems = Guard::new(st).teardown();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(!ns_exists(&r) && !ns_exists(&n) && !ns_exists(&p) && !ns_exists(&srv));
    for (pid, start) in procs {
        assert!(!matador::net::state::alive(pid, start));
    }
    assert!(!wg::socket_path(&rif).exists() && !wg::socket_path(&nif).exists());
    let _: Option<IpAddr> = None;
    eprintln!("test took {:?}", t0.elapsed());
}
