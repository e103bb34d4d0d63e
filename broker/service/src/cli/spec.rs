//! Building a [`JobSpec`] from a spec file and `raybroker submit`'s flags,
//! with every check that needs no broker.
//!
//! Flags override the file: scalar flags replace the field, map flags
//! (`--env`, `--label`, `--require-label`, `--resources`) set their keys, and
//! list flags (`--pip`, `--py-modules`, `--gpu-type`, `--allow-cluster`,
//! `--deny-cluster`) replace the whole list.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Read as _;
use std::path::Path;

use raybroker_core::quantity::{BytesError, QuantityError};
use raybroker_core::{Bytes, GpuModel, JobSpec, Quantity, RuntimeEnv};

use super::error::CliError;
use super::submit::SubmitArgs;

/// One error, or a summary line with one detail per bad flag.
pub fn flag_errors(errors: Vec<String>) -> CliError {
    match <[String; 1]>::try_from(errors) {
        Ok([one]) => CliError::usage(one),
        Err(errors) => CliError::usage(format!("{} problems with the flags:", errors.len()))
            .with_details(errors),
    }
}

/// Reads a spec file (`-`: stdin). YAML unless the name ends in `.json` or
/// the text starts with `{`. When the entrypoint comes from the command line
/// the file may leave it out.
pub fn load_file(path: &str, entrypoint_from_args: bool) -> Result<JobSpec, CliError> {
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| CliError::usage(format!("-f -: cannot read stdin: {err}")))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|err| CliError::usage(format!("-f {path}: {err}")))?
    };
    parse_spec_text(path, &text, entrypoint_from_args)
}

