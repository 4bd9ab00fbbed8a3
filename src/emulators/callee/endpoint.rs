//! The bot's `/media` URL, parsed the way Exotel reads it: user info becomes Basic auth, the
//! first three query parameters become `start.custom_parameters`, `sample-rate` picks the rate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::config::CalleeError;

/// Exotel puts at most this many URL query parameters into `start.custom_parameters`.
const MAX_CUSTOM_PARAMETERS: usize = 3;

/// A parsed `/media` URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// Without the user info.
    pub(super) url: String,
    /// `Authorization` header value from `user:pass@`.
    pub(super) authorization: Option<String>,
    pub(super) custom_parameters: Vec<(String, String)>,
    pub(super) sample_rate: u32,
}

pub(super) fn parse_endpoint(url: &str) -> Result<Endpoint, CalleeError> {
    let invalid = |m: &str| CalleeError::InvalidUrl(format!("{m}: {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("ws") && !scheme.eq_ignore_ascii_case("wss") {
        return Err(invalid("not ws:// or wss://"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let authorization = userinfo.map(|u| {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        let pair = format!("{}:{}", percent_decode(user), percent_decode(pass));
        format!("Basic {}", B64.encode(pair))
    });
    let query = tail
        .split('#')
        .next()
        .and_then(|t| t.split_once('?'))
        .map_or("", |(_, q)| q);
    let mut custom_parameters = Vec::new();
    let mut sample_rate = 8000;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "sample-rate" || k == "sample_rate" {
            sample_rate = v
                .parse()
                .ok()
                .filter(|r| [8000, 16000, 24000].contains(r))
                .unwrap_or(8000);
        } else if custom_parameters.len() < MAX_CUSTOM_PARAMETERS {
            custom_parameters.push((k.into_owned(), v.into_owned()));
        }
    }
    Ok(Endpoint {
        url: format!("{scheme}://{host}{tail}"),
        authorization,
        custom_parameters,
        sample_rate,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_user_info_becomes_basic_auth_and_query_gives_three_parameters() {
        let e = parse_endpoint("wss://key:t%40ken@bot.example.com:8443/media?a=1&b=x%20y&c=3&d=4")
            .unwrap();
        assert_eq!(
            e.url,
            "wss://bot.example.com:8443/media?a=1&b=x%20y&c=3&d=4"
        );
        assert_eq!(
            e.authorization.as_deref(),
            Some(format!("Basic {}", B64.encode("key:t@ken")).as_str())
        );
        let keys: Vec<_> = e
            .custom_parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(keys, [("a", "1"), ("b", "x y"), ("c", "3")]);
        assert_eq!(e.sample_rate, 8000);

        let plain = parse_endpoint("ws://127.0.0.1:9/media?sample-rate=16000&call_id=7").unwrap();
        assert_eq!(plain.authorization, None);
        assert_eq!(plain.sample_rate, 16000);
        assert_eq!(
            plain.custom_parameters,
            [("call_id".to_string(), "7".to_string())]
        );
        assert!(parse_endpoint("http://host/media").is_err());
        assert!(parse_endpoint("ws:///media").is_err());
    }
}
