//! A small seeded random source (SplitMix64) and the distributions the simulated cluster
//! draws from. No crate: the simulator must give the same run for the same seed on every
//! machine and every version of its dependencies.

use std::fmt;
use std::str::FromStr;

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough for
/// simulation and trivially reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal deviate (Box-Muller; the second value is thrown away to keep the
    /// state a single integer).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A distribution of durations in seconds, written `fixed:S`, `exp:MEAN` or
/// `lognormal:MEDIAN:SIGMA` on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Fixed(f64),
    Exponential { mean: f64 },
    LogNormal { median: f64, sigma: f64 },
}

impl Dist {
    pub fn sample(&self, rng: &mut SplitMix64) -> f64 {
        match *self {
            Dist::Fixed(s) => s,
            Dist::Exponential { mean } => -mean * (1.0 - rng.unit()).ln(),
            Dist::LogNormal { median, sigma } => median * (sigma * rng.normal()).exp(),
        }
    }

    /// The distribution's mean.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Fixed(s) => s,
            Dist::Exponential { mean } => mean,
            Dist::LogNormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::Fixed(s) => write!(f, "fixed:{s}"),
            Dist::Exponential { mean } => write!(f, "exp:{mean}"),
            Dist::LogNormal { median, sigma } => write!(f, "lognormal:{median}:{sigma}"),
        }
    }
}

impl FromStr for Dist {
    type Err = String;
    fn from_str(s: &str) -> Result<Dist, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |t: &str| -> Result<f64, String> {
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(format!("`{t}` is not a non-negative number")),
            }
        };
        match parts.as_slice() {
            ["fixed", v] => Ok(Dist::Fixed(num(v)?)),
            ["exp", m] => Ok(Dist::Exponential { mean: num(m)? }),
            ["lognormal", m, s] => Ok(Dist::LogNormal {
                median: num(m)?,
                sigma: num(s)?,
            }),
            _ => Err(format!(
                "`{s}`: expected fixed:SECONDS, exp:MEAN or lognormal:MEDIAN:SIGMA"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = SplitMix64::new(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn unit_stays_in_range_and_samples_match_their_means() {
        let mut r = SplitMix64::new(1);
        let n = 200_000;
        for d in [
            Dist::Fixed(3.0),
            Dist::Exponential { mean: 50.0 },
            Dist::LogNormal {
                median: 100.0,
                sigma: 0.5,
            },
        ] {
            let mut sum = 0.0;
            for _ in 0..n {
                let x = d.sample(&mut r);
                assert!(x >= 0.0 && x.is_finite());
                sum += x;
            }
            let mean = sum / n as f64;
            assert!(
                (mean - d.mean()).abs() < 0.02 * d.mean(),
                "{d}: sample mean {mean}, expected {}",
                d.mean()
            );
        }
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!("fixed:5".parse(), Ok(Dist::Fixed(5.0)));
        assert_eq!("exp:2.5".parse(), Ok(Dist::Exponential { mean: 2.5 }));
        assert_eq!(
            "lognormal:120:1".parse(),
            Ok(Dist::LogNormal {
                median: 120.0,
                sigma: 1.0
            })
        );
        assert!("normal:1".parse::<Dist>().is_err());
        assert!("exp:-1".parse::<Dist>().is_err());
        assert!("lognormal:1".parse::<Dist>().is_err());
    }
}
