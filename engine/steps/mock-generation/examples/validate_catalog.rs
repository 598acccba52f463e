//! Validates HDF5 files against a `validate:` spec, as flow does before a task counts as done.
//!
//! ```text
//! cargo run -p flow-mock-generation --example validate_catalog -- SPEC_JSON FILE...
//! cargo run -p flow-mock-generation --example validate_catalog -- \
//!     '{"datasets": ["galaxies/pos"], "min_rows": 1}' catalogs/r0000/mock_z1.000.hdf5
//! ```
//! Prints one line per file (the report as JSON, or the error); exits 1 if any file is
//! invalid, 2 on bad arguments.

use flow_mock_generation::{validate_output, ValidationSpec};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((spec_json, files)) = args.split_first().filter(|(_, files)| !files.is_empty()) else {
        eprintln!("usage: validate_catalog SPEC_JSON FILE...");
        return ExitCode::from(2);
    };
    let spec: ValidationSpec = match serde_json::from_str(spec_json) {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("invalid spec: {error}");
            return ExitCode::from(2);
        }
    };
    let mut all_valid = true;
    for file in files {
        match validate_output(Path::new(file), &spec) {
            Ok(report) => match serde_json::to_string(&report) {
                Ok(json) => println!("valid {json}"),
                Err(error) => println!("valid {file} (report not printable: {error})"),
            },
            Err(error) => {
                all_valid = false;
                println!("{error}");
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
