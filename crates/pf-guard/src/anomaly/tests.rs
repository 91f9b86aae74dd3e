use super::*;
use proptest::prelude::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn learned_from(params: &Params, calls: &[(u64, &str)]) -> AgentBaseline {
    let mut d = Detector::new(params.clone(), AgentBaseline::default(), Duration::MAX);
    for (t, tool) in calls {
        assert!(d.check(tool, secs(*t)).is_empty(), "learning flags nothing");
        d.record(tool, secs(*t));
    }
    d.baseline().clone()
}

fn kinds(found: &[Anomaly]) -> Vec<AnomalyKind> {
    found.iter().map(Anomaly::kind).collect()
}

#[test]
fn a_sequence_from_the_baseline_passes_and_a_new_one_is_flagged() {
    let p = Params::default();
    let base = learned_from(
        &p,
        &[(0, "search_kb"), (1, "lookup_order"), (2, "send_email")],
    );
    let mut d = Detector::new(p, base, Duration::ZERO);
    for (t, tool) in [(0, "search_kb"), (1, "lookup_order"), (2, "send_email")] {
        assert_eq!(d.check(tool, secs(t)), vec![], "{tool}");
        d.record(tool, secs(t));
    }
    // search_kb -> lookup_order -> send_email is known; lookup_order -> send_email -> send_email is not.
    let found = d.check("send_email", secs(3));
    assert_eq!(
        found,
        vec![Anomaly::UnseenSequence {
            gram: vec![
                Some("lookup_order".into()),
                Some("send_email".into()),
                Some("send_email".into())
            ]
        }]
    );
    assert!(
        found[0]
            .describe()
            .contains("lookup_order -> send_email -> send_email")
    );
}

#[test]
fn a_session_starts_with_padding_so_a_new_first_tool_is_flagged() {
    let p = Params::default();
    let base = learned_from(&p, &[(0, "search_kb"), (1, "send_email")]);
    let mut d = Detector::new(p, base, Duration::ZERO);
    let found = d.check("send_email", secs(0));
    assert_eq!(
        found,
        vec![Anomaly::UnseenSequence {
            gram: vec![None, None, Some("send_email".into())]
        }]
    );
}

#[test]
fn a_long_pause_starts_a_new_segment() {
    let p = Params::default();
    // Learned: two separate segments, each a single search_kb.
    let base = learned_from(&p, &[(0, "search_kb"), (1000, "search_kb")]);
    assert!(
        base.sequences
            .contains(&vec![None, None, Some("search_kb".into())])
    );
    assert!(!base.sequences.contains(&vec![
        None,
        Some("search_kb".into()),
        Some("search_kb".into())
    ]));
    let mut d = Detector::new(p.clone(), base.clone(), Duration::ZERO);
    d.record("search_kb", secs(0));
    assert_eq!(
        kinds(&d.check("search_kb", secs(1))),
        vec![AnomalyKind::UnseenSequence]
    );
    let mut d = Detector::new(p, base, Duration::ZERO);
    d.record("search_kb", secs(0));
    assert!(
        d.check("search_kb", secs(400)).is_empty(),
        "after the gap the history restarts"
    );
}

#[test]
fn learning_window_flags_nothing_then_freezes_the_sequences() {
    let p = Params::default();
    let mut d = Detector::new(p, AgentBaseline::default(), secs(60));
    for t in 0..5 {
        assert!(d.check("search_kb", secs(t)).is_empty());
        d.record("search_kb", secs(t));
    }
    assert!(d.learning(secs(59)) && !d.learning(secs(60)));
    assert!(
        d.check("search_kb", secs(61)).is_empty(),
        "search_kb x3 was learned"
    );
    assert_eq!(
        kinds(&d.check("send_email", secs(62))),
        vec![AnomalyKind::UnseenSequence]
    );
    d.record("send_email", secs(62));
    // Recording after learning does not teach it.
    d.record("search_kb", secs(63));
    d.record("search_kb", secs(63));
    assert_eq!(
        kinds(&d.check("send_email", secs(64))),
        vec![AnomalyKind::UnseenSequence]
    );
}

