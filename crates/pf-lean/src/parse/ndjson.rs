//! NDJSON export reader (lean4export format 3.0.0 and 3.1.0, `format_ndjson.md`).
//!
//! 3.0.0 differs from 3.1.0 in two places: declarations are wrapped in one-element arrays, and
//! an inductive block uses the keys `inductiveVals`/`constructorVals`/`recursorVals`.

use num_bigint::BigUint;
use serde_json::{Map, Value};

use super::{Export, Format, MAX_LINE_BYTES, Tables};
use crate::env::{ConstKind, Constant, Declaration, Hint, InductiveDecl, QuotKind, RecRule};
use crate::error::ParseError;
use crate::store::{ExprNode, LevelNode, NameNode, Store};

struct Reader {
    store: Store,
    t: Tables,
    decls: Vec<(usize, Declaration)>,
}

/// Parses an NDJSON export.
pub fn parse(input: &str) -> Result<Export, ParseError> {
    let store = Store::new();
    let t = Tables::new(&store);
    let mut r = Reader {
        store,
        t,
        decls: Vec::new(),
    };
    let mut version = None;
    for (i, raw) in input.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if raw.len() > MAX_LINE_BYTES {
            return Err(ParseError::new(line, "line too long"));
        }
        let v: Value = serde_json::from_str(raw).map_err(|e| {
            ParseError::new(line, format!("invalid JSON at column {}: {e}", e.column()))
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| ParseError::new(line, "expected a JSON object"))?;
        if let Some(meta) = obj.get("meta") {
            if version.is_some() {
                return Err(ParseError::new(line, "second `meta` object"));
            }
            let fv = meta
                .get("format")
                .and_then(|f| f.get("version"))
                .and_then(Value::as_str)
                .ok_or_else(|| ParseError::new(line, "expected meta.format.version (a string)"))?;
            if !fv.starts_with("3.") {
                return Err(ParseError::unsupported(
                    line,
                    format!("unsupported NDJSON format version {fv} (expected 3.x)"),
                ));
            }
            version = Some(fv.to_string());
            continue;
        }
        if version.is_none() {
            return Err(ParseError::new(
                line,
                "expected the `meta` object on the first line",
            ));
        }
        r.line(line, obj)?;
        if r.store.overflowed() {
            return Err(ParseError::new(line, "expression limit exceeded"));
        }
    }
    let version =
        version.ok_or_else(|| ParseError::new(1, "empty export: expected a `meta` object"))?;
    Ok(Export {
        store: r.store,
        decls: r.decls,
        format: Format::Ndjson(version),
    })
}

fn field<'a>(line: usize, o: &'a Map<String, Value>, k: &str) -> Result<&'a Value, ParseError> {
    o.get(k)
        .ok_or_else(|| ParseError::new(line, format!("missing field `{k}`")))
}

fn uint(line: usize, o: &Map<String, Value>, k: &str) -> Result<u64, ParseError> {
    field(line, o, k)?.as_u64().ok_or_else(|| {
        ParseError::new(
            line,
            format!("field `{k}`: expected a non-negative integer"),
        )
    })
}

fn u32f(line: usize, o: &Map<String, Value>, k: &str) -> Result<u32, ParseError> {
    let v = uint(line, o, k)?;
    u32::try_from(v).map_err(|_| ParseError::new(line, format!("field `{k}`: {v} is too large")))
}

fn boolean(line: usize, o: &Map<String, Value>, k: &str) -> Result<bool, ParseError> {
    field(line, o, k)?
        .as_bool()
        .ok_or_else(|| ParseError::new(line, format!("field `{k}`: expected a boolean")))
}

fn string<'a>(line: usize, o: &'a Map<String, Value>, k: &str) -> Result<&'a str, ParseError> {
    field(line, o, k)?
        .as_str()
        .ok_or_else(|| ParseError::new(line, format!("field `{k}`: expected a string")))
}

fn object<'a>(line: usize, v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    v.as_object()
        .ok_or_else(|| ParseError::new(line, format!("{what}: expected an object")))
}

