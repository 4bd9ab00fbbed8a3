//! The HTTP streaming transport (`POST …/stream`): the fallback that finishes a turn whose
//! WebSocket failed, and [`SampleAligner`], which both transports use to hand out whole samples.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::{ElevenLabsConfig, ElevenLabsError, OutputFormat};

/// Re-cuts a byte stream into whole samples, carrying a split sample to the next chunk.
#[derive(Debug)]
pub struct SampleAligner {
    bytes_per_sample: usize,
    carry: Option<u8>,
}

impl SampleAligner {
    pub fn new(format: OutputFormat) -> Self {
        Self {
            bytes_per_sample: format.bytes_per_sample(),
            carry: None,
        }
    }

    /// The whole samples available after `chunk` (possibly empty).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.bytes_per_sample == 1 {
            return chunk;
        }
        let mut joined = match self.carry.take() {
            None if chunk.len().is_multiple_of(2) => return chunk,
            None => chunk,
            Some(first) => {
                let mut b = BytesMut::with_capacity(chunk.len() + 1);
                b.extend_from_slice(&[first]);
                b.extend_from_slice(&chunk);
                b.freeze()
            }
        };
        if !joined.len().is_multiple_of(2) {
            self.carry = Some(joined[joined.len() - 1]);
            joined.truncate(joined.len() - 1);
        }
        joined
    }

    /// True when half a sample is waiting (at the end of a stream: a truncated sample).
    pub fn has_carry(&self) -> bool {
        self.carry.is_some()
    }
}

/// Audio chunks in the configured format, always whole samples.
pub type AudioStream = Pin<Box<dyn Stream<Item = Result<Bytes, ElevenLabsError>> + Send>>;

/// The HTTP side, sharing the service's one `reqwest::Client`.
#[derive(Debug, Clone)]
pub struct ElevenLabs {
    http: reqwest::Client,
    config: Arc<ElevenLabsConfig>,
}

impl ElevenLabs {
    pub fn new(http: reqwest::Client, config: ElevenLabsConfig) -> Self {
        Self {
            http,
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &ElevenLabsConfig {
        &self.config
    }

    /// Synthesizes `text` with `voice_id` over `POST …/stream`. Errors before the first byte
    /// (bad key, busy, …) come back here; errors later come through the stream.
    #[tracing::instrument(skip(self, text), fields(chars = text.chars().count()))]
    pub async fn synthesize_stream(
        &self,
        text: &str,
        voice_id: &str,
    ) -> Result<AudioStream, ElevenLabsError> {
        let c = &self.config;
        let url = c.endpoint(voice_id, "stream")?;
        let mut body = json!({
            "text": text,
            "model_id": c.model_id,
            "voice_settings": c.voice_settings,
        });
        if let Some(lang) = &c.language_code {
            body["language_code"] = json!(lang);
        }
        let request = self
            .http
            .post(url)
            .query(&[("output_format", c.output_format.as_str())])
            .header("xi-api-key", c.api_key.expose())
            .json(&body)
            .timeout(c.request_timeout)
            .send();
        let response = tokio::time::timeout(c.connect_timeout, request)
            .await
            .map_err(|_| ElevenLabsError::Timeout("waiting for the HTTP response"))??;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(ElevenLabsError::from_answer(status.as_u16(), &body));
        }
        let state = BodyState {
            body: Box::pin(response.bytes_stream()),
            aligner: SampleAligner::new(c.output_format),
            stall: c.stall_timeout,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, next_aligned)))
    }
}

struct BodyState {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    aligner: SampleAligner,
    stall: Duration,
    done: bool,
}

async fn next_aligned(mut st: BodyState) -> Option<(Result<Bytes, ElevenLabsError>, BodyState)> {
    if st.done {
        return None;
    }
    loop {
        match tokio::time::timeout(st.stall, st.body.next()).await {
            Err(_) => {
                st.done = true;
                return Some((Err(ElevenLabsError::Timeout("waiting for audio bytes")), st));
            }
            Ok(Some(Err(e))) => {
                st.done = true;
                return Some((Err(ElevenLabsError::Http(e)), st));
            }
            Ok(Some(Ok(chunk))) => {
                let aligned = st.aligner.push(chunk);
                if !aligned.is_empty() {
                    return Some((Ok(aligned), st));
                }
            }
            Ok(None) => {
                if st.aligner.has_carry() {
                    tracing::warn!("ElevenLabs audio ended with half a sample; dropped");
                }
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn odd_chunks_come_out_as_whole_samples() {
        let bytes: Vec<u8> = (0..=255).collect();
        for size in [1usize, 3, 7, 333] {
            let mut aligner = SampleAligner::new(OutputFormat::Pcm8000);
            let mut out = Vec::new();
            for chunk in bytes.chunks(size) {
                let aligned = aligner.push(Bytes::copy_from_slice(chunk));
                assert_eq!(aligned.len() % 2, 0, "size {size}");
                out.extend_from_slice(&aligned);
            }
            assert_eq!(out, bytes, "size {size}");
            assert!(!aligner.has_carry());
        }
    }

    #[test]
    fn ulaw_bytes_pass_through() {
        let mut aligner = SampleAligner::new(OutputFormat::Ulaw8000);
        assert_eq!(aligner.push(Bytes::from_static(b"abc")).as_ref(), b"abc");
    }
}
