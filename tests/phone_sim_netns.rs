//! Simulated phones living in network namespaces: their ADB side stays on
//! the host's loopback (the USB cable), their app traffic leaves through
//! their own namespace's interface to app servers at 198.18.0.0/15
//! addresses, so a capture on the phone's link shows it. Needs root and
//! iproute2 + tcpdump (CI runs as root); a missing prerequisite fails.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::phone::Device;
use matador::device::{adb::Target, phone::ReceiptVia};
use matador_lab::phone::backend::Backend;
use matador_lab::phone::config::BackendConfig;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (install iproute2/tcpdump)", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces removed on drop (also on panic); their veths go with them.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// A tcpdump inside a namespace, stopped on drop.
struct Tcpdump(std::process::Child);

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .output();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_in_netns_reach_app_servers_through_their_link() {
    let pid = std::process::id();
    let tag = format!("{:x}", pid % 0xfffff);
    let (srv, pa, pb) = (
        format!("mtsrv{tag}"),
        format!("mtpa{tag}"),
        format!("mtpb{tag}"),
    );
    let _ns = Namespaces(vec![srv.clone(), pa.clone(), pb.clone()]);
    // A /24 inside 198.18.0.0/15 that only these namespaces use.
    let net = [198u8, 19, (pid % 250) as u8 + 1];
    let ip = move |h: u8| Ipv4Addr::new(net[0], net[1], net[2], h);
    for n in [&srv, &pa, &pb] {
        run(&["ip", "netns", "add", n]);
        run(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }
    run(&["ip", "-n", &srv, "link", "add", "br0", "type", "bridge"]);
    run(&["ip", "-n", &srv, "link", "set", "br0", "up"]);
    let mut srv_addrs = vec![254u8, 53];
    srv_addrs.extend(10..17);
    for h in &srv_addrs {
        run(&[
            "ip",
            "-n",
            &srv,
            "addr",
            "add",
            &format!("{}/24", ip(*h)),
            "dev",
            "br0",
        ]);
    }
    for (n, h) in [(&pa, 1u8), (&pb, 2u8)] {
        run(&[
            "ip", "-n", n, "link", "add", "wlan0", "type", "veth", "peer", "name", "up0",
        ]);
        let peer = format!("p{h}");
        run(&["ip", "-n", n, "link", "set", "up0", "netns", &srv]);
        run(&["ip", "-n", &srv, "link", "set", "up0", "name", &peer]);
        run(&[
            "ip", "-n", &srv, "link", "set", &peer, "master", "br0", "up",
        ]);
        run(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/24", ip(h)),
            "dev",
            "wlan0",
        ]);
        run(&["ip", "-n", n, "link", "set", "wlan0", "up"]);
    }
    // Backends and DNS run in the server namespace on their own runtime.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let srv2 = srv.clone();
    let server_thread = std::thread::spawn(move || {
        matador_lab::phone::net::enter_netns(&srv2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut zone = BTreeMap::new();
            let mut backends: BTreeMap<String, Backend> = BTreeMap::new();
            let mut tasks = Vec::new();
            for (i, app) in APPS.iter().enumerate() {
                let addr = IpAddr::V4(ip(10 + i as u8));
                let def = matador_lab::phone::apps::app_def(app).unwrap();
                let mut listen = vec![SocketAddr::new(addr, def.port)];
                if *app == "wechat" {
                    listen.push(SocketAddr::new(addr, 80));
                    zone.insert("dns.weixin.qq.com".to_string(), addr);
                }
                zone.insert(def.host.to_string(), addr);
                let (b, t) = Backend::start(BackendConfig {
                    app: app.to_string(),
                    listen,
                    delay_ms: 0,
                    fail: false,
                    newgetdns: BTreeMap::new(),
                })
                .await
                .unwrap();
                tasks.extend(t);
                backends.insert(app.to_string(), b);
            }
            zone.remove("long.weixin.qq.com");
            let sock = tokio::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip(53)), 53))
                .await
                .unwrap();
            tasks.push(tokio::spawn(matador_lab::phone::dns::serve(sock, zone)));
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            backends
                .iter()
                .map(|(k, b)| (k.clone(), b.relayed()))
                .collect::<BTreeMap<_, _>>()
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("backends in the server namespace");
    // Capture on phone A's link, as the lab's router would.
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("phone-a.pcap");
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", &pa, "tcpdump", "-i", "wlan0", "-n", "-U", "-w",
        ])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    {
        use std::io::BufRead;
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while err.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening on") {}
        assert!(
            line.contains("listening on"),
            "tcpdump did not start: {line}"
        );
    }
    let dump = Tcpdump(child);
    let dns = SocketAddr::new(IpAddr::V4(ip(53)), 53);
    let mut ca = phone_config('a', Some(dns), 0, false);
    ca.netns = Some(pa.clone());
    // Android-like background traffic is noise the analysis must beat.
    ca.background = true;
    let mut cb = phone_config('b', Some(dns), 1, true);
    cb.netns = Some(pb.clone());
    let a = start_phone(ca).await;
    let b = start_phone(cb).await;
    // ADB stays on the host's loopback.
    assert!(a.adb_addr.ip().is_loopback());
    let da = Device::open(Target::Direct(a.adb_addr)).await.unwrap();
    let db = Device::open(Target::Direct(b.adb_addr)).await.unwrap();
    // The phone's own view of its network: its WLAN address and the servers.
    // (`ip` shows the namespace's real link, not a configured one.)
    let ipa = da.sh_ok("ip addr show wlan0").await.unwrap();
    assert!(ipa.contains(&format!("{}/24", ip(1))), "{ipa}");
    let ipb = db.sh_ok("ip -4 addr").await.unwrap();
    assert!(ipb.contains(&format!("{}/24", ip(2))), "{ipb}");
    let route = da.sh_ok("ip route").await.unwrap();
    assert!(
        route.contains(&format!("{}/24 dev wlan0", ip(0))),
        "{route}"
    );
    let ping = da.sh(&format!("ping -c 1 -W 2 {}", ip(10))).await.unwrap();
    assert_eq!(ping.rc, 0, "{}", ping.stdout);
    let apps = load_app_profiles();
    for app in &apps {
        let text = format!("through the namespace {}", app.id);
        da.send_message(app, &account(&app.id, 'b'), "Lab B", &text, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", app.id));
        let r = db
            .wait_receipt(app, &text, Duration::from_secs(15), None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", app.id));
        assert_eq!(r.via, ReceiptVia::Notification);
    }
    // Cutting the phone's link stops its delivery: the simulator never
    // shortcuts around the network.
    run(&["ip", "-n", &pa, "link", "set", "wlan0", "down"]);
    let signal = apps.iter().find(|a| a.id == "signal").unwrap();
    da.send_message(
        signal,
        &account("signal", 'b'),
        "Lab B",
        "link is down",
        None,
    )
    .await
    .unwrap();
    let e = db
        .wait_receipt(signal, "link is down", Duration::from_secs(3), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not received"), "{e}");
    drop(dump);
    stop_tx.send(()).unwrap();
    let relayed = server_thread.join().unwrap();
    assert!(relayed.values().all(|&n| n == 1), "{relayed:?}");
    // The capture holds each app's connection to its server address.
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for (i, app) in APPS.iter().enumerate() {
        let port = matador_lab::phone::apps::app_def(app).unwrap().port;
        let want = format!("{}.{port}:", ip(10 + i as u8));
        assert!(
            text.lines().any(|l| l.contains(&want)),
            "{app}: no packets to {want} in the capture:\n{text}"
        );
    }
    assert!(text.contains(&format!("{}.53:", ip(53))), "no DNS: {text}");
    for name in ["connectivitycheck.gstatic.com", "time.android.com"] {
        assert!(
            text.contains(&format!("A? {name}.")),
            "no background look-up of {name}: {text}"
        );
    }
}
