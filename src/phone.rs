//! Phone numbers: parsed once at the edge (CSV, API, carrier events) into [`E164`], and masked
//! whenever they are shown in a log line.
//!
//! Parsing uses the `phonenumber` crate (a port of Google's libphonenumber with its metadata), with
//! India as the default region, so `98765 43210`, `098765-43210` and `+91 98765 43210` all become
//! `+919876543210`. A fast path handles the overwhelmingly common shape of an Indian mobile
//! number without the full parser, because lead import parses millions of numbers.

use std::fmt;

use phonenumber::country;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A validated phone number in E.164 form (`+919876543210`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct E164(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("`{0}` is not a phone number")]
    Unparseable(String),
    #[error("`{0}` is not a valid number")]
    Invalid(String),
}

impl E164 {
    /// Parses a number as a person would write it, India being the default region.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if let Some(fast) = fast_indian_mobile(trimmed) {
            return Ok(fast);
        }
        // Spreadsheets turn numbers into floats ("9.87654321E9") or append ".0"; those are
        // unrecoverable guesses, so anything with letters other than an extension is refused.
        let parsed = phonenumber::parse(Some(country::Id::IN), trimmed)
            .map_err(|_| PhoneError::Unparseable(shorten(trimmed)))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid(shorten(trimmed)));
        }
        Ok(E164(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form for logs: country code and last four digits only (`+91******3210`).
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        E164::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Debug shows the masked form, so a stray `{:?}` cannot leak a number into a log.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Display adapter that prints a number masked; see [`mask`].
pub struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(self.0))
    }
}

/// Masks any phone-like string for logs: keeps a leading `+` and country code (for E.164 numbers
/// of India and other one-to-three digit codes we only know India's, so two digits are kept) and
/// the last four digits: `+919876543210` → `+91******3210`.
pub fn mask(raw: &str) -> String {
    let digits: Vec<char> = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() <= 4 {
        return "*".repeat(digits.len());
    }
    let plus = raw.trim_start().starts_with('+');
    let keep_head = if plus { 2.min(digits.len() - 4) } else { 0 };
    let tail: String = digits[digits.len() - 4..].iter().collect();
    let head: String = digits[..keep_head].iter().collect();
    let stars = "*".repeat(digits.len() - 4 - keep_head);
    format!("{}{head}{stars}{tail}", if plus { "+" } else { "" })
}

/// Indian mobile numbers (10 digits starting 6–9), optionally with a `0`, `91` or `+91` prefix
/// and spaces or dashes: the shape of nearly every number in an Indian lead list.
fn fast_indian_mobile(s: &str) -> Option<E164> {
    let mut digits = [0u8; 14];
    let mut n = 0;
    let mut plus = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'0'..=b'9' => {
                if n == digits.len() {
                    return None;
                }
                digits[n] = b;
                n += 1;
            }
            b'+' if i == 0 => plus = true,
            b' ' | b'-' => {}
            _ => return None,
        }
    }
    let national: &[u8] = match (plus, n) {
        (false, 10) => &digits[..10],
        (false, 11) if digits[0] == b'0' => &digits[1..11],
        (_, 12) if &digits[..2] == b"91" => &digits[2..12],
        _ => return None,
    };
    if !matches!(national[0], b'6'..=b'9') {
        return None;
    }
    let mut out = String::with_capacity(13);
    out.push_str("+91");
    out.push_str(std::str::from_utf8(national).ok()?);
    Some(E164(out))
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_indian_forms_normalise_to_e164() {
        for input in [
            "98765 43210",
            "098765-43210",
            "+91 98765 43210",
            "9876543210",
            "919876543210",
            "+91-98765-43210",
            "(+91) 98765 43210",
        ] {
            assert_eq!(
                E164::parse(input).unwrap().as_str(),
                "+919876543210",
                "{input}"
            );
        }
    }

    #[test]
    fn fast_path_agrees_with_the_full_parser() {
        for input in ["6123456789", "07012345678", "+917012345678", "8800112233"] {
            let fast = fast_indian_mobile(input).unwrap();
            let full = phonenumber::parse(Some(country::Id::IN), input).unwrap();
            assert!(phonenumber::is_valid(&full), "{input}");
            assert_eq!(
                fast.as_str(),
                full.format().mode(phonenumber::Mode::E164).to_string()
            );
        }
    }

    #[test]
    fn foreign_and_landline_numbers_are_accepted() {
        assert_eq!(
            E164::parse("+1 415 555 2671").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            E164::parse("080 2345 6789").unwrap().as_str(),
            "+918023456789"
        );
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(E164::parse("  "), Err(PhoneError::Empty));
        assert!(matches!(
            E164::parse("hello"),
            Err(PhoneError::Unparseable(_))
        ));
        assert!(E164::parse("12345").is_err());
        assert!(E164::parse("+91 98765").is_err());
        assert!(E164::parse("+91 98765 43210 99").is_err());
    }

    #[test]
    fn masking_keeps_country_code_and_last_four() {
        assert_eq!(mask("+919876543210"), "+91******3210");
        assert_eq!(mask("09876543210"), "*******3210");
        assert_eq!(mask("123"), "***");
        let n = E164::parse("9876543210").unwrap();
        assert_eq!(format!("{}", n.masked()), "+91******3210");
        assert_eq!(format!("{n:?}"), "E164(+91******3210)");
    }
}
