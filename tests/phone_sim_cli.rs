//! `matador lab-sim phone` as its own process (how the lab runs phones):
//! it prints its `ready` line, real `adb` connects and runs commands, the
//! control socket pulls and replugs the cable, SIGTERM ends it.

#[path = "phone_sim_support.rs"]
mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use support::*;

/// The simulator process, terminated on drop (also on panic).
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .output();
        let _ = self.0.wait();
    }
}

fn matador(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lab_sim_phone_process_with_real_adb_and_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = phone_config('a', None, 0, false);
    let port = free_port();
    cfg.adb_listen = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.clock_skew_ms = 750.0;
    let cfg_path = dir.path().join("phone-a.yaml");
    std::fs::write(&cfg_path, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    let sock = dir.path().join("phone-a.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["lab-sim", "phone", "--config"])
        .arg(&cfg_path)
        .arg("--control")
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _p = Proc(child);
    assert!(line.starts_with("ready phone=phone-a"), "{line}");
    assert!(line.contains(&format!("adb=127.0.0.1:{port}")), "{line}");
    let serial = format!("127.0.0.1:{port}");
    let server = AdbServer::start();
    server.connect(serial.parse().unwrap());
    let (rc, out, _) = server.adb(&["-s", &serial, "shell", "getprop ro.product.model; date +%s"]);
    assert_eq!(rc, 0);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Pixel 6"));
    let phone_s: i64 = lines.next().unwrap().parse().unwrap();
    let host_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((phone_s - host_s).abs() <= 2, "{phone_s} vs {host_s}");
    let (rc, _, err) = server.adb(&["-s", &serial, "shell", "nosuchcmd"]);
    assert_eq!(rc, 127);
    assert!(
        err.contains("nosuchcmd: inaccessible or not found")
            || err.contains("nosuchcmd: not found"),
        "{err}"
    );
    // The control socket stands for the cable.
    let status = matador(&["lab-sim", "ctl", sock.to_str().unwrap(), "status"]);
    assert!(status.contains("plugged=true"), "{status}");
    matador(&["lab-sim", "ctl", sock.to_str().unwrap(), "unplug"]);
    server.wait_state(&serial, "offline", 10);
    matador(&["lab-sim", "ctl", sock.to_str().unwrap(), "replug"]);
    server.wait_state(&serial, "device", 15);
    let (rc, out, _) = server.adb(&["-s", &serial, "shell", "echo back"]);
    assert_eq!((rc, out.as_str()), (0, "back\n"));
}
