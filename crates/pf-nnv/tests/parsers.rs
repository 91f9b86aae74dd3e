//! Parsers never panic on arbitrary or corrupted input (the same entry points as the fuzz
//! targets in `fuzz/`), and reject it with an error instead.

#![allow(clippy::unwrap_used)]

use pf_nnv::nnet::parse_nnet;
use pf_nnv::onnx::parse_onnx;
use pf_nnv::property::marabou::parse_marabou;
use pf_nnv::property::vnnlib::parse_vnnlib;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn vnnlib_parser_never_panics(s in "[()<>=a-zA-Z_0-9 .;\\n+*-]{0,200}") {
        let _ = parse_vnnlib(&s);
    }

    #[test]
    fn marabou_parser_never_panics(s in "[xyw_0-9 .<>=+\\n-]{0,120}") {
        let _ = parse_marabou(&s);
    }

    #[test]
    fn nnet_parser_never_panics(s in "[0-9,. \\n/eE+-]{0,200}") {
        let _ = parse_nnet(&s);
    }

    #[test]
    fn onnx_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_onnx(&bytes);
    }
}

#[test]
fn corrupted_acas_xu_onnx_never_panics() {
    let Some(p) =
        pf_testkit::shared_path("vectors/nnv/acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx")
    else {
        return;
    };
    let good = std::fs::read(p).unwrap();
    let mut state = 0x1234_5678_9abc_def1u64;
    for _ in 0..300 {
        let mut b = good.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % b.len();
            b[at] = (state >> 32) as u8;
        }
        let _ = parse_onnx(&b);
    }
}

#[test]
fn corrupted_acas_xu_nnet_never_panics() {
    let Some(p) =
        pf_testkit::shared_path("vectors/nnv/acasxu/nnet/ACASXU_experimental_v2a_1_1.nnet")
    else {
        return;
    };
    let good = std::fs::read_to_string(p).unwrap();
    // (A cut inside the very last number can leave a valid shorter number: not tested.)
    for cut in [0, 10, 200, 400, good.len() / 3, good.len() * 2 / 3] {
        assert!(
            parse_nnet(&good[..cut]).is_err(),
            "truncated at {cut} must fail"
        );
    }
    let bad = good.replacen("5,50,50", "5,9999999999,50", 1);
    assert!(parse_nnet(&bad).is_err());
}
