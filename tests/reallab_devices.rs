//! `matador devices prepare` against simulated phones (real ADB wire
//! protocol, through a private adb server, the same code as `matador
//! devices`): a ready phone, an unauthorised one, and one with airplane
//! mode off, the wrong Wi-Fi, an app missing, no root and no mock-location
//! permission — each missing item with its exact steps.

#[path = "phone_sim_support.rs"]
mod support;

use matador_lab::phone::config::AuthMode;
use std::process::Command;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_reports_each_missing_item_with_steps() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let mut cb = phone_config('b', None, 0, false);
    cb.auth = AuthMode::Deny;
    let b = start_phone(cb).await;
    let mut cc = phone_config('c', None, 1, true);
    cc.apps.remove("line");
    cc.wifi_ssid = "home-wifi".into();
    let c = start_phone(cc).await;
    let server = AdbServer::start();
    let (sa, sb, sc) = (
        a.adb_addr.to_string(),
        b.adb_addr.to_string(),
        c.adb_addr.to_string(),
    );
    let srv = server.addr().to_string();
    let r = tokio::task::spawn_blocking(move || {
        server.connect(sa.parse().unwrap());
        server.connect(sc.parse().unwrap());
        // B never authorises this host: `connect` then lists it as unauthorized.
        let _ = server.adb(&["connect", &sb]);
        server.wait_state(&sb, "unauthorized", 10);
        let (rc, _, e) = server.adb(&[
            "-s",
            &sa,
            "shell",
            "appops",
            "set",
            "com.android.shell",
            "MOCK_LOCATION",
            "allow",
        ]);
        assert_eq!(rc, 0, "{e}");
        let (rc, _, e) = server.adb(&[
            "-s",
            &sc,
            "shell",
            "settings",
            "put",
            "global",
            "airplane_mode_on",
            "0",
        ]);
        assert_eq!(rc, 0, "{e}");
        let run = |json: bool| {
            let mut args = vec!["devices", "--adb-server", &srv];
            if json {
                args.push("--json");
            }
            args.extend([
                "prepare",
                "--ssid",
                "matador-lab",
                "--firewall",
                "--app",
                "whatsapp",
                "--app",
                "line",
            ]);
            let o = Command::new(env!("CARGO_BIN_EXE_matador"))
                .args(&args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        // With the lab description: its SSID, and a listed phone that is not
        // plugged in is reported.
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab.yaml");
        std::fs::write(
            &lab,
            format!(
                "schema: matador/real-lab/1\nname: t\ncountry: DE\nrouter: {{wlan_if: wlan0, uplink: eth0, ssid: matador-lab, passphrase_file: p}}\n\
                 nodes: [{{name: de-1, country: DE, host: 198.51.100.1}}]\n\
                 phones:\n  - {{name: a, serial: \"{sa}\", mac: \"02:00:00:00:00:01\", addr: 198.18.100.2, node: de-1}}\n\
                 \x20 - {{name: z, serial: R58MISSING, mac: \"02:00:00:00:00:09\", addr: 198.18.100.9, node: de-1}}\n"
            ),
        )
        .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_matador"))
            .args(["devices", "--adb-server", &srv, "prepare", "--app", "whatsapp", "--lab"])
            .arg(&lab)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let with_lab = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(with_lab.contains(&format!("{sa}: ready")), "{with_lab}");
        assert!(with_lab.contains("R58MISSING: NOT READY") && with_lab.contains("phone z (R58MISSING) is not connected"), "{with_lab}");
        let r = (run(true), run(false), sa, sb, sc);
        drop(server);
        r
    })
    .await
    .unwrap();
    let ((code, json, err), (code2, table, _), sa, sb, sc) = r;
    assert_eq!(
        code,
        Some(1),
        "not all phones are ready: exit 1\n{json}{err}"
    );
    assert_eq!(code2, Some(1));
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}{err}"));
    let phone = |s: &str| {
        v.iter()
            .find(|p| p["serial"] == s)
            .unwrap_or_else(|| panic!("{s} missing: {json}"))
    };
    let item = |p: &serde_json::Value, n: &str| -> serde_json::Value {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} missing: {p}"))
    };
    // A: ready.
    let pa = phone(&sa);
    let missing_a: Vec<_> = pa["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ok"] == false)
        .collect();
    assert!(
        missing_a.is_empty(),
        "phone A should be ready: {missing_a:?}"
    );
    assert!(
        item(pa, "wifi")["detail"]
            .as_str()
            .unwrap()
            .contains("matador-lab")
    );
    // B: unauthorised.
    let usb = item(phone(&sb), "usb debugging");
    assert_eq!(usb["ok"], false);
    assert!(
        usb["steps"][0]
            .as_str()
            .unwrap()
            .contains("Allow USB debugging"),
        "{usb}"
    );
    // C: every missing item, each with steps.
    let pc = phone(&sc);
    for n in ["airplane mode", "wifi", "app line", "root", "mock location"] {
        let i = item(pc, n);
        assert_eq!(i["ok"], false, "{n}: {i}");
        assert!(!i["steps"].as_array().unwrap().is_empty(), "{n}: no steps");
    }
    assert!(
        item(pc, "wifi")["detail"]
            .as_str()
            .unwrap()
            .contains("home-wifi")
    );
    assert!(
        item(pc, "mock location")["steps"][0]
            .as_str()
            .unwrap()
            .contains(&format!(
                "adb -s {sc} shell appops set com.android.shell MOCK_LOCATION allow"
            ))
    );
    for n in [
        "usb debugging",
        "app whatsapp",
        "screen lock",
        "notification access",
    ] {
        assert_eq!(item(pc, n)["ok"], true, "{n}");
    }
    eprintln!("{table}");
    assert!(
        table.contains(&format!("{sa}: ready")) && table.contains(&format!("{sc}: NOT READY")),
        "{table}"
    );
    assert!(table.contains("MISS airplane mode"), "{table}");
}
