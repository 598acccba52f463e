//! Templates in commands and output names (handlebars, strict).
//!
//! Two flavours: command templates shell-quote every `{{value}}` they interpolate (so a
//! parameter holding `$(rm -rf ~)` reaches the program as data), path templates do not.
//! Helpers: `{{pad realization 4}}` -> `0007`, `{{fixed redshift 3}}` -> `1.100`.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use std::sync::OnceLock;

/// Quote a value for a POSIX shell: bare when it is made of safe characters only.
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:=+@%".contains(c));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

fn param_as_f64(h: &Helper, idx: usize, name: &str) -> Result<f64, RenderErrorReason> {
    let v = h
        .param(idx)
        .ok_or_else(|| {
            RenderErrorReason::Other(format!(
                "`{name}` needs two arguments, e.g. {{{{{name} realization 4}}}}"
            ))
        })?
        .value();
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| RenderErrorReason::Other(format!("`{name}` needs a number, got {v}")))
}

fn pad_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = param_as_f64(h, 0, "pad")?;
    let width = param_as_f64(h, 1, "pad")? as usize;
    if value.fract() != 0.0 {
        return Err(
            RenderErrorReason::Other(format!("`pad` needs an integer, got {value}")).into(),
        );
    }
    let v = value as i64;
    let s = if v < 0 {
        format!("-{:0width$}", -v, width = width.saturating_sub(1))
    } else {
        format!("{v:0width$}")
    };
    out.write(&s)?;
    Ok(())
}

fn fixed_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = param_as_f64(h, 0, "fixed")?;
    let digits = param_as_f64(h, 1, "fixed")? as usize;
    out.write(&format!("{value:.digits$}"))?;
    Ok(())
}

fn registry(quote: bool) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    if quote {
        hb.register_escape_fn(shell_quote);
    } else {
        hb.register_escape_fn(handlebars::no_escape);
    }
    hb.register_helper("pad", Box::new(pad_helper));
    hb.register_helper("fixed", Box::new(fixed_helper));
    hb
}

/// The command-template registry (shell-quoting), shared.
pub fn command_registry() -> &'static Handlebars<'static> {
    static R: OnceLock<Handlebars<'static>> = OnceLock::new();
    R.get_or_init(|| registry(true))
}

/// The path-template registry (no escaping), shared.
pub fn path_registry() -> &'static Handlebars<'static> {
    static R: OnceLock<Handlebars<'static>> = OnceLock::new();
    R.get_or_init(|| registry(false))
}

/// Which flavour a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    Command,
    Path,
}

/// Render `text` with `data`. Errors are plain sentences (the caller adds the location).
pub fn render(kind: TemplateKind, text: &str, data: &serde_json::Value) -> Result<String, String> {
    if kind == TemplateKind::Command && text.contains("{{{") {
        return Err("`{{{...}}}` would insert a value without shell quoting; use `{{...}}`".into());
    }
    let reg = match kind {
        TemplateKind::Command => command_registry(),
        TemplateKind::Path => path_registry(),
    };
    reg.render_template(text, data)
        .map_err(|e| describe(&e, data))
}

fn describe(e: &handlebars::RenderError, data: &serde_json::Value) -> String {
    let known = || {
        data.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(var)) => {
            format!("unknown template variable `{var}` (known: {})", known())
        }
        RenderErrorReason::HelperNotFound(name) => {
            format!("unknown template helper `{name}` (known: pad, fixed)")
        }
        RenderErrorReason::TemplateError(t) => format!("invalid template: {}", t.reason()),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers_pad_and_fix() {
        let data = json!({"realization": 7, "redshift": "1.1"});
        let out = render(
            TemplateKind::Path,
            "r{{pad realization 4}}/mock_z{{fixed redshift 3}}.hdf5",
            &data,
        )
        .unwrap();
        assert_eq!(out, "r0007/mock_z1.100.hdf5");
    }

    #[test]
    fn command_values_are_shell_quoted() {
        let data = json!({"x": "a b'; $(touch /tmp/pwned) `id`\nnext"});
        let out = render(TemplateKind::Command, "echo {{x}}", &data).unwrap();
        assert_eq!(out, "echo 'a b'\\''; $(touch /tmp/pwned) `id`\nnext'");
        assert!(render(TemplateKind::Command, "echo {{{x}}}", &data).is_err());
    }

    #[test]
    fn unknown_variables_are_errors() {
        let e = render(TemplateKind::Command, "echo {{nope}}", &json!({"a": 1})).unwrap_err();
        assert_eq!(e, "unknown template variable `nope` (known: a)");
        assert!(render(TemplateKind::Command, "echo {{#if}}", &json!({})).is_err());
        assert!(render(TemplateKind::Command, "echo {{frob a}}", &json!({"a": 1})).is_err());
    }
}
