use raybroker_core::{Quantity, Resources};

use super::*;
use crate::testkit::{half, job, spec};

#[test]
fn a_share_must_fit_on_one_device() {
    let mut fed = Federation::new(&[spec("a", 0, &[("n0", Some("T4"), 2)])]);
    let r = job(Quantity::from_units(6_000), "");
    let first = fed.start(&r, 0, 0).unwrap();
    let second = fed.start(&r, 0, 0).unwrap();
    assert_ne!(
        first.devices[0].0, second.devices[0].0,
        "0.6 + 0.6 > one device"
    );
    // 0.8 GPU is free in total, as 0.4 on each device: a 0.5 share does not fit.
    assert_eq!(
        fed.clusters[0].nodes[0].gpus_free(),
        Quantity::from_units(8_000)
    );
    assert!(fed.start(&job(half(), ""), 0, 0).is_none());
    assert!(!fed.clusters[0].nodes[0].fits(&job(half(), "")));
    assert!(fed.clusters[0].nodes[0].fits(&job(Quantity::from_units(4_000), "")));
    // Placement's view says so: no whole device, 0.4 on the partly used one.
    let view = &fed.views()[0];
    assert_eq!(
        view.snapshot.as_ref().unwrap().nodes[0].free.gpus,
        Quantity::from_units(4_000)
    );
}

#[test]
fn whole_gpus_take_entirely_free_devices() {
    let mut fed = Federation::new(&[spec("a", 0, &[("n0", Some("G2"), 4)])]);
    fed.start(&job(half(), ""), 0, 0).unwrap();
    let two = job(Quantity::whole(2), "");
    let held = fed.start(&two, 0, 0).unwrap();
    assert!(held
        .devices
        .iter()
        .all(|(d, share)| *d != 0 && *share == Quantity::whole(1)));
    // One whole device is left (3.5 GPUs free before, 1.5 now).
    assert!(!fed.clusters[0].nodes[0].fits(&two));
    assert!(fed.start(&two, 0, 0).is_none());
    // One whole device and 0.5 of another: placement reads 1.5.
    let view = &fed.views()[0];
    assert_eq!(
        view.snapshot.as_ref().unwrap().nodes[0].free.gpus,
        Quantity::from_units(15_000)
    );
    assert_eq!(fed.gpu_units_allocated(), 25_000);
    fed.release(&two, &held);
    assert_eq!(fed.gpu_units_allocated(), 5_000);
    assert!(fed.start(&two, 0, 0).is_some());
}

#[test]
fn a_share_goes_to_the_fullest_device_with_room() {
    let mut fed = Federation::new(&[spec("a", 0, &[("n0", Some("G2"), 2)])]);
    let small = job(Quantity::from_units(3_000), "");
    let first = fed.start(&small, 0, 0).unwrap();
    let second = fed.start(&small, 0, 0).unwrap();
    assert_eq!(
        first.devices[0].0, second.devices[0].0,
        "packs onto the used device"
    );
}

#[test]
fn models_cpus_and_memory_decide_static_fit() {
    let fed = Federation::new(&[
        spec("a", 0, &[("t4", Some("T4"), 2), ("cpu", None, 0)]),
        spec("b", 1, &[("g2", Some("G2"), 8)]),
    ]);
    assert!(!fed.could_ever_run(0, &job(Quantity::whole(1), "G2")));
    assert!(fed.could_ever_run(1, &job(Quantity::whole(1), "G2")));
    assert!(
        !fed.could_ever_run(0, &job(Quantity::whole(4), "")),
        "T4 nodes have 2 GPUs"
    );
    let big = Resources {
        cpus: Quantity::whole(17),
        ..Resources::default()
    };
    assert!(!fed.could_ever_run(1, &big));
    assert_eq!(fed.gpu_units_total(), 100_000);
    assert_eq!(fed.locate("g2"), Some((1, 0)));
    assert_eq!(fed.cluster_index("b"), Some(1));
}

#[test]
fn first_fit_and_tightest_differ() {
    let mut fed = Federation::new(&[spec(
        "a",
        0,
        &[("n0", Some("G2"), 8), ("n1", Some("G2"), 2)],
    )]);
    let one = job(Quantity::whole(1), "");
    assert_eq!(fed.first_fit(0, &one), Some(0));
    assert_eq!(fed.tightest(0, &one).map(|(_, n)| n), Some(1));
    fed.start(&one, 0, 1).unwrap();
    fed.start(&one, 0, 1).unwrap();
    assert_eq!(fed.tightest(0, &one).map(|(_, n)| n), Some(0), "n1 is full");
}
