//! Beyond the router and the nodes: the "internet" the lab team does not
//! build but measures. Each node sits behind its own ISP hop (which also
//! runs the node's upstream resolver, dnsmasq); the hops, the router's
//! uplink and one data centre meet at a core; the data centre's hop leads
//! to the app backends (`matador lab-sim backend`, the virtual lab's).
//!
//! Address plan (198.18.0.0/15 only), /30 links:
//!
//! | link | upper | lower |
//! |---|---|---|
//! | core – router `eth0` | 198.18.1.1 | 198.18.1.2 |
//! | ISP hop *j* – node *j* `eth0` | 198.18.(10+2j).1 | 198.18.(10+2j).2 |
//! | core – ISP hop *j* | 198.18.(11+2j).1 | 198.18.(11+2j).2 |
//! | core – data-centre hop | 198.18.20.1 | 198.18.20.2 |
//! | data-centre hop – data centre | 198.18.21.1 | 198.18.21.2 |
//!
//! App *i* is served at 198.19.7.(10+i); the nodes' upstream resolver is
//! 198.18.97.1 on each ISP hop (each node reaches its own).

use super::{Guard, in_ns, ip, run};
use std::net::Ipv4Addr;

/// The router's uplink address and its gateway (the core).
pub const ROUTER_UPLINK: (&str, &str) = ("198.18.1.2", "198.18.1.1");
/// The nodes' upstream resolver (dnsmasq on their ISP hop).
pub const UPSTREAM_DNS: &str = "198.18.97.1";
/// The name `router.dns_check_name` asks (answered by the upstreams).
pub const CHECK_NAME: &str = "example.org";

/// Node *j*'s public address.
pub fn node_addr(j: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 10 + 2 * j, 2)
}

/// Where app *i*'s backend listens.
pub fn server_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 7, 10 + i)
}

/// The hops a trace from node *j* to a backend must show, in order (each
/// box answers from the interface facing the node), then the backend.
pub fn truth_hops_to_server(j: u8, server: Ipv4Addr) -> Vec<String> {
    vec![
        format!("198.18.{}.1", 10 + 2 * j),
        format!("198.18.{}.1", 11 + 2 * j),
        "198.18.20.2".into(),
        server.to_string(),
    ]
}

/// The namespaces of the world outside the lab.
pub struct Internet {
    /// The core.
    pub core: String,
    /// ISP hop of each node.
    pub isp: Vec<String>,
    /// Data-centre hop.
    pub dc_hop: String,
    /// Data centre (the backends' addresses on its loopback).
    pub dc: String,
}