fn uints(line: usize, o: &Map<String, Value>, k: &str) -> Result<Vec<u64>, ParseError> {
    let arr = field(line, o, k)?.as_array().ok_or_else(|| {
        ParseError::new(line, format!("field `{k}`: expected an array of integers"))
    })?;
    arr.iter()
        .map(|x| {
            x.as_u64()
                .ok_or_else(|| ParseError::new(line, format!("field `{k}`: expected integers")))
        })
        .collect()
}

fn pair(line: usize, v: &Value, k: &str) -> Result<(u64, u64), ParseError> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([a, b]) => match (a.as_u64(), b.as_u64()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(ParseError::new(
                line,
                format!("`{k}`: expected two level indices"),
            )),
        },
        _ => Err(ParseError::new(
            line,
            format!("`{k}`: expected an array of two level indices"),
        )),
    }
}

/// 3.0.0 wraps declarations in a one-element array.
fn unwrap_decl<'a>(
    line: usize,
    v: &'a Value,
    k: &str,
) -> Result<&'a Map<String, Value>, ParseError> {
    match v {
        Value::Array(a) if a.len() == 1 => object(line, &a[0], k),
        Value::Array(_) => Err(ParseError::new(
            line,
            format!("`{k}`: expected exactly one declaration"),
        )),
        _ => object(line, v, k),
    }
}

impl Reader {
    fn line(&mut self, line: usize, o: &Map<String, Value>) -> Result<(), ParseError> {
        if let Some(i) = o.get("in") {
            let i = i
                .as_u64()
                .ok_or_else(|| ParseError::new(line, "`in`: expected an integer"))?;
            if i == 0 {
                return Err(ParseError::new(
                    line,
                    "name index 0 is reserved for the anonymous name",
                ));
            }
            let node = if let Some(s) = o.get("str") {
                let s = object(line, s, "str")?;
                let pre = self.t.name(line, uint(line, s, "pre")?)?;
                NameNode::Str(pre, string(line, s, "str")?.into())
            } else if let Some(s) = o.get("num") {
                let s = object(line, s, "num")?;
                let pre = self.t.name(line, uint(line, s, "pre")?)?;
                NameNode::Num(pre, uint(line, s, "i")?)
            } else {
                return Err(ParseError::new(line, "name: expected `str` or `num`"));
            };
            let id = self.store.name(node);
            return self.t.def_name(line, i, id);
        }
        if let Some(i) = o.get("il") {
            let i = i
                .as_u64()
                .ok_or_else(|| ParseError::new(line, "`il`: expected an integer"))?;
            if i == 0 {
                return Err(ParseError::new(
                    line,
                    "level index 0 is reserved for level zero",
                ));
            }
            let node = if let Some(v) = o.get("succ") {
                let a = v
                    .as_u64()
                    .ok_or_else(|| ParseError::new(line, "`succ`: expected a level index"))?;
                LevelNode::Succ(self.t.level(line, a)?)
            } else if let Some(v) = o.get("max") {
                let (a, b) = pair(line, v, "max")?;
                LevelNode::Max(self.t.level(line, a)?, self.t.level(line, b)?)
            } else if let Some(v) = o.get("imax") {
                let (a, b) = pair(line, v, "imax")?;
                LevelNode::IMax(self.t.level(line, a)?, self.t.level(line, b)?)
            } else if let Some(v) = o.get("param") {
                let a = v
                    .as_u64()
                    .ok_or_else(|| ParseError::new(line, "`param`: expected a name index"))?;
                LevelNode::Param(self.t.name(line, a)?)
            } else {
                return Err(ParseError::new(
                    line,
                    "level: expected `succ`, `max`, `imax` or `param`",
                ));
            };
            let id = self.store.level(node);
            return self.t.def_level(line, i, id);
        }
        if let Some(i) = o.get("ie") {
            let i = i
                .as_u64()
                .ok_or_else(|| ParseError::new(line, "`ie`: expected an integer"))?;
            let id = self.expr(line, o)?;
            return self.t.def_expr(line, i, id);
        }
        self.decl(line, o)
    }

