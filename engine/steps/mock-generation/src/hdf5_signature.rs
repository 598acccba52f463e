//! Recognising an HDF5 file by its format signature, before asking the library to open it.
//!
//! The HDF5 superblock starts with an 8-byte signature at offset 0, or after a user block
//! at 512, 1024, 2048, ... bytes (HDF5 File Format Specification, "Format Signature").
//! Looking for it separates "not an HDF5 file at all" from "an HDF5 file the library cannot
//! open" (truncated, or left half-written by a killed writer).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The 8 bytes every HDF5 superblock starts with.
pub const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// The offsets where a superblock may start in a file of `size_bytes` bytes, in search
/// order: 0, then 512 doubling while the signature still fits in the file.
pub fn signature_offsets(size_bytes: u64) -> impl Iterator<Item = u64> {
    std::iter::once(0)
        .chain(std::iter::successors(Some(512u64), |offset| {
            offset.checked_mul(2)
        }))
        .take_while(move |offset| offset.saturating_add(HDF5_SIGNATURE.len() as u64) <= size_bytes)
}

/// Whether the file at `path` (of `size_bytes` bytes) carries the HDF5 signature at one
/// of the offsets where HDF5 looks for it. Fails only on I/O errors.
pub fn has_hdf5_signature(path: &Path, size_bytes: u64) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let mut buffer = [0u8; HDF5_SIGNATURE.len()];
    for offset in signature_offsets(size_bytes) {
        file.seek(SeekFrom::Start(offset))?;
        match file.read_exact(&mut buffer) {
            Ok(()) if buffer == HDF5_SIGNATURE => return Ok(true),
            Ok(()) => {}
            // The file shrank while we looked: no signature there.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_zero_then_powers_of_two_from_512_that_fit() {
        assert_eq!(signature_offsets(0).count(), 0);
        assert_eq!(signature_offsets(7).count(), 0);
        assert_eq!(signature_offsets(8).collect::<Vec<_>>(), vec![0]);
        assert_eq!(signature_offsets(520).collect::<Vec<_>>(), vec![0, 512]);
        assert_eq!(
            signature_offsets(5000).collect::<Vec<_>>(),
            vec![0, 512, 1024, 2048, 4096]
        );
        // 0, then 2^9 ..= 2^63: the doubling stops before it overflows.
        assert_eq!(signature_offsets(u64::MAX).count(), 56);
    }
}
