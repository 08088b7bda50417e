//! The adb_client defects `device::adb` works around (the version in
//! Cargo.lock, 3.2.3), each shown on the simulated phone (real `adb` 1.0.41
//! checks the same simulator in tests/phone_sim_adb.rs). When a library
//! update fixes one, the test naming it fails: drop the workaround then.

#[path = "phone_sim_support.rs"]
mod support;

mod wait_common;

use adb_client::ADBDeviceExt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use support::*;

/// Runs `cmd` with adb_client and returns (exit code as adb_client
/// reports it, stdout).
fn run(d: &mut dyn ADBDeviceExt, cmd: &str) -> (Option<u8>, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let rc = d
        .shell_command(&cmd, Some(&mut out), Some(&mut err))
        .unwrap();
    (rc, String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_lost_through_the_server_and_over_direct_tcp() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let server = AdbServer::start();
    let addr = a.adb_addr;
    let port = server.port;
    let (via_server, direct) = tokio::task::spawn_blocking(move || {
        server.connect(addr);
        let mut s = adb_client::server_device::ADBServerDevice::new(
            addr.to_string(),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
        );
        // The server and the phone speak shell v2 (real adb gets exit
        // codes from them: tests/phone_sim_adb.rs), and adb_client sees it.
        let features = s.host_features().unwrap();
        assert!(
            features.contains(&adb_client::HostFeatures::ShellV2),
            "{features:?}"
        );
        let via_server = run(&mut s, "echo hi; exit 3");
        let key = tempfile::tempdir().unwrap();
        let mut d = adb_client::tcp::ADBTcpDevice::new_with_custom_private_key(
            addr,
            key.path().join("adbkey"),
        )
        .unwrap();
        let direct = run(&mut d, "echo hi; exit 3");
        (via_server, direct)
    })
    .await
    .unwrap();
    // adb_client 3.2.3 through the server (shell v2) reads the exit-status
    // packet, then returns `Ok(None)` at the end of stream that follows it
    // (server_device/adb_server_device_commands.rs, shell_command_v2: the
    // EOF branch returns `None`, not the `exit` it holds): the code is lost.
    assert_eq!(
        via_server,
        (None, "hi\n".to_string()),
        "adb_client now keeps the exit code through the server: use it there, drop wrap_rc"
    );
    // Over direct TCP (its message device speaks shell v1) it reports none.
    assert_eq!(
        direct,
        (None, "hi\n".to_string()),
        "adb_client now reports exit codes over direct TCP: drop wrap_rc/split_rc"
    );
}

/// Output that tells, once, that some arrived.
struct Signal(Option<std::sync::mpsc::Sender<()>>);

impl std::io::Write for Signal {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fake adb server on loopback: answers each request with `reply`
/// (`None`: reads the request and never answers). Returns its address.
fn fake_server(reply: Option<&'static str>) -> SocketAddrV4 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut held = Vec::new();
        for s in l.incoming() {
            let mut s = s.unwrap();
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&len).unwrap(), 16).unwrap();
            let mut req = vec![0u8; n];
            s.read_exact(&mut req).unwrap();
            match reply {
                Some(body) => {
                    let msg = format!("OKAY{:04x}{body}", body.len());
                    s.write_all(msg.as_bytes()).unwrap();
                }
                // Silent, connection kept open: a hung server.
                None => held.push(s),
            }
        }
    });
    addr
}

