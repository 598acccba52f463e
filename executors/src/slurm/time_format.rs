//! Durations as Slurm writes them (`D-HH:MM:SS`, `HH:MM:SS`, `MM:SS`, `UNLIMITED`). As
//! users write them in recipes (`90s`, `30m`, `2h`) they are read by the DSL
//! (`flow_dsl::quantity::parse_duration`).

use std::time::Duration;

/// Format a wall-clock limit for `--time`: `D-HH:MM:SS` (days only when non-zero), rounded
/// up to whole minutes as Slurm does, with a minimum of one minute.
pub fn format_slurm_time(limit: Duration) -> String {
    let mut minutes = limit.as_secs().div_ceil(60).max(1);
    let days = minutes / (24 * 60);
    minutes %= 24 * 60;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    if days > 0 {
        format!("{days}-{hours:02}:{minutes:02}:00")
    } else {
        format!("{hours:02}:{minutes:02}:00")
    }
}

/// Parse a Slurm time (`[D-]HH:MM:SS`, `[D-]HH:MM`, `MM:SS`, `MM`, `D-HH`). `UNLIMITED`,
/// `INFINITE`, `NONE`, `N/A` and the empty string give `None` (no limit known); anything
/// else unreadable is an error naming the text.
pub fn parse_slurm_time(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.is_empty()
        || matches!(
            text,
            "UNLIMITED" | "INFINITE" | "NONE" | "N/A" | "Partition_Limit"
        )
    {
        return Ok(None);
    }
    let bad = || format!("unreadable Slurm time `{text}`");
    let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (number(d)?, rest),
        None => (0, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let seconds = match (text.contains('-'), parts.as_slice()) {
        (true, [h]) => number(h)? * 3600,
        (true, [h, m]) => number(h)? * 3600 + number(m)? * 60,
        (_, [h, m, s]) => number(h)? * 3600 + number(m)? * 60 + number(s)?,
        (false, [m]) => number(m)? * 60,
        (false, [m, s]) => number(m)? * 60 + number(s)?,
        _ => return Err(bad()),
    };
    Ok(Some(Duration::from_secs(days * 86_400 + seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_limits() {
        assert_eq!(format_slurm_time(Duration::from_secs(1)), "00:01:00");
        assert_eq!(format_slurm_time(Duration::from_secs(61)), "00:02:00");
        assert_eq!(format_slurm_time(Duration::from_secs(2 * 3600)), "02:00:00");
        assert_eq!(
            format_slurm_time(Duration::from_secs(86_400 + 90 * 60)),
            "1-01:30:00"
        );
    }

    #[test]
    fn parses_slurm_times() {
        let s = |x| Some(Duration::from_secs(x));
        assert_eq!(parse_slurm_time("00:01:00").unwrap(), s(60));
        assert_eq!(parse_slurm_time("1-02:00:00").unwrap(), s(86_400 + 7200));
        assert_eq!(parse_slurm_time("1-02").unwrap(), s(86_400 + 7200));
        assert_eq!(parse_slurm_time("05:30").unwrap(), s(330));
        assert_eq!(parse_slurm_time("10").unwrap(), s(600));
        assert_eq!(parse_slurm_time("UNLIMITED").unwrap(), None);
        assert!(parse_slurm_time("x:y").is_err());
    }
}
