//! What a UPF pseudopotential file says it is: its element and exchange-correlation
//! functional, read from the header (UPF v2 `<PP_HEADER element="Si" functional="...">`,
//! or the UPF v1 `<PP_HEADER>` lines ending in `Element` and `Exchange-Correlation
//! functional`). A file for the wrong element, or generated with another functional than its
//! family's, gives pw.x a "converged" energy that means nothing, so both are checked before a
//! task is planned.

use std::path::Path;

/// The part of a UPF file read for its header: headers come first and are a few KiB.
const HEADER_BYTES: u64 = 256 * 1024;

/// A functional as a family name: `LDA`, `PBE`, `PBESOL`, `BLYP`; or the text as written
/// when flow does not recognise it (then it is not compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Functional {
    Known(&'static str),
    Other(String),
}

/// The header's identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpfIdentity {
    pub element: Option<String>,
    pub functional: Option<Functional>,
}

/// Read the identity from the start of `path` (a regular file only: a FIFO or device is an
/// error, never a wait).
pub fn read_identity(path: &Path) -> std::io::Result<UpfIdentity> {
    let bytes = flow_dsl::user_file::read_prefix(path, HEADER_BYTES)?;
    Ok(identity_of(&String::from_utf8_lossy(&bytes)))
}

/// The identity in a UPF file's text (pure).
pub fn identity_of(text: &str) -> UpfIdentity {
    let header_v2 = text.find("<PP_HEADER").and_then(|start| {
        let rest = &text[start..];
        rest.find('>').map(|end| &rest[..end])
    });
    let mut id = UpfIdentity::default();
    if let Some(h) = header_v2.filter(|h| h.contains('=')) {
        id.element = attribute(h, "element").map(|e| e.trim().to_string());
        id.functional = attribute(h, "functional").map(|f| classify(&f));
    }
    if id.element.is_none() || id.functional.is_none() {
        // UPF v1: `   Si    Element` and `  SLA  PZ   NOGX NOGC   PZ   Exchange-Correlation functional`.
        let body = text
            .find("<PP_HEADER>")
            .map(|s| &text[s..])
            .and_then(|h| h.find("</PP_HEADER>").map(|e| &h[..e]))
            .unwrap_or("");
        for line in body.lines() {
            let t = line.trim();
            if id.element.is_none() && t.ends_with("Element") {
                id.element = t.split_whitespace().next().map(str::to_string);
            }
            if id.functional.is_none() && t.contains("Exchange-Correlation") {
                let before = t.split("Exchange-Correlation").next().unwrap_or("");
                id.functional = Some(classify(before));
            }
        }
    }
    id
}

fn attribute(header: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(pos) = header[from..].find(name) {
        let at = from + pos;
        let before_ok = at == 0 || header[..at].ends_with(char::is_whitespace);
        let rest = header[at + name.len()..].trim_start();
        if before_ok {
            if let Some(value) = rest.strip_prefix('=') {
                let value = value.trim_start();
                let quote = value.chars().next()?;
                if quote == '"' || quote == '\'' {
                    let inner = &value[1..];
                    return inner.find(quote).map(|end| inner[..end].to_string());
                }
            }
        }
        from = at + name.len();
    }
    None
}

/// QE's functional spellings as a family: `SLA PW PBX PBC` and `PBE` are PBE, `SLA PZ NOGX
/// NOGC`, `PZ` and `LDA` are LDA, ...
pub fn classify(text: &str) -> Functional {
    let upper = text.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '-')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let known = if has("PBESOL") || (has("PSX") && has("PSC")) {
        Some("PBESOL")
    } else if has("PBE") || (has("PBX") && has("PBC")) {
        Some("PBE")
    } else if has("BLYP") || (has("B88") && has("BLYP")) || (has("B88") && has("LYP")) {
        Some("BLYP")
    } else if has("LDA")
        || has("PZ")
        || ((has("NOGX") || has("NOGC")) && (has("PZ") || has("PW") || has("VWN")))
    {
        Some("LDA")
    } else {
        None
    };
    match known {
        Some(k) => Functional::Known(k),
        None => Functional::Other(text.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v1_headers_are_read() {
        let v2 = r#"<UPF version="2.0.1">
<PP_INFO>x</PP_INFO>
<PP_HEADER generated="x" author="ADC" element=" C" pseudo_type="US" functional=" SLA  PW   PBX  PBC" z_valence="4"/>"#;
        assert_eq!(
            identity_of(v2),
            UpfIdentity {
                element: Some("C".into()),
                functional: Some(Functional::Known("PBE"))
            }
        );
        let v1 = "<PP_INFO>\n</PP_INFO>\n<PP_HEADER>\n   0                   Version Number\n  Si                   Element\n   NC                  Norm - Conserving pseudopotential\n  SLA  PZ   NOGX NOGC   PZ   Exchange-Correlation functional\n</PP_HEADER>\n";
        assert_eq!(
            identity_of(v1),
            UpfIdentity {
                element: Some("Si".into()),
                functional: Some(Functional::Known("LDA"))
            }
        );
        assert_eq!(classify("LDA (PZ)"), Functional::Known("LDA"));
        assert_eq!(classify("PBE"), Functional::Known("PBE"));
        assert_eq!(classify("PBEsol"), Functional::Known("PBESOL"));
        assert!(matches!(classify("HSE"), Functional::Other(_)));
    }

    #[test]
    fn debian_files_say_what_their_names_say() {
        let dir = Path::new("/usr/share/espresso/pseudo");
        if !dir.is_dir() {
            eprintln!("skipped: no /usr/share/espresso/pseudo");
            return;
        }
        for (file, element, functional) in [
            ("Si.pz-vbc.UPF", "Si", "LDA"),
            ("Au.pz-rrkjus_aewfc.UPF", "Au", "LDA"),
            ("C.pbe-mt_gipaw.UPF", "C", "PBE"),
            ("B.pbe-n-kjpaw_psl.1.0.0.UPF", "B", "PBE"),
        ] {
            let id = read_identity(&dir.join(file)).unwrap();
            assert_eq!(id.element.as_deref(), Some(element), "{file}");
            assert_eq!(id.functional, Some(Functional::Known(functional)), "{file}");
        }
    }
}
