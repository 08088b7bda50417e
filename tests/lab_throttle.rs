//! Throttling ground truth: a node whose uplink is limited with a token
//! bucket (tc tbf) carries a phone's bulk upload at the configured rate.

mod lab_common;

use lab_common::{exe, leftovers, require_root};
use matador::net::netns::run_in;
use matador_lab::build::{Lab, UpOptions};
use matador_lab::topology::Topology;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPO: &str = "
name: throttle
country: DE
asn: 64600
phones: [{name: p1, node: slow, apps: [], background: false}]
nodes:
  - {name: slow, country: FR, asn: 64620, hops: 1, throttle_kbit: 800}
datacenters:
  - {name: dc, country: US, asn: 64630, apps: [signal]}
";

#[test]
fn throttled_node_limits_the_phone_upload() {
    require_root();
    let t = Topology::parse(TOPO, Path::new("throttle.yaml")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let lab = Lab::up(UpOptions {
        topology: t,
        state_dir: state.path().to_path_buf(),
        exe: exe(),
        phones: false,
        ssh: false,
        cancel: None,
    })
    .unwrap();
    let id = lab.id().to_string();
    // A sink in the data centre (sockets keep the namespace they were made in).
    let sink_addr: SocketAddr = "198.19.7.100:9000".parse().unwrap();
    matador::net::netns::ip_batch(
        Some(&lab.ns("dc")),
        &[matador::ipl!["addr", "add", "198.19.7.100/32", "dev", "lo"]],
    )
    .unwrap();
    let listener = run_in(Some(&lab.ns("dc")), move || {
        std::net::TcpListener::bind(sink_addr)
    })
    .unwrap();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut total = 0usize;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let mut c = run_in(Some(&lab.ns("p1")), move || {
        std::net::TcpStream::connect_timeout(&sink_addr, Duration::from_secs(3))
    })
    .unwrap();
    let data = vec![0x5au8; 250_000];
    let t0 = Instant::now();
    c.write_all(&data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = sink.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got, data.len());
    let kbit = got as f64 * 8.0 / 1000.0 / secs;
    eprintln!("upload {got} B in {secs:.2} s = {kbit:.0} kbit/s (tbf 800 kbit/s)");
    // The bucket (16 kB burst) lets the first bytes through at once; the rest
    // is held to the rate (WireGuard adds ~5% overhead below the bucket).
    assert!(kbit < 1000.0 && kbit > 500.0, "{kbit:.0} kbit/s");
    assert!(lab.down().is_empty());
    assert!(leftovers(&id).is_empty(), "{:#?}", leftovers(&id));
}
