//! ONNX lowering of each supported operator, on small models encoded with the crate's own
//! protobuf messages, checked against hand-computed outputs; unsupported operators decline.

#![allow(clippy::unwrap_used)]

use pf_nnv::ModelError;
use pf_nnv::onnx::parse_onnx;
use pf_nnv::onnx::proto::*;
use prost::Message;

fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        ..Default::default()
    }
}

fn float_attr(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        ..Default::default()
    }
}

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_value: *d,
                            dim_param: String::new(),
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, in_dims: &[i64], output: &str) -> Vec<u8> {
    let graph = GraphProto {
        node: nodes,
        name: "g".into(),
        initializer: inits,
        input: vec![value("x", in_dims)],
        output: vec![value(output, &[1, 2])],
    };
    ModelProto {
        ir_version: 7,
        graph: Some(graph),
    }
    .encode_to_vec()
}

#[test]
fn gemm_with_transposed_weight_alpha_and_beta() {
    // y = 2 * x W^T + 0.5 * c with W = [[1,2],[3,4]], c = [1, -1]
    let bytes = model(
        vec![node(
            "Gemm",
            &["x", "W", "c"],
            "y",
            vec![
                int_attr("transB", 1),
                float_attr("alpha", 2.0),
                float_attr("beta", 0.5),
            ],
        )],
        vec![
            tensor("W", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            tensor("c", &[2], &[1.0, -1.0]),
        ],
        &[1, 2],
        "y",
    );
    let net = parse_onnx(&bytes).unwrap();
    // x = [1, 1]: xW^T = [3, 7]; *2 = [6, 14]; + [0.5, -0.5]
    assert_eq!(net.eval(&[1.0, 1.0]), vec![6.5, 13.5]);
}

#[test]
fn normalisation_prefix_matmul_add_relu_and_reshape() {
    // Sub mean, Div range, Flatten, MatMul, Add, Relu, Reshape.
    let bytes = model(
        vec![
            node("Sub", &["x", "mean"], "a", vec![]),
            node("Div", &["a", "range"], "b", vec![]),
            node("Flatten", &["b"], "f", vec![]),
            node("MatMul", &["f", "W"], "m", vec![]),
            node("Add", &["m", "bias"], "s", vec![]),
            node("Relu", &["s"], "r", vec![]),
            node("Reshape", &["r", "shape"], "y", vec![]),
        ],
        vec![
            tensor("mean", &[2], &[1.0, 2.0]),
            tensor("range", &[2], &[2.0, 4.0]),
            tensor("W", &[2, 2], &[1.0, -1.0, 1.0, 1.0]),
            tensor("bias", &[2], &[0.0, -1.0]),
            TensorProto {
                name: "shape".into(),
                dims: vec![2],
                data_type: 7,
                int64_data: vec![1, -1],
                ..Default::default()
            },
        ],
        &[1, 1, 2],
        "y",
    );
    let net = parse_onnx(&bytes).unwrap();
    // x = [3, 6] -> [1, 1] -> m = [x0 + x1, -x0 + x1] = [2, 0] -> + [0, -1] -> relu [2, 0]
    assert_eq!(net.eval(&[3.0, 6.0]), vec![2.0, 0.0]);
    // x = [-1, 10] -> [-1, 2] -> m = [1, 3] -> [1, 2]
    assert_eq!(net.eval(&[-1.0, 10.0]), vec![1.0, 2.0]);
}

#[test]
fn unsupported_operator_is_declined_by_name() {
    let bytes = model(
        vec![node("Conv", &["x", "W"], "y", vec![])],
        vec![tensor("W", &[2, 2], &[1.0; 4])],
        &[1, 2],
        "y",
    );
    match parse_onnx(&bytes) {
        Err(ModelError::Unsupported { op, .. }) => assert_eq!(op, "Conv"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn branching_graph_is_declined() {
    // y = relu(x) + x is not a chain.
    let bytes = model(
        vec![
            node("Relu", &["x"], "r", vec![]),
            node("Add", &["r", "x"], "y", vec![]),
        ],
        vec![],
        &[1, 2],
        "y",
    );
    assert!(matches!(
        parse_onnx(&bytes),
        Err(ModelError::Unsupported { .. })
    ));
}

#[test]
fn nan_and_shape_errors_are_reported() {
    let nan = model(
        vec![node("MatMul", &["x", "W"], "y", vec![])],
        vec![tensor("W", &[2, 2], &[1.0, f32::NAN, 0.0, 1.0])],
        &[1, 2],
        "y",
    );
    assert!(matches!(parse_onnx(&nan), Err(ModelError::NonFinite(_))));
    let shape = model(
        vec![node("MatMul", &["x", "W"], "y", vec![])],
        vec![tensor("W", &[3, 2], &[1.0; 6])],
        &[1, 2],
        "y",
    );
    assert!(matches!(parse_onnx(&shape), Err(ModelError::Shape(_))));
    let count = model(
        vec![node("MatMul", &["x", "W"], "y", vec![])],
        vec![tensor("W", &[2, 2], &[1.0; 3])],
        &[1, 2],
        "y",
    );
    assert!(matches!(parse_onnx(&count), Err(ModelError::Onnx(_))));
}
