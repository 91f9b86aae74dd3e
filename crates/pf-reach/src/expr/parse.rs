//! Lexer and recursive-descent parser of the expression language (also used by the predicate
//! and reset parsers): precedence `+ -` < `* /` < unary minus < `^` (right-associative).

use super::{ExprError, Func, Node, Sym, err};

/// A token with its byte offset.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    Ident(String),
    Sym(&'static str),
    End,
}

pub(crate) fn lex(s: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let txt = &s[start..i];
            match txt.parse::<f64>() {
                Ok(v) => out.push((Tok::Num(v), start)),
                Err(_) => return err(format!("bad number `{txt}`"), start),
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(s[start..i].to_string()), start));
            continue;
        }
        let two = if i + 1 < b.len() { &s[i..i + 2] } else { "" };
        let sym2 = ["<=", ">=", "==", "!=", "**"]
            .into_iter()
            .find(|t| *t == two);
        if let Some(t) = sym2 {
            out.push((Tok::Sym(if t == "**" { "^" } else { t }), start));
            i += 2;
            continue;
        }
        let sym = match c {
            b'+' => "+",
            b'-' => "-",
            b'*' => "*",
            b'/' => "/",
            b'^' => "^",
            b'(' => "(",
            b')' => ")",
            b',' => ",",
            b'<' => "<",
            b'>' => ">",
            b'=' => "=",
            b'[' => "[",
            b']' => "]",
            b';' => ";",
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return err(format!("unexpected character `{ch}`"), start);
            }
        };
        out.push((Tok::Sym(sym), start));
        i += 1;
    }
    out.push((Tok::End, s.len()));
    Ok(out)
}

// ---------------------------------------------------------------- parser

/// Recursive-descent parser over a token list, shared with the predicate parser.
pub(crate) struct Parser<'a> {
    pub(crate) toks: Vec<(Tok, usize)>,
    pub(crate) pos: usize,
    pub(crate) resolve: &'a dyn Fn(&str) -> Option<Sym>,
}

const MAX_DEPTH: usize = 200;

impl<'a> Parser<'a> {
    pub(crate) fn new(
        src: &str,
        resolve: &'a dyn Fn(&str) -> Option<Sym>,
    ) -> Result<Self, ExprError> {
        Ok(Parser {
            toks: lex(src)?,
            pos: 0,
            resolve,
        })
    }
    pub(crate) fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }
    pub(crate) fn col(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }
    pub(crate) fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    pub(crate) fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }
    pub(crate) fn expect(&mut self, s: &str) -> Result<(), ExprError> {
        if self.is_sym(s) {
            self.bump();
            Ok(())
        } else {
            err(
                format!("expected `{s}`, found {}", describe(self.peek())),
                self.col(),
            )
        }
    }
    pub(crate) fn expr(&mut self, depth: usize) -> Result<Node, ExprError> {
        if depth > MAX_DEPTH {
            return err("expression nested too deeply", self.col());
        }
        let mut lhs = self.term(depth + 1)?;
        loop {
            if self.is_sym("+") {
                self.bump();
                lhs = Node::Add(Box::new(lhs), Box::new(self.term(depth + 1)?));
            } else if self.is_sym("-") {
                self.bump();
                lhs = Node::Sub(Box::new(lhs), Box::new(self.term(depth + 1)?));
            } else {
                return Ok(lhs);
            }
        }
    }
    fn term(&mut self, depth: usize) -> Result<Node, ExprError> {
        let mut lhs = self.unary(depth + 1)?;
        loop {
            if self.is_sym("*") {
                self.bump();
                lhs = Node::Mul(Box::new(lhs), Box::new(self.unary(depth + 1)?));
            } else if self.is_sym("/") {
                self.bump();
                lhs = Node::Div(Box::new(lhs), Box::new(self.unary(depth + 1)?));
            } else {
                return Ok(lhs);
            }
        }
    }
    fn unary(&mut self, depth: usize) -> Result<Node, ExprError> {
        if depth > MAX_DEPTH {
            return err("expression nested too deeply", self.col());
        }
        if self.is_sym("-") {
            self.bump();
            return Ok(Node::Neg(Box::new(self.unary(depth + 1)?)));
        }
        if self.is_sym("+") {
            self.bump();
            return self.unary(depth + 1);
        }
        let base = self.atom(depth + 1)?;
        if self.is_sym("^") {
            self.bump();
            let e = self.unary(depth + 1)?;
            return Ok(Node::Pow(Box::new(base), Box::new(e)));
        }
        Ok(base)
    }
    fn atom(&mut self, depth: usize) -> Result<Node, ExprError> {
        let col = self.col();
        match self.bump() {
            Tok::Num(v) => Ok(Node::Const(v)),
            Tok::Sym("(") => {
                let e = self.expr(depth + 1)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if self.is_sym("(") {
                    let Some((f, arity)) = Func::by_name(&name) else {
                        return err(format!("unknown function `{name}`"), col);
                    };
                    self.bump();
                    let mut args = vec![self.expr(depth + 1)?];
                    while self.is_sym(",") {
                        self.bump();
                        args.push(self.expr(depth + 1)?);
                    }
                    self.expect(")")?;
                    if args.len() != arity {
                        return err(
                            format!("`{name}` takes {arity} argument(s), got {}", args.len()),
                            col,
                        );
                    }
                    return Ok(Node::Call(f, args));
                }
                match (self.resolve)(&name) {
                    Some(Sym::Var(i)) => Ok(Node::Var(i)),
                    Some(Sym::Time) => Ok(Node::Time),
                    Some(Sym::Const(v)) => Ok(Node::Const(v)),
                    None => match name.as_str() {
                        "pi" => Ok(Node::Const(std::f64::consts::PI)),
                        _ => err(format!("unknown variable `{name}`"), col),
                    },
                }
            }
            t => err(
                format!("expected a number, variable or `(`, found {}", describe(&t)),
                col,
            ),
        }
    }
}

pub(crate) fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(v) => format!("number {v}"),
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "end of input".into(),
    }
}
