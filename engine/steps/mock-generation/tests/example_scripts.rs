//! The example scripts in `examples/mocks/` (Python with h5py and numpy), validated by
//! this crate through the real HDF5 library. Needs `python3` with h5py and numpy
//! (`scripts/deps/hdf5.sh` installs them); fails with that advice when they are missing.

use flow_mock_generation::{
    publish, temporary_output_path, validate_output, OutputProblem, ValidationSpec,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples/mocks")
}

fn require_python_with_h5py() {
    static CHECK: Once = Once::new();
    CHECK.call_once(|| {
        let probe = Command::new("python3")
            .args(["-c", "import h5py, numpy"])
            .output();
        match probe {
            Ok(output) if output.status.success() => {}
            Ok(output) => panic!(
                "python3 cannot import h5py and numpy (run scripts/deps/hdf5.sh): {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => panic!("python3 is not available (run scripts/deps/hdf5.sh): {error}"),
        }
    });
}

fn python(script: &str, args: &[&str]) -> Output {
    require_python_with_h5py();
    Command::new("python3")
        .arg(examples_dir().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run python3 {script}: {error}"))
}

fn generate(out: &Path, realization: u32, redshift: &str, seed: u64, rows: Option<usize>) {
    let realization = realization.to_string();
    let seed = seed.to_string();
    let out_text = out.to_str().expect("UTF-8 test path");
    let mut args = vec![
        "--real",
        realization.as_str(),
        "--z",
        redshift,
        "--seed",
        seed.as_str(),
        "--out",
        out_text,
    ];
    let rows_text = rows.map(|rows| rows.to_string());
    if let Some(rows) = &rows_text {
        args.extend(["--rows", rows.as_str()]);
    }
    let output = python("generate_single_mock.py", &args);
    assert!(
        output.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn generator_spec(realization: u32, redshift: &str, min_rows: u64) -> ValidationSpec {
    serde_json::from_value(serde_json::json!({
        "datasets": ["galaxies/pos", "galaxies/mass", "galaxies/id"],
        "groups": ["galaxies"],
        "attributes": {
            "realization": realization,
            "redshift": redshift,
            "redshift_label": redshift,
            "galaxies/pos@units": "Mpc/h",
            "galaxies/mass@units": "Msun/h"
        },
        "min_rows": min_rows
    }))
    .expect("spec")
}

#[test]
fn the_generators_catalog_is_published_after_validation() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("r0007").join("mock_z1.000.hdf5");
    std::fs::create_dir_all(final_path.parent().unwrap()).unwrap();
    let temporary = temporary_output_path(&final_path, "3fa2c9", 1);
    generate(&temporary, 7, "1.000", 42, Some(500));

    let report = publish(&temporary, &final_path, &generator_spec(7, "1.000", 500))
        .expect("the generator's catalog is valid");

    assert_eq!(report.file, final_path);
    let shapes: Vec<_> = report.datasets.iter().map(|d| d.shape.clone()).collect();
    assert_eq!(shapes, vec![vec![500, 3], vec![500], vec![500]]);
    assert!(!temporary.exists());
}

#[test]
fn without_rows_the_count_is_drawn_and_still_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock_z0.500.hdf5");
    generate(&path, 3, "0.500", 7, None);
    let report = validate_output(&path, &generator_spec(3, "0.500", 1)).expect("valid");
    let rows = report.datasets[0].rows().unwrap();
    assert!((10_000..20_000).contains(&rows), "implausible count {rows}");
}

#[test]
fn the_same_seed_gives_the_same_file_and_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|name| dir.path().join(format!("{name}.hdf5")))
        .collect();
    let seed = u64::MAX; // the whole u64 range is accepted
    generate(&paths[0], 12, "1.100", seed, Some(300));
    generate(&paths[1], 12, "1.100", seed, Some(300));
    generate(&paths[2], 12, "1.100", seed - 1, Some(300));
    let bytes: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(bytes[0] == bytes[1], "same seed, different files");
    assert!(bytes[0] != bytes[2], "different seeds, same file");
    validate_output(&paths[2], &generator_spec(12, "1.100", 300)).expect("valid");
}

#[test]
fn an_empty_catalog_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock_z1.000.hdf5");
    generate(&path, 1, "1.000", 5, Some(0));
    let error = validate_output(&path, &generator_spec(1, "1.000", 1)).expect_err("empty");
    assert!(error
        .problems
        .iter()
        .all(|problem| matches!(problem, OutputProblem::EmptyDataset { .. })));
    assert_eq!(error.problems.len(), 3, "{error}");
}

#[test]
fn the_generator_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.hdf5");
    let out = out.to_str().unwrap();
    for (args, complaint) in [
        (
            vec!["--real", "1", "--z", "1.0", "--seed", "-1", "--out", out],
            "--seed",
        ),
        (
            vec!["--real", "1", "--z", "high", "--seed", "1", "--out", out],
            "--z",
        ),
        (
            vec!["--real", "-2", "--z", "1.0", "--seed", "1", "--out", out],
            "--real",
        ),
    ] {
        let output = python("generate_single_mock.py", &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(complaint), "{stderr}");
    }
    assert!(!dir.path().join("x.hdf5").exists());
}

