//! The node agent's `trace` op against real kernels: the agent runs inside
//! the source namespace of a router chain (tests/paths_common), as it runs
//! on a node, and its traces must find the same hops as the engine run
//! locally from that namespace with the same settings. Its limits and
//! errors are named; an older agent without the op answers `unknown_op`.
//! Needs root; runs in CI. Prints the agent's overhead (no timing assert:
//! `bench/agent_trace.sh` collects the figure).

mod paths_common;

use matador::net::agent::client::{Agent, AgentError, NodeConfig};
use matador::net::agent::protocol::ErrorKind;
use matador::net::agent::trace::{TRACE_MAX_TARGETS, TraceRequest};
use matador::paths::{Proto, Target, TraceConfig};
use paths_common::{Chain, Opts, t1, t2};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn cfg() -> TraceConfig {
    TraceConfig {
        wait: Duration::from_millis(700),
        pps: 400,
        max_ttl: 10,
        probes: 1,
        lab_only: true,
        ..TraceConfig::default()
    }
}

fn targets() -> Vec<Target> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        for p in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            for addr in [t1(v6), t2(v6)] {
                out.push(Target {
                    proto: Some(p),
                    ..Target::addr(addr)
                });
            }
        }
    }
    out
}

fn agent_in(chain: &Chain, dir: &std::path::Path) -> NodeConfig {
    NodeConfig::local(
        "node-s",
        vec!["ip".into(), "netns".into(), "exec".into(), chain.ns("s")],
        env!("CARGO_BIN_EXE_matador"),
        dir.display().to_string(),
    )
}

type Hops = Vec<(IpAddr, Proto, Vec<Option<IpAddr>>)>;

fn hops(traces: &[matador::paths::Trace]) -> Hops {
    traces
        .iter()
        .map(|t| (t.dst_addr, t.proto, t.hop_addrs()))
        .collect()
}

