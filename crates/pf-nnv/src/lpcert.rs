//! The LP of a branch-and-bound node: find an input in the box where every linear lower bound
//! `g_r(x)` stays at most its right-hand side `d_r` (each row is a necessary condition for a
//! counterexample in the node's sub-domain). The simplex answer is never trusted by itself:
//! the node is closed only when the LP's dual multipliers `mu >= 0`, re-checked with outward
//! rounding, prove `sum_r mu_r (g_r(x) - d_r) > 0` everywhere on the box, which no point
//! satisfying every row can do (Farkas' lemma, checked rather than believed).

use crate::bounds::LinearBound;
use crate::lp::{LpOutcome, maximize};
use crate::sound::{add_down, add_up, box_min, dot_down, dot_error, mul_up};

/// What the LP says about a node.
#[derive(Debug, Clone, PartialEq)]
pub enum LpVerdict {
    /// No point of the box satisfies every row: certified by re-checked duals.
    Closed,
    /// Not closed: the LP's point (a counterexample candidate) and the optimal slack `t*`
    /// (smallest common excess of the rows over their right-hand sides; `> 0` means the rows are
    /// jointly infeasible but the certificate did not hold up under rounding).
    Open {
        /// Candidate point inside the box.
        x: Vec<f64>,
        /// Optimal common excess.
        excess: f64,
    },
    /// The simplex failed (pivot budget, numerical trouble).
    Failed,
}

/// Is `min over the box of sum_r mu_r (g_r(x) - d_r)` provably positive?
pub fn certificate_holds(
    rows: &[LinearBound],
    rhs: &[f64],
    mu: &[f64],
    lo: &[f64],
    hi: &[f64],
) -> bool {
    let n = lo.len();
    let mut coef = vec![0.0; n];
    let mut abs = vec![0.0; n];
    for (k, b) in rows.iter().enumerate() {
        for i in 0..n {
            coef[i] += mu[k] * b.coef[i];
            abs[i] += (mu[k] * b.coef[i]).abs();
        }
    }
    let mut err = 0.0f64;
    for i in 0..n {
        err = add_up(
            err,
            mul_up(dot_error(rows.len(), abs[i]), lo[i].abs().max(hi[i].abs())),
        );
    }
    let consts: Vec<f64> = rows
        .iter()
        .zip(rhs)
        .map(|(b, d)| add_down(b.constant, -d))
        .collect();
    let total = add_down(
        add_down(box_min(&coef, lo, hi), dot_down(mu, &consts)),
        -err,
    );
    total > 0.0
}

/// Solve `min tau s.t. g_r(x) - d_r <= tau (r = 1..m), lo <= x <= hi` and certify `tau* > 0`.
/// `margins[r]` is a sound lower bound of `min g_r - d_r` over the box (it anchors `tau`).
pub fn solve(
    rows: &[LinearBound],
    rhs: &[f64],
    margins: &[f64],
    lo: &[f64],
    hi: &[f64],
) -> LpVerdict {
    let (k, n) = (rows.len(), lo.len());
    // Shift: x = lo + x', 0 <= x' <= hi - lo; tau = t_lo + tau', tau' >= 0.
    let t_lo = margins.iter().copied().fold(f64::INFINITY, f64::min) - 1.0;
    let m = k + n;
    let mut a = vec![0.0; m * (n + 1)];
    let mut b = vec![0.0; m];
    for (r, (g, d)) in rows.iter().zip(rhs).enumerate() {
        a[r * (n + 1)..r * (n + 1) + n].copy_from_slice(&g.coef);
        a[r * (n + 1) + n] = -1.0;
        let at_lo: f64 = g.coef.iter().zip(lo).map(|(c, l)| c * l).sum();
        b[r] = t_lo - g.constant + d - at_lo;
    }
    for i in 0..n {
        a[(k + i) * (n + 1) + i] = 1.0;
        b[k + i] = hi[i] - lo[i];
    }
    let mut c = vec![0.0; n + 1];
    c[n] = -1.0;
    match maximize(&a, &b, &c) {
        LpOutcome::Optimal { value, z, duals } => {
            let excess = t_lo - value;
            let mu: Vec<f64> = duals[..k].iter().map(|v| v.max(0.0)).collect();
            if excess > 0.0 && certificate_holds(rows, rhs, &mu, lo, hi) {
                return LpVerdict::Closed;
            }
            let x = (0..n).map(|i| (lo[i] + z[i]).clamp(lo[i], hi[i])).collect();
            LpVerdict::Open { x, excess }
        }
        _ => LpVerdict::Failed,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(coef: &[f64], constant: f64) -> LinearBound {
        LinearBound {
            coef: coef.to_vec(),
            constant,
        }
    }

    #[test]
    fn contradictory_rows_are_closed_by_a_certificate() {
        // x <= 0.2 and -x <= -0.6 (x >= 0.6) on [0, 1]: no point satisfies both.
        let rows = [row(&[1.0], 0.0), row(&[-1.0], 0.0)];
        let v = solve(&rows, &[0.2, -0.6], &[-0.2, -0.4], &[0.0], &[1.0]);
        assert_eq!(v, LpVerdict::Closed);
    }

    #[test]
    fn satisfiable_rows_stay_open_with_a_point_that_satisfies_them() {
        // x <= 0.7 and x >= 0.6 on [0, 1].
        let rows = [row(&[1.0], 0.0), row(&[-1.0], 0.0)];
        let LpVerdict::Open { x, excess } =
            solve(&rows, &[0.7, -0.6], &[-0.7, -0.4], &[0.0], &[1.0])
        else {
            panic!()
        };
        assert!(excess <= 0.0);
        assert!((0.6 - 1e-9..=0.7 + 1e-9).contains(&x[0]), "{x:?}");
    }

    #[test]
    fn a_wrong_certificate_is_rejected() {
        // Rows are satisfiable at x = 0.65: no multipliers can prove otherwise.
        let rows = [row(&[1.0], 0.0), row(&[-1.0], 0.0)];
        assert!(!certificate_holds(
            &rows,
            &[0.7, -0.6],
            &[1.0, 1.0],
            &[0.0],
            &[1.0]
        ));
    }
}
