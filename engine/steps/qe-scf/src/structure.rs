//! Atomic structures: what an SCF calculation is run on.
//!
//! Readers for ASE's extended XYZ and VASP 5 POSCAR/CONTCAR are written here in Rust (pure
//! functions over text); any other format (CIF, ...) is read by ASE through `python3` when
//! ASE is importable, with a clear error otherwise. Positions and cells are in Å.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A periodic structure: chemical symbols, Cartesian positions (Å) and cell vectors (Å,
/// one row per lattice vector).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Structure {
    /// Chemical symbol of each atom (`"Si"`, `"Fe"`).
    pub symbols: Vec<String>,
    /// Cartesian position of each atom, Å.
    pub positions: Vec<[f64; 3]>,
    /// Lattice vectors a, b, c as rows, Å.
    pub cell: [[f64; 3]; 3],
}

impl Structure {
    /// The distinct elements in order of first appearance.
    pub fn species(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.symbols {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Cell volume in Å³ (absolute value of the triple product).
    pub fn volume(&self) -> f64 {
        let [a, b, c] = self.cell;
        dot(a, cross(b, c)).abs()
    }

    /// A compact formula in order of first appearance, e.g. `Si2`, `FeO`.
    pub fn formula(&self) -> String {
        self.species()
            .iter()
            .map(|s| {
                let n = self.symbols.iter().filter(|x| *x == s).count();
                if n == 1 {
                    s.clone()
                } else {
                    format!("{s}{n}")
                }
            })
            .collect()
    }
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Why a structure could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// The text is not valid in the expected format.
    #[error("{path}: {format}, line {line}: {message}")]
    Syntax {
        /// The file (or `<text>`).
        path: String,
        /// `extxyz` or `POSCAR`.
        format: &'static str,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read structure file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The format needs ASE and ASE is not importable, or ASE failed to read the file.
    #[error("{path}: {message}")]
    Ase {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
}

fn syntax(format: &'static str, line: usize, message: impl Into<String>) -> StructureError {
    StructureError::Syntax {
        path: "<text>".into(),
        format,
        line,
        message: message.into(),
    }
}

/// Splits an extxyz comment line into key=value pairs, honouring double quotes and
/// `{...}`/`[...]` groups. A bare key becomes `(key, "T")`.
fn comment_pairs(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            let value: String = if i < chars.len() && matches!(chars[i], '"' | '{' | '[') {
                let close = match chars[i] {
                    '"' => '"',
                    '{' => '}',
                    _ => ']',
                };
                i += 1;
                let vs = i;
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                let v = chars[vs..i.min(chars.len())].iter().collect();
                i += 1;
                v
            } else {
                let vs = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                chars[vs..i].iter().collect()
            };
            pairs.push((key, value));
        } else {
            pairs.push((key, "T".to_string()));
        }
    }
    pairs
}

/// Parses every frame of an extended XYZ text (ASE's `Lattice="..."
/// Properties=species:S:1:pos:R:3 ...`). Each frame must have a `Lattice`: pw.x needs a
/// periodic cell. Without `Properties`, columns are `species x y z`.
pub fn parse_extxyz(text: &str) -> Result<Vec<Structure>, StructureError> {
    const F: &str = "extxyz";
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let count_line = i + 1;
        let n: usize = lines[i].trim().parse().map_err(|_| {
            syntax(
                F,
                count_line,
                "expected the atom count (a whole number) on this line".to_string(),
            )
        })?;
        let comment = lines
            .get(i + 1)
            .ok_or_else(|| syntax(F, count_line + 1, "missing comment line"))?;
        let pairs = comment_pairs(comment);
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let lattice = get("Lattice").ok_or_else(|| {
            syntax(
                F,
                count_line + 1,
                "no Lattice=\"...\" on the comment line (pw.x needs a periodic cell)",
            )
        })?;
        let nums: Vec<f64> = lattice
            .split_whitespace()
            .map(|t| t.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| syntax(F, count_line + 1, "Lattice is not 9 numbers".to_string()))?;
        if nums.len() != 9 {
            return Err(syntax(
                F,
                count_line + 1,
                format!("Lattice has {} numbers, expected 9", nums.len()),
            ));
        }
        let cell = [
            [nums[0], nums[1], nums[2]],
            [nums[3], nums[4], nums[5]],
            [nums[6], nums[7], nums[8]],
        ];
        let (species_col, pos_col) =
            property_columns(get("Properties").unwrap_or("species:S:1:pos:R:3"))
                .map_err(|m| syntax(F, count_line + 1, m))?;
        let mut symbols = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        for a in 0..n {
            let ln = i + 2 + a;
            let line = lines.get(ln).ok_or_else(|| {
                syntax(
                    F,
                    ln + 1,
                    format!("frame declares {n} atoms but the file ends after {a}"),
                )
            })?;
            let cols: Vec<&str> = line.split_whitespace().collect();
            let sym = cols
                .get(species_col)
                .ok_or_else(|| syntax(F, ln + 1, "missing species column"))?;
            let mut p = [0.0; 3];
            for (k, slot) in p.iter_mut().enumerate() {
                *slot = cols
                    .get(pos_col + k)
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or_else(|| syntax(F, ln + 1, "missing or non-numeric position column"))?;
            }
            symbols.push(
                normalize_symbol(sym).ok_or_else(|| {
                    syntax(F, ln + 1, "the species column is not a chemical symbol")
                })?,
            );
            positions.push(p);
        }
        frames.push(Structure {
            symbols,
            positions,
            cell,
        });
        i += 2 + n;
    }
    if frames.is_empty() {
        return Err(syntax(F, 1, "no frames"));
    }
    Ok(frames)
}

/// Column indices of `species` and `pos` in a Properties spec.
fn property_columns(spec: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if !parts.len().is_multiple_of(3) {
        return Err("Properties is not name:type:count triples".to_string());
    }
    let (mut col, mut species, mut pos) = (0usize, None, None);
    for (k, t) in parts.chunks(3).enumerate() {
        let count: usize = t[2].parse().map_err(|_| {
            format!(
                "Properties: the count of property {} is not a number",
                k + 1
            )
        })?;
        match t[0] {
            "species" => species = Some(col),
            "pos" => pos = Some(col),
            _ => {}
        }
        col += count;
    }
    match (species, pos) {
        (Some(s), Some(p)) => Ok((s, p)),
        _ => Err("Properties lacks species or pos".to_string()),
    }
}

/// `fe` → `Fe`; `Fe1` → `Fe`; rejects anything without a leading letter.
fn normalize_symbol(raw: &str) -> Option<String> {
    let letters: String = raw
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let mut chars = letters.chars();
    let first = chars.next()?.to_ascii_uppercase();
    let rest: String = chars.take(1).map(|c| c.to_ascii_lowercase()).collect();
    Some(format!("{first}{rest}"))
}

/// Parses a VASP 5 POSCAR/CONTCAR (species names on line 6; `Selective dynamics`
/// optional; `Direct` or `Cartesian` coordinates; a negative scale is a target volume).
pub fn parse_poscar(text: &str) -> Result<Structure, StructureError> {
    const F: &str = "POSCAR";
    let lines: Vec<&str> = text.lines().collect();
    let line = |i: usize| {
        lines
            .get(i)
            .copied()
            .ok_or_else(|| syntax(F, i + 1, "file ends early"))
    };
    let floats = |i: usize, n: usize| -> Result<Vec<f64>, StructureError> {
        let v: Vec<f64> = line(i)?
            .split_whitespace()
            .take(n)
            .map(|t| t.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| syntax(F, i + 1, format!("expected {n} numbers")))?;
        if v.len() < n {
            return Err(syntax(F, i + 1, format!("expected {n} numbers")));
        }
        Ok(v)
    };
    let scale = floats(1, 1)?[0];
    let mut cell = [[0.0; 3]; 3];
    for (k, row) in cell.iter_mut().enumerate() {
        let v = floats(2 + k, 3)?;
        *row = [v[0], v[1], v[2]];
    }
    let raw_volume = dot(cell[0], cross(cell[1], cell[2])).abs();
    let factor = if scale < 0.0 {
        (-scale / raw_volume).cbrt()
    } else {
        scale
    };
    for row in cell.iter_mut() {
        for x in row.iter_mut() {
            *x *= factor;
        }
    }
    let names: Vec<String> = line(5)?
        .split_whitespace()
        .map(|s| s.split('/').next().unwrap_or(s).to_string())
        .collect();
    if names.first().is_none_or(|n| n.parse::<f64>().is_ok()) {
        return Err(syntax(
            F,
            6,
            "no species names on line 6 (VASP 4 format is not supported: add the element names)",
        ));
    }
    let counts: Vec<usize> = line(6)?
        .split_whitespace()
        .map(|t| t.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| syntax(F, 7, "expected the atom count per species"))?;
    if counts.len() != names.len() {
        return Err(syntax(
            F,
            7,
            format!("{} species names but {} counts", names.len(), counts.len()),
        ));
    }
    let mut next = 7;
    if line(next)?.trim_start().starts_with(['S', 's']) {
        next += 1;
    }
    let mode = line(next)?.trim_start();
    let cartesian = mode.starts_with(['C', 'c', 'K', 'k']);
    next += 1;
    let mut symbols = Vec::new();
    let mut positions = Vec::new();
    for (name, count) in names.iter().zip(&counts) {
        let sym = normalize_symbol(name)
            .ok_or_else(|| syntax(F, 6, "a species name is not a chemical symbol"))?;
        for _ in 0..*count {
            let v = floats(next, 3)?;
            let p = if cartesian {
                [v[0] * factor, v[1] * factor, v[2] * factor]
            } else {
                let mut c = [0.0; 3];
                for (j, cj) in c.iter_mut().enumerate() {
                    *cj = v[0] * cell[0][j] + v[1] * cell[1][j] + v[2] * cell[2][j];
                }
                c
            };
            symbols.push(sym.clone());
            positions.push(p);
            next += 1;
        }
    }
    Ok(Structure {
        symbols,
        positions,
        cell,
    })
}

/// How a structure file is read, decided from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructureFormat {
    /// `.extxyz` or `.xyz`.
    ExtXyz,
    /// `POSCAR`, `CONTCAR`, `*.vasp`, `*.poscar`.
    Poscar,
    /// Anything else: read by ASE.
    Ase,
}

