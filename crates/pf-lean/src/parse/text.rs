//! Text export reader: lean4export text format 2.0.0 and the header-less legacy layout.
//!
//! 2.0.0 declaration lines (fields are indices unless noted):
//! `#AX name type lps*`, `#DEF name type value (R h | A | O) lps*`, `#THM name type value lps*`,
//! `#OPAQ name type value lps*`, `#QUOT name type lps*`,
//! `#IND name type isReflexive isRec numNested numParams numIndices numAll all* numCtors ctors* lps*`,
//! `#CTOR name type induct cidx numParams numFields lps*`,
//! `#REC name type numAll all* numParams numIndices numMotives numMinors numRules rules* k lps*`,
//! `i #RR ctor nfields rhs`.
//! The legacy layout (no header) has `#DEF name type value lps*` (no hint), `#QUOT` (generate
//! the quotient package) and `#IND numParams name type numIntros (name type)* lps*` (the checker
//! generates recursors).

use num_bigint::BigUint;
use rustc_hash::FxHashMap;

use super::{Export, Format, MAX_LINE_BYTES, Tables};
use crate::env::{ConstKind, Constant, Declaration, Hint, InductiveDecl, QuotKind, RecRule};
use crate::error::ParseError;
use crate::store::{ExprId, ExprNode, LevelNode, NameId, NameNode, Store};

struct Line<'a> {
    no: usize,
    toks: Vec<&'a str>,
    pos: usize,
}

impl<'a> Line<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, ParseError> {
        let t = self.toks.get(self.pos).copied();
        self.pos += 1;
        t.ok_or_else(|| ParseError::new(self.no, format!("expected {what}, found end of line")))
    }
    fn num(&mut self, what: &str) -> Result<u64, ParseError> {
        let t = self.next(what)?;
        t.parse::<u64>().map_err(|_| {
            ParseError::new(
                self.no,
                format!("expected {what} (an integer), found `{t}`"),
            )
        })
    }
    fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        let n = self.num(what)?;
        u32::try_from(n).map_err(|_| ParseError::new(self.no, format!("{what}: {n} is too large")))
    }
    fn flag(&mut self, what: &str) -> Result<bool, ParseError> {
        match self.num(what)? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(ParseError::new(
                self.no,
                format!("{what}: expected 0 or 1, found {n}"),
            )),
        }
    }
    fn rest(&mut self) -> Vec<&'a str> {
        let r = self
            .toks
            .get(self.pos..)
            .map(|s| s.to_vec())
            .unwrap_or_default();
        self.pos = self.toks.len();
        r
    }
    fn end(&self) -> Result<(), ParseError> {
        if self.pos < self.toks.len() {
            return Err(ParseError::new(
                self.no,
                format!("unexpected trailing token `{}`", self.toks[self.pos]),
            ));
        }
        Ok(())
    }
}

struct Reader {
    store: Store,
    t: Tables,
    legacy: bool,
    rules: FxHashMap<u64, RecRule>,
    items: Vec<(usize, Item)>,
}

enum Item {
    Decl(Declaration),
    Ind(Constant),
    Ctor(Constant),
    Rec(Constant),
}

/// Parses a text export.
pub fn parse(input: &str) -> Result<Export, ParseError> {
    let store = Store::new();
    let t = Tables::new(&store);
    let mut lines = input
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let mut format = Format::TextLegacy;
    if let Some((i, first)) = lines.peek() {
        let f = first.trim();
        if !f.contains('#') {
            if f != "2.0.0" {
                return Err(ParseError::unsupported(
                    i + 1,
                    format!(
                        "unsupported text export version `{f}` (supported: 2.0.0 and the header-less legacy layout)"
                    ),
                ));
            }
            format = Format::Text(f.to_string());
            lines.next();
        }
    }
    let mut r = Reader {
        store,
        t,
        legacy: format == Format::TextLegacy,
        rules: FxHashMap::default(),
        items: Vec::new(),
    };
    for (i, raw) in lines {
        if raw.len() > MAX_LINE_BYTES {
            return Err(ParseError::new(i + 1, "line too long"));
        }
        let mut l = Line {
            no: i + 1,
            toks: raw.split_ascii_whitespace().collect(),
            pos: 0,
        };
        r.line(&mut l)?;
        if r.store.overflowed() {
            return Err(ParseError::new(i + 1, "expression limit exceeded"));
        }
    }
    let decls = r.group()?;
    Ok(Export {
        store: r.store,
        decls,
        format,
    })
}

