//! One branch-and-bound node: its bounds, the checks that close it, the candidate points tried
//! on it, and the choice of split.

use std::sync::Arc;

use super::{Counterexample, DESCEND_ROUNDS, Options};
use crate::alpha::{Params, joint_margin, optimise, tighten};
use crate::bounds::{Analysis, PhaseSplit, concrete_lower, concrete_lower_from};
use crate::falsify::descend;
use crate::lpcert::{LpVerdict, solve};
use crate::network::Network;
use crate::phase;
use crate::property::Case;

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) case: usize,
    pub(super) lo: Vec<f64>,
    pub(super) hi: Vec<f64>,
    /// Lower bound of the violation margin from the parent: smaller first.
    pub(super) priority: f64,
    pub(super) depth: u32,
    /// Bounds computed for the parent box, still valid on this sub-box (or, when `ready`,
    /// already computed for this very box by the parent's look-ahead).
    pub(super) parent: Option<Arc<Analysis>>,
    pub(super) ready: bool,
    /// ReLU phase assumptions: the node's sub-domain is the box where all of them hold.
    pub(super) splits: Vec<PhaseSplit>,
    /// Optimised joint-bound parameters of the parent (a warm start).
    pub(super) params: Option<Arc<Params>>,
}

impl PartialEq for Node {
    fn eq(&self, o: &Self) -> bool {
        self.priority.total_cmp(&o.priority).is_eq()
    }
}
impl Eq for Node {}
impl PartialOrd for Node {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Node {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: invert so the smallest margin pops first.
        o.priority.total_cmp(&self.priority)
    }
}

pub(super) enum NodeResult {
    Closed { certified: bool, lp: bool },
    Found(Counterexample, bool),
    Split([Node; 2], bool),
    Stuck(String),
}

/// A case with output coefficients padded to the network's outputs.
pub(super) struct Target<'a> {
    pub(super) case: &'a Case,
    pub(super) coefs: Vec<Vec<f64>>,
}

/// Evaluate a point and return it as a counterexample when it lies in the case.
pub(super) fn try_point(
    net: &Network,
    t: &Target<'_>,
    idx: usize,
    x: Vec<f64>,
) -> Option<Counterexample> {
    let y = net.eval(&x);
    t.case.contains(&x, &y).then_some(Counterexample {
        input: x,
        output: y,
        case: idx,
    })
}

