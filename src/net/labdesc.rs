//! `lab.json` (schema `matador/lab/1`, see `docs/campaign-record.md`): what a
//! campaign needs to use a lab, real or virtual: the router (and how to run
//! commands on it), the nodes with their SSH endpoints and tunnels, the
//! phones with their ADB addresses. The virtual lab adds namespaces, the lab
//! mmdb and its state file.
//!
//! The format lives in the product (not in the virtual lab's crate) because
//! the campaign and the router read it; the lab only writes it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors reading or writing a lab description, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LabDescError {
    /// The file is not a valid description.
    #[error("{path}: {message}")]
    Invalid {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Schema tag.
pub const SCHEMA: &str = "matador/lab/1";

/// How to reach a node's SSH server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshEndpoint {
    /// Address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Private key file.
    pub identity: PathBuf,
    /// known_hosts file holding the node's host key (host-key checking on).
    pub known_hosts: PathBuf,
}

/// A node's tunnel as seen from the router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelDesc {
    /// Tunnel interface on the router.
    pub router_if: String,
    /// Tunnel interface on the node.
    pub node_if: String,
    /// Router's inner address.
    pub router_addr: String,
    /// Node's inner address.
    pub node_addr: String,
    /// Router's inner IPv6 address (dual stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_addr6: Option<String>,
    /// Node's inner IPv6 address (dual stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_addr6: Option<String>,
    /// Routing table on the router.
    pub table: u32,
    /// Node's public endpoint (`addr:port`).
    pub endpoint: String,
    /// The node's uplink interface (where NAT happens, capture point).
    pub node_uplink: String,
}

/// A host of the lab (node, router, server, phone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDesc {
    /// Name.
    pub name: String,
    /// Country (ISO alpha-2).
    pub country: String,
    /// Main address.
    pub addr: String,
    /// Main IPv6 address (dual stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr6: Option<String>,
    /// `node`, `router`, `server` or `phone`.
    pub kind: String,
    /// AS number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Network namespace (virtual lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Command prefix that runs a command on this host (e.g.
    /// `ip netns exec NS`); empty: run locally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    /// SSH endpoint (nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
    /// Tunnel (nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelDesc>,
    /// App backends served here (servers): app id → address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, String>,
    /// IPv6 addresses of the app backends (servers, dual stack).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps6: BTreeMap<String, String>,
}

/// A phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneDesc {
    /// Name.
    pub name: String,
    /// ADB serial.
    pub serial: String,
    /// ADB address (`adb connect` target).
    pub adb: String,
    /// WLAN address.
    pub addr: String,
    /// WLAN IPv6 address (dual stack; static, see docs/lab.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr6: Option<String>,
    /// Node its traffic leaves through.
    pub node: String,
    /// Policy-routing rule priority on the router.
    pub rule_priority: u32,
    /// Network namespace (virtual lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Control socket of the simulator (virtual lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<PathBuf>,
}

/// The whole description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabDesc {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Lab name.
    pub name: String,
    /// Unique id of this lab instance.
    pub id: String,
    /// Virtual (namespaces) or real.
    pub virtual_lab: bool,
    /// Router, nodes and servers.
    pub nodes: Vec<NodeDesc>,
    /// Phones.
    pub phones: Vec<PhoneDesc>,
    /// The phones' resolver.
    pub resolver: String,
    /// The phones' resolver on IPv6 (dual stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver6: Option<String>,
    /// Router's WLAN interface (capture point per phone).
    pub wlan_if: String,
    /// Lab mmdb (virtual lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmdb: Option<PathBuf>,
    /// State file (virtual lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PathBuf>,
    /// The matador binary the nodes run as `matador agent` over SSH (the
    /// virtual lab's nodes share the host's file system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_matador: Option<PathBuf>,
    /// Active measurements must stay inside these prefixes.
    pub allowed_targets: Vec<String>,
    /// Port of the lab's own adb server (virtual lab), which has every
    /// simulated phone connected: `ANDROID_ADB_SERVER_PORT=<port> adb devices`
    /// and `matador devices` list them like USB phones. Each lab has its own,
    /// so parallel labs and unplug tests do not disturb each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adb_server: Option<u16>,
}

impl LabDesc {
    /// The router entry.
    pub fn router(&self) -> Option<&NodeDesc> {
        self.nodes.iter().find(|n| n.kind == "router")
    }

    /// A node or server by name.
    pub fn node(&self, name: &str) -> Option<&NodeDesc> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A phone by name.
    pub fn phone(&self, name: &str) -> Option<&PhoneDesc> {
        self.phones.iter().find(|p| p.name == name)
    }

    /// Writes the description atomically.
    pub fn write(&self, path: &Path) -> Result<(), LabDescError> {
        let io = |source| LabDescError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| LabDescError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        crate::atomic_file::write(path, (text + "\n").as_bytes()).map_err(io)
    }

    /// Reads and checks a description.
    pub fn read(path: &Path) -> Result<LabDesc, LabDescError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabDescError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let d: LabDesc = serde_json::from_str(&text).map_err(|e| LabDescError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if d.schema != SCHEMA {
            return Err(LabDescError::Invalid {
                path: path.to_path_buf(),
                message: format!("schema {:?}, expected {SCHEMA:?}", d.schema),
            });
        }
        Ok(d)
    }
}
