//! A chain of network namespaces for traceroute tests: a source, three
//! router hops (plus a parallel second hop forming an equal-cost split) and
//! a target, addressed in 198.18.0.0/15 and fd00::/8. Real kernels forward,
//! decrement TTLs and send ICMP errors. Names are unique per process and
//! chain; the namespaces are deleted on drop (also on panic).
//!
//! ```text
//!              ┌─ b ─ r2 ─ c ─┐
//! src ─ a ─ r1 ┤              r3 ─ d ─ dst (T1 = 198.18.4.2; T2 = 198.19.9.2 on lo)
//!              └─ e ─ r2b ─ f ┘   (only T2 is routed over both, ECMP, L4 hash)
//! ```
#![allow(dead_code)]

use std::net::IpAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {args:?} (is it installed? scripts/install-deps.sh): {e}")
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The namespaces of one chain.
pub struct Chain {
    /// Unique prefix of the namespace names.
    pub prefix: String,
    roles: Vec<&'static str>,
}

/// Roles, in creation order.
pub const ROLES: [&str; 6] = ["s", "r1", "r2", "r2b", "r3", "d"];

/// Options of a chain.
#[derive(Default)]
pub struct Opts {
    /// Keep the kernel's default ICMP rate limits on the routers (otherwise
    /// they are switched off so every probe is answered).
    pub default_ratelimits: bool,
}

