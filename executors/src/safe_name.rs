//! Names built from user text (campaign, step and batch names) for places that accept only
//! a few characters: Slurm job names, directory names, Kubernetes label values.

/// `text` with every character other than ASCII letters, digits, `.`, `_` and `-` replaced
/// by `_`.
pub fn safe_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_safe_characters_and_replaces_the_rest() {
        assert_eq!(safe_chars("v1.0_calib-2"), "v1.0_calib-2");
        assert_eq!(safe_chars("a b/c:é"), "a_b_c__");
    }
}
