//! Deepgram's server messages as typed events, parsed leniently: missing fields default, unknown
//! `type`s are skipped (the service adds message types over time), so a new field or message
//! never breaks a live call.

use std::time::Duration;

use serde::Deserialize;

/// What the session reports to the call. Times are seconds on the call's audio timeline
/// (audio handed to the session), also across reconnects.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    Transcript(Transcript),
    /// Speech began after silence: the fast barge-in signal.
    SpeechStarted {
        timestamp: f64,
    },
    /// Backup end-of-turn signal for when `speech_final` never came.
    UtteranceEnd {
        last_word_end: f64,
    },
    /// Last message of a stream closed with `CloseStream`.
    Metadata(Metadata),
    /// Deepgram could not use a message we sent; the connection stays open.
    Error {
        description: String,
    },
    /// The connection dropped and was re-opened; `replayed` audio (everything not yet final)
    /// was sent again so no words are lost.
    Reconnected {
        attempts: u32,
        replayed: Duration,
    },
    /// The session is over; nothing follows. `code` is the WebSocket close code, if any.
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

/// One `Results` message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub text: String,
    /// This span is fixed; concatenate finals to build the utterance.
    pub is_final: bool,
    /// Endpointing saw the pause: the utterance is over.
    pub speech_final: bool,
    /// Answer to our `Finalize`.
    pub from_finalize: bool,
    pub start: f64,
    pub duration: f64,
    pub confidence: f64,
    pub words: Vec<Word>,
}

impl Transcript {
    /// End of the audio span this result covers.
    pub fn end(&self) -> f64 {
        self.start + self.duration
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Word {
    pub word: String,
    pub punctuated_word: String,
    pub start: f64,
    pub end: f64,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata {
    pub request_id: String,
    pub created: String,
    /// Seconds of audio the connection received.
    pub duration: f64,
    pub channels: u32,
}

impl SttEvent {
    /// The same event with its times moved `by` seconds (connection time → call time).
    pub(super) fn shifted(self, by: f64) -> Self {
        match self {
            Self::Transcript(mut t) => {
                t.start += by;
                for w in &mut t.words {
                    w.start += by;
                    w.end += by;
                }
                Self::Transcript(t)
            }
            Self::SpeechStarted { timestamp } => Self::SpeechStarted {
                timestamp: timestamp + by,
            },
            Self::UtteranceEnd { last_word_end } => Self::UtteranceEnd {
                last_word_end: last_word_end + by,
            },
            other => other,
        }
    }
}

/// Parses one text message; `Ok(None)` for a message type we do not use.
pub fn parse_event(text: &str) -> Result<Option<SttEvent>, serde_json::Error> {
    Ok(match serde_json::from_str::<Wire>(text)? {
        Wire::Results(r) => {
            let alt = r
                .channel
                .alternatives
                .into_iter()
                .next()
                .unwrap_or_default();
            Some(SttEvent::Transcript(Transcript {
                text: alt.transcript,
                is_final: r.is_final,
                speech_final: r.speech_final,
                from_finalize: r.from_finalize,
                start: r.start,
                duration: r.duration,
                confidence: alt.confidence,
                words: alt
                    .words
                    .into_iter()
                    .map(|w| Word {
                        punctuated_word: w.punctuated_word.unwrap_or_else(|| w.word.clone()),
                        word: w.word,
                        start: w.start,
                        end: w.end,
                        confidence: w.confidence,
                    })
                    .collect(),
            }))
        }
        Wire::SpeechStarted { timestamp } => Some(SttEvent::SpeechStarted { timestamp }),
        Wire::UtteranceEnd { last_word_end } => Some(SttEvent::UtteranceEnd { last_word_end }),
        Wire::Metadata(m) => Some(SttEvent::Metadata(Metadata {
            request_id: m.request_id,
            created: m.created,
            duration: m.duration,
            channels: m.channels,
        })),
        Wire::Error(e) => {
            let description = [e.description, e.message, e.err_msg, e.variant]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_else(|| "unspecified error".into());
            Some(SttEvent::Error { description })
        }
        Wire::Unknown => None,
    })
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Wire {
    Results(WireResults),
    SpeechStarted {
        #[serde(default)]
        timestamp: f64,
    },
    UtteranceEnd {
        #[serde(default)]
        last_word_end: f64,
    },
    Metadata(WireMetadata),
    Error(WireError),
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireResults {
    start: f64,
    duration: f64,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool,
    channel: WireChannel,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireChannel {
    alternatives: Vec<WireAlternative>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireAlternative {
    transcript: String,
    confidence: f64,
    words: Vec<WireWord>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireWord {
    word: String,
    punctuated_word: Option<String>,
    start: f64,
    end: f64,
    confidence: f64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireMetadata {
    request_id: String,
    created: String,
    duration: f64,
    channels: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireError {
    description: String,
    message: String,
    err_msg: String,
    variant: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_with_words_and_flags() {
        let text = r#"{"type":"Results","channel_index":[0,1],"duration":1.02,"start":3.5,
            "is_final":true,"speech_final":true,"from_finalize":false,
            "channel":{"alternatives":[{"transcript":"haan ji boliye","confidence":0.97,
            "languages":["hi"],"words":[{"word":"haan","start":3.52,"end":3.7,
            "confidence":0.98,"punctuated_word":"Haan"}]}]},"metadata":{"request_id":"x"}}"#;
        let Some(SttEvent::Transcript(t)) = parse_event(text).unwrap() else {
            panic!("not a transcript");
        };
        assert_eq!(t.text, "haan ji boliye");
        assert!(t.is_final && t.speech_final && !t.from_finalize);
        assert_eq!(t.words[0].punctuated_word, "Haan");
        assert!((t.end() - 4.52).abs() < 1e-9);
    }

    #[test]
    fn unknown_types_are_skipped_and_missing_fields_default() {
        assert_eq!(parse_event(r#"{"type":"Warning","x":1}"#).unwrap(), None);
        let Some(SttEvent::Transcript(t)) = parse_event(r#"{"type":"Results"}"#).unwrap() else {
            panic!("not a transcript");
        };
        assert!(t.text.is_empty() && !t.is_final);
    }

    #[test]
    fn shifting_moves_every_time_to_the_call_timeline() {
        let event = SttEvent::Transcript(Transcript {
            start: 1.0,
            words: vec![Word {
                start: 1.5,
                end: 2.0,
                ..Word::default()
            }],
            ..Transcript::default()
        })
        .shifted(10.0);
        let SttEvent::Transcript(t) = event else {
            panic!()
        };
        assert_eq!(
            (t.start, t.words[0].start, t.words[0].end),
            (11.0, 11.5, 12.0)
        );
    }
}
