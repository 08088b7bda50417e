//! Generates a real router's configuration from a [`RealLab`]:
//!
//! | file | what |
//! |---|---|
//! | `hostapd.conf`, `hostapd.psk`, `hostapd.accept` | WPA2-PSK access point; only the phones' MACs may join |
//! | `dnsmasq.conf` | DHCP only (`port=0`: the router answers no DNS), a static lease per phone MAC, the per-phone resolver |
//! | `sysctl.conf` | forwarding on, loose reverse-path filter, no IPv6 on the WLAN |
//! | `router.nft` / `router.iptables` | the leak guard: WLAN traffic may only leave through a tunnel (use one of the two) |
//! | `router-up.sh` | tunnels (kernel WireGuard or `wireguard-go`), per-node tables with the unreachable fallback, per-phone rules |
//! | `wg/router-<node>.conf`, `wg/node-<node>.conf` | `wg setconf` files (0600) |
//! | `nodes/<node>.json` | what `matador node install --tunnel` configures on the node (0600) |
//! | `keys/*.key` | WireGuard private keys (0600), generated once and reused |
//!
//! Secrets (keys, passphrase) only go to 0600 files and are never printed.
//! [`render`] is pure (keys passed in), so the files are golden-tested.

use super::{RealLab, RouterError, TunnelPlan};
use crate::net::cmd::Cmd;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where dnsmasq keeps the leases (checked by `matador router check`).
pub const LEASE_FILE: &str = "/var/lib/misc/matador.leases";

/// Default directory the files are installed to on the router.
pub const INSTALL_DIR: &str = "/etc/matador/router";

/// Keepalive of the router's tunnels (keeps NAT state and handshakes fresh).
pub const KEEPALIVE: u16 = 25;

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenFile {
    /// Path relative to the output directory.
    pub rel: PathBuf,
    /// Unix mode.
    pub mode: u32,
    /// Contents.
    pub text: String,
    /// Holds a secret (never shown).
    pub secret: bool,
}

/// A WireGuard key pair as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Private key (base64).
    pub private: String,
    /// Public key (base64).
    pub public: String,
}

/// The keys of one node's tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelKeys {
    /// Router side.
    pub router: Keys,
    /// Node side.
    pub node: Keys,
}

/// What `matador node install --tunnel FILE` sets up on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTunnel {
    /// Node name.
    pub node: String,
    /// Tunnel interface on the node.
    pub tunnel_if: String,
    /// The node's inner address with prefix (`/30`).
    pub address: String,
    /// UDP port WireGuard listens on.
    pub listen_port: u16,
    /// The node's `wg setconf` file contents (private key included).
    pub wg_conf: String,
    /// Sources to masquerade out of the uplink (WLAN, router inner address).
    pub nat_sources: Vec<String>,
    /// Routes to add through the tunnel (the WLAN).
    pub routes: Vec<String>,
    /// The node's uplink.
    pub uplink: String,
    /// The phones' resolver, DNATed on the node to its upstream resolver.
    pub resolver: Ipv4Addr,
    /// Upstream resolver (`None`: the node's `/etc/resolv.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_upstream: Option<Ipv4Addr>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RouterError + '_ {
    move |source| RouterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and checks the WPA2 passphrase (8–63 printable ASCII characters).
pub fn read_passphrase(path: &Path) -> Result<String, RouterError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let p = text.trim_end_matches(['\n', '\r']);
    if !(8..=63).contains(&p.len()) || p.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(RouterError::Invalid {
            path: path.to_path_buf(),
            message: "WPA2 passphrase must be 8-63 printable ASCII characters".into(),
        });
    }
    Ok(p.to_string())
}

/// Loads `keys/<name>.key` in `out`, generating it (0600) the first time.
fn key(out: &Path, name: &str) -> Result<Keys, RouterError> {
    let dir = out.join("keys");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(format!("{name}.key"));
    if !path.exists() {
        crate::net::wg::genkey(&path)?;
    }
    let private = std::fs::read_to_string(&path)
        .map_err(io(&path))?
        .trim()
        .to_string();
    let public = Cmd::new("wg")
        .arg("pubkey")
        .stdin(private.clone())
        .run()
        .map_err(|_| RouterError::Invalid {
            path: path.clone(),
            message: "not a WireGuard private key (delete it to generate a new one)".into(),
        })?
        .trim()
        .to_string();
    Ok(Keys { private, public })
}

