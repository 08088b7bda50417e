//! `matador agent` as a process, without SSH: the banner, answers on
//! stdout, errors for bad input, clean exit on EOF and on `shutdown`.

use assert_cmd::Command;

mod wait_common;

/// `Ok` once capture `name` of `agent` has written `n` packets, else the
/// count so far.
async fn written(agent: &matador::net::agent::Agent, name: &str, n: u64) -> Result<(), u64> {
    let list = agent.list_captures().await.unwrap();
    let w = list
        .iter()
        .find(|c| c.capture == name)
        .and_then(|c| c.stats.as_ref())
        .map_or(0, |s| s.written);
    if w >= n { Ok(()) } else { Err(w) }
}

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
             {\"id\":2,\"op\":\"teleport\",\"target\":\"198.18.0.1\"}\n\
             {\"id\":4,\"op\":\"trace\",\"target\":\"198.18.0.1\"}\n{\"id\":3,\"op\":\"health\"}\n",
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
    assert!(
        l[3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("teleport")
    );
    // `trace` is an op now (docs/agent.md): a request without its `trace`
    // object is refused as malformed, naming the request.
    assert_eq!(l[4]["id"], 4);
    assert_eq!(l[4]["error"]["kind"], "bad_request");
    assert_eq!(
        l[5]["result"]["dir"],
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

/// A network namespace with a TUN device, removed on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2) is needed: scripts/install-deps.sh");
    assert!(st.success(), "ip {args:?} failed (needs root)");
}

#[test]
fn agent_in_a_namespace_captures_a_tun_device_as_raw_ip() {
    let ns = Netns(format!("mtagent-tun-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "tuntap", "add", "dev", "t0", "mode", "tun"]);
    ip(&["-n", &ns.0, "link", "set", "t0", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_matador"))
        .args(["agent", "--dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut w = c.stdin.take().unwrap();
            w.write_all(
                b"{\"id\":1,\"op\":\"capture_start\",\"capture\":\"t\",\"spec\":{\"interface\":\"t0\",\"prefix\":\"tun\"}}\n\
                  {\"id\":2,\"op\":\"capture_stop\",\"capture\":\"t\"}\n\
                  {\"id\":3,\"op\":\"capture_start\",\"capture\":\"u\",\"spec\":{\"interface\":\"eth9\",\"prefix\":\"x\"}}\n",
            )?;
            drop(w);
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let l = lines(&out.stdout);
    assert_eq!(l[1]["ok"], true, "{:?}", l[1]);
    assert_eq!(l[2]["ok"], true, "{:?}", l[2]);
    assert_eq!(l[3]["error"]["kind"], "capture");
    assert!(l[3]["error"]["message"].as_str().unwrap().contains("eth9"));
    // A failed start leaves no capture behind, so the name can be retried.
    assert!(!dir.path().join("u").exists());
    let hdr = std::fs::read(dir.path().join("t/tun.pcap")).unwrap();
    assert_eq!(hdr.len(), 24);
    assert_eq!(&hdr[0..4], &0xa1b2_3c4du32.to_le_bytes(), "nanosecond pcap");
    assert_eq!(
        u32::from_le_bytes(hdr[20..24].try_into().unwrap()),
        101,
        "LINKTYPE_RAW"
    );
}

/// The client against a real agent behind a stand-in for `ssh` that
/// corrupts the checksum the agent reports: the fetch must refuse the file.
#[tokio::test]
async fn checksum_mismatch_is_refused() {
    use matador::net::agent::{Agent, AgentError, NodeConfig};
    use matador::net::ssh::SshTarget;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake-ssh");
    // Runs the remote command (ssh's last argument) locally.
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor last; do :; done\nsh -c \"$last\" | sed -u 's/\"sha256\":\"[0-9a-f]/\"sha256\":\"x/'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(agent_dir.join("m1")).unwrap();
    std::fs::write(agent_dir.join("m1/a.pcap"), vec![7u8; 700_000]).unwrap();
    let mut t = SshTarget::new("fake-node", "nowhere", "u", "/nokey", "/nokh");
    t.ssh_program = fake;
    let mut cfg = NodeConfig::new(t, agent_dir.display().to_string());
    cfg.agent_program = env!("CARGO_BIN_EXE_matador").into();
    let agent = Agent::connect(&cfg).await.unwrap();
    let dest = dir.path().join("local");
    let e = agent.fetch("m1", "a.pcap", &dest).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AgentError::Checksum { .. }), "{msg}");
    assert!(
        msg.contains("fake-node") && msg.contains("m1/a.pcap"),
        "{msg}"
    );
    assert!(!dest.join("a.pcap").exists() && !dest.join("a.pcap.part").exists());
    agent.shutdown().await.unwrap();
}

/// The same client API with the agent run locally in a namespace (how the
/// campaign captures on the lab router): start, stop, fetch into a folder.
#[tokio::test]
async fn local_agent_in_a_namespace_behind_the_same_api() {
    use matador::capture::live::LiveSpec;
    use matador::net::agent::{Agent, NodeConfig};
    let ns = Netns(format!("mtagent-loc-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let wrapper = ["ip", "netns", "exec", &ns.0].map(String::from).to_vec();
    let cfg = NodeConfig::local(
        "router",
        wrapper,
        env!("CARGO_BIN_EXE_matador"),
        dir.path().join("agent").display().to_string(),
    );
    let agent = Agent::connect(&cfg).await.unwrap();
    let mut spec = LiveSpec::new("lo", "capture-router-phone-a");
    spec.filter = Some("icmp".into());
    agent.start_capture("m0001", &spec).await.unwrap();
    let st = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "ping",
            "-q",
            "-c",
            "3",
            "-i",
            "0.05",
            "127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // Stop once the capture has written the 6 packets (3 requests, 3 replies).
    let a = &agent;
    wait_common::wait_until_async(
        "the capture to write the 6 ICMP packets",
        std::time::Duration::from_secs(20),
        || async move { written(a, "m0001", 6).await },
    )
    .await;
    let dest = dir.path().join("measurements/m0001");
    let got = agent.stop_capture("m0001", &dest).await.unwrap();
    assert_eq!(got.files, [dest.join("capture-router-phone-a.pcap")]);
    assert_eq!(got.info.stats.unwrap().written, 6);
    let mut r = matador::capture::CaptureReader::open(&got.files[0]).unwrap();
    let mut n = 0;
    while r.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 6);
    agent.shutdown().await.unwrap();
}
