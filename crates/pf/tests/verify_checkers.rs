//! `pf verify` with the native `lean` and `reach` checkers: real Lean output re-checked by the
//! kernel with its axioms reported, a policy binding, reachability in both methods, and the
//! failure cases (sorry, wrong binding, unsafe system, external simulator) ending as the right
//! verdicts. Then `pf bundle verify --attestors` accepts the attestation only for its bundle.

use std::path::Path;
use std::process::Output;

use pf_lean::builder::{Decl, Lvl, Term, export};

mod common;
use common::pf;

const SPEC_HEAD: &str =
    "name: proof-agent\nversion: 1.0.0\ncapabilities:\n  - name: brake\n    kind: tool\nproofs:\n";

/// Builds `name` from a spec whose `proofs:` list is `proofs`, with `files`.
fn bundle(dir: &Path, name: &str, proofs: &str, files: &[(&str, Vec<u8>)]) {
    let mut b = pf_bundle::BundleBuilder::new("proof-agent", "1.0.0").expect("builder");
    b.spec(format!("{SPEC_HEAD}{proofs}").into_bytes())
        .expect("spec");
    for (path, bytes) in files {
        b.add_file(path, bytes.clone()).expect("add");
    }
    std::fs::write(dir.join(name), b.build().expect("build").bytes).expect("write");
}

/// The canonical policy JSON of the test spec (what a Lean binding must hold).
fn policy_json() -> String {
    let text = format!("{SPEC_HEAD}  - {{ name: x, type: reach, file: r.json }}\n");
    let (spec, _) = pf_spec::check_str("agent.yaml", &text, None).expect("spec");
    pf_policy::compile(&spec)
        .expect("policy")
        .policy
        .canonical_json()
}

/// An export with `String`, `policyJson := json`, and theorem `id_proof : ∀ p : Prop, p → p`
/// (or, with `sorry`, a theorem that rests on `sorryAx`).
fn lean_export(json: &str, sorry: bool) -> Vec<u8> {
    let mut decls = vec![
        Decl::Axiom {
            name: "String".into(),
            lparams: vec![],
            ty: Term::ty(),
        },
        Decl::Def {
            name: "policyJson".into(),
            lparams: vec![],
            ty: Term::c("String"),
            value: Term::Str(json.into()),
        },
    ];
    let ty = Term::pi(Term::prop(), Term::pi(Term::BVar(0), Term::BVar(1)));
    if sorry {
        let u = || Lvl::Param("u".into());
        decls.push(Decl::Axiom {
            name: "sorryAx".into(),
            lparams: vec!["u".into()],
            ty: Term::pi(Term::sort(u()), Term::BVar(0)),
        });
        decls.push(Decl::Thm {
            name: "id_proof".into(),
            lparams: vec![],
            ty: ty.clone(),
            value: Term::app(Term::Const("sorryAx".into(), vec![Lvl::Zero]), ty),
        });
    } else {
        decls.push(Decl::Thm {
            name: "id_proof".into(),
            lparams: vec![],
            ty,
            value: Term::lam(Term::prop(), Term::lam(Term::BVar(0), Term::BVar(0))),
        });
    }
    export(&decls).into_bytes()
}

const DECAY: &str = r#"{
  "vertex": ["Brake"], "edge": [], "variables": ["gap", "speed"], "guards": [],
  "initialSet": [[9.5, 9.5], [10.5, 10.5]],
  "unsafeSet": "@Allmode:gap<LIMIT",
  "timeHorizon": 5.0,
  "dynamics": {"step": 0.05, "equations": {"gap": "-speed", "speed": "-2*speed"}}
}"#;

fn json_report(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn obligation<'v>(report: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    report["obligations"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no obligation {name} in {report}"))
}

