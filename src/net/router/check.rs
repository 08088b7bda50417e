//! `matador router check`: verifies a running router against its
//! description and explains every failure with a fix.
//!
//! Checked, in order: interfaces up (WLAN, every tunnel), forwarding on,
//! phones present (dnsmasq lease per MAC where DHCP is used, and an answer
//! to ping), each phone's `ip rule`, each node's table (tunnel default route
//! plus the `unreachable` fallback, nothing else), the tunnels (handshake
//! age, ping of the node's inner address), DNS answered through the node,
//! and leaks: the route the kernel picks for a phone must be its tunnel,
//! and with the tunnel gone the phone's table must end in `unreachable`
//! (so nothing can fall through to the router's own uplink).

use super::{PhonePlan, RealLab, RouterSite, TunnelPlan};
use crate::net::cmd::Cmd;
use crate::net::health;
use serde::Serialize;
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, TYPE};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As expected.
    Ok,
    /// Works, but a second line of defence or a detail is missing.
    Warn,
    /// Broken: campaigns must not run.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// What was checked (e.g. `rule lab-a`).
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (failures and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckResult {
    fn ok(name: String, detail: String) -> Self {
        CheckResult {
            name,
            status: Status::Ok,
            detail,
            fix: None,
        }
    }
    fn bad(status: Status, name: String, detail: String, fix: String) -> Self {
        CheckResult {
            name,
            status,
            detail,
            fix: Some(fix),
        }
    }
}

/// The results in the order the checks ran.
struct Report(Vec<CheckResult>);

impl Report {
    fn ok(&mut self, name: String, detail: String) {
        self.0.push(CheckResult::ok(name, detail));
    }
    fn bad(&mut self, status: Status, name: String, detail: String, fix: String) {
        self.0.push(CheckResult::bad(status, name, detail, fix));
    }
}

fn ip(ns: Option<&str>) -> Cmd {
    match ns {
        Some(n) => Cmd::new("ip").args(["-n", n]),
        None => Cmd::new("ip"),
    }
}

fn run(c: Cmd) -> String {
    match c.output() {
        Ok((_, out, err)) => out + &err,
        Err(e) => e.to_string(),
    }
}

/// Whether `ip -o link show dev IF` says the link exists and is up.
fn link_state(ns: Option<&str>, ifname: &str) -> Option<bool> {
    let (ok, out, _) = ip(ns)
        .args(["-o", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    if !ok {
        return None;
    }
    let flags = out.split('<').nth(1)?.split('>').next()?;
    Some(flags.split(',').any(|f| f == "UP"))
}

/// One DNS query for `name` to `resolver` from namespace `ns`, with the
/// source address `bind` (`None`: chosen by the kernel).
pub fn ask(
    ns: Option<&str>,
    bind: Option<Ipv4Addr>,
    resolver: Ipv4Addr,
    name: &str,
) -> Result<Vec<IpAddr>, String> {
    let id = (std::process::id() as u16) ^ 0x4d54;
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        Name::new(name).map_err(|e| e.to_string())?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    let bytes = q.build_bytes_vec().map_err(|e| e.to_string())?;
    let r = crate::net::netns::run_in(ns, move || {
        let s = std::net::UdpSocket::bind(SocketAddr::from((
            bind.unwrap_or(Ipv4Addr::UNSPECIFIED),
            0,
        )))?;
        s.set_read_timeout(Some(Duration::from_millis(800)))?;
        s.connect(SocketAddr::from((resolver, 53)))?;
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            s.send(&bytes)?;
            match s.recv(&mut buf) {
                Ok(n) => {
                    let Ok(p) = Packet::parse(&buf[..n]) else {
                        continue;
                    };
                    if p.id() != id {
                        continue;
                    }
                    return Ok(p
                        .answers
                        .iter()
                        .filter_map(|rr| match &rr.rdata {
                            RData::A(a) => Some(IpAddr::from(Ipv4Addr::from(a.address))),
                            _ => None,
                        })
                        .collect());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer within 2.4 s",
        ))
    });
    r.map_err(|e| e.to_string())
}

/// Bytes received through a WireGuard interface (all peers).
fn rx_bytes(ns: Option<&str>, ifname: &str) -> u64 {
    let out = run(Cmd::new("wg").netns(ns).args(["show", ifname, "transfer"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Parses `ip -o route show table T` lines into (kind, dev, metric).
fn table_routes(out: &str) -> Vec<(String, Option<String>, u32)> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1))
                    .map(|s| s.to_string())
            };
            let kind = if w.first() == Some(&"unreachable")
                || w.first() == Some(&"prohibit")
                || w.first() == Some(&"blackhole")
            {
                format!("{} {}", w[0], w.get(1).copied().unwrap_or(""))
            } else {
                w.first().copied().unwrap_or("").to_string()
            };
            let metric = after("metric").and_then(|m| m.parse().ok()).unwrap_or(0);
            (kind, after("dev"), metric)
        })
        .collect()
}

/// An address outside every lab prefix, used only in `ip route get` (no
/// packet is sent): TEST-NET-3.
const PROBE_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// What every check reads: the lab, where its router runs and the plans
/// derived from them.
struct Ctx<'a> {
    lab: &'a RealLab,
    site: &'a RouterSite,
    /// The router's namespace (`None`: this machine).
    ns: Option<&'a str>,
    tunnels: Vec<TunnelPlan>,
    phones: Vec<PhonePlan>,
    /// The WLAN interface.
    w: &'a str,
}

