//! ONNX reader: decodes the protobuf (our own message definitions in [`proto`]) and lowers a
//! single-chain graph of Gemm/MatMul/Add/Sub/Mul/Div/Relu/Flatten/Reshape/Constant nodes to a
//! [`Network`]. Any other operator, or a graph that branches, is declined with a clear error.

pub mod proto;

use std::collections::HashMap;

use prost::Message;

use crate::error::ModelError;
use crate::network::{Dense, Layer, MAX_LAYER_WIDTH, MAX_PARAMETERS, Network};
use proto::{AttributeProto, ModelProto, NodeProto, TensorProto};

/// Largest ONNX file accepted.
pub const MAX_ONNX_BYTES: usize = 512 << 20;

/// A constant tensor (initializer or `Constant` output).
#[derive(Debug, Clone)]
struct Tensor {
    dims: Vec<usize>,
    data: Vec<f64>,
}

/// The one symbolic value of the chain: the output of the first `depth` layers, with its shape.
#[derive(Debug, Clone)]
struct Symbolic {
    dims: Vec<usize>,
    depth: usize,
}

#[derive(Debug, Clone)]
enum Value {
    Const(Tensor),
    Sym(Symbolic),
}

fn numel(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

/// Refuse n-by-n helper layers (bias, scale) that would not fit the parameter limit.
fn square_fits(n: usize) -> Result<(), ModelError> {
    if n.saturating_mul(n) > MAX_PARAMETERS {
        return Err(ModelError::Shape(format!(
            "element-wise operation on {n} values exceeds the parameter limit"
        )));
    }
    Ok(())
}

fn tensor_from_proto(t: &TensorProto) -> Result<Tensor, ModelError> {
    if t.data_location == 1 {
        return Err(ModelError::Onnx(format!(
            "tensor {:?} uses external data, which is not supported",
            t.name
        )));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| ModelError::Onnx(format!("tensor {:?} has negative dimension", t.name)))?;
        dims.push(d);
    }
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|n| *n <= MAX_PARAMETERS);
    let Some(n) = n else {
        return Err(ModelError::Onnx(format!(
            "tensor {:?} is too large",
            t.name
        )));
    };
    let data: Vec<f64> = match t.data_type {
        1 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        1 => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        11 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        11 => t.double_data.clone(),
        // Integer tensors only feed shapes (Reshape); values fit f64 exactly up to 2^53.
        7 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64)
            .collect(),
        7 => t.int64_data.iter().map(|&v| v as f64).collect(),
        6 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        6 => t.int32_data.iter().map(|&v| f64::from(v)).collect(),
        other => {
            return Err(ModelError::Onnx(format!(
                "tensor {:?} has unsupported data type {other}",
                t.name
            )));
        }
    };
    if data.len() != n {
        return Err(ModelError::Onnx(format!(
            "tensor {:?} has {} values for shape {:?}",
            t.name,
            data.len(),
            dims
        )));
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::NonFinite(format!("ONNX tensor {:?}", t.name)));
    }
    Ok(Tensor { dims, data })
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

struct Lowering {
    values: HashMap<String, Value>,
    layers: Vec<Layer>,
    input_dim: usize,
}

impl Lowering {
    fn get(&self, node: &NodeProto, idx: usize) -> Result<Value, ModelError> {
        let name = node.input.get(idx).ok_or_else(|| {
            ModelError::Onnx(format!(
                "node {:?} ({}) lacks input {idx}",
                node.name, node.op_type
            ))
        })?;
        self.values.get(name).cloned().ok_or_else(|| {
            ModelError::Onnx(format!(
                "node {:?} reads undefined value {name:?}",
                node.name
            ))
        })
    }

    fn unsupported(node: &NodeProto, detail: &str) -> ModelError {
        ModelError::Unsupported {
            op: node.op_type.clone(),
            node: node.name.clone(),
            detail: detail.to_string(),
        }
    }

