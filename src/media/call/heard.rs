//! How much of an agent turn the caller heard, in characters of its text, from how far its
//! audio has played.
//!
//! A barge-in or a hang-up cuts the agent's turn at what was heard, not at what was generated:
//! the history the model sees next and the stored transcript must hold the words the caller
//! heard and no others. The carrier's mark echoes say which whole phrases were played; this
//! module places the cut inside a phrase, at the last whole word played:
//! - from the TTS alignment (each character's time within its audio chunk) when the vendor gives
//!   one, mapped onto the turn's audio bytes;
//! - else from the audio itself: the phrases whose audio is complete, and the speaking rate
//!   measured on them (or [`DEFAULT_CHARS_PER_SEC`]) inside the phrase being played.
//!
//! Pure bookkeeping: byte offsets are the turn's own (the first byte of its audio is 0).

/// Speaking rate assumed before any of the turn's audio tells a better one (about conversational
/// speech; ElevenLabs' voices speak 13–17 characters a second).
pub const DEFAULT_CHARS_PER_SEC: u64 = 15;

/// Where the turn's characters fall in its audio.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    bytes_per_sec: u64,
    /// Audio bytes of the turn pushed so far.
    bytes: u64,
    /// Per aligned character, the byte offset at which it has been spoken.
    aligned: Vec<u64>,
    /// Per phrase whose audio is complete: (characters up to its end, byte offset of its end).
    phrase_ends: Vec<(usize, u64)>,
}

impl Timeline {
    pub fn new(sample_rate: u32) -> Self {
        Self {
            bytes_per_sec: u64::from(sample_rate) * 2,
            ..Self::default()
        }
    }

    /// Audio bytes of the turn so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A chunk of the turn's audio, with the times (ms from the chunk's start) at which each of
    /// its characters ends, if the vendor aligned it.
    pub fn push(&mut self, len: usize, char_ends_ms: impl Iterator<Item = u32>) {
        let start = self.bytes;
        let per_ms = self.bytes_per_sec / 1000;
        self.aligned
            .extend(char_ends_ms.map(|ms| start + u64::from(ms) * per_ms));
        self.bytes += len as u64;
    }

    /// All audio of the phrase ending at character `end_char` has been pushed.
    pub fn phrase_ended(&mut self, end_char: usize) {
        self.phrase_ends.push((end_char, self.bytes));
    }

    /// Characters of the turn heard once `position` bytes of its audio have played.
    pub fn chars_heard(&self, position: u64) -> usize {
        let by_alignment = self.aligned.partition_point(|&end| end <= position);
        // The last phrase wholly played, as a floor (and the estimate's starting point).
        let (phrase_chars, phrase_byte) = self
            .phrase_ends
            .iter()
            .rev()
            .find(|(_, end)| *end <= position)
            .copied()
            .unwrap_or((0, 0));
        if by_alignment < self.aligned.len() {
            // Inside the aligned audio: the alignment knows.
            return by_alignment.max(phrase_chars);
        }
        // Past every aligned character (or none): estimate from the last known point.
        let aligned_end = self.aligned.last().copied().unwrap_or(0);
        let (chars, byte) = if self.aligned.len() >= phrase_chars {
            (self.aligned.len(), aligned_end)
        } else {
            (phrase_chars, phrase_byte)
        };
        let per_char = self.bytes_per_char();
        chars + (position.saturating_sub(byte) / per_char) as usize
    }

    /// Audio bytes per character: measured on the turn where it can be, else the default rate.
    fn bytes_per_char(&self) -> u64 {
        let measured = match (self.aligned.len(), self.phrase_ends.last()) {
            (n, _) if n >= 8 => self.aligned.last().map(|b| b / n as u64),
            (_, Some(&(chars, bytes))) if chars >= 8 => Some(bytes / chars as u64),
            _ => None,
        };
        measured
            .filter(|b| *b > 0)
            .unwrap_or(self.bytes_per_sec / DEFAULT_CHARS_PER_SEC)
    }
}

/// `text` cut to its first `chars` characters, then back to the last whole word (a word is
/// whole once the character after it, a space or punctuation, has been heard or when it ends
/// the text), trimmed.
pub fn cut_at_word(text: &str, chars: usize) -> &str {
    let Some((cut, next)) = text.char_indices().nth(chars) else {
        return text.trim();
    };
    let heard = &text[..cut];
    // The word in progress is whole if the next character does not continue it.
    if !is_word_char(next) {
        return heard.trim();
    }
    match heard.rfind(|c: char| !is_word_char(c)) {
        Some(i) => heard[..i].trim(),
        None => "",
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '\'' | '’' | '-') || is_combining(c)
}

/// Devanagari vowel signs and the virama are part of the letter before them.
fn is_combining(c: char) -> bool {
    matches!(c, '\u{0900}'..='\u{0903}' | '\u{093A}'..='\u{094F}' | '\u{0951}'..='\u{0957}' | '\u{0962}' | '\u{0963}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_falls_back_to_the_last_whole_word() {
        let t = "Namaste Sneha, this is Asha from SunRise Solar. ";
        assert_eq!(cut_at_word(t, 0), "");
        assert_eq!(cut_at_word(t, 5), "", "half of the first word");
        assert_eq!(cut_at_word(t, 7), "Namaste", "the space after it is next");
        assert_eq!(cut_at_word(t, 13), "Namaste Sneha", "the comma is next");
        assert_eq!(cut_at_word(t, 14), "Namaste Sneha,");
        assert_eq!(cut_at_word(t, 17), "Namaste Sneha,");
        assert_eq!(cut_at_word(t, 400), t.trim(), "all of it");
        assert_eq!(
            cut_at_word("नमस्ते अमित जी", 5),
            "",
            "a Hindi word is whole or not at all"
        );
        assert_eq!(cut_at_word("नमस्ते अमित जी", 6), "नमस्ते");
    }

    #[test]
    fn aligned_characters_are_heard_once_their_audio_has_played() {
        // 8 kHz: 16 bytes a millisecond. Two chunks of 4 characters, 60 ms each (240 ms).
        let mut t = Timeline::new(8000);
        t.push(3840, [60, 120, 180, 240].into_iter());
        t.push(3840, [60, 120, 180, 240].into_iter());
        assert_eq!(t.chars_heard(0), 0);
        assert_eq!(t.chars_heard(60 * 16 - 1), 0);
        assert_eq!(t.chars_heard(60 * 16), 1);
        assert_eq!(t.chars_heard(3840 + 130 * 16), 6);
        assert_eq!(t.chars_heard(7680), 8);
    }

    #[test]
    fn without_alignment_the_rate_of_the_finished_phrases_is_used() {
        let mut t = Timeline::new(8000);
        // A 10-character phrase in 1 s of audio (16,000 bytes): 1,600 bytes a character.
        t.push(16_000, std::iter::empty());
        t.phrase_ended(10);
        t.push(8_000, std::iter::empty());
        assert_eq!(t.chars_heard(8_000), 5, "half of the first phrase");
        assert_eq!(t.chars_heard(16_000), 10);
        assert_eq!(
            t.chars_heard(16_000 + 3_200),
            12,
            "two more characters' worth"
        );
    }

    #[test]
    fn with_no_audio_measured_the_default_rate_applies() {
        let t = Timeline::new(8000);
        // 16,000 bytes a second at 15 characters a second.
        assert_eq!(t.chars_heard(16_000), 15);
    }
}