/// A veth pair `a_if`@`a` (`a_ip`/30) – `b_if`@`b` (`b_ip`/30), both up.
pub fn link(a: &str, a_if: &str, a_ip: &str, b: &str, b_if: &str, b_ip: &str) {
    ip(
        None,
        &[
            "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ],
    );
    for (ns, dev, addr) in [(a, a_if, a_ip), (b, b_if, b_ip)] {
        ip(
            Some(ns),
            &["addr", "add", &format!("{addr}/30"), "dev", dev],
        );
        ip(Some(ns), &["link", "set", dev, "up"]);
    }
}

fn forwarder(ns: &str) {
    // Every probe gets its time-exceeded answer (as the virtual lab's hops).
    run(in_ns(ns, "sysctl").args(["-qw", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"]));
}

/// Builds the core, the ISP hops (with the nodes' upstream resolvers), the
/// data centre and its backends for `apps`; `router` and `nodes` are the
/// namespaces at the edges (their links are made here, their addresses are
/// the ones the provider would give them).
pub fn build(g: &mut Guard, router: &str, nodes: &[String], apps: &[&str]) -> Internet {
    let core = g.netns("core");
    let dc_hop = g.netns("dch1");
    let dc = g.netns("dc");
    forwarder(&core);
    forwarder(&dc_hop);
    link(
        &core,
        "r0",
        ROUTER_UPLINK.1,
        router,
        "eth0",
        ROUTER_UPLINK.0,
    );
    ip(
        Some(router),
        &["route", "add", "default", "via", ROUTER_UPLINK.1],
    );
    let mut isp = Vec::new();
    for (j, node) in nodes.iter().enumerate() {
        let j = j as u8;
        let hop = g.netns(&format!("isp{j}"));
        forwarder(&hop);
        let down = format!("198.18.{}", 10 + 2 * j);
        let up = format!("198.18.{}", 11 + 2 * j);
        link(
            &hop,
            "down0",
            &format!("{down}.1"),
            node,
            "eth0",
            &format!("{down}.2"),
        );
        link(
            &core,
            &format!("n{j}"),
            &format!("{up}.1"),
            &hop,
            "up0",
            &format!("{up}.2"),
        );
        ip(
            Some(node),
            &["route", "add", "default", "via", &format!("{down}.1")],
        );
        ip(
            Some(&hop),
            &["route", "add", "default", "via", &format!("{up}.1")],
        );
        ip(
            Some(&core),
            &[
                "route",
                "add",
                &format!("{down}.0/30"),
                "via",
                &format!("{up}.2"),
            ],
        );
        ip(
            Some(&hop),
            &["addr", "add", &format!("{UPSTREAM_DNS}/32"), "dev", "lo"],
        );
        upstream_resolver(g, &hop, j, apps);
        isp.push(hop);
    }
    link(&core, "dc0", "198.18.20.1", &dc_hop, "up0", "198.18.20.2");
    link(&dc_hop, "down0", "198.18.21.1", &dc, "eth0", "198.18.21.2");
    ip(
        Some(&dc_hop),
        &["route", "add", "default", "via", "198.18.20.1"],
    );
    ip(
        Some(&dc_hop),
        &["route", "add", "198.19.7.0/24", "via", "198.18.21.2"],
    );
    ip(
        Some(&core),
        &["route", "add", "198.19.7.0/24", "via", "198.18.20.2"],
    );
    ip(
        Some(&dc),
        &["route", "add", "default", "via", "198.18.21.1"],
    );
    backends(g, &dc, apps);
    Internet {
        core,
        isp,
        dc_hop,
        dc,
    }
}

/// dnsmasq on an ISP hop: the app hosts → their backends, the check name.
fn upstream_resolver(g: &mut Guard, hop: &str, j: u8, apps: &[&str]) {
    let mut argv: Vec<String> = [
        "dnsmasq",
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--pid-file=",
        "--log-facility=-",
        "--user=root",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(format!("--listen-address={UPSTREAM_DNS}"));
    for (i, app) in apps.iter().enumerate() {
        let def = matador_lab::phone::apps::app_def(app).expect("known app");
        argv.push(format!("--address=/{}/{}", def.host, server_addr(i as u8)));
    }
    argv.push(format!("--address=/{CHECK_NAME}/198.19.7.200"));
    g.spawn(hop, &argv, &format!("dnsmasq-isp{j}.log"), "started");
}

/// The app backends in the data centre.
fn backends(g: &mut Guard, dc: &str, apps: &[&str]) {
    for (i, app) in apps.iter().enumerate() {
        let def = matador_lab::phone::apps::app_def(app).expect("known app");
        let addr = server_addr(i as u8);
        ip(
            Some(dc),
            &["addr", "add", &format!("{addr}/32"), "dev", "lo"],
        );
        let sock = g.dir.join(format!("backend-{app}.sock"));
        let argv = vec![
            env!("CARGO_BIN_EXE_matador").to_string(),
            "lab-sim".into(),
            "backend".into(),
            "--app".into(),
            app.to_string(),
            "--listen".into(),
            format!("{addr}:{}", def.port),
            "--control".into(),
            sock.display().to_string(),
        ];
        g.spawn(dc, &argv, &format!("backend-{app}.log"), "ready");
    }
}
