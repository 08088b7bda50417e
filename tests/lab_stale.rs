//! Guaranteed teardown of `matador lab`: Ctrl-C in the foreground removes
//! everything; after SIGKILL the leftovers are detected as stale and removed
//! by the next `lab up`; `lab down` removes a detached lab.

mod lab_common;

use lab_common::{exe, leftovers, require_root};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn lab(state: &Path) -> Command {
    let mut c = Command::new(exe());
    c.arg("lab").arg("--state-dir").arg(state);
    c
}

/// Starts `lab up --foreground` and returns it with the lab id once running.
fn foreground(state: &Path) -> (Child, String) {
    let mut child = lab(state)
        .args(["up", "--foreground", "--no-phones", "--no-ssh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut id = String::new();
    let mut lines = BufReader::new(out).lines();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(rest) = l.strip_prefix("lab ")
            && id.is_empty()
        {
            id = rest.split_whitespace().next().unwrap().to_string();
        }
        if l.starts_with("running;") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert!(!id.is_empty(), "lab up printed no id");
    (child, id)
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lab process did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_tears_down_and_sigkill_leftovers_are_swept() {
    require_root();
    let state = tempfile::tempdir().unwrap();

    // Ctrl-C (SIGINT) in the foreground: clean exit, nothing left.
    let (mut child, id) = foreground(state.path());
    assert!(!leftovers(&id).is_empty());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait(&mut child).success());
    assert!(leftovers(&id).is_empty(), "{:#?}", leftovers(&id));

    // SIGKILL: the namespaces and daemons stay, the state is stale.
    let (mut child, stale_id) = foreground(state.path());
    child.kill().unwrap();
    wait(&mut child);
    assert!(!leftovers(&stale_id).is_empty());
    let out = lab(state.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st[0]["id"], stale_id.as_str());
    assert_eq!(st[0]["stale"], true, "{st}");

    // The next bring-up removes the stale lab first.
    let t = Instant::now();
    let out = lab(state.path())
        .args(["up", "--no-phones", "--no-ssh"])
        .output()
        .unwrap();
    let up_s = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        leftovers(&stale_id).is_empty(),
        "{:#?}",
        leftovers(&stale_id)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let new_id = text.split_whitespace().nth(1).unwrap().to_string();
    assert_ne!(new_id, stale_id);

    // The detached lab is healthy, reachable with `lab exec`, and `lab down` removes it.
    let out = lab(state.path()).args(["status"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = lab(state.path())
        .args(["exec", "router", "--", "ip", "rule", "show"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&out.stdout);
    assert!(rules.contains("from 198.18.100.2 lookup 100"), "{rules}");
    // A second lab (with phones and node sshd) coexists with the first.
    let out = lab(state.path()).arg("up").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let second = text.split_whitespace().nth(1).unwrap().to_string();
    let out = lab(state.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st.as_array().unwrap().len(), 2, "{st}");
    for l in st.as_array().unwrap() {
        for t in l["tunnels"].as_array().unwrap() {
            assert_eq!(t["ok"], true, "{t}");
        }
    }
    let out = lab(state.path()).args(["down", &second]).output().unwrap();
    assert!(out.status.success());
    assert!(leftovers(&second).is_empty(), "{:#?}", leftovers(&second));
    assert!(!leftovers(&new_id).is_empty(), "the first lab must survive");

    let t = Instant::now();
    let out = lab(state.path()).arg("down").output().unwrap();
    let down_s = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leftovers(&new_id).is_empty(), "{:#?}", leftovers(&new_id));
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
    eprintln!("cli lab up {up_s:?} (incl. sweeping the stale lab), down {down_s:?}");
}