    fn expr(
        &mut self,
        line: usize,
        o: &Map<String, Value>,
    ) -> Result<crate::store::ExprId, ParseError> {
        let t = &self.t;
        let node = if let Some(v) = o.get("bvar") {
            let n = v
                .as_u64()
                .ok_or_else(|| ParseError::new(line, "`bvar`: expected an integer"))?;
            ExprNode::BVar(
                u32::try_from(n).map_err(|_| ParseError::new(line, "`bvar`: index too large"))?,
            )
        } else if let Some(v) = o.get("sort") {
            let n = v
                .as_u64()
                .ok_or_else(|| ParseError::new(line, "`sort`: expected a level index"))?;
            ExprNode::Sort(t.level(line, n)?)
        } else if let Some(v) = o.get("const") {
            let c = object(line, v, "const")?;
            let name = t.name(line, uint(line, c, "name")?)?;
            let us = uints(line, c, "us")?
                .into_iter()
                .map(|u| t.level(line, u))
                .collect::<Result<Vec<_>, _>>()?;
            let ls = self.store.levels_of(&us);
            ExprNode::Const(name, ls)
        } else if let Some(v) = o.get("app") {
            let c = object(line, v, "app")?;
            ExprNode::App(
                t.expr(line, uint(line, c, "fn")?)?,
                t.expr(line, uint(line, c, "arg")?)?,
            )
        } else if let Some(v) = o.get("lam").or_else(|| o.get("forallE")) {
            let c = object(line, v, "binder")?;
            t.name(line, uint(line, c, "name")?)?;
            let bi = string(line, c, "binderInfo")?;
            if !matches!(
                bi,
                "default" | "implicit" | "strictImplicit" | "instImplicit"
            ) {
                return Err(ParseError::new(line, format!("unknown binderInfo `{bi}`")));
            }
            let ty = t.expr(line, uint(line, c, "type")?)?;
            let body = t.expr(line, uint(line, c, "body")?)?;
            if o.contains_key("lam") {
                ExprNode::Lam(ty, body)
            } else {
                ExprNode::Pi(ty, body)
            }
        } else if let Some(v) = o.get("letE") {
            let c = object(line, v, "letE")?;
            t.name(line, uint(line, c, "name")?)?;
            ExprNode::Let(
                t.expr(line, uint(line, c, "type")?)?,
                t.expr(line, uint(line, c, "value")?)?,
                t.expr(line, uint(line, c, "body")?)?,
            )
        } else if let Some(v) = o.get("proj") {
            let c = object(line, v, "proj")?;
            ExprNode::Proj(
                t.name(line, uint(line, c, "typeName")?)?,
                u32f(line, c, "idx")?,
                t.expr(line, uint(line, c, "struct")?)?,
            )
        } else if let Some(v) = o.get("natVal") {
            let s = v
                .as_str()
                .ok_or_else(|| ParseError::new(line, "`natVal`: expected a decimal string"))?;
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 1_000_000 {
                return Err(ParseError::new(
                    line,
                    "`natVal`: expected a decimal string of digits",
                ));
            }
            let n = s
                .parse::<BigUint>()
                .map_err(|e| ParseError::new(line, format!("`natVal`: {e}")))?;
            return Ok(self.store.nat_lit(n));
        } else if let Some(v) = o.get("strVal") {
            let s = v
                .as_str()
                .ok_or_else(|| ParseError::new(line, "`strVal`: expected a string"))?;
            return Ok(self.store.str_lit(s.to_string()));
        } else if let Some(v) = o.get("mdata") {
            // Metadata is transparent to the kernel.
            let c = object(line, v, "mdata")?;
            return t.expr(line, uint(line, c, "expr")?);
        } else {
            return Err(ParseError::new(line, "expression: unknown kind"));
        };
        Ok(self.store.expr(node))
    }

