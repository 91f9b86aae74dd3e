//! Lexer and recursive-descent parser for the rule language, with line/column errors.

use serde_json::Value;

use super::{CmpOp, Expr, MAX_RULE_DEPTH, MAX_RULE_LEN, Mode, Root, Rule, Step};
use crate::error::Pos;
use crate::labels::LabelMask;
use crate::program::ToolId;

/// Name resolution the parser needs from the compiler.
pub(crate) struct Names<'a> {
    /// Tool name -> id.
    pub tool: &'a dyn Fn(&str) -> Option<ToolId>,
    /// Label name -> bit.
    pub label: &'a dyn Fn(&str) -> Option<LabelMask>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
    End,
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    line: usize,
    col: usize,
}

type PResult<T> = Result<T, (Pos, String)>;

impl<'a> Lexer<'a> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.src[self.i..].chars().next()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<char> {
        self.src[self.i..].chars().next()
    }

    fn tokens(mut self) -> PResult<Vec<(Pos, Tok)>> {
        let mut out = Vec::new();
        loop {
            while self.peek().is_some_and(char::is_whitespace) {
                self.bump();
            }
            if self.peek() == Some('#') {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
                continue;
            }
            let pos = self.pos();
            let Some(c) = self.peek() else {
                out.push((pos, Tok::End));
                return Ok(out);
            };
            let tok = if c.is_ascii_alphabetic() || c == '_' {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.bump();
                }
                Tok::Ident(self.src[start..self.i].to_string())
            } else if c.is_ascii_digit() {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.bump();
                }
                let text = &self.src[start..self.i];
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => Tok::Num(n),
                    _ => return Err((pos, format!("invalid number `{text}`"))),
                }
            } else if c == '"' {
                self.bump();
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None => return Err((pos, "unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(c @ ('"' | '\\')) => s.push(c),
                            _ => {
                                return Err((
                                    self.pos(),
                                    "unknown escape (use \\\" \\\\ \\n \\t)".into(),
                                ));
                            }
                        },
                        Some(c) => s.push(c),
                    }
                }
                Tok::Str(s)
            } else {
                const SYMS: [&str; 18] = [
                    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",",
                    ".", "=", "&", "|",
                ];
                let rest = &self.src[self.i..];
                let Some(sym) = SYMS.iter().find(|s| rest.starts_with(**s)) else {
                    return Err((pos, format!("unexpected character `{c}`")));
                };
                if matches!(*sym, "=" | "&" | "|") {
                    return Err((
                        pos,
                        format!("unexpected `{sym}` (did you mean `{sym}{sym}`?)"),
                    ));
                }
                for _ in 0..sym.len() {
                    self.bump();
                }
                Tok::Sym(sym)
            };
            out.push((pos, tok));
        }
    }
}

struct Parser<'n> {
    toks: Vec<(Pos, Tok)>,
    at: usize,
    depth: usize,
    names: &'n Names<'n>,
}

