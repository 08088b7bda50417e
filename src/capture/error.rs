//! Errors of the capture reader. Every variant names the file and, where the
//! file itself is at fault, the byte offset and the frame number concerned.

use std::io;

/// A problem reading a capture file. Frames yielded before the error are valid.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened.
    #[error("{file}: cannot open: {source}")]
    Open {
        /// The file.
        file: String,
        /// Why.
        source: io::Error,
    },
    /// Reading failed at the operating-system level.
    #[error("{file}: read error at byte {offset} (frame {frame}): {source}")]
    Io {
        /// The file.
        file: String,
        /// Byte offset where the read was attempted.
        offset: u64,
        /// Frame (1-based) being read.
        frame: u64,
        /// Why.
        source: io::Error,
    },
    /// The file does not start with a pcap or pcapng magic number.
    #[error("{file}: not a pcap or pcapng file (magic {magic})")]
    NotACapture {
        /// The file.
        file: String,
        /// The first bytes, in hex.
        magic: String,
    },
    /// The file ends in the middle of a header or record.
    #[error(
        "{file}: truncated at byte {offset}: frame {frame} needs {needed} bytes but the file ends after {available}"
    )]
    Truncated {
        /// The file.
        file: String,
        /// Byte offset of the incomplete record.
        offset: u64,
        /// Frame (1-based) that could not be read.
        frame: u64,
        /// Bytes the record needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// A header or record is malformed.
    #[error("{file}: corrupt at byte {offset} (frame {frame}): {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// Frame (1-based) that could not be read.
        frame: u64,
        /// What is wrong.
        reason: String,
    },
}

impl CaptureError {
    /// The file concerned.
    pub fn file(&self) -> &str {
        match self {
            CaptureError::Open { file, .. }
            | CaptureError::Io { file, .. }
            | CaptureError::NotACapture { file, .. }
            | CaptureError::Truncated { file, .. }
            | CaptureError::Corrupt { file, .. } => file,
        }
    }

    /// Byte offset where reading failed, when the file's content is at fault.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Open { .. } => None,
            CaptureError::NotACapture { .. } => Some(0),
            CaptureError::Io { offset, .. }
            | CaptureError::Truncated { offset, .. }
            | CaptureError::Corrupt { offset, .. } => Some(*offset),
        }
    }

    /// The 1-based frame number that could not be read, when known.
    pub fn frame(&self) -> Option<u64> {
        match self {
            CaptureError::Open { .. } | CaptureError::NotACapture { .. } => None,
            CaptureError::Io { frame, .. }
            | CaptureError::Truncated { frame, .. }
            | CaptureError::Corrupt { frame, .. } => Some(*frame),
        }
    }
}
