//! Provider failures and recoveries, labelled by provider and by a closed set of kinds
//! (`voice::kinds`). The speech vendors map their own errors to a kind; the OpenAI and Exotel
//! clients' mappings are still here until their ports exist.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::providers::exotel::ExotelError;

pub use crate::voice::kinds::{ErrorKind, Provider, ReconnectKind};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
    kind: &'static str,
}

/// Provider errors and recoveries. Cheap to clone; clients hold one. Failures are rare, so a
/// label lookup per failure is fine.
#[derive(Clone, Debug, Default)]
pub struct ProviderMetrics {
    errors: Family<ProviderLabels, Counter>,
    reconnects: Family<ProviderLabels, Counter>,
}

const PROVIDERS: [Provider; 5] = [
    Provider::Deepgram,
    Provider::OpenAi,
    Provider::ElevenLabs,
    Provider::OpenAiSpeech,
    Provider::Exotel,
];
const KINDS: [ErrorKind; 8] = [
    ErrorKind::Timeout,
    ErrorKind::Connect,
    ErrorKind::Http4xx,
    ErrorKind::Http5xx,
    ErrorKind::Protocol,
    ErrorKind::Stream,
    ErrorKind::Dropped,
    ErrorKind::Stalled,
];

impl ProviderMetrics {
    /// Every provider and kind starts at zero, so alerts on `increase()` see the first error.
    pub(super) fn create_known_series(&self) {
        for provider in PROVIDERS {
            for kind in KINDS {
                let _ = self.errors.get_or_create(&ProviderLabels {
                    provider: provider.as_str(),
                    kind: kind.as_str(),
                });
            }
        }
        for (provider, how) in [
            (Provider::Deepgram, ReconnectKind::Reconnect),
            (Provider::ElevenLabs, ReconnectKind::HttpFallback),
        ] {
            let _ = self.reconnects.get_or_create(&ProviderLabels {
                provider: provider.as_str(),
                kind: how.as_str(),
            });
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "provider_errors",
            "Failed provider requests and sessions, by provider and kind (each failed attempt \
             counts, retried or not)",
            self.errors.clone(),
        );
        registry.register(
            "provider_reconnects",
            "Provider sessions recovered mid-call, by provider and how",
            self.reconnects.clone(),
        );
    }

    pub fn error(&self, provider: Provider, kind: ErrorKind) {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: kind.as_str(),
        };
        self.errors.get_or_create(&labels).inc();
    }

    /// A wait on `provider` ended by its deadline (see `media::call::waits`).
    pub fn stalled(&self, provider: Provider) {
        self.error(provider, ErrorKind::Stalled);
    }

    pub fn reconnect(&self, provider: Provider, how: ReconnectKind) {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: how.as_str(),
        };
        self.reconnects.get_or_create(&labels).inc();
    }

    pub fn exotel_error(&self, e: &ExotelError) {
        let kind = match e {
            ExotelError::Config { status, .. } | ExotelError::Server { status, .. } => {
                ErrorKind::from_status(*status)
            }
            ExotelError::RateLimited { .. }
            | ExotelError::Rejected { .. }
            | ExotelError::UnknownCall(_) => ErrorKind::Http4xx,
            ExotelError::Timeout(_) => ErrorKind::Timeout,
            ExotelError::Network(_) => ErrorKind::Connect,
            ExotelError::Decode(_) => ErrorKind::Protocol,
        };
        self.error(Provider::Exotel, kind);
    }

    /// The recoveries of one provider of one kind (tests, the bench).
    pub fn reconnects_of(&self, provider: Provider, how: ReconnectKind) -> u64 {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: how.as_str(),
        };
        self.reconnects.get(&labels).map_or(0, |c| c.get())
    }

    /// The count for one provider and kind (tests, the bench).
    pub fn errors_of(&self, provider: Provider, kind: ErrorKind) -> u64 {
        let labels = ProviderLabels {
            provider: provider.as_str(),
            kind: kind.as_str(),
        };
        self.errors.get(&labels).map_or(0, |c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn errors_are_labelled_by_status_class_and_kind() {
        let m = ProviderMetrics::default();
        m.error(Provider::OpenAi, ErrorKind::Http4xx);
        m.error(Provider::OpenAi, ErrorKind::from_status(503));
        m.exotel_error(&ExotelError::Timeout(Duration::from_secs(10)));
        m.error(Provider::Deepgram, ErrorKind::from_status(401));
        assert_eq!(m.errors_of(Provider::OpenAi, ErrorKind::Http4xx), 1);
        assert_eq!(m.errors_of(Provider::OpenAi, ErrorKind::Http5xx), 1);
        assert_eq!(m.errors_of(Provider::Exotel, ErrorKind::Timeout), 1);
        assert_eq!(m.errors_of(Provider::Deepgram, ErrorKind::Http4xx), 1);
        let openai: u64 = KINDS
            .iter()
            .map(|k| m.errors_of(Provider::OpenAi, *k))
            .sum();
        assert_eq!(openai, 2, "a cancellation is not an error");
    }
}