#[test]
fn agent_trace_finds_the_hops_of_a_local_trace() {
    let chain = Chain::build(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = targets();
    let local_cfg = TraceConfig {
        netns: Some(chain.ns("s")),
        ..cfg()
    };
    let t0 = Instant::now();
    let local = matador::paths::trace(&local_cfg, &targets).unwrap();
    let local_time = t0.elapsed();

    let t0 = Instant::now();
    let agent = rt
        .block_on(Agent::connect(&agent_in(&chain, dir.path())))
        .unwrap();
    let connect_time = t0.elapsed();
    let req = TraceRequest::new(&cfg(), &targets);
    let t0 = Instant::now();
    let reply = rt.block_on(agent.trace(&req)).unwrap();
    let agent_time = t0.elapsed();

    assert_eq!(reply.traces.len(), targets.len());
    assert_eq!(hops(&reply.traces), hops(&local));
    for (a, l) in reply.traces.iter().zip(&local) {
        assert!(a.reached(), "{a:?}");
        assert_eq!(a.stop_reason, l.stop_reason);
        assert_eq!(a.src_addr, l.src_addr, "same source: probed from the node");
        assert_eq!(a.paris_id, l.paris_id);
        assert_eq!(a.packets, l.packets);
    }
    assert_eq!(
        reply.packets,
        reply.traces.iter().map(|t| t.packets).sum::<u32>()
    );
    // Stored as the campaign stores them (one file per node and target
    // address: the ICMP trace, last per address here, is kept), read back
    // unchanged.
    let mdir = tempfile::tempdir().unwrap();
    for t in reply.traces.iter().filter(|t| t.proto == Proto::Icmp) {
        matador::paths::record::write_trace(mdir.path(), "node-s", t).unwrap();
    }
    let back = matador::paths::record::read_traces(mdir.path()).unwrap();
    assert_eq!(back.len(), 4, "t1 and t2, IPv4 and IPv6");
    for (node, t) in &back {
        assert_eq!(node, "node-s");
        assert!(reply.traces.contains(t));
    }
    eprintln!(
        "agent trace overhead: {} targets, local {:.3} s, agent {:.3} s \
         (engine on the node {:.3} s), ratio {:.2}; connect {:.3} s",
        targets.len(),
        local_time.as_secs_f64(),
        agent_time.as_secs_f64(),
        reply.runtime_s,
        agent_time.as_secs_f64() / local_time.as_secs_f64(),
        connect_time.as_secs_f64()
    );
    rt.block_on(agent.shutdown()).unwrap();
}

fn remote_kind(e: AgentError) -> (ErrorKind, String) {
    match e {
        AgentError::Remote {
            kind,
            message,
            node,
            ..
        } => {
            assert_eq!(node, "node-s");
            (kind, message)
        }
        other => panic!("expected an answered error, got {other}"),
    }
}

#[test]
fn agent_trace_limits_and_errors_are_named() {
    let chain = Chain::build(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = rt
        .block_on(Agent::connect(&agent_in(&chain, dir.path())))
        .unwrap();
    let many: Vec<Target> = (0..=TRACE_MAX_TARGETS)
        .map(|i| Target::addr(IpAddr::from([198, 18, 4, i as u8])))
        .collect();
    let e = rt
        .block_on(agent.trace(&TraceRequest::new(&cfg(), &many)))
        .unwrap_err();
    let (kind, msg) = remote_kind(e);
    assert_eq!(kind, ErrorKind::Limit, "{msg}");
    assert!(msg.contains("65 targets"), "{msg}");
    let mut fast = TraceRequest::new(&cfg(), &[Target::addr(t1(false))]);
    fast.pps = 100_000;
    let (kind, msg) = remote_kind(rt.block_on(agent.trace(&fast)).unwrap_err());
    assert_eq!(kind, ErrorKind::Limit, "{msg}");
    // Lab mode: a target outside the lab is refused by the node.
    let out = TraceRequest::new(&cfg(), &[Target::addr("192.0.2.1".parse().unwrap())]);
    let (kind, msg) = remote_kind(rt.block_on(agent.trace(&out)).unwrap_err());
    assert_eq!(kind, ErrorKind::Refused, "{msg}");
    // The agent still works after refusals.
    let ok = rt
        .block_on(agent.trace(&TraceRequest::new(&cfg(), &[Target::addr(t1(false))])))
        .unwrap();
    assert!(ok.traces[0].reached());
    rt.block_on(agent.shutdown()).unwrap();
}

/// An agent of an older matador: knows `hello` only, answers the rest with
/// `unknown_op` as the protocol says (docs/agent.md).
const OLD_AGENT: &str = r#"
import json, sys
print(json.dumps({"agent": "matador", "protocol": 1, "version": "0.0.1", "pid": 1}), flush=True)
for line in sys.stdin:
    r = json.loads(line)
    if r["op"] == "hello":
        out = {"id": r["id"], "ok": True, "result": {"protocol": 1, "version": "0.0.1", "ops": ["hello"], "allowed_programs": []}}
    else:
        out = {"id": r["id"], "ok": False, "error": {"kind": "unknown_op", "message": "unknown op %r" % r["op"]}}
    print(json.dumps(out), flush=True)
"#;

#[test]
fn an_older_agent_answers_unknown_op() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("old_agent.py");
    std::fs::write(&script, OLD_AGENT).unwrap();
    let cfg = NodeConfig::local(
        "node-s",
        vec!["python3".into()],
        script.display().to_string(),
        dir.path().display().to_string(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = rt.block_on(Agent::connect(&cfg)).unwrap();
    let req = TraceRequest::new(&cfg_outside(), &[Target::addr(t1(false))]);
    let (kind, msg) = remote_kind(rt.block_on(agent.trace(&req)).unwrap_err());
    assert_eq!(kind, ErrorKind::UnknownOp, "{msg}");
    let e = matador::campaign::agents::from_agent(&rt.block_on(agent.trace(&req)).unwrap_err());
    assert!(
        !e.node_failed,
        "an answered error is not the node's failure"
    );
    assert!(e.message.contains("matador node install"), "{}", e.message);
}

fn cfg_outside() -> TraceConfig {
    TraceConfig {
        lab_only: false,
        ..cfg()
    }
}
