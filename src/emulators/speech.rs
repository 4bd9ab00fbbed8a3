//! "Speech" the emulators can understand: text encoded in 16-bit PCM so that the emulated
//! callers and the emulated TTS produce audio from which the emulated STT recovers the words.
//!
//! What matters is that it behaves like speech where our code can tell: it has realistic
//! duration (one character per [`SYMBOL_MS`] ms, about 16 characters a second, like
//! conversational speech), it carries energy while "speaking" and none in silence, it survives
//! being cut into frames at any byte boundary (including odd ones), and a `clear` that drops audio
//! mid-sentence drops exactly the characters that were not played. Any Unicode scalar value
//! (Hindi included) round-trips.
//!
//! It also survives what a real audio path does to audio: resampling (the OpenAI-compatible TTS
//! speaks at 24 kHz, the call runs at 8 kHz), low-pass filtering and μ-law companding. So a
//! symbol carries its character in slow, band-limited features read with a tolerance, not in
//! exact sample values. Layout of one symbol, `SYMBOL_MS` long, in "holds" of [`HOLD_MS`] ms
//! (a constant level):
//! `[+SYNC, -SYNC, +SYNC, 11 data holds of 3 bits each, tone…]`: 21 bits of the character and
//! a 12-bit check; the tone is a 400 Hz sine of amplitude [`TONE_AMPLITUDE`] filling the rest.
//! Nothing but a sync hold reaches [`SYNC_THRESHOLD`], so the decoder finds symbols by scanning
//! for it, then reads each hold at its middle, where a filter's ringing has died down.
//!
//! This is emulator-only code: the product never imports it.

/// Duration of one character.
pub const SYMBOL_MS: u32 = 60;
/// Duration of one constant level of a symbol's header.
pub const HOLD_MS: u32 = 2;
/// Peak of the tone that fills a symbol; well below the sync level.
pub const TONE_AMPLITUDE: f32 = 6_000.0;
const SYNC: i16 = 28_000;
/// A sample beyond this (either sign) belongs to a sync hold.
const SYNC_THRESHOLD: i16 = 21_000;
/// Data levels are `(2v - 7) * LEVEL_STEP / 2` for v in 0..8: ±2,000 … ±14,000.
const LEVEL_STEP: i32 = 4_000;
/// A data hold read further than this from its level is not speech.
const LEVEL_TOLERANCE: i32 = 1_500;
const DATA_HOLDS: usize = 11;
const SYNC_HOLDS: usize = 3;
const HEADER_HOLDS: usize = SYNC_HOLDS + DATA_HOLDS;
const CHECK_BITS: u32 = 12;

/// Samples in one symbol at `sample_rate`.
pub fn symbol_samples(sample_rate: u32) -> usize {
    (sample_rate * SYMBOL_MS / 1000) as usize
}

/// Samples in one hold at `sample_rate`.
fn hold_samples(sample_rate: u32) -> usize {
    (sample_rate * HOLD_MS / 1000) as usize
}

/// Samples of a symbol's header: a character is heard once these have played.
pub fn header_samples(sample_rate: u32) -> usize {
    HEADER_HOLDS * hold_samples(sample_rate)
}

/// The 12-bit check of a character code.
fn check_of(code: u32) -> u32 {
    (code.wrapping_mul(0x9E37_79B1) >> 20) & ((1 << CHECK_BITS) - 1)
}

fn level_of(value: u32) -> i16 {
    ((2 * value as i32 - 7) * LEVEL_STEP / 2) as i16
}

/// The 3-bit value a data hold read as `x` carries, if it is near a level.
fn value_of(x: i32) -> Option<u32> {
    let v = ((x as f32 * 2.0 / LEVEL_STEP as f32 + 7.0) / 2.0).round() as i32;
    ((0..8).contains(&v) && (x - level_of(v as u32) as i32).abs() <= LEVEL_TOLERANCE)
        .then_some(v as u32)
}