pub(super) fn process(net: &Network, t: &Target<'_>, node: &Node, opts: &Options) -> NodeResult {
    let lookahead = opts.lookahead;
    let (lo, hi) = (&node.lo, &node.hi);
    let analysis: Arc<Analysis> = match (&node.parent, node.ready) {
        (Some(a), true) => a.clone(),
        (p, _) => {
            let mut a = Analysis::run_split(net, lo, hi, p.as_deref(), &node.splits);
            if opts.tighten_iters > 0 && !a.empty && a.unstable(net) <= opts.tighten_unstable {
                tighten(net, &mut a, opts.tighten_iters);
            }
            Arc::new(a)
        }
    };
    if analysis.empty {
        return NodeResult::Closed {
            certified: false,
            lp: false,
        };
    }
    let k = t.coefs.len();
    let mut linear = Vec::with_capacity(k);
    let mut margins = Vec::with_capacity(k);
    for (c, oc) in t.coefs.iter().zip(&t.case.outputs) {
        let lb = analysis.lower_bound(net, c);
        let m = concrete_lower_from(&analysis, &lb, c) - oc.rhs;
        // Refuted: coef . y > rhs everywhere on the box (>= suffices for strict constraints).
        if m > 0.0 || (oc.strict && m >= 0.0) {
            return NodeResult::Closed {
                certified: false,
                lp: false,
            };
        }
        linear.push(lb);
        margins.push(m);
    }
    let centre: Vec<f64> = lo.iter().zip(hi).map(|(a, b)| a + (b - a) / 2.0).collect();
    if let Some(cex) = try_point(net, t, node.case, centre) {
        return NodeResult::Found(cex, false);
    }
    let n = lo.len();
    let mut priority = margins.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut used_lp = false;
    let phase_rows = phase::split_rows(net, &analysis, &node.splits);
    if phase_rows.iter().any(|(_, _, m)| *m > 0.0) {
        // A phase assumption fails everywhere on the box: the sub-domain is empty.
        return NodeResult::Closed {
            certified: false,
            lp: false,
        };
    }
    let rhs: Vec<f64> = t.case.outputs.iter().map(|o| o.rhs).collect();
    let mut joint = None;
    let mut params = node.params.clone();
    let mut pick_coefs = t.coefs.clone();
    if opts.alpha_iters > 0 && k >= 1 {
        let (mut p, iters) = match &node.params {
            Some(p) => ((**p).clone(), opts.alpha_iters_warm),
            None => {
                // Start from the row whose own bound is closest to refuting it (on ACAS Xu the
                // optimum is usually a single row or a blend of two).
                let best = (0..k)
                    .max_by(|&a, &b| margins[a].total_cmp(&margins[b]))
                    .unwrap_or(0);
                let lambda = (0..k).map(|m| f64::from(u8::from(m == best))).collect();
                (Params::initial(net, &analysis, lambda), opts.alpha_iters)
            }
        };
        optimise(net, &analysis, &t.coefs, &rhs, &mut p, iters);
        let (lb, threshold, m) = joint_margin(net, &analysis, &t.coefs, &rhs, &p);
        if m > 0.0 {
            return NodeResult::Closed {
                certified: false,
                lp: false,
            };
        }
        priority = priority.max(m);
        if opts.pick_joint {
            pick_coefs = vec![crate::alpha::combined(&t.coefs, &p.lambda)];
        }
        params = Some(Arc::new(p));
        joint = Some((lb, threshold, m));
    }
    let joint_coef = joint.as_ref().map(|j| j.0.coef.clone());
    if let Some(c) = &joint_coef {
        // The corner minimising the joint bound: where the relaxation says a counterexample is
        // likeliest (plus, near the root, a short descent from it).
        let corner: Vec<f64> = (0..n)
            .map(|i| if c[i] >= 0.0 { lo[i] } else { hi[i] })
            .collect();
        let start = (node.depth < opts.descend_depth).then(|| corner.clone());
        if let Some(cex) = try_point(net, t, node.case, corner) {
            return NodeResult::Found(cex, false);
        }
        if let Some(cex) = start
            .and_then(|x| descend(net, &t.coefs, t.case, x, lo, hi, DESCEND_ROUNDS))
            .and_then(|x| try_point(net, t, node.case, x))
        {
            return NodeResult::Found(cex, false);
        }
    }
    if k == 1 && phase_rows.is_empty() {
        let corner: Vec<f64> = (0..n)
            .map(|i| {
                if linear[0].coef[i] >= 0.0 {
                    lo[i]
                } else {
                    hi[i]
                }
            })
            .collect();
        if let Some(cex) = try_point(net, t, node.case, corner) {
            return NodeResult::Found(cex, false);
        }
    } else if k >= 1 {
        used_lp = true;
        let mut rhs = rhs;
        for (g, d, m) in phase_rows.into_iter().chain(joint) {
            linear.push(g);
            rhs.push(d);
            margins.push(m);
        }
        match solve(&linear, &rhs, &margins, lo, hi) {
            LpVerdict::Closed => {
                return NodeResult::Closed {
                    certified: true,
                    lp: true,
                };
            }
            LpVerdict::Open { x, excess } => {
                let start = (node.depth < opts.descend_depth).then(|| x.clone());
                if let Some(cex) = try_point(net, t, node.case, x) {
                    return NodeResult::Found(cex, true);
                }
                // Near the root, also descend on the true margin from the LP point: the LP
                // relaxation's optimum is often close to, not inside, a counterexample region.
                if let Some(cex) = start
                    .and_then(|x| descend(net, &t.coefs, t.case, x, lo, hi, DESCEND_ROUNDS))
                    .and_then(|x| try_point(net, t, node.case, x))
                {
                    return NodeResult::Found(cex, true);
                }
                priority = excess;
            }
            LpVerdict::Failed => {}
        }
    } else {
        return NodeResult::Stuck(
            "case has no output constraint but its box centre failed the re-check".into(),
        );
    }
    let phase_child = |neuron| {
        phase::branch(&node.splits, neuron).map(|splits| Node {
            case: node.case,
            lo: lo.clone(),
            hi: hi.clone(),
            priority,
            depth: node.depth + 1,
            parent: Some(analysis.clone()),
            ready: false,
            splits,
            params: params.clone(),
        })
    };
    let small = phase::relative_width(lo, hi, &t.case.lower, &t.case.upper)
        <= opts.phase_split_below
        || analysis.unstable(net) <= opts.phase_split_unstable;
    if small && let Some(neuron) = phase::pick(net, &analysis, &pick_coefs) {
        return NodeResult::Split(phase_child(neuron), used_lp);
    }
    // Split the widest input among those the bounds depend on. (Measured on ACAS Xu, this
    // beats ReluVal's smear heuristic, coefficient times width, by an order of magnitude in
    // boxes: tighter relaxations come from shrinking the box evenly.)
    let influences = |i: usize| linear.iter().any(|l| l.coef[i] != 0.0);
    let width = |i: usize| hi[i] - lo[i];
    let widest = (0..n)
        .filter(|&i| influences(i))
        .max_by(|&a, &b| width(a).total_cmp(&width(b)))
        .or_else(|| (0..n).max_by(|&a, &b| width(a).total_cmp(&width(b))))
        .unwrap_or(0);
    let d = match (opts.split_rule, &joint_coef) {
        (1, Some(c)) => {
            let sm = |i: usize| c[i].abs() * width(i);
            (0..n)
                .filter(|&i| width(i) > 0.0)
                .max_by(|&a, &b| sm(a).total_cmp(&sm(b)))
                .unwrap_or(widest)
        }
        (2, _) => {
            let mut resp = vec![0.0; n];
            for c in &pick_coefs {
                for (r, v) in resp.iter_mut().zip(analysis.input_responsibility(net, c)) {
                    *r += v;
                }
            }
            (0..n)
                .filter(|&i| width(i) > 0.0 && resp[i] > 0.0)
                .max_by(|&a, &b| resp[a].total_cmp(&resp[b]))
                .unwrap_or(widest)
        }
        _ => widest,
    };
    // Look-ahead: when the smear heuristic (ReluVal: coefficient times width) disagrees with
    // the widest input, analyse both splits and keep the one whose weaker half is closer to
    // being closed; the chosen halves' analyses are handed to the children.
    let smear = |i: usize| linear.iter().map(|l| l.coef[i].abs()).sum::<f64>() * width(i);
    let s_dim = (0..n)
        .max_by(|&a, &b| smear(a).total_cmp(&smear(b)))
        .unwrap_or(d);
    let halves = |dim: usize| -> Option<[(Vec<f64>, Vec<f64>); 2]> {
        let mid = lo[dim] + (hi[dim] - lo[dim]) / 2.0;
        if !(mid > lo[dim] && mid < hi[dim]) {
            return None;
        }
        let (mut lhi, mut rlo) = (hi.clone(), lo.clone());
        lhi[dim] = mid;
        rlo[dim] = mid;
        Some([(lo.clone(), lhi), (rlo, hi.clone())])
    };
    let progress = |a: &Analysis| {
        t.coefs
            .iter()
            .zip(&t.case.outputs)
            .map(|(c, oc)| concrete_lower(net, a, c) - oc.rhs)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let look = |dim: usize| {
        halves(dim).map(|hs| {
            let [a, b] = hs.map(|(l, h)| {
                (
                    Arc::new(Analysis::run_within(net, &l, &h, Some(&analysis))),
                    l,
                    h,
                )
            });
            (progress(&a.0).min(progress(&b.0)), [a, b])
        })
    };
    let chosen = if lookahead && s_dim != d {
        match (look(d), look(s_dim)) {
            (Some(x), Some(y)) => Some(if y.0 > x.0 { y.1 } else { x.1 }),
            (Some(x), None) => Some(x.1),
            (None, Some(y)) => Some(y.1),
            (None, None) => None,
        }
    } else {
        halves(d).map(|hs| hs.map(|(l, h)| (analysis.clone(), l, h)))
    };
    let Some(children) = chosen else {
        if let Some(neuron) = phase::pick(net, &analysis, &pick_coefs) {
            return NodeResult::Split(phase_child(neuron), used_lp);
        }
        return NodeResult::Stuck(format!(
            "input box reached floating-point resolution on X_{d}"
        ));
    };
    let ready = lookahead && s_dim != d;
    let children = children.map(|(a, l, h)| Node {
        case: node.case,
        lo: l,
        hi: h,
        priority,
        depth: node.depth + 1,
        parent: Some(a),
        ready,
        splits: node.splits.clone(),
        params: params.clone(),
    });
    NodeResult::Split(children, used_lp)
}
