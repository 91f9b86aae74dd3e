//! Outputs: the reachtube as JSON or CSV, and an SVG plot (written by hand) of the tube, the
//! unsafe set (sampled on a grid in the two plotted variables) and any counterexample.

use std::fmt::Write;

use crate::interval::Iv;
use crate::problem::Problem;
use crate::reach::{ModeTube, Report, Verdict};

/// The report as JSON (verdict, stats, tube or counterexample).
pub fn report_json(p: &Problem, r: &Report) -> String {
    let v = serde_json::json!({
        "problem": p.name,
        "variables": p.variables,
        "report": r,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The tube as CSV: one row per box, `vertex,mode,start_lo,start_hi,t_lo,t_hi,<var>_lo,<var>_hi,...`
/// (`t_*` is local time since the mode was entered).
pub fn tube_csv(p: &Problem, tube: &[ModeTube]) -> String {
    let mut s = String::from("vertex,mode,start_lo,start_hi,t_lo,t_hi");
    for v in &p.variables {
        let _ = write!(s, ",{v}_lo,{v}_hi");
    }
    s.push('\n');
    for m in tube {
        for b in &m.boxes {
            let _ = write!(
                s,
                "{},{},{},{},{},{}",
                m.vertex,
                m.mode.replace(',', " "),
                m.start.lo,
                m.start.hi,
                b.local.lo,
                b.local.hi
            );
            for x in &b.x {
                let _ = write!(s, ",{},{}", x.lo, x.hi);
            }
            s.push('\n');
        }
    }
    s
}

/// SVG plot of variable `xi` against `yi` (`None` for global time on the x axis).
pub fn svg(p: &Problem, r: &Report, xi: Option<usize>, yi: usize) -> String {
    let (w, h, pad) = (800.0, 600.0, 60.0);
    // Collect rectangles in plot coordinates.
    let mut rects: Vec<(Iv, Iv)> = Vec::new();
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
    match &r.verdict {
        Verdict::Safe { tube } => {
            for m in tube {
                for b in &m.boxes {
                    let xs = match xi {
                        Some(i) => b.x[i],
                        None => Iv::new(m.start.lo + b.local.lo, m.start.hi + b.local.hi),
                    };
                    rects.push((xs, b.x[yi]));
                }
            }
        }
        Verdict::Unsafe { counterexample } => {
            for s in &counterexample.segments {
                lines.push(
                    s.t.iter()
                        .zip(&s.x)
                        .map(|(t, x)| (xi.map_or(*t, |i| x[i]), x[yi]))
                        .collect(),
                );
            }
        }
        Verdict::Unknown { .. } => {}
    }
    let mut xr = Iv {
        lo: f64::INFINITY,
        hi: f64::NEG_INFINITY,
    };
    let mut yr = xr;
    for (a, b) in &rects {
        xr = Iv {
            lo: xr.lo.min(a.lo),
            hi: xr.hi.max(a.hi),
        };
        yr = Iv {
            lo: yr.lo.min(b.lo),
            hi: yr.hi.max(b.hi),
        };
    }
    for l in &lines {
        for &(a, b) in l {
            xr = Iv {
                lo: xr.lo.min(a),
                hi: xr.hi.max(a),
            };
            yr = Iv {
                lo: yr.lo.min(b),
                hi: yr.hi.max(b),
            };
        }
    }
    if !(xr.lo.is_finite() && xr.hi.is_finite() && yr.lo.is_finite() && yr.hi.is_finite()) {
        xr = Iv::new(0.0, 1.0);
        yr = Iv::new(0.0, 1.0);
    }
    let grow = |i: Iv| {
        let m = (i.width() * 0.1).max(1e-9);
        Iv::new(i.lo - m, i.hi + m)
    };
    let (xr, yr) = (grow(xr), grow(yr));
    let px = |x: f64| pad + (x - xr.lo) / xr.width() * (w - 2.0 * pad);
    let py = |y: f64| h - pad - (y - yr.lo) / yr.width() * (h - 2.0 * pad);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    // Unsafe set: grid cells (in the plotted plane, other variables at the initial centre)
    // where the unsafe predicate holds, for any mode.
    if let Some(xi) = xi {
        let centre: Vec<f64> = p.initial.iter().map(|b| b.mid()).collect();
        let g = 80;
        for a in 0..g {
            for b in 0..g {
                let x = xr.lo + xr.width() * (a as f64 + 0.5) / g as f64;
                let y = yr.lo + yr.width() * (b as f64 + 0.5) / g as f64;
                let mut pt = centre.clone();
                pt[xi] = x;
                pt[yi] = y;
                let bad = p
                    .unsafe_set
                    .all
                    .iter()
                    .chain(p.unsafe_set.by_mode.values())
                    .any(|u| u.holds(&pt, 0.0));
                if bad {
                    let (cw, ch) = ((w - 2.0 * pad) / g as f64, (h - 2.0 * pad) / g as f64);
                    let _ = writeln!(
                        s,
                        r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="#f4b6b6"/>"##,
                        px(x) - cw / 2.0,
                        py(y) - ch / 2.0,
                        cw + 0.3,
                        ch + 0.3
                    );
                }
            }
        }
    }
    for (a, b) in &rects {
        let _ = writeln!(
            s,
            r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="#6a9fd8" fill-opacity="0.35" stroke="#2c5f9e" stroke-width="0.3"/>"##,
            px(a.lo),
            py(b.hi),
            (px(a.hi) - px(a.lo)).max(0.3),
            (py(b.lo) - py(b.hi)).max(0.3)
        );
    }
    for l in &lines {
        let pts: Vec<String> = l
            .iter()
            .map(|&(a, b)| format!("{:.2},{:.2}", px(a), py(b)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#c0392b" stroke-width="1.5"/>"##,
            pts.join(" ")
        );
        if let Some(&(a, b)) = l.last() {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.2}" cy="{:.2}" r="4" fill="#c0392b"/>"##,
                px(a),
                py(b)
            );
        }
    }
    let xname = xi.map_or("t".to_string(), |i| p.variables[i].clone());
    let _ = writeln!(
        s,
        r##"<rect x="{pad}" y="{pad}" width="{}" height="{}" fill="none" stroke="black"/>"##,
        w - 2.0 * pad,
        h - 2.0 * pad
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        w / 2.0,
        h - 15.0,
        esc(&xname)
    );
    let _ = writeln!(
        s,
        r#"<text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">{}</text>"#,
        h / 2.0,
        h / 2.0,
        esc(&p.variables[yi])
    );
    for (i, (xv, yv)) in [(xr.lo, yr.lo), (xr.hi, yr.hi)].iter().enumerate() {
        let anchor = if i == 0 { "start" } else { "end" };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="{anchor}">{:.4}</text>"#,
            px(*xv),
            h - pad + 15.0,
            xv
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{:.4}</text>"#,
            pad - 4.0,
            py(*yv),
            yv
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{pad}" y="20">{} — {} (blue: reachtube, red area: unsafe set, red line: counterexample)</text>"#,
        esc(&p.name),
        r.verdict.label()
    );
    s.push_str("</svg>\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
