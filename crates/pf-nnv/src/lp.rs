//! A small dense simplex (dictionary form, Bland's rule, two phases with one auxiliary
//! variable as in Cormen et al., *Introduction to Algorithms*, ch. 29) for the tiny LPs of the
//! branch and bound. Its floating-point answers are never trusted for soundness: infeasibility
//! is only used through a dual certificate that the caller re-checks with outward rounding, and
//! primal points only as counterexample candidates that are re-evaluated on the network.

const EPS: f64 = 1e-12;
/// Pivot budget per solve (Bland's rule terminates; this bounds time on degenerate input).
const MAX_PIVOTS: usize = 10_000;

/// Result of `maximize c.z subject to A z <= b, z >= 0`.
#[derive(Debug, Clone, PartialEq)]
pub enum LpOutcome {
    /// An optimal vertex.
    Optimal {
        /// Objective value.
        value: f64,
        /// Primal solution.
        z: Vec<f64>,
        /// Dual multipliers, one per row (non-negative up to rounding).
        duals: Vec<f64>,
    },
    /// No feasible point.
    Infeasible,
    /// Objective unbounded above.
    Unbounded,
    /// Pivot budget exhausted or numerical trouble.
    Failed,
}

struct Dictionary {
    m: usize,
    n: usize,
    // (m + 2) x (n + 2): rows 0..m constraints, m objective, m+1 phase-one objective;
    // column n is the auxiliary variable, column n+1 the right-hand side.
    d: Vec<f64>,
    basic: Vec<usize>,
    nonbasic: Vec<usize>,
}

/// Marker for the auxiliary variable in `nonbasic`/`basic`.
const AUX: usize = usize::MAX;

impl Dictionary {
    fn at(&self, i: usize, j: usize) -> f64 {
        self.d[i * (self.n + 2) + j]
    }

    fn set(&mut self, i: usize, j: usize, v: f64) {
        let w = self.n + 2;
        self.d[i * w + j] = v;
    }

    fn pivot(&mut self, r: usize, s: usize) {
        let w = self.n + 2;
        let inv = 1.0 / self.at(r, s);
        for i in 0..self.m + 2 {
            if i == r {
                continue;
            }
            let f = self.at(i, s) * inv;
            if f != 0.0 {
                for j in 0..w {
                    if j != s {
                        self.d[i * w + j] -= self.d[r * w + j] * f;
                    }
                }
                self.set(i, s, -f);
            }
        }
        for j in 0..w {
            if j != s {
                self.d[r * w + j] *= inv;
            }
        }
        self.set(r, s, inv);
        std::mem::swap(&mut self.basic[r], &mut self.nonbasic[s]);
    }

    /// Run simplex on objective row `obj`; false when unbounded.
    fn run(&mut self, obj: usize, pivots: &mut usize) -> Option<bool> {
        loop {
            // Entering: most negative reduced cost, ties by smallest variable index (Bland).
            let mut s = None;
            for j in 0..=self.n {
                if obj == self.m && self.nonbasic[j] == AUX {
                    continue;
                }
                let v = self.at(obj, j);
                if v < -EPS {
                    s = match s {
                        None => Some(j),
                        Some(k) if self.nonbasic[j] < self.nonbasic[k] => Some(j),
                        keep => keep,
                    };
                }
            }
            let Some(s) = s else { return Some(true) };
            let mut r: Option<usize> = None;
            for i in 0..self.m {
                let a = self.at(i, s);
                if a > EPS {
                    r = match r {
                        None => Some(i),
                        Some(k) => {
                            let (q, qk) = (
                                self.at(i, self.n + 1) / a,
                                self.at(k, self.n + 1) / self.at(k, s),
                            );
                            if q < qk || (q == qk && self.basic[i] < self.basic[k]) {
                                Some(i)
                            } else {
                                Some(k)
                            }
                        }
                    };
                }
            }
            let Some(r) = r else { return Some(false) };
            *pivots += 1;
            if *pivots > MAX_PIVOTS {
                return None;
            }
            self.pivot(r, s);
        }
    }
}

