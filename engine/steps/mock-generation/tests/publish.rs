//! The validate-then-rename publish protocol, on real HDF5 files.

mod common;

use common::{catalog_spec, write_catalog, CatalogContents};
use flow_dsl::error_class::ErrorClass;
use flow_mock_generation::{
    is_published_and_valid, publish, remove_leftover_temporaries, temporary_output_path,
    FileFingerprint, OutputProblem, PublishError,
};

#[test]
fn a_valid_output_is_renamed_to_its_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("r0007").join("mock_z1.000.hdf5");
    std::fs::create_dir_all(final_path.parent().unwrap()).unwrap();
    let temporary = temporary_output_path(&final_path, "task-3fa2", 1);
    write_catalog(&temporary, &CatalogContents::default());
    let written = FileFingerprint::of(&temporary).unwrap();

    let report = publish(&temporary, &final_path, &catalog_spec()).expect("published");

    assert!(!temporary.exists(), "the temporary name is gone");
    assert!(final_path.is_file());
    assert_eq!(report.file, final_path);
    assert_eq!(
        report.fingerprint, written,
        "the rename keeps the fingerprint"
    );
    assert!(report.fingerprint.still_matches(&final_path));
    assert!(is_published_and_valid(&final_path, &catalog_spec()));
}

#[test]
fn an_invalid_output_is_kept_under_its_temporary_name_and_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("mock_z1.000.hdf5");
    let temporary = temporary_output_path(&final_path, "t1", 2);
    write_catalog(
        &temporary,
        &CatalogContents {
            rows: 0,
            ..CatalogContents::default()
        },
    );

    let error = publish(&temporary, &final_path, &catalog_spec()).expect_err("refused");

    assert_eq!(error.error_class(), ErrorClass::InvalidOutput);
    let message = error.to_string();
    assert!(
        message.contains(&temporary.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("(not published as {})", final_path.display())),
        "{message}"
    );
    match &error {
        PublishError::Invalid { invalid, .. } => assert!(matches!(
            invalid.problems[0],
            OutputProblem::EmptyDataset { .. }
        )),
        other => panic!("expected an invalid output, got {other:?}"),
    }
    assert!(temporary.is_file(), "kept for inspection");
    assert!(!final_path.exists(), "nothing under the final name");
    assert!(!is_published_and_valid(&final_path, &catalog_spec()));
}

#[test]
fn a_command_that_wrote_nothing_cannot_publish() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("mock_z1.000.hdf5");
    let temporary = temporary_output_path(&final_path, "t1", 1);
    let error = publish(&temporary, &final_path, &catalog_spec()).expect_err("refused");
    assert!(
        error.to_string().contains("the file does not exist"),
        "{error}"
    );
    assert!(!final_path.exists());
}

#[test]
fn a_later_valid_attempt_replaces_a_corrupt_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("mock_z1.000.hdf5");
    std::fs::write(&final_path, "corrupt").unwrap();
    assert!(!is_published_and_valid(&final_path, &catalog_spec()));
    let temporary = temporary_output_path(&final_path, "t1", 3);
    write_catalog(&temporary, &CatalogContents::default());
    publish(&temporary, &final_path, &catalog_spec()).expect("published");
    assert!(is_published_and_valid(&final_path, &catalog_spec()));
}

#[test]
fn fingerprints_change_when_a_published_file_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("mock_z1.000.hdf5");
    let temporary = temporary_output_path(&final_path, "t1", 1);
    write_catalog(&temporary, &CatalogContents::default());
    let report = publish(&temporary, &final_path, &catalog_spec()).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&final_path)
        .unwrap();
    file.set_len(report.fingerprint.size_bytes / 2).unwrap();
    drop(file);
    assert!(!report.fingerprint.still_matches(&final_path));
    std::fs::remove_file(&final_path).unwrap();
    assert!(!report.fingerprint.still_matches(&final_path));
}

#[test]
fn leftover_temporaries_of_a_task_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("mock_z1.000.hdf5");
    let mine = [
        temporary_output_path(&final_path, "t1", 1),
        temporary_output_path(&final_path, "t1", 2),
    ];
    let others = [
        temporary_output_path(&final_path, "t2", 1),
        temporary_output_path(&dir.path().join("mock_z1.100.hdf5"), "t1", 1),
        final_path.clone(),
        dir.path().join("notes.txt"),
    ];
    for path in mine.iter().chain(others.iter()) {
        std::fs::write(path, "x").unwrap();
    }
    let removed = remove_leftover_temporaries(&final_path, "t1").unwrap();
    let mut expected = mine.to_vec();
    expected.sort();
    assert_eq!(removed, expected);
    for path in &mine {
        assert!(!path.exists());
    }
    for path in &others {
        assert!(path.exists(), "{} was removed", path.display());
    }
    assert!(remove_leftover_temporaries(&final_path, "t1")
        .unwrap()
        .is_empty());
    assert!(
        remove_leftover_temporaries(&dir.path().join("gone").join("m.hdf5"), "t1")
            .unwrap()
            .is_empty()
    );
}
