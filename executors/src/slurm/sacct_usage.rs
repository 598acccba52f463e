//! Resource figures as sacct prints them: memory (`MaxRSS`: `123456K`, `1.50M`, `2G`) and
//! CPU times (`TotalCPU`, `UserCPU`, `SystemCPU`: `MM:SS.mmm`, `HH:MM:SS`,
//! `D-HH:MM:SS`), and the sum of an element's steps into one [`ResourceUsage`].

use crate::launch::ResourceUsage;

/// A sacct memory figure in KiB. Suffixes K, M, G, T, P are powers of 1024 KiB apart
/// (Slurm's `convert_num_unit`); a bare number is bytes. Empty, `0` or unreadable text
/// gives `None`: a step whose memory was not gathered (`jobacct_gather/none`) reads `0`,
/// which would otherwise look like a task that used nothing.
pub fn parse_sacct_memory_kib(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = match text.chars().last()? {
        'K' | 'k' => (&text[..text.len() - 1], 1.0),
        'M' | 'm' => (&text[..text.len() - 1], 1024.0),
        'G' | 'g' => (&text[..text.len() - 1], 1024.0 * 1024.0),
        'T' | 't' => (&text[..text.len() - 1], 1024.0 * 1024.0 * 1024.0),
        'P' | 'p' => (&text[..text.len() - 1], 1024.0 * 1024.0 * 1024.0 * 1024.0),
        _ => (text, 1.0 / 1024.0),
    };
    let value: f64 = number.parse().ok()?;
    let kib = (value * scale).ceil();
    (kib.is_finite() && kib > 0.0).then_some(kib as u64)
}

/// A sacct CPU time in seconds: `[D-][HH:]MM:SS[.fff]` (sacct writes `00:01.234` under an
/// hour, `01:02:03` above, `1-02:03:04` above a day). Empty or unreadable text gives `None`.
pub fn parse_sacct_cpu_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m, s] => (h.parse::<u64>().ok()?, m.parse::<u64>().ok()?, *s),
        [m, s] => (0, m.parse::<u64>().ok()?, *s),
        [s] if text.contains('.') => (0, 0, *s),
        _ => return None,
    };
    let seconds: f64 = seconds.parse().ok()?;
    if !(0.0..60.0).contains(&seconds) || minutes >= 60 {
        return None;
    }
    Some(((days * 24 + hours) * 3600 + minutes * 60) as f64 + seconds)
}

/// The usage figures of one sacct line (allocation or step).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineUsage {
    pub max_rss_kib: Option<u64>,
    pub user_cpu_s: Option<f64>,
    pub system_cpu_s: Option<f64>,
    pub total_cpu_s: Option<f64>,
}

impl LineUsage {
    /// From the `MaxRSS`, `UserCPU`, `SystemCPU`, `TotalCPU` fields (any may be empty).
    pub fn parse(max_rss: &str, user: &str, system: &str, total: &str) -> Self {
        LineUsage {
            max_rss_kib: parse_sacct_memory_kib(max_rss),
            user_cpu_s: parse_sacct_cpu_seconds(user),
            system_cpu_s: parse_sacct_cpu_seconds(system),
            total_cpu_s: parse_sacct_cpu_seconds(total),
        }
    }

    fn cpu(&self) -> f64 {
        match (self.user_cpu_s, self.system_cpu_s) {
            (None, None) => self.total_cpu_s.unwrap_or(0.0),
            (u, s) => u.unwrap_or(0.0) + s.unwrap_or(0.0),
        }
    }
}

/// An element's usage from its allocation line and its steps (`.batch`, `.extern`, `.0`):
/// peak memory is the largest step's MaxRSS; CPU time is the allocation's (sacct sums the
/// steps there) or, when that line has none, the sum over the steps. `None` when no figure
/// is known at all.
pub fn element_usage(allocation: &LineUsage, steps: &[LineUsage]) -> Option<ResourceUsage> {
    let max_rss_kib = steps
        .iter()
        .chain(std::iter::once(allocation))
        .filter_map(|s| s.max_rss_kib)
        .max();
    let from = if allocation.cpu() > 0.0 || steps.is_empty() {
        vec![*allocation]
    } else {
        steps.to_vec()
    };
    let sum = |f: fn(&LineUsage) -> Option<f64>| {
        let known: Vec<f64> = from.iter().filter_map(f).collect();
        (!known.is_empty()).then(|| known.iter().sum::<f64>())
    };
    let (mut user, system) = (sum(|l| l.user_cpu_s), sum(|l| l.system_cpu_s));
    if user.is_none() && system.is_none() {
        user = sum(|l| l.total_cpu_s);
    }
    if max_rss_kib.is_none() && user.is_none() && system.is_none() {
        return None;
    }
    Some(ResourceUsage {
        max_rss_kib,
        user_cpu_s: user,
        system_cpu_s: system,
        source: "sacct".into(),
        spawner_rss_kib: None,
    })
}

