//! `pf-reach`: DryVR-style reachability for hybrid systems. It reads DryVR's JSON problems
//! (mode graph, guards, resets, initial box, unsafe set, horizon), simulates ODE models written
//! in a small expression language (adaptive Dormand–Prince) or an external simulator, learns
//! discrepancy functions from traces (or, for ODEs, uses a sound Jacobian-based bound), bloats
//! traces into reachtubes, and returns `safe` (with the tube), `unsafe` (with a simulated
//! counterexample) or `unknown` after refining the initial set.

pub mod deriv;
pub mod discrepancy;
pub mod expr;
pub mod external;
pub mod interval;
pub mod model;
pub mod ode;
pub mod output;
pub mod pred;
pub mod problem;
pub mod reach;
pub mod sound;
pub mod switches;

pub use problem::{Problem, ProblemError};
pub use reach::{Method, Options, Report, Stats, Verdict, check};
