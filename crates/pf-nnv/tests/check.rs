//! End-to-end checks: hand-made networks with known answers and ACAS Xu instances.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pf_nnv::property::marabou::parse_marabou;
use pf_nnv::property::vnnlib::parse_vnnlib;
use pf_nnv::{Dense, Layer, Network, Options, Verdict, check, load_network, load_property};

/// y0 = relu(x) - relu(-x) = x, y1 = relu(x) + relu(-x) = |x|.
fn identity_and_abs() -> Network {
    let d1 = Dense::new(2, 1, vec![1.0, -1.0], vec![0.0, 0.0]).unwrap();
    let d2 = Dense::new(2, 2, vec![1.0, -1.0, 1.0, 1.0], vec![0.0, 0.0]).unwrap();
    Network::new(
        1,
        vec![Layer::Dense(d1), Layer::Relu, Layer::Dense(d2)],
        None,
    )
    .unwrap()
}

fn opts(secs: u64) -> Options {
    Options {
        timeout: Duration::from_secs(secs),
        threads: 2,
        ..Options::default()
    }
}

#[test]
fn unreachable_output_is_unsat() {
    let p = parse_marabou("x0 >= -1\nx0 <= 1\ny0 >= 1.5\n").unwrap();
    assert_eq!(
        check(&identity_and_abs(), &p, &opts(10)).unwrap().verdict,
        Verdict::Unsat
    );
}

#[test]
fn reachable_output_is_sat_with_valid_counterexample() {
    let p = parse_marabou("x0 >= -1\nx0 <= 1\ny0 >= 0.999\n").unwrap();
    let net = identity_and_abs();
    let Verdict::Sat { counterexample } = check(
        &net,
        &p,
        &Options {
            samples: 0,
            ..opts(10)
        },
    )
    .unwrap()
    .verdict
    else {
        panic!("expected sat")
    };
    assert!(counterexample.input[0] >= 0.999 && counterexample.input[0] <= 1.0);
    assert!(p.violated_by(&counterexample.input, &net.eval(&counterexample.input)));
}

#[test]
fn conjunction_needs_the_lp_to_close() {
    // y1 = |x| >= 0.5 and y0 = x in [-0.2, 0.2] cannot both hold; each alone can.
    let p = parse_marabou("x0 >= -1\nx0 <= 1\ny1 >= 0.5\ny0 <= 0.2\ny0 >= -0.2\n").unwrap();
    let out = check(
        &identity_and_abs(),
        &p,
        &Options {
            samples: 0,
            ..opts(10)
        },
    )
    .unwrap();
    assert_eq!(out.verdict, Verdict::Unsat);
}

#[test]
fn disjunctive_property_finds_the_reachable_case() {
    let text = "(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)
        (assert (or (and (>= X_0 -1) (<= X_0 0)) (and (>= X_0 0.5) (<= X_0 1))))
        (assert (or (and (>= Y_0 0.9)) (and (<= Y_1 -0.1))))";
    let p = parse_vnnlib(text).unwrap();
    assert_eq!(p.cases.len(), 4);
    let out = check(
        &identity_and_abs(),
        &p,
        &Options {
            samples: 0,
            ..opts(10)
        },
    )
    .unwrap();
    let Verdict::Sat { counterexample } = out.verdict else {
        panic!("expected sat")
    };
    assert!(counterexample.input[0] >= 0.9);
}

#[test]
fn dimension_mismatch_is_an_error() {
    let p = parse_marabou("x0 >= -1\nx0 <= 1\nx1 >= 0\nx1 <= 1\ny0 >= 1\n").unwrap();
    assert!(check(&identity_and_abs(), &p, &opts(1)).is_err());
}

fn acas(rel: &str) -> Option<std::path::PathBuf> {
    pf_testkit::shared_path(&format!("vectors/nnv/acasxu/{rel}"))
}

/// Known-easy instances; an `unknown` is tolerated, a verdict contradicting VNN-COMP is not.
#[test]
fn acas_xu_easy_instances_agree_with_expected_verdicts() {
    let Some(expected) = acas("expected_verdicts.csv") else {
        return;
    };
    let expected = std::fs::read_to_string(expected).unwrap();
    let mut decided = 0;
    for (net, prop) in [("1_9", 3), ("2_1", 2), ("4_5", 4), ("3_3", 4), ("1_1", 4)] {
        let onnx = format!("ACASXU_run2a_{net}_batch_2000.onnx");
        let vnn = format!("prop_{prop}.vnnlib");
        let want = expected
            .lines()
            .find(|l| l.starts_with(&format!("{onnx},{vnn},")))
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .unwrap();
        let n = load_network(&acas(&format!("onnx/{onnx}")).unwrap()).unwrap();
        let p = load_property(&acas(&format!("vnnlib/{vnn}")).unwrap()).unwrap();
        let out = check(&n, &p, &opts(10)).unwrap();
        match &out.verdict {
            Verdict::Sat { counterexample } => {
                assert_eq!(want, "sat", "{net} prop {prop}");
                assert!(p.violated_by(&counterexample.input, &n.eval(&counterexample.input)));
                decided += 1;
            }
            Verdict::Unsat => {
                assert_eq!(want, "unsat", "{net} prop {prop}");
                decided += 1;
            }
            Verdict::Unknown { .. } => {}
        }
    }
    assert!(decided >= 3, "too few easy instances decided: {decided}");
}

