//! Built-in sensitive-content detectors: e-mail, phone, payment card (Luhn), IBAN (ISO 13616
//! mod-97), API keys and bearer tokens.
//!
//! Each detector finds candidates with a regular expression and then validates them (digit
//! counts, checksums), so a random 16-digit number is not a card and a random `XX00...` is not an
//! IBAN.

use regex::Regex;

use pf_spec::Detector;

/// A set of built-in detectors as a bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorSet(u8);

/// Every built-in detector, in precedence order (earlier wins on overlapping matches).
pub const ALL_DETECTORS: [Detector; 5] = [
    Detector::ApiKey,
    Detector::Email,
    Detector::Iban,
    Detector::CardNumber,
    Detector::Phone,
];

fn bit(d: Detector) -> u8 {
    match d {
        Detector::Email => 1,
        Detector::Phone => 2,
        Detector::CardNumber => 4,
        Detector::Iban => 8,
        Detector::ApiKey => 16,
    }
}

/// The YAML name of a detector.
pub fn detector_name(d: Detector) -> &'static str {
    match d {
        Detector::Email => "email",
        Detector::Phone => "phone",
        Detector::CardNumber => "card_number",
        Detector::Iban => "iban",
        Detector::ApiKey => "api_key",
    }
}

impl DetectorSet {
    /// Every built-in detector.
    pub fn all() -> Self {
        Self(31)
    }

    /// Adds one detector.
    pub fn insert(&mut self, d: Detector) {
        self.0 |= bit(d);
    }

    /// Whether the set holds `d`.
    pub fn contains(self, d: Detector) -> bool {
        self.0 & bit(d) != 0
    }

    /// Whether no detector is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// YAML names of the detectors in the set, in precedence order.
    pub fn names(self) -> Vec<&'static str> {
        ALL_DETECTORS
            .into_iter()
            .filter(|d| self.contains(*d))
            .map(detector_name)
            .collect()
    }
}

/// What a finding is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "index")]
pub enum FindingKind {
    /// A built-in detector matched.
    Email,
    /// A phone number.
    Phone,
    /// A Luhn-valid card number.
    CardNumber,
    /// A mod-97-valid IBAN.
    Iban,
    /// An API key or bearer token.
    ApiKey,
    /// The i-th user pattern of the capability's `content_filter.patterns`.
    Pattern(usize),
}

impl FindingKind {
    /// Short name used in redaction placeholders and reason details.
    pub fn name(&self) -> String {
        match self {
            Self::Email => "email".into(),
            Self::Phone => "phone".into(),
            Self::CardNumber => "card_number".into(),
            Self::Iban => "iban".into(),
            Self::ApiKey => "api_key".into(),
            Self::Pattern(i) => format!("pattern{i}"),
        }
    }
}

/// One detected span of an output, in byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// The compiled built-in detectors (shared by every capability of a policy).
#[derive(Debug)]
pub(crate) struct Detectors {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban: Regex,
    api_keys: Regex,
}

