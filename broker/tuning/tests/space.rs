//! Search spaces as users write them: parsing, validation messages, values.

use raybroker_tuning::{Param, ParamValue, SearchSpace};

const EXAMPLE: &str = r#"
lr: {loguniform: [1.0e-5, 1.0e-2]}
gamma: {uniform: [0.9, 0.999]}
layers: {int: [1, 4]}
act: {choice: [relu, tanh]}
seed_bias: {grid: [0, 1, 2]}
"#;

fn parse(yaml: &str) -> SearchSpace {
    serde_norway::from_str(yaml).expect("valid YAML")
}

fn invalid(yaml: &str) -> String {
    parse(yaml)
        .validate()
        .expect_err("invalid space")
        .to_string()
}

#[test]
fn the_documented_example_parses_sorted_by_name() {
    let space = parse(EXAMPLE);
    space.validate().unwrap();
    let names: Vec<&str> = space.iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["act", "gamma", "layers", "lr", "seed_bias"]);
    assert_eq!(space.get("lr"), Some(&Param::LogUniform(1e-5, 1e-2)));
    assert_eq!(space.get("layers"), Some(&Param::Int(1, 4)));
    assert_eq!(
        space.get("act"),
        Some(&Param::Choice(vec![
            ParamValue::String("relu".into()),
            ParamValue::String("tanh".into())
        ]))
    );
    assert_eq!(
        space.get("seed_bias"),
        Some(&Param::Grid(vec![
            ParamValue::Int(0),
            ParamValue::Int(1),
            ParamValue::Int(2)
        ]))
    );
}

#[test]
fn json_round_trip_keeps_the_space() {
    let space = parse(EXAMPLE);
    let json = serde_json::to_string(&space).unwrap();
    let back: SearchSpace = serde_json::from_str(&json).unwrap();
    assert_eq!(back, space);
}

#[test]
fn unknown_distributions_are_rejected_when_parsing() {
    let err = serde_norway::from_str::<SearchSpace>("lr: {normal: [0, 1]}").unwrap_err();
    assert!(err.to_string().contains("normal"), "{err}");
}

#[test]
fn validation_names_the_parameter_and_the_fix() {
    assert_eq!(
        invalid("lr: {loguniform: [0, 1.0e-2]}"),
        "search_space.lr: low must be > 0 for loguniform"
    );
    assert_eq!(
        invalid("gamma: {uniform: [1.0, 0.5]}"),
        "search_space.gamma: uniform low 1 must be < high 0.5"
    );
    assert_eq!(
        invalid("layers: {int: [4, 1]}"),
        "search_space.layers: int low 4 must be <= high 1"
    );
    assert_eq!(
        invalid("act: {choice: []}"),
        "search_space.act: choice needs at least one value"
    );
    assert_eq!(
        invalid("b: {grid: [1, 2, 1]}"),
        "search_space.b: grid lists 1 twice"
    );
    assert_eq!(
        invalid("g: {uniform: [.nan, 1.0]}"),
        "search_space.g: uniform bounds must be finite numbers"
    );
    assert!(invalid("'1lr': {uniform: [0, 1]}").starts_with("search_space.1lr: name must start"));
    assert!(invalid("'a b': {uniform: [0, 1]}").contains("only letters, digits"));
    assert_eq!(
        invalid("a.b: {uniform: [0, 1]}\na_b: {uniform: [0, 1]}"),
        "search_space.a_b: same env var name A_B as parameter a.b; rename one of them"
    );
}

#[test]
fn values_parse_to_the_natural_type_and_print_back() {
    let values: Vec<ParamValue> =
        serde_norway::from_str("[3, 3.0, 3.0e-4, true, relu, '7']").unwrap();
    assert_eq!(
        values,
        vec![
            ParamValue::Int(3),
            ParamValue::Float(3.0),
            ParamValue::Float(3e-4),
            ParamValue::Bool(true),
            ParamValue::String("relu".into()),
            ParamValue::String("7".into()),
        ]
    );
    let printed: Vec<String> = values.iter().map(ToString::to_string).collect();
    assert_eq!(printed, ["3", "3.0", "0.0003", "true", "relu", "7"]);
    assert_eq!(
        ParamValue::Float(1e-5).to_string(),
        "1e-5",
        "floats keep a float form"
    );
    assert_eq!(ParamValue::Int(2).as_f64(), Some(2.0));
    assert_eq!(ParamValue::Bool(true).as_f64(), None);
}

#[test]
fn an_empty_space_is_valid() {
    let space = parse("{}");
    assert!(space.is_empty());
    space.validate().unwrap();
}

#[test]
fn a_parameter_needs_exactly_one_distribution() {
    for yaml in ["lr: {}", "lr: {uniform: [0, 1], int: [0, 1]}"] {
        let err = serde_norway::from_str::<SearchSpace>(yaml).unwrap_err();
        assert!(
            err.to_string().contains("exactly one of uniform"),
            "{yaml}: {err}"
        );
    }
}
