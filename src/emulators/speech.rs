//! "Speech" the emulators can understand: text encoded in 16-bit PCM so that the emulated
//! callers and the emulated TTS produce audio from which the emulated STT recovers the words.
//!
//! Real audio crosses our pipeline untouched (Exotel PCM → Deepgram `linear16`, ElevenLabs
//! `pcm_8000` → Exotel), so the encoding can be exact rather than acoustic. What matters is that
//! it behaves like speech where our code can tell: it has realistic duration (one character per
//! [`SYMBOL_MS`] ms, about 16 characters a second, like conversational speech), it carries energy
//! while "speaking" and none in silence, it survives being cut into frames at any byte boundary
//! (including odd ones), and a `clear` that drops audio mid-sentence drops exactly the characters
//! that were not played. Any Unicode scalar value (Hindi included) round-trips.
//!
//! Layout of one symbol (one character), `SYMBOL_MS` long:
//! `[SYNC_A, SYNC_B, SYNC_C, high 16 bits, low 16 bits, check, tone…]` where the tone is a
//! 400 Hz sine of amplitude [`TONE_AMPLITUDE`] filling the rest. The tone never reaches the sync
//! values, so the decoder finds symbols by scanning for the sync triple.
//!
//! This is emulator-only code: the product never imports it.

/// Duration of one character.
pub const SYMBOL_MS: u32 = 60;
const SYNC_A: i16 = 31_322;
const SYNC_B: i16 = -31_322;
const SYNC_C: i16 = 23_162;
const CHECK_KEY: u16 = 0x5A3C;
/// Peak of the tone that fills a symbol; well below the sync values.
pub const TONE_AMPLITUDE: f32 = 6_000.0;
const HEADER: usize = 6;

/// Samples in one symbol at `sample_rate`.
pub fn symbol_samples(sample_rate: u32) -> usize {
    (sample_rate * SYMBOL_MS / 1000) as usize
}

/// Encodes `text` as speech samples (no leading or trailing silence).
pub fn synthesize(text: &str, sample_rate: u32) -> Vec<i16> {
    let n = symbol_samples(sample_rate);
    let mut out = Vec::with_capacity(text.chars().count() * n);
    for ch in text.chars() {
        let code = ch as u32;
        let hi = (code >> 16) as u16;
        let lo = (code & 0xFFFF) as u16;
        let check = hi ^ lo ^ CHECK_KEY;
        out.extend_from_slice(&[SYNC_A, SYNC_B, SYNC_C, hi as i16, lo as i16, check as i16]);
        for i in HEADER..n {
            let t = i as f32 / sample_rate as f32;
            out.push((TONE_AMPLITUDE * (2.0 * std::f32::consts::PI * 400.0 * t).sin()) as i16);
        }
    }
    out
}

/// Samples of silence lasting `ms`.
pub fn silence(ms: u32, sample_rate: u32) -> Vec<i16> {
    vec![0; (sample_rate * ms / 1000) as usize]
}

/// Little-endian 16-bit PCM bytes, as Exotel and `pcm_8000` carry them.
pub fn to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Samples from little-endian PCM bytes (a trailing odd byte is ignored).
pub fn from_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// True when the samples carry sound (speech) rather than silence.
pub fn is_voiced(samples: &[i16]) -> bool {
    samples.iter().any(|s| s.unsigned_abs() > 500)
}

/// One character recovered from the audio, with the sample index at which its symbol began
/// (counted from the first sample ever pushed into the decoder: audio time, not wall time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub ch: char,
    pub at_sample: u64,
}

/// Streaming decoder: push audio as it arrives, in chunks of any size, and get characters back.
#[derive(Debug, Default)]
pub struct SpeechDecoder {
    /// Samples not yet scanned past (at most a header's worth is carried between pushes).
    pending: Vec<i16>,
    /// Absolute index of `pending[0]`.
    pending_start: u64,
    /// A trailing odd byte from `push_bytes`.
    odd_byte: Option<u8>,
}

