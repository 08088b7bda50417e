//! The campaign's connections to the node agents, shared by every step that
//! works on a node (node captures, paths, probes): one SSH connection per
//! node, opened on first use, reopened once when a cached one has died.
//! The campaign reaches a node only this way, in a real lab and in the
//! virtual one alike.

use super::env::EnvError;
use crate::net::agent::client::{Agent, AgentError, NodeConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// Agent connections by node name.
pub struct AgentPool {
    rt: tokio::runtime::Handle,
    configs: HashMap<String, NodeConfig>,
    agents: tokio::sync::Mutex<HashMap<String, Arc<Agent>>>,
}

impl std::fmt::Debug for AgentPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPool")
            .field("nodes", &self.configs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AgentPool {
    /// A pool over these nodes' agent configurations; calls block on `rt`.
    pub fn new(rt: tokio::runtime::Handle, configs: HashMap<String, NodeConfig>) -> Self {
        AgentPool {
            rt,
            configs,
            agents: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Whether `node` has an agent configuration.
    pub fn knows(&self, node: &str) -> bool {
        self.configs.contains_key(node)
    }

    /// The runtime the pool's calls run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    /// The node's agent, connecting if needed (a failure is the node's).
    pub async fn agent(&self, node: &str) -> Result<Arc<Agent>, EnvError> {
        let mut agents = self.agents.lock().await;
        if let Some(a) = agents.get(node) {
            return Ok(a.clone());
        }
        let cfg = self
            .configs
            .get(node)
            .ok_or_else(|| EnvError::node(format!("{node}: no agent configuration")))?;
        let a = Arc::new(
            Agent::connect(cfg)
                .await
                .map_err(|e| EnvError::node(e.to_string()))?,
        );
        agents.insert(node.to_string(), a.clone());
        Ok(a)
    }

    /// Drops a node's connection (the next call reconnects).
    pub async fn forget(&self, node: &str) {
        self.agents.lock().await.remove(node);
    }

    /// Runs `call` on the node's agent, blocking. A connection lost since
    /// its last use (agent killed, node rebooted) is reopened once; an
    /// error the agent answered is returned as is (not the node's fault).
    pub fn call<T, F, Fut>(&self, node: &str, call: F) -> Result<T, EnvError>
    where
        F: Fn(Arc<Agent>) -> Fut,
        Fut: std::future::Future<Output = Result<T, AgentError>>,
    {
        self.rt.block_on(async {
            let a = self.agent(node).await?;
            match call(a).await {
                Err(AgentError::Dead { .. }) => {
                    self.forget(node).await;
                    let a = self.agent(node).await?;
                    call(a).await.map_err(|e| from_agent(&e))
                }
                r => r.map_err(|e| from_agent(&e)),
            }
        })
    }
}

/// An agent error as a step error: a lost or unreachable node is the
/// node's failure (failover), an answered error is the request's.
pub fn from_agent(e: &AgentError) -> EnvError {
    match e {
        AgentError::Remote {
            kind: crate::net::agent::ErrorKind::UnknownOp,
            ..
        } => EnvError::new(format!(
            "{e} (the node runs an older matador: update it with `matador node install`)"
        )),
        AgentError::Remote { .. } | AgentError::Local { .. } | AgentError::Checksum { .. } => {
            EnvError::new(e.to_string())
        }
        _ => EnvError::node(e.to_string()),
    }
}