/// The format a file name implies.
pub fn format_of(path: &Path) -> StructureFormat {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".extxyz") || lower.ends_with(".xyz") {
        StructureFormat::ExtXyz
    } else if lower.starts_with("poscar")
        || lower.starts_with("contcar")
        || lower.ends_with(".vasp")
        || lower.ends_with(".poscar")
    {
        StructureFormat::Poscar
    } else {
        StructureFormat::Ase
    }
}

/// Reads every structure (frame) in a file. extxyz and POSCAR are parsed here; other
/// formats go through `python3` + ASE (`ase.io.read(path, index=':')`).
///
/// Errors: unreadable file, syntax errors (with the file and line), ASE not importable or
/// failing.
pub fn read_structures(path: &Path) -> Result<Vec<Structure>, StructureError> {
    let with_path = |e: StructureError| match e {
        StructureError::Syntax {
            format,
            line,
            message,
            ..
        } => StructureError::Syntax {
            path: path.display().to_string(),
            format,
            line,
            message,
        },
        other => other,
    };
    match format_of(path) {
        StructureFormat::ExtXyz => parse_extxyz(&read_text(path)?).map_err(with_path),
        StructureFormat::Poscar => parse_poscar(&read_text(path)?)
            .map(|s| vec![s])
            .map_err(with_path),
        StructureFormat::Ase => read_with_ase(path),
    }
}

