//! What the `multi-stream-input` socket sends us, read with as few copies as possible.
//!
//! The AsyncAPI document (`V1TextToSpeechVoiceIdMultiStreamInputSubscribe`) names two server
//! messages: `AudioOutputMulti` (`audio`, `alignment`, `normalizedAlignment`, `contextId`; only
//! `audio` required) and `FinalOutputMulti` (`isFinal`, `contextId`; only `isFinal` required).
//! Other clients and servers also use `context_id` and mark the last chunk of a flushed turn
//! with `is_final_audio_for_turn` (`/work/shared/protocols/elevenlabs.md`): both are accepted,
//! neither is relied on. An error is a JSON with `message`/`error` before a close.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

/// Which characters an audio chunk speaks, with times relative to the chunk's start.
///
/// ElevenLabs sends the characters as an array of one-character strings. They are read into
/// one string and a count: an audio message carries two alignments, and read as JSON values
/// (or as a `Vec<String>`) they were one allocation per character, the largest single share of
/// the bench's allocations (heaptrack).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alignment {
    /// The characters, concatenated, and how many there were.
    #[serde(deserialize_with = "concat_chars")]
    pub chars: AlignedChars,
    pub char_start_times_ms: Vec<u32>,
    pub char_durations_ms: Vec<u32>,
}

/// The `chars` of an [`Alignment`]: their text and their number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlignedChars {
    pub text: String,
    pub count: usize,
}

/// Reads `["H","i"]` into one string without a `String` per element.
fn concat_chars<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AlignedChars, D::Error> {
    use serde::de::{DeserializeSeed, SeqAccess, Visitor};

    /// Appends one string element to the text.
    struct Append<'s>(&'s mut String);
    impl<'de> DeserializeSeed<'de> for Append<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Append<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a character")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
            self.0.push_str(v);
            Ok(())
        }
    }

    struct Chars;
    impl<'de> Visitor<'de> for Chars {
        type Value = AlignedChars;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of characters")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AlignedChars, A::Error> {
            let mut chars = AlignedChars {
                text: String::with_capacity(seq.size_hint().unwrap_or(16)),
                count: 0,
            };
            while seq.next_element_seed(Append(&mut chars.text))?.is_some() {
                chars.count += 1;
            }
            Ok(chars)
        }
    }
    d.deserialize_seq(Chars)
}

/// One message from the socket. The audio (base64, the bulk of the message) and the context
/// id are borrowed from the frame's text when they hold no JSON escapes, as base64 never does.
#[derive(Debug)]
pub(super) struct ServerMessage<'a> {
    pub audio: Option<Cow<'a, str>>,
    pub is_final: Option<bool>,
    pub context_id: Option<Cow<'a, str>>,
    /// `is_final_audio_for_turn`: this audio is the last of a flushed turn (not in the spec).
    pub final_audio: Option<bool>,
    pub alignment: Option<Alignment>,
    pub normalized_alignment: Option<Alignment>,
    pub message: Option<String>,
    pub error: Option<String>,
}

impl<'a> ServerMessage<'a> {
    /// Reads a message: first strictly, borrowing the audio and reading the alignments
    /// directly; a message that does not fit (an escaped string, an alignment of an unexpected
    /// shape) is read again loosely, so its audio still plays, without that alignment, as it
    /// did when every message was read as JSON values.
    pub fn parse(text: &'a str) -> serde_json::Result<Self> {
        // `Option<Cow<str>>` never borrows in serde; `Option<&str>` does, and fails on escapes.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Strict<'a> {
            #[serde(borrow, default)]
            audio: Option<&'a str>,
            #[serde(alias = "is_final")]
            is_final: Option<bool>,
            #[serde(borrow, default, alias = "context_id")]
            context_id: Option<&'a str>,
            #[serde(rename = "is_final_audio_for_turn", alias = "isFinalAudioForTurn")]
            final_audio: Option<bool>,
            #[serde(default)]
            alignment: Option<Alignment>,
            #[serde(default)]
            normalized_alignment: Option<Alignment>,
            message: Option<String>,
            error: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Loose {
            audio: Option<String>,
            #[serde(alias = "is_final")]
            is_final: Option<bool>,
            #[serde(alias = "context_id")]
            context_id: Option<String>,
            #[serde(rename = "is_final_audio_for_turn", alias = "isFinalAudioForTurn")]
            final_audio: Option<bool>,
            alignment: Option<Value>,
            normalized_alignment: Option<Value>,
            message: Option<String>,
            error: Option<String>,
        }
        if let Ok(m) = serde_json::from_str::<Strict>(text) {
            return Ok(ServerMessage {
                audio: m.audio.map(Cow::Borrowed),
                is_final: m.is_final,
                context_id: m.context_id.map(Cow::Borrowed),
                final_audio: m.final_audio,
                alignment: m.alignment,
                normalized_alignment: m.normalized_alignment,
                message: m.message,
                error: m.error,
            });
        }
        let loose: Loose = serde_json::from_str(text)?;
        let read = |v: Option<Value>| v.and_then(|v| serde_json::from_value(v).ok());
        Ok(ServerMessage {
            audio: loose.audio.map(Cow::Owned),
            is_final: loose.is_final,
            context_id: loose.context_id.map(Cow::Owned),
            final_audio: loose.final_audio,
            alignment: read(loose.alignment),
            normalized_alignment: read(loose.normalized_alignment),
            message: loose.message,
            error: loose.error,
        })
    }

