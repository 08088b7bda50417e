//! The traceroute engine inside the virtual lab (`matador lab up`'s library
//! entry point): from every node namespace to every app backend and to the
//! other nodes, the hops found are exactly the ones the topology's address
//! plan configures, scamper agrees in the same run, the censor hop resets
//! SYNs (reported as an injected RST), Paris traces keep one branch of the
//! equal-cost multipath hop per flow id while MDA finds both, lab mode
//! refuses outside targets, and application vs network path locality comes
//! from the lab mmdb. Needs root; runs in CI.

mod lab_common;

use lab_common::{exe, leftovers, require_root};
use matador::geo::db::GeoDb;
use matador::geo::m49::M49;
use matador::geo::plausibility::Checker;
use matador::net::labdesc::{LabDesc, NodeDesc};
use matador::paths::{Proto, StopReason, Target, Trace, TraceConfig};
use matador_lab::build::{Lab, UpOptions};
use matador_lab::topology::{DcPlan, NodePlan, Plan, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

/// Allowed answering addresses per hop (two at an equal-cost hop).
type Expected = Vec<BTreeSet<IpAddr>>;

fn one(a: Ipv4Addr) -> BTreeSet<IpAddr> {
    BTreeSet::from([IpAddr::V4(a)])
}

/// From a node up to the core: each box answers from the interface facing
/// the node (the reply's route back), i.e. the `up` end of the link below.
fn node_up(np: &NodePlan) -> Expected {
    let mut v = vec![one(np.uplink.up)];
    if let Some(cl) = np.censor_link {
        v.push(one(cl.up));
    }
    v.extend(np.chain.iter().map(|l| one(l.up)));
    v
}

/// From the core down to a node: the `down` end of each link, then the
/// node itself.
fn node_down(np: &NodePlan) -> Expected {
    let mut v: Expected = np.chain.iter().rev().map(|l| one(l.down)).collect();
    if let Some(cl) = np.censor_link {
        v.push(one(cl.down));
    }
    v.push(one(np.uplink.down));
    v
}

/// From the core down to a server of data centre `dp` with `hops` hops: with
/// multipath, either parallel hop, then the top hop answering from the link
/// its multipath route back picked; then the chain; then the server.
fn dc_down(dp: &DcPlan, hops: u8, multipath: bool, server: Ipv4Addr) -> Expected {
    let hc = usize::from(hops);
    let mut v = Vec::new();
    if multipath {
        v.push(BTreeSet::from([
            IpAddr::V4(dp.chain[hc].down),
            IpAddr::V4(dp.chain[hc + 1].down),
        ]));
        v.push(BTreeSet::from([
            IpAddr::V4(dp.mp_down[0].down),
            IpAddr::V4(dp.mp_down[1].down),
        ]));
    } else {
        v.push(one(dp.chain[hc].down));
    }
    v.extend((1..hc).rev().map(|h| one(dp.chain[h].down)));
    v.push(one(server));
    v
}

/// Whether every hop of `t` answered from an allowed address only.
fn matches(t: &Trace, want: &Expected) -> bool {
    t.result.len() == want.len()
        && t.result.iter().zip(want).all(|(h, w)| {
            let a = h.addrs();
            !a.is_empty() && a.iter().all(|x| w.contains(x))
        })
}

fn show(t: &Trace) -> String {
    format!("{:?} stop {:?}", t.hop_addrs(), t.stop_reason)
}

/// One trace destination of a node and its configured hops.
struct Dest {
    addr: IpAddr,
    what: String,
    want: Expected,
    /// The country of the destination (node or data centre).
    country: String,
    /// Crosses the equal-cost hop pair.
    multipath: bool,
}

/// Runs scamper inside a lab host through its lab.json exec prefix.
fn scamper(host: &NodeDesc, method: &str, targets: &[IpAddr], dir: &std::path::Path) -> Vec<Trace> {
    let list = dir.join(format!("{}-targets.txt", host.name));
    let text: String = targets.iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(&list, text).unwrap();
    let (prog, pre) = host.exec.split_first().expect("exec prefix of a lab host");
    let out = Command::new(prog)
        .args(pre)
        .args(["scamper", "-O", "json", "-p", "500", "-c"])
        .arg(format!("trace -P {method} -q 3 -Q -w 1"))
        .arg("-f")
        .arg(&list)
        .output()
        .expect("scamper runs (Debian package scamper, scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "scamper in {}: {}",
        host.name,
        String::from_utf8_lossy(&out.stderr)
    );
    matador::paths::scamper::parse(
        std::path::Path::new("scamper stdout"),
        &String::from_utf8_lossy(&out.stdout),
    )
    .unwrap()
}

#[test]
fn lab_traces_match_topology_scamper_censor_multipath_locality() {
    let t0 = Instant::now();
    require_root();
    assert!(
        matador::net::cmd::which("scamper").is_some(),
        "scamper missing: apt-get install scamper (scripts/install-deps.sh)"
    );
    let mut topo = Topology::load(&Topology::demo_path()).unwrap();
    let plan = Plan::new(&topo).unwrap();
    // The censor also resets SYNs to the first backend of the first
    // single-path data centre (an address it really forwards to).
    let (rst_dc, rst_app, rst_addr) = topo
        .datacenters
        .iter()
        .zip(&plan.dcs)
        .filter(|(d, _)| !d.multipath)
        .find_map(|(d, p)| {
            p.apps
                .iter()
                .next()
                .map(|(a, ip)| (d.name.clone(), a.clone(), *ip))
        })
        .expect("a single-path data centre hosting an app");
    let censor = topo.censor.as_mut().expect("the demo lab has a censor");
    censor.rst_syn_to.push(rst_addr);
    let censored_node = censor.node.clone();
    let state = tempfile::tempdir().unwrap();
    // `Lab` tears everything down on drop, also when an assertion panics.
    let lab = Lab::up(UpOptions {
        topology: topo.clone(),
        state_dir: state.path().to_path_buf(),
        exe: exe(),
        phones: false,
        ssh: false,
        cancel: None,
    })
    .unwrap();
    let id = lab.id().to_string();
    eprintln!("lab {id} up in {:?}", lab.up_time);
    let d = LabDesc::read(&lab.desc_path).unwrap();
    let work = tempfile::tempdir().unwrap();

    // Destinations per node, from lab.json's app → address map and node
    // list; expected hops from the topology's address plan.
    let nodes: Vec<&NodeDesc> = d.nodes.iter().filter(|n| n.kind == "node").collect();
    assert_eq!(nodes.len(), topo.nodes.len());
    let mut dests: BTreeMap<String, Vec<Dest>> = BTreeMap::new();
    for (i, n) in topo.nodes.iter().enumerate() {
        let np = &plan.nodes[i];
        let desc = d.node(&n.name).unwrap();
        assert_eq!(desc.addr, np.uplink.down.to_string());
        let mut v = Vec::new();
        for (k, dc) in topo.datacenters.iter().enumerate() {
            let dp = &plan.dcs[k];
            let server = d.node(&dc.name).unwrap();
            for (app, addr) in &server.apps {
                assert_eq!(addr, &dp.apps[app].to_string(), "lab.json {app}");
                let mut want = node_up(np);
                want.extend(dc_down(dp, dc.hops, dc.multipath, dp.apps[app]));
                v.push(Dest {
                    addr: addr.parse().unwrap(),
                    what: format!("{} → {app} ({})", n.name, dc.name),
                    want,
                    country: dc.country.clone(),
                    multipath: dc.multipath,
                });
            }
        }
        for (j, o) in topo.nodes.iter().enumerate() {
            if j != i {
                let mut want = node_up(np);
                want.extend(node_down(&plan.nodes[j]));
                v.push(Dest {
                    addr: IpAddr::V4(plan.nodes[j].uplink.down),
                    what: format!("{} → node {}", n.name, o.name),
                    want,
                    country: o.country.clone(),
                    multipath: false,
                });
            }
        }
        dests.insert(n.name.clone(), v);
    }
    let apps_total: usize = d.nodes.iter().map(|n| n.apps.len()).sum();
    assert_eq!(apps_total, 7, "the demo hosts seven apps");

    let cfg = |n: &NodeDesc| TraceConfig {
        netns: n.netns.clone(),
        wait: Duration::from_secs(1),
        pps: 500,
        probes: 3,
        max_ttl: 16,
        lab_only: true,
        ..TraceConfig::default()
    };

    // Hops = configuration, matador and scamper, ICMP and TCP, same run.
    let (mut ours_total, mut scamper_total) = (Duration::ZERO, Duration::ZERO);
    let mut traces_checked = 0;
    let mut app_traces: BTreeMap<(String, IpAddr), Trace> = BTreeMap::new();
    let mut direct_traces: BTreeMap<(String, IpAddr), Trace> = BTreeMap::new();
    for n in &nodes {
        let ds = &dests[&n.name];
        let addrs: Vec<IpAddr> = ds.iter().map(|x| x.addr).collect();
        for (proto, method) in [(Proto::Icmp, "icmp-paris"), (Proto::Tcp, "tcp -d 443")] {
            let targets: Vec<Target> = addrs
                .iter()
                .map(|a| Target {
                    proto: Some(proto),
                    ..Target::addr(*a)
                })
                .collect();
            let t = Instant::now();
            let ours = matador::paths::trace(&cfg(n), &targets).unwrap();
            let ours_time = t.elapsed();
            let t = Instant::now();
            let sc = scamper(n, method, &addrs, work.path());
            let sc_time = t.elapsed();
            ours_total += ours_time;
            scamper_total += sc_time;
            eprintln!(
                "{} {proto:?}: {} targets, matador {:.2} s, scamper {:.2} s",
                n.name,
                addrs.len(),
                ours_time.as_secs_f64(),
                sc_time.as_secs_f64()
            );
            assert_eq!(ours.len(), ds.len());
            assert_eq!(sc.len(), ds.len(), "scamper traced every target");
            for dst in ds {
                let o = ours.iter().find(|t| t.dst_addr == dst.addr).unwrap();
                let s = sc.iter().find(|t| t.dst_addr == dst.addr).unwrap();
                let censored = proto == Proto::Tcp
                    && n.name == censored_node
                    && dst.addr == IpAddr::V4(rst_addr);
                let want: Expected = if censored {
                    // The censor (hop 1 from its node) answers the SYN.
                    vec![dst.want[0].clone(), BTreeSet::from([dst.addr])]
                } else {
                    dst.want.clone()
                };
                assert!(
                    matches(o, &want),
                    "{proto:?} {}: matador {} want {want:?}",
                    dst.what,
                    show(o)
                );
                assert!(
                    matches(s, &want),
                    "{proto:?} {}: scamper {} want {want:?}",
                    dst.what,
                    show(s)
                );
                if !dst.multipath {
                    // Single path: identical hop lists, star for star.
                    assert_eq!(o.hop_addrs(), s.hop_addrs(), "{proto:?} {}", dst.what);
                }
                let expect_stop = if censored {
                    StopReason::InjectedRst
                } else {
                    StopReason::Reached
                };
                assert_eq!(o.stop_reason, expect_stop, "{proto:?} {}", dst.what);
                traces_checked += 2;
                let key = (n.name.clone(), dst.addr);
                if proto == Proto::Tcp && dst.what.contains(" → node ") {
                    continue;
                }
                if proto == Proto::Tcp {
                    app_traces.insert(key, o.clone());
                } else if dst.what.contains(" → node ") {
                    direct_traces.insert(key, o.clone());
                }
            }
        }
    }
    let ratio = ours_total.as_secs_f64() / scamper_total.as_secs_f64();
    eprintln!(
        "{traces_checked} traces (matador + scamper) equal to the topology; total matador {:.2} s, scamper {:.2} s, ratio matador/scamper {ratio:.2}",
        ours_total.as_secs_f64(),
        scamper_total.as_secs_f64()
    );

    // The censor: a hop on every trace from its node, and a TCP trace to
    // the reset address ends with the injected RST, not the server.
    let cn = d.node(&censored_node).unwrap();
    let cnp = &plan.nodes[topo
        .nodes
        .iter()
        .position(|n| n.name == censored_node)
        .unwrap()];
    let censor_addr = IpAddr::V4(cnp.uplink.up);
    assert!(cnp.censor_link.is_some());
    let t = &app_traces[&(censored_node.clone(), IpAddr::V4(rst_addr))];
    assert_eq!(t.stop_reason, StopReason::InjectedRst, "{}", show(t));
    assert_eq!(t.result[0].addrs(), vec![censor_addr]);
    let last = t.result[1].result[0].answer().expect("RST answer");
    assert_eq!(last.injected, Some(true));
    assert_eq!(last.flags.as_deref(), Some("RA"));
    eprintln!(
        "censor {censor_addr} resets SYNs to {rst_app} ({rst_dc}, {rst_addr}): {}",
        show(t)
    );
    // The same target over ICMP passes the censor and reaches the server.
    let icmp = matador::paths::trace(
        &cfg(cn),
        &[Target {
            proto: Some(Proto::Icmp),
            ..Target::addr(IpAddr::V4(rst_addr))
        }],
    )
    .unwrap();
    assert_eq!(icmp[0].stop_reason, StopReason::Reached);
    assert_eq!(icmp[0].result[0].addrs(), vec![censor_addr]);

    // Multipath: Paris ids keep one branch each, repeatably; MDA finds both.
    let (mp_k, mp_dc) = topo
        .datacenters
        .iter()
        .enumerate()
        .find(|(_, dc)| dc.multipath && !dc.apps.is_empty())
        .expect("a multipath data centre");
    let mp_addr = IpAddr::V4(*plan.dcs[mp_k].apps.values().next().unwrap());
    let src = nodes.iter().find(|n| n.name != censored_node).unwrap();
    let sp = &plan.nodes[topo.nodes.iter().position(|n| n.name == src.name).unwrap()];
    let mp_ttl = node_up(sp).len() + 1;
    let branches: BTreeSet<IpAddr> =
        dc_down(&plan.dcs[mp_k], mp_dc.hops, true, Ipv4Addr::UNSPECIFIED)[0].clone();
    for proto in [Proto::Udp, Proto::Tcp, Proto::Icmp] {
        let targets: Vec<Target> = (1..=12u16)
            .map(|id| Target {
                proto: Some(proto),
                paris_id: Some(id),
                ..Target::addr(mp_addr)
            })
            .collect();
        // The servers' namespaces keep Linux's default ICMP rate limit, so
        // UDP probes reaching a server mostly go unanswered (port unreachable
        // limited to ~1/s): UDP flows are traced up to the hop after the split.
        let c = TraceConfig {
            probes: 6,
            max_ttl: if proto == Proto::Udp {
                mp_ttl as u8 + 1
            } else {
                16
            },
            ..cfg(src)
        };
        let first = matador::paths::trace(&c, &targets).unwrap();
        let again = matador::paths::trace(&c, &targets).unwrap();
        let mut seen = BTreeSet::new();
        for (a, b) in first.iter().zip(&again) {
            let h = a.result[mp_ttl - 1].addrs();
            assert_eq!(h.len(), 1, "{proto:?} one branch per flow id: {}", show(a));
            assert_eq!(
                b.result[mp_ttl - 1].addrs(),
                h,
                "{proto:?} same id, same branch"
            );
            assert!(branches.contains(&h[0]));
            seen.insert(h[0]);
            let stop = if proto == Proto::Udp {
                StopReason::MaxTtl
            } else {
                StopReason::Reached
            };
            assert_eq!(a.stop_reason, stop, "{proto:?} {}", show(a));
        }
        eprintln!(
            "{proto:?}: 12 Paris ids over {} branch(es) at hop {mp_ttl} (at {:.1} s)",
            seen.len(),
            t0.elapsed().as_secs_f64()
        );
        if proto != Proto::Icmp {
            // L4 hashing: ports differ per id, so 12 ids use both branches.
            assert_eq!(
                seen, branches,
                "{proto:?}: 12 flow ids should use both branches"
            );
        }
    }
    let m = matador::paths::mda::enumerate(
        &cfg(src),
        &Target {
            proto: Some(Proto::Tcp),
            ..Target::addr(mp_addr)
        },
        64,
    )
    .unwrap();
    assert!(m.complete, "{:?}", m.hops);
    let got: BTreeSet<IpAddr> = m.hops[&(mp_ttl as u8)].iter().copied().collect();
    assert_eq!(got, branches, "MDA finds both parallel hops");
    for (ttl, ifs) in &m.hops {
        if usize::from(*ttl) < mp_ttl {
            assert_eq!(
                ifs.len(),
                1,
                "single interface before the split: {:?}",
                m.hops
            );
        }
    }
    eprintln!(
        "MDA {} → {mp_addr}: {} flows, hop {mp_ttl} {:?} (at {:.1} s)",
        src.name,
        m.flows,
        got,
        t0.elapsed().as_secs_f64()
    );

    // Lab mode refuses outside targets before sending anything.
    for outside in ["192.0.2.1", "8.8.8.8", "10.1.2.3", "2001:db8::1", "fe80::1"] {
        let r = matador::paths::trace(&cfg(src), &[Target::addr(outside.parse().unwrap())]);
        let e = r.expect_err(outside).to_string();
        assert!(e.contains(outside), "{e}");
    }
    // fd00::/8 is lab space (not configured in the lab yet: any error but refusal).
    if let Err(e) = matador::paths::trace(
        &TraceConfig {
            max_ttl: 2,
            wait: Duration::from_millis(200),
            ..cfg(src)
        },
        &[Target::addr("fd00::1".parse().unwrap())],
    ) {
        assert!(!e.to_string().contains("refused"), "{e}");
    }

    // Locality per measurement (node, app): application path (TCP to the
    // backend) vs direct network path (ICMP to the other node), via the lab mmdb.
    let db = GeoDb::open(d.mmdb.as_ref().expect("lab mmdb"), None).unwrap();
    let checker = Checker::shipped();
    let m49 = M49::shipped();
    let mut rows = 0;
    for n in &nodes {
        let ncountry = &topo
            .nodes
            .iter()
            .find(|x| x.name == n.name)
            .unwrap()
            .country;
        let other = dests[&n.name]
            .iter()
            .find(|x| x.what.contains(" → node ") && &x.country != ncountry)
            .or_else(|| dests[&n.name].iter().find(|x| x.what.contains(" → node ")))
            .unwrap();
        let mut direct = direct_traces[&(n.name.clone(), other.addr)].clone();
        matador::paths::geo::annotate(&mut direct, &db, &checker, None).unwrap();
        for dst in dests[&n.name]
            .iter()
            .filter(|x| !x.what.contains(" → node "))
        {
            let mut app = app_traces[&(n.name.clone(), dst.addr)].clone();
            matador::paths::geo::annotate(&mut app, &db, &checker, None).unwrap();
            let c = matador::paths::geo::compare(&app, &direct, &m49);
            let mut want_app = vec![ncountry.clone()];
            if app.stop_reason == StopReason::Reached && &dst.country != ncountry {
                want_app.push(dst.country.clone());
            }
            let mut want_direct = vec![ncountry.clone()];
            if &other.country != ncountry {
                want_direct.push(other.country.clone());
            }
            assert_eq!(c.application.countries, want_app, "{}", dst.what);
            assert_eq!(c.direct.countries, want_direct, "{}", other.what);
            assert_eq!(c.application.unknown_hops, 0);
            let extra: Vec<String> = want_app
                .iter()
                .filter(|x| !want_direct.contains(x))
                .cloned()
                .collect();
            assert_eq!(c.extra_countries, extra, "{}", dst.what);
            eprintln!(
                "locality {}: application {:?} {:?} / direct ({}) {:?} {:?}; leaves direct regions: {}",
                dst.what,
                c.application.countries,
                c.application.regions,
                other.what,
                c.direct.countries,
                c.direct.regions,
                c.application_leaves_direct_regions
            );
            rows += 1;
        }
    }
    assert_eq!(rows, nodes.len() * apps_total);

    eprintln!("checks done at {:.1} s", t0.elapsed().as_secs_f64());
    drop(lab);
    let left = leftovers(&id);
    assert!(left.is_empty(), "left behind: {left:?}");
    eprintln!("total {:.1} s", t0.elapsed().as_secs_f64());
}
