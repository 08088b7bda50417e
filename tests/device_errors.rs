//! Clear errors: no device, unauthorized, app not installed, selector not
//! found (with the UI dump saved), receipt timeout, and the watchdog that
//! turns a hung call into a timeout without breaking the next call.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::DeviceError;
use matador::device::adb::{Adb, Target};
use matador::device::phone::Device;
use matador::device::profile::AppProfile;
use matador::device::uidump::Selector;
use matador_lab::phone::config::AuthMode;
use std::time::{Duration, Instant};
use support::*;

fn app(id: &str) -> AppProfile {
    load_app_profiles()
        .into_iter()
        .find(|a| a.id == id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_device_and_unauthorized() {
    let server = AdbServer::start();
    let e = Device::open(Target::Server {
        server: server.addr(),
        serial: "127.0.0.1:1".into(),
    })
    .await
    .unwrap_err();
    assert!(matches!(e, DeviceError::NoDevice { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    let e = Device::open(Target::Direct("127.0.0.1:1".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(e, DeviceError::NoDevice { .. }), "{e}");
    let mut cfg = phone_config('a', None, 0, false);
    cfg.auth = AuthMode::Deny;
    let p = start_phone(cfg).await;
    let addr = p.adb_addr;
    let server = tokio::task::spawn_blocking(move || {
        server.adb(&["connect", &addr.to_string()]);
        server.wait_state(&addr.to_string(), "unauthorized", 15);
        server
    })
    .await
    .unwrap();
    let e = Device::open(Target::Server {
        server: server.addr(),
        serial: addr.to_string(),
    })
    .await
    .unwrap_err();
    assert!(matches!(e, DeviceError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("Allow USB debugging"), "{e}");
    let e = Device::open(Target::Direct(addr)).await.unwrap_err();
    assert!(matches!(e, DeviceError::Unauthorized { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_missing_selector_missing_receipt_timeout() {
    let backends = start_backends(0).await;
    let mut ca = phone_config('a', Some(backends.dns), 0, false);
    ca.apps.remove("kakaotalk");
    let a = start_phone(ca).await;
    let b = start_phone(phone_config('b', Some(backends.dns), 1, true)).await;
    let da = Device::open(Target::Direct(a.adb_addr)).await.unwrap();
    let db = Device::open(Target::Direct(b.adb_addr)).await.unwrap();
    let diag = tempfile::tempdir().unwrap();
    // App not installed.
    let e = da
        .send_message(
            &app("kakaotalk"),
            &account("kakaotalk", 'b'),
            "Lab B",
            "hi",
            Some(diag.path()),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DeviceError::AppNotInstalled { .. }), "{e}");
    assert!(e.to_string().contains("com.kakao.talk"), "{e}");
    // Selector not found: the dump is saved for diagnosis.
    let mut bad = app("signal");
    bad.ui.send_button = vec![Selector {
        resource_id: Some("org.thoughtcrime.securesms:id/no_such_button".into()),
        ..Default::default()
    }];
    bad.ui.ui_timeout_s = 1.0;
    let e = da
        .send_message(
            &bad,
            &account("signal", 'b'),
            "Lab B",
            "hello",
            Some(diag.path()),
        )
        .await
        .unwrap_err();
    let DeviceError::SelectorNotFound(miss) = &e else {
        panic!("{e}")
    };
    assert_eq!(miss.element, "send_button");
    let dump = miss.dump.clone().expect("dump saved");
    let xml = std::fs::read_to_string(&dump).unwrap();
    assert!(
        xml.contains("<hierarchy") && xml.contains("org.thoughtcrime.securesms:id/send_button"),
        "{xml}"
    );
    assert!(e.to_string().contains(&dump.display().to_string()));
    // Receipt timeout: the backend drops the message.
    backends.by_app["line"].faults.lock().unwrap().fail = true;
    let line = app("line");
    da.send_message(&line, &account("line", 'b'), "Lab B", "never arrives", None)
        .await
        .unwrap();
    let e = db
        .wait_receipt(
            &line,
            "never arrives",
            Duration::from_secs(2),
            Some(diag.path()),
        )
        .await
        .unwrap_err();
    // The given bound ended the wait (not the profile's 60 s): a condition,
    // not a wall-clock figure a loaded machine could miss.
    assert!(
        matches!(e, DeviceError::ReceiptTimeout { after, .. } if after == Duration::from_secs(2)),
        "{e}"
    );
    // A delayed delivery still arrives within the bound.
    backends.by_app["line"].faults.lock().unwrap().fail = false;
    backends.by_app["line"].faults.lock().unwrap().delay_ms = 1500;
    let sent = da
        .send_message(&line, &account("line", 'b'), "Lab B", "late", None)
        .await
        .unwrap();
    let r = db
        .wait_receipt(&line, "late", Duration::from_secs(15), None)
        .await
        .unwrap();
    assert!(r.host_seen_s - sent.host_after_s >= 1.4, "{r:?} {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_times_out_and_recovers() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    for target in [Target::Direct(a.adb_addr)] {
        let adb = Adb::open(target).await.unwrap();
        let e = adb
            .shell("sleep 4", Duration::from_secs(1))
            .await
            .unwrap_err();
        // The 1 s watchdog ended it (`sleep 4` left alone succeeds).
        assert!(
            matches!(e, DeviceError::Timeout { after, .. } if after == Duration::from_secs(1)),
            "{e}"
        );
        let out = adb
            .shell("echo alive", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!((out.stdout.as_str(), out.rc), ("alive\n", 0));
    }
    // An unplugged phone: calls fail or time out, never hang.
    let adb = Adb::open(Target::Direct(a.adb_addr)).await.unwrap();
    a.unplug();
    // Fails (an error, or the 2 s watchdog), never hangs: a hang would
    // stop here, so the hang detector bounds the call, generously.
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        adb.shell("echo x", Duration::from_secs(2)),
    )
    .await
    .expect("a call to an unplugged phone hangs");
    assert!(r.is_err(), "{r:?}");
    a.replug();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(o) = adb.shell("echo again", Duration::from_secs(3)).await {
            assert_eq!(o.stdout, "again\n");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after replug");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
