use super::*;

fn caller(name: &str, admin: bool) -> Caller {
    Caller {
        tenant: TenantId::new(name).unwrap(),
        admin,
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The status and named fields of a refused body.
fn refusal(body: &str, format: BodyFormat) -> (StatusCode, Vec<String>) {
    let err = parse_spec(body.as_bytes(), format).expect_err("should be refused");
    let fields = err.fields().iter().map(|f| f.field.clone()).collect();
    (err.status(), fields)
}

#[test]
fn content_types_are_recognised() {
    assert_eq!(
        body_format(Some("application/json")),
        Some(BodyFormat::Json)
    );
    assert_eq!(
        body_format(Some("Application/JSON; charset=utf-8")),
        Some(BodyFormat::Json)
    );
    for yaml in ["application/yaml", "application/x-yaml", "text/yaml"] {
        assert_eq!(body_format(Some(yaml)), Some(BodyFormat::Yaml), "{yaml}");
    }
    assert_eq!(body_format(Some("text/plain")), None);
    assert_eq!(body_format(None), None);
}

#[test]
fn malformed_documents_are_400() {
    let (status, _) = refusal(r#"{"entrypoint": "#, BodyFormat::Json);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = refusal("[1, 2]", BodyFormat::Json);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for yaml in [
        "{entrypoint: x",
        "entrypoint: 'x",
        "entrypoint: x\n\tresources: 1",
        "- 1\n",
    ] {
        let (status, _) = refusal(yaml, BodyFormat::Yaml);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{yaml}");
    }
}

#[test]
fn bad_fields_are_422_and_named() {
    let cases = [
        (
            r#"{"entrypoint": "x", "tenant": "other"}"#,
            BodyFormat::Json,
            "tenant",
        ),
        (
            r#"{"entrypoint": "x", "resources": {"cpus": -2}}"#,
            BodyFormat::Json,
            "resources.cpus",
        ),
        (
            r#"{"entrypoint": "x", "resources": {"gpu": 1}}"#,
            BodyFormat::Json,
            "resources.gpu",
        ),
        (r#"{"name": "x"}"#, BodyFormat::Json, "entrypoint"),
        ("entrypoint: x\ntenant: other\n", BodyFormat::Yaml, "tenant"),
        (
            "entrypoint: x\nresources:\n  memory: 3 parsecs\n",
            BodyFormat::Yaml,
            "resources.memory",
        ),
    ];
    for (body, format, field) in cases {
        let (status, fields) = refusal(body, format);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(fields, [field], "{body}");
    }
}

#[test]
fn name_field_completes_parent_paths() {
    let err = name_field(FieldError::new(
        "resources",
        "unknown field `gpu`, expected one of `cpus`",
    ));
    assert_eq!(err.field, "resources.gpu");
    let err = name_field(FieldError::new("resources.gpu", "unknown field `gpu`"));
    assert_eq!(err.field, "resources.gpu");
    let err = name_field(FieldError::new("priority", "invalid type: string"));
    assert_eq!(err.field, "priority");
}

#[test]
fn list_queries_parse_and_scope_to_the_tenant() {
    let robotics = caller("robotics", false);
    let query = ListQuery::parse(
        &pairs(&[
            ("state", "running"),
            ("cluster", "onprem-a"),
            ("label", "project=ant"),
            ("label", "seed=1=2"),
            ("limit", "10"),
            ("cursor", "abc"),
        ]),
        &robotics,
    )
    .unwrap();
    assert_eq!(query.filter.state, Some(JobState::Running));
    assert_eq!(query.filter.cluster.as_deref(), Some("onprem-a"));
    assert_eq!(
        query.filter.labels,
        [
            ("project".into(), "ant".into()),
            ("seed".into(), "1=2".into())
        ]
    );
    assert_eq!(query.filter.tenant, Some(robotics.tenant.clone()));
    assert_eq!(query.limit, 10);
    assert_eq!(query.cursor.as_deref(), Some("abc"));

    let query = ListQuery::parse(&[], &robotics).unwrap();
    assert_eq!(query.limit, DEFAULT_PAGE);
}

#[test]
fn admins_see_all_or_filter_by_tenant() {
    let ops = caller("ops", true);
    assert_eq!(ListQuery::parse(&[], &ops).unwrap().filter.tenant, None);
    let query = ListQuery::parse(&pairs(&[("tenant", "robotics")]), &ops).unwrap();
    assert_eq!(query.filter.tenant.unwrap().as_str(), "robotics");

    let err =
        ListQuery::parse(&pairs(&[("tenant", "ops")]), &caller("robotics", false)).unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
}

#[test]
fn bad_list_parameters_are_400() {
    let robotics = caller("robotics", false);
    for bad in [
        ("state", "done"),
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "many"),
        ("label", "novalue"),
        ("label", "=v"),
        ("tenant", "Not A Tenant"),
        ("sort", "age"),
    ] {
        let err = ListQuery::parse(&pairs(&[bad]), &robotics).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let err = ListQuery::parse(
        &pairs(&[("state", "queued"), ("state", "running")]),
        &robotics,
    )
    .unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}