impl SpeechDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total samples pushed so far (the audio clock).
    pub fn samples_seen(&self) -> u64 {
        self.pending_start + self.pending.len() as u64
    }

    /// Pushes raw little-endian PCM bytes (odd-length chunks are fine).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
        let mut rest = bytes;
        if let Some(first) = self.odd_byte.take() {
            match rest.split_first() {
                Some((second, tail)) => {
                    samples.push(i16::from_le_bytes([first, *second]));
                    rest = tail;
                }
                None => {
                    self.odd_byte = Some(first);
                    return vec![];
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        samples.extend(pairs.by_ref().map(|b| i16::from_le_bytes([b[0], b[1]])));
        if let [last] = pairs.remainder() {
            self.odd_byte = Some(*last);
        }
        self.push(&samples)
    }

    /// Pushes samples and returns the characters whose headers are now complete.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Decoded> {
        self.pending.extend_from_slice(samples);
        let mut found = Vec::new();
        let mut i = 0;
        while i + HEADER <= self.pending.len() {
            let p = &self.pending[i..i + HEADER];
            if p[0] == SYNC_A && p[1] == SYNC_B && p[2] == SYNC_C {
                let hi = p[3] as u16;
                let lo = p[4] as u16;
                if hi ^ lo ^ CHECK_KEY == p[5] as u16
                    && let Some(ch) = char::from_u32(((hi as u32) << 16) | lo as u32)
                {
                    found.push(Decoded {
                        ch,
                        at_sample: self.pending_start + i as u64,
                    });
                    i += HEADER;
                    continue;
                }
            }
            i += 1;
        }
        // Keep only what could still be the start of a header.
        let keep_from = i.min(self.pending.len());
        self.pending.drain(..keep_from);
        self.pending_start += keep_from as u64;
        found
    }
}

/// Decodes a whole buffer at once.
pub fn transcribe(samples: &[i16]) -> String {
    SpeechDecoder::new()
        .push(samples)
        .iter()
        .map(|d| d.ch)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_including_hindi() {
        for text in ["Yes, I am interested.", "हाँ जी, बोलिए।", "ok 123 ✓"]
        {
            assert_eq!(transcribe(&synthesize(text, 8000)), text);
            assert_eq!(transcribe(&synthesize(text, 16000)), text);
        }
    }

    #[test]
    fn duration_is_like_speech() {
        let samples = synthesize("hello there", 8000);
        assert_eq!(samples.len(), 11 * 480);
        assert!(is_voiced(&samples[..480]));
        assert!(!is_voiced(&silence(100, 8000)));
    }

    #[test]
    fn survives_any_chunking_including_odd_bytes() {
        let text = "Namaste, कैसे हैं आप?";
        let mut audio = silence(130, 8000);
        audio.extend(synthesize(text, 8000));
        audio.extend(silence(300, 8000));
        let bytes = to_bytes(&audio);
        for chunk in [1usize, 3, 320, 333, 1601] {
            let mut d = SpeechDecoder::new();
            let got: String = bytes
                .chunks(chunk)
                .flat_map(|c| d.push_bytes(c))
                .map(|x| x.ch)
                .collect();
            assert_eq!(got, text, "chunk {chunk}");
            assert_eq!(d.samples_seen(), audio.len() as u64);
        }
    }

    #[test]
    fn positions_are_audio_time() {
        let mut audio = silence(100, 8000);
        audio.extend(synthesize("ab", 8000));
        let mut d = SpeechDecoder::new();
        let got = d.push(&audio);
        assert_eq!(got[0].at_sample, 800);
        assert_eq!(got[1].at_sample, 800 + 480);
    }

    #[test]
    fn cutting_the_audio_drops_exactly_the_unplayed_characters() {
        let audio = synthesize("abcdef", 8000);
        // Played up to the middle of the fourth symbol.
        let played = &audio[..3 * 480 + 200];
        assert_eq!(transcribe(played), "abcd");
        assert_eq!(transcribe(&audio[..3 * 480 + 3]), "abc");
    }
}
