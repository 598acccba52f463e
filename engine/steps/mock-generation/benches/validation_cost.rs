//! Cost of validating (and publishing) one mock catalog of about 1 MB.
//!
//! Target (issue 7): validation under 5 ms per file. Run with
//! `cargo bench -p flow-mock-generation --bench validation_cost`; results go into
//! `docs/BENCHMARKS.md` by hand. Files live in a temporary directory under $TMPDIR
//! (set it to a directory on the file system you want to measure); the page cache is
//! warm, as it is when flow validates a file its task has just written.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{catalog_spec, write_catalog, CatalogContents};
use flow_mock_generation::{
    publish, temporary_output_path, validate_output, FileFingerprint, ValidationSpec,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows giving a file of about 1 MB: 24 (pos) + 4 (mass) + 8 (id) bytes per row.
const ROWS_FOR_ONE_MB: usize = 29_000;
const REPEATED_VALIDATIONS: usize = 2_000;
const DISTINCT_FILES: usize = 500;

struct Timings(Vec<Duration>);

impl Timings {
    fn measure(count: usize, mut run: impl FnMut(usize)) -> Timings {
        let mut samples = Vec::with_capacity(count);
        for index in 0..count {
            let start = Instant::now();
            run(index);
            samples.push(start.elapsed());
        }
        samples.sort();
        Timings(samples)
    }

    fn percentile(&self, fraction: f64) -> Duration {
        let index = ((self.0.len() - 1) as f64 * fraction).round() as usize;
        self.0[index]
    }

    fn row(&self, what: &str) -> String {
        let mean = self.0.iter().sum::<Duration>() / self.0.len() as u32;
        format!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.0.len(),
            us(self.percentile(0.0)),
            us(self.percentile(0.5)),
            us(mean),
            us(self.percentile(0.99)),
        )
    }
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn catalog_at(path: &Path) {
    write_catalog(
        path,
        &CatalogContents {
            rows: ROWS_FOR_ONE_MB,
            ..CatalogContents::default()
        },
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = catalog_spec();
    let one = dir.path().join("mock_z1.000.hdf5");
    catalog_at(&one);
    let size = std::fs::metadata(&one).expect("catalog written").len();
    println!(
        "catalog: {} rows, {size} bytes ({:.2} MB); temporary directory {}",
        ROWS_FOR_ONE_MB,
        size as f64 / 1e6,
        dir.path().display()
    );
    for _ in 0..50 {
        validate_output(&one, &spec).expect("valid");
    }

    let mut rows = Vec::new();
    rows.push(
        Timings::measure(REPEATED_VALIDATIONS, |_| {
            validate_output(&one, &spec).expect("valid");
        })
        .row("validate, full spec (2 datasets, 1 group, 3 attributes, min_rows), same file"),
    );
    let empty_spec = ValidationSpec::default();
    rows.push(
        Timings::measure(REPEATED_VALIDATIONS, |_| {
            validate_output(&one, &empty_spec).expect("valid");
        })
        .row("validate, empty spec (signature + open only), same file"),
    );

    let distinct: Vec<PathBuf> = (0..DISTINCT_FILES)
        .map(|index| dir.path().join(format!("r{index:04}.hdf5")))
        .collect();
    for path in &distinct {
        catalog_at(path);
    }
    rows.push(
        Timings::measure(DISTINCT_FILES, |index| {
            validate_output(&distinct[index], &spec).expect("valid");
        })
        .row("validate, full spec, 500 distinct files"),
    );

    let temporaries: Vec<(PathBuf, PathBuf)> = distinct
        .iter()
        .map(|path| {
            let final_path = path.with_extension("published.hdf5");
            let temporary = temporary_output_path(&final_path, "bench", 1);
            std::fs::rename(path, &temporary).expect("rename to a temporary name");
            (temporary, final_path)
        })
        .collect();
    rows.push(
        Timings::measure(DISTINCT_FILES, |index| {
            let (temporary, final_path) = &temporaries[index];
            publish(temporary, final_path, &spec).expect("published");
        })
        .row("publish (validate + fsync of the file + rename), 500 files"),
    );

    let fingerprint = FileFingerprint::of(&one).expect("stat");
    rows.push(
        Timings::measure(REPEATED_VALIDATIONS, |_| {
            assert!(fingerprint.still_matches(&one));
        })
        .row("resume check by fingerprint (stat only), same file"),
    );
    let not_hdf5 = dir.path().join("log.hdf5");
    std::fs::write(&not_hdf5, "x".repeat(1_000_000)).expect("write");
    rows.push(
        Timings::measure(REPEATED_VALIDATIONS, |_| {
            validate_output(&not_hdf5, &spec).expect_err("not HDF5");
        })
        .row("refuse a 1 MB file that is not HDF5"),
    );

    println!();
    println!("| operation | n | min µs | median µs | mean µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
