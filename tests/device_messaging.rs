//! The device layer drives two simulated phones over real ADB (adb server and
//! adb_client): a message from phone A in each of the seven apps is detected
//! on phone B through its notifications; hostile texts never execute.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::phone::ReceiptVia;
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
    let da = server.device(a.adb_addr).await;
    let db = server.device(b.adb_addr).await;
    assert_eq!(db.info(&[]).await.unwrap().locked, Some(true));
    da.wake_unlock().await.unwrap();
    db.wake_unlock().await.unwrap();
    let info = db.info(&[]).await.unwrap();
    assert!(info.awake && info.locked == Some(false), "{info:?}");
    let apps = load_app_profiles();
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

/// Phones that interrupt as real ones do (`lab::phone::dialog`): Android
/// 13's notification prompt on every app's first start and, on phone A, an
/// interruption on every cold start ("what's new" sheet, the store's page
/// in front, "isn't responding"), in German on A and Chinese on B. The
/// device layer gets past them on its way (allow, not now, BACK, wait) and
/// says what it did; B's notifications work because its prompt was allowed.
/// Not about timing: fast dumps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interruptions_in_two_languages_are_handled_on_the_way() {
    let t = two_phones(|a, b| {
        for (c, locale) in [(&mut *a, "de-DE"), (&mut *b, "zh-CN")] {
            not_about_timing(c);
            c.locale = locale.into();
            c.interruptions.notification_prompt = true;
        }
        a.interruptions.rate = 1.0;
    })
    .await;
    let (da, db) = t.unlocked().await;
    let apps = load_app_profiles();
    let diag = tempfile::tempdir().unwrap();
    for app in &apps {
        // B starts the app once (its prompt), then goes home so the
        // message arrives as a notification.
        db.open_chat(app, &account(&app.id, 'a'), "Lab A", Some(diag.path()))
            .await
            .unwrap_or_else(|e| panic!("{} on B: {e}", app.id));
        db.sh_ok("input keyevent KEYCODE_HOME").await.unwrap();
        // A: its first start asks; the cold start of the send interrupts.
        da.open_chat(app, &account(&app.id, 'b'), "Lab B", Some(diag.path()))
            .await
            .unwrap_or_else(|e| panic!("{} on A: {e}", app.id));
        da.sh_ok(&format!("am force-stop {}", app.package))
            .await
            .unwrap();
        let text = format!("unterbrochen {} #{}", app.id, std::process::id());
        da.send_message(
            app,
            &account(&app.id, 'b'),
            "Lab B",
            &text,
            Some(diag.path()),
        )
        .await
        .unwrap_or_else(|e| panic!("{} on A: {e}", app.id));
        let got = db
            .wait_receipt(app, &text, Duration::from_secs(20), Some(diag.path()))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", app.id));
        assert_eq!(got.via, ReceiptVia::Notification, "{}", app.id);
    }
    let (on_a, on_b) = (da.take_interruptions(), db.take_interruptions());
    let said = |v: &Vec<String>, what: &str| v.iter().filter(|s| s.contains(what)).count();
    // Every app asked each phone once, and each prompt was allowed.
    assert_eq!(said(&on_a, "permission_allow_button"), 7, "{on_a:?}");
    assert_eq!(said(&on_b, "permission_allow_button"), 7, "{on_b:?}");
    // A's second cold start of each app was interrupted too, and each
    // interruption was got past.
    let others = said(&on_a, "Jetzt nicht") + said(&on_a, "back key") + said(&on_a, "aerr_wait");
    assert!(others >= 7, "{on_a:?}");
    assert_eq!(others + 7, on_a.len(), "nothing else was done: {on_a:?}");
}

/// WeChat has no chat deep link: the device layer finds the contact's row
/// by name in the chat list. With more chats than fit the screen, the
/// RecyclerView's dump holds only the rows on screen (the last contact is
/// in none until the list is scrolled), so the device layer swipes the
/// list until the row appears; a name in no row ends at the list's end
/// with the usual "not found". Not about timing: fast dumps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_chat_below_the_first_screen_is_found_by_scrolling() {
    let t = two_phones(|a, b| {
        not_about_timing(a);
        not_about_timing(b);
        let c = &mut a.apps.get_mut("wechat").unwrap().contacts;
        let last = c.pop().unwrap();
        assert_eq!(last.name, "Lab B");
        for i in 0..13 {
            c.push(matador_lab::phone::config::SimContact {
                name: format!("Extra {i:02}"),
                account: format!("wxid_extra{i:02}"),
            });
        }
        c.push(last);
    })
    .await;
    let (da, db) = t.unlocked().await;
    let apps = load_app_profiles();
    let wechat = apps.iter().find(|a| a.id == "wechat").unwrap();
    assert!(wechat.ui.open_chat.uri.is_none());
    // The case needs scrolling: after a cold start the list can scroll
    // and "Lab B" is in no row of the dump.
    da.force_stop(wechat).await.unwrap();
    da.launch(wechat).await.unwrap();
    let first = wechat.ui.open_chat.navigate[0][0].fill(&[("contact", "Extra 00")]);
    da.wait_element(wechat, "list", &[first], Duration::from_secs(10), None)
        .await
        .unwrap();
    let (xml, nodes) = da.dump().await.unwrap();
    assert!(!xml.contains("Lab B"), "{xml}");
    let list = matador::device::uidump::scroll_container(&nodes, &wechat.package)
        .expect("a scrollable chat list");
    assert!(list.class.ends_with("RecyclerView"), "{list:?}");
    // Sending to the last contact scrolls to its row; B gets the message.
    let diag = tempfile::tempdir().unwrap();
    let text = format!("scrolled #{}", std::process::id());
    da.send_message(
        wechat,
        &account("wechat", 'b'),
        "Lab B",
        &text,
        Some(diag.path()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got = db
        .wait_receipt(wechat, &text, Duration::from_secs(20), Some(diag.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.via, ReceiptVia::Notification);
    // A name in no row: scrolling stops at the list's end (the last row
    // on screen) and the step fails as before, within its bound.
    let mut quick = wechat.clone();
    quick.ui.start_timeout_s = 3.0;
    let t0 = std::time::Instant::now();
    let err = da
        .open_chat(&quick, "wxid_nobody", "Nobody", Some(diag.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, matador::device::DeviceError::SelectorNotFound(_)),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let (xml, _) = da.dump().await.unwrap();
    assert!(xml.contains("text=\"Lab B\""), "not at the end: {xml}");
}
