//! Dependency order for text exports: the text exporter may write a declaration before the
//! constants it mentions (recursors and constructors are written when first used), so
//! declarations are checked in an order where everything they mention is already declared.
//! Declarations that can never become ready (cycles, missing constants) keep their file order
//! and are then rejected by the kernel ("unknown constant").

use rustc_hash::FxHashSet;

use crate::env::{ConstKind, Constant, Declaration};
use crate::store::{ExprId, ExprNode, NameId, Store};

fn exprs_of(c: &Constant, out: &mut Vec<ExprId>) {
    out.push(c.ty);
    match &c.kind {
        ConstKind::Def { value, .. } | ConstKind::Thm { value } | ConstKind::Opaque { value } => {
            out.push(*value)
        }
        ConstKind::Rec { rules, .. } => out.extend(rules.iter().map(|r| r.rhs)),
        _ => {}
    }
}

fn provides(s: &mut Store, d: &Declaration) -> Vec<NameId> {
    match d {
        Declaration::Single(c) | Declaration::Quot(c) => vec![c.name],
        Declaration::LateRec(c) => vec![c.name],
        Declaration::QuotPackage => ["Quot", "Quot.mk", "Quot.lift", "Quot.ind"]
            .iter()
            .map(|n| s.name_path(n))
            .collect(),
        Declaration::Inductive(i) => {
            let mut v: Vec<NameId> = i
                .types
                .iter()
                .chain(&i.ctors)
                .chain(i.recs.iter().flatten())
                .map(|c| c.name)
                .collect();
            for t in &i.types {
                v.push(s.name_str(t.name, "rec"));
            }
            v
        }
    }
}

fn requires(s: &Store, d: &Declaration, own: &[NameId]) -> Vec<NameId> {
    // A late recursor only needs its block (it is compared with the generated recursor).
    if let Declaration::LateRec(Constant {
        kind: ConstKind::Rec { all, .. },
        ..
    }) = d
    {
        return all.clone();
    }
    let mut roots = Vec::new();
    match d {
        Declaration::Single(c) | Declaration::Quot(c) | Declaration::LateRec(c) => {
            exprs_of(c, &mut roots)
        }
        Declaration::QuotPackage => {}
        Declaration::Inductive(i) => {
            for c in i
                .types
                .iter()
                .chain(&i.ctors)
                .chain(i.recs.iter().flatten())
            {
                exprs_of(c, &mut roots);
            }
        }
    }
    let mut seen = FxHashSet::default();
    let mut names = FxHashSet::default();
    while let Some(e) = roots.pop() {
        if !seen.insert(e) {
            continue;
        }
        match s.node(e) {
            ExprNode::Const(n, _) if !own.contains(&n) => {
                names.insert(n);
            }
            ExprNode::App(a, b) | ExprNode::Lam(a, b) | ExprNode::Pi(a, b) => roots.extend([a, b]),
            ExprNode::Let(a, b, c) => roots.extend([a, b, c]),
            ExprNode::Proj(n, _, x) => {
                if !own.contains(&n) {
                    names.insert(n);
                }
                roots.push(x)
            }
            _ => {}
        }
    }
    let mut v: Vec<NameId> = names.into_iter().collect();
    v.sort();
    v
}

/// Reorders declarations so that each comes after the declarations it mentions.
pub fn dependency_order(
    s: &mut Store,
    decls: Vec<(usize, Declaration)>,
) -> Vec<(usize, Declaration)> {
    let info: Vec<(Vec<NameId>, Vec<NameId>)> = decls
        .iter()
        .map(|(_, d)| {
            let p = provides(s, d);
            let r = requires(s, d, &p);
            (p, r)
        })
        .collect();
    let mut declared: FxHashSet<NameId> = FxHashSet::default();
    let mut done = vec![false; decls.len()];
    let mut order = Vec::with_capacity(decls.len());
    loop {
        let mut progress = false;
        for i in 0..decls.len() {
            if !done[i] && info[i].1.iter().all(|n| declared.contains(n)) {
                done[i] = true;
                progress = true;
                declared.extend(info[i].0.iter().copied());
                order.push(i);
            }
        }
        if !progress {
            break;
        }
    }
    order.extend((0..decls.len()).filter(|&i| !done[i]));
    let mut slots: Vec<Option<(usize, Declaration)>> = decls.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The constants a declaration mentions (itself included, if it refers to itself).
pub fn mentioned(s: &Store, k: &Constant) -> Vec<NameId> {
    requires(s, &Declaration::Single(k.clone()), &[])
}