impl Reader {
    fn line(&mut self, l: &mut Line) -> Result<(), ParseError> {
        let first = l.next("an index or a command")?;
        if first.starts_with('#') {
            return self.decl(first, l);
        }
        let idx = first.parse::<u64>().map_err(|_| {
            ParseError::new(
                l.no,
                format!("expected an index or a `#` command, found `{first}`"),
            )
        })?;
        let cmd = l.next("a command")?;
        let no = l.no;
        match cmd {
            "#NS" | "#NI" => {
                if idx == 0 {
                    return Err(ParseError::new(
                        no,
                        "name index 0 is reserved for the anonymous name",
                    ));
                }
                let pre = self.t.name(no, l.num("a name index")?)?;
                let node = if cmd == "#NS" {
                    // Name components may contain spaces: the rest of the line is the string.
                    let s = l.rest().join(" ");
                    NameNode::Str(pre, s.into())
                } else {
                    NameNode::Num(pre, l.num("a number")?)
                };
                l.end()?;
                let id = self.store.name(node);
                self.t.def_name(no, idx, id)
            }
            "#US" | "#UM" | "#UIM" | "#UP" => {
                if idx == 0 {
                    return Err(ParseError::new(
                        no,
                        "level index 0 is reserved for level zero",
                    ));
                }
                let node = match cmd {
                    "#US" => LevelNode::Succ(self.t.level(no, l.num("a level index")?)?),
                    "#UM" => LevelNode::Max(
                        self.t.level(no, l.num("a level index")?)?,
                        self.t.level(no, l.num("a level index")?)?,
                    ),
                    "#UIM" => LevelNode::IMax(
                        self.t.level(no, l.num("a level index")?)?,
                        self.t.level(no, l.num("a level index")?)?,
                    ),
                    _ => LevelNode::Param(self.t.name(no, l.num("a name index")?)?),
                };
                l.end()?;
                let id = self.store.level(node);
                self.t.def_level(no, idx, id)
            }
            "#RR" => {
                let ctor = self.t.name(no, l.num("a constructor name")?)?;
                let nfields = l.u32("the field count")?;
                let rhs = self.t.expr(no, l.num("an expression index")?)?;
                l.end()?;
                if self
                    .rules
                    .insert(idx, RecRule { ctor, nfields, rhs })
                    .is_some()
                {
                    return Err(ParseError::new(
                        no,
                        format!("recursor rule index {idx} defined twice"),
                    ));
                }
                Ok(())
            }
            _ => {
                let id = self.expr(cmd, l)?;
                l.end()?;
                self.t.def_expr(no, idx, id)
            }
        }
    }