/// Loads or generates the keys of every tunnel under `out/keys/`.
pub fn tunnel_keys(lab: &RealLab, out: &Path) -> Result<Vec<TunnelKeys>, RouterError> {
    lab.nodes
        .iter()
        .map(|n| {
            Ok(TunnelKeys {
                router: key(out, &format!("router-{}", n.name))?,
                node: key(out, &format!("node-{}", n.name))?,
            })
        })
        .collect()
}

fn header(lab: &RealLab, comment: &str) -> String {
    format!(
        "{comment} Generated by `matador router config` for lab {} ({}). Do not edit: change the\n{comment} description and generate again.\n",
        lab.name, lab.country
    )
}

fn file(rel: &str, mode: u32, text: String, secret: bool) -> GenFile {
    GenFile {
        rel: PathBuf::from(rel),
        mode,
        text,
        secret,
    }
}

/// Renders every file. `install_dir` is where the files will live on the
/// router (paths inside the files point there).
pub fn render(
    lab: &RealLab,
    passphrase: &str,
    keys: &[TunnelKeys],
    install_dir: &Path,
) -> Result<Vec<GenFile>, String> {
    lab.validate()?;
    if keys.len() != lab.nodes.len() {
        return Err(format!(
            "{} key pairs for {} nodes",
            keys.len(),
            lab.nodes.len()
        ));
    }
    let dir = install_dir.display().to_string();
    let tunnels = lab.tunnels();
    let net = lab.wlan_net()?;
    let wlan_cidr = format!("{}/{}", net.network(), net.prefix());
    let (psk, accept) = hostapd_lists(lab, passphrase);
    let mut files = vec![
        file("hostapd.conf", 0o644, hostapd_conf(lab, &dir), false),
        file("hostapd.psk", 0o600, psk, true),
        file("hostapd.accept", 0o644, accept, false),
        file(
            "dnsmasq.conf",
            0o644,
            dnsmasq_conf(lab, &tunnels, net),
            false,
        ),
        file("sysctl.conf", 0o644, sysctl_conf(lab), false),
        file(
            "router.nft",
            0o644,
            nft_rules(lab, &tunnels, &wlan_cidr),
            false,
        ),
        file(
            "router.iptables",
            0o644,
            iptables_rules(lab, &tunnels, &wlan_cidr),
            false,
        ),
        file("router-up.sh", 0o755, router_up(lab, &tunnels, &dir), false),
    ];
    // WireGuard and the nodes' tunnel descriptions.
    for ((node, t), k) in lab.nodes.iter().zip(&tunnels).zip(keys) {
        files.extend(node_files(lab, node, t, k, &wlan_cidr)?);
    }
    Ok(files)
}

/// hostapd: WPA2-PSK (CCMP only), per-MAC passphrases and a MAC accept
/// list so only the lab's phones associate; clients isolated.
fn hostapd_conf(lab: &RealLab, dir: &str) -> String {
    let r = &lab.router;
    let band_a = r.channel >= 36;
    let mut h = header(lab, "#");
    let _ = writeln!(h, "interface={}", r.wlan_if);
    h += "driver=nl80211\nctrl_interface=/run/hostapd\nctrl_interface_group=0\n";
    let _ = writeln!(h, "ssid={}", r.ssid);
    h += "utf8_ssid=1\nignore_broadcast_ssid=0\n";
    let _ = writeln!(h, "country_code={}", lab.country);
    h += "ieee80211d=1\n";
    if band_a {
        h += "ieee80211h=1\n";
    }
    let _ = writeln!(h, "hw_mode={}", if band_a { "a" } else { "g" });
    let _ = writeln!(h, "channel={}", r.channel);
    h += "ieee80211n=1\nwmm_enabled=1\n";
    if band_a {
        h += "ieee80211ac=1\n";
    }
    h += "auth_algs=1\nwpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nieee80211w=1\n";
    let _ = writeln!(h, "wpa_psk_file={dir}/hostapd.psk");
    h += "macaddr_acl=1\n";
    let _ = writeln!(h, "accept_mac_file={dir}/hostapd.accept");
    h += "ap_isolate=1\n";
    h
}

