//! Durations (`30s`), CPU (`500m`) and memory (`512Mi`) quantities as written in specs.

use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `2h` (a non-negative integer or decimal and a unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Parses a Kubernetes CPU quantity into millicores: `500m`, `2`, `1.5`.
pub fn parse_cpu_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let millis = match text.strip_suffix('m') {
        Some(m) => m.parse::<u64>().ok()?,
        None => {
            let cores: f64 = text.parse().ok()?;
            if !cores.is_finite() || cores < 0.0 {
                return None;
            }
            (cores * 1000.0).round() as u64
        }
    };
    Some(millis)
}

/// Parses a Kubernetes memory quantity into bytes: `512Mi`, `2Gi`, `1G`, `1048576`.
pub fn parse_memory_bytes(text: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    let text = text.trim();
    for (suffix, factor) in UNITS {
        if let Some(n) = text.strip_suffix(suffix) {
            return n.parse::<u64>().ok()?.checked_mul(factor);
        }
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("10d"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn cpu_quantities_become_millicores() {
        assert_eq!(parse_cpu_millis("500m"), Some(500));
        assert_eq!(parse_cpu_millis("2"), Some(2000));
        assert_eq!(parse_cpu_millis("0.25"), Some(250));
        assert_eq!(parse_cpu_millis("two"), None);
    }

    #[test]
    fn memory_quantities_become_bytes() {
        assert_eq!(parse_memory_bytes("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory_bytes("4096"), Some(4096));
        assert_eq!(parse_memory_bytes("1Xi"), None);
        assert_eq!(parse_memory_bytes("99999999999Pi"), None);
    }
}
