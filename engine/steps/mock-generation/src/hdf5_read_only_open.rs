//! Opening an output read-only, without HDF5's file locks.
//!
//! HDF5 1.10+ takes an `flock` lock on every file it opens. For validation that lock buys
//! nothing (the writer has exited) and costs twice:
//! - on parallel file systems a lock is a round trip to the metadata server, or fails
//!   outright where `flock` is not supported;
//! - HDF5 opens files without `O_CLOEXEC`, so a process the driver starts while a file is
//!   open inherits the descriptor and keeps its lock alive; later opens of that file then
//!   fail with "unable to lock file, errno = 11".
//!
//! So validation opens files with locking off (`H5Pset_file_locking(fapl, false, true)`)
//! where the linked library has that call (1.10.7+, 1.12.1+: Debian 12 ships 1.10.8), and
//! with the library's default otherwise.

use std::path::Path;

/// Opens the HDF5 file at `path` read-only, with file locking disabled where the library
/// supports it. Fails with the library's error (its message names the reason, such as
/// `truncated file: eof = ...`), or when the path contains a NUL byte.
pub(crate) fn open_read_only(path: &Path) -> hdf5::Result<hdf5::File> {
    open_without_locking(path)
}

#[cfg(hdf5_file_locking_api)]
fn open_without_locking(path: &Path) -> hdf5::Result<hdf5::File> {
    use hdf5_sys::h5f::{H5Fopen, H5F_ACC_RDONLY};
    use hdf5_sys::h5p::H5Pset_file_locking;

    let c_path = c_path(path)?;
    let access = hdf5::plist::FileAccess::try_new()?;
    hdf5::sync::sync(|| {
        // SAFETY: `access` is a live file-access property list and `c_path` a NUL-terminated
        // string, both outliving these calls; the global HDF5 lock is held (sync).
        let configured = unsafe { H5Pset_file_locking(access.id(), 0, 1) };
        hdf5::h5check(configured)?;
        let file_id =
            hdf5::h5check(unsafe { H5Fopen(c_path.as_ptr(), H5F_ACC_RDONLY, access.id()) })?;
        // SAFETY: `file_id` is a valid file identifier just returned by H5Fopen; ownership
        // passes to the `File`, which closes it when dropped.
        unsafe { hdf5::from_id::<hdf5::File>(file_id) }
    })
}

#[cfg(not(hdf5_file_locking_api))]
fn open_without_locking(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::open(path)
}

#[cfg(all(hdf5_file_locking_api, unix))]
fn c_path(path: &Path) -> hdf5::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| hdf5::Error::from("the path contains a NUL byte"))
}

#[cfg(all(hdf5_file_locking_api, not(unix)))]
fn c_path(path: &Path) -> hdf5::Result<std::ffi::CString> {
    let text = path
        .to_str()
        .ok_or_else(|| hdf5::Error::from("the path is not valid UTF-8"))?;
    std::ffi::CString::new(text).map_err(|_| hdf5::Error::from("the path contains a NUL byte"))
}