/// The hand-written host requests (`adb::host_request`) stay: adb_client
/// 3.2.3's `ADBServer` runs `adb start-server` before every request to a
/// loopback server — without `-P`, so on the default port whatever port
/// the server was given — and then waits for the answer without a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_requests_start_adb_every_time_and_wait_forever() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = dir.path().join("adb");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let addr = fake_server(None);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = script.display().to_string();
    std::thread::spawn(move || {
        let mut s = adb_client::server::ADBServer::new_from_path(addr, Some(path));
        let _ = tx.send(s.devices_long().map(|d| d.len()));
    });
    let ran = wait_common::wait_until("adb_client to run adb", Duration::from_secs(30), || {
        std::fs::read_to_string(&calls).map_err(|e| e.kind())
    });
    assert_eq!(
        ran, "start-server\n",
        "adb_client no longer starts adb (on the default port) per request"
    );
    // The server never answers: adb_client is still waiting after 2 s (a
    // slower machine only makes it wait longer), ours gives up at its bound.
    assert!(
        matches!(
            rx.recv_timeout(Duration::from_secs(2)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        ),
        "adb_client now bounds host requests"
    );
    let e = matador::device::adb::list_devices(addr).await.unwrap_err();
    assert!(
        matches!(e, matador::device::DeviceError::Timeout { .. }),
        "{e}"
    );
}

/// adb_client 3.2.3's `devices_long` fails the whole list on one line it
/// cannot parse, such as a USB phone the host may not open ("no
/// permissions (…)" in the state column, as adb 1.0.41 writes it); ours
/// lists the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unusual_device_line_fails_adb_clients_whole_list() {
    let body = "emulator-5554          device product:sdk model:Pixel_6 device:emu transport_id:1\n\
                0123456789ABCDEF       no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html] usb:1-1 transport_id:2\n";
    let addr = fake_server(Some(body));
    let theirs = tokio::task::spawn_blocking(move || {
        // A path that does not exist: the start-server attempt fails quietly.
        adb_client::server::ADBServer::new_from_path(addr, Some("/nonexistent/adb".into()))
            .devices_long()
            .map(|d| d.len())
    })
    .await
    .unwrap();
    assert!(
        theirs.is_err(),
        "adb_client now lists past an unusual line: {theirs:?}"
    );
    let ours = matador::device::adb::list_devices(addr).await.unwrap();
    assert_eq!(ours[0].serial, "emulator-5554");
    assert_eq!(ours[0].model.as_deref(), Some("Pixel 6"));
    assert_eq!(ours.len(), 2);
    assert_ne!(ours[1].state, "device");
}

/// The watchdog relay (`adb::Framer::poison`) stays: over direct TCP,
/// adb_client 3.2.3 does not notice that the phone closed the connection
/// (its read loop takes a 0-byte read for "try again"), so the call never
/// returns. Through the relay, `Adb` fails instead (device_errors.rs,
/// watchdog_times_out_and_recovers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tcp_never_returns_after_the_phone_closes() {
    let a = start_phone(phone_config('a', None, 0, false)).await;
    let addr = a.adb_addr;
    let key = tempfile::tempdir().unwrap();
    let key_path = key.path().join("adbkey");
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut d =
            adb_client::tcp::ADBTcpDevice::new_with_custom_private_key(addr, &key_path).unwrap();
        // The phone closes while adb_client reads this command's output
        // (the simulated command runs on after, as a phone's would: 4 s,
        // longer than the 2 s looked at below).
        let mut out = Signal(Some(up_tx));
        let r = d.shell_command(&"echo start; sleep 4; echo late", Some(&mut out), None);
        let _ = done_tx.send(format!("{r:?}"));
    });
    up_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the command's first output");
    // Pull the cable: the phone closes its connections and its listener.
    a.unplug();
    wait_common::wait_until(
        "the phone to stop listening",
        Duration::from_secs(30),
        || match std::net::TcpStream::connect(addr) {
            Ok(_) => Err("still listening"),
            Err(_) => Ok(()),
        },
    );
    // Still inside the call after 2 s (a slower machine only makes it
    // longer); the thread is left behind, as `Adb`'s worker would be.
    let r = done_rx.recv_timeout(Duration::from_secs(2));
    assert!(
        matches!(r, Err(std::sync::mpsc::RecvTimeoutError::Timeout)),
        "adb_client now returns after the phone closed: {r:?}; the relay's poison may go"
    );
}
