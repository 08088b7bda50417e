//! Shell metacharacters everywhere — message texts, contact names and ids,
//! file and folder names, scenario values — never reach a shell unescaped:
//!
//! - device shell: a contact whose name is full of metacharacters is found
//!   by typing it into WeChat's search (UI navigation) and a hostile text is
//!   sent to it; the simulated phones (which run real injections, see
//!   device_hostile.rs) show both verbatim and nothing ran;
//! - ssh: the node agent's remote command line, run by real shells (sh,
//!   mksh, bash) as sshd does, gives the agent exactly its program, folder
//!   and allow-list;
//! - ip/iptables: `net::cmd` passes argv without a shell (a recorder shows
//!   the words verbatim; iptables stores a hostile comment as given);
//! - scenario values: hostile phone ids, node names, app names and texts
//!   are refused or kept as data, never as paths or commands.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::adb::Target;
use matador::device::phone::Device;
use matador::net::agent::client::NodeConfig;
use matador::net::cmd::Cmd;
use matador::net::ssh::SshTarget;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// Words built from every metacharacter, each with a `touch` that would
/// create `<dir>/pN` if it ever ran.
fn hostile(dir: &str) -> Vec<String> {
    vec![
        format!("; touch {dir}/p1"),
        format!("$(touch {dir}/p2)"),
        format!("`touch {dir}/p3`"),
        format!("' ; touch {dir}/p4 ; '"),
        format!("\" ; touch {dir}/p5 ; \""),
        format!("\\\" && touch {dir}/p6 \\"),
        format!("| touch {dir}/p7 &"),
        format!("& touch {dir}/p8 * ? [a] {{b,c}} ~ # !"),
        format!("a\ntouch {dir}/p9\n"),
        format!("> {dir}/p10 < /etc/passwd"),
        "$HOME ${PATH} $((1+1)) %s %d".to_string(),
    ]
}

fn no_files(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "created by an injection: {left:?}");
}

/// A program that writes its argv NUL-separated to `<its name>.argv`.
fn recorder(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    let out = dir.join("argv.out");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{}'\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn recorded(dir: &Path) -> Vec<String> {
    let b = std::fs::read(dir.join("argv.out")).expect("the recorder ran");
    std::fs::remove_file(dir.join("argv.out")).unwrap();
    String::from_utf8(b)
        .unwrap()
        .split_terminator('\0')
        .map(String::from)
        .collect()
}

#[test]
fn ssh_remote_command_survives_real_shells() {
    let canary = tempfile::tempdir().unwrap();
    let c = canary.path().to_str().unwrap();
    let bin = tempfile::tempdir().unwrap();
    // The agent program's own path has metacharacters too.
    let prog = recorder(bin.path(), "m a'$(x)`y`;\"z");
    let mut checked = 0;
    for h in hostile(c) {
        let target: SshTarget = serde_json::from_value(serde_json::json!({
            "node": "de-1", "host": "198.18.0.1", "user": "root",
            "identity": "/nonexistent/id", "known_hosts": "/nonexistent/kh",
        }))
        .unwrap();
        let mut cfg = NodeConfig::new(target, h.clone());
        cfg.agent_program = prog.display().to_string();
        cfg.allow = Some(vec![h.clone(), "ping".into()]);
        let line = cfg.remote_command();
        // ssh hands the line to the remote shell as one argument.
        let (ssh, args) = cfg.ssh.command(&line);
        assert!(ssh.ends_with("ssh"), "{ssh}");
        assert_eq!(
            args.last(),
            Some(&line),
            "the remote command is one argv word"
        );
        for shell in ["sh", "mksh", "bash"] {
            let st = Command::new(shell)
                .arg("-c")
                .arg(&line)
                .status()
                .unwrap_or_else(|e| panic!("{shell}: {e}"));
            assert!(st.success(), "{shell} -c {line:?}");
            assert_eq!(
                recorded(bin.path()),
                ["agent", "--dir", &h, "--allow", &h, "--allow", "ping"],
                "{shell}: {line}"
            );
            checked += 1;
        }
    }
    no_files(canary.path());
    eprintln!("{checked} remote command lines checked in sh, mksh and bash");
}

