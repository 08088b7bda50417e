//! `matador agent` as a process, without SSH: the banner, answers on
//! stdout, errors for bad input, clean exit on EOF and on `shutdown`.

use assert_cmd::Command;

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn agent_process_answers_and_exits_on_eof() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("matador")
        .unwrap()
        .args(["agent", "--dir"])
        .arg(dir.path().join("a"))
        .args(["--allow", "uname"])
        .write_stdin(
            "{\"id\":1,\"op\":\"hello\",\"protocol\":1}\nnot json\n\
             {\"id\":2,\"op\":\"trace\",\"target\":\"198.18.0.1\"}\n{\"id\":3,\"op\":\"health\"}\n",
        )
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .success();
    let l = lines(&out.get_output().stdout);
    assert_eq!(l[0]["agent"], "matador");
    assert_eq!(l[0]["protocol"], 1);
    assert_eq!(
        l[1]["result"]["allowed_programs"],
        serde_json::json!(["uname"])
    );
    assert!(l[1]["result"]["ops"].as_array().unwrap().len() >= 10);
    assert_eq!(l[2]["id"], serde_json::Value::Null);
    assert_eq!(l[2]["error"]["kind"], "bad_request");
    assert_eq!(l[3]["error"]["kind"], "unknown_op");
    assert!(l[3]["error"]["message"].as_str().unwrap().contains("trace"));
    assert_eq!(
        l[4]["result"]["dir"],
        dir.path().join("a").display().to_string()
    );
    assert!(dir.path().join("a").is_dir());
}

#[test]
fn shutdown_answers_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("matador")
        .unwrap()
        .args(["agent", "--allow-none", "--dir"])
        .arg(dir.path())
        .write_stdin("{\"id\":1,\"op\":\"shutdown\"}\n{\"id\":2,\"op\":\"health\"}\n")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .success();
    let l = lines(&out.get_output().stdout);
    assert_eq!(l.len(), 2, "banner + shutdown reply only");
    assert_eq!(l[1]["id"], 1);
    assert_eq!(l[1]["ok"], true);
}
