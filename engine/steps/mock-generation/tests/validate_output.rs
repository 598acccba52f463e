//! `validate_output` against files made with the real HDF5 library.

mod common;

use common::{catalog_spec, write_catalog, CatalogContents};
use flow_dsl::error_class::ErrorClass;
use flow_mock_generation::{validate_output, OutputInvalid, OutputProblem, ValidationSpec};
use hdf5::types::{FixedAscii, VarLenUnicode};
use std::path::{Path, PathBuf};

fn catalog(dir: &Path, contents: &CatalogContents) -> PathBuf {
    let path = dir.join("mock_z1.000.hdf5");
    write_catalog(&path, contents);
    path
}

/// Validates a file expected to be invalid; checks the message names the file.
fn refused(path: &Path, spec: &ValidationSpec) -> OutputInvalid {
    let error = validate_output(path, spec).expect_err("the file should be refused");
    assert_eq!(error.file, path);
    assert_eq!(error.error_class(), ErrorClass::InvalidOutput);
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message does not name the file: {message}"
    );
    error
}

#[test]
fn a_complete_catalog_passes_and_is_described() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    let report = validate_output(&path, &catalog_spec()).expect("valid catalog");
    assert_eq!(report.file, path);
    assert_eq!(report.datasets.len(), 2);
    assert_eq!(report.datasets[0].path, "galaxies/pos");
    assert_eq!(report.datasets[0].shape, vec![100, 3]);
    assert_eq!(report.datasets[0].rows(), Some(100));
    assert_eq!(report.datasets[1].shape, vec![100]);
    assert_eq!(report.groups, vec!["galaxies".to_string()]);
    assert_eq!(
        report.attributes,
        vec!["realization", "redshift", "galaxies/pos@units"]
    );
    assert_eq!(
        report.fingerprint.size_bytes,
        std::fs::metadata(&path).unwrap().len()
    );
    // Leading slashes are accepted.
    let spec = ValidationSpec {
        datasets: vec!["/galaxies/id".into()],
        groups: vec!["/".into(), "/galaxies/".into()],
        ..ValidationSpec::default()
    };
    validate_output(&path, &spec).expect("absolute paths");
}

#[test]
fn the_empty_spec_still_requires_an_hdf5_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    validate_output(&path, &ValidationSpec::default()).expect("opens");
    let text = dir.path().join("notes.hdf5");
    std::fs::write(&text, "not hdf5").unwrap();
    refused(&text, &ValidationSpec::default());
}

#[test]
fn a_missing_dataset_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            with_mass: false,
            ..CatalogContents::default()
        },
    );
    let error = refused(&path, &catalog_spec());
    assert_eq!(
        error.problems,
        vec![OutputProblem::MissingDataset {
            path: "galaxies/mass".into()
        }]
    );
    assert_eq!(
        error.to_string(),
        format!(
            "invalid output {}: dataset `galaxies/mass` is missing",
            path.display()
        )
    );
}

#[test]
fn a_dataset_under_a_missing_group_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    let spec = ValidationSpec {
        datasets: vec!["halos/pos".into()],
        groups: vec!["halos".into()],
        ..ValidationSpec::default()
    };
    let error = refused(&path, &spec);
    assert_eq!(
        error.problems,
        vec![
            OutputProblem::MissingGroup {
                path: "halos".into()
            },
            OutputProblem::MissingDataset {
                path: "halos/pos".into()
            },
        ]
    );
}

#[test]
fn objects_of_the_wrong_kind_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    let spec = ValidationSpec {
        datasets: vec!["galaxies".into()],
        groups: vec!["galaxies/pos".into()],
        ..ValidationSpec::default()
    };
    let message = refused(&path, &spec).to_string();
    assert!(
        message.contains("`galaxies/pos` is a dataset, expected a group"),
        "{message}"
    );
    assert!(
        message.contains("`galaxies` is a group, expected a dataset"),
        "{message}"
    );
}

