//! Array index lists as Slurm prints them (`4`, `0-5%3`, `1,3-5`, `[5-9]`) and as sbatch
//! takes them (`--array=0-999%200`).

/// The `--array` value for `len` elements: `0-(len-1)`, with `%throttle` when given.
pub fn array_spec(len: usize, throttle: Option<u32>) -> String {
    let last = len.saturating_sub(1);
    match throttle {
        Some(t) => format!("0-{last}%{t}"),
        None => format!("0-{last}"),
    }
}

/// Parse a list of array indices. `N/A`, `(null)` and the empty string give `Some(vec![])`
/// (not an array element); malformed text gives `None`. A `%N` throttle suffix is ignored.
/// Ranges are expanded (they never exceed MaxArraySize).
pub fn parse_array_indices(text: &str) -> Option<Vec<u32>> {
    let text = text.trim().trim_start_matches('[').trim_end_matches(']');
    let text = text.split('%').next().unwrap_or("");
    if text.is_empty() || text == "N/A" || text == "(null)" {
        return Some(Vec::new());
    }
    let mut indices = Vec::new();
    for part in text.split(',') {
        let part = part.split(':').next().unwrap_or(part); // `0-15:4` step syntax: keep the start
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 10_000_000 {
                    return None;
                }
                indices.extend(a..=b);
            }
            None => indices.push(part.trim().parse().ok()?),
        }
    }
    Some(indices)
}

/// The throttle of an array index list (`0-5%3` → 3), if any.
pub fn parse_throttle(text: &str) -> Option<u32> {
    text.trim()
        .trim_end_matches(']')
        .split_once('%')
        .and_then(|(_, t)| t.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs() {
        assert_eq!(array_spec(200, None), "0-199");
        assert_eq!(array_spec(1000, Some(50)), "0-999%50");
    }

    #[test]
    fn index_lists() {
        assert_eq!(parse_array_indices("4"), Some(vec![4]));
        assert_eq!(parse_array_indices("0-3%2"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_array_indices("[1,3-5]"), Some(vec![1, 3, 4, 5]));
        assert_eq!(parse_array_indices("N/A"), Some(vec![]));
        assert_eq!(parse_array_indices("x"), None);
        assert_eq!(parse_array_indices("5-3"), None);
        assert_eq!(parse_throttle("0-5%3"), Some(3));
        assert_eq!(parse_throttle("[0-5%30]"), Some(30));
        assert_eq!(parse_throttle("0-5"), None);
    }
}