#[test]
fn a_writer_killed_before_closing_never_reaches_the_final_name() {
    require_python_with_h5py();
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("mock_z1.000.hdf5");
    let temporary = temporary_output_path(&final_path, "t9", 1);
    // A writer that allocates a large dataset, writes part of it and is killed (SIGKILL)
    // before closing the file.
    let writer = r#"
import os, signal, sys
import h5py, numpy as np
catalog = h5py.File(sys.argv[1], "w", libver=("earliest", "v110"))
pos = catalog.create_group("galaxies").create_dataset("pos", shape=(200000, 3), dtype="f8")
pos[:1000] = np.ones((1000, 3))
os.kill(os.getpid(), signal.SIGKILL)
"#;
    let status = Command::new("python3")
        .args(["-c", writer, temporary.to_str().unwrap()])
        .status()
        .expect("run the writer");
    assert!(!status.success(), "the writer was meant to die");
    assert!(temporary.exists(), "the writer created its file");

    let spec: ValidationSpec =
        serde_json::from_value(serde_json::json!({"datasets": ["galaxies/pos"]})).unwrap();
    let error = publish(&temporary, &final_path, &spec).expect_err("a killed writer's file");
    let message = error.to_string();
    assert!(
        message.contains("truncated") || message.contains("HDF5 cannot open the file"),
        "{message}"
    );
    assert!(!final_path.exists());
}

#[test]
fn the_qa_summary_counts_catalogs_and_flags_problems() {
    let dir = tempfile::tempdir().unwrap();
    let catalogs = dir.path().join("catalogs");
    for realization in 0..3u32 {
        let directory = catalogs.join(format!("r{realization:04}"));
        std::fs::create_dir_all(&directory).unwrap();
        for redshift in ["1.000", "0.500"] {
            let seed = u64::from(realization) * 100 + redshift.len() as u64;
            let path = directory.join(format!("mock_z{redshift}.hdf5"));
            generate(&path, realization, redshift, seed, Some(1000));
        }
    }
    // An outlier: far fewer rows than its redshift's median.
    let directory = catalogs.join("r0003");
    std::fs::create_dir_all(&directory).unwrap();
    generate(&directory.join("mock_z1.000.hdf5"), 3, "1.000", 9, Some(10));
    // A corrupt file, and a temporary file that must be ignored.
    std::fs::write(directory.join("mock_z0.500.hdf5"), "not hdf5").unwrap();
    std::fs::write(
        temporary_output_path(&directory.join("mock_z0.500.hdf5"), "t", 1),
        "partial",
    )
    .unwrap();
    // A misplaced file: realization 0's catalog under r0004.
    std::fs::create_dir_all(catalogs.join("r0004")).unwrap();
    std::fs::copy(
        catalogs.join("r0000/mock_z1.000.hdf5"),
        catalogs.join("r0004/mock_z1.000.hdf5"),
    )
    .unwrap();

    let qa = dir.path().join("qa");
    let output = python(
        "qa_summary.py",
        &[
            "--catalogs",
            catalogs.to_str().unwrap(),
            "--qa",
            qa.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(qa.join("summary.json")).unwrap())
            .expect("summary.json is JSON");
    assert_eq!(summary["files"], 9);
    assert_eq!(summary["readable_files"], 8);
    assert_eq!(summary["per_redshift"]["1.000"]["files"], 5);
    assert_eq!(summary["per_redshift"]["0.500"]["files"], 3);
    assert_eq!(summary["per_redshift"]["0.500"]["rows"]["total"], 3000);
    let outliers = summary["outliers"].as_array().unwrap();
    assert!(!outliers.is_empty());
    assert!(outliers.iter().all(|o| o["file"]
        .as_str()
        .unwrap()
        .ends_with("r0003/mock_z1.000.hdf5")));
    let unreadable = summary["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1);
    assert!(unreadable[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("r0003/mock_z0.500.hdf5"));
    let misplaced = summary["misplaced"].as_array().unwrap();
    assert_eq!(misplaced.len(), 1, "{misplaced:?}");
    assert!(misplaced[0]["problem"]
        .as_str()
        .unwrap()
        .contains("directory r0004"));
    let text = std::fs::read_to_string(qa.join("summary.txt")).unwrap();
    assert!(text.contains("outliers: 2"), "{text}");
    assert!(text.contains("unreadable: 1"), "{text}");

    let strict = python(
        "qa_summary.py",
        &[
            "--catalogs",
            catalogs.to_str().unwrap(),
            "--qa",
            qa.to_str().unwrap(),
            "--strict",
        ],
    );
    assert_eq!(strict.status.code(), Some(1));
}
