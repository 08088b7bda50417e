//! Reading packet captures (pcap, pcapng) and, for live measurements,
//! capturing them with libpcap. This module reads packets; it does not
//! interpret them (that is [`crate::analysis`]).
//!
//! [`CaptureReader`] streams a file through a bounded buffer (it never loads
//! the file), detects the format by its magic number (never by the file
//! name) and yields [`RawFrame`]s numbered from 1, as Wireshark numbers them.

mod error;
mod linktype;
pub mod live;
mod reader;
mod timestamp;

pub use error::CaptureError;
pub use linktype::LinkType;
pub use reader::{CaptureFormat, CaptureReader, InterfaceInfo, RawFrame, is_capture_magic};
pub use timestamp::Timestamp;
