//! The interval form of index sets used by `completedIndexes` / `failedIndexes`.

/// Formats indexes as Kubernetes does: sorted, consecutive runs as `a-b`,
/// separated by commas (`"0-3,5"`); the empty set is `""`.
pub fn format(indexes: impl IntoIterator<Item = i64>) -> String {
    let mut sorted: Vec<i64> = indexes.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        while i + 1 < sorted.len() && sorted[i + 1] == last + 1 {
            i += 1;
            last = sorted[i];
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn interval_form() {
        assert_eq!(format([]), "");
        assert_eq!(format([0]), "0");
        assert_eq!(format([5, 0, 1, 2, 3]), "0-3,5");
        assert_eq!(format([0, 1]), "0-1");
        assert_eq!(format([1, 3, 4, 7, 3]), "1,3-4,7");
    }
}
