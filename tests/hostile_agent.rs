//! The node agent (`matador agent`, the program behind the SSH channel)
//! accepts only its own protocol: every malformed request gets an error
//! answer, never a crash, and it keeps serving afterwards. Also: lengths
//! claiming 4 GB are never believed (agent lines and fetch sizes, ADB
//! packets on both sides, pcap records).

use matador::net::agent::client::{BoundedLines, MAX_RESPONSE_LINE};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

fn hostile_requests(dir: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "not json at all",
        "{",
        "[]",
        "null",
        "42",
        "\"hello\"",
        "{}",
        r#"{"op":"health"}"#,
        r#"{"id":"1","op":"health"}"#,
        r#"{"id":-1,"op":"health"}"#,
        r#"{"id":1.5,"op":"health"}"#,
        r#"{"id":18446744073709551616,"op":"health"}"#,
        r#"{"id":1}"#,
        r#"{"id":2,"op":7}"#,
        r#"{"id":3,"op":"rm -rf /"}"#,
        r#"{"id":4,"op":"capture_start"}"#,
        r#"{"id":5,"op":"capture_start","capture":"x","spec":{"interface":"lo; touch PWN","prefix":"p"}}"#,
        r#"{"id":6,"op":"capture_start","capture":"../../etc","spec":{"interface":"lo","prefix":"p"}}"#,
        r#"{"id":7,"op":"capture_stop","capture":"$(touch PWN)"}"#,
        r#"{"id":8,"op":"file_info","capture":"x","file":"../../../etc/shadow"}"#,
        r#"{"id":9,"op":"fetch","capture":"x","file":"/etc/passwd","offset":0,"len":4294967295}"#,
        r#"{"id":10,"op":"fetch","capture":"x","file":"a.pcap","offset":18446744073709551615,"len":1}"#,
        r#"{"id":11,"op":"run","program":"sh","args":["-c","touch PWN"]}"#,
        r#"{"id":12,"op":"run","program":"/bin/sh","args":["-c","touch PWN"]}"#,
        r#"{"id":13,"op":"run","program":"ping; touch PWN","args":[]}"#,
        r#"{"id":14,"op":"hello","protocol":"one"}"#,
        r#"{"id":16,"op":"capture_list","x":1e999}"#,
    ]
    .iter()
    .map(|s| s.replace("PWN", &format!("{dir}/pwned")).into_bytes())
    .collect();
    // Invalid UTF-8, NUL bytes, control characters.
    v.push(b"{\"id\":17,\"op\":\"he\xffllo\"}".to_vec());
    v.push(b"\x00\x01\x02\x03\x7f\xfe".to_vec());
    v.push(b"{\"id\":18,\"op\":\"health\0\"}".to_vec());
    // Nesting deeper than any parser's recursion limit.
    v.push(format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes());
    v.push(
        format!(
            "{{\"id\":19,\"op\":\"file_info\",\"capture\":{}1{}}}",
            "{\"b\":".repeat(5000),
            "}".repeat(5000)
        )
        .into_bytes(),
    );
    // A line longer than the agent's limit (1 MiB).
    v.push(vec![b'x'; 3 << 20]);
    v
}