impl<'a> Ctx<'a> {
    fn new(lab: &'a RealLab, site: &'a RouterSite) -> Self {
        Ctx {
            lab,
            site,
            ns: site.netns.as_deref(),
            tunnels: lab.tunnels(),
            phones: lab.phone_plans(),
            w: &lab.router.wlan_if,
        }
    }

    /// `cmd` as the operator types it to run it in the router's namespace.
    fn in_ns(&self, cmd: &str) -> String {
        in_ns(self.ns, cmd)
    }
}

/// `cmd` prefixed with `ip netns exec NS` when the router runs in one.
fn in_ns(ns: Option<&str>, cmd: &str) -> String {
    match ns {
        Some(n) => format!("ip netns exec {n} {cmd}"),
        None => cmd.to_string(),
    }
}

/// Runs every check; the router is healthy when no result is [`Status::Fail`].
pub fn check(lab: &RealLab, site: &RouterSite) -> Vec<CheckResult> {
    let cx = Ctx::new(lab, site);
    let mut r = Report(Vec::new());
    check_interfaces(&cx, &mut r);
    check_forwarding(&cx, &mut r);
    check_phones(&cx, &mut r);
    if site.capture {
        check_capture(&cx, &mut r);
    }
    check_rules(&cx, &mut r);
    check_tables(&cx, &mut r);
    check_tunnels(&cx, &mut r);
    for i in 0..lab.phones.len().min(cx.phones.len()) {
        check_leaks(&cx, &mut r, i);
        check_dns(&cx, &mut r, i);
    }
    check_catch_all(&cx, &mut r);
    check_firewall(&cx, &mut r);
    r.0
}

/// The WLAN interface and every tunnel interface exist and are up.
fn check_interfaces(cx: &Ctx, r: &mut Report) {
    let w = cx.w;
    match link_state(cx.ns, w) {
        Some(true) => r.ok(format!("interface {w}"), "up".into()),
        Some(false) => r.bad(
            Status::Fail,
            format!("interface {w}"),
            "WLAN interface is down".into(),
            format!(
                "start the access point: `hostapd -B hostapd.conf` (it brings {w} up); check `{}`",
                cx.in_ns(&format!("ip link show {w}"))
            ),
        ),
        None => r.bad(
            Status::Fail,
            format!("interface {w}"),
            "WLAN interface does not exist".into(),
            "check router.wlan_if against `iw dev` (the AP-capable card) and that its driver is loaded".into(),
        ),
    }
    for (t, ifname) in cx.tunnels.iter().zip(&cx.site.tunnel_ifs) {
        match link_state(cx.ns, ifname) {
            Some(true) => r.ok(
                format!("interface {ifname}"),
                format!("tunnel to {} up", t.node),
            ),
            Some(false) => r.bad(
                Status::Fail,
                format!("interface {ifname}"),
                format!(
                    "tunnel to {} is down (its routes are gone: phones of {} get unreachable)",
                    t.node, t.node
                ),
                format!(
                    "`{}`, then run router-up.sh again",
                    cx.in_ns(&format!("ip link set {ifname} up"))
                ),
            ),
            None => r.bad(
                Status::Fail,
                format!("interface {ifname}"),
                format!("tunnel to {} does not exist", t.node),
                "run router-up.sh (is wireguard-go for it still running?)".into(),
            ),
        }
    }
}

