//! [`CapturePoint`]s over the capture and net layers: the router's
//! interface towards each phone (libpcap, `capture::live`, optionally inside
//! the router's network namespace) and each node's tunnel exit (through the
//! node agent over SSH, fetched and checksum-verified into the measurement
//! folder).

use super::agents::AgentPool;
use super::env::{CapturePoint, EnvError};
use crate::capture::live::{LiveCapture, LiveSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn err(e: impl std::fmt::Display) -> EnvError {
    EnvError::new(e.to_string())
}

/// File prefix (`capture-router-lab-a`) of a capture file path.
fn prefix_of(file: &Path) -> Result<(PathBuf, String), EnvError> {
    let dir = file
        .parent()
        .ok_or_else(|| EnvError::new(format!("{}: no folder", file.display())))?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| EnvError::new(format!("{}: bad file name", file.display())))?;
    Ok((dir.to_path_buf(), stem.to_string()))
}

/// Router-side captures: `router-<phone>` on the phone's interface.
pub struct RouterCaptures {
    ns: Option<String>,
    interfaces: HashMap<String, String>,
    snaplen: u32,
    running: Mutex<HashMap<String, LiveCapture>>,
}

impl std::fmt::Debug for RouterCaptures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterCaptures")
            .field("ns", &self.ns)
            .field("interfaces", &self.interfaces)
            .finish()
    }
}

impl RouterCaptures {
    /// Captures on the router (`ns`: its namespace, `None`: this host);
    /// `interfaces` maps phone ids to the router's interface towards them.
    pub fn new(ns: Option<String>, interfaces: HashMap<String, String>, snaplen: u32) -> Self {
        RouterCaptures {
            ns,
            interfaces,
            snaplen,
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl CapturePoint for RouterCaptures {
    fn start(&self, point: &str, file: &Path) -> Result<(), EnvError> {
        let phone = point
            .strip_prefix("router-")
            .ok_or_else(|| EnvError::new(format!("{point}: not a router capture point")))?;
        let iface = self
            .interfaces
            .get(phone)
            .ok_or_else(|| EnvError::new(format!("{point}: no router interface for {phone}")))?;
        let (dir, prefix) = prefix_of(file)?;
        let mut spec = LiveSpec::new(iface.clone(), prefix);
        spec.snaplen = self
            .snaplen
            .clamp(64, crate::capture::live::DEFAULT_SNAPLEN);
        // libpcap binds to the interface of the namespace it is opened in;
        // the capture keeps running after the opening thread is gone.
        let cap = crate::net::netns::run_in(self.ns.as_deref(), move || {
            LiveCapture::start(&spec, &dir).map_err(std::io::Error::other)
        })
        .map_err(err)?;
        self.running
            .lock()
            .map_err(err)?
            .insert(point.to_string(), cap);
        Ok(())
    }

    fn stop(&self, point: &str) -> Result<(), EnvError> {
        let cap = self.running.lock().map_err(err)?.remove(point);
        match cap {
            Some(c) => c.stop().map(|_| ()).map_err(err),
            None => Ok(()),
        }
    }
}

/// Node-side captures through the node agents: `node-<node>`.
pub struct NodeCaptures {
    pool: Arc<AgentPool>,
    interface: String,
    running: Mutex<HashMap<String, (String, PathBuf)>>,
}

impl std::fmt::Debug for NodeCaptures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCaptures")
            .field("pool", &self.pool)
            .finish()
    }
}

impl NodeCaptures {
    /// Captures on the nodes' `interface` (e.g. their tunnel), through the
    /// pool's agents.
    pub fn new(pool: Arc<AgentPool>, interface: impl Into<String>) -> Self {
        NodeCaptures {
            pool,
            interface: interface.into(),
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl CapturePoint for NodeCaptures {
    fn start(&self, point: &str, file: &Path) -> Result<(), EnvError> {
        let node = point
            .strip_prefix("node-")
            .ok_or_else(|| EnvError::new(format!("{point}: not a node capture point")))?;
        let (_, prefix) = prefix_of(file)?;
        // Unique on the node: folder name + point + start time.
        let measurement = file
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("m");
        // An attempt's capture folder stays on the node after it stops, so a
        // retry of the same measurement needs a name of its own.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!("{measurement}-{prefix}-{stamp}");
        let spec = LiveSpec::new(self.interface.clone(), prefix);
        self.pool.runtime().block_on(async {
            let a = self.pool.agent(node).await?;
            if a.start_capture(&name, &spec).await.is_ok() {
                return Ok(());
            }
            // The cached agent may have died since its last use (killed,
            // node rebooted): reconnect once; failing that, the node is down.
            self.pool.forget(node).await;
            let a = self.pool.agent(node).await?;
            a.start_capture(&name, &spec)
                .await
                .map(|_| ())
                .map_err(|e| EnvError::node(e.to_string()))
        })?;
        self.running
            .lock()
            .map_err(err)?
            .insert(point.to_string(), (name, file.to_path_buf()));
        Ok(())
    }

    fn stop(&self, point: &str) -> Result<(), EnvError> {
        let Some((name, file)) = self.running.lock().map_err(err)?.remove(point) else {
            return Ok(());
        };
        let node = point.trim_start_matches("node-").to_string();
        let (dir, _) = prefix_of(&file)?;
        let fetched = self.pool.runtime().block_on(async {
            let a = self.pool.agent(&node).await?;
            match a.stop_capture(&name, &dir).await {
                Ok(f) => Ok(f),
                Err(e) => {
                    // This attempt's capture is lost (the agent died with it,
                    // or the link did): the attempt fails and its retry
                    // reconnects; a node that stays unreachable fails then.
                    self.pool.forget(&node).await;
                    Err(EnvError::new(e.to_string()))
                }
            }
        })?;
        // One file without rotation; it carries the prefix, so it is `file`.
        if !file.exists()
            && let Some(first) = fetched.files.first()
        {
            std::fs::rename(first, &file).map_err(err)?;
        }
        Ok(())
    }
}

/// Router and node captures behind one [`CapturePoint`].
#[derive(Debug)]
pub struct Captures {
    /// `router-*` points.
    pub router: RouterCaptures,
    /// `node-*` points (absent: node captures fail with a clear error).
    pub nodes: Option<NodeCaptures>,
}

impl CapturePoint for Captures {
    fn start(&self, point: &str, file: &Path) -> Result<(), EnvError> {
        if point.starts_with("node-") {
            match &self.nodes {
                Some(n) => n.start(point, file),
                None => Err(EnvError::new(format!("{point}: no node agents configured"))),
            }
        } else {
            self.router.start(point, file)
        }
    }

    fn stop(&self, point: &str) -> Result<(), EnvError> {
        if point.starts_with("node-") {
            self.nodes.as_ref().map_or(Ok(()), |n| n.stop(point))
        } else {
            self.router.stop(point)
        }
    }
}