/// hostapd's per-MAC passphrase file and MAC accept list.
fn hostapd_lists(lab: &RealLab, passphrase: &str) -> (String, String) {
    let mut psk = String::from("# MAC passphrase (one line per phone)\n");
    let mut accept = header(lab, "#");
    for p in &lab.phones {
        let mac = super::parse_mac(&p.mac).unwrap_or_default();
        let _ = writeln!(psk, "{mac} {passphrase}");
        let _ = writeln!(accept, "{mac}");
    }
    (psk, accept)
}

/// dnsmasq: DHCP only. The router must not resolve anything itself: its
/// resolver would go out of its own uplink, i.e. leak the phones' names
/// in the lab's country. Phones get the resolver address that their
/// policy rule sends into their tunnel.
fn dnsmasq_conf(lab: &RealLab, tunnels: &[TunnelPlan], net: ipnetwork::Ipv4Network) -> String {
    let r = &lab.router;
    let mut d = header(lab, "#");
    d += "# DHCP only: port=0 turns DNS off (the phones' queries go through their tunnel).\nport=0\n";
    let _ = writeln!(d, "interface={}", r.wlan_if);
    d += "bind-interfaces\ndhcp-authoritative\n";
    let _ = writeln!(d, "dhcp-leasefile={LEASE_FILE}");
    let _ = writeln!(
        d,
        "dhcp-range=set:lab,{},static,{},12h",
        net.network(),
        net.mask()
    );
    let _ = writeln!(d, "dhcp-option=tag:lab,option:router,{}", net.ip());
    d += "# Only the phones below get an address.\ndhcp-ignore=tag:!known\n";
    for (p, plan) in lab.phones.iter().zip(&lab.phone_plans()) {
        let t = &tunnels[plan.node];
        let mac = super::parse_mac(&p.mac).unwrap_or_default();
        let _ = writeln!(
            d,
            "# {}: node {} ({}), rule priority {} -> table {} -> {}",
            p.name, t.node, lab.nodes[plan.node].country, plan.priority, t.table, t.router_if
        );
        let _ = writeln!(
            d,
            "dhcp-host={mac},set:{},{},{},12h",
            p.name, p.addr, p.name
        );
        let _ = writeln!(
            d,
            "dhcp-option=tag:{},option:dns-server,{}",
            p.name, r.resolver
        );
    }
    d += "log-dhcp\n";
    d
}

/// sysctl: forwarding, loose reverse-path filter, no IPv6 on the WLAN.
fn sysctl_conf(lab: &RealLab) -> String {
    let w = &lab.router.wlan_if;
    let mut s = header(lab, "#");
    s += "net.ipv4.ip_forward = 1\n";
    s += "# Loose reverse-path filter: replies from the internet arrive through a tunnel\n# while the main table routes their sources out of the uplink.\n";
    s += "net.ipv4.conf.all.rp_filter = 2\nnet.ipv4.conf.default.rp_filter = 2\n";
    let _ = writeln!(s, "net.ipv4.conf.{w}.rp_filter = 2");
    s += "# The tunnels carry IPv4 only: no IPv6 on the WLAN, so none can leak.\n";
    let _ = writeln!(s, "net.ipv6.conf.{w}.disable_ipv6 = 1");
    s += "net.ipv6.conf.all.forwarding = 0\n";
    s
}

