//! Reader for Marabou's property text format: one linear constraint per line, e.g.
//! `x0 >= 0.6`, `+y0 -y1 >= 0`, `-2.5y1 +y3 <= 1`, with `<=`, `>=` or `=`. A query is the
//! conjunction of its lines (one case); `sat` means some input satisfies all of them.

use super::{Atom, Formula, LinearForm, Property};
use crate::error::PropertyError;

/// Parse Marabou property text into a [`Property`].
pub fn parse_marabou(text: &str) -> Result<Property, PropertyError> {
    if text.len() > super::vnnlib::MAX_PROPERTY_BYTES {
        return Err(PropertyError::Invalid("property text is too large".into()));
    }
    let mut atoms = Vec::new();
    let (mut n_in, mut n_out) = (0usize, 0usize);
    for (ln, raw) in text.lines().enumerate() {
        let line = ln + 1;
        let content = raw.split("//").next().unwrap_or("");
        if content.trim().is_empty() {
            continue;
        }
        let err = |column: usize, message: String| PropertyError::Syntax {
            line,
            column,
            message,
        };
        // Tokenise on whitespace, remembering columns.
        let mut toks = Vec::new();
        let mut start = None;
        for (i, ch) in content
            .char_indices()
            .chain(std::iter::once((content.len(), ' ')))
        {
            match (ch.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    toks.push((&content[s..i], s + 1));
                    start = None;
                }
                _ => {}
            }
        }
        let Some(op_at) = toks
            .iter()
            .position(|(t, _)| matches!(*t, "<=" | ">=" | "="))
        else {
            return Err(err(1, "expected a relation <=, >= or =".into()));
        };
        let (op, op_col) = toks[op_at];
        let [(rhs, rhs_col)] = toks[op_at + 1..] else {
            return Err(err(
                op_col,
                "expected exactly one number after the relation".into(),
            ));
        };
        let rhs: f64 = rhs
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| err(rhs_col, format!("expected a number, found {rhs:?}")))?;
        if op_at == 0 {
            return Err(err(op_col, "expected terms before the relation".into()));
        }
        let mut form = LinearForm {
            constant: -rhs,
            ..Default::default()
        };
        for &(tok, col) in &toks[..op_at] {
            let pos = tok
                .find(['x', 'y', 'w'])
                .ok_or_else(|| err(col, format!("expected a term like +2.5x0, found {tok:?}")))?;
            let (coef_txt, var) = tok.split_at(pos);
            let coef = match coef_txt {
                "" | "+" => 1.0,
                "-" => -1.0,
                t => t
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| err(col, format!("bad coefficient {t:?}")))?,
            };
            let (is_x, idx) = if let Some(r) = var.strip_prefix('x') {
                (true, r)
            } else if let Some(r) = var.strip_prefix('y') {
                (false, r)
            } else {
                return Err(PropertyError::Semantic {
                    line,
                    column: col + pos,
                    message: format!("variable {var:?} is not supported (only x<i> and y<i>)"),
                });
            };
            let idx: usize = idx
                .parse()
                .ok()
                .filter(|i| *i <= crate::network::MAX_LAYER_WIDTH)
                .ok_or_else(|| err(col + pos, format!("bad variable {var:?}")))?;
            let slot = if is_x {
                n_in = n_in.max(idx + 1);
                form.x.entry(idx).or_insert(0.0)
            } else {
                n_out = n_out.max(idx + 1);
                form.y.entry(idx).or_insert(0.0)
            };
            *slot += coef;
        }
        let column = toks[0].1;
        let mk = |form: LinearForm| {
            Formula::Atom(Atom {
                form,
                strict: false,
                line,
                column,
            })
        };
        match op {
            "<=" => atoms.push(mk(form)),
            ">=" => atoms.push(mk(form.scaled(-1.0))),
            _ => {
                atoms.push(mk(form.clone()));
                atoms.push(mk(form.scaled(-1.0)));
            }
        }
    }
    if atoms.is_empty() {
        return Err(PropertyError::Invalid("no constraints".into()));
    }
    Property::from_formula(&Formula::And(atoms), n_in, n_out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_bounds_and_output_differences() {
        let p = parse_marabou("x0 >= -1\nx0 <= 1\n\n+y0 -2y1 >= 0.5\n").unwrap();
        assert_eq!((p.input_dim, p.output_dim), (1, 2));
        let c = &p.cases[0];
        assert_eq!((c.lower[0], c.upper[0]), (-1.0, 1.0));
        assert_eq!(c.outputs[0].coef, vec![-1.0, 2.0]);
        assert_eq!(c.outputs[0].rhs, -0.5);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let cases = [
            ("x0 >= 0\nx0 <= 1\ny0 => 3\n", 3, 1),
            ("x0 >= 0\nx0 <= abc\n", 2, 7),
            ("x0 >= 0\nx0 <= 1\n+y0 -zz >= 0\n", 3, 5),
            ("x0 >= 0\nx0 <= 1\nws_1_2 >= 0\n", 3, 1),
        ];
        for (text, l, c) in cases {
            match parse_marabou(text) {
                Err(
                    PropertyError::Syntax { line, column, .. }
                    | PropertyError::Semantic { line, column, .. },
                ) => assert_eq!((line, column), (l, c), "{text}"),
                other => panic!("expected positioned error for {text:?}, got {other:?}"),
            }
        }
    }
}
