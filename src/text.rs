//! Text from outside the service, bounded at the edge: no NUL character (PostgreSQL cannot
//! store one in `text` or `jsonb`, SQLite would keep it: the backends would disagree) and at most
//! a given number of characters (a megabyte greeting would go to the TTS on every call).
//!
//! [`BoundedText`] is the type request bodies deserialize into; [`check`] applies the same rule
//! to text that arrives another way (CSV cells, the carrier's callback fields). Errors name the
//! field and never echo the value. The limits themselves are `config::limits::fields`.
//! [`LogSafe`] renders outside text for a log line.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("`{0}` must not contain a NUL character")]
    Nul(String),
    #[error("`{0}` must be at most {1} characters")]
    TooLong(String, usize),
    #[error("`{0}` must not contain control characters")]
    Control(String),
}

/// Checks `value` for `field`: no NUL, at most `max` characters.
pub fn check(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    if value.contains('\0') {
        return Err(TextError::Nul(field.to_string()));
    }
    // Bytes bound characters from above: only count when the bytes could exceed the limit.
    if value.len() > max && value.chars().count() > max {
        return Err(TextError::TooLong(field.to_string(), max));
    }
    Ok(())
}

/// [`check`], and no control character at all: for identifiers and one-line values (a
/// `CallSid` with a newline would forge log lines and match nothing anyway).
pub fn check_line(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    check(field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(TextError::Control(field.to_string()));
    }
    Ok(())
}

/// A string with no NUL character and at most `MAX` characters, checked as it is deserialized
/// (serde's error then names the field: "`greeting`: must be at most 1000 characters").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundedText<const MAX: usize>(String);

impl<const MAX: usize> BoundedText<MAX> {
    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedText<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.contains('\0') {
            return Err(serde::de::Error::custom("must not contain a NUL character"));
        }
        if value.len() > MAX && value.chars().count() > MAX {
            return Err(serde::de::Error::custom(format!(
                "must be at most {MAX} characters"
            )));
        }
        Ok(Self(value))
    }
}

/// Outside text as a log line may show it: control characters escaped (a newline or an
/// escape sequence cannot start a forged line or repaint a terminal) and cut after 100
/// characters, with the length left out said.
pub struct LogSafe<'a>(pub &'a str);

/// Characters of outside text a log line shows.
const LOG_CHARS: usize = 100;

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == LOG_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - i);
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `items` joined with `, ` for an error message, cut after `max` characters.
pub fn short_list(items: &[String], max: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let piece = if i == 0 {
            item.clone()
        } else {
            format!(", {item}")
        };
        if out.chars().count() + piece.chars().count() > max {
            out.push_str(&format!(", … ({} more)", items.len() - i));
            return out;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_length_are_refused_with_the_field_name() {
        assert_eq!(check("name", "Asha", 10), Ok(()));
        assert_eq!(check("name", "अमित", 4), Ok(()), "characters, not bytes");
        assert_eq!(check("name", "A\0", 10), Err(TextError::Nul("name".into())));
        let err = check("greeting", &"a".repeat(11), 10).unwrap_err();
        assert_eq!(err.to_string(), "`greeting` must be at most 10 characters");
        assert!(check_line("CallSid", "CA\n1", 64).is_err());
        assert!(check("summary", "line\nline", 64).is_ok());
    }

    #[test]
    fn bounded_text_deserializes_only_valid_text() {
        let ok: BoundedText<5> = serde_json::from_str("\"hello\"").unwrap();
        assert_eq!(ok.as_str(), "hello");
        let err = serde_json::from_str::<BoundedText<5>>("\"hello!\"").unwrap_err();
        assert!(err.to_string().contains("at most 5"), "{err}");
        let err = serde_json::from_str::<BoundedText<5>>("\"a\\u0000\"").unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn log_safe_escapes_control_characters_and_truncates() {
        let shown = LogSafe("CA1\n2026 INFO forged\u{1b}[2J").to_string();
        assert_eq!(shown, "CA1\\n2026 INFO forged\\u{1b}[2J");
        let long = "x".repeat(1000);
        let shown = LogSafe(&long).to_string();
        assert!(shown.starts_with(&"x".repeat(100)));
        assert!(shown.ends_with("…(+900 bytes)"), "{shown}");
    }

    #[test]
    fn short_lists_say_how_many_were_left_out() {
        let items: Vec<String> = (0..1000).map(|i| format!("col{i}")).collect();
        let s = short_list(&items, 30);
        assert!(s.len() < 60, "{s}");
        assert!(s.ends_with("more)"), "{s}");
        assert_eq!(short_list(&items[..2], 30), "col0, col1");
    }
}