/// Encodes `text` as speech samples (no leading or trailing silence).
pub fn synthesize(text: &str, sample_rate: u32) -> Vec<i16> {
    let n = symbol_samples(sample_rate);
    let hold = hold_samples(sample_rate);
    let mut out = Vec::with_capacity(text.chars().count() * n);
    for ch in text.chars() {
        let code = ch as u32;
        let bits = ((code as u64) << CHECK_BITS) | check_of(code) as u64;
        for level in [SYNC, -SYNC, SYNC] {
            out.extend(std::iter::repeat_n(level, hold));
        }
        for k in (0..DATA_HOLDS).rev() {
            let value = ((bits >> (3 * k)) & 0b111) as u32;
            out.extend(std::iter::repeat_n(level_of(value), hold));
        }
        for i in HEADER_HOLDS * hold..n {
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
#[derive(Debug)]
pub struct SpeechDecoder {
    /// Samples not yet scanned past (at most a header's worth is carried between pushes).
    pending: Vec<i16>,
    /// Absolute index of `pending[0]`.
    pending_start: u64,
    /// A trailing odd byte from `push_bytes`.
    odd_byte: Option<u8>,
    hold: usize,
}

impl Default for SpeechDecoder {
    fn default() -> Self {
        Self::for_rate(8000)
    }
}

impl SpeechDecoder {
    /// A decoder for 8 kHz audio.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder for audio at `sample_rate`.
    pub fn for_rate(sample_rate: u32) -> Self {
        Self {
            pending: Vec::new(),
            pending_start: 0,
            odd_byte: None,
            hold: hold_samples(sample_rate).max(1),
        }
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
        let hold = self.hold;
        let header = HEADER_HOLDS * hold;
        let mut found = Vec::new();
        let mut i = 0;
        while i + header <= self.pending.len() {
            // The rising edge of a first sync hold: the symbol starts here.
            let p = &self.pending;
            if p[i] < SYNC_THRESHOLD || (i > 0 && p[i - 1] >= SYNC_THRESHOLD) {
                i += 1;
                continue;
            }
            match decode_header(&p[i..i + header], hold) {
                Some(ch) => {
                    found.push(Decoded {
                        ch,
                        at_sample: self.pending_start + i as u64,
                    });
                    i += header;
                }
                None => i += 1,
            }
        }
        // Keep only what could still be the start of a header (and the sample before it).
        let keep_from = i.saturating_sub(1).min(self.pending.len());
        self.pending.drain(..keep_from);
        self.pending_start += keep_from as u64;
        found
    }
}

/// Reads one header (starting at its first sync hold's rising edge) at each hold's middle.
fn decode_header(p: &[i16], hold: usize) -> Option<char> {
    let at = |k: usize| p[k * hold + hold / 2] as i32;
    let sync = SYNC_THRESHOLD as i32;
    if at(0) < sync || at(1) > -sync || at(2) < sync {
        return None;
    }
    let mut bits: u64 = 0;
    for k in 0..DATA_HOLDS {
        bits = (bits << 3) | value_of(at(SYNC_HOLDS + k))? as u64;
    }
    let code = (bits >> CHECK_BITS) as u32;
    let check = (bits & ((1 << CHECK_BITS) - 1)) as u32;
    if check != check_of(code) {
        return None;
    }
    char::from_u32(code)
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
            let wide: String = SpeechDecoder::for_rate(16000)
                .push(&synthesize(text, 16000))
                .iter()
                .map(|d| d.ch)
                .collect();
            assert_eq!(wide, text);
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
        // Played up to the middle of the fourth symbol, past its header.
        let played = &audio[..3 * 480 + 300];
        assert_eq!(transcribe(played), "abcd");
        assert_eq!(
            transcribe(&audio[..3 * 480 + header_samples(8000) - 1]),
            "abc"
        );
        assert_eq!(transcribe(&audio[..3 * 480 + header_samples(8000)]), "abcd");
    }

    #[test]
    fn every_rate_round_trips_with_its_own_decoder() {
        let text = "Namaste, कैसे हैं आप?";
        for rate in [8000, 16000, 24000] {
            let got: String = SpeechDecoder::for_rate(rate)
                .push(&synthesize(text, rate))
                .iter()
                .map(|d| d.ch)
                .collect();
            assert_eq!(got, text, "{rate} Hz");
        }
    }

    #[test]
    fn small_errors_on_every_sample_are_tolerated() {
        // Noise of ±1,000 on every sample (a filter's ripple, μ-law's steps) changes nothing.
        let text = "Yes, I am interested.";
        let mut samples = synthesize(text, 8000);
        for (i, s) in samples.iter_mut().enumerate() {
            let noise = ((i as i32 * 7919) % 2001) - 1000;
            *s = (*s as i32 + noise).clamp(-32768, 32767) as i16;
        }
        assert_eq!(transcribe(&samples), text);
    }
}