#[test]
fn marabou_and_vnnlib_forms_of_acas_props_describe_the_same_boxes() {
    for k in 1..=4 {
        let (Some(m), Some(v)) = (
            acas(&format!("marabou_props/acas_property_{k}.txt")),
            acas(&format!("vnnlib/prop_{k}.vnnlib")),
        ) else {
            return;
        };
        let m = load_property(&m).unwrap();
        let v = load_property(&v).unwrap();
        assert_eq!(m.cases.len(), 1);
        assert_eq!(v.cases.len(), 1);
        for i in 0..5 {
            assert!(
                (m.cases[0].lower[i] - v.cases[0].lower[i]).abs() < 1e-8,
                "prop {k} X_{i}"
            );
            assert!(
                (m.cases[0].upper[i] - v.cases[0].upper[i]).abs() < 1e-8,
                "prop {k} X_{i}"
            );
        }
        assert_eq!(
            m.cases[0].outputs.len(),
            v.cases[0].outputs.len(),
            "prop {k}"
        );
    }
}

#[test]
fn all_shared_properties_parse() {
    for k in 1..=10 {
        let Some(v) = acas(&format!("vnnlib/prop_{k}.vnnlib")) else {
            return;
        };
        let p = load_property(&v).unwrap();
        assert_eq!((p.input_dim, p.output_dim), (5, 5));
        assert!(!p.cases.is_empty());
    }
}

#[test]
fn nnet_with_marabou_property_matches_onnx_with_vnnlib() {
    let (Some(nn), Some(mp)) = (
        acas("nnet/ACASXU_experimental_v2a_4_5.nnet"),
        acas("marabou_props/acas_property_4.txt"),
    ) else {
        return;
    };
    let out = check(
        &load_network(&nn).unwrap(),
        &load_property(&mp).unwrap(),
        &opts(10),
    )
    .unwrap();
    // 4_5 prop 4 is unsat in VNN-COMP; the NNet/Marabou pair must not contradict it.
    assert!(
        !matches!(out.verdict, Verdict::Sat { .. }),
        "{:?}",
        out.verdict
    );
    let (Some(nn), Some(mp)) = (
        acas("nnet/ACASXU_experimental_v2a_1_9.nnet"),
        acas("marabou_props/acas_property_3.txt"),
    ) else {
        return;
    };
    let net = load_network(&nn).unwrap();
    let prop = load_property(&mp).unwrap();
    let Verdict::Sat { counterexample } = check(&net, &prop, &opts(10)).unwrap().verdict else {
        panic!("1_9 prop 3 is sat")
    };
    assert!(prop.violated_by(&counterexample.input, &net.eval(&counterexample.input)));
}

#[test]
fn lookahead_split_gives_the_same_verdicts() {
    let net = identity_and_abs();
    let unsat = parse_marabou("x0 >= -1\nx0 <= 1\ny1 >= 0.5\ny0 <= 0.2\ny0 >= -0.2\n").unwrap();
    let o = Options {
        samples: 0,
        lookahead: true,
        ..opts(10)
    };
    assert_eq!(check(&net, &unsat, &o).unwrap().verdict, Verdict::Unsat);
    let Some(onnx) = acas("onnx/ACASXU_run2a_4_5_batch_2000.onnx") else {
        return;
    };
    let p = load_property(&acas("vnnlib/prop_4.vnnlib").unwrap()).unwrap();
    let out = check(&load_network(&onnx).unwrap(), &p, &o).unwrap();
    assert!(!matches!(out.verdict, Verdict::Sat { .. }));
}

#[test]
fn phase_splits_from_the_root_prove_an_acas_xu_instance() {
    // 5_5 prop 4 (unsat) searched by ReLU phase splits first: the verdict must not change,
    // and the phase splits must actually have been used.
    let Some(onnx) = acas("onnx/ACASXU_run2a_5_5_batch_2000.onnx") else {
        return;
    };
    let p = load_property(&acas("vnnlib/prop_4.vnnlib").unwrap()).unwrap();
    let o = Options {
        phase_split_below: f64::INFINITY,
        ..opts(120)
    };
    let out = check(&load_network(&onnx).unwrap(), &p, &o).unwrap();
    assert_eq!(out.verdict, Verdict::Unsat);
    assert!(out.stats.phase_splits > 0, "{:?}", out.stats);
}

#[test]
fn phase_splits_find_a_counterexample_the_sampler_misses() {
    // Unsafe region: y0 >= 0.999 on x in [-1, 1] (only near x = 1), no sampling, phase
    // splits from the root: the witness must come from the search and be re-validated.
    let p = parse_marabou("x0 >= -1\nx0 <= 1\ny0 >= 0.999\n").unwrap();
    let net = identity_and_abs();
    let o = Options {
        samples: 0,
        phase_split_below: f64::INFINITY,
        ..opts(10)
    };
    let Verdict::Sat { counterexample } = check(&net, &p, &o).unwrap().verdict else {
        panic!("expected sat")
    };
    assert!(p.violated_by(&counterexample.input, &net.eval(&counterexample.input)));
}
