//! Label interning: each distinct label of a spec gets one bit of a 64-bit mask.

/// A set of labels as a bit mask (bit i = the i-th interned label).
pub type LabelMask = u64;

/// Most distinct labels one spec may use.
pub const MAX_LABELS: usize = 64;

/// The interned labels of one policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// The bit for `name`, interning it; `None` when the 64 bits are used up.
    pub fn intern(&mut self, name: &str) -> Option<LabelMask> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Some(1 << i);
        }
        if self.names.len() >= MAX_LABELS {
            return None;
        }
        self.names.push(name.to_string());
        Some(1 << (self.names.len() - 1))
    }

    /// The bit for an already interned label.
    pub fn get(&self, name: &str) -> Option<LabelMask> {
        self.names.iter().position(|n| n == name).map(|i| 1 << i)
    }

    /// Label names in a mask, in interning order.
    pub fn names(&self, mask: LabelMask) -> Vec<String> {
        self.names
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Every interned label.
    pub fn all_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Labels for output of a tool the policy does not know: every label (fail closed).
    pub fn unknown_source(&self) -> LabelMask {
        if self.names.len() >= MAX_LABELS {
            u64::MAX
        } else {
            (1u64 << self.names.len()) - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_bounded() {
        let mut l = Labels::default();
        assert_eq!(l.intern("pii"), Some(1));
        assert_eq!(l.intern("untrusted"), Some(2));
        assert_eq!(l.intern("pii"), Some(1));
        assert_eq!(l.names(3), vec!["pii", "untrusted"]);
        for i in 2..MAX_LABELS {
            assert!(l.intern(&format!("l{i}")).is_some());
        }
        assert_eq!(l.intern("one-too-many"), None);
        assert_eq!(l.unknown_source(), u64::MAX);
    }
}
