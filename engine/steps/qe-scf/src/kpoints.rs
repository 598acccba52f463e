//! k-point grids from a reciprocal-space spacing, and the choice of k-point pools (`-nk`).

use crate::structure::{cross, dot, Structure};
use std::f64::consts::PI;

/// How the Brillouin zone is sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KGrid {
    /// The Γ point only, with pw.x's gamma tricks (`K_POINTS gamma`).
    Gamma,
    /// A Monkhorst–Pack grid n1×n2×n3, unshifted.
    MonkhorstPack([u32; 3]),
}

impl KGrid {
    /// Number of k-points in the full grid (1 for Γ).
    pub fn total_points(&self) -> u32 {
        match self {
            KGrid::Gamma => 1,
            KGrid::MonkhorstPack([a, b, c]) => a * b * c,
        }
    }

    /// About half the grid (⌈N/2⌉; 1 for Γ): the conservative estimate used as the upper
    /// bound for pools (it undercounts even grids; see [`KGrid::nosym_kpoints`]).
    pub fn irreducible_estimate(&self) -> u32 {
        self.total_points().div_ceil(2).max(1)
    }

    /// The k-points pw.x computes with `nosym`: time reversal still pairs k with −k, and
    /// the points equal to their own partner (2 per even dimension, 1 per odd one) stay
    /// single: (N + T)/2. Matches pw.x 6.7's "number of k points" with `nosym` (3×3×3 → 14,
    /// 8×8×8 → 260); with symmetry on, an upper bound.
    pub fn nosym_kpoints(&self) -> u32 {
        match self {
            KGrid::Gamma => 1,
            KGrid::MonkhorstPack(n) => {
                let own: u32 = n.iter().map(|&d| if d % 2 == 0 { 2 } else { 1 }).product();
                ((self.total_points() + own) / 2).max(1)
            }
        }
    }

    /// `"4x4x4"` or `"gamma"`.
    pub fn label(&self) -> String {
        match self {
            KGrid::Gamma => "gamma".into(),
            KGrid::MonkhorstPack([a, b, c]) => format!("{a}x{b}x{c}"),
        }
    }
}

/// Serialised as its label (`4x4x4`, `gamma`).
impl serde::Serialize for KGrid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// Reciprocal lattice vectors **including 2π** (Å⁻¹), one row per vector.
pub fn reciprocal_vectors(cell: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let [a1, a2, a3] = *cell;
    let volume = dot(a1, cross(a2, a3));
    let scale = 2.0 * PI / volume;
    let b = |x: [f64; 3], y: [f64; 3]| {
        let c = cross(x, y);
        [c[0] * scale, c[1] * scale, c[2] * scale]
    };
    [b(a2, a3), b(a3, a1), b(a1, a2)]
}

/// The DFT factory's grid: N_i = max(1, ⌊|b_i| / spacing⌋), b_i including 2π.
/// A 10 Å cube at 0.15 Å⁻¹ gives 4×4×4; a 5 Å cube gives 8×8×8.
///
/// `spacing` must be positive (checked by [`crate::settings`]); a non-positive spacing
/// yields a 1×1×1 grid rather than a panic.
pub fn grid_from_spacing(structure: &Structure, spacing: f64) -> KGrid {
    let b = reciprocal_vectors(&structure.cell);
    let mut n = [1u32; 3];
    for (i, ni) in n.iter_mut().enumerate() {
        let len = dot(b[i], b[i]).sqrt();
        let k = if spacing > 0.0 {
            (len / spacing).floor()
        } else {
            1.0
        };
        *ni = if k.is_finite() && k >= 1.0 {
            k.min(1000.0) as u32
        } else {
            1
        };
    }
    KGrid::MonkhorstPack(n)
}

/// The number of k-point pools: the largest divisor of `ranks` that is at most the number
/// of k-points pw.x will compute. 1 when running serially or at Γ.
pub fn choose_pools(ranks: u32, grid: &KGrid) -> u32 {
    let kpts = grid.irreducible_estimate();
    (1..=ranks.max(1))
        .rev()
        .find(|d| ranks.is_multiple_of(*d) && *d <= kpts)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(a: f64) -> Structure {
        Structure {
            symbols: vec!["Si".into()],
            positions: vec![[0.0; 3]],
            cell: [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]],
        }
    }

    #[test]
    fn factory_examples() {
        assert_eq!(
            grid_from_spacing(&cube(10.0), 0.15),
            KGrid::MonkhorstPack([4, 4, 4])
        );
        assert_eq!(
            grid_from_spacing(&cube(5.0), 0.15),
            KGrid::MonkhorstPack([8, 8, 8])
        );
    }

    #[test]
    fn large_cells_get_at_least_one_point() {
        assert_eq!(
            grid_from_spacing(&cube(100.0), 0.15),
            KGrid::MonkhorstPack([1, 1, 1])
        );
    }

    #[test]
    fn reciprocal_includes_two_pi() {
        let b = reciprocal_vectors(&cube(2.0 * PI).cell);
        assert!((b[0][0] - 1.0).abs() < 1e-12 && b[0][1].abs() < 1e-12);
    }

    #[test]
    fn fcc_si_grid() {
        let si = Structure {
            symbols: vec!["Si".into(); 2],
            positions: vec![[0.0; 3]; 2],
            cell: [
                [0.0, 2.715, 2.715],
                [2.715, 0.0, 2.715],
                [2.715, 2.715, 0.0],
            ],
        };
        // |b| = 2π·√3/5.43 = 2.004 Å⁻¹ → ⌊2.004/0.5⌋ = 4
        assert_eq!(grid_from_spacing(&si, 0.5), KGrid::MonkhorstPack([4, 4, 4]));
    }

    #[test]
    fn nosym_kpoint_counts_match_pw_x() {
        // pw.x 6.7, nosym: tests/data/qe/si_scf_ok.out (3x3x3) and
        // si_walltime_kill_during_write.out (8x8x8) print these counts
        assert_eq!(KGrid::MonkhorstPack([3, 3, 3]).nosym_kpoints(), 14);
        assert_eq!(KGrid::MonkhorstPack([8, 8, 8]).nosym_kpoints(), 260);
        assert_eq!(KGrid::MonkhorstPack([2, 1, 1]).nosym_kpoints(), 2);
        assert_eq!(KGrid::Gamma.nosym_kpoints(), 1);
    }

    #[test]
    fn pools_divide_ranks_and_fit_kpoints() {
        let g = KGrid::MonkhorstPack([2, 2, 2]); // 4 irreducible
        assert_eq!(choose_pools(8, &g), 4);
        assert_eq!(choose_pools(6, &g), 3);
        assert_eq!(choose_pools(1, &g), 1);
        assert_eq!(choose_pools(16, &KGrid::Gamma), 1);
        assert_eq!(choose_pools(7, &KGrid::MonkhorstPack([4, 4, 4])), 7);
    }
}