/// IPv4 forwarding is on.
fn check_forwarding(cx: &Ctx, r: &mut Report) {
    let fwd = run(Cmd::new("sysctl")
        .netns(cx.ns)
        .args(["-n", "net.ipv4.ip_forward"]));
    if fwd.trim() == "1" {
        r.ok("forwarding".into(), "net.ipv4.ip_forward = 1".into());
    } else {
        r.bad(
            Status::Fail,
            "forwarding".into(),
            format!("net.ipv4.ip_forward = {}", fwd.trim()),
            "`sysctl -p sysctl.conf` (generated by router config)".into(),
        );
    }
}

/// Phones on the WLAN: their DHCP lease (where DHCP is used) and an answer
/// to ping.
fn check_phones(cx: &Ctx, r: &mut Report) {
    let lab = cx.lab;
    let leases = cx
        .site
        .leases
        .as_ref()
        .map(|p| (p, std::fs::read_to_string(p)));
    for (p, plan) in lab.phones.iter().zip(&cx.phones) {
        if let Some((path, text)) = &leases {
            let mac = super::parse_mac(&p.mac).unwrap_or_default();
            let name = format!("lease {}", p.name);
            match text {
                Ok(t) => {
                    r.0.push(judge_lease(name, t, &mac, p.addr, path, &lab.router.ssid))
                }
                Err(e) => r.bad(
                    Status::Fail,
                    name,
                    format!("cannot read {}: {e}", path.display()),
                    "start dnsmasq with the generated dnsmasq.conf".into(),
                ),
            }
        }
        let (ok, _, _) = Cmd::new("ping")
            .netns(cx.ns)
            .args(["-n", "-c", "1", "-W", "1"])
            .arg(p.addr.to_string())
            .timeout(Duration::from_secs(3))
            .output()
            .unwrap_or((false, String::new(), String::new()));
        if ok {
            r.ok(format!("phone {}", p.name), format!("{} answers", p.addr));
        } else {
            r.bad(
                Status::Fail,
                format!("phone {}", p.name),
                format!("{} does not answer ping on {}", plan.addr, cx.w),
                format!(
                    "wake the phone, check Wi-Fi is on and connected to {} (`matador devices prepare`)",
                    lab.router.ssid
                ),
            );
        }
    }
}

/// The dnsmasq lease of the phone with `mac` in the lease file's `text`
/// must give it `addr`.
fn judge_lease(
    name: String,
    text: &str,
    mac: &str,
    addr: Ipv4Addr,
    path: &std::path::Path,
    ssid: &str,
) -> CheckResult {
    let lease = text.lines().find(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
    });
    match lease {
        Some(l) if l.split_whitespace().nth(2) == Some(addr.to_string().as_str()) => {
            CheckResult::ok(name, format!("{mac} → {addr}"))
        }
        Some(l) => CheckResult::bad(
            Status::Fail,
            name,
            format!("lease for {mac} is not {addr}: {l}"),
            "restart dnsmasq with the generated dnsmasq.conf (static lease per MAC)".into(),
        ),
        None => CheckResult::bad(
            Status::Fail,
            name,
            format!("no DHCP lease for {mac} in {}", path.display()),
            format!(
                "join {ssid} on the phone with MAC randomisation off for this network (Wi-Fi → {ssid} → Privacy → device MAC) and check that its MAC is {mac}"
            ),
        ),
    }
}

