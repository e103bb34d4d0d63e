//! `${VAR}` / `${VAR:-default}` expansion of the raw config text.

/// A reference that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Replaces `${VAR}` with the variable's value and `${VAR:-default}` with the
/// value, or `default` when the variable is unset or empty. `$${` is a
/// literal `${`. A `${VAR}` whose variable is unset is an error, so a missing
/// secret or address is never silently empty. Expansion covers the whole text,
/// comments included.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let line_of = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(close) = body_start.find('}') else {
            return Err(ExpandError {
                line: line_of(tail),
                message: "unclosed '${': write ${VAR} or ${VAR:-default} (or $${ for a literal)"
                    .into(),
            });
        };
        let inner = &body_start[..close];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !is_var_name(name) {
            return Err(ExpandError {
                line: line_of(tail),
                message: format!(
                    "'${{{inner}}}' is not a variable reference: names use letters, digits and '_' (write ${{VAR}} or ${{VAR:-default}})"
                ),
            });
        }
        let value = env(name);
        match (value, default) {
            (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(ExpandError {
                    line: line_of(tail),
                    message: format!(
                    "environment variable {name} is not set; set it or write ${{{name}:-default}}"
                ),
                })
            }
        }
        rest = &body_start[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_and_defaults_expand() {
        let out = expand_env(
            "a: ${HOST}:80\nb: ${MISSING:-x:y}\nc: ${EMPTY:-fallback}\nd: '${EMPTY}'\ne: $5 $${HOST}",
            &env,
        )
        .unwrap();
        assert_eq!(
            out,
            "a: 10.0.0.1:80\nb: x:y\nc: fallback\nd: ''\ne: $5 ${HOST}"
        );
    }

    #[test]
    fn unset_variable_is_an_error_with_its_line() {
        let err = expand_env("a: 1\n\nb: ${NOPE}\n", &env).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("NOPE is not set"), "{}", err.message);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(expand_env("x: ${HOST", &env).unwrap_err().line, 1);
        let err = expand_env("x: ${1BAD}", &env).unwrap_err();
        assert!(
            err.message.contains("not a variable reference"),
            "{}",
            err.message
        );
        assert!(expand_env("x: ${}", &env).is_err());
    }
}
