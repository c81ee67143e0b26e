//! A minijinja environment that behaves like the one transformers renders chat templates in.
//!
//! transformers uses a sandboxed jinja2 environment with `trim_blocks`, `lstrip_blocks` and loop
//! controls, the Python string/dict methods templates call (`.strip()`, `.items()`, ...), and three
//! extras: `raise_exception`, a `tojson` that writes Python's `json.dumps` format (not HTML-escaped),
//! and `strftime_now`.

use minijinja::{Environment, Error, ErrorKind, Value, syntax::SyntaxConfig, value::Kwargs};

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_test("iterable", is_iterable);
    env
}

/// Python's `iter(value)` succeeds: not for None (minijinja iterates none as empty, which makes
/// `tools is iterable and tools | length > 0` fail on `length` in templates transformers renders).
/// An undefined value is iterable in jinja2 (empty), as in minijinja.
fn is_iterable(value: &Value) -> bool {
    !value.is_none() && value.try_iter().is_ok()
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> String {
    chrono::Local::now().format(&format).to_string()
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`.
fn tojson(value: Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = indent.or(kwargs.get::<Option<usize>>("indent")?);
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    // With an indent Python separates items by "," + newline, without one by ", ".
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        J::Number(n) if n.is_f64() => {
            // Python writes integral floats as `1.0`, serde_json as `1.0` too; keep its repr.
            out.push_str(&n.to_string());
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_matches_python_json_dumps() {
        let env = environment();
        let render = |src: &str| {
            env.render_str(src, minijinja::context! {
            x => minijinja::Value::from(minijinja::value::Serde(serde_json::json!({"a": [1, "é<b>"], "b": {}})))
        })
        };
        assert_eq!(
            render("{{ x|tojson }}").unwrap(),
            r#"{"a": [1, "é<b>"], "b": {}}"#
        );
        assert_eq!(
            render("{{ x|tojson(indent=2) }}").unwrap(),
            "{\n  \"a\": [\n    1,\n    \"é<b>\"\n  ],\n  \"b\": {}\n}"
        );
    }

    #[test]
    fn none_is_not_iterable_but_undefined_is() {
        let env = environment();
        let out = env
            .render_str(
                "{{ x is iterable }}|{{ missing is iterable }}|{{ [1] is iterable }}|{{ 'ab' is iterable }}|{{ 3 is iterable }}",
                minijinja::context! { x => () },
            )
            .unwrap();
        assert_eq!(out, "False|True|True|True|False");
    }

    #[test]
    fn raise_exception_fails_the_render_with_its_message() {
        let env = environment();
        let err = env
            .render_str("{{ raise_exception('only user turns') }}", ())
            .unwrap_err();
        assert!(err.to_string().contains("only user turns"), "{err}");
    }

    #[test]
    fn python_string_methods_work() {
        let env = environment();
        let out = env
            .render_str(
                "{{ ' Hi '.strip() }}|{{ 'a,b'.split(',')|length }}|{{ 'x'.upper() }}",
                (),
            )
            .unwrap();
        assert_eq!(out, "Hi|2|X");
    }
}
