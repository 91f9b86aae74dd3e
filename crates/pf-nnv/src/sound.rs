//! Outward-rounded floating-point helpers. Round-to-nearest is the only mode Rust offers, so
//! directed rounding is emulated: a rounded sum or product is within half an ulp of the exact
//! value, and `next_down`/`next_up` of it is a valid lower/upper bound. Dot products use the
//! a-priori bound |fl(a.b) - a.b| <= gamma_n sum |a_i b_i| (Higham, *Accuracy and Stability of
//! Numerical Algorithms*, 2nd ed., §3.1, eq. 3.5), inflated to cover the rounding of the bound
//! itself and underflow.

/// Unit roundoff of f64.
pub const U: f64 = f64::EPSILON / 2.0;
/// Smallest positive subnormal: bounds the absolute error of one underflowing product.
const ETA: f64 = 5e-324;

/// A safe over-estimate of Higham's `gamma_n = n u / (1 - n u)` (valid while `n u < 0.01`).
pub fn gamma(n: usize) -> f64 {
    (n as f64 + 2.0) * 1.02 * U
}

/// A lower bound of `a + b`.
pub fn add_down(a: f64, b: f64) -> f64 {
    (a + b).next_down()
}

/// An upper bound of `a + b`.
pub fn add_up(a: f64, b: f64) -> f64 {
    (a + b).next_up()
}

/// A lower bound of `a * b`.
pub fn mul_down(a: f64, b: f64) -> f64 {
    let p = a * b;
    if p == 0.0 && a != 0.0 && b != 0.0 {
        -ETA
    } else {
        p.next_down()
    }
}

/// An upper bound of `a * b`.
pub fn mul_up(a: f64, b: f64) -> f64 {
    let p = a * b;
    if p == 0.0 && a != 0.0 && b != 0.0 {
        ETA
    } else {
        p.next_up()
    }
}

/// An upper bound of the rounding error of a computed dot product of length `n` whose
/// computed absolute-value sum is `abs_sum`.
pub fn dot_error(n: usize, abs_sum: f64) -> f64 {
    // The computed abs_sum may itself be low by gamma_n: inflate by (1 + 2 gamma) and round up.
    let g = gamma(2 * n + 2);
    ((g * abs_sum).next_up() * (1.0 + 2.0 * g)).next_up() + (n as f64 + 1.0) * ETA
}

/// A lower bound of `a . b`.
pub fn dot_down(a: &[f64], b: &[f64]) -> f64 {
    let (mut s, mut abs) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let p = x * y;
        s += p;
        abs += p.abs();
    }
    (s - dot_error(a.len(), abs)).next_down()
}

/// An upper bound of `a . b`.
pub fn dot_up(a: &[f64], b: &[f64]) -> f64 {
    let (mut s, mut abs) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let p = x * y;
        s += p;
        abs += p.abs();
    }
    (s + dot_error(a.len(), abs)).next_up()
}

/// A lower bound of `min over x in [lo, hi] of a . x`.
pub fn box_min(a: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let (mut s, mut abs) = (0.0f64, 0.0f64);
    for ((&c, &l), &h) in a.iter().zip(lo).zip(hi) {
        let p = c * if c >= 0.0 { l } else { h };
        s += p;
        abs += p.abs();
    }
    (s - dot_error(a.len(), abs)).next_down()
}

/// An upper bound of `max over x in [lo, hi] of a . x`.
pub fn box_max(a: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let (mut s, mut abs) = (0.0f64, 0.0f64);
    for ((&c, &l), &h) in a.iter().zip(lo).zip(hi) {
        let p = c * if c >= 0.0 { h } else { l };
        s += p;
        abs += p.abs();
    }
    (s + dot_error(a.len(), abs)).next_up()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dot_bounds_enclose_an_exactly_known_sum() {
        // Ten products 0.1 * 3 (0.1 as the nearest f64): the exact real sum is 30 * 0.1f64,
        // a value the f64 sum misses by rounding; the bounds must enclose it.
        let a = vec![0.1; 10];
        let b = vec![3.0; 10];
        let lower = dot_down(&a, &b);
        let upper = dot_up(&a, &b);
        assert!(lower < upper);
        // Exact sum is 3 + 1.67e-16: above 3.0, below the next f64.
        assert!(lower <= 3.0 && upper > 3.0);
        assert!(upper - lower < 1e-12);
    }

    #[test]
    fn cancellation_is_covered() {
        // 1e16 + 1 - 1e16 computed in f64 loses the 1; the bounds must still enclose 1.
        let a = [1e16, 1.0, -1e16];
        let b = [1.0, 1.0, 1.0];
        assert!(dot_down(&a, &b) <= 1.0 && 1.0 <= dot_up(&a, &b));
    }

    #[test]
    fn underflowing_products_are_covered() {
        assert!(mul_down(1e-200, 1e-200) < 0.0 && mul_up(1e-200, 1e-200) > 0.0);
    }
}