    fn header(
        &self,
        line: usize,
        o: &Map<String, Value>,
    ) -> Result<
        (
            crate::store::NameId,
            Vec<crate::store::NameId>,
            crate::store::ExprId,
        ),
        ParseError,
    > {
        let name = self.t.name(line, uint(line, o, "name")?)?;
        let lps = uints(line, o, "levelParams")?
            .into_iter()
            .map(|n| self.t.name(line, n))
            .collect::<Result<Vec<_>, _>>()?;
        let ty = self.t.expr(line, uint(line, o, "type")?)?;
        Ok((name, lps, ty))
    }

    fn names(
        &self,
        line: usize,
        o: &Map<String, Value>,
        k: &str,
    ) -> Result<Vec<crate::store::NameId>, ParseError> {
        uints(line, o, k)?
            .into_iter()
            .map(|n| self.t.name(line, n))
            .collect()
    }

    fn decl(&mut self, line: usize, o: &Map<String, Value>) -> Result<(), ParseError> {
        let (key, v) = match o.iter().next() {
            Some(kv) if o.len() == 1 => kv,
            _ => {
                return Err(ParseError::new(
                    line,
                    "expected a name, level, expression or declaration object",
                ));
            }
        };
        let d = match key.as_str() {
            "axiom" => {
                let c = unwrap_decl(line, v, key)?;
                let (name, lparams, ty) = self.header(line, c)?;
                let is_unsafe = boolean(line, c, "isUnsafe")?;
                Declaration::Single(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Axiom,
                    is_unsafe,
                })
            }
            "def" | "defn" => {
                let c = unwrap_decl(line, v, key)?;
                let (name, lparams, ty) = self.header(line, c)?;
                let value = self.t.expr(line, uint(line, c, "value")?)?;
                let hint = match field(line, c, "hints")? {
                    Value::String(s) if s == "opaque" => Hint::Opaque,
                    Value::String(s) if s == "abbrev" => Hint::Abbrev,
                    Value::Object(h) => Hint::Regular(u32f(line, h, "regular")?),
                    _ => {
                        return Err(ParseError::new(
                            line,
                            "`hints`: expected \"opaque\", \"abbrev\" or {\"regular\": n}",
                        ));
                    }
                };
                let is_unsafe = match string(line, c, "safety")? {
                    "safe" => false,
                    "unsafe" | "partial" => true,
                    s => {
                        return Err(ParseError::new(
                            line,
                            format!("`safety`: unknown value `{s}`"),
                        ));
                    }
                };
                self.names(line, c, "all")?;
                Declaration::Single(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Def { value, hint },
                    is_unsafe,
                })
            }
            "thm" => {
                let c = unwrap_decl(line, v, key)?;
                let (name, lparams, ty) = self.header(line, c)?;
                let value = self.t.expr(line, uint(line, c, "value")?)?;
                self.names(line, c, "all")?;
                Declaration::Single(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Thm { value },
                    is_unsafe: false,
                })
            }
            "opaque" => {
                let c = unwrap_decl(line, v, key)?;
                let (name, lparams, ty) = self.header(line, c)?;
                let value = self.t.expr(line, uint(line, c, "value")?)?;
                let is_unsafe = boolean(line, c, "isUnsafe")?;
                self.names(line, c, "all")?;
                Declaration::Single(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Opaque { value },
                    is_unsafe,
                })
            }
            "quot" => {
                let c = unwrap_decl(line, v, key)?;
                let (name, lparams, ty) = self.header(line, c)?;
                let kind = match string(line, c, "kind")? {
                    "type" => QuotKind::Type,
                    "ctor" => QuotKind::Ctor,
                    "lift" => QuotKind::Lift,
                    "ind" => QuotKind::Ind,
                    s => {
                        return Err(ParseError::new(
                            line,
                            format!("`kind`: unknown quotient kind `{s}`"),
                        ));
                    }
                };
                Declaration::Quot(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Quot(kind),
                    is_unsafe: false,
                })
            }
            "inductive" => {
                let c = object(line, v, key)?;
                let get = |a: &str, b: &str| {
                    c.get(a)
                        .or_else(|| c.get(b))
                        .ok_or_else(|| ParseError::new(line, format!("missing field `{a}`")))
                };
                let arr = |v: &Value, k: &str| -> Result<Vec<Value>, ParseError> {
                    v.as_array()
                        .cloned()
                        .ok_or_else(|| ParseError::new(line, format!("`{k}`: expected an array")))
                };
                let types = arr(get("types", "inductiveVals")?, "types")?
                    .iter()
                    .map(|t| self.ind_val(line, t))
                    .collect::<Result<Vec<_>, _>>()?;
                let ctors = arr(get("ctors", "constructorVals")?, "ctors")?
                    .iter()
                    .map(|t| self.ctor_val(line, t))
                    .collect::<Result<Vec<_>, _>>()?;
                let recs = arr(get("recs", "recursorVals")?, "recs")?
                    .iter()
                    .map(|t| self.rec_val(line, t))
                    .collect::<Result<Vec<_>, _>>()?;
                Declaration::Inductive(InductiveDecl {
                    types,
                    ctors,
                    recs: Some(recs),
                    line,
                })
            }
            k => {
                return Err(ParseError::new(
                    line,
                    format!("unknown declaration kind `{k}`"),
                ));
            }
        };
        self.decls.push((line, d));
        Ok(())
    }

    fn ind_val(&self, line: usize, v: &Value) -> Result<Constant, ParseError> {
        let c = object(line, v, "inductive type")?;
        let (name, lparams, ty) = self.header(line, c)?;
        let kind = ConstKind::Induct {
            num_params: u32f(line, c, "numParams")?,
            num_indices: u32f(line, c, "numIndices")?,
            all: self.names(line, c, "all")?,
            ctors: self.names(line, c, "ctors")?,
            is_rec: boolean(line, c, "isRec")?,
            is_reflexive: boolean(line, c, "isReflexive")?,
            num_nested: u32f(line, c, "numNested")?,
        };
        Ok(Constant {
            name,
            lparams,
            ty,
            kind,
            is_unsafe: boolean(line, c, "isUnsafe")?,
        })
    }

    fn ctor_val(&self, line: usize, v: &Value) -> Result<Constant, ParseError> {
        let c = object(line, v, "constructor")?;
        let (name, lparams, ty) = self.header(line, c)?;
        let kind = ConstKind::Ctor {
            induct: self.t.name(line, uint(line, c, "induct")?)?,
            cidx: u32f(line, c, "cidx")?,
            num_params: u32f(line, c, "numParams")?,
            num_fields: u32f(line, c, "numFields")?,
        };
        Ok(Constant {
            name,
            lparams,
            ty,
            kind,
            is_unsafe: boolean(line, c, "isUnsafe")?,
        })
    }

    fn rec_val(&self, line: usize, v: &Value) -> Result<Constant, ParseError> {
        let c = object(line, v, "recursor")?;
        let (name, lparams, ty) = self.header(line, c)?;
        let rules = field(line, c, "rules")?
            .as_array()
            .ok_or_else(|| ParseError::new(line, "`rules`: expected an array"))?
            .iter()
            .map(|r| {
                let r = object(line, r, "rule")?;
                Ok(RecRule {
                    ctor: self.t.name(line, uint(line, r, "ctor")?)?,
                    nfields: u32f(line, r, "nfields")?,
                    rhs: self.t.expr(line, uint(line, r, "rhs")?)?,
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        let kind = ConstKind::Rec {
            all: self.names(line, c, "all")?,
            num_params: u32f(line, c, "numParams")?,
            num_indices: u32f(line, c, "numIndices")?,
            num_motives: u32f(line, c, "numMotives")?,
            num_minors: u32f(line, c, "numMinors")?,
            rules,
            k: boolean(line, c, "k")?,
        };
        Ok(Constant {
            name,
            lparams,
            ty,
            kind,
            is_unsafe: boolean(line, c, "isUnsafe")?,
        })
    }
}
