//! Per-phone policy routing on the lab router and NAT on the node.
//!
//! Each node has its own routing table on the router whose default route is
//! the node's tunnel, backed by an `unreachable` default with a worse
//! metric: when the tunnel interface disappears the phone's traffic is
//! dropped (ICMP unreachable) instead of leaking out of the router's own
//! uplink. A phone is assigned to a node with `ip rule from <phone> lookup
//! <table>`; re-assigning replaces the rule. Objects created outside a
//! namespace (a real router) are recorded as undo commands in the state.

use super::NetError;
use super::cmd::Cmd;
use super::state::{Resource, StateFile};
use std::net::{IpAddr, Ipv4Addr};

fn ip(ns: Option<&str>) -> Cmd {
    let c = Cmd::new("ip");
    match ns {
        Some(n) => c.args(["-n", n]),
        None => c,
    }
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "-4" } else { "-6" }
}

/// Fills routing table `table` with `default dev <tunnel>` and the
/// unreachable fallback (IPv4 and IPv6).
pub fn tunnel_table(
    state: &mut StateFile,
    router_ns: Option<&str>,
    table: u32,
    tunnel_if: &str,
) -> Result<(), NetError> {
    super::netns::check_if_name(tunnel_if)?;
    let t = table.to_string();
    if router_ns.is_none() {
        for fam in ["-4", "-6"] {
            state.add(Resource::Undo {
                argv: ["ip", fam, "route", "flush", "table", &t]
                    .map(String::from)
                    .to_vec(),
            })?;
        }
    }
    for fam in ["-4", "-6"] {
        ip(router_ns)
            .args([
                fam,
                "route",
                "replace",
                "unreachable",
                "default",
                "table",
                &t,
            ])
            .args(["metric", "4096"])
            .run()?;
        ip(router_ns)
            .args([
                fam, "route", "replace", "default", "dev", tunnel_if, "table", &t,
            ])
            .args(["metric", "10"])
            .run()?;
    }
    Ok(())
}

/// Sends everything from `phone` through routing table `table` (rule
/// priority `priority`), replacing an earlier assignment of that phone.
///
/// Dual stack: a phone's IPv6 rule uses the same priority as its IPv4 one
/// (the families have separate rule lists). Re-assigning the IPv4 address
/// moves an IPv6 rule found at that priority to the same table, so callers
/// that only know the IPv4 address never leave the IPv6 traffic on the old
/// node.
pub fn assign_phone(
    state: &mut StateFile,
    router_ns: Option<&str>,
    phone: IpAddr,
    table: u32,
    priority: u32,
) -> Result<(), NetError> {
    let fam = family(&phone);
    let p = priority.to_string();
    let from = phone.to_string();
    // Remove the previous rule at this priority (a phone has one priority).
    let _ = ip(router_ns)
        .args([fam, "rule", "del", "priority", &p])
        .succeeds()?;
    if router_ns.is_none() {
        state.add(Resource::Undo {
            argv: ["ip", fam, "rule", "del", "priority", &p]
                .map(String::from)
                .to_vec(),
        })?;
    }
    ip(router_ns)
        .args([fam, "rule", "add", "from", &from, "lookup"])
        .arg(table.to_string())
        .args(["priority", &p])
        .run()?;
    if phone.is_ipv4() {
        let shown = ip(router_ns)
            .args(["-6", "rule", "show", "priority", &p])
            .run()?;
        if let Some(from6) = rule_source(&shown) {
            ip(router_ns)
                .args(["-6", "rule", "del", "priority", &p])
                .run()?;
            ip(router_ns)
                .args(["-6", "rule", "add", "from", &from6, "lookup"])
                .arg(table.to_string())
                .args(["priority", &p])
                .run()?;
        }
    }
    Ok(())
}