    /// The chain must be extended from its current end: no branches, no reuse of earlier values.
    fn at_end(&self, node: &NodeProto, s: &Symbolic) -> Result<(), ModelError> {
        if s.depth != self.layers.len() {
            return Err(Self::unsupported(
                node,
                "graph branches (only a single chain of layers is supported)",
            ));
        }
        Ok(())
    }

    fn width(dims: &[usize]) -> Result<usize, ModelError> {
        let n = numel(dims);
        if n == 0 || n > MAX_LAYER_WIDTH {
            return Err(ModelError::Shape(format!(
                "tensor of shape {dims:?} is empty or too wide"
            )));
        }
        Ok(n)
    }

    fn push_dense(&mut self, d: Dense) {
        self.layers.push(Layer::Dense(d));
    }

    /// Add a constant vector to the chain end: merged exactly into a preceding bias-free layer.
    fn add_bias(&mut self, c: Vec<f64>) -> Result<(), ModelError> {
        if let Some(Layer::Dense(d)) = self.layers.last_mut()
            && d.bias.iter().all(|b| *b == 0.0)
        {
            d.bias = c;
            return Ok(());
        }
        let n = c.len();
        square_fits(n)?;
        let mut w = vec![0.0; n * n];
        (0..n).for_each(|i| w[i * n + i] = 1.0);
        self.push_dense(Dense::new(n, n, w, c)?);
        Ok(())
    }

    fn scale(&mut self, s: Vec<f64>, c: Vec<f64>) -> Result<(), ModelError> {
        let n = s.len();
        square_fits(n)?;
        let mut w = vec![0.0; n * n];
        (0..n).for_each(|i| w[i * n + i] = s[i]);
        self.push_dense(Dense::new(n, n, w, c)?);
        Ok(())
    }

    /// Broadcast a constant to the symbolic shape (numpy rules, constant side only).
    fn broadcast(node: &NodeProto, c: &Tensor, dims: &[usize]) -> Result<Vec<f64>, ModelError> {
        let n = numel(dims);
        if c.data.len() == 1 {
            return Ok(vec![c.data[0]; n]);
        }
        let strip = |d: &[usize]| {
            d.iter()
                .skip_while(|&&x| x == 1)
                .copied()
                .collect::<Vec<_>>()
        };
        if c.data.len() == n && strip(&c.dims) == strip(dims) {
            return Ok(c.data.clone());
        }
        Err(Self::unsupported(
            node,
            &format!(
                "constant of shape {:?} does not broadcast element-wise to {:?}",
                c.dims, dims
            ),
        ))
    }

