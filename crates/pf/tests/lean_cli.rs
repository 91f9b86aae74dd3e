//! `pf lean` exit codes follow the Lean Kernel Arena contract (0 accept, 1 reject, 2 decline).

use std::path::PathBuf;
use std::process::Command;

use pf_lean::builder::{Decl, Lvl, Term, export};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pf-lean-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

fn pf(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(args)
        .output()
        .expect("run pf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn sorry_file() -> String {
    let u = || Lvl::Param("u".into());
    export(&[
        Decl::Axiom {
            name: "sorryAx".into(),
            lparams: vec!["u".into()],
            ty: Term::pi(Term::sort(u()), Term::BVar(0)),
        },
        Decl::Axiom {
            name: "P".into(),
            lparams: vec![],
            ty: Term::prop(),
        },
        Decl::Thm {
            name: "t".into(),
            lparams: vec![],
            ty: Term::c("P"),
            value: Term::app(Term::Const("sorryAx".into(), vec![Lvl::Zero]), Term::c("P")),
        },
    ])
}

#[test]
fn accept_reject_and_decline_exit_codes() {
    let good = write("good.ndjson", &sorry_file());
    assert_eq!(
        pf(&["lean", "check", good.to_str().expect("utf-8 path")]).0,
        0
    );
    let bad = write(
        "bad.ndjson",
        &export(&[Decl::Thm {
            name: "t".into(),
            lparams: vec![],
            ty: Term::prop(),
            value: Term::prop(),
        }]),
    );
    let (code, out) = pf(&["lean", "check", bad.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("reject: t:"), "{out}");
    let old = write("old.export", "0.1.2\n1 #NS 0 A\n");
    assert_eq!(
        pf(&["lean", "check", old.to_str().expect("utf-8 path")]).0,
        2
    );
}

#[test]
fn axiom_gate_refuses_sorry() {
    let good = write("sorry.ndjson", &sorry_file());
    let (code, out) = pf(&[
        "lean",
        "check",
        good.to_str().expect("utf-8 path"),
        "--theorem",
        "t",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("sorryAx"), "{out}");
}

#[test]
fn emit_writes_a_string_definition() {
    let json = write("policy.json", "{\"name\":\"ai-agent\"}\n");
    let (code, out) = pf(&[
        "lean",
        "emit",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--name",
        "policyJson",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("def policyJson : String :=") && out.contains(r#""{\"name\":\"ai-agent\"}""#),
        "{out}"
    );
}

#[test]
fn emit_from_a_spec_writes_the_binding_that_verify_compares_with() {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/support-agent/agent.yaml");
    let (code, out) = pf(&["lean", "emit", "--spec", spec.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{out}");
    let loaded = pf_spec::load(&spec).expect("example spec");
    let json = pf_policy::compile(&loaded.spec)
        .expect("example policy")
        .policy
        .canonical_json();
    assert_eq!(out, pf_lean::binding::emit_policy_def("policyJson", &json));
}
