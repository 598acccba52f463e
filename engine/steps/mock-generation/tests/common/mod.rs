//! Catalog files made with the real HDF5 library, for the integration tests.
#![allow(dead_code)]

use flow_mock_generation::{ExpectedValue, ValidationSpec};
use hdf5::types::VarLenUnicode;
use std::path::Path;

/// What [`write_catalog`] puts in a file.
pub struct CatalogContents {
    pub rows: usize,
    pub realization: i64,
    pub redshift: f64,
    pub with_mass: bool,
    pub with_attributes: bool,
}

impl Default for CatalogContents {
    fn default() -> Self {
        CatalogContents {
            rows: 100,
            realization: 7,
            redshift: 1.0,
            with_mass: true,
            with_attributes: true,
        }
    }
}

/// Writes a catalog like the example generator's: galaxies/pos (rows x 3, f64, attribute
/// units = "Mpc/h"), galaxies/mass (rows, f32), galaxies/id (rows, i64); root attributes
/// realization and redshift.
pub fn write_catalog(path: &Path, contents: &CatalogContents) {
    let file = hdf5::File::create(path).expect("create test catalog");
    let galaxies = file
        .create_group("galaxies")
        .expect("create galaxies group");
    let rows = contents.rows;
    let positions: Vec<f64> = (0..rows * 3).map(|i| (i % 1000) as f64 * 0.5).collect();
    let pos = galaxies
        .new_dataset::<f64>()
        .shape((rows, 3))
        .create("pos")
        .expect("create pos");
    if rows > 0 {
        pos.write_raw(&positions).expect("write pos");
    }
    let units: VarLenUnicode = "Mpc/h".parse().expect("units string");
    pos.new_attr::<VarLenUnicode>()
        .create("units")
        .and_then(|attribute| attribute.write_scalar(&units))
        .expect("write units attribute");
    if contents.with_mass {
        let masses: Vec<f32> = (0..rows).map(|i| 1e12 + i as f32).collect();
        let mass = galaxies
            .new_dataset::<f32>()
            .shape(rows)
            .create("mass")
            .expect("create mass");
        if rows > 0 {
            mass.write_raw(&masses).expect("write mass");
        }
    }
    let ids: Vec<i64> = (0..rows as i64).collect();
    let id = galaxies
        .new_dataset::<i64>()
        .shape(rows)
        .create("id")
        .expect("create id");
    if rows > 0 {
        id.write_raw(&ids).expect("write id");
    }
    if contents.with_attributes {
        file.new_attr::<i64>()
            .create("realization")
            .and_then(|attribute| attribute.write_scalar(&contents.realization))
            .expect("write realization");
        file.new_attr::<f64>()
            .create("redshift")
            .and_then(|attribute| attribute.write_scalar(&contents.redshift))
            .expect("write redshift");
    }
    file.close().expect("close test catalog");
}

/// The spec of the design's example step, plus attributes and a dataset attribute.
pub fn catalog_spec() -> ValidationSpec {
    let mut spec = ValidationSpec {
        datasets: vec!["galaxies/pos".into(), "galaxies/mass".into()],
        groups: vec!["galaxies".into()],
        min_rows: Some(1),
        ..ValidationSpec::default()
    };
    spec.attributes
        .insert("realization".into(), ExpectedValue::Number(7.into()));
    spec.attributes
        .insert("redshift".into(), ExpectedValue::Text("1.000".into()));
    spec.attributes.insert(
        "galaxies/pos@units".into(),
        ExpectedValue::Text("Mpc/h".into()),
    );
    spec
}