/// The IPv6 source of an `ip rule show` line (`1000: from X lookup 100`).
fn rule_source(shown: &str) -> Option<String> {
    let w: Vec<&str> = shown.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "from")?;
    let a = w.get(i + 1)?;
    a.parse::<std::net::Ipv6Addr>().ok()?;
    Some(a.to_string())
}

/// Masquerades traffic from `sources` (CIDRs) leaving the node by `uplink`.
pub fn nat(
    state: &mut StateFile,
    node_ns: Option<&str>,
    sources: &[String],
    uplink: &str,
) -> Result<(), NetError> {
    super::netns::check_if_name(uplink)?;
    for s in sources {
        let v6 = s.contains(':');
        let tool = if v6 { "ip6tables" } else { "iptables" };
        if node_ns.is_none() {
            let argv = [
                tool,
                "-w",
                "-t",
                "nat",
                "-D",
                "POSTROUTING",
                "-s",
                s,
                "-o",
                uplink,
            ]
            .iter()
            .chain(&["-j", "MASQUERADE"])
            .map(|x| x.to_string())
            .collect();
            state.add(Resource::Undo { argv })?;
        }
        Cmd::new(tool)
            .netns(node_ns)
            .args([
                "-w",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                s,
                "-o",
                uplink,
            ])
            .args(["-j", "MASQUERADE"])
            .run()?;
    }
    Ok(())
}

/// The interface `ip route get` picks for traffic from `src` (arriving on
/// `iif`) to `dst` in namespace `ns`.
pub fn route_dev(
    ns: Option<&str>,
    dst: IpAddr,
    src: IpAddr,
    iif: &str,
) -> Result<Option<String>, NetError> {
    let out = ip(ns)
        .args(["route", "get"])
        .arg(dst.to_string())
        .arg("from")
        .arg(src.to_string())
        .args(["iif", iif])
        .run()?;
    Ok(word_after(&out, "dev"))
}

/// The device through which `ns` routes to `dst` (`ip route get DST`).
pub fn dev_towards(ns: Option<&str>, dst: IpAddr) -> Result<Option<String>, NetError> {
    let out = ip(ns).args(["route", "get"]).arg(dst.to_string()).run()?;
    Ok(word_after(&out, "dev"))
}

/// The first IPv4 address of interface `ifname` in `ns` (`None`: none).
pub fn addr_v4_of(ns: Option<&str>, ifname: &str) -> Result<Option<Ipv4Addr>, NetError> {
    let out = ip(ns)
        .args(["-o", "-4", "addr", "show", "dev", ifname])
        .run()?;
    Ok(word_after(&out, "inet").and_then(|a| a.split('/').next().and_then(|a| a.parse().ok())))
}

fn word_after(out: &str, key: &str) -> Option<String> {
    let w: Vec<&str> = out.split_whitespace().collect();
    w.iter()
        .position(|x| *x == key)
        .and_then(|i| w.get(i + 1))
        .map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_address_words_are_parsed() {
        // `ip route get` and `ip -o -4 addr show` output (iproute2 6.1).
        let r = "198.18.100.2 dev wlan0 src 198.18.100.1 uid 0 \n    cache \n";
        assert_eq!(word_after(r, "dev").as_deref(), Some("wlan0"));
        let a =
            "5: wg-de-1    inet 198.18.99.1/30 scope global wg-de-1\\       valid_lft forever\n";
        assert_eq!(word_after(a, "inet").as_deref(), Some("198.18.99.1/30"));
        assert_eq!(word_after("", "dev"), None);
        assert_eq!(word_after("x dev", "dev"), None);
    }

    #[test]
    fn ipv6_rule_source_is_parsed() {
        assert_eq!(
            rule_source("1000:\tfrom fd00:1ab::c612:6402 lookup 101 \n").as_deref(),
            Some("fd00:1ab::c612:6402")
        );
        assert_eq!(rule_source("1000: from all lookup 101"), None);
        assert_eq!(rule_source(""), None);
    }
}
