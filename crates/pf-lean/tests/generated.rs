//! Generated exports: well-typed declarations built with `pf_lean::builder` are accepted, and
//! targeted ill-typed mutations (wrong recursor rule or type, non-positive inductive, universe
//! errors, type mismatches, non-propositional theorems, `sorryAx`) are rejected.

use pf_lean::builder::{Decl, Lvl, Term, export};
use pf_lean::check::check_export_here;
use pf_lean::{Options, Verdict, axioms};
use proptest::prelude::*;

fn b(i: u32) -> Term {
    Term::BVar(i)
}
fn nat() -> Term {
    Term::c("Nat")
}
fn u() -> Lvl {
    Lvl::Param("u".into())
}

/// `Nat`, with its recursor written out by hand (rules may be overridden).
fn nat_decl(succ_rule: Option<Term>, motive_sort: Option<Term>) -> Decl {
    let motive_ty = Term::pi(nat(), motive_sort.unwrap_or(Term::sort(u())));
    let zero_ty = Term::app(b(0), Term::c("Nat.zero"));
    let succ_ty = Term::pi(
        nat(),
        Term::pi(
            Term::app(b(2), b(0)),
            Term::app(b(3), Term::app(Term::c("Nat.succ"), b(1))),
        ),
    );
    let rec_ty = Term::pi(
        motive_ty.clone(),
        Term::pi(
            zero_ty.clone(),
            Term::pi(succ_ty.clone(), Term::pi(nat(), Term::app(b(3), b(0)))),
        ),
    );
    let binders = |body: Term| {
        Term::lam(
            motive_ty.clone(),
            Term::lam(zero_ty.clone(), Term::lam(succ_ty.clone(), body)),
        )
    };
    let rec = Term::Const("Nat.rec".into(), vec![u()]);
    let zero_rule = binders(b(1));
    let succ_rule = succ_rule.unwrap_or_else(|| {
        binders(Term::lam(
            nat(),
            Term::apps(
                b(1),
                vec![b(0), Term::apps(rec, vec![b(3), b(2), b(1), b(0)])],
            ),
        ))
    });
    Decl::Inductive {
        name: "Nat".into(),
        lparams: vec![],
        ty: Term::ty(),
        nparams: 0,
        nindices: 0,
        ctors: vec![
            ("Nat.zero".into(), nat(), 0),
            ("Nat.succ".into(), Term::pi(nat(), nat()), 1),
        ],
        is_rec: true,
        is_reflexive: false,
        rec_lparams: vec!["u".into()],
        rec_ty,
        rules: vec![
            ("Nat.zero".into(), 0, zero_rule),
            ("Nat.succ".into(), 1, succ_rule),
        ],
        k: false,
    }
}

/// `Nat.add n m := Nat.rec (motive := fun _ => Nat) n (fun _ ih => Nat.succ ih) m`.
fn nat_add() -> Decl {
    let one = Lvl::Succ(Box::new(Lvl::Zero));
    let rec = Term::Const("Nat.rec".into(), vec![one]);
    let motive = Term::lam(nat(), nat());
    let step = Term::lam(
        nat(),
        Term::lam(nat(), Term::app(Term::c("Nat.succ"), b(0))),
    );
    let body = Term::apps(rec, vec![motive, b(1), step, b(0)]);
    Decl::Def {
        name: "Nat.add".into(),
        lparams: vec![],
        ty: Term::pi(nat(), Term::pi(nat(), nat())),
        value: Term::lam(nat(), Term::lam(nat(), body)),
    }
}

fn verdict(decls: &[Decl]) -> Verdict {
    check_export_here(&export(decls), &Options::default()).verdict
}

fn is_reject(v: &Verdict) -> bool {
    matches!(v, Verdict::Reject { .. })
}

#[test]
fn hand_written_nat_is_accepted() {
    assert_eq!(verdict(&[nat_decl(None, None), nat_add()]), Verdict::Accept);
}

#[test]
fn wrong_recursor_rule_is_rejected() {
    let motive_ty = Term::pi(nat(), Term::sort(u()));
    let zero_ty = Term::app(b(0), Term::c("Nat.zero"));
    let succ_ty = Term::pi(
        nat(),
        Term::pi(
            Term::app(b(2), b(0)),
            Term::app(b(3), Term::app(Term::c("Nat.succ"), b(1))),
        ),
    );
    let rec = Term::Const("Nat.rec".into(), vec![u()]);
    // succ n (Nat.rec motive zero succ Nat.zero): well-typed only up to the motive, wrong rule.
    let bad = Term::lam(
        motive_ty,
        Term::lam(
            zero_ty,
            Term::lam(
                succ_ty,
                Term::lam(
                    nat(),
                    Term::apps(
                        b(1),
                        vec![
                            b(0),
                            Term::apps(rec, vec![b(3), b(2), b(1), Term::c("Nat.zero")]),
                        ],
                    ),
                ),
            ),
        ),
    );
    let v = verdict(&[nat_decl(Some(bad), None)]);
    assert!(is_reject(&v), "{v:?}");
}

