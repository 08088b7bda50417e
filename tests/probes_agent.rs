//! The agent's `probe` op, end to end without SSH: `matador agent` runs
//! locally, probes a loopback resolver and a loopback "censored" HTTP
//! server that resets requests carrying keywords, and returns the results;
//! its limits cap what the client asks for.

use matador::net::agent::client::{Agent, NodeConfig};
use matador::probes::limit::Limits;
use matador::probes::spec::{AppTargets, EndpointSpec, ProbeSpec};
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

/// A resolver answering every A query with 127.0.0.1.
fn resolver() -> std::net::SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let q = &buf[..n];
            if q.len() < 12 {
                continue;
            }
            let mut a = q.to_vec();
            a[2] = 0x81;
            a[3] = 0x80;
            a[7] = 1; // one answer
            a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            let _ = s.send_to(&a, from);
        }
    });
    addr
}

/// HTTP: 204, or a reset when the request holds a keyword.
fn censored_http(keywords: &'static [&'static str]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if keywords.iter().any(|k| req.contains(k)) {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            } else {
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        }
    });
    addr
}

#[test]
fn agent_runs_probes_and_caps_limits() {
    let dns = resolver();
    let neutral = censored_http(&["talk.kakao", "kakao.com"]);
    let mut spec = ProbeSpec::new(
        vec![AppTargets {
            app: "kakaotalk".into(),
            endpoints: vec![EndpointSpec {
                host: "dn-m.talk.kakao.com".into(),
                ports: vec![neutral.port()],
            }],
        }],
        Some(dns),
    );
    spec.neutral = Some(neutral);
    spec.timeout_ms = 1000;
    spec.limits = Limits {
        rate_per_s: 1_000_000.0,
        max_requests: 200,
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = NodeConfig::local(
        "n1",
        vec![],
        env!("CARGO_BIN_EXE_matador"),
        dir.path().display().to_string(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(async {
        let agent = Agent::connect(&cfg).await.unwrap();
        let r = agent
            .probe("n1", &spec, Duration::from_secs(60))
            .await
            .unwrap();
        let bad = agent.probe("../x", &spec, Duration::from_secs(5)).await;
        assert!(bad.unwrap_err().to_string().contains("bad vantage name"));
        agent.shutdown().await.unwrap();
        r
    });
    assert_eq!(r.vantage, "n1");
    let ep = &r.apps[0].endpoints[0];
    assert_eq!(
        ep.dns_udp.as_ref().unwrap().answers,
        vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(ep.tcp.iter().all(|t| t.ok), "{:?}", ep.tcp);
    assert!(ep.http.as_ref().unwrap().reset());
    let iso = ep.keywords.as_ref().unwrap();
    assert_eq!(iso.keywords, vec!["talk.kakao", "kakao.com"]);
    assert!(iso.complete);
    // dn-m.talk.kakao.com is 19 bytes: ⌈log2 19⌉ = 5, so at most 2·11+1.
    assert!(iso.requests <= 23, "{}", iso.requests);
    eprintln!(
        "agent probe: {} requests, isolation {} requests, {:.2} s",
        r.requests, iso.requests, r.runtime_s
    );
    // The agent capped the rate at 50/s: the requests took at least
    // (requests-1)/50 s.
    assert!(
        r.runtime_s >= f64::from(r.requests - 1) / 50.0 * 0.9,
        "{} requests in {:.2} s",
        r.requests,
        r.runtime_s
    );
}
