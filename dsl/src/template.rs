//! Templates in commands and output names (handlebars, strict).
//!
//! Two flavours: command templates write every `{{value}}` they interpolate in the form
//! that is literal data where it stands in the shell text (unquoted, inside the author's
//! double or single quotes, in a here-document...; see [`crate::shell_context`]), so a
//! parameter holding `$(rm -rf ~)` reaches the program as data; path templates do not quote.
//! Helpers: `{{pad realization 4}}` -> `0007`, `{{fixed redshift 3}}` -> `1.100`; widths and
//! digits are bounded by [`MAX_WIDTH`].

use crate::shell_context::{self, MARK_END, MARK_START};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use std::cell::RefCell;
use std::sync::OnceLock;

/// The largest width of `pad` and digit count of `fixed`.
pub const MAX_WIDTH: i64 = 64;

/// Quote a value for a POSIX shell as one unquoted word: bare when it is made of safe
/// characters only.
pub fn shell_quote(value: &str) -> String {
    shell_context::quote_word(value)
}

thread_local! {
    /// Values a command template interpolated, in order, while it renders on this thread.
    static INTERPOLATED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The command registry's escape: keep the value aside and leave a marker in its place.
fn mark_value(value: &str) -> String {
    INTERPOLATED.with(|v| {
        let mut v = v.borrow_mut();
        v.push(value.to_string());
        format!("{MARK_START}{}{MARK_END}", v.len() - 1)
    })
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

/// A width or digit count: a whole number from 0 to [`MAX_WIDTH`].
fn bounded(n: f64, helper: &str, what: &str) -> Result<usize, RenderErrorReason> {
    if n.fract() != 0.0 || !(0.0..=MAX_WIDTH as f64).contains(&n) {
        return Err(RenderErrorReason::Other(format!(
            "the {what} of `{helper}` must be a whole number from 0 to {MAX_WIDTH}, got {n}"
        )));
    }
    Ok(n as usize)
}

fn pad_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = param_as_f64(h, 0, "pad")?;
    let width = bounded(param_as_f64(h, 1, "pad")?, "pad", "width")?;
    if value.fract() != 0.0 {
        return Err(
            RenderErrorReason::Other(format!("`pad` needs an integer, got {value}")).into(),
        );
    }
    if value.abs() >= 9.007_199_254_740_992e15 {
        return Err(RenderErrorReason::Other(format!(
            "`pad` needs an integer of at most 2^53, got {value}"
        ))
        .into());
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
    let digits = bounded(param_as_f64(h, 1, "fixed")?, "fixed", "digits")?;
    out.write(&format!("{value:.digits$}"))?;
    Ok(())
}

fn registry(quote: bool) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    if quote {
        hb.register_escape_fn(mark_value);
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
    if kind == TemplateKind::Command {
        if text.contains("{{{") {
            return Err(
                "`{{{...}}}` would insert a value without shell quoting; use `{{...}}`".into(),
            );
        }
        // `{{&p}}` (and `{{~&p}}`) is the other spelling of an unescaped value; partials and
        // decorators could carry one in. Refuse them from the parsed template, not the text.
        if let Ok(compiled) = handlebars::Template::compile(text) {
            if let Some(what) = unescaped_element(&compiled) {
                return Err(format!(
                    "{what} would insert text without shell quoting; use `{{{{...}}}}`"
                ));
            }
        }
    }
    match kind {
        TemplateKind::Path => path_registry()
            .render_template(text, data)
            .map_err(|e| describe(&e, data)),
        TemplateKind::Command => {
            if text.contains([MARK_START, MARK_END]) {
                return Err(
                    "the command contains the private-use characters U+E000/U+E001, which flow reserves"
                        .into(),
                );
            }
            INTERPOLATED.with(|v| v.borrow_mut().clear());
            let rendered = command_registry().render_template(text, data);
            let values = INTERPOLATED.with(|v| std::mem::take(&mut *v.borrow_mut()));
            let rendered = rendered.map_err(|e| describe(&e, data))?;
            shell_context::substitute(&rendered, &values)
        }
    }
}

/// The first element of `t` (or of a block inside it) that writes a value unescaped.
fn unescaped_element(t: &handlebars::Template) -> Option<&'static str> {
    use handlebars::template::TemplateElement as E;
    t.elements.iter().find_map(|e| match e {
        E::HtmlExpression(_) => Some("`{{&...}}`"),
        E::DecoratorExpression(_) | E::DecoratorBlock(_) => Some("a decorator `{{*...}}`"),
        E::PartialExpression(_) | E::PartialBlock(_) => Some("a partial `{{>...}}`"),
        E::HelperBlock(h) => h
            .template
            .as_ref()
            .and_then(unescaped_element)
            .or_else(|| h.inverse.as_ref().and_then(unescaped_element)),
        E::RawString(_) | E::Expression(_) | E::Comment(_) => None,
        // An element kind a later handlebars adds: refuse rather than guess it is safe.
        _ => Some("this template construct"),
    })
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
        for unescaped in [
            "echo {{&x}}",
            "echo {{& x}}",
            "echo {{~&x~}}",
            "echo {{#if x}}{{&x}}{{/if}}",
            "echo {{#if x}}a{{else}}{{&x}}{{/if}}",
            "{{#*inline \"p\"}}{{x}}{{/inline}}echo {{> p}}",
        ] {
            assert!(
                render(TemplateKind::Command, unescaped, &data).is_err(),
                "{unescaped}"
            );
        }
    }

    #[test]
    fn values_are_quoted_for_the_place_they_stand_in() {
        let data = json!({"p": "$(touch /tmp/x) `id` \" ' ; \n"});
        let out = render(TemplateKind::Command, "echo \"value={{p}}\" '{{p}}'", &data).unwrap();
        assert_eq!(
            out,
            "echo \"value=\\$(touch /tmp/x) \\`id\\` \\\" ' ; \n\" '$(touch /tmp/x) `id` \" '\\'' ; \n'"
        );
    }

    #[test]
    fn widths_and_digits_are_bounded() {
        let data = json!({"z": 1.5, "i": 3});
        for t in [
            "{{fixed z 70000}}",
            "{{pad i 70000}}",
            "{{fixed z -1}}",
            "{{pad i 1.5}}",
        ] {
            let e = render(TemplateKind::Path, t, &data).unwrap_err();
            assert!(
                e.contains("must be a whole number from 0 to 64"),
                "{t}: {e}"
            );
        }
        assert_eq!(
            render(TemplateKind::Path, "{{fixed z 0}}", &data).unwrap(),
            "2"
        );
    }

    #[test]
    fn unknown_variables_are_errors() {
        let e = render(TemplateKind::Command, "echo {{nope}}", &json!({"a": 1})).unwrap_err();
        assert_eq!(e, "unknown template variable `nope` (known: a)");
        assert!(render(TemplateKind::Command, "echo {{#if}}", &json!({})).is_err());
        assert!(render(TemplateKind::Command, "echo {{frob a}}", &json!({"a": 1})).is_err());
    }
}