/// Parses a spec document; `name` prefixes every message.
pub fn parse_spec_text(
    name: &str,
    text: &str,
    entrypoint_from_args: bool,
) -> Result<JobSpec, CliError> {
    let is_json = Path::new(name)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{');
    let mut document: serde_json::Value = if is_json {
        serde_json::from_str(text)
            .map_err(|err| CliError::usage(format!("{name}: malformed JSON: {err}")))?
    } else {
        serde_norway::from_str(text)
            .map_err(|err| CliError::usage(format!("{name}: malformed YAML: {err}")))?
    };
    let Some(fields) = document.as_object_mut() else {
        return Err(CliError::usage(format!(
            "{name}: expected a job spec (a mapping with at least `entrypoint`)"
        ))
        .with_hint("see docs/cli.md for the job file format"));
    };
    if entrypoint_from_args && !fields.contains_key("entrypoint") {
        // Replaced by the command line's entrypoint in build_spec.
        fields.insert(
            "entrypoint".into(),
            serde_json::Value::String(String::new()),
        );
    }
    let bytes =
        serde_json::to_vec(&document).map_err(|err| CliError::failed(format!("{name}: {err}")))?;
    JobSpec::from_json(&bytes).map_err(|err| {
        let hint = if err.0.field.is_empty() && err.0.message.contains("`entrypoint`") {
            "add `entrypoint: python train.py` to the file or give the command after `--`"
        } else {
            "see docs/cli.md for the job file format"
        };
        CliError::usage(format!("{name}: {}", err.0)).with_hint(hint)
    })
}

/// Applies the flags over `base`; returns every problem found, each naming
/// the flag, the value and the fix.
pub fn build_spec(base: JobSpec, args: &SubmitArgs) -> Result<JobSpec, Vec<String>> {
    let mut spec = base;
    let mut errors = Vec::new();

    if let Some(name) = &args.name {
        spec.name = name.clone();
    }
    if !args.entrypoint.is_empty() {
        match join_entrypoint(&args.entrypoint) {
            Ok(entrypoint) => spec.entrypoint = entrypoint,
            Err(message) => errors.push(message),
        }
    }
    if spec.entrypoint.trim().is_empty() {
        errors.push(
            "no entrypoint: give the command after `--`, e.g. `raybroker submit --gpus 1 -- python train.py`, \
             or set `entrypoint` in the -f file"
                .to_string(),
        );
    }

    let resources = &mut spec.resources;
    if let Some(text) = &args.cpus {
        match text.parse::<Quantity>() {
            Ok(cpus) => resources.cpus = cpus,
            Err(err) => errors.push(bad("--cpus", text, quantity_problem(&err, "8 or 0.5"))),
        }
    }
    if let Some(text) = &args.memory {
        match text.parse::<Bytes>() {
            Ok(memory) => resources.memory = memory,
            Err(err) => errors.push(bad("--memory", text, bytes_problem(&err))),
        }
    }
    if let Some(text) = &args.gpus {
        match text.parse::<Quantity>() {
            Ok(gpus) => resources.gpus = gpus,
            Err(err) => errors.push(bad("--gpus", text, quantity_problem(&err, "1, 8 or 0.25"))),
        }
    }
    if !args.gpu_types.is_empty() {
        let mut models: Vec<GpuModel> = Vec::new();
        for text in &args.gpu_types {
            match GpuModel::parse_list(text) {
                Ok(list) => {
                    for model in list {
                        if !models.contains(&model) {
                            models.push(model);
                        }
                    }
                }
                Err(err) => errors.push(bad("--gpu-type", text, err)),
            }
        }
        resources.gpu_types = models;
    }
    if let Some(text) = &args.nodes {
        match text.trim().parse::<u32>() {
            Ok(nodes) => resources.nodes = nodes,
            Err(_) => errors.push(bad("--nodes", text, "not a whole number; write e.g. 2")),
        }
    }
    if let Some(text) = &args.resources {
        match serde_json::from_str::<BTreeMap<String, Quantity>>(text) {
            Ok(custom) => resources.custom.extend(custom),
            Err(err) => errors.push(bad(
                "--resources",
                text,
                format!(
                    "not a JSON object of resource amounts ({}); write e.g. '{{\"license_matlab\": 1}}'",
                    without_position(&err.to_string())
                ),
            )),
        }
    }

    if let Some(text) = &args.runtime_env_json {
        match serde_json::from_str::<RuntimeEnv>(text) {
            Ok(env) => spec.runtime_env = env,
            Err(err) => errors.push(bad(
                "--runtime-env-json",
                text,
                format!(
                    "{}; raybroker passes on env_vars, working_dir, pip and py_modules",
                    without_position(&err.to_string())
                ),
            )),
        }
    }
    let runtime_env = &mut spec.runtime_env;
    if let Some(uri) = &args.working_dir {
        if uri.contains("://") {
            runtime_env.working_dir = Some(uri.clone());
        } else {
            errors.push(bad(
                "--working-dir",
                uri,
                "raybroker does not upload local directories; upload the code \
                 (e.g. as s3://bucket/code.zip) and pass its URI",
            ));
        }
    }
    for pair in &args.env {
        match key_value("--env", pair, "WANDB_MODE=offline") {
            Ok((key, value)) => {
                runtime_env.env_vars.insert(key, value);
            }
            Err(message) => errors.push(message),
        }
    }
    if !args.pip.is_empty() {
        runtime_env.pip = args.pip.clone();
    }
    if !args.py_modules.is_empty() {
        runtime_env.py_modules = args.py_modules.clone();
    }

    if let Some(text) = &args.priority {
        match text.trim().parse::<i32>() {
            Ok(priority) => spec.priority = priority,
            Err(_) => errors.push(bad(
                "--priority",
                text,
                "not a whole number; write e.g. 10 (from -1000 to 1000)",
            )),
        }
    }
    if let Some(text) = &args.max_retries {
        match text.trim().parse::<u32>() {
            Ok(retries) => spec.max_retries = retries,
            Err(_) => errors.push(bad(
                "--max-retries",
                text,
                "not a whole number; write e.g. 3",
            )),
        }
    }
    for text in &args.retry {
        let parsed = text.split_once('=').and_then(|(class, n)| {
            let class = raybroker_core::FailureClass::ALL
                .into_iter()
                .find(|c| c.as_str() == class.trim())?;
            Some((class, n.trim().parse::<u32>().ok()?))
        });
        match parsed {
            Some((class, retries)) => {
                spec.retry.insert(class, retries);
            }
            None => errors.push(bad(
                "--retry",
                text,
                "write CLASS=N, e.g. job_error=2 (classes: job_error, cluster_unreachable, \
                 node_lost, preempted, out_of_memory, start_timeout, no_capacity, time_limit)",
            )),
        }
    }
    if let Some(text) = &args.time_limit {
        match humantime::parse_duration(text.trim()) {
            Ok(limit) => spec.time_limit = Some(limit),
            Err(err) => errors.push(bad(
                "--time-limit",
                text,
                format!("not a duration ({err}); write e.g. 90m, 2h or 1h30m"),
            )),
        }
    }
    for pair in &args.labels {
        match key_value("--label", pair, "project=locomotion") {
            Ok((key, value)) => {
                spec.labels.insert(key, value);
            }
            Err(message) => errors.push(message),
        }
    }
    if let Some(key) = &args.idempotency_key {
        spec.idempotency_key = Some(key.clone());
    }

    let placement = &mut spec.placement;
    if !args.allow_clusters.is_empty() {
        placement.allowed_clusters = non_empty(&args.allow_clusters);
    }
    if !args.deny_clusters.is_empty() {
        placement.denied_clusters = non_empty(&args.deny_clusters);
    }
    for pair in &args.require_labels {
        match key_value("--require-label", pair, "site=onprem") {
            Ok((key, value)) => {
                placement.required_labels.insert(key, value);
            }
            Err(message) => errors.push(message),
        }
    }

    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// `-- python train.py --lr 0.1` -> `python train.py --lr 0.1`, quoting words
/// that need it; a single word is already a shell command and is kept as is.
pub fn join_entrypoint(words: &[String]) -> Result<String, String> {
    match words {
        [command] => Ok(command.clone()),
        words => shlex::try_join(words.iter().map(String::as_str))
            .map_err(|err| format!("the entrypoint cannot be quoted for a shell: {err}")),
    }
}

/// `--flag 'value': problem`.
fn bad(flag: &str, value: &str, problem: impl Display) -> String {
    format!("{flag} '{value}': {problem}")
}

fn quantity_problem(err: &QuantityError, example: &str) -> String {
    let what = match err {
        QuantityError::NotANumber(_) => "not a number".to_string(),
        other => other.to_string(),
    };
    format!("{what}; write e.g. {example}")
}

fn bytes_problem(err: &BytesError) -> String {
    match err {
        // Its message already gives examples.
        BytesError::Malformed(_) => err.to_string(),
        other => format!("{other}; write e.g. 32GiB"),
    }
}

/// Splits `KEY=VALUE` (the value may itself contain `=`).
fn key_value(flag: &str, pair: &str, example: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(bad(
            flag,
            pair,
            format!("expected KEY=VALUE; write e.g. {flag} {example}"),
        )),
    }
}

fn non_empty(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// serde_json appends " at line 1 column 9", which means nothing for a flag.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
