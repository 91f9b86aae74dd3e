//! The network model every reader produces: a chain of dense (affine) layers and ReLUs, in f64.

use crate::error::ModelError;

/// Most neurons in any one layer we accept from an untrusted model file.
pub const MAX_LAYER_WIDTH: usize = 1 << 16;
/// Most weights (all layers together) we accept from an untrusted model file.
pub const MAX_PARAMETERS: usize = 1 << 24;

/// One affine layer `y = W x + b`, with `W` stored row-major (`rows` outputs by `cols` inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Number of outputs.
    pub rows: usize,
    /// Number of inputs.
    pub cols: usize,
    /// Weights, row-major, `rows * cols` entries.
    pub weights: Vec<f64>,
    /// Biases, `rows` entries.
    pub bias: Vec<f64>,
}

impl Dense {
    /// Build a dense layer, checking sizes and that every number is finite.
    pub fn new(
        rows: usize,
        cols: usize,
        weights: Vec<f64>,
        bias: Vec<f64>,
    ) -> Result<Self, ModelError> {
        if rows == 0 || cols == 0 || rows > MAX_LAYER_WIDTH || cols > MAX_LAYER_WIDTH {
            return Err(ModelError::Shape(format!(
                "dense layer of {rows}x{cols} is empty or too wide"
            )));
        }
        if weights.len() != rows * cols || bias.len() != rows {
            return Err(ModelError::Shape(format!(
                "dense layer {rows}x{cols} got {} weights and {} biases",
                weights.len(),
                bias.len()
            )));
        }
        if weights.iter().chain(bias.iter()).any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite("dense layer weight or bias".into()));
        }
        Ok(Self {
            rows,
            cols,
            weights,
            bias,
        })
    }

    /// Row `i` of the weight matrix.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.weights[i * self.cols..(i + 1) * self.cols]
    }

    /// `W x + b` in f64, summing each row left to right (the reference semantics).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|i| {
                let mut s = 0.0;
                for (w, v) in self.row(i).iter().zip(x) {
                    s += w * v;
                }
                s + self.bias[i]
            })
            .collect()
    }
}

/// A layer of the chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Affine map.
    Dense(Dense),
    /// Element-wise `max(0, x)`.
    Relu,
}

/// Input normalisation and output de-normalisation carried by an NNet file (ACAS Xu).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Raw inputs are clipped to at least this.
    pub input_min: Vec<f64>,
    /// Raw inputs are clipped to at most this.
    pub input_max: Vec<f64>,
    /// Subtracted from each clipped input.
    pub input_mean: Vec<f64>,
    /// Each centred input is divided by this.
    pub input_range: Vec<f64>,
    /// Added to every output after scaling.
    pub output_mean: f64,
    /// Every network output is multiplied by this.
    pub output_range: f64,
}

impl Normalization {
    /// Map a raw input to the network's (normalised) input space: clip, centre, scale.
    pub fn normalize_input(&self, raw: &[f64]) -> Vec<f64> {
        raw.iter()
            .enumerate()
            .map(|(i, &v)| {
                (v.max(self.input_min[i]).min(self.input_max[i]) - self.input_mean[i])
                    / self.input_range[i]
            })
            .collect()
    }

    /// Map a network output back to raw units.
    pub fn denormalize_output(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .map(|v| v * self.output_range + self.output_mean)
            .collect()
    }
}

/// A feed-forward network: a chain of layers from `input_dim` inputs.
///
/// Properties are stated over the network's own input and output space (for NNet files: the
/// normalised space, as Marabou and VNN-COMP do); [`Network::eval_raw`] applies the NNet
/// normalisation around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Number of inputs.
    pub input_dim: usize,
    /// The layers, first applied first.
    pub layers: Vec<Layer>,
    /// NNet normalisation, when the file carried one.
    pub normalization: Option<Normalization>,
}

impl Network {
    /// Build a network, checking that layer sizes chain.
    pub fn new(
        input_dim: usize,
        layers: Vec<Layer>,
        normalization: Option<Normalization>,
    ) -> Result<Self, ModelError> {
        if input_dim == 0 {
            return Err(ModelError::Shape("network has no inputs".into()));
        }
        let mut width = input_dim;
        let mut params = 0usize;
        for (k, layer) in layers.iter().enumerate() {
            if let Layer::Dense(d) = layer {
                if d.cols != width {
                    return Err(ModelError::Shape(format!(
                        "layer {k} expects {} inputs but receives {width}",
                        d.cols
                    )));
                }
                width = d.rows;
                params = params.saturating_add(d.weights.len());
            }
        }
        if params > MAX_PARAMETERS {
            return Err(ModelError::Shape(format!(
                "{params} parameters exceed the limit of {MAX_PARAMETERS}"
            )));
        }
        Ok(Self {
            input_dim,
            layers,
            normalization,
        })
    }

    /// Number of outputs.
    pub fn output_dim(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                Layer::Dense(d) => Some(d.rows),
                Layer::Relu => None,
            })
            .unwrap_or(self.input_dim)
    }

    /// Number of ReLU neurons.
    pub fn relu_count(&self) -> usize {
        let mut width = self.input_dim;
        let mut n = 0;
        for l in &self.layers {
            match l {
                Layer::Dense(d) => width = d.rows,
                Layer::Relu => n += width,
            }
        }
        n
    }

    /// Evaluate on an input of the network's own space, in f64 (the reference semantics).
    pub fn eval(&self, x: &[f64]) -> Vec<f64> {
        let mut v = x.to_vec();
        for l in &self.layers {
            match l {
                Layer::Dense(d) => v = d.apply(&v),
                Layer::Relu => v.iter_mut().for_each(|e| *e = e.max(0.0)),
            }
        }
        v
    }

    /// Evaluate on a raw input, applying the NNet normalisation when present.
    pub fn eval_raw(&self, raw: &[f64]) -> Vec<f64> {
        match &self.normalization {
            Some(n) => n.denormalize_output(&self.eval(&n.normalize_input(raw))),
            None => self.eval(raw),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tiny() -> Network {
        let d1 = Dense::new(2, 2, vec![1.0, -1.0, 2.0, 1.0], vec![0.0, -1.0]).unwrap();
        let d2 = Dense::new(1, 2, vec![1.0, 1.0], vec![0.5]).unwrap();
        Network::new(
            2,
            vec![Layer::Dense(d1), Layer::Relu, Layer::Dense(d2)],
            None,
        )
        .unwrap()
    }

    #[test]
    fn eval_applies_relu_between_dense_layers() {
        // h = relu([1-2, 2+2-1]) = [0, 3]; y = 3 + 0.5
        assert_eq!(tiny().eval(&[1.0, 2.0]), vec![3.5]);
        assert_eq!(tiny().relu_count(), 2);
        assert_eq!(tiny().output_dim(), 1);
    }

    #[test]
    fn mismatched_layers_are_rejected() {
        let d1 = Dense::new(2, 3, vec![0.0; 6], vec![0.0; 2]).unwrap();
        assert!(Network::new(2, vec![Layer::Dense(d1)], None).is_err());
    }

    #[test]
    fn non_finite_weights_are_rejected() {
        assert!(matches!(
            Dense::new(1, 1, vec![f64::NAN], vec![0.0]),
            Err(ModelError::NonFinite(_))
        ));
        assert!(matches!(
            Dense::new(1, 1, vec![1.0], vec![f64::INFINITY]),
            Err(ModelError::NonFinite(_))
        ));
    }
}
