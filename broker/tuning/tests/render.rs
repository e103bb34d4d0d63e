//! Parameters into entrypoints, Hydra overrides and env vars.

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use raybroker_tuning::{
    env_vars, hydra_overrides, render_entrypoint, shell_join, shell_quote, ParamValue, Params,
    RenderError,
};

fn params() -> Params {
    Params::from([
        ("lr".to_string(), ParamValue::Float(3e-4)),
        ("layers".to_string(), ParamValue::Int(3)),
        ("act".to_string(), ParamValue::String("leaky relu".into())),
        ("agent.gamma".to_string(), ParamValue::Float(1.0)),
        ("norm".to_string(), ParamValue::Bool(true)),
    ])
}

/// What `sh` makes of `line`: its words, one per output line.
fn sh_words(line: &str) -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {line}"))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn placeholders_are_replaced_and_quoted_for_the_shell() {
    let line = render_entrypoint(
        "python train.py --lr {{lr}} --layers {{ layers }} --act {{act}} --gamma={{agent.gamma}} {{norm}}",
        &params(),
    )
    .unwrap();
    assert_eq!(
        line,
        "python train.py --lr 0.0003 --layers 3 --act 'leaky relu' --gamma=1.0 true"
    );
    assert_eq!(
        render_entrypoint("no placeholders", &params()).unwrap(),
        "no placeholders"
    );
}

#[test]
fn unknown_and_unclosed_placeholders_are_clear_errors() {
    let err = render_entrypoint("python train.py --lr {{learning_rate}}", &params()).unwrap_err();
    assert_eq!(
        err,
        RenderError::UnknownPlaceholder {
            name: "learning_rate".into(),
            known: "act, agent.gamma, layers, lr, norm".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "entrypoint placeholder {{learning_rate}} names no parameter; known: act, agent.gamma, layers, lr, norm"
    );
    let err = render_entrypoint("echo {{lr}} {{lr", &params()).unwrap_err();
    assert_eq!(err, RenderError::Unclosed { offset: 12 });
    assert_eq!(err.to_string(), "entrypoint has an unclosed {{ at byte 12");
}

#[test]
fn hydra_overrides_use_mapped_keys_and_hydra_quoting() {
    let keys = BTreeMap::from([(
        "lr".to_string(),
        "agent.params.config.learning_rate".to_string(),
    )]);
    let overrides = hydra_overrides(&params(), &keys);
    assert_eq!(
        overrides,
        [
            "act='leaky relu'",
            "agent.gamma=1.0",
            "layers=3",
            "agent.params.config.learning_rate=0.0003",
            "norm=true",
        ]
    );
    let quoted = Params::from([("s".to_string(), ParamValue::String("it's".into()))]);
    assert_eq!(hydra_overrides(&quoted, &BTreeMap::new()), [r"s='it\'s'"]);
    // Joined for a shell, each override stays one word.
    assert_eq!(sh_words(&shell_join(&overrides)), overrides);
}

#[test]
fn env_vars_are_upper_case_names() {
    let vars = env_vars(&params());
    assert_eq!(
        vars.into_iter().collect::<Vec<_>>(),
        [
            ("ACT".to_string(), "leaky relu".to_string()),
            ("AGENT_GAMMA".to_string(), "1.0".to_string()),
            ("LAYERS".to_string(), "3".to_string()),
            ("LR".to_string(), "0.0003".to_string()),
            ("NORM".to_string(), "true".to_string()),
        ]
    );
}

#[test]
fn plain_words_are_not_quoted() {
    assert_eq!(shell_quote("a.b_c-d/e:f=1,2+3@4%"), "a.b_c-d/e:f=1,2+3@4%");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever a string parameter holds, the shell sees exactly that word.
    #[test]
    fn quoting_survives_the_shell(text in "[ -~\t]{0,24}") {
        let p = Params::from([("v".to_string(), ParamValue::String(text.clone()))]);
        let line = render_entrypoint("{{v}}", &p).unwrap();
        let words = sh_words(&format!("{line} end"));
        prop_assert_eq!(words, vec![text, "end".to_string()]);
    }
}
