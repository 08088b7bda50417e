//! ADB transport messages: a 24-byte little-endian header plus payload.
//!
//! The checksum (byte sum of the payload) is always filled in, because
//! adb_client rejects a zero, but never checked on input, because `adb` sends 0
//! after its first CNXN (see `ADB-NOTES.md`).

use tokio::io::{AsyncRead, AsyncReadExt};

/// `CNXN`: connection handshake.
pub const A_CNXN: u32 = 0x4e58_4e43;
/// `AUTH`: authentication exchange.
pub const A_AUTH: u32 = 0x4854_5541;
/// `OPEN`: open a stream to a service.
pub const A_OPEN: u32 = 0x4e45_504f;
/// `OKAY`: stream opened / write acknowledged.
pub const A_OKAY: u32 = 0x5941_4b4f;
/// `CLSE`: stream closed.
pub const A_CLSE: u32 = 0x4553_4c43;
/// `WRTE`: stream data.
pub const A_WRTE: u32 = 0x4554_5257;
/// `STLS`: TLS upgrade request (never sent by the simulator).
pub const A_STLS: u32 = 0x534c_5453;
/// Protocol version the simulator announces.
pub const A_VERSION: u32 = 0x0100_0001;
/// Largest payload the simulator announces and accepts (1 MiB).
pub const MAX_PAYLOAD: u32 = 1024 * 1024;

/// Errors reading the transport.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("adb transport i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The header's magic does not match its command.
    #[error("bad adb header: command {command:#010x} magic {magic:#010x}")]
    BadMagic {
        /// Command word.
        command: u32,
        /// Magic word received.
        magic: u32,
    },
    /// The payload is larger than announced.
    #[error("adb payload of {0} bytes exceeds the 1 MiB maximum")]
    TooLarge(u32),
}

/// One transport message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Command word (`A_*`).
    pub command: u32,
    /// First argument.
    pub arg0: u32,
    /// Second argument.
    pub arg1: u32,
    /// Payload.
    pub data: Vec<u8>,
}

impl Message {
    /// Builds a message.
    pub fn new(command: u32, arg0: u32, arg1: u32, data: Vec<u8>) -> Self {
        Message {
            command,
            arg0,
            arg1,
            data,
        }
    }

    /// Serialises header and payload, with checksum and magic filled in.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.data.len());
        let check: u32 = self
            .data
            .iter()
            .fold(0u32, |a, &b| a.wrapping_add(u32::from(b)));
        for word in [
            self.command,
            self.arg0,
            self.arg1,
            self.data.len() as u32,
            check,
            self.command ^ 0xffff_ffff,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// Four-letter name of the command, for logs and errors.
    pub fn name(&self) -> String {
        let b = self.command.to_le_bytes();
        if b.iter().all(|c| c.is_ascii_uppercase()) {
            String::from_utf8_lossy(&b).into_owned()
        } else {
            format!("{:#010x}", self.command)
        }
    }
}

/// Reads one message; `Ok(None)` at a clean end of stream before a header.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Message>, WireError> {
    let mut head = [0u8; 24];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        got += n;
    }
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (command, arg0, arg1, len, magic) = (word(0), word(4), word(8), word(12), word(20));
    if magic != command ^ 0xffff_ffff {
        return Err(WireError::BadMagic { command, magic });
    }
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge(len));
    }
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data).await?;
    Ok(Some(Message::new(command, arg0, arg1, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_with_checksum() {
        let m = Message::new(A_WRTE, 7, 9, b"hello".to_vec());
        let bytes = m.encode();
        assert_eq!(&bytes[0..4], b"WRTE");
        let sum = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(sum, b"hello".iter().map(|&b| u32::from(b)).sum::<u32>());
        let back = read_message(&mut bytes.as_slice()).await.unwrap().unwrap();
        assert_eq!(back, m);
        assert_eq!(back.name(), "WRTE");
    }

    #[tokio::test]
    async fn rejects_bad_magic_and_eof() {
        let mut bytes = Message::new(A_OKAY, 1, 2, vec![]).encode();
        bytes[20] ^= 1;
        assert!(read_message(&mut bytes.as_slice()).await.is_err());
        assert!(read_message(&mut &b""[..]).await.unwrap().is_none());
        assert!(read_message(&mut &b"OKAY"[..]).await.is_err());
    }
}
