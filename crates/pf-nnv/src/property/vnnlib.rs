//! VNN-LIB reader: the SMT-LIB subset of VNN-COMP (`declare-const X_i/Y_i Real`, `assert`
//! with `<=`, `>=`, `<`, `>`, `=`, `and`, `or`, and linear terms `+`, `-`, `*` by a constant).

use std::collections::HashMap;

use super::{Atom, Formula, LinearForm, Property};
use crate::error::PropertyError;

/// Largest property file accepted.
pub const MAX_PROPERTY_BYTES: usize = 64 << 20;
/// Deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 256;

/// An S-expression with the position of its first character.
#[derive(Debug, Clone)]
enum Sexp {
    Atom(String, usize, usize),
    List(Vec<Sexp>, usize, usize),
}

impl Sexp {
    fn pos(&self) -> (usize, usize) {
        match self {
            Sexp::Atom(_, l, c) | Sexp::List(_, l, c) => (*l, *c),
        }
    }
}

fn syntax(line: usize, column: usize, message: impl Into<String>) -> PropertyError {
    PropertyError::Syntax {
        line,
        column,
        message: message.into(),
    }
}

fn semantic_at(s: &Sexp, message: impl Into<String>) -> PropertyError {
    let (line, column) = s.pos();
    PropertyError::Semantic {
        line,
        column,
        message: message.into(),
    }
}