#[test]
fn wrong_recursor_universe_is_rejected() {
    let v = verdict(&[nat_decl(None, Some(Term::prop()))]);
    assert!(is_reject(&v), "{v:?}");
}

#[test]
fn non_positive_inductive_is_rejected() {
    let bad = Decl::Inductive {
        name: "Bad".into(),
        lparams: vec![],
        ty: Term::ty(),
        nparams: 0,
        nindices: 0,
        ctors: vec![(
            "Bad.mk".into(),
            Term::pi(Term::pi(Term::c("Bad"), nat()), Term::c("Bad")),
            1,
        )],
        is_rec: true,
        is_reflexive: true,
        rec_lparams: vec!["u".into()],
        rec_ty: Term::prop(),
        rules: vec![],
        k: false,
    };
    let v = verdict(&[nat_decl(None, None), bad]);
    assert!(
        matches!(&v, Verdict::Reject { reason, .. } if reason.contains("non-positive")),
        "{v:?}"
    );
}

#[test]
fn constructor_field_in_too_large_universe_is_rejected() {
    let bad = Decl::Inductive {
        name: "Box".into(),
        lparams: vec![],
        ty: Term::ty(),
        nparams: 0,
        nindices: 0,
        ctors: vec![("Box.mk".into(), Term::pi(Term::ty(), Term::c("Box")), 1)],
        is_rec: false,
        is_reflexive: false,
        rec_lparams: vec!["u".into()],
        rec_ty: Term::prop(),
        rules: vec![],
        k: false,
    };
    let v = verdict(&[bad]);
    assert!(
        matches!(&v, Verdict::Reject { reason, .. } if reason.contains("universe")),
        "{v:?}"
    );
}

#[test]
fn undeclared_universe_parameter_is_rejected() {
    let d = Decl::Axiom {
        name: "a".into(),
        lparams: vec![],
        ty: Term::sort(u()),
    };
    assert!(is_reject(&verdict(&[d])));
    let ok = Decl::Axiom {
        name: "a".into(),
        lparams: vec!["u".into()],
        ty: Term::sort(u()),
    };
    assert_eq!(verdict(&[ok]), Verdict::Accept);
}

#[test]
fn theorem_of_a_non_proposition_is_rejected() {
    let t = Decl::Thm {
        name: "t".into(),
        lparams: vec![],
        ty: nat(),
        value: Term::c("Nat.zero"),
    };
    assert!(is_reject(&verdict(&[nat_decl(None, None), t])));
}

#[test]
fn sorry_passes_the_kernel_but_not_the_axiom_gate() {
    let sorry = Decl::Axiom {
        name: "sorryAx".into(),
        lparams: vec!["u".into()],
        ty: Term::pi(Term::sort(u()), b(0)),
    };
    let p = Decl::Axiom {
        name: "P".into(),
        lparams: vec![],
        ty: Term::prop(),
    };
    let t = Decl::Thm {
        name: "t".into(),
        lparams: vec![],
        ty: Term::c("P"),
        value: Term::app(Term::Const("sorryAx".into(), vec![Lvl::Zero]), Term::c("P")),
    };
    let out = check_export_here(&export(&[sorry, p, t]), &Options::default());
    assert_eq!(out.verdict, Verdict::Accept);
    assert_eq!(
        axioms::axioms_of(&out.checked, "t").expect("t is declared"),
        vec!["P".to_string(), "sorryAx".to_string()]
    );
    assert!(axioms::check_axioms(&out.checked, "t", axioms::DEFAULT_ALLOWED).is_err());
    assert!(
        axioms::check_axioms(&out.checked, "t", &["sorryAx"]).is_err(),
        "sorryAx is never allowed"
    );
}

#[test]
fn constructor_parameter_of_the_wrong_type_is_rejected() {
    // inductive T (a : Type) : Type | mk : (a : Prop) -> T a   -- parameter types differ
    let bad = Decl::Inductive {
        name: "T".into(),
        lparams: vec![],
        ty: Term::pi(Term::ty(), Term::ty()),
        nparams: 1,
        nindices: 0,
        ctors: vec![(
            "T.mk".into(),
            Term::pi(Term::prop(), Term::app(Term::c("T"), b(0))),
            0,
        )],
        is_rec: false,
        is_reflexive: false,
        rec_lparams: vec!["u".into()],
        rec_ty: Term::prop(),
        rules: vec![],
        k: false,
    };
    let v = verdict(&[bad]);
    assert!(is_reject(&v), "{v:?}");
}