#[test]
fn cold_start_flags_no_rate_below_the_floor() {
    let p = Params {
        min_calls: 10,
        ..Params::default()
    };
    let mut d = Detector::new(p, AgentBaseline::default(), Duration::ZERO);
    d.baseline
        .sequences
        .insert(vec![None, None, Some("t".into())]);
    d.baseline
        .sequences
        .insert(vec![None, Some("t".into()), Some("t".into())]);
    d.baseline
        .sequences
        .insert(vec![Some("t".into()), Some("t".into()), Some("t".into())]);
    for i in 0..10 {
        assert!(
            d.check("t", secs(0)).is_empty(),
            "call {i} is within the floor"
        );
        d.record("t", secs(0));
    }
    let spike = d.check("t", secs(0));
    assert_eq!(
        kinds(&spike),
        vec![AnomalyKind::RateSpike, AnomalyKind::RateSpike]
    );
    assert!(matches!(&spike[0], Anomaly::RateSpike { key, count: 11, .. } if key == ALL_TOOLS));
    assert!(matches!(&spike[1], Anomaly::RateSpike { key, .. } if key == "t"));
}

#[test]
fn a_spike_over_a_steady_baseline_is_flagged_and_not_learned() {
    let p = Params {
        min_calls: 1,
        k_sigma: 3.0,
        ..Params::default()
    };
    // 30 windows of 4 or 6 calls: mean 5, sd 1, threshold 8.
    let mut calls = Vec::new();
    for w in 0..30u64 {
        for i in 0..(if w % 2 == 0 { 4 } else { 6 }) {
            calls.push((w * 10 + i, "t"));
        }
    }
    let base = learned_from(&p, &calls);
    let stats = base.rates["t"];
    assert_eq!(
        stats.windows, 29,
        "the last, unfinished window is not folded"
    );
    assert!(
        (stats.mean - 5.0).abs() < 0.2 && (stats.var.sqrt() - 1.0).abs() < 0.2,
        "{stats:?}"
    );
    let mut d = Detector::new(p.clone(), base.clone(), Duration::ZERO);
    d.baseline.sequences.extend([
        vec![None, None, Some("t".into())],
        vec![None, Some("t".into()), Some("t".into())],
        vec![Some("t".into()), Some("t".into()), Some("t".into())],
    ]);
    let threshold = stats.threshold(&p);
    assert!((7.0..9.0).contains(&threshold), "{threshold}");
    let mut flagged = 0;
    for _ in 0..20 {
        if !d.check("t", secs(1000)).is_empty() {
            flagged += 1;
        }
        d.record("t", secs(1000));
    }
    assert_eq!(
        flagged,
        20 - threshold.floor() as usize,
        "calls above {threshold}"
    );
    // The next window folds nothing for the spiked keys.
    d.check("t", secs(1010));
    assert_eq!(d.baseline().rates["t"], base.rates["t"]);
}

#[test]
fn idle_windows_fold_as_zero_up_to_one_session_gap() {
    let p = Params {
        window_secs: 10,
        session_gap_secs: 30,
        alpha: 0.5,
        ..Params::default()
    };
    let mut d = Detector::new(p, AgentBaseline::default(), Duration::MAX);
    d.record("t", secs(0));
    d.record("t", secs(10_000));
    // Window 0 (1 call) then at most 3 idle windows: 4 windows folded.
    assert_eq!(d.baseline().rates["t"].windows, 4);
}

#[test]
fn params_out_of_range_are_rejected_with_the_field() {
    let bad = [
        Params {
            ngram: 0,
            ..Params::default()
        },
        Params {
            ngram: 9,
            ..Params::default()
        },
        Params {
            window_secs: 0,
            ..Params::default()
        },
        Params {
            session_gap_secs: 1,
            ..Params::default()
        },
        Params {
            alpha: 0.0,
            ..Params::default()
        },
        Params {
            alpha: f64::NAN,
            ..Params::default()
        },
        Params {
            k_sigma: -1.0,
            ..Params::default()
        },
        Params {
            min_calls: 0,
            ..Params::default()
        },
    ];
    let fields: Vec<&str> = bad
        .iter()
        .map(|p| p.validate().expect_err("bad").field)
        .collect();
    assert_eq!(
        fields,
        [
            "ngram",
            "ngram",
            "window_secs",
            "session_gap_secs",
            "alpha",
            "alpha",
            "k_sigma",
            "min_calls"
        ]
    );
    assert_eq!(Params::default().validate(), Ok(()));
}