/// Solve `maximize c.z s.t. A z <= b, z >= 0`; `a` is row-major `b.len()` by `c.len()`.
pub fn maximize(a: &[f64], b: &[f64], c: &[f64]) -> LpOutcome {
    let (m, n) = (b.len(), c.len());
    if a.len() != m * n || a.iter().chain(b).chain(c).any(|v| !v.is_finite()) {
        return LpOutcome::Failed;
    }
    let w = n + 2;
    let mut dict = Dictionary {
        m,
        n,
        d: vec![0.0; (m + 2) * w],
        basic: (n..n + m).collect(),
        nonbasic: (0..n).chain([AUX]).collect(),
    };
    for i in 0..m {
        for j in 0..n {
            dict.d[i * w + j] = a[i * n + j];
        }
        dict.d[i * w + n] = -1.0;
        dict.d[i * w + n + 1] = b[i];
    }
    for (j, cj) in c.iter().enumerate() {
        dict.d[m * w + j] = -cj;
    }
    dict.d[(m + 1) * w + n] = 1.0;
    let mut pivots = 0;
    // Phase one: if the origin is infeasible, enter the auxiliary variable on the worst row.
    let worst = (0..m).min_by(|&i, &k| dict.at(i, n + 1).total_cmp(&dict.at(k, n + 1)));
    if let Some(r) = worst
        && dict.at(r, n + 1) < -EPS
    {
        dict.pivot(r, n);
        match dict.run(m + 1, &mut pivots) {
            None => return LpOutcome::Failed,
            Some(false) => return LpOutcome::Failed,
            Some(true) => {}
        }
        if dict.at(m + 1, n + 1) < -1e-9 {
            return LpOutcome::Infeasible;
        }
        // Drive the auxiliary variable out of the basis if it stayed there at level zero.
        if let Some(i) = (0..m).find(|&i| dict.basic[i] == AUX) {
            let s = (0..=n)
                .filter(|&j| dict.at(i, j).abs() > EPS)
                .max_by(|&x, &y| dict.at(i, x).abs().total_cmp(&dict.at(i, y).abs()));
            match s {
                Some(s) => dict.pivot(i, s),
                None => return LpOutcome::Failed,
            }
        }
    }
    match dict.run(m, &mut pivots) {
        None => return LpOutcome::Failed,
        Some(false) => return LpOutcome::Unbounded,
        Some(true) => {}
    }
    let mut z = vec![0.0; n];
    for i in 0..m {
        if dict.basic[i] < n {
            z[dict.basic[i]] = dict.at(i, n + 1);
        }
    }
    let mut duals = vec![0.0; m];
    for j in 0..=n {
        let v = dict.nonbasic[j];
        if v != AUX && v >= n {
            duals[v - n] = dict.at(m, j);
        }
    }
    LpOutcome::Optimal {
        value: dict.at(m, n + 1),
        z,
        duals,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example_reaches_the_optimum() {
        // CLRS 29.3: max 3x1 + x2 + 2x3; x1+x2+3x3<=30, 2x1+2x2+5x3<=24, 4x1+x2+2x3<=36 -> 28.
        let a = [1.0, 1.0, 3.0, 2.0, 2.0, 5.0, 4.0, 1.0, 2.0];
        let LpOutcome::Optimal { value, z, duals } =
            maximize(&a, &[30.0, 24.0, 36.0], &[3.0, 1.0, 2.0])
        else {
            panic!()
        };
        assert!((value - 28.0).abs() < 1e-9);
        assert!((z[0] - 8.0).abs() < 1e-9 && (z[1] - 4.0).abs() < 1e-9 && z[2].abs() < 1e-9);
        // Strong duality: b.y equals the optimum.
        let by: f64 = [30.0, 24.0, 36.0]
            .iter()
            .zip(&duals)
            .map(|(b, y)| b * y)
            .sum();
        assert!((by - 28.0).abs() < 1e-9, "{duals:?}");
    }

    #[test]
    fn negative_right_hand_sides_use_phase_one() {
        // max -z s.t. -x <= -2 (x >= 2), x - z <= 0  -> z = 2 at best: value -2.
        let LpOutcome::Optimal { value, z, .. } =
            maximize(&[-1.0, 0.0, 1.0, -1.0], &[-2.0, 0.0], &[0.0, -1.0])
        else {
            panic!()
        };
        assert!((value + 2.0).abs() < 1e-9, "{value} {z:?}");
    }

    #[test]
    fn infeasible_and_unbounded_are_detected() {
        // x <= 1 and -x <= -2.
        assert_eq!(
            maximize(&[1.0, -1.0], &[1.0, -2.0], &[1.0]),
            LpOutcome::Infeasible
        );
        assert_eq!(maximize(&[-1.0], &[1.0], &[1.0]), LpOutcome::Unbounded);
    }
}
