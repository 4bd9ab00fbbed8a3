//! Deepgram as the call's speech-to-text vendor (`STT_PROVIDER=deepgram`): the
//! [`voice::stt`](crate::voice::stt) port in Deepgram's terms. `is_final` results are the port's
//! finals, `speech_final` its end of turn, `UtteranceEnd` its later end-of-turn signal, and a
//! Hindi campaign listens with `multi` (Deepgram's recommendation for Hindi–English
//! code-switching).

use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::{DeepgramClient, ListenOptions, SttError, SttEvent, SttEvents, SttSession};
use crate::agent::lines::Language;
use crate::metrics::ProviderMetrics;
use crate::voice::Provider;
use crate::voice::stt::{self, SttOptions};

/// Opens a resilient Deepgram session per call.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    client: DeepgramClient,
    metrics: ProviderMetrics,
}

impl DeepgramStt {
    pub fn new(client: DeepgramClient, metrics: ProviderMetrics) -> Self {
        Self { client, metrics }
    }

    /// What to ask Deepgram for on a call.
    pub fn listen_options(options: &SttOptions) -> ListenOptions {
        let language = match Language::from_tag(&options.language) {
            Language::Hindi => "multi".to_string(),
            Language::English => options.language.clone(),
        };
        ListenOptions {
            language,
            sample_rate: options.sample_rate,
            endpointing_ms: Some(options.endpointing_ms),
            ..ListenOptions::default()
        }
    }
}

#[async_trait]
impl stt::SttVendor for DeepgramStt {
    fn provider(&self) -> Provider {
        Provider::Deepgram
    }

    async fn open(&self, options: &SttOptions) -> Result<Box<dyn stt::SttSession>, stt::SttError> {
        match self.client.connect(&Self::listen_options(options)).await {
            Ok((session, events)) => Ok(Box::new(DeepgramSession { session, events })),
            Err(e) => {
                self.metrics.error(Provider::Deepgram, e.kind());
                Err(stt::SttError::Failed {
                    provider: Provider::Deepgram,
                    kind: e.kind(),
                    message: e.to_string(),
                })
            }
        }
    }
}

/// One call's Deepgram session, seen through the port.
#[derive(Debug)]
pub struct DeepgramSession {
    session: SttSession,
    events: SttEvents,
}

impl stt::SttSession for DeepgramSession {
    fn provider(&self) -> Provider {
        Provider::Deepgram
    }

    fn send_audio(&mut self, pcm: Bytes) -> Result<(), stt::SttError> {
        self.session.send_audio(pcm).map_err(neutral_error)
    }

    fn finalize(&mut self) -> Result<(), stt::SttError> {
        self.session.finalize().map_err(neutral_error)
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<stt::SttEvent>> {
        loop {
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    if let Some(event) = neutral(event) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Bounded by the session's own close timeout.
            let _ = self.session.close().await;
        })
    }
}

fn neutral_error(e: SttError) -> stt::SttError {
    match e {
        SttError::QueueFull => stt::SttError::QueueFull,
        SttError::SessionEnded => stt::SttError::SessionEnded,
        other => stt::SttError::Failed {
            provider: Provider::Deepgram,
            kind: other.kind(),
            message: other.to_string(),
        },
    }
}

/// Deepgram's event in the port's terms; `None` for what the call has no use for (`Metadata`).
fn neutral(event: SttEvent) -> Option<stt::SttEvent> {
    Some(match event {
        SttEvent::Transcript(t) if t.is_final => stt::SttEvent::Final {
            text: t.text,
            end_of_turn: t.speech_final,
            finalized: t.from_finalize,
        },
        SttEvent::Transcript(t) => stt::SttEvent::Interim { text: t.text },
        SttEvent::SpeechStarted { .. } => stt::SttEvent::SpeechStarted,
        SttEvent::UtteranceEnd { .. } => stt::SttEvent::EndOfTurn,
        SttEvent::Reconnected { attempts, replayed } => {
            stt::SttEvent::Reconnected { attempts, replayed }
        }
        SttEvent::Error { description } => stt::SttEvent::Error { description },
        SttEvent::Closed { code, reason } => stt::SttEvent::Closed {
            reason: match code {
                Some(code) => format!("{code} {reason}"),
                None => reason,
            },
        },
        SttEvent::Metadata(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::deepgram::Transcript;

    #[test]
    fn deepgram_results_become_the_ports_interims_finals_and_ends() {
        let result = |is_final, speech_final, from_finalize| {
            SttEvent::Transcript(Transcript {
                text: "haan ji".into(),
                is_final,
                speech_final,
                from_finalize,
                ..Transcript::default()
            })
        };
        assert_eq!(
            neutral(result(false, false, false)),
            Some(stt::SttEvent::Interim {
                text: "haan ji".into()
            })
        );
        assert_eq!(
            neutral(result(true, true, false)),
            Some(stt::SttEvent::Final {
                text: "haan ji".into(),
                end_of_turn: true,
                finalized: false
            })
        );
        assert_eq!(
            neutral(result(true, false, true)),
            Some(stt::SttEvent::Final {
                text: "haan ji".into(),
                end_of_turn: false,
                finalized: true
            })
        );
        assert_eq!(
            neutral(SttEvent::UtteranceEnd { last_word_end: 1.0 }),
            Some(stt::SttEvent::EndOfTurn)
        );
        assert_eq!(neutral(SttEvent::Metadata(Default::default())), None);
    }

    #[test]
    fn a_hindi_campaign_listens_with_multi() {
        let options = |language: &str| SttOptions {
            language: language.into(),
            sample_rate: 8000,
            endpointing_ms: 300,
        };
        let hi = DeepgramStt::listen_options(&options("hi-IN"));
        assert_eq!(hi.language, "multi");
        assert_eq!(hi.endpointing_ms, Some(300));
        assert_eq!(
            DeepgramStt::listen_options(&options("en-IN")).language,
            "en-IN"
        );
    }
}
