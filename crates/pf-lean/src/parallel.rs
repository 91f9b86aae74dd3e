//! Parallel checking of independent declarations.
//!
//! Type-checking a definition, theorem or axiom only *reads* the environment, so a first,
//! sequential pass admits every declaration after its cheap checks (and checks inductive blocks
//! and quotients, which build recursors), and a second pass type-checks the single declarations
//! on worker threads, each with its own copy of the term store. The verdict is the one the
//! sequential checker gives: the first failing declaration in checking order. A declaration
//! may only mention constants admitted before it, which the first pass enforces.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::check::{Checked, Options, admit_single, precheck_single, typecheck_single};
use crate::env::{Constant, Declaration};
use crate::error::KernelError;
use crate::schedule;
use crate::store::NameId;

/// A failure at a position of the checking order.
type Failure = (usize, Option<NameId>, KernelError);

/// Checks `decls` (already in checking order) with `threads` workers; returns the first failure.
pub fn check_all(
    c: &mut Checked,
    decls: &[(usize, Declaration)],
    opts: &Options,
    threads: usize,
) -> Option<(usize, Option<NameId>, KernelError)> {
    let mut jobs: Vec<(usize, &Constant)> = Vec::new();
    let mut first: Option<Failure> = None;
    for (i, (_, d)) in decls.iter().enumerate() {
        match d {
            Declaration::Single(k) => {
                if let Err(e) = precheck_single(c, k) {
                    first = Some((i, Some(k.name), e));
                    break;
                }
                if let Some(n) = schedule::mentioned(&c.store, k)
                    .into_iter()
                    .find(|n| !c.env.contains(*n))
                {
                    let e = KernelError::Ill(format!(
                        "unknown constant `{}`",
                        c.store.name_to_string(n)
                    ));
                    first = Some((i, Some(k.name), e));
                    break;
                }
                admit_single(c, k);
                jobs.push((i, k));
            }
            _ => {
                if let Err((n, e)) = crate::check::add_declaration(c, d, opts) {
                    first = Some((i, n, e));
                    break;
                }
            }
        }
    }
    let next = AtomicUsize::new(0);
    let failures: Vec<Failure> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..threads.max(1) {
            let mut store = c.store.clone();
            let (env, wk, jobs, next) = (&c.env, c.wk, &jobs, &next);
            let worker = std::thread::Builder::new()
                .stack_size(crate::check::STACK)
                .spawn_scoped(scope, move || {
                    let mut out = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(i, k)) = jobs.get(j) else { break };
                        if let Err(e) = typecheck_single(&mut store, env, wk, k, opts) {
                            // A "no" from an exhausted universe comparison proves nothing.
                            let e = match e {
                                KernelError::Ill(m) if store.level_budget_hit => {
                                    KernelError::Resource(format!(
                                        "universe comparison budget exhausted ({m})"
                                    ))
                                }
                                other => other,
                            };
                            out.push((i, Some(k.name), e));
                        } else if store.level_budget_hit {
                            let e = KernelError::Resource(
                                "universe comparison budget exhausted".into(),
                            );
                            out.push((i, Some(k.name), e));
                        }
                    }
                    out
                });
            match worker {
                Ok(h) => handles.push(h),
                Err(_) => {
                    return vec![(
                        0,
                        None,
                        KernelError::Resource("cannot start a worker thread".into()),
                    )];
                }
            }
        }
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        0,
                        None,
                        KernelError::Resource("worker thread failed".into()),
                    )]
                })
            })
            .collect()
    });
    failures.into_iter().chain(first).min_by_key(|f| f.0)
}