    fn node(&mut self, node: &NodeProto) -> Result<(), ModelError> {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(Self::unsupported(
                node,
                &format!("operator domain {:?}", node.domain),
            ));
        }
        let out = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| ModelError::Onnx(format!("node {:?} has no output", node.name)))?;
        let result = match node.op_type.as_str() {
            "Constant" => {
                let t = attr(node, "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| Self::unsupported(node, "only the `value` tensor form"))?;
                Value::Const(tensor_from_proto(t)?)
            }
            "Relu" => {
                let Value::Sym(s) = self.get(node, 0)? else {
                    return Err(Self::unsupported(node, "ReLU of a constant"));
                };
                self.at_end(node, &s)?;
                self.layers.push(Layer::Relu);
                Value::Sym(Symbolic {
                    dims: s.dims,
                    depth: self.layers.len(),
                })
            }
            "Flatten" | "Reshape" | "Identity" | "Squeeze" | "Unsqueeze" => {
                let Value::Sym(s) = self.get(node, 0)? else {
                    return Err(Self::unsupported(node, "shape operator on a constant"));
                };
                self.at_end(node, &s)?;
                let n = numel(&s.dims);
                // Row-major element order is unchanged by these operators; only the shape moves.
                let dims = if node.op_type == "Reshape" {
                    let Value::Const(shape) = self.get(node, 1)? else {
                        return Err(Self::unsupported(node, "non-constant target shape"));
                    };
                    let mut d: Vec<usize> = Vec::new();
                    let mut infer = None;
                    for (i, &v) in shape.data.iter().enumerate() {
                        if v == -1.0 {
                            infer = Some(i);
                            d.push(1);
                        } else if v == 0.0 {
                            d.push(*s.dims.get(i).unwrap_or(&1));
                        } else if v > 0.0 && v.fract() == 0.0 {
                            d.push(v as usize);
                        } else {
                            return Err(Self::unsupported(node, "invalid target shape"));
                        }
                    }
                    if let Some(i) = infer {
                        let rest = numel(&d).max(1);
                        d[i] = n / rest;
                    }
                    d
                } else {
                    vec![1, n]
                };
                if numel(&dims) != n {
                    return Err(ModelError::Shape(format!(
                        "node {:?} reshapes {} elements to {:?}",
                        node.name, n, dims
                    )));
                }
                Value::Sym(Symbolic {
                    dims,
                    depth: s.depth,
                })
            }
            "Gemm" | "MatMul" => self.matmul(node)?,
            "Add" | "Sub" | "Mul" | "Div" => self.elementwise(node)?,
            other => {
                return Err(Self::unsupported(
                    node,
                    &format!("operator {other} is not supported"),
                ));
            }
        };
        self.values.insert(out, result);
        Ok(())
    }

    fn matmul(&mut self, node: &NodeProto) -> Result<Value, ModelError> {
        let (Value::Sym(a), Value::Const(b)) = (self.get(node, 0)?, self.get(node, 1)?) else {
            return Err(Self::unsupported(
                node,
                "only symbolic x constant products are supported",
            ));
        };
        self.at_end(node, &a)?;
        let gemm = node.op_type == "Gemm";
        let ia = |n: &str| attr(node, n).map(|a| a.i).unwrap_or(0);
        let fa = |n: &str| attr(node, n).map(|a| f64::from(a.f)).unwrap_or(1.0);
        if gemm && ia("transA") != 0 {
            return Err(Self::unsupported(node, "transA=1"));
        }
        let trans_b = gemm && ia("transB") != 0;
        if b.dims.len() != 2 {
            return Err(Self::unsupported(node, "weight must be a matrix"));
        }
        let (k, m) = if trans_b {
            (b.dims[1], b.dims[0])
        } else {
            (b.dims[0], b.dims[1])
        };
        let n_in = Self::width(&a.dims)?;
        let last = *a.dims.last().unwrap_or(&0);
        if last != k || n_in != k {
            return Err(ModelError::Shape(format!(
                "node {:?}: input of shape {:?} times weight {:?}",
                node.name, a.dims, b.dims
            )));
        }
        let alpha = if gemm { fa("alpha") } else { 1.0 };
        // W[j][i] = alpha * B[i][j] (or B[j][i] when transposed).
        let mut w = vec![0.0; m * k];
        for j in 0..m {
            for i in 0..k {
                let v = if trans_b {
                    b.data[j * k + i]
                } else {
                    b.data[i * m + j]
                };
                w[j * k + i] = if alpha == 1.0 { v } else { alpha * v };
            }
        }
        let mut bias = vec![0.0; m];
        let mut dims = a.dims.clone();
        if let Some(d) = dims.last_mut() {
            *d = m;
        }
        if gemm && node.input.len() > 2 && !node.input[2].is_empty() {
            let Value::Const(c) = self.get(node, 2)? else {
                return Err(Self::unsupported(node, "non-constant bias"));
            };
            let beta = fa("beta");
            bias = Self::broadcast(node, &c, &dims)?
                .into_iter()
                .map(|v| if beta == 1.0 { v } else { beta * v })
                .collect();
        }
        self.push_dense(Dense::new(m, k, w, bias)?);
        Ok(Value::Sym(Symbolic {
            dims,
            depth: self.layers.len(),
        }))
    }

    fn elementwise(&mut self, node: &NodeProto) -> Result<Value, ModelError> {
        let (x, y) = (self.get(node, 0)?, self.get(node, 1)?);
        let op = node.op_type.as_str();
        let (s, c, sym_first) = match (x, y) {
            (Value::Sym(s), Value::Const(c)) => (s, c, true),
            (Value::Const(c), Value::Sym(s)) => (s, c, false),
            (Value::Const(_), Value::Const(_)) => {
                return Err(Self::unsupported(node, "constant folding is not supported"));
            }
            (Value::Sym(_), Value::Sym(_)) => {
                return Err(Self::unsupported(node, "operation on two network values"));
            }
        };
        self.at_end(node, &s)?;
        let c = Self::broadcast(node, &c, &s.dims)?;
        let zeros = vec![0.0; c.len()];
        match (op, sym_first) {
            ("Add", _) => self.add_bias(c)?,
            ("Sub", true) => self.add_bias(c.into_iter().map(|v| -v).collect())?,
            ("Sub", false) => self.scale(vec![-1.0; c.len()], c)?,
            ("Mul", _) => self.scale(c, zeros)?,
            ("Div", true) => {
                if c.contains(&0.0) {
                    return Err(ModelError::Shape(format!(
                        "node {:?} divides by zero",
                        node.name
                    )));
                }
                // x / c is modelled as x * (1/c): one rounding of the reciprocal (documented).
                self.scale(c.into_iter().map(|v| 1.0 / v).collect(), zeros)?
            }
            _ => {
                return Err(Self::unsupported(
                    node,
                    "constant divided by a network value",
                ));
            }
        }
        Ok(Value::Sym(Symbolic {
            dims: s.dims,
            depth: self.layers.len(),
        }))
    }
}

