//! The virtual lab: network namespaces for phones, router, nodes, hops, app servers and a censor, plus the phone simulator.

pub mod phone;