#[test]
fn malformed_requests_get_errors_and_the_agent_keeps_serving() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["agent", "--dir"])
        .arg(tmp.path().join("agent"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("matador agent");
    let mut stdin = child.stdin.take().unwrap();
    let reqs = hostile_requests(&dir);
    let n = reqs.len();
    // Write from a thread: the agent answers while we are still writing.
    let writer = std::thread::spawn(move || {
        for r in reqs {
            stdin.write_all(&r).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        // Still serving: a valid request, then shutdown.
        stdin
            .write_all(b"{\"id\":1000,\"op\":\"health\"}\n{\"id\":1001,\"op\":\"shutdown\"}\n")
            .unwrap();
        stdin
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut answers = Vec::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        answers.push(
            serde_json::from_str::<Value>(line.trim())
                .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {line:?}")),
        );
        line.clear();
    }
    let _stdin = writer.join().unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "agent exit {status:?}; stderr:\n{stderr}");
    // Banner, one answer per request, health, shutdown.
    assert_eq!(answers[0]["agent"], "matador", "{:?}", answers[0]);
    let replies = &answers[1..];
    assert_eq!(replies.len(), n + 2, "{replies:#?}");
    for (i, r) in replies[..n].iter().enumerate() {
        assert_eq!(r["ok"], false, "request {i} was accepted: {r}");
        let e = &r["error"];
        assert!(
            e["kind"].is_string() && e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "request {i}: error without kind/message: {r}"
        );
    }
    assert_eq!(replies[n]["id"], 1000);
    assert_eq!(replies[n]["ok"], true, "{}", replies[n]);
    assert_eq!(replies[n + 1]["id"], 1001);
    assert!(
        !tmp.path().join("pwned").exists(),
        "a request ran a command"
    );
    // Nothing escaped the agent's folder, no file was served.
    for r in replies {
        let s = r.to_string();
        assert!(!s.contains("root:"), "served a system file: {s}");
    }
    eprintln!(
        "{n} malformed requests answered with errors in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

/// A reader producing `n` bytes of `b` without a newline, then ending.
struct Endless {
    left: u64,
    served: u64,
}

impl tokio::io::AsyncRead for Endless {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        buf.put_slice(&vec![b'a'; n]);
        self.left -= n as u64;
        self.served += n as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn an_agent_line_of_4_gib_is_not_buffered() {
    // A node "answering" with a 4 GiB line: the client gives up after its
    // bound instead of buffering it (it would need 4 GiB of memory).
    let mut src = Endless {
        left: 4 << 30,
        served: 0,
    };
    let err = {
        let mut lines = BoundedLines::new(tokio::io::BufReader::new(&mut src), MAX_RESPONSE_LINE);
        lines.next_line().await.unwrap_err()
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("longer than"), "{err}");
    assert!(
        src.served <= (MAX_RESPONSE_LINE + 64 * 1024) as u64,
        "read {} bytes of the line",
        src.served
    );
    // Ordinary lines still come through.
    let data: &[u8] = b"{\"id\":1}\r\nsecond\nlast";
    let mut lines = BoundedLines::new(tokio::io::BufReader::new(data), 64);
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("{\"id\":1}")
    );
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("second"));
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("last"));
    assert_eq!(lines.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn adb_headers_claiming_4_gib_are_refused_on_both_sides() {
    use matador_lab::phone::wire::{WireError, read_message};
    // Simulator side: a host announcing a 4 GiB payload.
    let mut h = Vec::new();
    let cmd = u32::from_le_bytes(*b"WRTE");
    for w in [cmd, 1, 1, u32::MAX, 0, cmd ^ 0xffff_ffff] {
        h.extend_from_slice(&w.to_le_bytes());
    }
    let mut r: &[u8] = &h;
    match read_message(&mut r).await {
        Err(WireError::TooLarge(n)) => assert_eq!(n, u32::MAX),
        other => panic!("4 GiB ADB payload accepted: {other:?}"),
    }
    // Device side: the relay's framer holds the header back.
    let mut f = matador::device::adb::Framer::default();
    assert_eq!(f.feed(&h), None, "a 4 GiB header reached adb_client");
    assert!(f.poison().len() <= 24 + matador::device::adb::MAX_DEVICE_PAYLOAD);
}

#[test]
fn a_pcap_record_claiming_4_gib_is_an_error_not_an_allocation() {
    // Global header (LE, µs), then a record header claiming 4 GiB.
    let mut b = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    for w in [1_700_000_000u32, 0, u32::MAX, u32::MAX] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(&[0u8; 64]);
    let report = matador::analysis::replay::analyze_reader(
        "huge.pcap",
        &b[..],
        &matador::analysis::replay::ReplayOptions::default(),
    );
    assert!(!report.errors.is_empty(), "a 4 GiB record was accepted");
    let msg = format!("{:?}", report.errors);
    assert!(
        msg.contains("huge.pcap") || msg.contains("4294967295"),
        "{msg}"
    );
    // The same through the agent fetch path: a 4 GiB `len` is capped (see
    // malformed_requests_get_errors_and_the_agent_keeps_serving).
}
