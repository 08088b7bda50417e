//! [`Vantage`] over `net/`: per-measurement assignment of a phone to a
//! node's tunnel on the router (policy routing), and the node's health
//! (tunnel handshake and ping, DNS routed through the tunnel).
//!
//! The tunnels themselves and their routing tables are campaign-wide: they
//! are built once (by `matador lab up` in the virtual lab, or by the
//! operator's router set-up, with `net::wg` and `net::routing::tunnel_table`)
//! and described to this type by [`NodeRoute`]s. A measurement then only
//! moves the phone's `ip rule` to the chosen node's table, which is quick and
//! cannot leak: a table whose tunnel is gone drops traffic.

use super::env::{EnvError, Vantage};
use crate::net::cmd::Cmd;
use crate::net::health::{DnsCheck, TunnelCheck, check_dns, check_tunnel};
use crate::net::routing::assign_phone;
use crate::net::state::StateFile;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// A node's tunnel on the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoute {
    /// Routing table whose default route is the tunnel.
    pub table: u32,
    /// Tunnel interface on the router.
    pub tunnel_if: String,
    /// The node's address inside the tunnel (pinged by the check).
    pub peer: IpAddr,
}

/// A phone as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRoute {
    /// The phone's address on the WLAN.
    pub addr: IpAddr,
    /// `ip rule` priority reserved for this phone.
    pub priority: u32,
    /// The router's interface towards the phone.
    pub wlan_if: String,
    /// The phone's resolver, to check DNS goes through the node.
    pub resolver: Option<SocketAddr>,
    /// Namespace to ask DNS from (the phone's, in the virtual lab).
    pub ask_from: Option<String>,
}

/// Policy routing on a (real or namespaced) router.
#[derive(Debug)]
pub struct NetVantage {
    router_ns: Option<String>,
    nodes: HashMap<String, NodeRoute>,
    phones: HashMap<String, PhoneRoute>,
    /// A name the resolvers must answer.
    dns_name: String,
    /// `None` once torn down (on drop).
    state: Mutex<Option<StateFile>>,
    assigned: Mutex<HashMap<String, String>>,
}

fn err(e: impl std::fmt::Display) -> EnvError {
    EnvError::new(e.to_string())
}

impl NetVantage {
    /// Routing on the router `router_ns` (`None`: this machine); objects
    /// created on a real router are recorded in `state` for teardown.
    pub fn new(
        router_ns: Option<String>,
        nodes: HashMap<String, NodeRoute>,
        phones: HashMap<String, PhoneRoute>,
        dns_name: impl Into<String>,
        state: StateFile,
    ) -> NetVantage {
        NetVantage {
            router_ns,
            nodes,
            phones,
            dns_name: dns_name.into(),
            state: Mutex::new(Some(state)),
            assigned: Mutex::new(HashMap::new()),
        }
    }

    fn phone(&self, phone: &str) -> Result<&PhoneRoute, EnvError> {
        self.phones
            .get(phone)
            .ok_or_else(|| EnvError::new(format!("{phone}: not known to the router")))
    }

    fn node(&self, node: &str) -> Result<&NodeRoute, EnvError> {
        self.nodes
            .get(node)
            .ok_or_else(|| EnvError::node(format!("{node}: no tunnel on the router")))
    }

    /// The node a phone is currently assigned to.
    pub fn assigned(&self, phone: &str) -> Option<String> {
        self.assigned.lock().ok()?.get(phone).cloned()
    }
}

impl Drop for NetVantage {
    /// The campaign is over: what it recorded on the router is undone
    /// (rules a teardown deleted already are skipped) and its state file
    /// removed — it stayed behind under /run/matador before.
    fn drop(&mut self) {
        let st = match self.state.get_mut() {
            Ok(st) => st.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(st) = st {
            for problem in st.teardown() {
                eprintln!("warning: router teardown: {problem}");
            }
        }
    }
}

impl Vantage for NetVantage {
    fn connect(&self, phone: &str, node: &str) -> Result<(), EnvError> {
        let p = self.phone(phone)?;
        let n = self.node(node)?;
        let mut st = self.state.lock().map_err(err)?;
        let st = st
            .as_mut()
            .ok_or_else(|| err("the router's state is torn down"))?;
        assign_phone(st, self.router_ns.as_deref(), p.addr, n.table, p.priority).map_err(err)?;
        self.assigned
            .lock()
            .map_err(err)?
            .insert(phone.to_string(), node.to_string());
        Ok(())
    }

    fn check(&self, phone: &str, node: &str) -> Result<(), EnvError> {
        let p = self.phone(phone)?;
        let n = self.node(node)?;
        check_tunnel(&TunnelCheck {
            node: node.to_string(),
            router_ns: self.router_ns.clone(),
            ifname: n.tunnel_if.clone(),
            peer: n.peer,
        })
        .map_err(|e| EnvError::node(e.to_string()))?;
        if let Some(resolver) = p.resolver {
            check_dns(&DnsCheck {
                node: node.to_string(),
                router_ns: self.router_ns.clone(),
                wlan_if: p.wlan_if.clone(),
                tunnel_if: n.tunnel_if.clone(),
                phone: p.addr,
                ask_from: p.ask_from.clone(),
                resolver,
                name: self.dns_name.clone(),
            })
            .map_err(|e| EnvError::node(e.to_string()))?;
        }
        Ok(())
    }

    fn disconnect(&self, phone: &str) -> Result<(), EnvError> {
        let p = self.phone(phone)?;
        let fam = if p.addr.is_ipv4() { "-4" } else { "-6" };
        // Idempotent: a missing rule is fine.
        Cmd::new("ip")
            .netns(self.router_ns.as_deref())
            .args([fam, "rule", "del", "priority", &p.priority.to_string()])
            .succeeds()
            .map_err(err)?;
        self.assigned.lock().map_err(err)?.remove(phone);
        Ok(())
    }
}