#[test]
fn an_empty_dataset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            rows: 0,
            ..CatalogContents::default()
        },
    );
    let error = refused(&path, &catalog_spec());
    assert_eq!(
        error.problems,
        vec![
            OutputProblem::EmptyDataset {
                path: "galaxies/pos".into(),
                shape: vec![0, 3]
            },
            OutputProblem::EmptyDataset {
                path: "galaxies/mass".into(),
                shape: vec![0]
            },
        ]
    );
    assert!(error
        .to_string()
        .contains("dataset `galaxies/pos` is empty (shape [0, 3])"));
    // Empty is refused even without min_rows.
    let spec = ValidationSpec {
        datasets: vec!["galaxies/id".into()],
        ..ValidationSpec::default()
    };
    refused(&path, &spec);
}

#[test]
fn a_dataset_created_but_never_written_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unwritten.hdf5");
    {
        let file = hdf5::File::create(&path).unwrap();
        let galaxies = file.create_group("galaxies").unwrap();
        galaxies
            .new_dataset::<f64>()
            .shape((1000, 3))
            .create("pos")
            .unwrap();
    }
    let spec = ValidationSpec {
        datasets: vec!["galaxies/pos".into()],
        ..ValidationSpec::default()
    };
    let error = refused(&path, &spec);
    assert_eq!(
        error.problems,
        vec![OutputProblem::UnwrittenDataset {
            path: "galaxies/pos".into(),
            shape: vec![1000, 3]
        }]
    );
    assert!(error.to_string().contains("was never written"));
}

#[test]
fn too_few_rows_are_refused_with_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            rows: 5,
            ..CatalogContents::default()
        },
    );
    let mut spec = catalog_spec();
    spec.min_rows = Some(10);
    let error = refused(&path, &spec);
    assert_eq!(error.problems.len(), 2);
    assert!(error
        .to_string()
        .contains("dataset `galaxies/pos` has 5 rows, fewer than min_rows 10"));
    spec.min_rows = Some(5);
    validate_output(&path, &spec).expect("exactly min_rows is enough");
}

#[test]
fn a_scalar_dataset_has_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scalar.hdf5");
    {
        let file = hdf5::File::create(&path).unwrap();
        file.new_dataset::<i64>()
            .create("count")
            .unwrap()
            .write_scalar(&3)
            .unwrap();
    }
    let mut spec = ValidationSpec {
        datasets: vec!["count".into()],
        ..ValidationSpec::default()
    };
    validate_output(&path, &spec).expect("a written scalar is fine without min_rows");
    spec.min_rows = Some(1);
    assert!(refused(&path, &spec)
        .to_string()
        .contains("dataset `count` is a scalar, it has no rows"));
}

#[test]
fn a_truncated_file_is_refused_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            rows: 5000,
            ..CatalogContents::default()
        },
    );
    let full = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full / 2).unwrap();
    drop(file);
    let error = refused(&path, &catalog_spec());
    assert_eq!(error.problems.len(), 1);
    match &error.problems[0] {
        OutputProblem::Truncated { size_bytes, detail } => {
            assert_eq!(*size_bytes, full / 2);
            assert!(detail.contains("truncated"), "{detail}");
        }
        other => panic!("expected a truncated file, got {other:?}"),
    }
    assert!(error.to_string().contains("the file is truncated"));
}

#[test]
fn a_file_cut_inside_its_superblock_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(40).unwrap();
    drop(file);
    let error = refused(&path, &catalog_spec());
    assert!(
        matches!(
            error.problems[0],
            OutputProblem::Truncated { .. } | OutputProblem::Unopenable { .. }
        ),
        "{error}"
    );
}

#[test]
fn a_file_that_is_not_hdf5_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock_z1.000.hdf5");
    let text = "Traceback (most recent call last):\n  MemoryError\n";
    std::fs::write(&path, text).unwrap();
    let error = refused(&path, &catalog_spec());
    let size_bytes = text.len() as u64;
    assert_eq!(error.problems, vec![OutputProblem::NotHdf5 { size_bytes }]);
    assert_eq!(
        error.to_string(),
        format!(
            "invalid output {}: not an HDF5 file (no HDF5 signature in its {size_bytes} bytes)",
            path.display()
        )
    );
}