/// Capture interfaces (generated router): `c-<phone>` up and mirrored.
fn check_capture(cx: &Ctx, r: &mut Report) {
    let w = cx.w;
    let ing = run(Cmd::new("tc")
        .netns(cx.ns)
        .args(["filter", "show", "dev", w, "ingress"]));
    let eg = run(Cmd::new("tc")
        .netns(cx.ns)
        .args(["filter", "show", "dev", w, "egress"]));
    for p in &cx.lab.phones {
        let c = super::generate::capture_if(&p.name);
        let tag = format!("Mirror to device {c})");
        let name = format!("capture {}", p.name);
        match link_state(cx.ns, &c) {
            Some(true) if ing.contains(&tag) && eg.contains(&tag) => {
                r.ok(name, format!("{c} mirrors {} both ways", p.addr))
            }
            Some(true) => r.bad(
                Status::Fail,
                name,
                format!(
                    "{c} exists but {w} does not mirror {} to it (tc filters gone?)",
                    p.addr
                ),
                "run router-up.sh again (it recreates the tc filters)".into(),
            ),
            _ => r.bad(
                Status::Fail,
                name,
                format!(
                    "capture interface {c} is missing or down: the campaign cannot capture {}",
                    p.name
                ),
                "run router-up.sh".into(),
            ),
        }
    }
}

/// Each phone's `ip rule` sends its traffic to its node's table.
fn check_rules(cx: &Ctx, r: &mut Report) {
    for (p, plan) in cx.lab.phones.iter().zip(&cx.phones) {
        let t = &cx.tunnels[plan.node];
        let out = run(ip(cx.ns)
            .args(["-4", "rule", "show", "priority"])
            .arg(plan.priority.to_string()));
        let want = format!("from {} lookup {}", p.addr, t.table);
        if out.contains(&want) {
            r.ok(
                format!("rule {}", p.name),
                format!("priority {}: {want}", plan.priority),
            );
        } else {
            r.bad(
                Status::Fail,
                format!("rule {}", p.name),
                format!(
                    "priority {}: expected `{want}`, found `{}`",
                    plan.priority,
                    out.trim()
                ),
                format!(
                    "`{}` (or run router-up.sh)",
                    cx.in_ns(&format!("ip rule add {want} priority {}", plan.priority))
                ),
            );
        }
    }
}

/// Each node's table: the tunnel default route plus the `unreachable`
/// fallback, nothing else.
fn check_tables(cx: &Ctx, r: &mut Report) {
    for (t, ifname) in cx.tunnels.iter().zip(&cx.site.tunnel_ifs) {
        let out = run(ip(cx.ns)
            .args(["-4", "-o", "route", "show", "table"])
            .arg(t.table.to_string()));
        r.0.push(judge_table(&table_routes(&out), t, ifname, cx.ns));
    }
}