#[test]
fn smuggled_undeclared_axiom_is_rejected() {
    let p = Decl::Axiom {
        name: "P".into(),
        lparams: vec![],
        ty: Term::prop(),
    };
    let t = Decl::Thm {
        name: "t".into(),
        lparams: vec![],
        ty: Term::c("P"),
        value: Term::c("hidden"),
    };
    let v = verdict(&[p, t]);
    assert!(
        matches!(&v, Verdict::Reject { reason, .. } if reason.contains("unknown constant")),
        "{v:?}"
    );
}

#[test]
fn redeclaring_a_constant_is_rejected() {
    let p = Decl::Axiom {
        name: "P".into(),
        lparams: vec![],
        ty: Term::prop(),
    };
    let v = verdict(&[p.clone(), p]);
    assert!(
        matches!(&v, Verdict::Reject { reason, .. } if reason.contains("already declared")),
        "{v:?}"
    );
}

#[test]
fn policy_binding_requires_the_exact_string_literal() {
    use pf_lean::binding::{BindingError, check_binding};
    let string = Decl::Axiom {
        name: "String".into(),
        lparams: vec![],
        ty: Term::ty(),
    };
    let json = r#"{"name":"ai-agent","version":"1.0.0"}"#;
    let def = Decl::Def {
        name: "policyJson".into(),
        lparams: vec![],
        ty: Term::c("String"),
        value: Term::Str(json.into()),
    };
    let out = check_export_here(&export(&[string, def]), &Options::default());
    assert_eq!(out.verdict, Verdict::Accept);
    assert_eq!(check_binding(&out.checked, "policyJson", json), Ok(()));
    assert!(matches!(
        check_binding(&out.checked, "policyJson", r#"{"name":"other"}"#),
        Err(BindingError::Mismatch { .. })
    ));
    assert!(matches!(
        check_binding(&out.checked, "missing", json),
        Err(BindingError::Unknown(_))
    ));
    assert!(matches!(
        check_binding(&out.checked, "String", json),
        Err(BindingError::NotDefinition(_))
    ));
}

/// Random closed terms of type `Nat` over `Nat.zero`, `Nat.succ`, literals, beta-redexes and lets.
fn nat_term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![Just(Term::c("Nat.zero")), (0u64..1000).prop_map(Term::Nat)];
    leaf.prop_recursive(4, 32, 2, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|t| Term::app(Term::c("Nat.succ"), t)),
            // (fun x => succ x) t
            inner
                .clone()
                .prop_map(|t| Term::app(Term::lam(nat(), Term::app(Term::c("Nat.succ"), b(0))), t)),
            // let x := t; x
            inner
                .clone()
                .prop_map(|t| Term::Let(Box::new(nat()), Box::new(t), Box::new(b(0)))),
            (inner.clone(), inner).prop_map(|(a, c)| Term::apps(Term::c("Nat.add"), vec![a, c])),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn well_typed_nat_definitions_are_accepted_and_retyped_ones_rejected(t in nat_term()) {
        let good = Decl::Def { name: "d".into(), lparams: vec![], ty: nat(), value: t.clone() };
        prop_assert_eq!(verdict(&[nat_decl(None, None), nat_add(), good]), Verdict::Accept);
        let bad = Decl::Def { name: "d".into(), lparams: vec![], ty: Term::pi(nat(), nat()), value: t };
        let v = verdict(&[nat_decl(None, None), nat_add(), bad]);
        prop_assert!(is_reject(&v), "{:?}", v);
    }

    #[test]
    fn literal_addition_is_checked_with_big_integers(a in 0u64..u64::MAX / 2, c in 0u64..u64::MAX / 2) {
        let p = Decl::Axiom { name: "P".into(), lparams: vec![], ty: Term::pi(nat(), Term::prop()) };
        let h = Decl::Axiom { name: "h".into(), lparams: vec![], ty: Term::app(Term::c("P"), Term::Nat(a + c)) };
        let claim = |n: u64| Decl::Thm {
            name: "t".into(),
            lparams: vec![],
            ty: Term::app(Term::c("P"), Term::apps(Term::c("Nat.add"), vec![Term::Nat(a), Term::Nat(n)])),
            value: Term::c("h"),
        };
        let base = vec![nat_decl(None, None), nat_add(), p, h];
        let mut ok = base.clone();
        ok.push(claim(c));
        prop_assert_eq!(verdict(&ok), Verdict::Accept);
        let mut wrong = base;
        wrong.push(claim(c + 1));
        prop_assert!(is_reject(&verdict(&wrong)));
    }

    #[test]
    fn mutated_exports_never_panic(cut in 0usize..4000, flip in 0usize..4000, byte in any::<u8>()) {
        let text = export(&[nat_decl(None, None), nat_add()]);
        let mut bytes = text.into_bytes();
        let n = bytes.len();
        bytes[flip % n] = byte;
        bytes.truncate(n - cut % n);
        let s = String::from_utf8_lossy(&bytes);
        let _ = check_export_here(&s, &Options::default());
    }
}
