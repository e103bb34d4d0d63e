//! How parameters reach a trial's job: placeholders in the entrypoint,
//! Hydra overrides appended to it, and env vars.

use std::collections::BTreeMap;

use crate::space::{ParamValue, Params};

/// An entrypoint template that cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `{{name}}` names no parameter.
    #[error("entrypoint placeholder {{{{{name}}}}} names no parameter; known: {known}")]
    UnknownPlaceholder {
        /// The placeholder's name.
        name: String,
        /// The parameters it could have named, comma-separated.
        known: String,
    },
    /// `{{` without a matching `}}`.
    #[error("entrypoint has an unclosed {{{{ at byte {offset}")]
    Unclosed {
        /// Where the `{{` starts.
        offset: usize,
    },
}

/// Replaces every `{{name}}` (spaces inside the braces allowed) with the
/// parameter's value, shell-quoted when it needs to be.
///
/// `python train.py --lr {{lr}} --act {{act}}` with `lr = 0.0003`,
/// `act = "leaky relu"` gives `python train.py --lr 0.0003 --act 'leaky relu'`.
/// The controller adds its own values (e.g. `seed`) to `params` first.
pub fn render_entrypoint(template: &str, params: &Params) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let offset = template.len() - rest.len() + start;
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RenderError::Unclosed { offset })?;
        let name = after[..end].trim();
        let value = params
            .get(name)
            .ok_or_else(|| RenderError::UnknownPlaceholder {
                name: name.to_string(),
                known: params.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        out.push_str(&shell_quote(&value.to_string()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Hydra overrides `key=value`, one per parameter, in parameter-name order.
///
/// `keys` maps a parameter name to its Hydra key, e.g. `lr` to
/// `agent.params.config.learning_rate`, giving
/// `agent.params.config.learning_rate=0.0003`; a parameter not in `keys`
/// uses its own name as key. Strings that Hydra's grammar would not read as
/// one plain value are single-quoted the Hydra way. Shell-quote the result
/// with [`shell_join`] before appending it to an entrypoint.
pub fn hydra_overrides(params: &Params, keys: &BTreeMap<String, String>) -> Vec<String> {
    params
        .iter()
        .map(|(name, value)| {
            let key = keys.get(name).map_or(name.as_str(), String::as_str);
            format!("{key}={}", hydra_value(value))
        })
        .collect()
}

fn hydra_value(value: &ParamValue) -> String {
    match value {
        ParamValue::String(text) if !is_plain(text, "_-./:+") => {
            format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        other => other.to_string(),
    }
}

/// One env var per parameter: name [`env_var_name`], value as written in
/// an entrypoint (unquoted).
pub fn env_vars(params: &Params) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(name, value)| (env_var_name(name), value.to_string()))
        .collect()
}

/// A parameter's env var name: upper-cased, every character other than a
/// letter, digit or `_` turned into `_` (`agent.lr` → `AGENT_LR`).
pub fn env_var_name(param: &str) -> String {
    param
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `text` as one POSIX shell word: unchanged when it holds only safe
/// characters, otherwise single-quoted (`'` written as `'\''`).
pub fn shell_quote(text: &str) -> String {
    if is_plain(text, "_-./:+=@%,") {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Shell-quotes each word and joins them with spaces.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| shell_quote(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_plain(text: &str, extra: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}
