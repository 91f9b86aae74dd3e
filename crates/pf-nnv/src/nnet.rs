//! Reader for the NNet text format (Kyle Julian, Stanford 2016), the ACAS Xu network format.
//!
//! Layout after `//` comment lines: `numLayers,inputSize,outputSize,maxLayerSize`; the
//! `numLayers+1` layer sizes; a legacy flag; input minimums; input maximums; `inputSize+1`
//! means and `inputSize+1` ranges (the last of each is the output's); then for each layer its
//! weight rows followed by its biases. Hidden layers are ReLU, the output layer is linear.

use crate::error::ModelError;
use crate::network::{Dense, Layer, MAX_LAYER_WIDTH, Network, Normalization};

/// Largest NNet file accepted.
pub const MAX_NNET_BYTES: usize = 256 << 20;

struct Token<'a> {
    text: &'a str,
    line: usize,
    column: usize,
}

struct Tokens<'a> {
    items: Vec<Token<'a>>,
    next: usize,
    end_line: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        let mut items = Vec::new();
        let mut end_line = 1;
        let mut in_header = true;
        for (ln, line) in text.lines().enumerate() {
            end_line = ln + 1;
            if in_header && line.trim_start().starts_with("//") {
                continue;
            }
            in_header = false;
            let mut col = 0;
            for piece in line.split(',') {
                let trimmed = piece.trim();
                if !trimmed.is_empty() {
                    let lead = piece.len() - piece.trim_start().len();
                    items.push(Token {
                        text: trimmed,
                        line: ln + 1,
                        column: col + lead + 1,
                    });
                }
                col += piece.len() + 1;
            }
        }
        Self {
            items,
            next: 0,
            end_line,
        }
    }

    fn err(&self, tok: Option<&Token<'_>>, message: String) -> ModelError {
        match tok {
            Some(t) => ModelError::NNet {
                line: t.line,
                column: t.column,
                message,
            },
            None => ModelError::NNet {
                line: self.end_line,
                column: 1,
                message: format!("unexpected end of file: {message}"),
            },
        }
    }

    fn number(&mut self, what: &str) -> Result<f64, ModelError> {
        let tok = self.items.get(self.next);
        let Some(t) = tok else {
            return Err(self.err(None, format!("expected {what}")));
        };
        let v: f64 = t
            .text
            .parse()
            .map_err(|_| self.err(tok, format!("expected {what}, found {:?}", t.text)))?;
        if !v.is_finite() {
            return Err(self.err(tok, format!("{what} is not finite")));
        }
        self.next += 1;
        Ok(v)
    }

    fn count(&mut self, what: &str) -> Result<usize, ModelError> {
        let tok = self.items.get(self.next);
        let Some(t) = tok else {
            return Err(self.err(None, format!("expected {what}")));
        };
        let v: usize = t.text.parse().map_err(|_| {
            self.err(
                tok,
                format!(
                    "expected {what} (a non-negative integer), found {:?}",
                    t.text
                ),
            )
        })?;
        if v > MAX_LAYER_WIDTH {
            return Err(self.err(
                tok,
                format!("{what} {v} exceeds the limit {MAX_LAYER_WIDTH}"),
            ));
        }
        self.next += 1;
        Ok(v)
    }

    fn numbers(&mut self, n: usize, what: &str) -> Result<Vec<f64>, ModelError> {
        (0..n).map(|_| self.number(what)).collect()
    }
}

