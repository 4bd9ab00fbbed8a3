//! A call's transcript as text: one line per turn, `[mm:ss.d] speaker: text`, the time from the
//! start of the media stream; a turn cut by the caller is marked `[interrupted]` (its text is
//! what the caller heard).

use std::fmt::Write;

use crate::store::TranscriptTurn;

/// `[00:03.2]`, or `[--:--.-]` when the turn has no time.
pub fn timestamp(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms >= 0 => {
            let tenths = ms / 100;
            format!(
                "[{:02}:{:02}.{}]",
                tenths / 600,
                tenths / 10 % 60,
                tenths % 10
            )
        }
        _ => "[--:--.-]".into(),
    }
}

pub fn to_text(turns: &[TranscriptTurn]) -> String {
    let mut out = String::new();
    for t in turns {
        let _ = write!(out, "{} {}: {}", timestamp(t.started_ms), t.speaker, t.text);
        if t.interrupted {
            out.push_str(" [interrupted]");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(seq: i32, speaker: &str, text: &str, started_ms: Option<i64>) -> TranscriptTurn {
        TranscriptTurn {
            started_ms,
            ..TranscriptTurn::new(1, seq, speaker, text)
        }
    }

    #[test]
    fn times_are_minutes_seconds_tenths() {
        assert_eq!(timestamp(Some(0)), "[00:00.0]");
        assert_eq!(timestamp(Some(3249)), "[00:03.2]");
        assert_eq!(timestamp(Some(125_900)), "[02:05.9]");
        assert_eq!(timestamp(Some(3_725_000)), "[62:05.0]");
        assert_eq!(timestamp(None), "[--:--.-]");
    }

    #[test]
    fn one_line_per_turn_with_interruptions_marked() {
        let mut greeting = turn(1, "agent", "Hello, this is", Some(0));
        greeting.interrupted = true;
        let text = to_text(&[greeting, turn(2, "caller", "Who is this?", Some(3200))]);
        assert_eq!(
            text,
            "[00:00.0] agent: Hello, this is [interrupted]\n[00:03.2] caller: Who is this?\n"
        );
    }
}