/// Decode ONNX bytes and lower the graph to a [`Network`].
pub fn parse_onnx(bytes: &[u8]) -> Result<Network, ModelError> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(ModelError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_ONNX_BYTES as u64,
        });
    }
    let model = ModelProto::decode(bytes)
        .map_err(|e| ModelError::Onnx(format!("malformed protobuf: {e}")))?;
    let graph = model
        .graph
        .ok_or_else(|| ModelError::Onnx("model has no graph".into()))?;
    let mut values = HashMap::new();
    for t in &graph.initializer {
        values.insert(t.name.clone(), Value::Const(tensor_from_proto(t)?));
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !values.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(ModelError::Onnx(format!(
            "expected exactly one network input, found {}",
            inputs.len()
        )));
    };
    let shape = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref());
    let dims: Vec<usize> = shape
        .ok_or_else(|| ModelError::Onnx(format!("input {:?} has no tensor shape", input.name)))?
        .dim
        .iter()
        // A symbolic (batch) dimension is taken as 1.
        .map(|d| {
            if d.dim_param.is_empty() {
                usize::try_from(d.dim_value)
                    .unwrap_or(0)
                    .max(usize::from(d.dim_value == 0))
            } else {
                1
            }
        })
        .collect();
    let input_dim = Lowering::width(&dims)?;
    values.insert(input.name.clone(), Value::Sym(Symbolic { dims, depth: 0 }));
    let mut low = Lowering {
        values,
        layers: Vec::new(),
        input_dim,
    };
    for node in &graph.node {
        low.node(node)?;
    }
    let [output] = graph.output.as_slice() else {
        return Err(ModelError::Onnx(format!(
            "expected exactly one graph output, found {}",
            graph.output.len()
        )));
    };
    match low.values.get(&output.name) {
        Some(Value::Sym(s)) if s.depth == low.layers.len() => {}
        Some(_) => {
            return Err(ModelError::Onnx(format!(
                "output {:?} is not the end of the layer chain",
                output.name
            )));
        }
        None => {
            return Err(ModelError::Onnx(format!(
                "output {:?} is never computed",
                output.name
            )));
        }
    }
    Network::new(low.input_dim, low.layers, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn garbage_bytes_are_a_clear_error() {
        assert!(parse_onnx(&[0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(matches!(parse_onnx(&[]), Err(ModelError::Onnx(_))));
    }
}
