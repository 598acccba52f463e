//! Whether a required dataset, as found in a file, is acceptable: the pure part of dataset
//! validation (reading the facts happens in [`crate::output_validation`]).

use crate::output_invalid::OutputProblem;
use crate::validation_report::DatasetSummary;

/// What validation reads about one required dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFacts {
    /// Its dimensions (`[]` for a scalar), or `None` for a null dataspace.
    pub shape: Option<Vec<u64>>,
    /// It has elements but no storage was ever allocated for them (never written).
    pub never_written: bool,
}

/// Judges a required dataset at `path` (as written in the spec): a null dataspace, a
/// zero-length dimension, storage never written, a scalar when `min_rows` > 0, or fewer
/// rows (first dimension) than `min_rows` are each a problem; otherwise the dataset is
/// summarised. A scalar with data is acceptable when no rows are required.
pub fn judge_dataset(
    path: &str,
    facts: &DatasetFacts,
    min_rows: Option<u64>,
) -> Result<DatasetSummary, OutputProblem> {
    let path = path.to_string();
    let Some(shape) = facts.shape.clone() else {
        return Err(OutputProblem::NullDataset { path });
    };
    if shape.is_empty() {
        if let Some(min_rows) = min_rows.filter(|&min_rows| min_rows > 0) {
            return Err(OutputProblem::ScalarDataset { path, min_rows });
        }
    } else if shape.contains(&0) {
        return Err(OutputProblem::EmptyDataset { path, shape });
    }
    if facts.never_written {
        return Err(OutputProblem::UnwrittenDataset { path, shape });
    }
    if let (Some(&rows), Some(min_rows)) = (shape.first(), min_rows) {
        if rows < min_rows {
            return Err(OutputProblem::TooFewRows {
                path,
                rows,
                min_rows,
            });
        }
    }
    Ok(DatasetSummary { path, shape })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(shape: &[u64]) -> DatasetFacts {
        DatasetFacts {
            shape: Some(shape.to_vec()),
            never_written: false,
        }
    }

    #[test]
    fn a_written_dataset_with_enough_rows_is_summarised() {
        let summary = judge_dataset("galaxies/pos", &facts(&[100, 3]), Some(100)).unwrap();
        assert_eq!(summary.shape, vec![100, 3]);
        assert_eq!(summary.rows(), Some(100));
        assert!(judge_dataset("galaxies/pos", &facts(&[1, 3]), None).is_ok());
    }

    #[test]
    fn empty_null_and_unwritten_datasets_are_problems() {
        assert_eq!(
            judge_dataset("p", &facts(&[0, 3]), None),
            Err(OutputProblem::EmptyDataset {
                path: "p".into(),
                shape: vec![0, 3]
            })
        );
        assert_eq!(
            judge_dataset("p", &facts(&[5, 0]), Some(1)),
            Err(OutputProblem::EmptyDataset {
                path: "p".into(),
                shape: vec![5, 0]
            })
        );
        let null = DatasetFacts {
            shape: None,
            never_written: false,
        };
        assert_eq!(
            judge_dataset("p", &null, None),
            Err(OutputProblem::NullDataset { path: "p".into() })
        );
        let unwritten = DatasetFacts {
            shape: Some(vec![10, 3]),
            never_written: true,
        };
        assert_eq!(
            judge_dataset("p", &unwritten, None),
            Err(OutputProblem::UnwrittenDataset {
                path: "p".into(),
                shape: vec![10, 3]
            })
        );
    }

    #[test]
    fn rows_are_the_first_dimension() {
        assert_eq!(
            judge_dataset("p", &facts(&[9, 3]), Some(10)),
            Err(OutputProblem::TooFewRows {
                path: "p".into(),
                rows: 9,
                min_rows: 10
            })
        );
        assert!(judge_dataset("p", &facts(&[10, 1]), Some(10)).is_ok());
        assert!(judge_dataset("p", &facts(&[10]), Some(0)).is_ok());
    }

    #[test]
    fn scalars_have_no_rows() {
        assert!(judge_dataset("n", &facts(&[]), None).is_ok());
        assert!(judge_dataset("n", &facts(&[]), Some(0)).is_ok());
        assert_eq!(
            judge_dataset("n", &facts(&[]), Some(1)),
            Err(OutputProblem::ScalarDataset {
                path: "n".into(),
                min_rows: 1
            })
        );
    }
}
