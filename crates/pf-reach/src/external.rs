//! Black-box simulators run as a child process.
//!
//! Protocol (one process per simulation): pf-reach writes one JSON line to the child's stdin,
//! `{"mode": "On", "initial": [x1, ...], "horizon": T, "step": h}`, and closes stdin. The child
//! writes one sample per line to stdout, `t x1 x2 ... xn` (whitespace-separated decimal numbers),
//! starting at `t = 0`, strictly increasing in `t`, ending at or after `T`. Anything else (too few
//! columns, non-numbers, NaN, decreasing time, no samples, more than 64 MiB of output, a non-zero
//! exit status) is an error; a child still running after the time limit is killed.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MAX_OUTPUT: usize = 64 << 20;

/// An external simulator command.
#[derive(Clone, Debug)]
pub struct ExternalSim {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Time limit per simulation.
    pub timeout: Duration,
    /// Requested sample step.
    pub step: f64,
    /// Number of state variables.
    pub dim: usize,
}

impl ExternalSim {
    /// Parse the `simulator` section: `{"command": [...], "timeout_ms": 10000, "step": 0.05}`.
    pub fn from_json(v: &Value, base: Option<&Path>, dim: usize) -> Result<ExternalSim, String> {
        let cmd = v
            .get("command")
            .and_then(Value::as_array)
            .ok_or("`command` must be an array of strings")?;
        let mut command: Vec<String> = cmd
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or("`command` must be an array of strings")?;
        if command.is_empty() {
            return Err("`command` is empty".into());
        }
        if let Some(b) = base {
            // A relative program path with a slash is taken relative to the problem file.
            if command[0].contains('/') && Path::new(&command[0]).is_relative() {
                command[0] = b.join(&command[0]).display().to_string();
            }
        }
        let ms = v
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .unwrap_or(10_000)
            .clamp(1, 3_600_000);
        let step = v.get("step").and_then(Value::as_f64).unwrap_or(0.05);
        if !(step > 0.0 && step.is_finite()) {
            return Err("`step` must be positive".into());
        }
        Ok(ExternalSim {
            command,
            timeout: Duration::from_millis(ms),
            step,
            dim,
        })
    }

    /// Run one simulation.
    pub fn simulate(
        &self,
        mode: &str,
        x0: &[f64],
        horizon: f64,
    ) -> Result<(Vec<f64>, Vec<Vec<f64>>), String> {
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start simulator `{}`: {e}", self.command[0]))?;
        let req =
            serde_json::json!({"mode": mode, "initial": x0, "horizon": horizon, "step": self.step});
        if let Some(mut stdin) = child.stdin.take() {
            // A simulator that ignores its input may close stdin early: not an error by itself.
            let _ = writeln!(stdin, "{req}");
        }
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = (&mut stdout)
                .take(MAX_OUTPUT as u64 + 1)
                .read_to_end(&mut buf);
            r.map(|_| buf)
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if start.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "simulator exceeded its time limit of {:?}",
                        self.timeout
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(format!("waiting for simulator: {e}")),
            }
        };
        let buf = reader
            .join()
            .map_err(|_| "reader thread failed")?
            .map_err(|e| format!("reading simulator output: {e}"))?;
        if !status.success() {
            return Err(format!("simulator exited with {status}"));
        }
        if buf.len() > MAX_OUTPUT {
            return Err("simulator printed more than 64 MiB".into());
        }
        parse_trace(&String::from_utf8_lossy(&buf), self.dim, horizon)
    }
}

/// Parse the `t x1 ... xn` trace format.
pub fn parse_trace(
    text: &str,
    dim: usize,
    horizon: f64,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), String> {
    let mut ts = Vec::new();
    let mut xs = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let nums: Result<Vec<f64>, _> = line.split_whitespace().map(str::parse::<f64>).collect();
        let nums = nums.map_err(|_| {
            format!(
                "simulator output line {}: not numbers: `{}`",
                ln + 1,
                line.chars().take(60).collect::<String>()
            )
        })?;
        if nums.len() != dim + 1 {
            return Err(format!(
                "simulator output line {}: {} columns, expected {}",
                ln + 1,
                nums.len(),
                dim + 1
            ));
        }
        if nums.iter().any(|v| !v.is_finite()) {
            return Err(format!("simulator output line {}: NaN or infinity", ln + 1));
        }
        if let Some(&last) = ts.last() {
            if nums[0] <= last {
                return Err(format!(
                    "simulator output line {}: time does not increase",
                    ln + 1
                ));
            }
        } else if nums[0].abs() > 1e-9 {
            return Err("simulator output must start at t = 0".into());
        }
        ts.push(nums[0]);
        xs.push(nums[1..].to_vec());
    }
    match ts.last() {
        None => Err("simulator printed no samples".into()),
        Some(&l) if l < horizon - 1e-6 * horizon.max(1.0) => Err(format!(
            "simulator stopped at t = {l} before the horizon {horizon}"
        )),
        _ => Ok((ts, xs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_format() {
        assert!(parse_trace("0 1\n0.5 2\n1 3\n", 1, 1.0).is_ok_and(|(t, _)| t.len() == 3));
        assert!(parse_trace("0 1\n0.5 x\n", 1, 0.5).is_err());
        assert!(parse_trace("0 1 2\n", 1, 0.0).is_err());
        assert!(parse_trace("0 1\n0 1\n", 1, 0.0).is_err());
        assert!(parse_trace("0 NaN\n", 1, 0.0).is_err());
        assert!(parse_trace("", 1, 1.0).is_err());
        assert!(parse_trace("0 1\n0.5 1\n", 1, 1.0).is_err());
    }
}