/// Judges a node's table (`routes` as [`table_routes`] parses them).
fn judge_table(
    routes: &[(String, Option<String>, u32)],
    t: &TunnelPlan,
    ifname: &str,
    ns: Option<&str>,
) -> CheckResult {
    let tun = routes
        .iter()
        .find(|(k, d, _)| k == "default" && d.as_deref() == Some(ifname));
    let unreach = routes.iter().find(|(k, _, _)| k == "unreachable default");
    let foreign: Vec<_> = routes
        .iter()
        .filter(|(k, d, _)| !k.starts_with("unreachable") && d.as_deref() != Some(ifname))
        .collect();
    let name = format!("table {} ({})", t.table, t.node);
    if !foreign.is_empty() {
        return CheckResult::bad(
            Status::Fail,
            name,
            format!(
                "routes not through {ifname}: {foreign:?} — traffic can leak around the tunnel"
            ),
            format!(
                "`{}` and run router-up.sh",
                in_ns(ns, &format!("ip route flush table {}", t.table))
            ),
        );
    }
    match (tun, unreach) {
        (_, None) => CheckResult::bad(
            Status::Fail,
            name,
            "no `unreachable default` fallback: if the tunnel dies the phones' traffic falls through to the main table (the router's uplink)".into(),
            format!("`{}`", in_ns(ns, &format!("ip route replace unreachable default table {} metric 4096", t.table))),
        ),
        (Some(a), Some(b)) if b.2 <= a.2 => CheckResult::bad(
            Status::Fail,
            name,
            format!("the unreachable fallback (metric {}) is not worse than the tunnel route (metric {})", b.2, a.2),
            format!("`{}`", in_ns(ns, &format!("ip route replace unreachable default table {} metric 4096", t.table))),
        ),
        (None, Some(_)) => CheckResult::bad(
            Status::Fail,
            name,
            format!("no default route through {ifname}: phones of {} get unreachable", t.node),
            format!("`{}` (the route disappears when the tunnel goes down)", in_ns(ns, &format!("ip route replace default dev {ifname} table {} metric 10", t.table))),
        ),
        (Some(_), Some(_)) => CheckResult::ok(name, format!("default dev {ifname}, unreachable fallback")),
    }
}

/// The tunnels: handshake age and a ping of each node's inner address.
fn check_tunnels(cx: &Ctx, r: &mut Report) {
    for (t, ifname) in cx.tunnels.iter().zip(&cx.site.tunnel_ifs) {
        let c = health::TunnelCheck {
            node: t.node.clone(),
            router_ns: cx.site.netns.clone(),
            ifname: ifname.clone(),
            peer: IpAddr::V4(t.node_addr),
        };
        match health::check_tunnel(&c) {
            Ok(h) => r.ok(
                format!("tunnel {}", t.node),
                format!("handshake {} s ago, ping {:.2} ms", h.handshake_age_s, h.rtt_ms),
            ),
            Err(e) => r.bad(
                Status::Fail,
                format!("tunnel {}", t.node),
                e.to_string(),
                format!(
                    "`matador node check --node {}` (wireguard running, UDP port open, same keys as wg/router-{}.conf), and the router's uplink",
                    cx.lab.nodes.iter().find(|n| n.name == t.node).map(|n| format!("{}@{}", n.user, n.host)).unwrap_or_default(),
                    t.node
                ),
            ),
        }
    }
}

/// Leaks of phone `i`: the route the kernel picks for it (to the resolver
/// and to an address outside the lab) must be its tunnel.
fn check_leaks(cx: &Ctx, r: &mut Report, i: usize) {
    let (p, plan) = (&cx.lab.phones[i], &cx.phones[i]);
    let t = &cx.tunnels[plan.node];
    let ifname = &cx.site.tunnel_ifs[plan.node];
    for dst in [cx.lab.router.resolver, PROBE_DST] {
        let got = ip(cx.ns)
            .args(["-4", "route", "get"])
            .arg(dst.to_string())
            .arg("from")
            .arg(p.addr.to_string())
            .args(["iif", cx.w])
            .output()
            .unwrap_or((false, String::new(), "ip failed".into()));
        let name = format!("leak {} → {dst}", p.name);
        let rule = format!(
            "ip rule add from {} lookup {} priority {}",
            p.addr, t.table, plan.priority
        );
        r.0.push(judge_route(name, got, ifname, &cx.in_ns(&rule)));
    }
}