impl Chain {
    /// Builds the chain.
    pub fn build(opts: Opts) -> Chain {
        assert!(
            nix_is_root(),
            "paths netns tests need root (network namespaces, raw sockets)"
        );
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("pt{}x{n}", std::process::id());
        let chain = Chain {
            prefix,
            roles: ROLES.to_vec(),
        };
        for r in ROLES {
            run(&["ip", "netns", "add", &chain.ns(r)]);
            chain.ip(r, &["link", "set", "lo", "up"]);
            for kv in [
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.accept_dad=0",
            ] {
                chain.sysctl(r, kv);
            }
            if !opts.default_ratelimits {
                chain.sysctl(r, "net.ipv4.icmp_ratelimit=0");
                chain.sysctl(r, "net.ipv6.icmp.ratelimit=0");
            }
        }
        chain.sysctl("r1", "net.ipv4.fib_multipath_hash_policy=1");
        chain.sysctl("r1", "net.ipv6.fib_multipath_hash_policy=1");
        // link name, left role, right role, subnet index
        for (l, a, b, i) in [
            ("a", "s", "r1", 1),
            ("b", "r1", "r2", 2),
            ("c", "r2", "r3", 3),
            ("d", "r3", "d", 4),
            ("e", "r1", "r2b", 5),
            ("f", "r2b", "r3", 6),
        ] {
            let (la, lb) = (format!("{l}0"), format!("{l}1"));
            let nb = chain.ns(b);
            chain.ip(
                a,
                &[
                    "link", "add", &la, "type", "veth", "peer", "name", &lb, "netns", &nb,
                ],
            );
            chain.ip(a, &["addr", "add", &format!("198.18.{i}.1/24"), "dev", &la]);
            chain.ip(b, &["addr", "add", &format!("198.18.{i}.2/24"), "dev", &lb]);
            chain.ip(
                a,
                &[
                    "addr",
                    "add",
                    &format!("fd00:{i}::1/64"),
                    "dev",
                    &la,
                    "nodad",
                ],
            );
            chain.ip(
                b,
                &[
                    "addr",
                    "add",
                    &format!("fd00:{i}::2/64"),
                    "dev",
                    &lb,
                    "nodad",
                ],
            );
            chain.ip(a, &["link", "set", &la, "up"]);
            chain.ip(b, &["link", "set", &lb, "up"]);
        }
        chain.ip("d", &["addr", "add", "198.19.9.2/32", "dev", "lo"]);
        chain.ip("d", &["addr", "add", "fd00:9::2/128", "dev", "lo"]);
        let routes: [(&str, &[&str]); 16] = [
            ("s", &["route", "add", "default", "via", "198.18.1.2"]),
            ("s", &["-6", "route", "add", "default", "via", "fd00:1::2"]),
            ("r1", &["route", "add", "default", "via", "198.18.2.2"]),
            ("r1", &["-6", "route", "add", "default", "via", "fd00:2::2"]),
            ("r2", &["route", "add", "default", "via", "198.18.3.2"]),
            ("r2", &["-6", "route", "add", "default", "via", "fd00:3::2"]),
            ("r2b", &["route", "add", "default", "via", "198.18.6.2"]),
            (
                "r2b",
                &["-6", "route", "add", "default", "via", "fd00:6::2"],
            ),
            ("r3", &["route", "add", "default", "via", "198.18.4.2"]),
            ("r3", &["-6", "route", "add", "default", "via", "fd00:4::2"]),
            ("d", &["route", "add", "default", "via", "198.18.4.1"]),
            ("d", &["-6", "route", "add", "default", "via", "fd00:4::1"]),
            (
                "r2",
                &["route", "add", "198.18.1.0/24", "via", "198.18.2.1"],
            ),
            (
                "r2",
                &["-6", "route", "add", "fd00:1::/64", "via", "fd00:2::1"],
            ),
            (
                "r2b",
                &["route", "add", "198.18.1.0/24", "via", "198.18.5.1"],
            ),
            (
                "r2b",
                &["-6", "route", "add", "fd00:1::/64", "via", "fd00:5::1"],
            ),
        ];
        for (r, args) in routes {
            chain.ip(r, args);
        }
        for (r, args) in [
            (
                "r3",
                &["route", "add", "198.18.1.0/24", "via", "198.18.3.1"][..],
            ),
            (
                "r3",
                &["-6", "route", "add", "fd00:1::/64", "via", "fd00:3::1"],
            ),
            (
                "r1",
                &[
                    "route",
                    "add",
                    "198.19.9.2/32",
                    "nexthop",
                    "via",
                    "198.18.2.2",
                    "nexthop",
                    "via",
                    "198.18.5.2",
                ],
            ),
            (
                "r1",
                &[
                    "-6",
                    "route",
                    "add",
                    "fd00:9::2/128",
                    "nexthop",
                    "via",
                    "fd00:2::2",
                    "nexthop",
                    "via",
                    "fd00:5::2",
                ],
            ),
        ] {
            chain.ip(r, args);
        }
        // Resolve neighbours once so first probes see no ND/ARP delay.
        for t in ["198.18.4.2", "fd00:4::2", "198.19.9.2", "fd00:9::2"] {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &chain.ns("s"),
                    "ping",
                    "-c",
                    "2",
                    "-i",
                    "0.2",
                    "-W",
                    "2",
                    t,
                ])
                .output();
        }
        chain
    }

    /// Namespace name of a role.
    pub fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// `ip -n NS args…`.
    pub fn ip(&self, role: &str, args: &[&str]) -> Output {
        let ns = self.ns(role);
        let mut v = vec!["ip", "-n", ns.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }

    /// `ip netns exec NS args…`.
    pub fn exec(&self, role: &str, args: &[&str]) -> Output {
        let ns = self.ns(role);
        let mut v = vec!["ip", "netns", "exec", ns.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }

    fn sysctl(&self, role: &str, kv: &str) {
        self.exec(role, &["sysctl", "-qw", kv]);
    }

    /// Makes `role` drop the ICMP time-exceeded messages it sends.
    pub fn silence(&self, role: &str) {
        self.exec(
            role,
            &[
                "iptables",
                "-A",
                "OUTPUT",
                "-p",
                "icmp",
                "--icmp-type",
                "time-exceeded",
                "-j",
                "DROP",
            ],
        );
        self.exec(
            role,
            &[
                "ip6tables",
                "-A",
                "OUTPUT",
                "-p",
                "icmpv6",
                "--icmpv6-type",
                "time-exceeded",
                "-j",
                "DROP",
            ],
        );
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        for r in &self.roles {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(r)])
                .output();
        }
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Target T1 (straight chain) in family 4 or 6.
pub fn t1(v6: bool) -> IpAddr {
    if v6 { "fd00:4::2" } else { "198.18.4.2" }.parse().unwrap()
}

/// Target T2 (behind the equal-cost split).
pub fn t2(v6: bool) -> IpAddr {
    if v6 { "fd00:9::2" } else { "198.19.9.2" }.parse().unwrap()
}

/// The hops towards T1: r1, r2, r3, the target.
pub fn t1_hops(v6: bool) -> Vec<Option<IpAddr>> {
    let v: [&str; 4] = if v6 {
        ["fd00:1::2", "fd00:2::2", "fd00:3::2", "fd00:4::2"]
    } else {
        ["198.18.1.2", "198.18.2.2", "198.18.3.2", "198.18.4.2"]
    };
    v.iter().map(|s| Some(s.parse().unwrap())).collect()
}

/// The two second hops of the split towards T2 (r2 and r2b).
pub fn split_hops(v6: bool) -> [IpAddr; 2] {
    if v6 {
        ["fd00:2::2".parse().unwrap(), "fd00:5::2".parse().unwrap()]
    } else {
        ["198.18.2.2".parse().unwrap(), "198.18.5.2".parse().unwrap()]
    }
}
