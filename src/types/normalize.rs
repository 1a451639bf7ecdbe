//! The normal forms answers are compared in: labels without case, spacing and punctuation,
//! and canonical JSON. Pure functions over strings and JSON; they import nothing of the
//! crate, so `config` (which checks that a task's labels stay distinct) may use them too.

/// Lower-case letters and digits only, words joined by `_`: `Computer Science.` and
/// `COMPUTER_SCIENCE` both become `computer_science`.
pub fn normalize_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Canonical JSON: object keys sorted (serde_json's map is a BTreeMap here), no whitespace.
pub fn canonical_json(v: &serde_json::Value) -> String {
    // serde_json without `preserve_order` keeps object keys sorted.
    serde_json::to_string(v).unwrap_or_default()
}
