#![no_main]
//! Expression/predicate/reset parsers and evaluators on arbitrary text.
use libfuzzer_sys::fuzz_target;
use pf_reach::expr::{Expr, Sym};
use pf_reach::interval::Iv;
use pf_reach::pred::{Pred, Reset};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let r = |n: &str| match n {
        "x" => Some(Sym::Var(0)),
        "y" => Some(Sym::Var(1)),
        "t" => Some(Sym::Time),
        _ => None,
    };
    if let Ok(e) = Expr::parse(s, &r) {
        let _ = e.eval(&[0.5, -1.0], 0.1);
        let _ = e.eval_iv(&[Iv::new(-1.0, 1.0), Iv::new(0.0, 2.0)], Iv::new(0.0, 1.0));
    }
    if let Ok(p) = Pred::parse(s, &r) {
        let _ = p.holds(&[0.5, -1.0], 0.1);
    }
    let _ = Reset::parse(s, &r);
});