    /// An error report (`input_timeout_exceeded`, `max_active_conversations`, …).
    pub fn is_error(&self) -> bool {
        self.error.is_some() || (self.message.is_some() && self.audio.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_messages_are_read_with_their_alignment_or_the_normalized_one() {
        let text = r#"{"audio":"AAEC","isFinal":null,"contextId":"t1",
            "alignment":{"chars":["H","\"","ü"," "],"charStartTimesMs":[0,60,120,180],"charDurationsMs":[60,60,60,60]},
            "normalizedAlignment":{"chars":["h"],"charStartTimesMs":[0],"charDurationsMs":[240]}}"#;
        let msg = ServerMessage::parse(text).unwrap();
        assert_eq!(msg.audio.as_deref(), Some("AAEC"));
        assert!(
            matches!(msg.audio, Some(Cow::Borrowed(_))),
            "audio is not copied"
        );
        assert_eq!(msg.context_id.as_deref(), Some("t1"));
        let a = msg.alignment.or(msg.normalized_alignment).unwrap();
        assert_eq!(a.chars.text, "H\"ü ");
        assert_eq!(a.chars.count, 4);
        assert_eq!(a.char_start_times_ms, [0, 60, 120, 180]);

        let only_normalized = r#"{"audio":"AAEC","contextId":"t1","alignment":null,
            "normalizedAlignment":{"chars":["o","k"],"charStartTimesMs":[0,60],"charDurationsMs":[60,60]}}"#;
        let msg = ServerMessage::parse(only_normalized).unwrap();
        let a = msg.alignment.or(msg.normalized_alignment).unwrap();
        assert_eq!((a.chars.text.as_str(), a.chars.count), ("ok", 2));

        // An alignment of an unexpected shape costs the alignment, never the audio.
        let odd = r#"{"audio":"AAEC","contextId":"t1","isFinal":false,
            "alignment":{"chars":[1],"charStartTimesMs":[0.5],"charDurationsMs":[]},
            "normalizedAlignment":{"chars":["o"],"charStartTimesMs":[0],"charDurationsMs":[60]}}"#;
        let msg = ServerMessage::parse(odd).unwrap();
        assert_eq!(msg.audio.as_deref(), Some("AAEC"));
        assert_eq!(msg.is_final, Some(false));
        assert!(msg.alignment.is_none());
        assert_eq!(msg.normalized_alignment.unwrap().chars.text, "o");
        let escaped = ServerMessage::parse(r#"{"audio":"AA\/C","contextId":"t1"}"#).unwrap();
        assert_eq!(
            escaped.audio.as_deref(),
            Some("AA/C"),
            "an escaped string is still read"
        );
        let no_alignment = ServerMessage::parse(r#"{"audio":"AAEC","alignment":"x"}"#).unwrap();
        assert_eq!(no_alignment.audio.as_deref(), Some("AAEC"));
        assert!(no_alignment.alignment.is_none());
        assert!(ServerMessage::parse("not json").is_err());
    }

    #[test]
    fn the_end_of_a_context_is_read_under_every_spelling() {
        let spec = ServerMessage::parse(r#"{"isFinal":true,"contextId":"turn-2"}"#).unwrap();
        assert_eq!(
            (spec.is_final, spec.context_id.as_deref()),
            (Some(true), Some("turn-2"))
        );
        let snake = ServerMessage::parse(r#"{"is_final":true,"context_id":"turn-2"}"#).unwrap();
        assert_eq!(
            (snake.is_final, snake.context_id.as_deref()),
            (Some(true), Some("turn-2"))
        );
        let marked = ServerMessage::parse(
            r#"{"audio":"AAEC","context_id":"t","is_final_audio_for_turn":true}"#,
        )
        .unwrap();
        assert_eq!(marked.final_audio, Some(true));
        assert_eq!(marked.context_id.as_deref(), Some("t"));
        let bare = ServerMessage::parse(r#"{"isFinal":true}"#).unwrap();
        assert_eq!((bare.is_final, bare.context_id), (Some(true), None));
        let error =
            ServerMessage::parse(r#"{"message":"m","error":"input_timeout_exceeded","code":1008}"#)
                .unwrap();
        assert!(error.is_error());
        assert!(!marked.is_error());
    }
}
