//! Deterministic sampling of initial states: the centre of a box, its vertices and uniform
//! random points (DryVR simulates from such samples to search for counterexamples and to learn
//! discrepancy functions).

use crate::interval::Iv;

/// SplitMix64: a small deterministic generator for sampling initial states.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Centre, the vertices (all of them when at most 4 dimensions are free, else 16 random ones),
/// then `random` uniform points of the box.
pub fn sample_points(b: &[Iv], random: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let mut pts = vec![b.iter().map(|i| i.mid()).collect::<Vec<_>>()];
    let free: Vec<usize> = (0..b.len()).filter(|&j| b[j].width() > 0.0).collect();
    if free.is_empty() {
        return pts;
    }
    let nv = if free.len() <= 4 {
        1usize << free.len()
    } else {
        16
    };
    for v in 0..nv {
        let mut p = pts[0].clone();
        for (bit, &j) in free.iter().enumerate() {
            let up = if free.len() <= 4 {
                (v >> bit) & 1 == 1
            } else {
                rng.next_f64() < 0.5
            };
            p[j] = if up { b[j].hi } else { b[j].lo };
        }
        pts.push(p);
    }
    for _ in 0..random {
        pts.push(
            b.iter()
                .map(|i| i.lo + i.width() * rng.next_f64())
                .collect(),
        );
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_centre_vertices_then_inside() {
        let b = [Iv::new(0.0, 2.0), Iv::point(5.0), Iv::new(-1.0, 1.0)];
        let pts = sample_points(&b, 3, &mut Rng::new(7));
        assert_eq!(pts[0], vec![1.0, 5.0, 0.0]);
        // Two free dimensions: four vertices.
        assert_eq!(pts.len(), 1 + 4 + 3);
        for p in &pts[1..5] {
            assert!(p[0] == 0.0 || p[0] == 2.0);
            assert!(p[2] == -1.0 || p[2] == 1.0);
        }
        for p in &pts {
            assert!(b.iter().zip(p).all(|(i, x)| i.contains(*x)));
        }
    }
}
