//! The orchestrator's interface (`device::Phone`) against two simulated
//! phones with skewed, drifting clocks, through a private adb server: send
//! and receive in both directions with offset-corrected timestamps written
//! to events.jsonl; an unplugged phone and a vanished adb server give clear
//! errors naming the phone, and the events written before survive.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::phone::ReceiptVia;
use matador::device::profile::PhoneProfile;
use matador::device::{Contact, DeviceError, EventKind, EventLog, Phone, Prepare};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

fn profile(id: char, addr: SocketAddr, server: &AdbServer) -> PhoneProfile {
    PhoneProfile {
        id: format!("lab-{id}"),
        serial: Some(addr.to_string()),
        address: Some(addr.to_string()),
        adb_server: Some(server.addr().to_string()),
        direct: false,
        model: None,
        rooted: id == 'a',
        display_name: Some(format!("Lab {}", id.to_ascii_uppercase())),
        accounts: APPS
            .iter()
            .map(|a| (a.to_string(), account(a, id)))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_receive_with_offset_corrected_timestamps() {
    let t_test = Instant::now();
    let backends = start_backends(0).await;
    let mut ca = phone_config('a', Some(backends.dns), 0, false);
    ca.clock_skew_ms = 1500.0;
    ca.clock_drift_ppm = 40.0;
    let mut cb = phone_config('b', Some(backends.dns), 1, true);
    cb.clock_skew_ms = -2300.0;
    cb.clock_drift_ppm = -25.0;
    let a = start_phone(ca).await;
    let b = start_phone(cb).await;
    let server = AdbServer::start();
    let (pa, pb) = (
        profile('a', a.adb_addr, &server),
        profile('b', b.adb_addr, &server),
    );
    let apps = load_app_profiles();
    let mut pha = Phone::connect(&pa, &apps).await.unwrap();
    let mut phb = Phone::connect(&pb, &apps).await.unwrap();
    let prep = Prepare {
        firewall_apps: vec!["signal".into(), "wechat".into()],
        mock_location: Some((52.52, 13.405)),
        clock_rounds: Some(7),
    };
    let ra = pha.prepare(&prep).await.unwrap();
    let rb = phb.prepare(&prep).await.unwrap();
    // The offsets are recovered within their uncertainty (plus the few ms
    // the simulated `date` takes to format).
    for (r, want) in [(&ra, 1.5), (&rb, -2.3)] {
        let c = r.clock;
        assert_eq!(c.rounds, 7);
        assert!(
            (c.offset_s - want).abs() <= c.uncertainty_s + 0.005,
            "{c:?} want {want}"
        );
        assert!(c.uncertainty_s < 0.1, "{c:?}");
        eprintln!(
            "{}: clock offset {:.4} s ± {:.4} s",
            r.info.device, c.offset_s, c.uncertainty_s
        );
    }
    assert!(ra.info.root && !rb.info.root);
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("measurements/m0001");
    pha.set_measurement(Some(&m));
    phb.set_measurement(Some(&m));
    pha.set_message_id(Some("m0001-1"));
    phb.set_message_id(Some("m0001-1"));
    let mut latencies = Vec::new();
    for (from, to, peer, app, text) in [
        (&pha, &phb, &pb, "signal", "ping from A; $(id)"),
        (&phb, &pha, &pa, "wechat", "pong from B ✓"),
    ] {
        from.launch(app).await.unwrap();
        from.open_chat(app, &Contact::of(peer, app).unwrap())
            .await
            .unwrap();
        let sent = from.send(app, text).await.unwrap();
        let got = to
            .wait_received(app, text, Some(Duration::from_secs(15)))
            .await
            .unwrap();
        let latency = got.ts.since(&sent.ts);
        eprintln!(
            "{app}: send→receive {:.1} ms ({:?})",
            latency * 1e3,
            got.via
        );
        // Without the offset B's notification would look 2.3 s early (or A's
        // 1.5 s late); corrected it lies after the tap and before the poll.
        let unc = got.clock.unwrap().uncertainty_s + 0.01;
        assert!(latency > -unc && latency < 3.0, "{sent:?} {got:?}");
        assert!(got.ts.since(&got.seen) <= 0.0);
        assert_eq!(sent.text_sha256, got.text_sha256);
        latencies.push(latency);
        from.force_stop(app).await.unwrap();
    }
    let events = EventLog::read(&m.join("events.jsonl")).unwrap();
    let kinds: Vec<(&str, &str, EventKind)> = events
        .iter()
        .map(|e| (e.device.as_str(), e.app.as_str(), e.kind))
        .collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        vec![
            ("lab-a", "signal", AppLaunch),
            ("lab-a", "signal", ChatOpen),
            ("lab-a", "signal", Type),
            ("lab-a", "signal", SendTap),
            ("lab-a", "signal", Sent),
            ("lab-b", "signal", Received),
            ("lab-a", "signal", ForceStop),
            ("lab-b", "wechat", AppLaunch),
            ("lab-b", "wechat", ChatOpen),
            ("lab-b", "wechat", Type),
            ("lab-b", "wechat", SendTap),
            ("lab-b", "wechat", Sent),
            ("lab-a", "wechat", Received),
            ("lab-b", "wechat", ForceStop),
        ]
    );
    assert!(events.windows(2).all(|w| w[1].ts.since(&w[0].ts) > -0.05));
    assert!(
        events
            .iter()
            .all(|e| e.message_id.as_deref() == Some("m0001-1"))
    );
    let b_off = events
        .iter()
        .find(|e| e.device == "lab-b")
        .and_then(|e| e.clock_offset_ns)
        .unwrap();
    assert!((b_off + 2_300_000_000).abs() < 100_000_000, "{b_off}");
    let text = std::fs::read_to_string(m.join("events.jsonl")).unwrap();
    assert!(
        !text.contains("ping from A"),
        "texts are hashed, not stored"
    );
    // The same text twice: the second wait reports the second copy.
    pha.open_chat("signal", &Contact::of(&pb, "signal").unwrap())
        .await
        .unwrap();
    let mut copies = Vec::new();
    for _ in 0..2 {
        let sent = pha.send("signal", "same text").await.unwrap();
        let got = phb
            .wait_received("signal", "same text", Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(got.ts.since(&sent.ts) > -0.01, "{sent:?} {got:?}");
        copies.push(got);
    }
    assert!(copies[1].ts.since(&copies[0].ts) > 0.0, "{copies:?}");
    // The per-UID firewall on rooted A lets only Signal and WeChat out:
    // WhatsApp's message never reaches its server. A screen recording runs
    // meanwhile and lands in the measurement folder.
    let relayed = backends.by_app["whatsapp"].relayed();
    pha.open_chat("whatsapp", &Contact::of(&pb, "whatsapp").unwrap())
        .await
        .unwrap();
    let (sent, video) = tokio::join!(
        pha.send("whatsapp", "blocked by the firewall"),
        pha.screenrecord(1)
    );
    sent.unwrap();
    let e = phb
        .wait_received(
            "whatsapp",
            "blocked by the firewall",
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, matador::device::DeviceError::ReceiptTimeout { .. }),
        "{e}"
    );
    assert_eq!(backends.by_app["whatsapp"].relayed(), relayed);
    let video = video.unwrap();
    assert!(video.starts_with(&m), "{}", video.display());
    let mp4 = std::fs::read(&video).unwrap();
    assert_eq!(&mp4[4..8], b"ftyp", "{}", video.display());
    pha.release().await.unwrap();
    // With the conversation open on B, the app posts no notification: the
    // receipt is found in the UI instead (its time is the poll's).
    phb.open_chat("threema", &Contact::of(&pa, "threema").unwrap())
        .await
        .unwrap();
    pha.open_chat("threema", &Contact::of(&pb, "threema").unwrap())
        .await
        .unwrap();
    let sent = pha.send("threema", "seen in the open chat").await.unwrap();
    let got = phb
        .wait_received(
            "threema",
            "seen in the open chat",
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(got.via, ReceiptVia::Ui);
    assert_eq!(got.ts, got.seen);
    assert!(got.ts.since(&sent.ts) > 0.0);
    eprintln!(
        "latencies {:?} ms; test {:?}",
        latencies
            .iter()
            .map(|l| (l * 1e3).round())
            .collect::<Vec<_>>(),
        t_test.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_mid_send_and_server_gone_name_the_phone() {
    let backends = start_backends(0).await;
    let a = start_phone(phone_config('a', Some(backends.dns), 0, false)).await;
    let server = AdbServer::start();
    let pa = profile('a', a.adb_addr, &server);
    let pb = profile('b', "127.0.0.1:9".parse().unwrap(), &server);
    let apps = load_app_profiles();
    let mut pha = Phone::connect(&pa, &apps).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    pha.set_measurement(Some(dir.path()));
    pha.open_chat("threema", &Contact::of(&pb, "threema").unwrap())
        .await
        .unwrap();
    // Pull the cable once the text is typed, before the send tap: the
    // check and the unplug happen under the phone's state lock, so the tap
    // cannot complete first.
    let text = "never leaves the phone";
    let t = Instant::now();
    let (r, _) = tokio::join!(pha.send("threema", text), async {
        loop {
            {
                let p = a.phone.lock().unwrap();
                if p.apps.iter().any(|s| s.draft == text) {
                    a.unplug();
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let e = r.unwrap_err();
    eprintln!("unplugged after {:?}: {e}", t.elapsed());
    // The lost connection ended the send (not a UI or receipt time bound
    // running out): a condition instead of a wall-clock figure.
    assert!(matches!(e, DeviceError::NoDevice { .. }), "{e}");
    assert!(e.to_string().contains("lab-a"), "{e}");
    // What was recorded before the failure is still there.
    let events = EventLog::read(&dir.path().join("events.jsonl")).unwrap();
    assert_eq!(events.first().map(|e| e.kind), Some(EventKind::ChatOpen));
    assert!(events.iter().all(|e| e.kind != EventKind::Sent));
    // Plugged back in, the same Phone works again once adb sees it.
    a.replug();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match pha.device().sh("echo back").await {
            Ok(o) if o.stdout == "back\n" => break,
            r => assert!(Instant::now() < deadline, "no recovery: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The adb server goes away: a clear error naming phone and serial, fast.
    server.adb(&["kill-server"]);
    let e = pha.force_stop("threema").await.unwrap_err();
    eprintln!("server gone: {e}");
    // Told as the server being gone (not a time bound running out).
    assert!(matches!(e, DeviceError::Server { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("lab-a") && msg.contains(&a.adb_addr.to_string()),
        "{msg}"
    );
    // And an unknown phone in a profile: no device, named.
    let e = Phone::connect(&pb, &apps).await.unwrap_err();
    assert!(e.to_string().contains("lab-b"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_drift_is_recovered_from_two_estimates() {
    let mut c = phone_config('a', None, 0, false);
    c.clock_skew_ms = -800.0;
    c.clock_drift_ppm = 5000.0;
    let a = start_phone(c).await;
    let server = AdbServer::start();
    let d = Phone::connect(&profile('a', a.adb_addr, &server), &[])
        .await
        .unwrap();
    let d = d.device();
    let e1 = d.clock(9).await.unwrap();
    // Drift shows only over time, and a loaded machine widens each
    // estimate: estimate again until the pair bounds the drift to under
    // 2000 ppm (the condition), giving up after 60 s.
    let (e2, dt, bound) = loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let e2 = d.clock(9).await.unwrap();
        let dt = e2.at_host_s - e1.at_host_s;
        let bound = (e1.uncertainty_s + e2.uncertainty_s) / dt * 1e6 + 100.0;
        if bound < 2000.0 || dt > 60.0 {
            break (e2, dt, bound);
        }
    };
    let ppm = e1.drift_ppm(&e2).unwrap();
    eprintln!("drift {ppm:.0} ppm (±{bound:.0}) over {dt:.1} s, offsets {e1:?} {e2:?}");
    assert!(bound < 2000.0, "estimates too loose: ±{bound} ppm");
    assert!((ppm - 5000.0).abs() < bound, "{ppm} ppm");
    assert!(e2.offset_s > e1.offset_s);
}
