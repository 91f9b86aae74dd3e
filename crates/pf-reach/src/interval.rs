//! Closed real intervals with outward-safe (but not directed-rounding) arithmetic.

// Named methods (not operator traits) keep interval arithmetic explicit at call sites.
#![allow(clippy::should_implement_trait)]

/// A closed interval `[lo, hi]`; `lo > hi` never occurs for values built by this module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Iv {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

const PI: f64 = std::f64::consts::PI;

impl Iv {
    /// The interval `[lo, hi]` (bounds are swapped if given in the wrong order).
    pub fn new(lo: f64, hi: f64) -> Iv {
        if lo <= hi {
            Iv { lo, hi }
        } else {
            Iv { lo: hi, hi: lo }
        }
    }
    /// The degenerate interval `[x, x]`.
    pub fn point(x: f64) -> Iv {
        Iv { lo: x, hi: x }
    }
    /// The whole real line.
    pub fn entire() -> Iv {
        Iv {
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        }
    }
    /// Width `hi - lo`.
    pub fn width(self) -> f64 {
        self.hi - self.lo
    }
    /// Midpoint.
    pub fn mid(self) -> f64 {
        0.5 * (self.lo + self.hi)
    }
    /// Largest absolute value.
    pub fn mag(self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }
    /// Smallest interval containing both.
    pub fn hull(self, o: Iv) -> Iv {
        Iv {
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
        }
    }
    /// Whether `o` lies inside `self`.
    pub fn contains_iv(self, o: Iv) -> bool {
        self.lo <= o.lo && o.hi <= self.hi
    }
    /// Whether `x` lies inside.
    pub fn contains(self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
    /// Whether any bound is NaN.
    pub fn is_nan(self) -> bool {
        self.lo.is_nan() || self.hi.is_nan()
    }
    fn fix(self) -> Iv {
        if self.is_nan() { Iv::entire() } else { self }
    }
    /// Sum.
    pub fn add(self, o: Iv) -> Iv {
        Iv {
            lo: self.lo + o.lo,
            hi: self.hi + o.hi,
        }
        .fix()
    }
    /// Difference.
    pub fn sub(self, o: Iv) -> Iv {
        Iv {
            lo: self.lo - o.hi,
            hi: self.hi - o.lo,
        }
        .fix()
    }
    /// Negation.
    pub fn neg(self) -> Iv {
        Iv {
            lo: -self.hi,
            hi: -self.lo,
        }
    }
    /// Product.
    pub fn mul(self, o: Iv) -> Iv {
        let c = [
            self.lo * o.lo,
            self.lo * o.hi,
            self.hi * o.lo,
            self.hi * o.hi,
        ];
        if c.iter().any(|v| v.is_nan()) {
            // 0 * inf: fall back to the whole line (sound).
            return Iv::entire();
        }
        let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Iv { lo, hi }
    }
    /// Quotient; a divisor containing zero gives the whole line.
    pub fn div(self, o: Iv) -> Iv {
        if o.lo <= 0.0 && o.hi >= 0.0 {
            return Iv::entire();
        }
        self.mul(Iv::new(1.0 / o.hi, 1.0 / o.lo))
    }
    /// Power with a real exponent interval.
    pub fn pow(self, e: Iv) -> Iv {
        if e.lo == e.hi && e.lo.fract() == 0.0 && e.lo.abs() < 1e6 {
            return self.powi(e.lo as i64);
        }
        // Non-integer exponent: defined for positive bases only.
        if self.lo <= 0.0 {
            return Iv::entire();
        }
        self.ln().mul(e).exp()
    }
    /// Integer power.
    pub fn powi(self, n: i64) -> Iv {
        if n == 0 {
            return Iv::point(1.0);
        }
        if n < 0 {
            return Iv::point(1.0).div(self.powi(-n));
        }
        let n32 = n.min(i32::MAX as i64) as i32;
        let a = self.lo.powi(n32);
        let b = self.hi.powi(n32);
        if n % 2 == 1 || self.lo >= 0.0 {
            Iv::new(a, b).fix()
        } else if self.hi <= 0.0 {
            Iv::new(b, a).fix()
        } else {
            Iv::new(0.0, a.max(b)).fix()
        }
    }
    /// Exponential.
    pub fn exp(self) -> Iv {
        Iv {
            lo: self.lo.exp(),
            hi: self.hi.exp(),
        }
        .fix()
    }
    /// Natural logarithm (whole line if the argument reaches zero or below).
    pub fn ln(self) -> Iv {
        if self.lo <= 0.0 {
            Iv::entire()
        } else {
            Iv {
                lo: self.lo.ln(),
                hi: self.hi.ln(),
            }
            .fix()
        }
    }
    /// Square root (whole line if the argument goes negative).
    pub fn sqrt(self) -> Iv {
        if self.lo < 0.0 {
            Iv::entire()
        } else {
            Iv {
                lo: self.lo.sqrt(),
                hi: self.hi.sqrt(),
            }
            .fix()
        }
    }
    /// Absolute value.
    pub fn abs(self) -> Iv {
        if self.lo >= 0.0 {
            self
        } else if self.hi <= 0.0 {
            self.neg()
        } else {
            Iv {
                lo: 0.0,
                hi: self.mag(),
            }
        }
    }
    /// Sine.
    pub fn sin(self) -> Iv {
        self.sub(Iv::point(PI / 2.0)).cos()
    }
    /// Cosine.
    pub fn cos(self) -> Iv {
        if !self.lo.is_finite() || !self.hi.is_finite() || self.width() >= 2.0 * PI {
            return Iv::new(-1.0, 1.0);
        }
        // Shift so that lo is in [0, 2pi).
        let k = (self.lo / (2.0 * PI)).floor();
        let lo = self.lo - k * 2.0 * PI;
        let hi = self.hi - k * 2.0 * PI;
        let (a, b) = (lo.cos(), hi.cos());
        let mut r = Iv::new(a.min(b), a.max(b));
        // Maxima at 2pi*m, minima at pi + 2pi*m.
        if lo <= 2.0 * PI && hi >= 2.0 * PI || lo <= 4.0 * PI && hi >= 4.0 * PI {
            r.hi = 1.0;
        }
        if (lo <= PI && hi >= PI) || (lo <= 3.0 * PI && hi >= 3.0 * PI) {
            r.lo = -1.0;
        }
        r
    }
    /// Tangent (whole line if a pole may be inside).
    pub fn tan(self) -> Iv {
        if !self.lo.is_finite() || !self.hi.is_finite() || self.width() >= PI {
            return Iv::entire();
        }
        let k = ((self.lo + PI / 2.0) / PI).floor();
        let lo = self.lo - k * PI;
        let hi = self.hi - k * PI;
        if hi >= PI / 2.0 {
            return Iv::entire();
        }
        Iv::new(lo.tan(), hi.tan()).fix()
    }
    /// Arctangent.
    pub fn atan(self) -> Iv {
        Iv {
            lo: self.lo.atan(),
            hi: self.hi.atan(),
        }
        .fix()
    }
    /// Minimum.
    pub fn min(self, o: Iv) -> Iv {
        Iv {
            lo: self.lo.min(o.lo),
            hi: self.hi.min(o.hi),
        }
    }
    /// Maximum.
    pub fn max(self, o: Iv) -> Iv {
        Iv {
            lo: self.lo.max(o.lo),
            hi: self.hi.max(o.hi),
        }
    }
    /// Heaviside step: 1 for positive arguments, 0 otherwise.
    pub fn step(self) -> Iv {
        if self.lo > 0.0 {
            Iv::point(1.0)
        } else if self.hi <= 0.0 {
            Iv::point(0.0)
        } else {
            Iv::new(0.0, 1.0)
        }
    }
}

impl serde::Serialize for Iv {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.lo, self.hi].serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encloses(iv: Iv, f: impl Fn(f64) -> f64, dom: Iv) {
        for k in 0..=200 {
            let x = dom.lo + dom.width() * k as f64 / 200.0;
            let y = f(x);
            assert!(
                iv.lo - 1e-12 <= y && y <= iv.hi + 1e-12,
                "{y} not in {iv:?} at {x}"
            );
        }
    }

    #[test]
    fn functions_enclose_samples() {
        for &(lo, hi) in &[
            (-3.0, 2.0),
            (0.1, 7.5),
            (-10.0, -9.0),
            (5.0, 12.0),
            (-0.5, 0.5),
        ] {
            let d = Iv::new(lo, hi);
            encloses(d.sin(), f64::sin, d);
            encloses(d.cos(), f64::cos, d);
            encloses(d.exp(), f64::exp, d);
            encloses(d.abs(), f64::abs, d);
            encloses(d.powi(2), |x| x * x, d);
            encloses(d.powi(3), |x| x * x * x, d);
            encloses(d.mul(d), |x| x * x, d);
            encloses(d.atan(), f64::atan, d);
        }
        let d = Iv::new(0.2, 1.3);
        encloses(d.tan(), f64::tan, d);
        encloses(d.ln(), f64::ln, d);
        encloses(d.sqrt(), f64::sqrt, d);
    }

    #[test]
    fn division_by_zero_interval_is_entire() {
        assert_eq!(Iv::point(1.0).div(Iv::new(-1.0, 1.0)), Iv::entire());
        assert_eq!(Iv::point(1.0).div(Iv::new(2.0, 4.0)), Iv::new(0.25, 0.5));
    }
}
