//! Element facts the input needs: standard atomic weights (for `ATOMIC_SPECIES`; an SCF
//! does not use them, pw.x only requires a value) and which elements are magnetic by default.

const WEIGHTS: &str = "H 1.008 He 4.0026 Li 6.94 Be 9.0122 B 10.81 C 12.011 N 14.007 O 15.999 \
F 18.998 Ne 20.180 Na 22.990 Mg 24.305 Al 26.982 Si 28.085 P 30.974 S 32.06 Cl 35.45 Ar 39.948 \
K 39.098 Ca 40.078 Sc 44.956 Ti 47.867 V 50.942 Cr 51.996 Mn 54.938 Fe 55.845 Co 58.933 \
Ni 58.693 Cu 63.546 Zn 65.38 Ga 69.723 Ge 72.630 As 74.922 Se 78.971 Br 79.904 Kr 83.798 \
Rb 85.468 Sr 87.62 Y 88.906 Zr 91.224 Nb 92.906 Mo 95.95 Tc 98.0 Ru 101.07 Rh 102.91 \
Pd 106.42 Ag 107.87 Cd 112.41 In 114.82 Sn 118.71 Sb 121.76 Te 127.60 I 126.90 Xe 131.29 \
Cs 132.91 Ba 137.33 La 138.91 Ce 140.12 Pr 140.91 Nd 144.24 Pm 145.0 Sm 150.36 Eu 151.96 \
Gd 157.25 Tb 158.93 Dy 162.50 Ho 164.93 Er 167.26 Tm 168.93 Yb 173.05 Lu 174.97 Hf 178.49 \
Ta 180.95 W 183.84 Re 186.21 Os 190.23 Ir 192.22 Pt 195.08 Au 196.97 Hg 200.59 Tl 204.38 \
Pb 207.2 Bi 208.98";

/// Standard atomic weight of `symbol` (u), or `None` for an unknown symbol.
pub fn atomic_weight(symbol: &str) -> Option<f64> {
    let mut it = WEIGHTS.split_whitespace();
    while let (Some(s), Some(w)) = (it.next(), it.next()) {
        if s == symbol {
            return w.parse().ok();
        }
    }
    None
}

/// Whether `symbol` is a known chemical element.
pub fn is_element(symbol: &str) -> bool {
    atomic_weight(symbol).is_some()
}

/// The elements that get `nspin=2` and a starting magnetisation: Fe, Co, Ni.
pub const MAGNETIC: [&str; 3] = ["Fe", "Co", "Ni"];

/// Default `starting_magnetization` (fraction of the valence charge) for a magnetic element.
pub fn default_starting_magnetization(symbol: &str) -> Option<f64> {
    match symbol {
        "Fe" => Some(0.5),
        "Co" => Some(0.4),
        "Ni" => Some(0.3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(atomic_weight("Si"), Some(28.085));
        assert_eq!(atomic_weight("Bi"), Some(208.98));
        assert_eq!(atomic_weight("Xx"), None);
        assert!(is_element("Fe"));
        assert_eq!(default_starting_magnetization("Cu"), None);
    }
}
