//! Kubernetes `$(VAR)` expansion of `command`, `args` and env values.

/// Expands `$(NAME)` from `lookup`; `$$` is a literal `$`; an unknown or
/// unterminated reference stays as written, as the kubelet does.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "IDX" => Some("3".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_known_keeps_unknown() {
        assert_eq!(expand("out-$(IDX)", env), "out-3");
        assert_eq!(expand("$(IDX)$(IDX)", env), "33");
        assert_eq!(expand("a$(EMPTY)b", env), "ab");
        assert_eq!(expand("$(NOPE) x", env), "$(NOPE) x");
    }

    #[test]
    fn dollar_escapes_and_shell_syntax() {
        assert_eq!(expand("$$(IDX)", env), "$(IDX)");
        assert_eq!(expand("$$", env), "$");
        assert_eq!(expand("echo \"$TM\" $1", env), "echo \"$TM\" $1");
        assert_eq!(expand("$(IDX", env), "$(IDX");
        assert_eq!(expand("end$", env), "end$");
    }
}