#[test]
fn an_empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock_z1.000.hdf5");
    std::fs::write(&path, "").unwrap();
    let error = refused(&path, &catalog_spec());
    assert_eq!(error.problems, vec![OutputProblem::EmptyFile]);
    assert!(error.to_string().ends_with("the file is empty (0 bytes)"));
}

#[test]
fn a_missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r0001").join("mock_z1.000.hdf5");
    let error = refused(&path, &catalog_spec());
    assert_eq!(error.problems, vec![OutputProblem::MissingFile]);
    assert_eq!(
        error.to_string(),
        format!("invalid output {}: the file does not exist", path.display())
    );
}

#[test]
fn a_directory_is_not_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let error = refused(dir.path(), &ValidationSpec::default());
    assert!(error
        .to_string()
        .contains("not a regular file (found a directory)"));
}

#[test]
fn a_missing_attribute_is_named_with_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            with_attributes: false,
            ..CatalogContents::default()
        },
    );
    let mut spec = catalog_spec();
    spec.attributes.insert(
        "galaxies/mass@units".into(),
        flow_mock_generation::ExpectedValue::Text("Msun/h".into()),
    );
    let error = refused(&path, &spec);
    assert_eq!(
        error.problems,
        vec![
            OutputProblem::MissingAttribute {
                object: "/".into(),
                name: "realization".into()
            },
            OutputProblem::MissingAttribute {
                object: "/".into(),
                name: "redshift".into()
            },
            OutputProblem::MissingAttribute {
                object: "galaxies/mass".into(),
                name: "units".into()
            },
        ]
    );
    assert!(error
        .to_string()
        .contains("attribute `realization` is missing on `/`"));
}

#[test]
fn a_different_attribute_value_is_refused_with_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            realization: 8,
            redshift: 1.1,
            ..CatalogContents::default()
        },
    );
    let message = refused(&path, &catalog_spec()).to_string();
    assert!(
        message.contains("attribute `realization` on `/` is 8, expected 7"),
        "{message}"
    );
    assert!(
        message.contains("attribute `redshift` on `/` is 1.1, expected \"1.000\""),
        "{message}"
    );
}

#[test]
fn attributes_on_missing_objects_and_bad_keys_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    let spec: ValidationSpec = serde_json::from_value(serde_json::json!({
        "attributes": {"halos/pos@units": "Mpc/h", "galaxies@": 1}
    }))
    .unwrap();
    let message = refused(&path, &spec).to_string();
    assert!(
        message.contains("attribute `units` cannot be checked: object `halos/pos` is missing"),
        "{message}"
    );
    assert!(message.contains("has no attribute name"), "{message}");
}

#[test]
fn string_float32_and_bool_attributes_compare_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typed.hdf5");
    {
        let file = hdf5::File::create(&path).unwrap();
        let label: VarLenUnicode = "1.000".parse().unwrap();
        file.new_attr::<VarLenUnicode>()
            .create("redshift_label")
            .unwrap()
            .write_scalar(&label)
            .unwrap();
        let cosmology = FixedAscii::<16>::from_ascii(b"AbacusSummit").unwrap();
        file.new_attr::<FixedAscii<16>>()
            .create("cosmology")
            .unwrap()
            .write_scalar(&cosmology)
            .unwrap();
        file.new_attr::<f32>()
            .create("redshift")
            .unwrap()
            .write_scalar(&1.1f32)
            .unwrap();
        file.new_attr::<bool>()
            .create("lightcone")
            .unwrap()
            .write_scalar(&true)
            .unwrap();
        file.new_attr::<u32>()
            .create("seed")
            .unwrap()
            .write_scalar(&4_000_000_000u32)
            .unwrap();
        file.new_attr::<i32>()
            .shape(3)
            .create("box")
            .unwrap()
            .write_raw(&[1, 2, 3])
            .unwrap();
    }
    let spec: ValidationSpec = serde_json::from_value(serde_json::json!({
        "attributes": {
            "redshift_label": "1.000",
            "cosmology": "AbacusSummit",
            "redshift": 1.1,
            "lightcone": true,
            "seed": 4000000000u64
        }
    }))
    .unwrap();
    validate_output(&path, &spec).expect("typed attributes match");

    let spec: ValidationSpec = serde_json::from_value(serde_json::json!({
        "attributes": {"cosmology": "Abacus", "redshift": 1.2, "box": 1}
    }))
    .unwrap();
    let message = refused(&path, &spec).to_string();
    assert!(
        message.contains("attribute `cosmology` on `/` is \"AbacusSummit\", expected \"Abacus\""),
        "{message}"
    );
    assert!(
        message.contains("attribute `redshift` on `/` is 1.1 (float32), expected 1.2"),
        "{message}"
    );
    assert!(
        message.contains("attribute `box` on `/` is an array of shape [3], expected 1"),
        "{message}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(
        dir.path(),
        &CatalogContents {
            rows: 0,
            with_mass: false,
            with_attributes: false,
            ..CatalogContents::default()
        },
    );
    let error = refused(&path, &catalog_spec());
    assert_eq!(error.problems.len(), 4, "{error}");
}

