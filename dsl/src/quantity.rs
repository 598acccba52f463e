//! Durations (`90s`, `2h30m`), memory sizes (`32G`, `500M`) and rates (`2/s`) as users
//! write them.

use std::time::Duration;

/// The longest duration flow accepts anywhere (timeouts, walltimes, backoffs): 366 days.
/// Longer values are certainly typos, and past about 2^63 ns they cannot be added to a clock.
pub const MAX_DURATION_SECS: u64 = 366 * 86400;

/// Parse `90s`, `10m`, `2h`, `1d`, `1h30m`, `250ms`, or a bare number of seconds, at most
/// [`MAX_DURATION_SECS`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let too_long = || format!("`{text}` is longer than the most flow accepts (366d)");
    if let Ok(secs) = text.parse::<u64>() {
        if secs > MAX_DURATION_SECS {
            return Err(too_long());
        }
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has a number without a unit (s, m, h, d)"))?;
        if num_len == 0 {
            return Err(format!("`{text}` is not a duration"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => return Err(format!("`{other}` is not a time unit (ms, s, m, h, d)")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > MAX_DURATION_SECS as f64 {
        return Err(too_long());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Render a duration the way Slurm's `--time` wants it: `D-HH:MM:SS` or `HH:MM:SS`.
pub fn slurm_time(d: Duration) -> String {
    let secs = d.as_secs().max(60);
    let (days, rem) = (secs / 86400, secs % 86400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    if days > 0 {
        format!("{days}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A compact human form: `2h`, `1h30m`, `45s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parse `500M`, `32G`, `1.5T`, `64GB`, `512Mi` (binary units), or a bare number of MiB.
pub fn parse_memory_mb(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let too_much = || format!("`{text}` is more memory than the most flow accepts (1P)");
    if let Ok(mb) = t.parse::<u64>() {
        if mb > MAX_MEMORY_MB {
            return Err(too_much());
        }
        return Ok(mb);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..split]
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an amount of memory"))?;
    let unit = t[split..]
        .trim()
        .trim_end_matches('B')
        .trim_end_matches('i');
    let factor = match unit {
        "K" => 1.0 / 1024.0,
        "" | "M" => 1.0,
        "G" => 1024.0,
        "T" => 1024.0 * 1024.0,
        _ => return Err(format!("`{text}` has an unknown unit (K, M, G, T)")),
    };
    let mb = (value * factor).ceil();
    if !mb.is_finite() || mb > MAX_MEMORY_MB as f64 {
        return Err(too_much());
    }
    Ok(mb as u64)
}

/// The most memory flow accepts for one task: 1 PiB, in MiB.
pub const MAX_MEMORY_MB: u64 = 1024 * 1024 * 1024;

/// A rate such as `2/s`, `30/min`, `5/m`, `100/h`: `calls` per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub calls: f64,
    pub per: Duration,
}

impl Rate {
    /// Parse `N/s`, `N/sec`, `N/m`, `N/min`, `N/h` (N may be fractional). Errors name the text.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("unreadable rate `{text}` (expected e.g. 2/s, 30/min)");
        let (calls, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let calls: f64 = calls.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if !(calls.is_finite() && calls > 0.0) {
            return Err(bad());
        }
        Ok(Rate { calls, per })
    }

    /// Calls per second.
    pub fn per_second(&self) -> f64 {
        self.calls / self.per.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_and_memory_are_errors_not_panics() {
        for text in [
            "213503982334602d",
            "18446744073709551615",
            "1e400s",
            "367d",
            "9999999999999999999999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert_eq!(parse_duration("366d").unwrap().as_secs(), MAX_DURATION_SECS);
        for text in ["18446744073709551615", "99999999999999999999T", "2P"] {
            assert!(parse_memory_mb(text).is_err(), "{text}");
        }
        assert_eq!(parse_memory_mb("1024T").unwrap(), MAX_MEMORY_MB);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("5x").is_err());
        assert_eq!(slurm_time(Duration::from_secs(86400 + 3661)), "1-01:01:01");
        assert_eq!(human_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory_mb("32G").unwrap(), 32768);
        assert_eq!(parse_memory_mb("500M").unwrap(), 500);
        assert_eq!(parse_memory_mb("64GB").unwrap(), 65536);
        assert_eq!(parse_memory_mb("1.5T").unwrap(), 1572864);
        assert!(parse_memory_mb("lots").is_err());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("2/s").unwrap().per_second(), 2.0);
        assert_eq!(Rate::parse("30/min").unwrap().per_second(), 0.5);
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("0/s").is_err());
    }
}
