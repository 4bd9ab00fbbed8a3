//! The carrier's media-stream protocol behind one trait: events in, commands out. The call
//! pipeline only sees [`CarrierEvent`] and [`CarrierCommand`], so another carrier (Twilio Media
//! Streams: μ-law, camelCase, hang-up by REST) is a new [`CarrierProtocol`] implementation, not a
//! change to the pipeline.
//!
//! Exotel's Voicebot protocol (`shared/protocols/exotel.md` §1): parse leniently (numbers as
//! strings or numbers, `stream_sid` or `streamSid`, unknown events ignored), send strictly.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};

/// Something the carrier told us.
#[derive(Debug, Clone, PartialEq)]
pub enum CarrierEvent {
    Connected,
    Start(StreamStart),
    /// Caller audio: 16-bit little-endian PCM at the stream's sample rate.
    Media {
        pcm: Bytes,
        timestamp_ms: Option<u64>,
    },
    Dtmf {
        digit: char,
    },
    /// Everything sent before our mark of this name has been played.
    Mark {
        name: String,
    },
    /// The call ended (`callended`: the caller hung up; `stopped`: the flow ended).
    Stop {
        reason: String,
    },
    /// Undocumented `clear` from the carrier (tolerated, ignored).
    Clear,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamStart {
    pub stream_sid: String,
    pub call_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub custom_parameters: BTreeMap<String, String>,
    pub sample_rate: u32,
}

/// Something we tell the carrier.
#[derive(Debug, Clone, PartialEq)]
pub enum CarrierCommand {
    /// Agent audio: PCM, a multiple of the carrier's frame alignment.
    Media(Bytes),
    Mark(String),
    /// Drop audio queued and not yet played.
    Clear,
}

/// A carrier's media-stream wire format.
pub trait CarrierProtocol: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The carrier, for the metrics' labels.
    fn provider(&self) -> crate::voice::Provider;
    /// Parses one text frame; `None` for frames to ignore (unknown or malformed: logged).
    fn parse(&self, text: &str) -> Option<CarrierEvent>;
    /// Encodes one command for the stream `stream_sid`.
    fn encode(&self, command: &CarrierCommand, stream_sid: &str) -> String;
    /// Outbound audio must be a multiple of this many bytes.
    fn frame_alignment(&self) -> usize;
}

/// Exotel Voicebot applet / Connect Voice AI streams.
#[derive(Debug, Default, Clone, Copy)]
pub struct Exotel;

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn get<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(*k)).filter(|v| !v.is_null())
}

/// The fast path of [`Exotel::parse`]: a `media` frame, fields borrowed from the text.
#[derive(serde::Deserialize)]
struct MediaFrame<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    media: Option<MediaPart<'a>>,
}

#[derive(serde::Deserialize)]
struct MediaPart<'a> {
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
    /// Exotel sends numbers as strings; either is accepted.
    #[serde(default, deserialize_with = "lenient_u64")]
    timestamp: Option<u64>,
}

/// A number sent as a number or as a string (`"123"`), read without allocating; anything else
/// (null, a non-numeric string) is `None`. Both parse paths use it, so they read a timestamp
/// alike.
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Lenient;
    impl serde::de::Visitor<'_> for Lenient {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.parse().ok())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Lenient)
}

/// Appends `s` as a JSON string. Stream ids are plain ASCII, written as they are; anything
/// else goes through serde_json's escaping.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