/// Parses and resolves a rule; errors carry the line and column inside `text`.
pub(crate) fn parse(text: &str, names: &Names<'_>) -> PResult<Rule> {
    if text.len() > MAX_RULE_LEN {
        return Err((
            Pos { line: 1, column: 1 },
            format!("rule longer than {MAX_RULE_LEN} bytes"),
        ));
    }
    let toks = Lexer {
        src: text,
        i: 0,
        line: 1,
        col: 1,
    }
    .tokens()?;
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
        names,
    };
    let mode = match p.next() {
        (_, Tok::Ident(w)) if w == "deny" => {
            p.expect_ident("when")?;
            Mode::DenyWhen
        }
        (_, Tok::Ident(w)) if w == "require" => Mode::Require,
        (pos, _) => return Err((pos, "a rule starts with `deny when` or `require`".into())),
    };
    let expr = p.expr()?;
    match p.next() {
        (_, Tok::End) => Ok(Rule { mode, expr }),
        (pos, t) => Err((
            pos,
            format!("unexpected {} after the expression", describe(&t)),
        )),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "end of rule".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.at.min(self.toks.len() - 1)].1
    }

    fn next(&mut self) -> (Pos, Tok) {
        let t = self.toks[self.at.min(self.toks.len() - 1)].clone();
        self.at += 1;
        t
    }

    fn pos(&self) -> Pos {
        self.toks[self.at.min(self.toks.len() - 1)].0
    }

    fn eat(&mut self, sym: &'static str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &'static str) -> PResult<()> {
        match self.next() {
            (_, Tok::Sym(s)) if s == sym => Ok(()),
            (pos, t) => Err((pos, format!("expected `{sym}`, found {}", describe(&t)))),
        }
    }

    fn expect_ident(&mut self, word: &str) -> PResult<()> {
        match self.next() {
            (_, Tok::Ident(w)) if w == word => Ok(()),
            (pos, t) => Err((pos, format!("expected `{word}`, found {}", describe(&t)))),
        }
    }

    fn nest(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_RULE_DEPTH {
            return Err((
                self.pos(),
                format!("expression nested deeper than {MAX_RULE_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.nest()?;
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> PResult<Expr> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> PResult<Expr> {
        if self.eat("!") {
            self.nest()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        let left = self.term()?;
        let op = match self.peek() {
            Tok::Sym("==") => CmpOp::Eq,
            Tok::Sym("!=") => CmpOp::Ne,
            Tok::Sym("<") => CmpOp::Lt,
            Tok::Sym("<=") => CmpOp::Le,
            Tok::Sym(">") => CmpOp::Gt,
            Tok::Sym(">=") => CmpOp::Ge,
            Tok::Ident(w) if w == "in" => CmpOp::In,
            _ => return Ok(left),
        };
        self.at += 1;
        let right = self.term()?;
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn term(&mut self) -> PResult<Expr> {
        let (pos, tok) = self.next();
        match tok {
            Tok::Num(n) => Ok(Expr::Lit(
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
            )),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Sym("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Sym("[") => {
                self.nest()?;
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.term()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Tok::Ident(w) => match w.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                "tool" | "args" | "context" | "tokens" | "cost_usd" => self.path(&w),
                _ if *self.peek() == Tok::Sym("(") => self.call(pos, &w),
                _ => Err((
                    pos,
                    format!(
                        "unknown name `{w}` (paths start with tool, args, context, tokens or cost_usd)"
                    ),
                )),
            },
            t => Err((pos, format!("expected a value, found {}", describe(&t)))),
        }
    }

    fn path(&mut self, root: &str) -> PResult<Expr> {
        let root = match root {
            "tool" => Root::Tool,
            "args" => Root::Args,
            "context" => Root::Context,
            "tokens" => Root::Tokens,
            _ => Root::CostUsd,
        };
        let mut steps = Vec::new();
        loop {
            if self.eat(".") {
                match self.next() {
                    (_, Tok::Ident(k)) => steps.push(Step::Key(k)),
                    (pos, t) => {
                        return Err((
                            pos,
                            format!("expected a field name, found {}", describe(&t)),
                        ));
                    }
                }
            } else if self.eat("[") {
                match self.next() {
                    (_, Tok::Str(k)) => steps.push(Step::Key(k)),
                    (pos, Tok::Num(n)) => {
                        if n.fract() != 0.0 || !(0.0..=1e9).contains(&n) {
                            return Err((pos, "index must be a non-negative integer".into()));
                        }
                        steps.push(Step::Index(n as usize));
                    }
                    (pos, t) => {
                        return Err((
                            pos,
                            format!("expected an index or key, found {}", describe(&t)),
                        ));
                    }
                }
                self.expect("]")?;
            } else {
                break;
            }
        }
        if matches!(root, Root::Tool | Root::Tokens | Root::CostUsd) && !steps.is_empty() {
            return Err((
                self.pos(),
                "`tool`, `tokens` and `cost_usd` have no fields".into(),
            ));
        }
        Ok(Expr::Path(root, steps))
    }

    fn call(&mut self, pos: Pos, name: &str) -> PResult<Expr> {
        self.expect("(")?;
        self.nest()?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                let at = self.pos();
                args.push((at, self.expr()?));
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        self.depth -= 1;
        let arity = |n: usize| -> PResult<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err((
                    pos,
                    format!("`{name}` takes {n} argument(s), got {}", args.len()),
                ))
            }
        };
        let literal = |i: usize, args: &[(Pos, Expr)]| -> PResult<String> {
            match &args[i] {
                (_, Expr::Lit(Value::String(s))) => Ok(s.clone()),
                (p, _) => Err((
                    *p,
                    format!("argument {} of `{name}` must be a string literal", i + 1),
                )),
            }
        };
        match name {
            "calls" if args.is_empty() => Ok(Expr::Calls(None)),
            "calls" => {
                arity(1)?;
                let t = literal(0, &args)?;
                match (self.names.tool)(&t) {
                    Some(id) => Ok(Expr::Calls(Some((t, id)))),
                    None => Err((args[0].0, format!("unknown capability `{t}`"))),
                }
            }
            "has_label" => {
                arity(1)?;
                let l = literal(0, &args)?;
                match (self.names.label)(&l) {
                    Some(mask) => Ok(Expr::HasLabel(l, mask)),
                    None => Err((
                        args[0].0,
                        format!("label `{l}` is not an output label of any capability"),
                    )),
                }
            }
            "len" => {
                arity(1)?;
                Ok(Expr::Len(Box::new(args.remove(0).1)))
            }
            "matches" | "starts_with" | "ends_with" => {
                arity(2)?;
                let s = literal(1, &args)?;
                let subject = Box::new(args.remove(0).1);
                match name {
                    "matches" => {
                        let re = regex::RegexBuilder::new(&s)
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| (args[0].0, format!("invalid regex: {e}")))?;
                        Ok(Expr::Matches(subject, s, re))
                    }
                    "starts_with" => Ok(Expr::StartsWith(subject, s)),
                    _ => Ok(Expr::EndsWith(subject, s)),
                }
            }
            _ => Err((
                pos,
                format!(
                    "unknown function `{name}` (known: calls, len, has_label, matches, starts_with, ends_with)"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (
        impl Fn(&str) -> Option<ToolId>,
        impl Fn(&str) -> Option<LabelMask>,
    ) {
        (
            |t: &str| (t == "issue_refund").then_some(0),
            |l: &str| (l == "untrusted").then_some(1),
        )
    }

    fn p(text: &str) -> PResult<Rule> {
        let (t, l) = names();
        parse(
            text,
            &Names {
                tool: &t,
                label: &l,
            },
        )
    }

    #[test]
    fn parses_and_prints_back() {
        let r = p(
            r#"deny when tool == "issue_refund" && args.amount > 50 && calls("issue_refund") >= 3"#,
        )
        .expect("parses");
        assert_eq!(
            r.to_string(),
            r#"deny when ((tool == "issue_refund" && args.amount > 50.0) && calls("issue_refund") >= 3.0)"#
        );
        let r =
            p(r#"require !has_label("untrusted") || args["to"] in ["a", "b"]"#).expect("parses");
        assert_eq!(
            r.to_string(),
            r#"require (!(has_label("untrusted")) || args.to in ["a", "b"])"#
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = p("deny when\n  args.x = 3").expect_err("single `=` is an error");
        assert_eq!(
            e.0,
            Pos {
                line: 2,
                column: 10
            }
        );
        assert!(e.1.contains("=="), "{}", e.1);
        let e = p(r#"deny when calls("nope") > 1"#).expect_err("unknown tool");
        assert_eq!(
            e.0,
            Pos {
                line: 1,
                column: 17
            }
        );
        let e = p("allow when true").expect_err("bad mode");
        assert_eq!(e.0, Pos { line: 1, column: 1 });
        let e = p("deny when frob(1)").expect_err("unknown fn");
        assert!(e.1.contains("unknown function"));
        let e = p(r#"deny when has_label("pii")"#).expect_err("unknown label");
        assert!(e.1.contains("pii"));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let text = format!("deny when {}true{}", "(".repeat(500), ")".repeat(500));
        let e = p(&text).expect_err("too deep");
        assert!(e.1.contains("nested"));
        let text = format!("deny when {}true", "!".repeat(500));
        assert!(p(&text).is_err());
    }
}
