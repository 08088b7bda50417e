//! Message texts are a security boundary: whatever they contain (quotes, `;`,
//! `$(…)`, backticks, newlines, non-ASCII) they must arrive verbatim and never
//! run on the phone. The quoting is checked against mksh (Android's shell),
//! and a negative control shows the simulator *would* run an injection.

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::typing::{self, Typing};
use matador_lab::phone::shell::parse;
use std::process::Command;
use std::time::Duration;
use support::*;

fn hostile(dir: &str) -> Vec<String> {
    vec![
        format!("hi $(touch {dir}/p1) there"),
        format!("`touch {dir}/p2`"),
        format!("a; touch {dir}/p3; b"),
        format!("x' ; touch {dir}/p4 ; echo 'y"),
        format!("\"q\" && touch {dir}/p5 || true"),
        format!("line1\nline2 $(touch {dir}/p6)"),
        format!("Grüße 日本 😀 $(touch {dir}/p7)"),
        "100% sure %s $HOME ${PATH}".to_string(),
        format!("back\\slash > {dir}/p8 < /etc/passwd | cat &"),
        "tab\there 'single' \"double\" \\\" \\'".to_string(),
    ]
}

/// The words mksh makes of a command line (printed NUL-separated).
fn mksh_words(line: &str) -> Vec<String> {
    let out = Command::new("mksh")
        .arg("-c")
        .arg(format!("printf '%s\\0' {line}"))
        .output()
        .expect("mksh must be installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "mksh failed on {line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    s.split_terminator('\0').map(String::from).collect()
}

/// The words the simulator's parser makes (literal words only).
fn sim_words(line: &str) -> Vec<String> {
    let script = parse::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(script.0.len(), 1, "{line:?}");
    script.0[0].first.cmds[0]
        .words
        .iter()
        .map(|w| {
            w.literal()
                .unwrap_or_else(|| panic!("{line:?} has an expansion"))
        })
        .collect()
}

#[test]
fn quoting_agrees_with_mksh_and_never_executes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    for text in hostile(&d) {
        let cmd = match typing::plan(&text) {
            Typing::InputText(c) | Typing::AdbKeyboard(c) => c,
        };
        let words = mksh_words(&cmd);
        assert_eq!(words, sim_words(&cmd), "{text:?}");
        // The typed argument is the text (input text: spaces as %s).
        if let Typing::InputText(_) = typing::plan(&text) {
            assert_eq!(words[2], text.replace(' ', "%s"));
        }
    }
    // Plain quoting of arbitrary words, as the device layer uses for URIs.
    for w in [
        "", "a b", "it's", "\"", "\\", "$(x)", "`x`", "a\nb", "%s", "'''", "ü",
    ] {
        let line = matador::device::shell_quote::quote(w);
        assert_eq!(mksh_words(&line), vec![w.to_string()]);
        assert_eq!(sim_words(&line), vec![w.to_string()]);
    }
    // Lines with mixed quoting parse alike.
    for line in [
        r#"a 'b c' "d e" f\ g"#,
        r#"'it'\''s' "a'b" a"b"c"#,
        r#""\$x" '\n' "" "\\" a\\b"#,
        r#"x\"y 'z\'"#,
    ] {
        assert_eq!(mksh_words(line), sim_words(line), "{line}");
    }
    // Nothing ran on this host either.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_texts_arrive_verbatim_and_never_run() {
    let backends = start_backends(0).await;
    // About quoting, not timing: quick UI dumps (40 texts each way).
    let mut ca = phone_config('a', Some(backends.dns), 0, false);
    let mut cb = phone_config('b', Some(backends.dns), 1, true);
    not_about_timing(&mut ca);
    not_about_timing(&mut cb);
    let a = start_phone(ca).await;
    let b = start_phone(cb).await;
    let server = AdbServer::start();
    server.connect(a.adb_addr);
    server.connect(b.adb_addr);
    let da = server.device(a.adb_addr).await;
    let db = server.device(b.adb_addr).await;
    let apps = load_app_profiles();
    let wa = apps.iter().find(|a| a.id == "whatsapp").unwrap();
    // Negative control: an unescaped text would run on the simulated phone.
    da.sh("input text hi$(touch /sdcard/canary)").await.unwrap();
    assert_eq!(
        da.sh("ls /sdcard/canary").await.unwrap().rc,
        0,
        "the simulator must execute real injections"
    );
    da.sh_ok("rm /sdcard/canary").await.unwrap();
    // The UI dumps the device layer writes are the only expected new file.
    da.dump().await.unwrap();
    let before = da.sh_ok("ls /sdcard /data/local/tmp").await.unwrap();
    for (i, text) in hostile("/sdcard")
        .into_iter()
        .chain(hostile("/data/local/tmp"))
        .enumerate()
    {
        let text = format!("{text} #{i}");
        da.send_message(wa, &account("whatsapp", 'b'), "Lab B", &text, None)
            .await
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let r = db
            .wait_receipt(wa, &text, Duration::from_secs(15), None)
            .await
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(r.phone_posted_s.is_some());
    }
    assert_eq!(
        da.sh_ok("ls /sdcard /data/local/tmp").await.unwrap(),
        before,
        "files appeared on phone A"
    );
    // The IME is back to the phone's own keyboard.
    let ime = da
        .sh_ok("settings get secure default_input_method")
        .await
        .unwrap();
    assert!(ime.contains("LatinIME"), "{ime}");
}

/// 400 pseudo-random texts over an alphabet of shell metacharacters,
/// whitespace and non-ASCII: the typing command's words are the same in
/// mksh and in the simulator's parser, and carry exactly the text.
#[test]
fn random_texts_type_alike_in_mksh_and_the_simulator() {
    use base64::Engine;
    let alphabet: Vec<char> = "ab Z09'\"\\$()`;&|<>*?[]{}~#!\n\t%=-_.,:é日😀"
        .chars()
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let texts: Vec<String> = (0..400)
        .map(|_| {
            let n = 1 + next() % 24;
            (0..n)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        })
        .collect();
    let cmds: Vec<String> = texts
        .iter()
        .map(|t| match typing::plan(t) {
            Typing::InputText(c) | Typing::AdbKeyboard(c) => c,
        })
        .collect();
    // One mksh run: each command's words NUL-separated, cases split by \x01.
    let mut script = String::new();
    for c in &cmds {
        script.push_str(&format!("printf '%s\\0' {c}\nprintf '\\001'\n"));
    }
    let out = Command::new("mksh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("mksh must be installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let cases: Vec<&str> = stdout.split_terminator('\u{1}').collect();
    assert_eq!(cases.len(), texts.len());
    let mut via_ime = 0;
    for ((text, cmd), case) in texts.iter().zip(&cmds).zip(cases) {
        let words: Vec<String> = case.split_terminator('\0').map(String::from).collect();
        assert_eq!(words, sim_words(cmd), "{text:?}");
        match typing::plan(text) {
            Typing::InputText(_) => {
                assert_eq!(words.len(), 3, "{text:?}");
                assert_eq!(words[2], text.replace(' ', "%s"));
            }
            Typing::AdbKeyboard(_) => {
                via_ime += 1;
                let b64 = words.last().unwrap();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                assert_eq!(String::from_utf8(bytes).unwrap(), *text);
            }
        }
    }
    assert!(via_ime > 0 && via_ime < texts.len(), "{via_ime}");
}
