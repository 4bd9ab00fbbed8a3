//! Credentials in requests: the `Authorization` header read for one scheme, and secrets compared
//! in constant time. A leaf: it knows no route, state or setting, so the API middleware, the
//! carrier's webhooks and the `/media` stream all check their secrets the same way.

use axum::http::header;

/// What an `Authorization: <scheme> <credentials>` header holds for one scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No `Authorization` header (or one that is not text).
    Missing,
    /// The header names another scheme.
    OtherScheme,
    Given(&'a str),
}

/// The credentials of the `Authorization` header for `scheme`. Schemes are case-insensitive
/// (RFC 9110 §11.1: `bearer` is `Bearer`).
pub fn auth_credentials<'a>(headers: &'a axum::http::HeaderMap, scheme: &str) -> Credentials<'a> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credentials::Missing;
    };
    let value = value.trim();
    let (given, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if given.eq_ignore_ascii_case(scheme) {
        Credentials::Given(credentials.trim())
    } else {
        Credentials::OtherScheme
    }
}

/// Compares secrets in constant time (`subtle`), so response time does not reveal a matching
/// prefix; only a difference in length is seen at once.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