fn read_text(path: &Path) -> Result<String, StructureError> {
    flow_dsl::user_file::read_text(path).map_err(|source| StructureError::Io {
        path: path.to_path_buf(),
        source,
    })
}

const ASE_READER: &str = r#"
import json, sys
try:
    import ase.io
except ImportError as e:
    print("ASE_MISSING: " + str(e), file=sys.stderr); sys.exit(3)
frames = ase.io.read(sys.argv[1], index=":")
print(json.dumps([{"symbols": a.get_chemical_symbols(),
                   "positions": a.positions.tolist(),
                   "cell": a.cell.array.tolist()} for a in frames]))
"#;

/// Reads a structure file with ASE (`python3`); the path is passed as an argument, never
/// interpolated into code.
pub fn read_with_ase(path: &Path) -> Result<Vec<Structure>, StructureError> {
    let err = |message: String| StructureError::Ase {
        path: path.to_path_buf(),
        message,
    };
    let out = Command::new("python3")
        .arg("-c")
        .arg(ASE_READER)
        .arg(path)
        .output()
        .map_err(|e| {
            err(format!(
                "reading this format needs python3 with ASE; python3 could not start: {e}"
            ))
        })?;
    if out.status.code() == Some(3) {
        return Err(err(
            "reading this format (not extxyz/POSCAR) needs ASE, which python3 cannot import: `python3 -m pip install ase`".into(),
        ));
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // ASE's message may quote the file; only its exception type is shown.
        let last = stderr.lines().last().unwrap_or("");
        let kind: String = last
            .split(':')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
            .take(60)
            .collect();
        return Err(err(format!(
            "ASE could not read it ({}); run `python3 -c \"import ase.io; ase.io.read('FILE')\"` to see why",
            if kind.is_empty() { "no reason given" } else { &kind }
        )));
    }
    let frames: Vec<Structure> = serde_json::from_slice(&out.stdout)
        .map_err(|e| err(format!("unexpected output from the ASE reader: {e}")))?;
    if frames.iter().any(|f| f.volume() < 1e-6) {
        return Err(err(
            "the structure has no periodic cell (pw.x needs one)".into()
        ));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SI: &str = "2\nLattice=\"0.0 2.715 2.715 2.715 0.0 2.715 2.715 2.715 0.0\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\nSi 0.0 0.0 0.0\nSi 1.3575 1.3575 1.3575\n";

    #[test]
    fn extxyz_si() {
        let s = &parse_extxyz(SI).unwrap()[0];
        assert_eq!(s.symbols, vec!["Si", "Si"]);
        assert_eq!(s.positions[1], [1.3575, 1.3575, 1.3575]);
        assert_eq!(s.cell[0], [0.0, 2.715, 2.715]);
        assert!((s.volume() - 2.0 * 2.715f64.powi(3)).abs() < 1e-9);
        assert_eq!(s.formula(), "Si2");
    }

    #[test]
    fn extxyz_properties_order_and_frames() {
        let text = "1\nenergy=-1.0 Properties=pos:R:3:species:S:1:forces:R:3 Lattice=\"3 0 0 0 3 0 0 0 3\"\n0.5 0.5 0.5 fe 0 0 0\n1\nLattice=\"4 0 0 0 4 0 0 0 4\"\nCu 0 0 0\n";
        let frames = parse_extxyz(text).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].symbols, vec!["Fe"]);
        assert_eq!(frames[0].positions[0], [0.5, 0.5, 0.5]);
        assert_eq!(frames[1].cell[2], [0.0, 0.0, 4.0]);
    }

    #[test]
    fn extxyz_errors_are_located() {
        let e = parse_extxyz("2\nLattice=\"1 0 0 0 1 0 0 0 1\"\nSi 0 0 0\n").unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = parse_extxyz("1\nno lattice\nSi 0 0 0\n").unwrap_err();
        assert!(e.to_string().contains("Lattice"), "{e}");
    }

    #[test]
    fn poscar_direct_and_cartesian() {
        let direct = "Fe bcc\n2.87\n1 0 0\n0 1 0\n0 0 1\nFe\n2\nDirect\n0 0 0\n0.5 0.5 0.5\n";
        let s = parse_poscar(direct).unwrap();
        assert_eq!(s.symbols, vec!["Fe", "Fe"]);
        assert!((s.positions[1][2] - 1.435).abs() < 1e-12);
        assert_eq!(s.cell[1], [0.0, 2.87, 0.0]);
        let cart = "x\n1.0\n5 0 0\n0 5 0\n0 0 5\nO H\n1 2\nSelective dynamics\nCartesian\n0 0 0 T T T\n0.9 0 0 T T T\n0 0.9 0 F F F\n";
        let s = parse_poscar(cart).unwrap();
        assert_eq!(s.symbols, vec!["O", "H", "H"]);
        assert_eq!(s.positions[2], [0.0, 0.9, 0.0]);
    }

    #[test]
    fn poscar_negative_scale_is_volume() {
        let s = parse_poscar("x\n-125\n1 0 0\n0 1 0\n0 0 1\nCu\n1\nDirect\n0 0 0\n").unwrap();
        assert!((s.volume() - 125.0).abs() < 1e-9);
    }

    #[test]
    fn poscar_without_names_is_a_clear_error() {
        let e =
            parse_poscar("x\n1\n1 0 0\n0 1 0\n0 0 1\n2\nDirect\n0 0 0\n0.5 0.5 0.5\n").unwrap_err();
        assert!(e.to_string().contains("VASP 4"), "{e}");
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(format_of(Path::new("a/b.extxyz")), StructureFormat::ExtXyz);
        assert_eq!(format_of(Path::new("CONTCAR")), StructureFormat::Poscar);
        assert_eq!(format_of(Path::new("x.cif")), StructureFormat::Ase);
    }
}
