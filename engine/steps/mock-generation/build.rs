//! Tells the crate whether the linked HDF5 can open files without `flock` locking
//! (`H5Pset_file_locking`, HDF5 1.10.7+ and 1.12.1+). hdf5-sys, which finds the library,
//! passes the version to direct dependents as `DEP_HDF5_VERSION_X_Y_Z` variables.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hdf5_file_locking_api)");
    let has = |version: &str| std::env::var_os(format!("DEP_HDF5_VERSION_{version}")).is_some();
    if (has("1_10_7") && !has("1_12_0")) || has("1_12_1") {
        println!("cargo::rustc-cfg=hdf5_file_locking_api");
    }
}