/// Judges `ip route get` (its success, stdout and stderr) for a phone whose
/// tunnel is `ifname`; `restore` is the command that restores its rule.
fn judge_route(
    name: String,
    got: (bool, String, String),
    ifname: &str,
    restore: &str,
) -> CheckResult {
    let (ok, out, err) = got;
    let words: Vec<&str> = out.split_whitespace().collect();
    let dev = words
        .iter()
        .position(|x| *x == "dev")
        .and_then(|i| words.get(i + 1))
        .map(|s| s.to_string());
    if ok && dev.as_deref() == Some(ifname) {
        CheckResult::ok(name, format!("via {ifname}"))
    } else if !ok && (err.contains("unreachable") || err.contains("No route to host")) {
        CheckResult::bad(
            Status::Fail,
            name,
            format!("unreachable (tunnel {ifname} down?): no leak, but no traffic either"),
            format!("bring tunnel {ifname} up (router-up.sh)"),
        )
    } else {
        CheckResult::bad(
            Status::Fail,
            name,
            format!(
                "LEAK: routed via {} instead of tunnel {ifname}: {}",
                dev.as_deref().unwrap_or("?"),
                (out + &err).trim()
            ),
            format!("restore the phone's rule: `{restore}`"),
        )
    }
}

/// DNS of phone `i` answered through its node: asked from the phone's side
/// where we can (virtual lab), else from the router's inner address, whose
/// probe rule sends it into the same tunnel.
fn check_dns(cx: &Ctx, r: &mut Report, i: usize) {
    let (p, plan) = (&cx.lab.phones[i], &cx.phones[i]);
    let t = &cx.tunnels[plan.node];
    let ifname = &cx.site.tunnel_ifs[plan.node];
    let phone_ns = cx.site.phone_netns.get(i).cloned().flatten();
    let (from_ns, bind, how) = match &phone_ns {
        Some(pn) => (Some(pn.clone()), None, format!("from {}", p.name)),
        None => (
            cx.site.netns.clone(),
            Some(t.router_addr),
            format!("from {}", t.router_addr),
        ),
    };
    let rx0 = rx_bytes(cx.ns, ifname);
    let answer = ask(
        from_ns.as_deref(),
        bind,
        cx.lab.router.resolver,
        &cx.site.dns_name,
    );
    let rx1 = rx_bytes(cx.ns, ifname);
    let asked = DnsAsked {
        phone: &p.name,
        node: &t.node,
        ifname,
        resolver: cx.lab.router.resolver,
        dns_name: &cx.site.dns_name,
        how: &how,
    };
    r.0.push(judge_dns(&asked, answer, rx1 > rx0));
}

/// One DNS question of [`check_dns`], for [`judge_dns`].
struct DnsAsked<'a> {
    phone: &'a str,
    node: &'a str,
    /// The phone's tunnel interface.
    ifname: &'a str,
    resolver: Ipv4Addr,
    dns_name: &'a str,
    /// Where it was asked from (`from <phone>` or `from <address>`).
    how: &'a str,
}

/// Judges a DNS answer; `came_back` says whether the tunnel received bytes
/// meanwhile (the answer came back through it).
fn judge_dns(q: &DnsAsked, answer: Result<Vec<IpAddr>, String>, came_back: bool) -> CheckResult {
    let (ifname, how) = (q.ifname, q.how);
    let name = format!("dns {}", q.phone);
    match answer {
        Ok(a) if !a.is_empty() && !came_back => CheckResult::bad(
            Status::Fail,
            name,
            format!(
                "{} answered {a:?}, but the answer did not come back through {ifname} (received bytes unchanged): the reply took another path",
                q.resolver
            ),
            format!(
                "on node {}: NAT (MASQUERADE) of the WLAN out of its uplink is missing, so replies are routed around the tunnel (`matador node check`)",
                q.node
            ),
        ),
        Ok(a) if !a.is_empty() => CheckResult::ok(
            name,
            format!("{} → {a:?} via {} ({how})", q.dns_name, q.node),
        ),
        Ok(_) => CheckResult::bad(
            Status::Fail,
            name,
            format!(
                "resolver {} answered without an address for {}",
                q.resolver, q.dns_name
            ),
            "check the node's upstream resolver (`matador node check`)".into(),
        ),
        Err(e) => CheckResult::bad(
            Status::Fail,
            name,
            format!(
                "no DNS answer from {} through {} ({how}): {e}",
                q.resolver, q.node
            ),
            format!(
                "on node {}: NAT of the WLAN out of its uplink and the resolver's DNAT (`matador node check`; `iptables -t nat -S` on the node)",
                q.node
            ),
        ),
    }
}

