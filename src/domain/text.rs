//! Text rules: length limits, and the folding behind free-text search.
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{Error, Result};

/// Folds text for search: Unicode-decomposed, combining marks dropped,
/// lower-cased, so "Guía Dañada" and "guia danada" are the same.
pub fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A LIKE pattern that matches `query` anywhere, with `\` as the escape
/// character so that `%`, `_` and `\` in the query are literal.
pub fn like_contains(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in fold(query).chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A required string: trimmed, non-empty, at most `max` characters, no control
/// characters other than new lines and tabs.
pub fn required(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    optional(field, value, max).map(|v| v.unwrap_or_default())
}

/// An optional string: empty means absent; otherwise as `required`.
pub fn optional(field: &str, value: &str, max: usize) -> Result<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let len = value.chars().count();
    if len > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters, got {len}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(Some(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_and_accents() {
        assert_eq!(fold("Guía DAÑADA Ünica"), "guia danada unica");
    }

    #[test]
    fn like_patterns_treat_wildcards_as_text() {
        assert_eq!(like_contains("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn required_strings_reject_empty_oversized_and_control_text() {
        assert!(required("f", "  ", 5).is_err());
        assert!(required("f", "abcdef", 5).is_err());
        assert!(required("f", "a\u{0}b", 5).is_err());
        assert_eq!(required("f", " ab ", 5).unwrap(), "ab");
    }
}
