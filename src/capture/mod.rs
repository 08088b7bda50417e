//! Reading packet captures (pcap, pcapng) and, for live measurements,
//! capturing them with libpcap. This module reads packets; it does not
//! interpret them (that is [`crate::analysis`]).

mod timestamp;

pub use timestamp::Timestamp;
