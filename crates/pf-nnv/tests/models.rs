//! NNet and ONNX readers on the real ACAS Xu networks.

#![allow(clippy::unwrap_used)]

use pf_nnv::{Layer, load_network};

fn acas(rel: &str) -> Option<std::path::PathBuf> {
    pf_testkit::shared_path(&format!("vectors/nnv/acasxu/{rel}"))
}

#[test]
fn nnet_and_onnx_forms_of_acas_xu_agree() {
    for (i, j) in [(1, 1), (2, 7), (5, 9)] {
        let (Some(nn), Some(ox)) = (
            acas(&format!("nnet/ACASXU_experimental_v2a_{i}_{j}.nnet")),
            acas(&format!("onnx/ACASXU_run2a_{i}_{j}_batch_2000.onnx")),
        ) else {
            return;
        };
        let a = load_network(&nn).unwrap();
        let b = load_network(&ox).unwrap();
        assert_eq!(a.input_dim, 5);
        assert_eq!(b.input_dim, 5);
        assert_eq!(a.output_dim(), 5);
        assert_eq!(b.output_dim(), 5);
        assert_eq!(a.relu_count(), 300);
        assert_eq!(b.relu_count(), 300);
        let mut seed = 12345u64;
        for _ in 0..50 {
            let x: Vec<f64> = (0..5)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
                })
                .collect();
            let ya = a.eval(&x);
            let yb = b.eval(&x);
            for (p, q) in ya.iter().zip(&yb) {
                assert!(
                    (p - q).abs() <= 1e-6 * (1.0 + p.abs()),
                    "net {i}_{j} at {x:?}: {ya:?} vs {yb:?}"
                );
            }
        }
        assert!(a.layers.iter().any(|l| matches!(l, Layer::Relu)));
    }
}

#[test]
fn nnet_raw_evaluation_normalises_inputs() {
    let Some(nn) = acas("nnet/ACASXU_experimental_v2a_1_1.nnet") else {
        return;
    };
    let net = load_network(&nn).unwrap();
    let norm = net.normalization.clone().unwrap();
    let raw = [5000.0, 0.1, -0.2, 300.0, 400.0];
    let x: Vec<f64> = (0..5)
        .map(|i| (raw[i] - norm.input_mean[i]) / norm.input_range[i])
        .collect();
    let y: Vec<f64> = net
        .eval(&x)
        .iter()
        .map(|v| v * norm.output_range + norm.output_mean)
        .collect();
    assert_eq!(net.eval_raw(&raw), y);
    // Clipping: a raw value above the maximum evaluates like the maximum.
    let mut over = raw;
    over[0] = 1e9;
    let mut at = raw;
    at[0] = norm.input_max[0];
    assert_eq!(net.eval_raw(&over), net.eval_raw(&at));
}

#[test]
fn truncated_onnx_is_an_error_not_a_panic() {
    let Some(ox) = acas("onnx/ACASXU_run2a_1_1_batch_2000.onnx") else {
        return;
    };
    let bytes = std::fs::read(ox).unwrap();
    for cut in [1, 10, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            pf_nnv::onnx::parse_onnx(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}
