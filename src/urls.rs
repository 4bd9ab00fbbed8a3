//! Which URLs from outside the service accepts, one policy for every use: campaigns'
//! `webhook_url` (which the service POSTs to), the carrier's `RecordingUrl` (which the
//! dashboard shows as a link), and later the agent's tools.
//!
//! - Every URL: `http` or `https` only (no `javascript:`, `file:`, `gopher:` …), a host, no
//!   user name or password, at most `fields::URL` characters.
//! - A URL the service *fetches* ([`UrlPolicy::check_target`]): its host must not be an
//!   internal address — loopback, private (RFC 1918, IPv6 ULA), link-local (169.254.0.0/16,
//!   where cloud metadata services live), carrier-grade NAT, unspecified, broadcast, multicast —
//!   nor `localhost`. Names are checked again when the request is sent: the webhook client
//!   resolves through [`PolicyResolver`], which refuses a name if *any* of its addresses is
//!   internal, and connects only to the addresses it checked, so a name that changes its
//!   answer after the campaign was saved (DNS rebinding) reaches nothing inside. Redirects are
//!   not followed.
//! - `ALLOW_PRIVATE_URLS=true` lifts the address rule (receivers on the same machine: the demo,
//!   local tests); the scheme rule stays.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

use crate::config::limits::fields;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL: {0}")]
    Malformed(String),
    #[error("must be at most {} characters", fields::URL)]
    TooLong,
    #[error("must start with http:// or https://")]
    Scheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("points at {0}, an internal address: not allowed (ALLOW_PRIVATE_URLS=true allows it)")]
    Internal(String),
}

/// The policy in force (`ALLOW_PRIVATE_URLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    pub allow_private: bool,
}

impl UrlPolicy {
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// A URL shown to people as a link: scheme, host, no credentials.
    pub fn check_link(&self, raw: &str) -> Result<Url, UrlError> {
        if raw.chars().count() > fields::URL {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(raw.trim()).map_err(|e| UrlError::Malformed(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if url.host().is_none() {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        Ok(url)
    }

    /// A URL the service sends requests to: [`Self::check_link`], and a host that is not an
    /// internal address or `localhost` (names are resolved and checked again when sending).
    pub fn check_target(&self, raw: &str) -> Result<Url, UrlError> {
        let url = self.check_link(raw)?;
        if self.allow_private {
            return Ok(url);
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(UrlError::Internal(name));
                }
            }
            None => return Err(UrlError::NoHost),
        }
        Ok(url)
    }

    pub fn check_address(&self, ip: IpAddr) -> Result<(), UrlError> {
        if !self.allow_private && is_internal(ip) {
            return Err(UrlError::Internal(ip.to_string()));
        }
        Ok(())
    }
}

/// Addresses a request from the service must not reach unless asked.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // 0.0.0.0/8 ("this network") and 100.64.0.0/10 (carrier-grade NAT).
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The webhook client's name resolution: the system resolver, then the policy on every address.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver(pub UrlPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                policy
                    .check_address(addr.ip())
                    .map_err(|e| format!("`{host}` {e}"))?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client for URLs from outside (webhooks): resolves through [`PolicyResolver`], never
/// follows a redirect (it could lead anywhere), uses no proxy (a proxy would resolve the name
/// itself, past the policy).
pub fn outside_client(policy: UrlPolicy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .build()
}

/// An error with its causes, for a stored or logged reason (reqwest hides the resolver's
/// message behind "error sending request").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_inside_are_refused_and_outside_ones_kept() {
        let policy = UrlPolicy::default();
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:9/x",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://localhost/",
            "http://api.localhost./",
        ] {
            assert!(
                matches!(policy.check_target(bad), Err(UrlError::Internal(_))),
                "{bad}: {:?}",
                policy.check_target(bad)
            );
        }
        for good in [
            "https://hooks.example.com/x?token=1",
            "http://8.8.8.8/",
            "http://[2606:4700::1]/",
        ] {
            assert!(policy.check_target(good).is_ok(), "{good}");
        }
        assert!(
            UrlPolicy::new(true)
                .check_target("http://127.0.0.1:9/x")
                .is_ok()
        );
    }

    #[test]
    fn only_http_links_without_credentials() {
        let policy = UrlPolicy::new(true);
        assert_eq!(
            policy.check_link("javascript:alert(1)"),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            policy.check_link("file:///etc/passwd"),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            policy.check_link("data:text/html,hi"),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            policy.check_link("https://u:p@x.example/"),
            Err(UrlError::Credentials)
        );
        assert!(matches!(
            policy.check_link("not a url"),
            Err(UrlError::Malformed(_))
        ));
        assert!(
            policy
                .check_link("https://recordings.exotel.com/a.mp3")
                .is_ok()
        );
    }
}
