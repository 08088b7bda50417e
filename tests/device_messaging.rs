//! The device layer drives two simulated phones over real ADB (adb server and
//! adb_client): a message from phone A in each of the seven apps is detected
//! on phone B through its notifications; hostile texts never execute.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::adb::Target;
use matador::device::phone::{Device, ReceiptVia};
use matador::device::profile::AppProfile;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_apps_a_to_b_via_notifications() {
    let backends = start_backends(0).await;
    let a = start_phone(phone_config('a', Some(backends.dns), 0, false)).await;
    // Phone B starts with its (insecure) lock screen showing.
    let mut cb = phone_config('b', Some(backends.dns), 1, true);
    cb.start_locked = true;
    let b = start_phone(cb).await;
    let server = AdbServer::start();
    server.connect(a.adb_addr);
    server.connect(b.adb_addr);
    let da = Device::open(Target::Server {
        server: server.addr(),
        serial: a.adb_addr.to_string(),
    })
    .await
    .unwrap();
    let db = Device::open(Target::Server {
        server: server.addr(),
        serial: b.adb_addr.to_string(),
    })
    .await
    .unwrap();
    assert_eq!(db.info(&[]).await.unwrap().locked, Some(true));
    da.wake_unlock().await.unwrap();
    db.wake_unlock().await.unwrap();
    let info = db.info(&[]).await.unwrap();
    assert!(info.awake && info.locked == Some(false), "{info:?}");
    let apps = AppProfile::load_dir(&app_profiles()).unwrap();
    assert_eq!(apps.len(), 7);
    let diag = tempfile::tempdir().unwrap();
    for app in &apps {
        let text = format!("matador {} #{}", app.id, std::process::id());
        let sent = da
            .send_message(
                app,
                &account(&app.id, 'b'),
                "Lab B",
                &text,
                Some(diag.path()),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", app.id));
        let got = db
            .wait_receipt(app, &text, Duration::from_secs(20), Some(diag.path()))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", app.id));
        assert_eq!(got.via, ReceiptVia::Notification, "{}", app.id);
        assert!(got.host_seen_s >= sent.host_before_s);
        let posted = got.phone_posted_s.expect("notification time");
        assert!(
            (posted - sent.host_after_s).abs() < 10.0,
            "{}: posted {posted} sent {}",
            app.id,
            sent.host_after_s
        );
    }
    for (id, b) in &backends.by_app {
        assert_eq!(b.relayed(), 1, "{id} relayed");
    }
}
