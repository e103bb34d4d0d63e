use super::*;

const NODES: &str = "sn,cpu_milli,memory_mib,gpu,model
n-0,32000,262144,0,
n-1,96000,393216,8,G2
";

const PODS: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p-0,12000,16384,1,1000,,LS,Running,0,100,0
p-1,6000,12288,1,460,T4|P100|T4,BE,Running,10,20,10
p-2,2000,1024,0,0,G2,Burstable,Running,30,30,30
p-3,8000,2048,8,1000,,LS,Running,40,1000040,40
p-4,12000,16384,1,1000,,LS,Running,50,60,50
";

fn options() -> LoadOptions {
    LoadOptions {
        duration_cap_s: 86_400,
        tenants: TenantRule::Qos,
    }
}

#[test]
fn nodes_read_units_and_models() {
    let nodes = parse_nodes(NODES, "nodes.csv").unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].cpus, Quantity::whole(32));
    assert_eq!(nodes[0].memory, Bytes(256 << 30));
    assert_eq!(nodes[0].gpu_model, None);
    assert_eq!(nodes[1].gpus, 8);
    assert_eq!(nodes[1].gpu_model.as_ref().unwrap().as_str(), "G2");
}

#[test]
fn a_gpu_node_needs_a_model() {
    let err = parse_nodes(
        "sn,cpu_milli,memory_mib,gpu,model\nn,1000,1024,2,\n",
        "n.csv",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("n.csv:2: a GPU node without a model"),
        "{err}"
    );
}

#[test]
fn tasks_map_to_resources() {
    let w = parse_tasks(PODS, "pods.csv", options()).unwrap();
    // p-2 ends when it starts: skipped.
    assert_eq!(w.skipped_nonpositive, 1);
    assert_eq!(w.tasks.len(), 4);
    let shared = &w.tasks[1];
    assert_eq!(
        shared.resources.gpus,
        Quantity::from_units(4_600),
        "460 milli = 0.46 GPU"
    );
    assert_eq!(shared.resources.cpus, Quantity::whole(6));
    assert_eq!(shared.resources.memory, Bytes(12 << 30));
    let models: Vec<&str> = shared
        .resources
        .gpu_types
        .iter()
        .map(GpuModel::as_str)
        .collect();
    assert_eq!(models, ["P100", "T4"], "deduplicated and sorted");
    assert_eq!(shared.tenant, "be");
    assert_eq!(
        shared.timing,
        Some(Timing {
            arrival_s: 10,
            duration_s: 10
        })
    );
    assert_eq!(w.tasks[2].resources.gpus, Quantity::whole(8));
}

#[test]
fn long_runs_are_capped_and_counted() {
    let w = parse_tasks(PODS, "pods.csv", options()).unwrap();
    assert_eq!(w.capped, 1);
    assert_eq!(w.tasks[2].timing.unwrap().duration_s, 86_400);
}

#[test]
fn equal_requests_share_a_shape() {
    let w = parse_tasks(PODS, "pods.csv", options()).unwrap();
    assert_eq!(w.tasks[0].shape, w.tasks[3].shape);
    assert_ne!(w.tasks[0].shape, w.tasks[1].shape);
    assert_eq!(w.tasks[3].row, 4, "rows count skipped lines too");
}

#[test]
fn hash_tenants_are_stable_and_bounded() {
    let hashed = LoadOptions {
        tenants: TenantRule::Hash(3),
        ..options()
    };
    let a = parse_tasks(PODS, "pods.csv", hashed).unwrap();
    let b = parse_tasks(PODS, "pods.csv", hashed).unwrap();
    for (x, y) in a.tasks.iter().zip(&b.tasks) {
        assert_eq!(x.tenant, y.tenant);
        assert!(
            ["t0", "t1", "t2"].contains(&x.tenant.as_str()),
            "{}",
            x.tenant
        );
    }
    // FNV-1a of the empty string is its offset basis.
    assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
    assert!((0.0..1.0).contains(&unit_hash("openb-node-0001")));
}

#[test]
fn files_without_times_have_no_timing() {
    let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,1024,1,500\n";
    let w = parse_tasks(text, "multi.csv", options()).unwrap();
    assert_eq!(w.tasks[0].timing, None);
    assert_eq!(w.tasks[0].tenant, "unknown");
}

#[test]
fn bad_rows_name_file_line_and_column() {
    let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,lots,1024,1,500\n";
    let err = parse_tasks(text, "x.csv", options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.csv:2") && err.contains("cpu_milli"),
        "{err}"
    );
    let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,1024,2,500\n";
    let err = parse_tasks(text, "x.csv", options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("only one GPU can be shared"), "{err}");
    let err = parse_tasks("name,cpu_milli\n", "x.csv", options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no column `memory_mib`"), "{err}");
    let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,1024\n";
    let err = parse_tasks(text, "x.csv", options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 fields, the header has 5"), "{err}");
}