/// The nftables leak guard.
fn nft_rules(lab: &RealLab, tunnels: &[TunnelPlan], wlan_cidr: &str) -> String {
    let tun_set = tunnels
        .iter()
        .map(|t| format!("\"{}\"", t.router_if))
        .collect::<Vec<_>>()
        .join(", ");
    let mut n = header(lab, "#");
    n += "# Apply with `nft -f router.nft` (or use router.iptables instead, not both).\n";
    n += "table inet matador\ndelete table inet matador\n\ntable inet matador {\n";
    n += "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n";
    let w = &lab.router.wlan_if;
    let _ = writeln!(n, "\t\tiifname \"{w}\" ct state established,related accept");
    let _ = writeln!(
        n,
        "\t\tiifname \"{w}\" udp dport 67 accept comment \"DHCP\""
    );
    let _ = writeln!(n, "\t\tiifname \"{w}\" icmp type echo-request accept");
    let _ = writeln!(
        n,
        "\t\tiifname \"{w}\" counter drop comment \"phones reach nothing on the router (no DNS, no SSH)\""
    );
    n += "\t}\n\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n";
    let _ = writeln!(n, "\t\tiifname \"{w}\" oifname {{ {tun_set} }} accept");
    let _ = writeln!(
        n,
        "\t\tiifname \"{w}\" counter drop comment \"leak guard: WLAN traffic leaves only through a tunnel\""
    );
    let _ = writeln!(
        n,
        "\t\tiifname {{ {tun_set} }} oifname \"{w}\" ip daddr {wlan_cidr} accept"
    );
    let _ = writeln!(
        n,
        "\t\toifname \"{w}\" counter drop comment \"nothing else reaches the phones\""
    );
    n += "\t}\n}\n";
    n
}