impl Detectors {
    pub fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            email: Regex::new(
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}",
            )?,
            phone: Regex::new(r"(?:\+|\b)\d[\d ().\-]{5,20}\d\b")?,
            card: Regex::new(r"\b\d(?:[ \-]?\d){12,18}\b")?,
            iban: Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}")?,
            api_keys: Regex::new(concat!(
                r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{20,}",
                r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}",
                r"|\bgithub_pat_[A-Za-z0-9_]{22,}",
                r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
                r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}",
                r"|\bAIza[0-9A-Za-z_\-]{35}",
                r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
                r"|(?i:\bbearer)\s+[A-Za-z0-9._~+/\-]{16,}=*",
            ))?,
        })
    }

    /// All findings of the enabled detectors and patterns, overlapping ones resolved (earliest
    /// start wins; on a tie, the earlier detector in precedence order).
    pub fn scan(&self, text: &str, set: DetectorSet, patterns: &[(String, Regex)]) -> Vec<Finding> {
        let mut found: Vec<(usize, Finding)> = Vec::new();
        let mut push = |rank: usize, kind: FindingKind, start: usize, end: usize| {
            found.push((rank, Finding { kind, start, end }));
        };
        if set.contains(Detector::ApiKey) {
            for m in self.api_keys.find_iter(text) {
                push(0, FindingKind::ApiKey, m.start(), m.end());
            }
        }
        if set.contains(Detector::Email) {
            for m in self.email.find_iter(text) {
                push(1, FindingKind::Email, m.start(), m.end());
            }
        }
        if set.contains(Detector::Iban) {
            for m in self.iban.find_iter(text) {
                if let Some(end) = iban_end(&text[m.start()..m.end()]) {
                    push(2, FindingKind::Iban, m.start(), m.start() + end);
                }
            }
        }
        if set.contains(Detector::CardNumber) {
            for m in self.card.find_iter(text) {
                let digits: Vec<u8> = digits_of(m.as_str());
                if (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
                    push(3, FindingKind::CardNumber, m.start(), m.end());
                }
            }
        }
        if set.contains(Detector::Phone) {
            for m in self.phone.find_iter(text) {
                if looks_like_phone(m.as_str()) {
                    push(4, FindingKind::Phone, m.start(), m.end());
                }
            }
        }
        for (i, (_, re)) in patterns.iter().enumerate() {
            for m in re.find_iter(text) {
                if m.end() > m.start() {
                    push(5 + i, FindingKind::Pattern(i), m.start(), m.end());
                }
            }
        }
        found.sort_by_key(|(rank, f)| (f.start, *rank, usize::MAX - f.end));
        let mut out: Vec<Finding> = Vec::new();
        for (_, f) in found {
            if out.last().is_none_or(|last| f.start >= last.end) {
                out.push(f);
            }
        }
        out
    }
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Luhn check (ISO/IEC 7812-1 Annex B): double every second digit from the right.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// IBAN check (ISO 13616-1 §6.1 / ISO 7064 MOD 97-10): rotate the first four characters to the
/// end, map letters to 10..35, and the number must be 1 modulo 97.
pub fn iban_valid(compact: &str) -> bool {
    let b = compact.as_bytes();
    if !(15..=34).contains(&b.len())
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// The end (byte offset) of the longest valid IBAN at the start of a candidate, which may have
/// single spaces between groups and may run into a following upper-case word.
fn iban_end(candidate: &str) -> Option<usize> {
    let mut compact = String::new();
    let mut ends = Vec::new();
    for (i, c) in candidate.char_indices() {
        if c != ' ' {
            compact.push(c);
            ends.push(i + c.len_utf8());
        }
    }
    (15..=compact.len().min(34))
        .rev()
        .find(|&n| iban_valid(&compact[..n]))
        .map(|n| ends[n - 1])
}

fn looks_like_phone(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let b = s.as_bytes();
    // ISO dates (2024-01-15) and times are not phone numbers.
    let date_like = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    if date_like {
        return false;
    }
    if s.starts_with('+') {
        return (8..=15).contains(&digits);
    }
    (10..=15).contains(&digits) || (digits == 7 && b.len() == 8 && b[3] == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        let d = Detectors::new().expect("built-in regexes compile");
        d.scan(text, DetectorSet::all(), &[])
            .into_iter()
            .map(|f| format!("{}:{}", f.kind.name(), &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_typos() {
        assert!(luhn_valid(&digits_of("4111 1111 1111 1111")));
        assert!(luhn_valid(&digits_of("5500-0000-0000-0004")));
        assert!(!luhn_valid(&digits_of("4111 1111 1111 1112")));
    }

    #[test]
    fn iban_mod97_accepts_valid_and_rejects_altered() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("DE89370400440532013001"));
        assert!(!iban_valid("de89370400440532013000"));
    }

    #[test]
    fn finds_each_builtin_kind() {
        let text = "mail bob@example.com, call +1 415 555 0100, card 4111 1111 1111 1111, \
                    iban DE89 3704 0044 0532 0130 00 THANKS, key sk-abcdefghijklmnopqrstuvwx, \
                    gh ghp_abcdefghijklmnopqrstuvwxyz0123456789, aws AKIAIOSFODNN7EXAMPLE";
        let got = kinds(text);
        assert_eq!(
            got,
            vec![
                "email:bob@example.com",
                "phone:+1 415 555 0100",
                "card_number:4111 1111 1111 1111",
                "iban:DE89 3704 0044 0532 0130 00",
                "api_key:sk-abcdefghijklmnopqrstuvwx",
                "api_key:ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "api_key:AKIAIOSFODNN7EXAMPLE",
            ]
        );
    }

    #[test]
    fn plain_numbers_dates_and_invalid_checksums_are_not_findings() {
        assert!(kinds("order ORD-123456 on 2024-01-15, total 1234567").is_empty());
        assert!(kinds("card 4111 1111 1111 1112").is_empty());
        assert_eq!(kinds("iban GB82WEST12345698765433"), Vec::<String>::new());
    }

    #[test]
    fn jwt_and_bearer_tokens_are_api_keys() {
        let got = kinds(
            "Authorization: Bearer abcdefghijklmnop1234 and eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl",
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|k| k.starts_with("api_key:")));
    }
}
