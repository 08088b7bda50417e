//! Real `adb` (Debian) and adb_client talk to simulated phones: connect,
//! shell (v2 exit codes, stderr, quoting), exec-out, push/pull of binary
//! data, unknown commands, unplug/replug, AUTH.

#[path = "phone_sim_support.rs"]
mod support;

use adb_client::ADBDeviceExt;
use matador_lab::phone::config::AuthMode;
use std::time::Duration;
use support::*;

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def0u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_adb_drives_two_phones() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let b = start_phone(phone_config('b', None, 1, true)).await;
    let (sa, sb) = (a.adb_addr.to_string(), b.adb_addr.to_string());
    let server = AdbServer::start();
    tokio::task::spawn_blocking(move || {
        server.connect(a.adb_addr);
        server.connect(b.adb_addr);
        let (_, list, _) = server.adb(&["devices", "-l"]);
        assert!(
            list.contains(&sa) && list.contains("model:Pixel_6"),
            "{list}"
        );
        assert!(list.contains("model:Galaxy_A14"), "{list}");
        // Shell commands with output, stderr and exit codes (shell v2).
        let (rc, out, _) = server.adb(&["-s", &sa, "shell", "getprop", "ro.product.model"]);
        assert_eq!((rc, out.as_str()), (0, "Pixel 6\n"));
        let (rc, out, _) = server.adb(&["-s", &sb, "shell", "wm size"]);
        assert_eq!((rc, out.as_str()), (0, "Physical size: 720x1600\n"));
        let (rc, _, err) = server.adb(&["-s", &sa, "shell", "foo"]);
        assert_eq!(rc, 127);
        assert_eq!(err, "/system/bin/sh: foo: not found\n");
        let (rc, _, _) = server.adb(&["-s", &sa, "shell", "exit 3"]);
        assert_eq!(rc, 3);
        let (rc, out, _) = server.adb(&[
            "-s",
            &sa,
            "shell",
            "echo 'a  b' \"$HOME\" 2>/dev/null; echo x && false || echo y",
        ]);
        assert_eq!(rc, 0, "{out}");
        assert!(out.ends_with("x\ny\n"), "{out}");
        // exec-out quotes every argument.
        let (rc, out, _) = server.adb(&["-s", &sb, "exec-out", "echo", "it's", "a b"]);
        assert_eq!((rc, out.as_str()), (0, "it's a b\n"));
        // push / pull of 200 KB of binary data (several DATA chunks).
        let dir = tempfile::tempdir().unwrap();
        let data = pseudo_random(200_000);
        let src = dir.path().join("blob.bin");
        std::fs::write(&src, &data).unwrap();
        let (rc, _, err) = server.adb(&[
            "-s",
            &sa,
            "push",
            src.to_str().unwrap(),
            "/sdcard/Download/blob.bin",
        ]);
        assert_eq!(rc, 0, "{err}");
        let dst = dir.path().join("back.bin");
        let (rc, _, err) = server.adb(&[
            "-s",
            &sa,
            "pull",
            "/sdcard/Download/blob.bin",
            dst.to_str().unwrap(),
        ]);
        assert_eq!(rc, 0, "{err}");
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        let (_, out, _) = server.adb(&["-s", &sa, "shell", "ls -l /sdcard/Download"]);
        assert!(
            out.contains(" 200000 ") && out.contains("blob.bin"),
            "{out}"
        );
        // Writes outside the user's storage fail like on a phone.
        let (rc, out, err) =
            server.adb(&["-s", &sa, "push", src.to_str().unwrap(), "/system/x.bin"]);
        let err = format!("{out}{err}");
        assert_ne!(rc, 0);
        assert!(err.contains("Read-only file system"), "{err}");
        let (rc, out, err) =
            server.adb(&["-s", &sb, "pull", "/sdcard/nope", dst.to_str().unwrap()]);
        let err = format!("{out}{err}");
        assert_ne!(rc, 0);
        assert!(err.contains("does not exist"), "{err}");
        // The other phone has its own filesystem.
        let (_, out, _) = server.adb(&["-s", &sb, "shell", "ls /sdcard/Download"]);
        assert_eq!(out, "");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adb_client_through_server_and_direct() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let server = AdbServer::start();
    let addr = a.adb_addr;
    let srv = server.addr();
    tokio::task::spawn_blocking(move || {
        server.connect(addr);
        let mut dev = adb_client::server_device::ADBServerDevice::new(addr.to_string(), Some(srv));
        let mut out = Vec::new();
        let mut err = Vec::new();
        dev.shell_command(
            &"getprop ro.build.version.release; ls /nope",
            Some(&mut out),
            Some(&mut err),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "13\n");
        assert_eq!(
            String::from_utf8_lossy(&err),
            "ls: /nope: No such file or directory\n"
        );
        let data = pseudo_random(150_000);
        dev.push(
            &mut std::io::Cursor::new(data.clone()),
            "/data/local/tmp/x.bin",
        )
        .unwrap();
        let mut back = Vec::new();
        dev.pull(&"/data/local/tmp/x.bin", &mut back).unwrap();
        assert_eq!(back, data);
        // Direct TCP (no server): shell v1, push (octal mode), pull, stat, list.
        let key = tempfile::tempdir().unwrap();
        let mut d = adb_client::tcp::ADBTcpDevice::new_with_custom_private_key(
            addr,
            key.path().join("adbkey"),
        )
        .unwrap();
        let mut out = Vec::new();
        d.shell_command(&"echo direct; id", Some(&mut out), None)
            .unwrap();
        let s = String::from_utf8_lossy(&out);
        assert!(s.starts_with("direct\nuid=2000(shell)"), "{s}");
        let small = b"DONE0000 looks like a sync id".to_vec();
        d.push(&mut std::io::Cursor::new(small.clone()), &"/sdcard/s.txt")
            .unwrap();
        let mut back = Vec::new();
        d.pull(&"/sdcard/s.txt", &mut back).unwrap();
        assert_eq!(back, small);
        let mut back = Vec::new();
        d.pull(&"/data/local/tmp/x.bin", &mut back).unwrap();
        assert_eq!(back.len(), 150_000);
        let st = d.stat(&"/sdcard/s.txt").unwrap();
        assert_eq!(st.file_size as usize, small.len());
        let names: Vec<String> = d
            .list(&"/sdcard")
            .unwrap()
            .into_iter()
            .map(|i| format!("{i:?}"))
            .collect();
        assert!(names.iter().any(|n| n.contains("s.txt")), "{names:?}");
        assert!(d.pull(&"/sdcard/missing", &mut Vec::new()).is_err());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_shows_offline_then_device_again() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let server = AdbServer::start();
    let serial = a.adb_addr.to_string();
    let addr = a.adb_addr;
    let server = tokio::task::spawn_blocking(move || {
        server.connect(addr);
        server
    })
    .await
    .unwrap();
    a.unplug();
    let s2 = serial.clone();
    let server = tokio::task::spawn_blocking(move || {
        server.wait_state(&s2, "offline", 15);
        let (rc, _, _) = server.adb(&["-s", &s2, "shell", "true"]);
        assert_ne!(rc, 0);
        server
    })
    .await
    .unwrap();
    a.replug();
    tokio::task::spawn_blocking(move || {
        server.wait_state(&serial, "device", 30);
        let (rc, out, _) = server.adb(&["-s", &serial, "shell", "echo back"]);
        assert_eq!((rc, out.as_str()), (0, "back\n"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_deny_is_unauthorized_accept_is_device() {
    let mut deny = phone_config('a', None, 0, false);
    deny.auth = AuthMode::Deny;
    let mut accept = phone_config('b', None, 0, false);
    accept.auth = AuthMode::Accept;
    let d = start_phone(deny).await;
    let ac = start_phone(accept).await;
    let server = AdbServer::start();
    let (dd, aa) = (d.adb_addr, ac.adb_addr);
    tokio::task::spawn_blocking(move || {
        let (_, out, _) = server.adb(&["connect", &dd.to_string()]);
        assert!(
            out.contains("connected") || out.contains("authenticate"),
            "{out}"
        );
        server.wait_state(&dd.to_string(), "unauthorized", 15);
        server.connect(aa);
        let (rc, out, _) = server.adb(&["-s", &aa.to_string(), "shell", "echo ok"]);
        assert_eq!((rc, out.as_str()), (0, "ok\n"));
    })
    .await
    .unwrap();
    let _ = Duration::from_secs(1);
}
