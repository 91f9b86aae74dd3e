//! Guard-window slicing: two bodies moving together keep their distance, but the hull of their
//! positions over a long transition window does not. Slicing the window by transition time
//! proves the system safe, and the sliced tube still covers every run.

use pf_reach::{Options, Problem, Verdict, check};

/// `x1` and `x2` move at the same speed in `Move`, freeze in `Stop`; `Move` may be left at any
/// time in `[0, 10]`; they must never come within 1 of each other.
fn together() -> Problem {
    Problem::from_json_str(
        r#"{"vertex":["Move","Stop"],"edge":[[0,1]],"variables":["x1","x2"],
            "guards":["t<=10"],"initialSet":[[0,5],[0.5,5.5]],
            "unsafeSet":"@Allmode:And(x1-x2<1, x2-x1<1)","timeHorizon":20,
            "dynamics":{"step":0.05,"modes":{"Move":{"x1":"1","x2":"1"},"Stop":{"x1":"0","x2":"0"}}}}"#,
        "together.json",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn whole_windows_cannot_prove_it() {
    let o = Options {
        window_levels: 0,
        max_depth: 2,
        ..Options::default()
    };
    let r = check(&together(), &o);
    assert_eq!(r.verdict.label(), "unknown");
}

#[test]
fn sliced_windows_prove_it_and_cover_every_run() {
    let p = together();
    let r = check(&p, &Options::default());
    let Verdict::Safe { tube } = &r.verdict else {
        panic!("expected safe, got {:?}", r.verdict)
    };
    // A run leaving `Move` at time tau from (a, b) stays at (a + tau, b + tau): some `Stop`
    // tube box entered in a time interval containing tau must hold it.
    for (a, b) in [(0.0, 5.0), (0.5, 5.5), (0.2, 5.4)] {
        for tau in [0.0, 0.3, 2.7, 5.1, 7.77, 9.9, 10.0] {
            let x = [a + tau, b + tau];
            let covered = tube.iter().filter(|m| m.mode == "Stop").any(|m| {
                m.start.contains(tau)
                    && m.boxes
                        .iter()
                        .any(|bx| bx.x.iter().zip(&x).all(|(i, v)| i.contains(*v)))
            });
            assert!(
                covered,
                "state {x:?} after leaving at {tau} is outside the tube"
            );
        }
    }
}
