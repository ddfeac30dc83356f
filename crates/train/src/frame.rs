//! The framing shared by model files and checkpoints: a header that names the file type and
//! format version, then the payload's length and CRC-32, then a bincode payload.
//!
//! ```text
//! offset 0   8 bytes  magic ("TWOTOWER", "TTCHECKP")
//! offset 8   u32      format version
//! offset 12  u64      payload length in bytes
//! offset 20  u32      CRC-32 (IEEE) of the payload
//! offset 24  payload  bincode 1.x, fixed-width little-endian integers; nothing may follow it
//! ```

use bincode::Options;

/// Bytes before the payload: magic, version, length, checksum.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Why bytes are not a sound frame of the expected type and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Another magic, or too short to hold one.
    Foreign,
    /// The right magic, another format version.
    Version(u32),
    /// The payload is shorter or longer than the header says.
    Length { expected: u64, found: u64 },
    /// The payload's CRC-32 differs from the header's.
    Checksum { expected: u32, found: u32 },
}

/// The payload codec: fixed-width little-endian integers, no trailing bytes, and at most `limit`
/// bytes read (so no length field can make it allocate beyond the file).
pub(crate) fn codec(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().reject_trailing_bytes().with_limit(limit)
}

/// `header ‖ payload`.
pub(crate) fn seal(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The payload of a frame of type `magic` and format `version`, its header checked in order:
/// magic, version, length (truncation and trailing bytes), checksum.
pub(crate) fn open<'a>(bytes: &'a [u8], magic: &[u8; 8], version: u32) -> Result<&'a [u8], FrameError> {
    let rest = bytes.strip_prefix(magic).ok_or(FrameError::Foreign)?;
    let (found, rest) = rest.split_first_chunk::<4>().ok_or(FrameError::Foreign)?;
    let found = u32::from_le_bytes(*found);
    if found != version {
        return Err(FrameError::Version(found));
    }
    let (Some((length, rest)), true) = (rest.split_first_chunk::<8>(), rest.len() >= 12) else {
        return Err(FrameError::Length { expected: 0, found: 0 });
    };
    let (checksum, payload) = rest.split_first_chunk::<4>().expect("checked above");
    let expected = u64::from_le_bytes(*length);
    if expected != payload.len() as u64 {
        return Err(FrameError::Length { expected, found: payload.len() as u64 });
    }
    let (expected, found) = (u32::from_le_bytes(*checksum), crc32fast::hash(payload));
    if expected != found {
        return Err(FrameError::Checksum { expected, found });
    }
    Ok(payload)
}

/// The decoder's error in words (bincode's own text for a short read is empty).
pub(crate) fn describe(error: &bincode::Error) -> String {
    match &**error {
        bincode::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the payload ends before its contents do".to_string()
        }
        bincode::ErrorKind::SizeLimit => "a length field points past the end of the payload".to_string(),
        other => other.to_string(),
    }
}