    fn expr(&mut self, cmd: &str, l: &mut Line) -> Result<ExprId, ParseError> {
        let no = l.no;
        let node = match cmd {
            "#EV" => ExprNode::BVar(l.u32("a de Bruijn index")?),
            "#ES" => ExprNode::Sort(self.t.level(no, l.num("a level index")?)?),
            "#EC" => {
                let name = self.t.name(no, l.num("a name index")?)?;
                let us = l
                    .rest()
                    .iter()
                    .map(|t| {
                        t.parse::<u64>()
                            .map_err(|_| {
                                ParseError::new(no, format!("expected a level index, found `{t}`"))
                            })
                            .and_then(|u| self.t.level(no, u))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ExprNode::Const(name, self.store.levels_of(&us))
            }
            "#EA" => ExprNode::App(
                self.t.expr(no, l.num("an expression index")?)?,
                self.t.expr(no, l.num("an expression index")?)?,
            ),
            "#EL" | "#EP" => {
                let bi = l.next("a binder info (#BD, #BI, #BS, #BC)")?;
                if !matches!(bi, "#BD" | "#BI" | "#BS" | "#BC") {
                    return Err(ParseError::new(
                        no,
                        format!("expected a binder info (#BD, #BI, #BS, #BC), found `{bi}`"),
                    ));
                }
                self.t.name(no, l.num("a name index")?)?;
                let ty = self.t.expr(no, l.num("an expression index")?)?;
                let body = self.t.expr(no, l.num("an expression index")?)?;
                if cmd == "#EL" {
                    ExprNode::Lam(ty, body)
                } else {
                    ExprNode::Pi(ty, body)
                }
            }
            "#EZ" => {
                self.t.name(no, l.num("a name index")?)?;
                ExprNode::Let(
                    self.t.expr(no, l.num("an expression index")?)?,
                    self.t.expr(no, l.num("an expression index")?)?,
                    self.t.expr(no, l.num("an expression index")?)?,
                )
            }
            "#EJ" => ExprNode::Proj(
                self.t.name(no, l.num("a structure name")?)?,
                l.u32("a field index")?,
                self.t.expr(no, l.num("an expression index")?)?,
            ),
            "#ELN" => {
                let t = l.next("a natural number")?;
                if t.len() > 1_000_000 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::new(
                        no,
                        format!("expected a natural number, found `{t}`"),
                    ));
                }
                let n = t
                    .parse::<BigUint>()
                    .map_err(|e| ParseError::new(no, format!("natural literal: {e}")))?;
                return Ok(self.store.nat_lit(n));
            }
            "#ELS" => {
                let bytes = l
                    .rest()
                    .iter()
                    .map(|t| {
                        u8::from_str_radix(t, 16).map_err(|_| {
                            ParseError::new(no, format!("expected a hex byte, found `{t}`"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let s = String::from_utf8(bytes)
                    .map_err(|_| ParseError::new(no, "string literal is not valid UTF-8"))?;
                return Ok(self.store.str_lit(s));
            }
            other => return Err(ParseError::new(no, format!("unknown command `{other}`"))),
        };
        Ok(self.store.expr(node))
    }

    fn lparams(&self, l: &mut Line) -> Result<Vec<NameId>, ParseError> {
        let no = l.no;
        l.rest()
            .iter()
            .map(|t| {
                t.parse::<u64>()
                    .map_err(|_| {
                        ParseError::new(
                            no,
                            format!("expected a universe parameter name index, found `{t}`"),
                        )
                    })
                    .and_then(|n| self.t.name(no, n))
            })
            .collect()
    }

    fn names(&self, l: &mut Line, count: u64, what: &str) -> Result<Vec<NameId>, ParseError> {
        (0..count)
            .map(|_| l.num(what).and_then(|n| self.t.name(l.no, n)))
            .collect()
    }

    fn decl(&mut self, cmd: &str, l: &mut Line) -> Result<(), ParseError> {
        let no = l.no;
        let name_ty = |s: &Self, l: &mut Line| -> Result<(NameId, ExprId), ParseError> {
            let n = s.t.name(no, l.num("a declaration name")?)?;
            let t = s.t.expr(no, l.num("a type expression")?)?;
            Ok((n, t))
        };
        let item = match cmd {
            "#AX" => {
                let (name, ty) = name_ty(self, l)?;
                let lparams = self.lparams(l)?;
                Item::Decl(Declaration::Single(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Axiom,
                    is_unsafe: false,
                }))
            }
            "#DEF" | "#THM" | "#OPAQ" => {
                let (name, ty) = name_ty(self, l)?;
                let value = self.t.expr(no, l.num("a value expression")?)?;
                let kind = match cmd {
                    "#THM" => ConstKind::Thm { value },
                    "#OPAQ" => ConstKind::Opaque { value },
                    _ if self.legacy => ConstKind::Def {
                        value,
                        hint: Hint::Regular(0),
                    },
                    _ => {
                        let hint = match l.next("a hint (R n, A or O)")? {
                            "R" => Hint::Regular(l.u32("a definitional height")?),
                            "A" => Hint::Abbrev,
                            "O" => Hint::Opaque,
                            h => {
                                return Err(ParseError::new(
                                    no,
                                    format!("expected a hint (R n, A or O), found `{h}`"),
                                ));
                            }
                        };
                        ConstKind::Def { value, hint }
                    }
                };
                let lparams = self.lparams(l)?;
                Item::Decl(Declaration::Single(Constant {
                    name,
                    lparams,
                    ty,
                    kind,
                    is_unsafe: false,
                }))
            }
            "#QUOT" if self.legacy => {
                l.end()?;
                Item::Decl(Declaration::QuotPackage)
            }
            "#QUOT" => {
                let (name, ty) = name_ty(self, l)?;
                let lparams = self.lparams(l)?;
                // 2.0.0 does not name the kind: it follows from the constant's name.
                let kind = match self.store.name_to_string(name).as_str() {
                    "Quot" => QuotKind::Type,
                    "Quot.mk" => QuotKind::Ctor,
                    "Quot.lift" => QuotKind::Lift,
                    "Quot.ind" => QuotKind::Ind,
                    other => {
                        return Err(ParseError::new(
                            no,
                            format!("#QUOT for unknown constant `{other}`"),
                        ));
                    }
                };
                Item::Decl(Declaration::Quot(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Quot(kind),
                    is_unsafe: false,
                }))
            }
            "#IND" if self.legacy => {
                let num_params = l.u32("the parameter count")?;
                let (name, ty) = name_ty(self, l)?;
                let n = l.num("the constructor count")?;
                let mut ctors = Vec::new();
                for _ in 0..n {
                    let (cn, ct) = name_ty(self, l)?;
                    ctors.push((cn, ct));
                }
                let lparams = self.lparams(l)?;
                let types = vec![Constant {
                    name,
                    lparams: lparams.clone(),
                    ty,
                    kind: ConstKind::Induct {
                        num_params,
                        num_indices: 0,
                        all: vec![name],
                        ctors: ctors.iter().map(|c| c.0).collect(),
                        is_rec: false,
                        is_reflexive: false,
                        num_nested: 0,
                    },
                    is_unsafe: false,
                }];
                let ctors = ctors
                    .into_iter()
                    .enumerate()
                    .map(|(i, (cn, ct))| Constant {
                        name: cn,
                        lparams: lparams.clone(),
                        ty: ct,
                        kind: ConstKind::Ctor {
                            induct: name,
                            cidx: i as u32,
                            num_params,
                            num_fields: 0,
                        },
                        is_unsafe: false,
                    })
                    .collect();
                Item::Decl(Declaration::Inductive(InductiveDecl {
                    types,
                    ctors,
                    recs: None,
                    line: no,
                }))
            }
            "#IND" => {
                let (name, ty) = name_ty(self, l)?;
                let is_reflexive = l.flag("isReflexive")?;
                let is_rec = l.flag("isRec")?;
                let num_nested = l.u32("numNested")?;
                let num_params = l.u32("numParams")?;
                let num_indices = l.u32("numIndices")?;
                let na = l.num("the number of types in the block")?;
                let all = self.names(l, na, "a type name")?;
                let nc = l.num("the constructor count")?;
                let ctors = self.names(l, nc, "a constructor name")?;
                let lparams = self.lparams(l)?;
                let kind = ConstKind::Induct {
                    num_params,
                    num_indices,
                    all,
                    ctors,
                    is_rec,
                    is_reflexive,
                    num_nested,
                };
                Item::Ind(Constant {
                    name,
                    lparams,
                    ty,
                    kind,
                    is_unsafe: false,
                })
            }
            "#CTOR" => {
                let (name, ty) = name_ty(self, l)?;
                let induct = self.t.name(no, l.num("the inductive type name")?)?;
                let cidx = l.u32("cidx")?;
                let num_params = l.u32("numParams")?;
                let num_fields = l.u32("numFields")?;
                let lparams = self.lparams(l)?;
                Item::Ctor(Constant {
                    name,
                    lparams,
                    ty,
                    kind: ConstKind::Ctor {
                        induct,
                        cidx,
                        num_params,
                        num_fields,
                    },
                    is_unsafe: false,
                })
            }
            "#REC" => {
                let (name, ty) = name_ty(self, l)?;
                let na = l.num("the number of types in the block")?;
                let all = self.names(l, na, "a type name")?;
                let num_params = l.u32("numParams")?;
                let num_indices = l.u32("numIndices")?;
                let num_motives = l.u32("numMotives")?;
                let num_minors = l.u32("numMinors")?;
                let nr = l.num("the rule count")?;
                let mut rules = Vec::new();
                for _ in 0..nr {
                    let ri = l.num("a recursor rule index")?;
                    let r = self.rules.get(&ri).cloned().ok_or_else(|| {
                        ParseError::new(
                            no,
                            format!("recursor rule index {ri} is not defined before this line"),
                        )
                    })?;
                    rules.push(r);
                }
                let k = l.flag("k")?;
                let lparams = self.lparams(l)?;
                let kind = ConstKind::Rec {
                    all,
                    num_params,
                    num_indices,
                    num_motives,
                    num_minors,
                    rules,
                    k,
                };
                Item::Rec(Constant {
                    name,
                    lparams,
                    ty,
                    kind,
                    is_unsafe: false,
                })
            }
            other => return Err(ParseError::new(no, format!("unknown command `{other}`"))),
        };
        l.end()?;
        self.items.push((no, item));
        Ok(())
    }

    /// Groups `#IND`/`#CTOR`/`#REC` lines into inductive blocks. A block is emitted at the
    /// position of its last line, so that it is checked after everything it may depend on.
    fn group(&mut self) -> Result<Vec<(usize, Declaration)>, ParseError> {
        let items = std::mem::take(&mut self.items);
        // Block key: the `all` list of the inductive types.
        let mut block_of_type: FxHashMap<NameId, usize> = FxHashMap::default();
        let mut blocks: Vec<(Vec<NameId>, InductiveDecl, usize)> = Vec::new();
        let mut out: Vec<(usize, Option<Declaration>, Option<usize>)> = Vec::new();
        for (no, item) in items {
            match item {
                Item::Decl(d) => out.push((no, Some(d), None)),
                Item::Ind(c) => {
                    let all = match &c.kind {
                        ConstKind::Induct { all, .. } => all.clone(),
                        _ => Vec::new(),
                    };
                    let b = match all.iter().find_map(|n| block_of_type.get(n)) {
                        Some(&b) => b,
                        None => {
                            blocks.push((
                                all.clone(),
                                InductiveDecl {
                                    types: Vec::new(),
                                    ctors: Vec::new(),
                                    recs: Some(Vec::new()),
                                    line: no,
                                },
                                0,
                            ));
                            blocks.len() - 1
                        }
                    };
                    for n in &all {
                        block_of_type.entry(*n).or_insert(b);
                    }
                    blocks[b].1.types.push(c);
                    out.push((no, None, Some(b)));
                }
                Item::Ctor(c) => {
                    let induct = match &c.kind {
                        ConstKind::Ctor { induct, .. } => *induct,
                        _ => continue,
                    };
                    let b = *block_of_type.get(&induct).ok_or_else(|| {
                        ParseError::new(no, "#CTOR for an inductive type not declared before it")
                    })?;
                    blocks[b].1.ctors.push(c);
                    out.push((no, None, Some(b)));
                }
                Item::Rec(c) => {
                    let first = match &c.kind {
                        ConstKind::Rec { all, .. } => all.first().copied(),
                        _ => None,
                    };
                    let b = *first.and_then(|n| block_of_type.get(&n)).ok_or_else(|| {
                        ParseError::new(no, "#REC for an inductive block not declared before it")
                    })?;
                    out.push((no, Some(Declaration::LateRec(c)), Some(b)));
                }
            }
        }
        // A block is emitted after its last #IND/#CTOR line; a #REC before that point joins
        // the block, a later one (text exports write recursors when first used) is compared
        // with the recursor the checker generated.
        let mut last = vec![0usize; blocks.len()];
        for (i, (_, d, b)) in out.iter().enumerate() {
            if let (None, Some(b)) = (d, b) {
                last[*b] = i;
            }
        }
        let mut decls = Vec::new();
        let mut blocks: Vec<Option<InductiveDecl>> =
            blocks.into_iter().map(|(_, d, _)| Some(d)).collect();
        for (i, (no, d, b)) in out.into_iter().enumerate() {
            match (d, b) {
                (Some(Declaration::LateRec(c)), Some(b)) if i < last[b] => {
                    if let Some(Some(r)) = blocks[b].as_mut().map(|x| x.recs.as_mut()) {
                        r.push(c);
                    }
                }
                (Some(d), _) => decls.push((no, d)),
                (None, Some(b)) => {
                    if last[b] == i
                        && let Some(d) = blocks[b].take()
                    {
                        decls.push((no, Declaration::Inductive(d)));
                    }
                }
                (None, None) => {}
            }
        }
        Ok(decls)
    }
}
