//! Analysis of stored captures: decoding, flows, DNS, TLS/QUIC/HTTP names,
//! app attribution and interference. Works on files alone, so a replay gives
//! exactly what a live campaign's post-processing gave.

pub mod addresses;
pub mod attribution;
pub mod correlate;
pub mod decode;
pub mod dns;
pub mod flows;
pub mod interference;
pub mod model;
pub mod names;
pub mod packet;
pub mod replay;
pub mod replay_shard;
pub mod spill;