/// Parse NNet text into a [`Network`] with its [`Normalization`].
pub fn parse_nnet(text: &str) -> Result<Network, ModelError> {
    if text.len() > MAX_NNET_BYTES {
        return Err(ModelError::TooLarge {
            size: text.len() as u64,
            limit: MAX_NNET_BYTES as u64,
        });
    }
    let mut t = Tokens::new(text);
    let num_layers = t.count("number of layers")?;
    let input_size = t.count("input size")?;
    let output_size = t.count("output size")?;
    let _max_layer = t.count("maximum layer size")?;
    if num_layers == 0 || input_size == 0 || output_size == 0 {
        return Err(ModelError::NNet {
            line: 1,
            column: 1,
            message: "layer count, input size and output size must be positive".into(),
        });
    }
    let mut sizes = Vec::with_capacity(num_layers + 1);
    for k in 0..=num_layers {
        let at = t.items.get(t.next).map(|x| (x.line, x.column));
        let s = t.count("layer size")?;
        if s == 0 {
            let (line, column) = at.unwrap_or((0, 0));
            return Err(ModelError::NNet {
                line,
                column,
                message: format!("layer {k} has size 0"),
            });
        }
        sizes.push(s);
    }
    if sizes[0] != input_size || sizes[num_layers] != output_size {
        return Err(ModelError::NNet {
            line: 2,
            column: 1,
            message: format!(
                "layer sizes {:?} disagree with input size {input_size} / output size {output_size}",
                sizes
            ),
        });
    }
    let _symmetric = t.number("symmetric flag")?;
    let input_min = t.numbers(input_size, "input minimum")?;
    let input_max = t.numbers(input_size, "input maximum")?;
    let means = t.numbers(input_size + 1, "mean")?;
    let ranges = t.numbers(input_size + 1, "range")?;
    if ranges.contains(&0.0) {
        return Err(ModelError::NNet {
            line: 7,
            column: 1,
            message: "a normalisation range is zero".into(),
        });
    }
    let mut layers = Vec::with_capacity(2 * num_layers);
    for k in 0..num_layers {
        let (rows, cols) = (sizes[k + 1], sizes[k]);
        if rows.saturating_mul(cols) > crate::network::MAX_PARAMETERS {
            return Err(ModelError::Shape(format!("layer {k} is too large")));
        }
        let w = t.numbers(rows * cols, "weight")?;
        let b = t.numbers(rows, "bias")?;
        layers.push(Layer::Dense(Dense::new(rows, cols, w, b)?));
        if k + 1 < num_layers {
            layers.push(Layer::Relu);
        }
    }
    if let Some(extra) = t.items.get(t.next) {
        return Err(t.err(
            Some(extra),
            "unexpected extra value after the last layer".into(),
        ));
    }
    let normalization = Normalization {
        input_min,
        input_max,
        input_mean: means[..input_size].to_vec(),
        input_range: ranges[..input_size].to_vec(),
        output_mean: means[input_size],
        output_range: ranges[input_size],
    };
    Network::new(input_size, layers, Some(normalization))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SMALL: &str = "// a comment\n2,2,1,2,\n2,2,1,\n0,\n-1,-1,\n1,1,\n0,0,1,\n1,1,2,\n1,0,\n0,1,\n0,\n-1,\n1,1,\n0.5,\n";

    #[test]
    fn parses_small_network_with_normalisation() {
        let n = parse_nnet(SMALL).unwrap();
        assert_eq!(n.input_dim, 2);
        assert_eq!(n.layers.len(), 3);
        // core: relu([x0, x1-1]) summed + 0.5
        assert_eq!(n.eval(&[0.5, 2.0]), vec![0.5 + 1.0 + 0.5]);
        // raw: clip to [-1,1] -> (0.5, 1.0), output *2 + 1
        assert_eq!(n.eval_raw(&[0.5, 2.0]), vec![(0.5 + 0.0 + 0.5) * 2.0 + 1.0]);
    }

    #[test]
    fn truncated_file_reports_end_of_file() {
        let cut = &SMALL[..SMALL.len() - 6];
        match parse_nnet(cut) {
            Err(ModelError::NNet { message, .. }) => {
                assert!(message.contains("end of file"), "{message}")
            }
            other => panic!("expected NNet error, got {other:?}"),
        }
    }

    #[test]
    fn bad_number_reports_line_and_column() {
        let bad = SMALL.replace("0,1,\n0,\n", "0,zz,\n0,\n");
        match parse_nnet(&bad) {
            Err(ModelError::NNet { line, column, .. }) => assert_eq!((line, column), (10, 3)),
            other => panic!("expected NNet error, got {other:?}"),
        }
    }

    #[test]
    fn nan_weight_is_rejected() {
        let bad = SMALL.replace("1,0,\n", "NaN,0,\n");
        assert!(parse_nnet(&bad).is_err());
    }
}