/// The iptables-restore equivalent of [`nft_rules`] (IPv4; IPv6 is off on
/// the WLAN).
fn iptables_rules(lab: &RealLab, tunnels: &[TunnelPlan], wlan_cidr: &str) -> String {
    let w = &lab.router.wlan_if;
    let mut ip = header(lab, "#");
    ip += "# Apply with `iptables-restore < router.iptables` (replaces the filter table).\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";
    let _ = writeln!(
        ip,
        "-A INPUT -i {w} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    );
    let _ = writeln!(ip, "-A INPUT -i {w} -p udp --dport 67 -j ACCEPT");
    let _ = writeln!(
        ip,
        "-A INPUT -i {w} -p icmp --icmp-type echo-request -j ACCEPT"
    );
    let _ = writeln!(ip, "-A INPUT -i {w} -j DROP");
    for t in tunnels {
        let _ = writeln!(ip, "-A FORWARD -i {w} -o {} -j ACCEPT", t.router_if);
    }
    let _ = writeln!(
        ip,
        "-A FORWARD -i {w} -m comment --comment \"leak guard\" -j DROP"
    );
    for t in tunnels {
        let _ = writeln!(
            ip,
            "-A FORWARD -i {} -o {w} -d {wlan_cidr} -j ACCEPT",
            t.router_if
        );
    }
    let _ = writeln!(ip, "-A FORWARD -o {w} -j DROP");
    ip += "COMMIT\n";
    ip
}

/// One node's files: the router's and the node's `wg setconf` files and
/// the node's tunnel description (`nodes/<node>.json`).
fn node_files(
    lab: &RealLab,
    node: &super::RealNode,
    t: &TunnelPlan,
    k: &TunnelKeys,
    wlan_cidr: &str,
) -> Result<[GenFile; 3], String> {
    let mut rc = String::from("[Interface]\n");
    let _ = writeln!(rc, "PrivateKey = {}", k.router.private);
    rc += "\n[Peer]\n";
    let _ = writeln!(rc, "# node {} ({})", node.name, node.country);
    let _ = writeln!(rc, "PublicKey = {}", k.node.public);
    let host = if node.host.contains(':') {
        format!("[{}]", node.host)
    } else {
        node.host.clone()
    };
    let _ = writeln!(rc, "Endpoint = {host}:{}", node.wg_port);
    rc += "AllowedIPs = 0.0.0.0/0\n";
    let _ = writeln!(rc, "PersistentKeepalive = {KEEPALIVE}");
    let mut nc = String::from("[Interface]\n");
    let _ = writeln!(nc, "PrivateKey = {}", k.node.private);
    let _ = writeln!(nc, "ListenPort = {}", node.wg_port);
    nc += "\n[Peer]\n";
    let _ = writeln!(nc, "# router of lab {}", lab.name);
    let _ = writeln!(nc, "PublicKey = {}", k.router.public);
    let _ = writeln!(nc, "AllowedIPs = {wlan_cidr}, {}/32", t.router_addr);
    let wlan = wlan_cidr.to_string();
    let nt = NodeTunnel {
        node: node.name.clone(),
        tunnel_if: node.tunnel_if.clone(),
        address: format!("{}/30", t.node_addr),
        listen_port: node.wg_port,
        wg_conf: nc.clone(),
        nat_sources: vec![wlan.clone(), format!("{}/32", t.router_addr)],
        routes: vec![wlan],
        uplink: node.uplink.clone(),
        resolver: lab.router.resolver,
        dns_upstream: node.dns_upstream,
    };
    let json = serde_json::to_string_pretty(&nt).map_err(|e| e.to_string())? + "\n";
    Ok([
        file(&format!("wg/router-{}.conf", node.name), 0o600, rc, true),
        file(&format!("wg/node-{}.conf", node.name), 0o600, nc, true),
        file(&format!("nodes/{}.json", node.name), 0o600, json, true),
    ])
}

fn router_up(lab: &RealLab, tunnels: &[TunnelPlan], dir: &str) -> String {
    let r = &lab.router;
    let mut s = String::from("#!/bin/sh\n");
    s += &header(lab, "#");
    s += "# Brings up the tunnels and the per-phone policy routing; safe to run again.\n";
    s += "set -eu\n";
    let _ = writeln!(s, "DIR=\"${{MATADOR_ROUTER_DIR:-{dir}}}\"");
    // Nothing else gives the card its address: without it the phones have
    // no gateway and dnsmasq (bind-interfaces) refuses to start.
    let _ = writeln!(
        s,
        "\n# The WLAN: the phones' gateway and DHCP server (run before dnsmasq).\n\
         ip addr replace {} dev {w}\nip link set {w} up",
        r.wlan_addr,
        w = r.wlan_if
    );
    s += "\n# WireGuard: the kernel module when present, else wireguard-go.\nwg_up() {\n";
    s += "\tif ! ip link show \"$1\" >/dev/null 2>&1; then\n";
    s += "\t\tip link add \"$1\" type wireguard 2>/dev/null || wireguard-go \"$1\"\n\tfi\n";
    s += "\twg setconf \"$1\" \"$DIR/wg/$2\"\n";
    s += "\tip addr replace \"$3\" dev \"$1\"\n\tip link set \"$1\" up\n}\n\n";
    s += "# rule PRIORITY ARGS...: replaces the rule at that priority.\nrule() {\n";
    s += "\tp=$1; shift\n\twhile ip rule del priority \"$p\" 2>/dev/null; do :; done\n";
    s += "\tip rule add \"$@\" priority \"$p\"\n}\n\n";
    for t in tunnels {
        let country = lab
            .nodes
            .iter()
            .find(|n| n.name == t.node)
            .map(|n| n.country.as_str())
            .unwrap_or("");
        let _ = writeln!(s, "# node {} ({country})", t.node);
        let _ = writeln!(
            s,
            "wg_up {} router-{}.conf {}/30",
            t.router_if, t.node, t.router_addr
        );
        let _ = writeln!(
            s,
            "# A dead tunnel removes its default route: the unreachable one then drops\n# the phones' traffic instead of leaking it through the main table."
        );
        let _ = writeln!(
            s,
            "ip route replace unreachable default table {} metric 4096",
            t.table
        );
        let _ = writeln!(
            s,
            "ip route replace default dev {} table {} metric 10",
            t.router_if, t.table
        );
        let _ = writeln!(
            s,
            "rule {} from {} lookup {}  # the router's own probes (router check)",
            t.probe_priority, t.router_addr, t.table
        );
        s += "\n";
    }
    for (p, plan) in lab.phones.iter().zip(lab.phone_plans()) {
        let t = &tunnels[plan.node];
        let _ = writeln!(
            s,
            "rule {} from {} lookup {}  # {} -> {}",
            plan.priority, p.addr, t.table, p.name, t.node
        );
    }
    // Per-phone capture interfaces: one Wi-Fi card serves every phone, but
    // a campaign captures each phone on its own interface. tc mirrors the
    // phone's packets (both directions) to `c-<phone>`, a veth whose peer
    // `c-<phone>p` drops everything it receives (nftables, before routing),
    // so the mirrored copies are never routed.
    let _ = writeln!(
        s,
        "\n# Capture interfaces: c-<phone> sees exactly that phone's packets (tc mirror).\n\
         nft -f - <<'MATADOR_NFT'\n\
         table inet matador_capture\n\
         delete table inet matador_capture\n\
         table inet matador_capture {{\n\
         \tchain pre {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname \"c-*p\" drop comment \"mirrored copies: for capture only\"\n\
         \t}}\n\
         }}\n\
         MATADOR_NFT\n\
         tc qdisc del dev {w} clsact 2>/dev/null || true\ntc qdisc add dev {w} clsact",
        w = r.wlan_if
    );
    for p in &lab.phones {
        let c = capture_if(&p.name);
        let (w, a) = (&r.wlan_if, p.addr);
        let _ = writeln!(
            s,
            "ip link show {c} >/dev/null 2>&1 || ip link add {c} type veth peer name {c}p"
        );
        // No IPv6 on them: the kernel's own RS/DAD packets would be noise in
        // the phone's capture.
        let _ = writeln!(
            s,
            "for i in {c} {c}p; do echo 1 2>/dev/null > /proc/sys/net/ipv6/conf/$i/disable_ipv6 || true; ip link set $i up; done"
        );
        let _ = writeln!(
            s,
            "tc filter add dev {w} ingress protocol ip u32 match ip src {a}/32 action mirred egress mirror dev {c}"
        );
        let _ = writeln!(
            s,
            "tc filter add dev {w} egress protocol ip u32 match ip dst {a}/32 action mirred egress mirror dev {c}"
        );
    }
    let guard = r.priority_base + 999;
    let _ = writeln!(
        s,
        "# Anything else arriving on the WLAN never reaches the main table.\nrule {guard} iif {} unreachable\nip -6 rule del priority {guard} 2>/dev/null || true\nip -6 rule add iif {} unreachable priority {guard}",
        r.wlan_if, r.wlan_if
    );
    s
}

/// The router interface on which phone `name` is captured (`c-<name>`,
/// see `router-up.sh`): the `interface` of the phone in a scenario.
pub fn capture_if(name: &str) -> String {
    format!("c-{name}")
}

/// Writes `files` under `out` with their modes (secrets created 0600 from
/// the start, never world-readable even briefly).
pub fn write(out: &Path, files: &[GenFile]) -> Result<(), RouterError> {
    for f in files {
        let path = out.join(&f.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        crate::atomic_file::write_mode(&path, f.text.as_bytes(), f.mode).map_err(io(&path))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// Loads/generates keys, renders and writes everything to `out`; returns
/// the files written.
pub fn generate(
    lab: &RealLab,
    out: &Path,
    install_dir: &Path,
) -> Result<Vec<GenFile>, RouterError> {
    let pass = read_passphrase(&lab.router.passphrase_file)?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let keys = tunnel_keys(lab, out)?;
    let files = render(lab, &pass, &keys, install_dir).map_err(|message| RouterError::Invalid {
        path: out.to_path_buf(),
        message,
    })?;
    write(out, &files)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> RealLab {
        let p = crate::source_dir().join("tests/fixtures/reallab/lab.yaml");
        RealLab::load(&p).unwrap()
    }

    fn keys(i: usize) -> TunnelKeys {
        let k = |side: &str| Keys {
            private: format!("{side}-PRIVATE-{i}"),
            public: format!("{side}-PUBLIC-{i}"),
        };
        TunnelKeys {
            router: k("ROUTER"),
            node: k("NODE"),
        }
    }

    #[test]
    fn hostapd_band_follows_the_channel() {
        let mut lab = lab();
        let g = hostapd_conf(&lab, "/etc/x");
        assert!(g.contains("hw_mode=g\nchannel=6\n") && !g.contains("ieee80211ac"));
        assert!(g.contains("wpa_psk_file=/etc/x/hostapd.psk\n"));
        lab.router.channel = 36;
        let a = hostapd_conf(&lab, "/etc/x");
        assert!(
            a.contains("ieee80211h=1\nhw_mode=a\nchannel=36\n") && a.contains("ieee80211ac=1\n")
        );
    }

    #[test]
    fn psk_and_accept_list_every_phone_mac() {
        let (psk, accept) = hostapd_lists(&lab(), "secret-pass");
        assert_eq!(
            psk,
            "# MAC passphrase (one line per phone)\n3c:2e:f9:00:00:01 secret-pass\n3c:2e:f9:00:00:02 secret-pass\n"
        );
        assert!(accept.ends_with("\n3c:2e:f9:00:00:01\n3c:2e:f9:00:00:02\n"));
        assert!(!accept.contains("secret-pass"));
    }

    #[test]
    fn dnsmasq_and_sysctl_per_phone_and_wlan() {
        let lab = lab();
        let d = dnsmasq_conf(&lab, &lab.tunnels(), lab.wlan_net().unwrap());
        assert!(d.contains("port=0\n") && d.contains("dhcp-ignore=tag:!known\n"));
        for p in &lab.phones {
            assert!(d.contains(&format!(",set:{},{},{},12h\n", p.name, p.addr, p.name)));
        }
        let s = sysctl_conf(&lab);
        assert!(s.contains("net.ipv6.conf.wlp2s0.disable_ipv6 = 1\n"));
        assert!(s.contains("net.ipv4.ip_forward = 1\n"));
    }

    #[test]
    fn leak_guards_list_every_tunnel() {
        let lab = lab();
        let t = lab.tunnels();
        let n = nft_rules(&lab, &t, "198.18.100.0/24");
        assert!(n.contains("iifname \"wlp2s0\" oifname { \"wg-de-1\", \"wg-br-1\" } accept\n"));
        assert!(n.contains("ip daddr 198.18.100.0/24 accept\n"));
        let ip = iptables_rules(&lab, &t, "198.18.100.0/24");
        for tun in ["wg-de-1", "wg-br-1"] {
            assert!(ip.contains(&format!("-A FORWARD -i wlp2s0 -o {tun} -j ACCEPT\n")));
            assert!(ip.contains(&format!(
                "-A FORWARD -i {tun} -o wlp2s0 -d 198.18.100.0/24 -j ACCEPT\n"
            )));
        }
        // The guard comes after the tunnels' accepts.
        let guard = ip.find("leak guard").unwrap();
        assert!(ip.find("-o wg-br-1 -j ACCEPT").unwrap() < guard);
        assert!(ip.ends_with("-A FORWARD -o wlp2s0 -j DROP\nCOMMIT\n"));
    }

    #[test]
    fn node_files_pair_keys_and_describe_the_tunnel() {
        let mut lab = lab();
        lab.nodes[1].host = "2001:db8::7".into();
        let t = lab.tunnels();
        let [rc, nc, json] =
            node_files(&lab, &lab.nodes[1], &t[1], &keys(1), "198.18.100.0/24").unwrap();
        assert_eq!(rc.rel, PathBuf::from("wg/router-br-1.conf"));
        assert!(rc.text.contains("PrivateKey = ROUTER-PRIVATE-1\n"));
        assert!(rc.text.contains("PublicKey = NODE-PUBLIC-1\n"));
        assert!(rc.text.contains("Endpoint = [2001:db8::7]:51821\n"));
        assert!(
            nc.text
                .contains("PrivateKey = NODE-PRIVATE-1\nListenPort = 51821\n")
        );
        assert!(nc.text.contains("PublicKey = ROUTER-PUBLIC-1\n"));
        assert!(
            [&rc, &nc, &json]
                .iter()
                .all(|f| f.secret && f.mode == 0o600)
        );
        let nt: NodeTunnel = serde_json::from_str(&json.text).unwrap();
        assert_eq!(nt.wg_conf, nc.text);
        let inner = format!("{}/32", t[1].router_addr);
        assert_eq!(nt.nat_sources, ["198.18.100.0/24", inner.as_str()]);
        assert_eq!(
            (nt.uplink.as_str(), nt.dns_upstream),
            ("ens3", Some(Ipv4Addr::new(198, 51, 100, 53)))
        );
    }
}
