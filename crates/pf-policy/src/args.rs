//! Argument value helpers: host extraction for domain allow-lists and lexical path normalisation.

use serde_json::Value;

/// The host a URL or e-mail address names, lower-cased, without port, userinfo or trailing dot.
///
/// `https://user@Api.Example.com:8443/x` -> `api.example.com`; `bob@Example.com` ->
/// `example.com`; a bare `example.com` is its own host. `None` when nothing host-like is there.
pub fn host_of(value: &str) -> Option<String> {
    let v = value.trim();
    let host = if let Some(i) = v.find("://") {
        let rest = &v[i + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        if let Some(stripped) = hostport.strip_prefix('[') {
            stripped.split(']').next().unwrap_or("")
        } else {
            hostport.split(':').next().unwrap_or("")
        }
    } else if let Some(at) = v.rfind('@') {
        &v[at + 1..]
    } else {
        v.split(['/', '?', '#', ':']).next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || !host.bytes().all(is_host_byte) {
        return None;
    }
    Some(host)
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_' || b == b':'
}

/// Whether `host` is one of `domains` or a subdomain of one (domains are lower-case).
pub fn host_allowed(host: &str, domains: &[String]) -> bool {
    domains.iter().any(|d| {
        host == d
            || (host.len() > d.len()
                && host.ends_with(d.as_str())
                && host.as_bytes()[host.len() - d.len() - 1] == b'.')
    })
}

/// Whether a string looks like a URL or an e-mail address (what `allowed_domains` applies to).
pub fn names_a_host(value: &str) -> bool {
    let v = value.trim();
    if let Some(i) = v.find("://") {
        return i > 0
            && v[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    }
    match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !v.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Whether a string looks like a file path (what `allowed_paths` applies to).
pub fn looks_like_path(value: &str) -> bool {
    value.starts_with('/')
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with('~')
        || value == ".."
        || value.contains("/../")
        || value.starts_with("file:")
}

/// Lexically normalises an absolute path: collapses `//` and `.`, resolves `..`.
///
/// `None` for relative paths, paths that climb above `/`, and paths with NUL bytes: callers
/// deny those (fail closed).
pub fn normalise_path(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether normalised `path` lies under one of the normalised `prefixes` (component-wise).
pub fn path_allowed(path: &str, prefixes: &[String]) -> bool {
    let Some(p) = normalise_path(path) else {
        return false;
    };
    prefixes.iter().any(|pre| {
        pre == "/"
            || p == *pre
            || (p.len() > pre.len()
                && p.starts_with(pre.as_str())
                && p.as_bytes()[pre.len()] == b'/')
    })
}

/// Calls `f` on every string leaf of a JSON value (depth-first, object keys excluded).
pub fn for_each_string<'v>(value: &'v Value, f: &mut impl FnMut(&'v str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| for_each_string(v, f)),
        Value::Object(map) => map.values().for_each(|v| for_each_string(v, f)),
        _ => {}
    }
}

/// Depth and approximate serialised size of a JSON value, stopping early past the limits.
pub fn measure(value: &Value, max_depth: usize, max_bytes: usize) -> Result<(), &'static str> {
    fn walk(
        v: &Value,
        depth: usize,
        max_depth: usize,
        budget: &mut usize,
    ) -> Result<(), &'static str> {
        if depth > max_depth {
            return Err("arguments nested too deeply");
        }
        let own = match v {
            Value::String(s) => s.len() + 2,
            Value::Object(m) => m.keys().map(|k| k.len() + 4).sum::<usize>() + 2,
            Value::Array(a) => a.len() + 2,
            _ => 8,
        };
        *budget = budget.checked_sub(own).ok_or("arguments too large")?;
        match v {
            Value::Array(a) => a
                .iter()
                .try_for_each(|x| walk(x, depth + 1, max_depth, budget)),
            Value::Object(m) => m
                .values()
                .try_for_each(|x| walk(x, depth + 1, max_depth, budget)),
            _ => Ok(()),
        }
    }
    let mut budget = max_bytes;
    walk(value, 0, max_depth, &mut budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_extraction_handles_urls_emails_and_ports() {
        assert_eq!(
            host_of("https://user@Api.Example.com:8443/x?y").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host_of("bob@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(host_of("docs.rs/serde").as_deref(), Some("docs.rs"));
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("not a host"), None);
    }

    #[test]
    fn subdomains_match_but_suffix_tricks_do_not() {
        let d = vec!["example.com".to_string()];
        assert!(host_allowed("example.com", &d));
        assert!(host_allowed("mail.example.com", &d));
        assert!(!host_allowed("evilexample.com", &d));
        assert!(!host_allowed("example.com.evil.org", &d));
    }

    #[test]
    fn paths_normalise_before_prefix_check() {
        let pre = vec!["/workspace/src".to_string()];
        assert!(path_allowed("/workspace/src/main.rs", &pre));
        assert!(path_allowed("/workspace//src/./a/../b.rs", &pre));
        assert!(!path_allowed("/workspace/src/../../etc/passwd", &pre));
        assert!(!path_allowed("/workspace/srcfoo", &pre));
        assert!(!path_allowed("src/main.rs", &pre));
        assert!(!path_allowed("/../../x", &pre));
    }

    #[test]
    fn measure_rejects_deep_and_large_values() {
        let mut v = Value::Null;
        for _ in 0..100 {
            v = Value::Array(vec![v]);
        }
        assert!(measure(&v, 64, 1 << 20).is_err());
        assert!(measure(&Value::String("x".repeat(100)), 64, 50).is_err());
        assert!(measure(&serde_json::json!({"a": [1, "b"]}), 64, 1000).is_ok());
    }
}