#[cfg(unix)]
#[test]
fn validation_ignores_file_locks_held_by_other_processes() {
    // A descriptor inherited by a child process keeps an exclusive flock alive after the
    // writer closed the file; validation must not trip over it.
    use std::os::unix::io::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), &CatalogContents::default());
    let holder = std::fs::File::open(&path).unwrap();
    // SAFETY: flock on a descriptor we own; released when `holder` is dropped.
    let locked = unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0, "could not take the lock for the test");
    validate_output(&path, &catalog_spec()).expect("valid despite a foreign lock");
    drop(holder);
}

#[cfg(target_os = "linux")]
#[test]
fn validation_closes_every_file_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..40)
        .map(|index| {
            let path = dir.path().join(format!("r{index:04}.hdf5"));
            write_catalog(&path, &CatalogContents::default());
            path
        })
        .collect();
    let open_catalogs = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir.path()))
            .count()
    };
    for path in &paths {
        validate_output(path, &catalog_spec()).expect("valid");
        let mut short = catalog_spec();
        short.min_rows = Some(1_000_000);
        validate_output(path, &short).expect_err("too few rows");
    }
    assert_eq!(open_catalogs(), 0, "validation left files open");
}

/// Environment variable that makes the stderr probe below do its work in a child process.
const STDERR_PROBE: &str = "FLOW_MOCK_GENERATION_STDERR_PROBE";

#[test]
fn hdf5_prints_nothing_to_stderr_when_validation_fails() {
    if let Ok(dir) = std::env::var(STDERR_PROBE) {
        // The child: provoke the HDF5 errors we handle, first on this thread (which also
        // initialises the library), then on another one: HDF5's error printing is set per
        // thread in thread-safe builds.
        let dir = PathBuf::from(dir);
        let provoke = move |name: &str| {
            let path = dir.join(name);
            let contents = CatalogContents {
                rows: 3000,
                with_attributes: false,
                ..CatalogContents::default()
            };
            write_catalog(&path, &contents);
            let mut spec = catalog_spec();
            spec.datasets.push("halos/pos".into());
            spec.groups.push("galaxies/nothing".into());
            assert!(validate_output(&path, &spec).is_err());
            let full = std::fs::metadata(&path).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(full / 3)
                .unwrap();
            assert!(validate_output(&path, &spec).is_err());
        };
        provoke("first.hdf5");
        std::thread::spawn(move || provoke("second.hdf5"))
            .join()
            .expect("validation on a second thread");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hdf5_prints_nothing_to_stderr_when_validation_fails",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STDERR_PROBE, dir.path())
        .output()
        .expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
    assert!(
        !stderr.contains("HDF5") && !stdout.contains("HDF5-DIAG"),
        "HDF5 printed its error stack:\n{stderr}"
    );
}
