//! Files a campaign names (campaign and machine YAML, environment files, inputs,
//! structures, pseudopotentials, recovery policies, sbatch templates): read only when they
//! are regular files, never past [`MAX_BYTES`], and never waiting on a FIFO's writer.

use std::io::Read;
use std::path::Path;

/// The most flow reads of any one file a campaign names.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Not a regular file (a device such as /dev/zero, a FIFO, a directory, a socket).
    NotRegular(&'static str),
    /// Larger than [`MAX_BYTES`].
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(what) => {
                write!(
                    f,
                    "it is {what}, not a regular file (flow reads only regular files)"
                )
            }
            ReadError::TooLarge(n) => write!(
                f,
                "it is {} MB, larger than flow reads ({} MB)",
                n / 1_000_000,
                MAX_BYTES / 1_000_000
            ),
        }
    }
}

/// Read a regular file of at most [`MAX_BYTES`]. Devices, FIFOs and directories are refused
/// before a byte is read (the open does not wait for a FIFO's writer), and a file that grows
/// while it is read is cut off at the cap and refused.
pub fn read_capped(path: &std::path::Path) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open_regular(path)?;
    if meta.len() > MAX_BYTES as u64 {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > MAX_BYTES {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text: a drop-in for `std::fs::read_to_string` on any file a
/// campaign names. A refused file is an `InvalidData` error whose text says why.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = read_capped(path).map_err(std::io::Error::from)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

impl From<ReadError> for std::io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// The first `max_bytes` of a regular file (a header), refused like [`read_capped`].
pub fn read_prefix(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let (file, _) = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max_bytes)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    Ok(bytes)
}

/// The BLAKE3 digest of a regular file of any size, read in blocks (an input data file may
/// be far larger than [`MAX_BYTES`]; it is hashed, never held).
pub fn hash_regular_file(path: &Path) -> Result<blake3::Hash, ReadError> {
    let (file, _) = open_regular(path)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(ReadError::Io)?;
    Ok(hasher.finalize())
}

/// Open `path` for reading without blocking on a FIFO, and refuse anything that is not a
/// regular file before a byte is read.
fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), ReadError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(ReadError::NotRegular(if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a file"
        }));
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; mkfifo touches no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for path in [Path::new("/dev/zero"), fifo.as_path(), dir.path()] {
            assert!(
                matches!(read_capped(path), Err(ReadError::NotRegular(_))),
                "{path:?}"
            );
            assert!(
                matches!(hash_regular_file(path), Err(ReadError::NotRegular(_))),
                "{path:?}"
            );
            assert!(read_text(path)
                .unwrap_err()
                .to_string()
                .contains("not a regular file"));
        }
        let file = dir.path().join("f");
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(read_text(&file).unwrap(), "abc");
        assert_eq!(hash_regular_file(&file).unwrap(), blake3::hash(b"abc"));
    }
}