#[test]
fn lean_and_reach_obligations_are_checked_gated_and_attested() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    let json = policy_json();
    // gap starts at 9.5-10.5 m and the car stops within 5.25 m: the closest gap is 4.25 m.
    let proofs = "  - { name: policy, type: lean, file: proofs/policy.ndjson, theorem: id_proof, binding: policyJson, covers: [brake] }\n  - { name: stops_learned, type: reach, file: reach/brake.json, covers: [brake] }\n  - { name: stops_sound, type: reach, file: reach/brake.json, method: sound }\n";
    let good_reach = DECAY.replace("LIMIT", "1.0").into_bytes();
    bundle(
        dir,
        "good.pfb",
        proofs,
        &[
            ("proofs/policy.ndjson", lean_export(&json, false)),
            ("reach/brake.json", good_reach.clone()),
        ],
    );
    common::ci_key_and_trust(dir);
    let verify = |bundle: &str| {
        pf(
            &[
                "verify",
                bundle,
                "--no-cache",
                "--format",
                "json",
                "--key",
                "keys/ci.key.pem",
            ],
            dir,
        )
    };
    let o = verify("good.pfb");
    let r = json_report(&o);
    assert_eq!(o.status.code(), Some(0), "{r}");
    let lean = obligation(&r, "policy");
    assert_eq!(lean["verdict"]["status"], "proved", "{lean}");
    assert_eq!(lean["checker"], "pf-lean");
    assert_eq!(lean["axioms"], serde_json::json!([]), "{lean}");
    let learned = obligation(&r, "stops_learned");
    assert_eq!(learned["verdict"]["status"], "proved", "{learned}");
    assert_eq!(learned["statistics"]["sound"], 0);
    let sound = obligation(&r, "stops_sound");
    assert_eq!(sound["verdict"]["status"], "proved", "{sound}");
    assert_eq!(sound["statistics"]["sound"], 1);

    // The attestation is accepted by `pf bundle verify --attestors` (signatures + proofs) ...
    let o = pf(
        &["bundle", "sign", "good.pfb", "--key", "keys/ci.key.pem"],
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = pf(
        &[
            "bundle",
            "verify",
            "good.pfb",
            "--trust",
            "trust.json",
            "--attestors",
            "trust.json",
        ],
        dir,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("verification attestation") && out.contains("3 obligations"),
        "{out}"
    );

    // ... and rejected for another bundle, even one signed by the same key.
    bundle(
        dir,
        "other.pfb",
        proofs,
        &[
            ("proofs/policy.ndjson", lean_export(&json, false)),
            (
                "reach/brake.json",
                DECAY.replace("LIMIT", "0.5").into_bytes(),
            ),
        ],
    );
    let o = pf(
        &["bundle", "sign", "other.pfb", "--key", "keys/ci.key.pem"],
        dir,
    );
    assert!(o.status.success());
    let o = pf(
        &[
            "bundle",
            "verify",
            "other.pfb",
            "--trust",
            "trust.json",
            "--attestors",
            "trust.json",
            "--attestation",
            "good.pfb.verify.dsse.json",
        ],
        dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("REJECTED") && err.contains("not this bundle"),
        "{err}"
    );

    // Failures: a sorry proof fails the axiom gate; a stale binding and an unsafe system are
    // refuted; an external simulator is refused.
    let bad_proofs = "  - { name: policy, type: lean, file: proofs/policy.ndjson, theorem: id_proof, covers: [brake] }\n  - { name: stale, type: lean, file: proofs/policy.ndjson, theorem: id_proof, binding: policyJson }\n  - { name: crash, type: reach, file: reach/brake.json }\n  - { name: external, type: reach, file: reach/ext.json }\n";
    bundle(
        dir,
        "bad.pfb",
        bad_proofs,
        &[
            ("proofs/policy.ndjson", lean_export("{\"old\":1}", true)),
            ("reach/brake.json", DECAY.replace("LIMIT", "5.0").into_bytes()),
            (
                "reach/ext.json",
                DECAY
                    .replace(
                        r#""dynamics": {"step": 0.05, "equations": {"gap": "-speed", "speed": "-2*speed"}}"#,
                        r#""simulator": {"command": ["/bin/sh", "-c", "exit 1"]}"#,
                    )
                    .replace("LIMIT", "3.0")
                    .into_bytes(),
            ),
        ],
    );
    let o = verify("bad.pfb");
    let r = json_report(&o);
    assert_eq!(o.status.code(), Some(1), "{r}");
    let sorry = obligation(&r, "policy");
    assert_eq!(
        sorry["verdict"]["status"], "proved",
        "kernel accepts: {sorry}"
    );
    assert_eq!(sorry["axioms"], serde_json::json!(["sorryAx"]), "{sorry}");
    let axioms_gate = r["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["gate"] == "axioms"))
        .expect("axioms gate");
    assert_eq!(axioms_gate["passed"], false, "{axioms_gate}");
    assert!(
        axioms_gate["failures"].to_string().contains("sorryAx"),
        "{axioms_gate}"
    );
    let stale = obligation(&r, "stale");
    assert_eq!(stale["verdict"]["status"], "refuted", "{stale}");
    assert!(
        stale["verdict"]["evidence"].to_string().contains("binding"),
        "{stale}"
    );
    let crash = obligation(&r, "crash");
    assert_eq!(crash["verdict"]["status"], "refuted", "{crash}");
    assert!(
        crash["verdict"]["evidence"]["unsafe_at"]["state"].is_array(),
        "{crash}"
    );
    let external = obligation(&r, "external");
    assert_eq!(external["verdict"]["status"], "error", "{external}");
    assert!(
        external["verdict"]["reason"]
            .to_string()
            .contains("external simulators"),
        "{external}"
    );
    // A failed run's attestation is refused by `pf bundle verify --attestors`.
    let o = pf(
        &["bundle", "sign", "bad.pfb", "--key", "keys/ci.key.pem"],
        dir,
    );
    assert!(o.status.success());
    let o = pf(
        &[
            "bundle",
            "verify",
            "bad.pfb",
            "--trust",
            "trust.json",
            "--attestors",
            "trust.json",
        ],
        dir,
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn real_lean_output_is_rechecked_with_its_axioms_reported() {
    let Some(file) =
        pf_testkit::shared_path("vectors/lean/accept/lean4export__examples_Nat.add_succ.ndjson")
    else {
        eprintln!("SKIP: ../shared/vectors/lean is not present");
        return;
    };
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    bundle(
        dir,
        "add.pfb",
        "  - { name: add, type: lean, file: proofs/add.ndjson, theorem: Nat.add_succ, covers: [brake] }\n",
        &[(
            "proofs/add.ndjson",
            std::fs::read(file).expect("read vector"),
        )],
    );
    let o = pf(
        &["verify", "add.pfb", "--no-cache", "--format", "json"],
        dir,
    );
    let r = json_report(&o);
    assert_eq!(o.status.code(), Some(0), "{r}");
    let add = obligation(&r, "add");
    assert_eq!(add["verdict"]["status"], "proved", "{add}");
    let axioms = add["axioms"].as_array().expect("axioms reported");
    assert!(
        axioms
            .iter()
            .all(|a| ["propext", "Quot.sound", "Classical.choice"]
                .contains(&a.as_str().unwrap_or(""))),
        "{add}"
    );
    assert!(
        add["statistics"]["declarations"].as_u64().unwrap_or(0) > 10,
        "{add}"
    );
}