#[test]
fn net_commands_get_argv_never_a_shell() {
    let canary = tempfile::tempdir().unwrap();
    let c = canary.path().to_str().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let prog = recorder(bin.path(), "ip");
    let words = hostile(c);
    Cmd::new(prog.display().to_string())
        .args(words.clone())
        .run()
        .expect("recorder");
    assert_eq!(recorded(bin.path()), words);
    no_files(canary.path());
}

#[test]
fn iptables_keeps_a_hostile_comment_as_data() {
    assert!(
        matador_lab::build::is_root(),
        "this test needs root (a network namespace for iptables)"
    );
    let canary = tempfile::tempdir().unwrap();
    let c = canary.path().to_str().unwrap();
    let ns = format!("mthost{}", std::process::id());
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let _g = Ns(ns.clone());
    // iptables comments are limited to 256 bytes and one line.
    for h in hostile(c).iter().filter(|h| !h.contains('\n')) {
        Cmd::new("iptables")
            .netns(Some(&ns))
            .args(["-A", "INPUT", "-m", "comment", "--comment"])
            .arg(h.clone())
            .args(["-j", "ACCEPT"])
            .run()
            .unwrap_or_else(|e| panic!("{h:?}: {e}"));
        let rules = Cmd::new("iptables")
            .netns(Some(&ns))
            .args(["-S", "INPUT"])
            .run()
            .unwrap();
        // iptables -S quotes the comment and backslash-escapes quotes; once
        // unescaped it is ours, unexpanded.
        let quoted = rules
            .split("--comment \"")
            .nth(1)
            .and_then(|r| r.rsplit_once("\" -j"))
            .map(|(c, _)| c)
            .unwrap_or_else(|| panic!("no comment in\n{rules}"));
        let mut kept = String::new();
        let mut chars = quoted.chars();
        while let Some(ch) = chars.next() {
            kept.push(if ch == '\\' {
                chars.next().unwrap_or(ch)
            } else {
                ch
            });
        }
        assert_eq!(&kept, h, "not kept verbatim in\n{rules}");
        Cmd::new("iptables")
            .netns(Some(&ns))
            .args(["-F", "INPUT"])
            .run()
            .unwrap();
    }
    // Namespace names with metacharacters are refused before `ip` runs.
    for h in hostile(c) {
        assert!(matador::net::netns::check_ns_name(&h).is_err(), "{h:?}");
    }
    no_files(canary.path());
}

#[test]
fn hostile_scenario_values_are_refused_or_kept_as_data() {
    let canary = tempfile::tempdir().unwrap();
    let c = canary.path().to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for h in hostile(c) {
        let q = serde_json::to_string(&h).unwrap(); // a valid YAML string
        let cases = [
            (
                "phone id",
                format!("phones:\n  - id: {q}\n  - id: lab-b\n"),
                true,
            ),
            ("app", format!("apps: [{q}]\n"), true),
            (
                "node",
                format!("countries:\n  DE: [{q}]\n  BR: [br-1]\n"),
                true,
            ),
            ("name", format!("name: {q}\n"), true),
            ("text", format!("messages:\n  texts: [{q}]\n"), false),
        ];
        for (what, patch, refused) in cases {
            let yaml = scenario_with(&patch);
            let p = tmp.path().join("s.yaml");
            std::fs::write(&p, &yaml).unwrap();
            let r = matador::scenario::LoadedScenario::load(&p);
            if refused {
                let e = r.err().unwrap_or_else(|| panic!("{what} {h:?} accepted"));
                // The error is a message, located in the file.
                assert!(e.to_string().contains("s.yaml:"), "{what}: {e}");
            } else {
                let ls = r.unwrap_or_else(|e| panic!("{what} {h:?}: {e}"));
                let plan = matador::campaign::plan::Plan::expand(&ls);
                assert!(
                    plan.measurements
                        .iter()
                        .flat_map(|m| &m.messages)
                        .any(|m| m.text
                            == matador::campaign::plan::marked(
                                &ls.scenario.messages.marker,
                                &h,
                                &m.id
                            )),
                    "{what}: the text is kept verbatim (with its message id mark)"
                );
            }
        }
    }
    no_files(canary.path());
}

