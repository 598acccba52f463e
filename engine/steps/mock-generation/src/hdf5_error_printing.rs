//! Keeping the HDF5 library from printing its error stack to stderr.
//!
//! HDF5 prints every error stack (`HDF5-DIAG: Error detected in HDF5 ...`) unless told not
//! to, and in thread-safe builds (Debian's among them) that setting belongs to each thread.
//! The `hdf5` crate turns printing off only on the thread that first touches the library,
//! so every thread that validates must turn it off for itself: flow reports HDF5 errors as
//! values ([`crate::OutputInvalid`]), never as noise on the driver's terminal.

use std::cell::Cell;

thread_local! {
    static SILENCED: Cell<bool> = const { Cell::new(false) };
}

/// Turns HDF5's automatic error printing off for the calling thread (once per thread;
/// later calls cost a thread-local read). Called by every function of this crate that
/// touches HDF5; call it yourself before using the `hdf5` crate directly on a new thread.
pub fn silence_hdf5_error_printing() {
    SILENCED.with(|silenced| {
        if !silenced.get() {
            hdf5::silence_errors(true);
            silenced.set(true);
        }
    });
}