/// sacct's figures over what the task measured itself (its rusage in the result file):
/// each figure sacct knows replaces the task's; the others are kept. The source says
/// `sacct` when sacct gave any figure.
pub fn merge_usage(
    from_task: Option<ResourceUsage>,
    from_sacct: Option<&ResourceUsage>,
) -> Option<ResourceUsage> {
    let Some(sacct) = from_sacct else {
        return from_task;
    };
    let task = from_task.unwrap_or_default();
    Some(ResourceUsage {
        max_rss_kib: sacct.max_rss_kib.or(task.max_rss_kib),
        user_cpu_s: sacct.user_cpu_s.or(task.user_cpu_s),
        system_cpu_s: sacct.system_cpu_s.or(task.system_cpu_s),
        source: "sacct".into(),
        // The spawner's mark only qualifies an rusage peak.
        spawner_rss_kib: if sacct.max_rss_kib.is_some() {
            None
        } else {
            task.spawner_rss_kib
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_sacct_memory_kib("153600K"), Some(153_600));
        assert_eq!(parse_sacct_memory_kib("150M"), Some(153_600));
        assert_eq!(parse_sacct_memory_kib("1.50M"), Some(1536));
        assert_eq!(parse_sacct_memory_kib("2G"), Some(2 * 1024 * 1024));
        assert_eq!(parse_sacct_memory_kib("1T"), Some(1024 * 1024 * 1024));
        assert_eq!(parse_sacct_memory_kib("2048"), Some(2));
        assert_eq!(parse_sacct_memory_kib("0"), None);
        assert_eq!(parse_sacct_memory_kib(""), None);
        assert_eq!(parse_sacct_memory_kib("lots"), None);
    }

    #[test]
    fn cpu_time_formats() {
        assert_eq!(parse_sacct_cpu_seconds("00:01.234"), Some(1.234));
        assert_eq!(parse_sacct_cpu_seconds("12:34.5"), Some(754.5));
        assert_eq!(parse_sacct_cpu_seconds("01:02:03"), Some(3723.0));
        assert_eq!(parse_sacct_cpu_seconds("1-02:03:04"), Some(93_784.0));
        assert_eq!(parse_sacct_cpu_seconds("2-00:00:00.5"), Some(172_800.5));
        assert_eq!(parse_sacct_cpu_seconds("00:00:00"), Some(0.0));
        assert_eq!(parse_sacct_cpu_seconds(""), None);
        assert_eq!(parse_sacct_cpu_seconds("00:61"), None);
        assert_eq!(parse_sacct_cpu_seconds("x:00"), None);
        assert_eq!(parse_sacct_cpu_seconds("Unknown"), None);
    }

    #[test]
    fn an_element_takes_the_largest_step_and_the_allocation_cpu() {
        let allocation = LineUsage::parse("", "00:02.500", "00:00.500", "00:03.000");
        let batch = LineUsage::parse("160000K", "00:02.400", "00:00.500", "00:02.900");
        let external = LineUsage::parse("1000K", "00:00.100", "00:00", "00:00.100");
        let usage = element_usage(&allocation, &[batch, external]).expect("usage");
        assert_eq!(usage.max_rss_kib, Some(160_000));
        assert_eq!(usage.cpu_s(), Some(3.0));
        assert_eq!(usage.source, "sacct");
        // No CPU on the allocation line: the steps' sum.
        let usage = element_usage(&LineUsage::default(), &[batch, external]).unwrap();
        assert!((usage.cpu_s().unwrap() - 3.0).abs() < 1e-9);
        // TotalCPU alone.
        let only_total = LineUsage::parse("", "", "", "1-00:00:00");
        assert_eq!(
            element_usage(&only_total, &[]).unwrap().cpu_s(),
            Some(86_400.0)
        );
        assert_eq!(element_usage(&LineUsage::default(), &[]), None);
    }

    #[test]
    fn sacct_figures_replace_the_tasks_own() {
        let task = ResourceUsage {
            max_rss_kib: Some(10),
            user_cpu_s: Some(1.0),
            system_cpu_s: Some(0.5),
            source: "rusage".into(),
            spawner_rss_kib: Some(5),
        };
        let sacct = ResourceUsage {
            max_rss_kib: None,
            user_cpu_s: Some(2.0),
            system_cpu_s: None,
            source: "sacct".into(),
            spawner_rss_kib: None,
        };
        let merged = merge_usage(Some(task.clone()), Some(&sacct)).unwrap();
        assert_eq!(merged.max_rss_kib, Some(10));
        assert_eq!(merged.spawner_rss_kib, Some(5));
        assert_eq!(merged.user_cpu_s, Some(2.0));
        assert_eq!(merged.system_cpu_s, Some(0.5));
        assert_eq!(merged.source, "sacct");
        assert_eq!(merge_usage(Some(task.clone()), None), Some(task));
        assert_eq!(merge_usage(None, None), None);
    }
}