impl CarrierProtocol for Exotel {
    fn name(&self) -> &'static str {
        "exotel"
    }

    fn provider(&self) -> crate::voice::Provider {
        crate::voice::Provider::Exotel
    }

    fn parse(&self, text: &str) -> Option<CarrierEvent> {
        // Ten `media` frames a second per call: read them without building a JSON tree or
        // copying the payload (the bench's profile showed the generic path's cost).
        if let Ok(frame) = serde_json::from_str::<MediaFrame>(text)
            && frame.event == "media"
            && let Some(media) = frame.media
        {
            let pcm = base64_simd::STANDARD
                .decode_to_vec(media.payload.as_bytes())
                .ok()?;
            return Some(CarrierEvent::Media {
                pcm: Bytes::from(pcm),
                timestamp_ms: media.timestamp,
            });
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring a carrier frame that is not JSON");
                return None;
            }
        };
        let event = v.get("event").and_then(Value::as_str)?;
        match event {
            "connected" => Some(CarrierEvent::Connected),
            "start" => {
                let start = v.get("start").unwrap_or(&Value::Null);
                let sid_keys = ["stream_sid", "streamSid"];
                let stream_sid = get(start, &sid_keys)
                    .or_else(|| get(&v, &sid_keys))
                    .and_then(text_of)
                    .unwrap_or_default();
                let custom_parameters = get(start, &["custom_parameters", "customParameters"])
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| text_of(v).map(|v| (k.clone(), v)))
                            .collect()
                    })
                    .unwrap_or_default();
                let sample_rate = get(start, &["media_format", "mediaFormat"])
                    .and_then(|f| get(f, &["sample_rate", "sampleRate"]))
                    .and_then(text_of)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(8000);
                Some(CarrierEvent::Start(StreamStart {
                    stream_sid,
                    call_sid: get(start, &["call_sid", "callSid"]).and_then(text_of),
                    from: get(start, &["from"]).and_then(text_of),
                    to: get(start, &["to"]).and_then(text_of),
                    custom_parameters,
                    sample_rate,
                }))
            }
            "media" => {
                let media = v.get("media")?;
                let payload = media.get("payload").and_then(Value::as_str)?;
                let pcm = base64_simd::STANDARD.decode_to_vec(payload).ok()?;
                Some(CarrierEvent::Media {
                    pcm: Bytes::from(pcm),
                    timestamp_ms: get(media, &["timestamp"])
                        .and_then(|t| lenient_u64(t).ok().flatten()),
                })
            }
            "dtmf" => {
                let digit = v
                    .get("dtmf")
                    .and_then(|d| get(d, &["digit"]))
                    .and_then(text_of)?
                    .chars()
                    .next()?;
                Some(CarrierEvent::Dtmf { digit })
            }
            "mark" => Some(CarrierEvent::Mark {
                name: v
                    .get("mark")
                    .and_then(|m| get(m, &["name"]))
                    .and_then(text_of)?,
            }),
            "stop" => Some(CarrierEvent::Stop {
                reason: v
                    .get("stop")
                    .and_then(|s| get(s, &["reason"]))
                    .and_then(text_of)
                    .unwrap_or_else(|| "stopped".into()),
            }),
            "clear" => Some(CarrierEvent::Clear),
            other => {
                tracing::debug!(event = other, "ignoring unknown carrier event");
                None
            }
        }
    }

    fn encode(&self, command: &CarrierCommand, stream_sid: &str) -> String {
        match command {
            CarrierCommand::Media(pcm) => {
                // Written directly: base64 needs no JSON escaping, and this runs ten times a
                // second per call.
                let mut out = String::with_capacity(pcm.len() * 4 / 3 + stream_sid.len() + 64);
                out.push_str(r#"{"event":"media","stream_sid":"#);
                push_json_string(&mut out, stream_sid);
                out.push_str(r#","media":{"payload":""#);
                // SIMD base64 (AVX2/SSE4.1/NEON, detected at run time): the framing's base64 was
                // 17% of the service's instructions with the scalar `base64` crate.
                base64_simd::STANDARD.encode_append(pcm, &mut out);
                out.push_str(r#""}}"#);
                return out;
            }
            CarrierCommand::Mark(name) => json!({
                "event": "mark",
                "stream_sid": stream_sid,
                "mark": {"name": name}
            }),
            CarrierCommand::Clear => json!({"event": "clear", "stream_sid": stream_sid}),
        }
        .to_string()
    }

    fn frame_alignment(&self) -> usize {
        320
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_parses_both_spellings_and_number_forms() {
        let snake = r#"{"event":"start","sequence_number":"1","stream_sid":"MZ1","start":{"stream_sid":"MZ1","call_sid":"CA1","account_sid":"AC","from":"+919876543210","to":"+918044556677","custom_parameters":{"call_id":"42"},"media_format":{"encoding":"audio/x-raw","sample_rate":"8000","bit_rate":"16"}}}"#;
        let camel = r#"{"event":"start","sequence_number":1,"streamSid":"MZ1","start":{"callSid":"CA1","customParameters":{"call_id":42},"media_format":{"encoding":"raw","sample_rate":16000,"bit_rate":"128"}}}"#;
        let CarrierEvent::Start(a) = Exotel.parse(snake).unwrap() else {
            panic!()
        };
        let CarrierEvent::Start(b) = Exotel.parse(camel).unwrap() else {
            panic!()
        };
        assert_eq!(a.stream_sid, "MZ1");
        assert_eq!(b.stream_sid, "MZ1");
        assert_eq!(a.call_sid.as_deref(), Some("CA1"));
        assert_eq!(b.call_sid.as_deref(), Some("CA1"));
        assert_eq!(a.custom_parameters["call_id"], "42");
        assert_eq!(b.custom_parameters["call_id"], "42");
        assert_eq!((a.sample_rate, b.sample_rate), (8000, 16000));
    }

    #[test]
    fn media_mark_dtmf_stop_and_unknown_events() {
        let media = r#"{"event":"media","sequence_number":"3","stream_sid":"MZ1","media":{"chunk":"2","timestamp":"200","payload":"AAEC"}}"#;
        assert_eq!(
            Exotel.parse(media),
            Some(CarrierEvent::Media {
                pcm: Bytes::from_static(&[0, 1, 2]),
                timestamp_ms: Some(200)
            })
        );
        let mark = r#"{"event":"mark","stream_sid":"MZ1","mark":{"name":"t3-p1"}}"#;
        assert_eq!(
            Exotel.parse(mark),
            Some(CarrierEvent::Mark {
                name: "t3-p1".into()
            })
        );
        let dtmf = r##"{"event":"dtmf","dtmf":{"digit":"#","duration":"100"}}"##;
        assert_eq!(Exotel.parse(dtmf), Some(CarrierEvent::Dtmf { digit: '#' }));
        let stop = r#"{"event":"stop","stop":{"call_sid":"CA1","reason":"callended"}}"#;
        assert_eq!(
            Exotel.parse(stop),
            Some(CarrierEvent::Stop {
                reason: "callended".into()
            })
        );
        assert_eq!(Exotel.parse(r#"{"event":"mystery"}"#), None);
        assert_eq!(Exotel.parse("not json"), None);
        assert_eq!(
            Exotel.parse(r#"{"event":"media","media":{"payload":"!!"}}"#),
            None
        );
    }

    #[test]
    fn commands_are_sent_in_exotels_snake_case() {
        let media: Value = serde_json::from_str(&Exotel.encode(
            &CarrierCommand::Media(Bytes::from_static(&[0, 1, 2])),
            "MZ1",
        ))
        .unwrap();
        assert_eq!(
            media,
            json!({"event": "media", "stream_sid": "MZ1", "media": {"payload": "AAEC"}})
        );
        let clear: Value =
            serde_json::from_str(&Exotel.encode(&CarrierCommand::Clear, "MZ1")).unwrap();
        assert_eq!(clear, json!({"event": "clear", "stream_sid": "MZ1"}));
        let mark: Value =
            serde_json::from_str(&Exotel.encode(&CarrierCommand::Mark("m".into()), "MZ1")).unwrap();
        assert_eq!(
            mark,
            json!({"event": "mark", "stream_sid": "MZ1", "mark": {"name": "m"}})
        );
        // A stream id that needs escaping still makes valid JSON with the id intact.
        let odd = "MZ\"1\\ü";
        let media: Value = serde_json::from_str(
            &Exotel.encode(&CarrierCommand::Media(Bytes::from_static(&[0, 1, 2])), odd),
        )
        .unwrap();
        assert_eq!(media["stream_sid"], odd);
    }

    #[test]
    fn media_timestamps_are_read_as_numbers_or_strings_or_left_out() {
        let frame = |ts: &str| {
            format!(r#"{{"event":"media","stream_sid":"MZ1","media":{{"payload":"AAEC"{ts}}}}}"#)
        };
        let stamp = |ts: &str| match Exotel.parse(&frame(ts)) {
            Some(CarrierEvent::Media { timestamp_ms, pcm }) => {
                assert_eq!(&pcm[..], &[0, 1, 2], "payload with {ts}");
                timestamp_ms
            }
            other => panic!("{ts}: {other:?}"),
        };
        assert_eq!(stamp(r#","timestamp":"480""#), Some(480));
        assert_eq!(stamp(r#","timestamp":480"#), Some(480));
        assert_eq!(stamp(r#","timestamp":null"#), None);
        assert_eq!(stamp(r#","timestamp":"soon""#), None);
        assert_eq!(stamp(r#","timestamp":-5"#), None);
        assert_eq!(stamp(""), None);
    }
}