/// A valid scenario with one key replaced by `patch`.
fn scenario_with(patch: &str) -> String {
    let base = [
        ("name", "name: hostile\n"),
        ("phones", "phones:\n  - id: lab-a\n  - id: lab-b\n"),
        ("apps", "apps: [whatsapp]\n"),
        ("countries", "countries:\n  DE: [de-1]\n  BR: [br-1]\n"),
        ("pairs", "pairs:\n  all: [DE, BR]\n"),
        ("messages", "messages:\n  texts: [hello]\n"),
        ("lab", "lab: {}\n"),
    ];
    let key = patch.split(':').next().unwrap();
    base.iter()
        .map(|(k, v)| if *k == key { patch } else { *v })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_contact_names_and_texts_arrive_verbatim_on_the_phones() {
    let backends = start_backends(0).await;
    let mut ca = phone_config('a', Some(backends.dns), 0, false);
    // Phone A knows B under a hostile name in WeChat (found by typing it
    // into the app's search: no deep link).
    let evil_name = "B'$(touch /sdcard/n1)`touch /sdcard/n2`;\"x\" | & * \\".to_string();
    for (app, cfg) in ca.apps.iter_mut() {
        for ct in cfg.contacts.iter_mut() {
            if ct.name == "Lab B" && app == "wechat" {
                ct.name = evil_name.clone();
            }
        }
    }
    // About quoting, not timing: quick UI dumps.
    not_about_timing(&mut ca);
    let mut cb = phone_config('b', Some(backends.dns), 1, true);
    not_about_timing(&mut cb);
    let a = start_phone(ca).await;
    let b = start_phone(cb).await;
    let server = AdbServer::start();
    server.connect(a.adb_addr);
    server.connect(b.adb_addr);
    let open = |addr: std::net::SocketAddr| Target::Server {
        server: server.addr(),
        serial: addr.to_string(),
    };
    let da = Device::open(open(a.adb_addr)).await.unwrap();
    let db = Device::open(open(b.adb_addr)).await.unwrap();
    let apps = load_app_profiles();
    let wechat = apps.iter().find(|x| x.id == "wechat").unwrap();
    let whatsapp = apps.iter().find(|x| x.id == "whatsapp").unwrap();
    da.dump().await.unwrap();
    let before = da.sh_ok("ls /sdcard /data/local/tmp").await.unwrap();
    let texts = hostile("/sdcard");
    for (i, text) in texts.iter().enumerate() {
        let text = format!("{text} #{i}");
        // WeChat: the hostile contact name is typed into the search.
        da.send_message(wechat, &account("wechat", 'b'), &evil_name, &text, None)
            .await
            .unwrap_or_else(|e| panic!("wechat {text:?}: {e}"));
        db.wait_receipt(wechat, &text, Duration::from_secs(15), None)
            .await
            .unwrap_or_else(|e| panic!("wechat receipt {text:?}: {e}"));
    }
    // WhatsApp: a deep link built from a hostile contact id.
    let evil_id = "+49151$(touch /sdcard/n3)0000002";
    let r = da
        .send_message(whatsapp, evil_id, "Lab B", "hi #x", None)
        .await;
    eprintln!("hostile contact id: {r:?}");
    // B's phone shows each text exactly as sent (what the simulator stored).
    let chat = {
        let p = b.phone.lock().unwrap();
        let app = p.apps.iter().find(|x| x.def.id == "wechat").unwrap();
        app.chats
            .values()
            .flatten()
            .filter(|m| !m.outgoing)
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
    };
    for (i, t) in texts.iter().enumerate() {
        let want = format!("{t} #{i}");
        assert!(chat.contains(&want), "{want:?} not verbatim in {chat:#?}");
    }
    assert_eq!(
        da.sh_ok("ls /sdcard /data/local/tmp").await.unwrap(),
        before,
        "files appeared on phone A"
    );
}