const TOOLS: [&str; 4] = ["a", "b", "c", "d"];

fn trace() -> impl Strategy<Value = Vec<(u64, usize)>> {
    // (gap in seconds since the previous call, tool index)
    prop::collection::vec((prop_oneof![0..3u64, 0..400u64], 0..TOOLS.len()), 0..60)
}

fn timed(trace: &[(u64, usize)]) -> Vec<(u64, &'static str)> {
    let mut t = 0;
    trace
        .iter()
        .map(|(gap, i)| {
            t += gap;
            (t, TOOLS[*i])
        })
        .collect()
}

proptest! {
    /// The exact running mean and population variance for the first 1/alpha windows.
    #[test]
    fn early_windows_give_the_exact_mean_and_variance(xs in prop::collection::vec(0u32..1000, 1..20)) {
        let mut s = RateStats::default();
        for x in &xs {
            s.fold(f64::from(*x), 0.05);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().map(|x| f64::from(*x)).sum::<f64>() / n;
        let var = xs.iter().map(|x| (f64::from(*x) - mean).powi(2)).sum::<f64>() / n;
        prop_assert!((s.mean - mean).abs() < 1e-6 * (1.0 + mean));
        prop_assert!((s.var - var).abs() < 1e-6 * (1.0 + var));
    }

    /// Replaying a learned trace never flags a sequence: everything it contains was learned.
    #[test]
    fn a_learned_trace_replays_without_unseen_sequences(tr in trace(), n in 1usize..5) {
        let p = Params { ngram: n, ..Params::default() };
        let calls = timed(&tr);
        let base = learned_from(&p, &calls);
        let mut d = Detector::new(p, base, Duration::ZERO);
        for (t, tool) in &calls {
            let found = d.check(tool, secs(*t));
            prop_assert!(
                !found.iter().any(|a| a.kind() == AnomalyKind::UnseenSequence),
                "{found:?}"
            );
            d.record(tool, secs(*t));
        }
    }

    /// A flagged n-gram is never in the baseline, and always has the configured length.
    #[test]
    fn flagged_sequences_are_absent_from_the_baseline(learn in trace(), run in trace()) {
        let p = Params::default();
        let base = learned_from(&p, &timed(&learn));
        let mut d = Detector::new(p.clone(), base.clone(), Duration::ZERO);
        for (t, tool) in timed(&run) {
            for a in d.check(tool, secs(t)) {
                if let Anomaly::UnseenSequence { gram } = a {
                    prop_assert_eq!(gram.len(), p.ngram);
                    prop_assert!(!base.sequences.contains(&gram));
                }
            }
            d.record(tool, secs(t));
        }
    }

    /// No window at or below the floor is ever a spike, whatever the baseline.
    #[test]
    fn counts_within_the_floor_are_never_spikes(tr in trace(), floor in 1u64..50) {
        let p = Params { min_calls: floor, ..Params::default() };
        let mut d = Detector::new(p, AgentBaseline::default(), Duration::ZERO);
        let mut in_window: HashMap<(u64, &str), u64> = HashMap::new();
        for (t, tool) in timed(&tr) {
            let w = t / 10;
            let all = in_window.get(&(w, ALL_TOOLS)).copied().unwrap_or(0) + 1;
            let one = in_window.get(&(w, tool)).copied().unwrap_or(0) + 1;
            let spikes = d.check(tool, secs(t)).into_iter().filter(|a| a.kind() == AnomalyKind::RateSpike).count();
            if all <= floor && one <= floor {
                prop_assert_eq!(spikes, 0);
            }
            *in_window.entry((w, ALL_TOOLS)).or_default() += 1;
            *in_window.entry((w, tool)).or_default() += 1;
            d.record(tool, secs(t));
        }
    }
}
