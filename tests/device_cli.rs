//! `matador devices` lists simulated phones like real ones: through a
//! private adb server (after `--connect`) and directly over TCP.

#[path = "phone_sim_support.rs"]
mod support;

use std::process::Command;
use support::*;

fn matador(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_through_server_and_direct() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let mut cb = phone_config('b', None, 1, true);
    cb.apps.remove("line");
    let b = start_phone(cb).await;
    let server = AdbServer::start();
    let srv = server.addr().to_string();
    let (sa, sb) = (a.adb_addr.to_string(), b.adb_addr.to_string());
    let r = tokio::task::spawn_blocking(move || {
        let json = matador(&[
            "devices",
            "--adb-server",
            &srv,
            "--connect",
            &sa,
            "--connect",
            &sb,
            "--json",
        ]);
        let table = matador(&["devices", "--direct", &sb]);
        (json, table)
    })
    .await
    .unwrap();
    let ((ok, json, err), (ok2, table, err2)) = r;
    assert!(ok, "{json}{err}");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let text = v.to_string();
    for want in [
        "Pixel",
        "Galaxy A14",
        &a.adb_addr.to_string(),
        &b.adb_addr.to_string(),
        "\"root\":true",
        "\"root\":false",
    ] {
        assert!(text.contains(want), "{want} missing: {json}");
    }
    eprintln!("{table}");
    assert!(ok2, "{table}{err2}");
    assert!(
        table.contains("Galaxy A14") && table.contains(&b.adb_addr.to_string()),
        "{table}"
    );
    // Phone B has no LINE: shown as missing, the others with their versions.
    assert!(table.contains("line -,"), "{table}");
    assert!(table.contains("wechat 8.0"), "{table}");
}