/// Read all top-level S-expressions.
fn read_sexps(text: &str) -> Result<Vec<Sexp>, PropertyError> {
    let mut stack: Vec<(Vec<Sexp>, usize, usize)> = Vec::new();
    let mut top = Vec::new();
    let (mut line, mut col) = (1usize, 0usize);
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut word_pos = (0, 0);
    let flush = |word: &mut String,
                 pos: (usize, usize),
                 stack: &mut Vec<(Vec<Sexp>, usize, usize)>,
                 top: &mut Vec<Sexp>| {
        if !word.is_empty() {
            let a = Sexp::Atom(std::mem::take(word), pos.0, pos.1);
            match stack.last_mut() {
                Some(f) => f.0.push(a),
                None => top.push(a),
            }
        }
    };
    while let Some(ch) = chars.next() {
        col += 1;
        match ch {
            ';' => {
                flush(&mut word, word_pos, &mut stack, &mut top);
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        col = 0;
                        break;
                    }
                }
            }
            '(' => {
                flush(&mut word, word_pos, &mut stack, &mut top);
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(
                        line,
                        col,
                        format!("nesting deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push((Vec::new(), line, col));
            }
            ')' => {
                flush(&mut word, word_pos, &mut stack, &mut top);
                let Some((items, l, c)) = stack.pop() else {
                    return Err(syntax(line, col, "unbalanced ')'"));
                };
                let list = Sexp::List(items, l, c);
                match stack.last_mut() {
                    Some(f) => f.0.push(list),
                    None => top.push(list),
                }
            }
            c if c.is_whitespace() => {
                flush(&mut word, word_pos, &mut stack, &mut top);
                if c == '\n' {
                    line += 1;
                    col = 0;
                }
            }
            c => {
                if word.is_empty() {
                    word_pos = (line, col);
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, word_pos, &mut stack, &mut top);
    if let Some((_, l, c)) = stack.last() {
        return Err(syntax(*l, *c, "'(' is never closed"));
    }
    Ok(top)
}

#[derive(Clone, Copy)]
enum Var {
    X(usize),
    Y(usize),
}

struct Reader {
    vars: HashMap<String, Var>,
}

impl Reader {
    fn number(s: &str) -> Option<f64> {
        let first = s.chars().next()?;
        if !(first.is_ascii_digit() || first == '-' || first == '+' || first == '.') {
            return None;
        }
        s.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    fn term(&self, s: &Sexp) -> Result<LinearForm, PropertyError> {
        match s {
            Sexp::Atom(a, ..) => {
                if let Some(v) = Self::number(a) {
                    return Ok(LinearForm {
                        constant: v,
                        ..Default::default()
                    });
                }
                match self.vars.get(a) {
                    Some(Var::X(i)) => Ok(LinearForm {
                        x: [(*i, 1.0)].into(),
                        ..Default::default()
                    }),
                    Some(Var::Y(i)) => Ok(LinearForm {
                        y: [(*i, 1.0)].into(),
                        ..Default::default()
                    }),
                    None => Err(semantic_at(s, format!("undeclared variable {a:?}"))),
                }
            }
            Sexp::List(items, ..) => {
                let Some((Sexp::Atom(op, ..), args)) = items.split_first() else {
                    return Err(semantic_at(s, "expected an operator"));
                };
                let forms = args
                    .iter()
                    .map(|a| self.term(a))
                    .collect::<Result<Vec<_>, _>>()?;
                match (op.as_str(), forms.as_slice()) {
                    ("+", [_, ..]) => Ok(forms
                        .iter()
                        .fold(LinearForm::default(), |acc, f| acc.plus(f))),
                    ("-", [only]) => Ok(only.clone().scaled(-1.0)),
                    ("-", [first, rest @ ..]) => Ok(rest
                        .iter()
                        .fold(first.clone(), |acc, f| acc.plus(&f.clone().scaled(-1.0)))),
                    ("*", [a, b]) if a.is_constant() => Ok(b.clone().scaled(a.constant)),
                    ("*", [a, b]) if b.is_constant() => Ok(a.clone().scaled(b.constant)),
                    ("*", _) => Err(semantic_at(s, "only products with a constant are linear")),
                    _ => Err(semantic_at(s, format!("unsupported term operator {op:?}"))),
                }
            }
        }
    }

    fn formula(&self, s: &Sexp) -> Result<Formula, PropertyError> {
        let Sexp::List(items, line, column) = s else {
            return Err(semantic_at(s, "expected a formula in parentheses"));
        };
        let Some((Sexp::Atom(op, ..), args)) = items.split_first() else {
            return Err(semantic_at(s, "expected a formula operator"));
        };
        match op.as_str() {
            "and" | "or" => {
                let parts = args
                    .iter()
                    .map(|a| self.formula(a))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if op == "and" {
                    Formula::And(parts)
                } else {
                    Formula::Or(parts)
                })
            }
            "<=" | ">=" | "<" | ">" | "=" => {
                let [a, b] = args else {
                    return Err(semantic_at(s, format!("{op} takes exactly two arguments")));
                };
                let (a, b) = (self.term(a)?, self.term(b)?);
                let mk = |form: LinearForm, strict| {
                    Formula::Atom(Atom {
                        form,
                        strict,
                        line: *line,
                        column: *column,
                    })
                };
                let le = a.clone().plus(&b.clone().scaled(-1.0)); // a - b
                let ge = b.plus(&a.scaled(-1.0)); // b - a
                Ok(match op.as_str() {
                    "<=" => mk(le, false),
                    "<" => mk(le, true),
                    ">=" => mk(ge, false),
                    ">" => mk(ge, true),
                    _ => Formula::And(vec![mk(le, false), mk(ge, false)]),
                })
            }
            other => Err(semantic_at(
                s,
                format!(
                    "unsupported formula operator {other:?} (expected and, or, <=, >=, <, >, =)"
                ),
            )),
        }
    }
}

/// Parse VNN-LIB text into a [`Property`].
pub fn parse_vnnlib(text: &str) -> Result<Property, PropertyError> {
    if text.len() > MAX_PROPERTY_BYTES {
        return Err(PropertyError::Invalid(format!(
            "property text is over {MAX_PROPERTY_BYTES} bytes"
        )));
    }
    let mut reader = Reader {
        vars: HashMap::new(),
    };
    let (mut n_in, mut n_out) = (0usize, 0usize);
    let mut asserts = Vec::new();
    for s in read_sexps(text)? {
        let Sexp::List(items, ..) = &s else {
            return Err(semantic_at(&s, "expected a command in parentheses"));
        };
        match items.as_slice() {
            [
                Sexp::Atom(cmd, ..),
                Sexp::Atom(name, ..),
                Sexp::Atom(sort, ..),
            ] if cmd == "declare-const" => {
                if sort != "Real" {
                    return Err(semantic_at(
                        &items[2],
                        format!("sort {sort:?} is not supported (expected Real)"),
                    ));
                }
                let parsed = name
                    .strip_prefix("X_")
                    .map(|r| (true, r))
                    .or_else(|| name.strip_prefix("Y_").map(|r| (false, r)));
                let Some((is_x, idx)) =
                    parsed.and_then(|(k, r)| r.parse::<usize>().ok().map(|i| (k, i)))
                else {
                    return Err(semantic_at(
                        &items[1],
                        format!("variable {name:?} must be named X_<n> or Y_<n>"),
                    ));
                };
                if idx > crate::network::MAX_LAYER_WIDTH {
                    return Err(semantic_at(&items[1], "variable index too large"));
                }
                let v = if is_x { Var::X(idx) } else { Var::Y(idx) };
                if reader.vars.insert(name.clone(), v).is_some() {
                    return Err(semantic_at(&items[1], format!("{name} declared twice")));
                }
                if is_x {
                    n_in = n_in.max(idx + 1);
                } else {
                    n_out = n_out.max(idx + 1);
                }
            }
            [Sexp::Atom(cmd, ..), f] if cmd == "assert" => asserts.push(reader.formula(f)?),
            [Sexp::Atom(cmd, ..), ..] => {
                return Err(semantic_at(
                    &s,
                    format!("unsupported or malformed command {cmd:?}"),
                ));
            }
            _ => return Err(semantic_at(&s, "expected a command")),
        }
    }
    let declared_x = reader
        .vars
        .values()
        .filter(|v| matches!(v, Var::X(_)))
        .count();
    let declared_y = reader
        .vars
        .values()
        .filter(|v| matches!(v, Var::Y(_)))
        .count();
    if declared_x != n_in || declared_y != n_out {
        return Err(PropertyError::Invalid(
            "variables X_i / Y_i must be declared without gaps from index 0".into(),
        ));
    }
    if n_in == 0 {
        return Err(PropertyError::Invalid("no input variables declared".into()));
    }
    if asserts.is_empty() {
        return Err(PropertyError::Invalid("no assertions".into()));
    }
    Property::from_formula(&Formula::And(asserts), n_in, n_out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEAD: &str = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n";

    #[test]
    fn simple_box_and_output_conjunction() {
        let text = format!(
            "{HEAD}(assert (<= X_0 1))\n(assert (>= X_0 -1))\n(assert (and (<= X_1 0.5) (>= X_1 0)))\n(assert (<= Y_0 Y_1))\n"
        );
        let p = parse_vnnlib(&text).unwrap();
        assert_eq!(p.cases.len(), 1);
        let c = &p.cases[0];
        assert_eq!(
            (c.lower.clone(), c.upper.clone()),
            (vec![-1.0, 0.0], vec![1.0, 0.5])
        );
        assert_eq!(c.outputs[0].coef, vec![1.0, -1.0]);
        assert_eq!(c.outputs[0].rhs, 0.0);
        assert!(p.violated_by(&[0.0, 0.1], &[1.0, 2.0]));
        assert!(!p.violated_by(&[0.0, 0.1], &[3.0, 2.0]));
        assert!(!p.violated_by(&[2.0, 0.1], &[1.0, 2.0]));
    }

    #[test]
    fn disjunctions_expand_to_cases() {
        let text = format!(
            "{HEAD}(assert (or (and (<= X_0 1) (>= X_0 0) (<= X_1 1) (>= X_1 0)) (and (<= X_0 0) (>= X_0 -1) (<= X_1 1) (>= X_1 0))))\n(assert (or (and (<= Y_0 0)) (and (>= Y_1 (+ Y_0 (* 2 X_0 0.5))))))\n"
        );
        // The last disjunct mixes X and Y: declined with its position.
        match parse_vnnlib(&text) {
            Err(PropertyError::Semantic { line, .. }) => assert_eq!(line, 6),
            other => panic!("expected semantic error, got {other:?}"),
        }
        let ok = text.replace("(* 2 X_0 0.5)", "(* 2 1.5)");
        let ok = ok.replace("(* 2 1.5)", "3");
        let p = parse_vnnlib(&ok).unwrap();
        assert_eq!(p.cases.len(), 4);
        assert_eq!(p.cases[3].outputs[0].coef, vec![1.0, -1.0]);
        assert_eq!(p.cases[3].outputs[0].rhs, -3.0);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let cases = [
            (format!("{HEAD}(assert (<= X_0 1)"), 5, 1),
            (format!("{HEAD}(assert (<= X_7 1))"), 5, 13),
            (format!("{HEAD}(assert (foo X_0 1))"), 5, 9),
            (format!("{HEAD})"), 5, 1),
            ("(declare-const Z Real)".to_string(), 1, 16),
        ];
        for (text, l, c) in cases {
            match parse_vnnlib(&text) {
                Err(
                    PropertyError::Syntax { line, column, .. }
                    | PropertyError::Semantic { line, column, .. },
                ) => {
                    assert_eq!((line, column), (l, c), "{text}")
                }
                other => panic!("expected positioned error for {text:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn unbounded_and_empty_boxes_are_errors() {
        assert!(
            parse_vnnlib(&format!(
                "{HEAD}(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= Y_0 0))"
            ))
            .is_err()
        );
        let empty = format!(
            "{HEAD}(assert (<= X_0 0))(assert (>= X_0 1))(assert (<= X_1 0))(assert (>= X_1 0))"
        );
        assert!(
            matches!(parse_vnnlib(&empty), Err(PropertyError::Invalid(m)) if m.contains("empty"))
        );
    }

    #[test]
    fn scaled_bounds_round_outward() {
        let text = format!(
            "{HEAD}(assert (<= (* 3 X_0) 1))(assert (>= (* 3 X_0) -1))(assert (<= X_1 0))(assert (>= X_1 0))"
        );
        let p = parse_vnnlib(&text).unwrap();
        assert!(p.cases[0].upper[0] * 3.0 >= 1.0);
        assert!(p.cases[0].lower[0] * 3.0 <= -1.0);
    }
}
