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

/// Writes the two phone profiles `devices try` reads (server + serial).
fn write_profiles(dir: &std::path::Path, srv: &str, sa: &str, sb: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for (id, serial, c) in [("lab-a", sa, 'a'), ("lab-b", sb, 'b')] {
        let accounts: Vec<String> = APPS
            .iter()
            .map(|app| format!("  {app}: \"{}\"", account(app, c)))
            .collect();
        std::fs::write(
            dir.join(format!("{id}.yaml")),
            format!(
                "id: {id}\nserial: \"{serial}\"\nadb_server: \"{srv}\"\ndisplay_name: Lab {}\naccounts:\n{}\n",
                c.to_ascii_uppercase(),
                accounts.join("\n")
            ),
        )
        .unwrap();
    }
}

/// `matador devices try` on two simulated phones with phone-like dumps: every
/// selector of the seven apps is found (one message each way for WhatsApp);
/// a profile whose text field selector no longer matches is reported with
/// that selector and the saved UI dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_try_finds_every_selector_and_reports_a_broken_one() {
    // About selectors, not timing: quick UI dumps.
    let lab = two_phones(|a, b| {
        not_about_timing(a);
        not_about_timing(b);
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let profiles = tmp.path().join("phones");
    write_profiles(
        &profiles,
        &lab.server.addr().to_string(),
        &lab.a.adb_addr.to_string(),
        &lab.b.adb_addr.to_string(),
    );
    // A copy of the app profiles with Signal's input field renamed.
    let apps = tmp.path().join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    for e in std::fs::read_dir(app_profiles()).unwrap() {
        let p = e.unwrap().path();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if p.file_name().unwrap() == "signal.yaml" {
            text = text.replace(":id/embedded_text_editor", ":id/renamed_editor");
        }
        std::fs::write(apps.join(p.file_name().unwrap()), text).unwrap();
    }
    let out = tmp.path().join("out");
    let (p, o, ap) = (
        profiles.to_str().unwrap().to_string(),
        out.to_str().unwrap().to_string(),
        apps.to_str().unwrap().to_string(),
    );
    let r = tokio::task::spawn_blocking(move || {
        let base = [
            "devices",
            "--json",
            "try",
            "--phones",
            "lab-a,lab-b",
            "--profiles",
            &p,
            "--out",
            &o,
        ];
        let good = matador(&[&base[..], &["--app", "whatsapp", "--send"]].concat());
        let all = matador(
            &[
                &base[..],
                &["--app", "threema,telegram,wechat,line,kakaotalk,signal"],
            ]
            .concat(),
        );
        let broken = matador(
            &[
                &["devices", "--apps", &ap],
                &base[1..],
                &["--app", "signal"],
            ]
            .concat(),
        );
        (good, all, broken)
    })
    .await
    .unwrap();
    let parse = |s: &str| -> Vec<serde_json::Value> {
        s.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let ((ok1, j1, e1), (ok2, j2, e2), (ok3, j3, e3)) = r;
    assert!(ok1, "{j1}{e1}");
    let wa = parse(&j1);
    assert_eq!(wa.len(), 2, "{j1}");
    for r in &wa {
        assert_eq!(r["error"], serde_json::Value::Null, "{r}");
        assert!(
            r["sent"]["text"]
                .as_str()
                .unwrap()
                .starts_with("matador try whatsapp"),
            "{r}"
        );
        assert!(r["received"]["uncertainty_s"]["before"].is_f64(), "{r}");
        assert!(r["android"].as_str().unwrap().contains("SDK"), "{r}");
    }
    // Each phone received what the other sent, after it was sent.
    let t = |r: &serde_json::Value, k: &str| r[k]["t"].as_f64().unwrap();
    assert!(t(&wa[1], "received") >= t(&wa[0], "sent"), "{j1}");
    assert!(t(&wa[0], "received") >= t(&wa[1], "sent"), "{j1}");
    assert!(ok2, "{j2}{e2}");
    let rest = parse(&j2);
    assert_eq!(rest.len(), 12, "{j2}");
    for r in &rest {
        let sel = r["selectors"].as_object().unwrap();
        assert!(
            sel.contains_key("text_field") && sel.contains_key("send_button"),
            "{r}"
        );
        assert!(sel.values().all(|v| v == true), "{r}");
    }
    assert!(!ok3, "a broken selector fails: {j3}{e3}");
    let broken = parse(&j3);
    let bad: Vec<_> = broken
        .iter()
        .filter(|r| r["selectors"]["text_field"] == false)
        .collect();
    assert_eq!(bad.len(), 2, "{j3}");
    for r in bad {
        let e = r["error"].as_str().unwrap();
        assert!(
            e.contains("renamed_editor") && e.contains("UI dump saved to"),
            "{e}"
        );
        let path = e
            .rsplit("UI dump saved to ")
            .next()
            .unwrap()
            .trim_end_matches(')');
        let xml = std::fs::read_to_string(path).unwrap();
        assert!(xml.contains("<hierarchy"), "{path}");
    }
}