/// Second line of defence: unknown WLAN sources are unreachable.
fn check_catch_all(cx: &Ctx, r: &mut Report) {
    let w = cx.w;
    let guard = cx.lab.router.priority_base + 999;
    let rules = run(ip(cx.ns).args(["-4", "rule", "show"]));
    if rules
        .lines()
        .any(|l| l.contains(&format!("iif {w}")) && l.contains("unreachable"))
    {
        r.ok(
            "wlan catch-all".into(),
            format!("unknown WLAN sources are unreachable (priority {guard})"),
        );
    } else {
        r.bad(
            Status::Warn,
            "wlan catch-all".into(),
            "no `iif WLAN unreachable` rule: a host on the WLAN that is not a listed phone would use the main table".into(),
            format!("`{}`", cx.in_ns(&format!("ip rule add iif {w} unreachable priority {guard}"))),
        );
    }
}

/// Second line of defence: the leak guard in the forward path (nftables or
/// iptables).
fn check_firewall(cx: &Ctx, r: &mut Report) {
    let nft = Cmd::new("nft")
        .netns(cx.ns)
        .args(["list", "table", "inet", "matador"])
        .output();
    let ipt = Cmd::new("iptables")
        .netns(cx.ns)
        .args(["-w", "-S", "FORWARD"])
        .output();
    let nft_ok = matches!(&nft, Ok((true, out, _)) if out.contains("leak guard"));
    let ipt_ok = matches!(&ipt, Ok((true, out, _)) if out.contains("leak guard"));
    if nft_ok || ipt_ok {
        r.ok(
            "firewall".into(),
            format!(
                "leak guard in {}",
                if nft_ok { "nftables" } else { "iptables" }
            ),
        );
    } else {
        r.bad(
            Status::Warn,
            "firewall".into(),
            "no leak guard in the forward path (policy routing alone keeps traffic in the tunnels)"
                .into(),
            "`nft -f router.nft` (or `iptables-restore < router.iptables`)".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parsed() {
        let out = "default dev wg-de-1 scope link metric 10 \nunreachable default metric 4096 \n";
        let r = table_routes(out);
        assert_eq!(r[0], ("default".into(), Some("wg-de-1".into()), 10));
        assert_eq!(r[1], ("unreachable default".into(), None, 4096));
    }

    fn plan() -> TunnelPlan {
        TunnelPlan {
            node: "de-1".into(),
            router_if: "wg-de-1".into(),
            router_addr: Ipv4Addr::new(198, 18, 2, 1),
            node_addr: Ipv4Addr::new(198, 18, 2, 2),
            table: 1100,
            probe_priority: 1500,
        }
    }

    fn verdict(c: &CheckResult) -> (Status, &str, &str) {
        (c.status, c.detail.as_str(), c.fix.as_deref().unwrap_or(""))
    }

    #[test]
    fn in_ns_prefixes_only_with_a_namespace() {
        assert_eq!(in_ns(None, "ip rule"), "ip rule");
        assert_eq!(in_ns(Some("r1"), "ip rule"), "ip netns exec r1 ip rule");
    }

    #[test]
    fn lease_judged_by_mac_and_address() {
        let path = std::path::Path::new("/var/lib/misc/dnsmasq.leases");
        let addr = Ipv4Addr::new(198, 18, 1, 10);
        let text = "1700000000 02:AA:bb:cc:dd:01 198.18.1.10 phone-a *\n";
        let mac = "02:aa:bb:cc:dd:01";
        let c = judge_lease("lease a".into(), text, mac, addr, path, "lab");
        assert_eq!(
            verdict(&c),
            (Status::Ok, "02:aa:bb:cc:dd:01 → 198.18.1.10", "")
        );
        let other = Ipv4Addr::new(198, 18, 1, 11);
        let c = judge_lease("lease a".into(), text, mac, other, path, "lab");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail
                .starts_with("lease for 02:aa:bb:cc:dd:01 is not 198.18.1.11: 1700000000")
        );
        let c = judge_lease("lease a".into(), "", mac, addr, path, "lab");
        assert_eq!(
            c.detail,
            "no DHCP lease for 02:aa:bb:cc:dd:01 in /var/lib/misc/dnsmasq.leases"
        );
        assert!(c.fix.unwrap().starts_with("join lab on the phone"));
    }

    #[test]
    fn table_needs_tunnel_route_and_worse_fallback_only() {
        let t = plan();
        let judge = |out: &str| judge_table(&table_routes(out), &t, "wg-de-1", Some("r1"));
        let good = "default dev wg-de-1 scope link metric 10 \nunreachable default metric 4096 \n";
        assert_eq!(
            verdict(&judge(good)),
            (Status::Ok, "default dev wg-de-1, unreachable fallback", "")
        );
        let c = judge("default dev wg-de-1 scope link metric 10 \n");
        assert!(
            c.detail.starts_with("no `unreachable default` fallback"),
            "{c:?}"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("`ip netns exec r1 ip route replace unreachable default table 1100 metric 4096`")
        );
        let c = judge("default dev wg-de-1 metric 5000 \nunreachable default metric 4096 \n");
        assert_eq!(
            c.detail,
            "the unreachable fallback (metric 4096) is not worse than the tunnel route (metric 5000)"
        );
        let c = judge("unreachable default metric 4096 \n");
        assert_eq!(
            c.detail,
            "no default route through wg-de-1: phones of de-1 get unreachable"
        );
        let c = judge("default via 10.0.0.1 dev eth0 \nunreachable default metric 4096 \n");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail
                .starts_with("routes not through wg-de-1: [(\"default\", Some(\"eth0\"), 0)]"),
            "{c:?}"
        );
    }

    #[test]
    fn route_get_tells_tunnel_unreachable_or_leak() {
        let judge = |ok: bool, out: &str, err: &str| {
            judge_route(
                "leak a".into(),
                (ok, out.into(), err.into()),
                "wg-de-1",
                "ip rule add X",
            )
        };
        let c = judge(
            true,
            "203.0.113.1 from 198.18.1.10 dev wg-de-1 table 1100 \n",
            "",
        );
        assert_eq!(verdict(&c), (Status::Ok, "via wg-de-1", ""));
        let c = judge(false, "", "RTNETLINK answers: Network is unreachable");
        assert_eq!(
            c.detail,
            "unreachable (tunnel wg-de-1 down?): no leak, but no traffic either"
        );
        let c = judge(
            true,
            "203.0.113.1 from 198.18.1.10 via 10.0.0.1 dev eth0 \n",
            "",
        );
        assert_eq!(
            verdict(&c),
            (
                Status::Fail,
                "LEAK: routed via eth0 instead of tunnel wg-de-1: 203.0.113.1 from 198.18.1.10 via 10.0.0.1 dev eth0",
                "restore the phone's rule: `ip rule add X`"
            )
        );
    }

    #[test]
    fn dns_answer_must_come_back_through_the_tunnel() {
        let q = DnsAsked {
            phone: "a",
            node: "de-1",
            ifname: "wg-de-1",
            resolver: Ipv4Addr::new(198, 18, 3, 53),
            dns_name: "example.org",
            how: "from a",
        };
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let c = judge_dns(&q, Ok(vec![addr]), true);
        assert_eq!(
            verdict(&c),
            (
                Status::Ok,
                "example.org → [192.0.2.7] via de-1 (from a)",
                ""
            )
        );
        let c = judge_dns(&q, Ok(vec![addr]), false);
        assert!(
            c.detail.contains("did not come back through wg-de-1"),
            "{c:?}"
        );
        let c = judge_dns(&q, Ok(vec![]), true);
        assert_eq!(
            c.detail,
            "resolver 198.18.3.53 answered without an address for example.org"
        );
        let c = judge_dns(&q, Err("timed out".into()), false);
        assert_eq!(
            c.detail,
            "no DNS answer from 198.18.3.53 through de-1 (from a): timed out"
        );
    }
}
