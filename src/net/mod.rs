//! Real-lab network mechanisms: tunnels, policy routing, live capture, the node agent over SSH.

pub mod agent;
pub mod ssh;
