use super::*;
use crate::auth::hash_token;

const ADMIN_TOKEN: &str = "admin-token-0123456789";

fn env(name: &str) -> Option<String> {
    match name {
        "RAYBROKER_ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
        "RAYBROKER_LISTEN" => Some("0.0.0.0:9000".into()),
        "SHORT_TOKEN" => Some("short".into()),
        _ => None,
    }
}

fn example() -> String {
    format!(
        r#"
version: 1
listen: ${{RAYBROKER_LISTEN:-127.0.0.1:8080}}
redis:
  url: ${{RAYBROKER_REDIS_URL:-redis://127.0.0.1:6379}}
  key_prefix: rb
  pool_size: 32
queue:
  lease_ttl: 30s
  event_stream_max_len: 100000
  submit_batch_max: 64
api:
  max_body_bytes: 1MiB
tenants:
  - name: robotics
    token_sha256: "{}"
  - name: ops
    admin: true
    token_env: RAYBROKER_ADMIN_TOKEN
gpu_models: [G2, g3]
clusters:
  - name: onprem-a
    kind: ray
    tier: 0
    cost_per_gpu_hour: 0.0
    labels: {{site: onprem}}
    ray: {{address: "http://127.0.0.1:8265"}}
  - name: gke-burst
    kind: ray
    tier: 1
    cost_per_gpu_hour: 2.5
    pending_allowance: 4
    ray: {{address: "http://10.1.2.3:8265", gpu_model_resource: custom, origin: burst-broker}}
"#,
        hash_token("robotics-token-0123456789")
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.yaml", Path::new(""), &env)
}

/// The fields named by an `Invalid` error.
fn invalid_fields(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| p.field).collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn the_example_loads() {
    let config = parse(&example()).unwrap();
    assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(config.queue.lease_ttl, Duration::from_secs(30));
    assert_eq!(config.api.max_body_bytes, Bytes(1 << 20));
    assert_eq!(config.tenants.len(), 2);
    assert!(!config.tenants[0].admin);
    assert!(config.tenants[1].admin);
    assert!(config.tenants[1]
        .token
        .ct_eq(&TokenHash::of_token(ADMIN_TOKEN)));
    let ctx = config.validation_context();
    assert!(ctx.gpu_models.contains(&GpuModel::parse("G3").unwrap()));
    assert!(ctx.gpu_models.contains(&GpuModel::parse("A100").unwrap()));
    assert!(ctx.clusters.contains("gke-burst"));
    assert_eq!(config.clusters[1].kind, ClusterKind::Ray);
    let queue = config.queue_config();
    assert_eq!(queue.key_prefix, "rb");
    assert_eq!(
        (queue.submit_batch_max, queue.submit_batches_in_flight),
        (64, 2),
        "set in the file, and the queue's default"
    );
}

#[test]
fn sections_default_when_absent() {
    let text = format!(
        "version: 1\ntenants:\n  - {{name: a, token_sha256: \"{}\"}}\n",
        hash_token("x")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.listen.port(), 8080);
    assert_eq!(config.redis.pool_size, 32);
    assert_eq!(config.queue.event_stream_max_len, 100_000);
    let queue = config.queue_config();
    assert_eq!(
        (queue.submit_batch_max, queue.submit_batches_in_flight),
        (256, 2)
    );
    assert!(config.clusters.is_empty());
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    for (from, to) in [
        ("version: 1\n", "version: 1\nlisten_addr: x\n"),
        ("  pool_size: 32\n", "  pool_size: 32\n  poolsize: 3\n"),
        ("    admin: true\n", "    admin: true\n    role: admin\n"),
        ("    tier: 1\n", "    tier: 1\n    region: eu\n"),
    ] {
        let text = example().replacen(from, to, 1);
        match parse(&text) {
            Err(ConfigError::Parse { message, .. }) => {
                assert!(message.contains("unknown field"), "{message}")
            }
            other => panic!("{to:?}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn parse_errors_name_the_field() {
    let text = example().replace("lease_ttl: 30s", "lease_ttl: soon");
    assert_eq!(invalid_fields(&text), ["queue.lease_ttl"]);

    let text = example().replace("pool_size: 32", "pool_size: many");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("redis.pool_size"), "{err}");

    let text = example().replace("kind: ray\n    tier: 1", "kind: nomad\n    tier: 1");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("clusters[1].kind"), "{err}");
}

#[test]
fn cluster_backends_are_read_and_checked() {
    let config = parse(&example()).unwrap();
    let a = config.clusters[0]
        .ray_config
        .as_ref()
        .expect("ray settings read");
    assert_eq!(a.origin, "raybroker", "the broker's origin is filled in");
    let b = config.clusters[1].ray_config.as_ref().unwrap();
    assert_eq!(b.origin, "burst-broker", "a section may set its own");
    assert_eq!(config.clusters[1].pending_allowance, 4);
    assert_eq!(config.clusters[0].pending_allowance, 2);

    let no_section = example().replace("    ray: {address: \"http://127.0.0.1:8265\"}\n", "");
    assert_eq!(invalid_fields(&no_section), ["clusters[0].ray"]);
    let bad_address = example().replace("http://127.0.0.1:8265", "ftp://head");
    assert_eq!(invalid_fields(&bad_address), ["clusters[0].ray"]);
    let unknown = example().replace(
        "gpu_model_resource: custom",
        "gpu_model_resource: custom, colour: red",
    );
    assert_eq!(invalid_fields(&unknown), ["clusters[1].ray"]);
    // A Slurm cluster needs its own section, and a Ray section is refused there.
    let slurm = example().replace("kind: ray\n    tier: 1", "kind: slurm\n    tier: 1");
    assert_eq!(
        invalid_fields(&slurm),
        ["clusters[1].ray", "clusters[1].slurm"]
    );
    let simulated = example().replace("kind: ray\n    tier: 1", "kind: simulated\n    tier: 1");
    assert_eq!(
        invalid_fields(&simulated),
        ["clusters[1].ray", "clusters[1].kind"]
    );
}

#[test]
fn loop_timings_are_read() {
    let text = example() + "loops: {dispatch_every: 50ms, lost_grace: 2m}\n";
    let config = parse(&text).unwrap();
    assert_eq!(
        config.loops.dispatch.tick,
        std::time::Duration::from_millis(50)
    );
    assert_eq!(
        config.loops.reconcile.lost_grace,
        std::time::Duration::from_secs(120)
    );
    let bad = example() + "loops: {dispatch_every: soon}\n";
    assert_eq!(invalid_fields(&bad), ["loops.dispatch_every"]);
}

#[test]
fn unset_variables_are_errors() {
    let text = example().replace("${RAYBROKER_LISTEN:-127.0.0.1:8080}", "${NOT_SET}");
    match parse(&text) {
        Err(ConfigError::Expand { line, message, .. }) => {
            assert_eq!(line, 3);
            assert!(message.contains("NOT_SET"), "{message}");
        }
        other => panic!("expected an expansion error, got {other:?}"),
    }
}

#[test]
fn values_are_validated_with_the_field_named() {
    let cases = [
        ("version: 1", "version: 2", "version"),
        ("key_prefix: rb", "key_prefix: 'r b'", "redis.key_prefix"),
        ("pool_size: 32", "pool_size: 0", "redis.pool_size"),
        (
            "url: ${RAYBROKER_REDIS_URL:-redis://127.0.0.1:6379}",
            "url: 'http://x'",
            "redis.url",
        ),
        ("lease_ttl: 30s", "lease_ttl: 10ms", "queue.lease_ttl"),
        (
            "submit_batch_max: 64",
            "submit_batch_max: 0",
            "queue.submit_batch_max",
        ),
        (
            "submit_batch_max: 64",
            "submit_batch_max: 64\n  submit_batches_in_flight: 17",
            "queue.submit_batches_in_flight",
        ),
        (
            "max_body_bytes: 1MiB",
            "max_body_bytes: 1GiB",
            "api.max_body_bytes",
        ),
        ("name: robotics", "name: Robotics", "tenants[0].name"),
        ("name: ops", "name: robotics", "tenants[1].name"),
        (
            "token_env: RAYBROKER_ADMIN_TOKEN",
            "token_env: UNSET_VAR",
            "tenants[1].token_env",
        ),
        (
            "token_env: RAYBROKER_ADMIN_TOKEN",
            "token_env: SHORT_TOKEN",
            "tenants[1].token_env",
        ),
        (
            "gpu_models: [G2, g3]",
            "gpu_models: [G2, 'g 3']",
            "gpu_models[1]",
        ),
        ("name: gke-burst", "name: onprem-a", "clusters[1].name"),
        ("name: gke-burst", "name: GKE_burst", "clusters[1].name"),
        (
            "cost_per_gpu_hour: 2.5",
            "cost_per_gpu_hour: -1",
            "clusters[1].cost_per_gpu_hour",
        ),
    ];
    for (from, to, field) in cases {
        let text = example().replacen(from, to, 1);
        assert_eq!(invalid_fields(&text), [field], "{from} -> {to}");
    }
}

#[test]
fn token_sources_are_exclusive_and_checked() {
    let both = example().replace(
        "    token_env: RAYBROKER_ADMIN_TOKEN",
        "    token_env: RAYBROKER_ADMIN_TOKEN\n    token_file: /etc/token",
    );
    assert_eq!(invalid_fields(&both), ["tenants[1].token_sha256"]);

    let bad_hex = example().replace(&hash_token("robotics-token-0123456789"), "abc");
    assert_eq!(invalid_fields(&bad_hex), ["tenants[0].token_sha256"]);

    let same = example().replace(
        &hash_token("robotics-token-0123456789"),
        &hash_token(ADMIN_TOKEN),
    );
    assert_eq!(invalid_fields(&same), ["tenants[1]"]);
}

#[test]
fn token_files_are_read_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("rb-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ops.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    let text = example().replace("token_env: RAYBROKER_ADMIN_TOKEN", "token_file: ops.token");
    let path = dir.join("broker.yaml");
    std::fs::write(&path, text).unwrap();
    // `load` reads the real environment: every variable left has a default.
    let config = Config::load(&path).unwrap();
    assert!(config.tenants[1]
        .token
        .ct_eq(&TokenHash::of_token(ADMIN_TOKEN)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_output_hides_secrets() {
    let text = example().replace(
        "${RAYBROKER_REDIS_URL:-redis://127.0.0.1:6379}",
        "redis://user:hunter2@redis:6379/0",
    );
    let config = parse(&text).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("redis:6379/0"), "{debug}");
    assert!(!debug.contains(&hash_token(ADMIN_TOKEN)), "{debug}");
}

#[test]
fn a_missing_file_names_the_path() {
    let err = Config::load(Path::new("/nonexistent/raybroker.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/raybroker.yaml"),
        "{err}"
    );
}

/// The shipped examples load (with their secrets supplied), so they stay
/// in step with the config schema.
#[test]
fn shipped_examples_load() {
    let dir = std::env::temp_dir().join(format!("rb-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vision"), "vision-token-0123456789").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config");
    let robotics_hash = hash_token("robotics-token-0123456789");
    let vars = |name: &str| match name {
        "ROBOTICS_TOKEN_SHA256" => Some(robotics_hash.clone()),
        "RAYBROKER_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_string()),
        _ => None,
    };
    let example = std::fs::read_to_string(root.join("example.yaml"))
        .unwrap()
        .replace(
            "/etc/raybroker/tokens/vision",
            &dir.join("vision").display().to_string(),
        )
        .replace(
            "token_file: /etc/raybroker/ray-token",
            "token_env: RAYBROKER_ADMIN_TOKEN",
        );
    let config = Config::parse(&example, "example.yaml", &root, &vars).unwrap();
    assert_eq!(config.tenants.len(), 3);
    assert!(config.clusters[0].ray_config.is_some());
    let policy = config.placement_policy();
    assert_eq!(policy.tenant("robotics").weight, 2.0);
    assert!(!policy.tenant("vision").burst);

    std::fs::write(dir.join("local-token"), "local-token-0123456789").unwrap();
    let run_dir = dir.display().to_string();
    let local_vars = |name: &str| (name == "RAYBROKER_RUN_DIR").then(|| run_dir.clone());
    let local = std::fs::read_to_string(root.join("local.yaml")).unwrap();
    let config = Config::parse(&local, "local.yaml", &root, &local_vars).unwrap();
    assert_eq!(config.clusters.len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config with one tenant `a` carrying `tenant_fields`, then `rest`.
fn with_tenant(tenant_fields: &str, rest: &str) -> String {
    format!(
        "version: 1\ntenants:\n  - {{name: a, token_sha256: \"{}\"{tenant_fields}}}\n{rest}",
        hash_token("x")
    )
}

#[test]
fn placement_policy_defaults_when_absent() {
    let policy = parse(&with_tenant("", "")).unwrap().placement_policy();
    let a = policy.tenant("a");
    assert_eq!(a.weight, 1.0);
    assert!(a.burst);
    assert_eq!(a.max_wait_ms, 10 * 60 * 1000);
    assert_eq!(a.quota, raybroker_placement::Quota::default());
    assert!(a.tier_quotas.is_empty());
    assert_eq!(policy.aging_ms_per_priority, 60_000);
    assert_eq!(policy.reserve_after_ms, 30 * 60_000);
}

#[test]
fn placement_policy_is_read_per_tenant() {
    let text = with_tenant(
        ", weight: 2.5, quota: {gpus: 8, memory: 64GiB}, tier_quotas: {1: {gpus: 0}}, burst: false, max_wait: 90s",
        "placement: {aging_per_priority: 2m, reserve_after: 0}\n",
    );
    let policy = parse(&text).unwrap().placement_policy();
    let a = policy.tenant("a");
    assert_eq!(a.weight, 2.5);
    assert!(!a.burst);
    assert_eq!(a.max_wait_ms, 90_000);
    assert_eq!(a.quota.gpus, Some("8".parse().unwrap()));
    assert_eq!(a.quota.cpus, None);
    assert_eq!(a.quota.memory, Some(Bytes(64 << 30)));
    assert_eq!(
        a.tier_quotas.get(&1).and_then(|q| q.gpus),
        Some(raybroker_core::Quantity::ZERO)
    );
    assert_eq!(policy.aging_ms_per_priority, 120_000);
    assert_eq!(policy.reserve_after_ms, 0, "0 disables reservations");
}

#[test]
fn placement_values_are_validated_with_the_field_named() {
    let text = with_tenant(
        ", weight: 0, max_wait: soon",
        "placement: {aging_per_priority: often, reserve_after: 30m}\n",
    );
    assert_eq!(
        invalid_fields(&text),
        [
            "tenants[0].weight",
            "tenants[0].max_wait",
            "placement.aging_per_priority"
        ]
    );
    let negative = with_tenant(", weight: -1", "");
    assert_eq!(invalid_fields(&negative), ["tenants[0].weight"]);
    for (fields, rest) in [
        (", quota: {gpu: 1}", ""),
        (", tier_quotas: {0: {vram: 1}}", ""),
        ("", "placement: {aging: 1m}\n"),
    ] {
        match parse(&with_tenant(fields, rest)) {
            Err(ConfigError::Parse { message, .. }) => {
                assert!(message.contains("unknown field"), "{message}")
            }
            other => panic!("{fields:?} {rest:?}: expected a parse error, got {other:?}"),
        }
    }
}
