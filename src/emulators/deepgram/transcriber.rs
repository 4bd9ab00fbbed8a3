//! The emulated recogniser: turns emulated speech into Deepgram-shaped results on the AUDIO
//! clock (samples received), never on wall time, exactly like the real service. Pure and
//! synchronous (no sockets, no timers) so its timing rules are unit-tested directly.
//!
//! Rules, all in audio time:
//! - a character belongs to the result window in which its symbol starts; words are split on
//!   whitespace; a word ends where its last symbol ends;
//! - `endpointing` ms of silence after words → one final with `speech_final=true`;
//! - `max_segment` of continuous speech → a final with `speech_final=false` holding the complete
//!   words so far (long utterances are finalised in pieces);
//! - `max_segment` of silence with nothing pending → an empty final (the real service also sends
//!   empty finals over silence, which lets clients trim their replay buffers);
//! - interim results every `interim_every` of new speech; `SpeechStarted` at the first voiced
//!   sample after silence; `UtteranceEnd` once `utterance_end` has passed after the last word.
//!
//! Windows are contiguous: each result starts where the previous final ended, so `start +
//! duration` of a final is a safe point to replay audio from after a reconnect.

use crate::emulators::speech::{Decoded, SpeechDecoder, is_voiced, symbol_samples};

/// Silence that ends "speaking", so the next voiced sample is a new `SpeechStarted`.
const VAD_HANGOVER_MS: u64 = 100;
/// With `endpointing=false`, pending words are still finalised (without `speech_final`) after
/// this pause, as the real service keeps finalising without the end-of-speech flag.
const PAUSE_FINAL_MS: u64 = 500;
/// Triggers are checked at least this often, so a threshold reached inside a long frame takes
/// effect at (about) the right audio time rather than at the end of the frame.
const STEP_MS: u64 = 10;

/// What the query string asked for, in the units the recogniser needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sample_rate: u32,
    pub interim_results: bool,
    pub interim_every_ms: u64,
    /// `None` = `endpointing=false`.
    pub endpointing_ms: Option<u64>,
    pub utterance_end_ms: Option<u64>,
    pub vad_events: bool,
    /// `punctuate` or `smart_format`: transcripts use the punctuated words.
    pub punctuate: bool,
    pub max_segment_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// Lower-cased, edge punctuation removed (like Deepgram's `word`).
    pub word: String,
    pub punctuated: String,
    pub start: f64,
    pub end: f64,
}

/// One `Results` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub duration: f64,
    pub is_final: bool,
    pub speech_final: bool,
    pub from_finalize: bool,
    pub transcript: String,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Results(Segment),
    SpeechStarted { timestamp: f64 },
    UtteranceEnd { last_word_end: f64 },
}

#[derive(Debug)]
pub struct Transcriber {
    settings: Settings,
    decoder: SpeechDecoder,
    symbol: u64,
    /// Samples processed: the audio clock.
    cursor: u64,
    /// Where the current (not yet final) window begins.
    window_start: u64,
    /// Characters decoded but not yet finalised, in audio order.
    pending: Vec<Decoded>,
    last_voiced_end: Option<u64>,
    speaking: bool,
    interim_dirty: bool,
    last_interim_at: u64,
    last_word_end: Option<u64>,
    utterance_end_due: bool,
}

impl Transcriber {
    pub fn new(settings: Settings) -> Self {
        let symbol = symbol_samples(settings.sample_rate) as u64;
        let decoder = SpeechDecoder::for_rate(settings.sample_rate);
        Self {
            settings,
            decoder,
            symbol,
            cursor: 0,
            window_start: 0,
            pending: Vec::new(),
            last_voiced_end: None,
            speaking: false,
            interim_dirty: false,
            last_interim_at: 0,
            last_word_end: None,
            utterance_end_due: false,
        }
    }

    /// Audio received so far, in seconds.
    pub fn audio_seconds(&self) -> f64 {
        self.secs(self.cursor)
    }

    /// Samples received so far.
    pub fn samples(&self) -> u64 {
        self.cursor
    }

    /// Feeds mono samples; returns the messages they trigger, in audio order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Output> {
        let step = self.ms(STEP_MS).max(1);
        let mut out = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = ((step - self.cursor % step) as usize).min(rest.len());
            let (piece, tail) = rest.split_at(take);
            self.feed(piece, &mut out);
            self.check(&mut out);
            rest = tail;
        }
        out
    }

    /// `Finalize`: everything pending becomes a final marked `from_finalize` (empty if nothing
    /// was pending, as the real service answers).
    pub fn finalize(&mut self) -> Output {
        Output::Results(self.finalise(self.cursor, false, true))
    }

    /// `CloseStream`: pending words become a last final; nothing if nothing is pending.
    pub fn flush(&mut self) -> Option<Output> {
        self.has_words()
            .then(|| Output::Results(self.finalise(self.cursor, false, false)))
    }

    fn feed(&mut self, piece: &[i16], out: &mut Vec<Output>) {
        for (i, sample) in piece.iter().enumerate() {
            if is_voiced(std::slice::from_ref(sample)) {
                let at = self.cursor + i as u64;
                if !self.speaking {
                    self.speaking = true;
                    if self.settings.vad_events {
                        out.push(Output::SpeechStarted {
                            timestamp: self.secs(at),
                        });
                    }
                }
                self.last_voiced_end = Some(at + 1);
            }
        }
        for d in self.decoder.push(piece) {
            if !d.ch.is_whitespace() {
                self.last_word_end = Some(d.at_sample + self.symbol);
                self.utterance_end_due = true;
            }
            self.pending.push(d);
            self.interim_dirty = true;
        }
        self.cursor += piece.len() as u64;
    }

    fn check(&mut self, out: &mut Vec<Output>) {
        let silence = self.cursor - self.last_voiced_end.unwrap_or(0);
        if self.has_words() {
            match self.settings.endpointing_ms {
                Some(ms) if silence >= self.ms(ms.max(1)) => {
                    out.push(Output::Results(self.finalise(self.cursor, true, false)));
                }
                None if silence >= self.ms(PAUSE_FINAL_MS) => {
                    out.push(Output::Results(self.finalise(self.cursor, false, false)));
                }
                _ => {}
            }
        }
        if let (Some(ms), Some(end)) = (self.settings.utterance_end_ms, self.last_word_end)
            && self.utterance_end_due
            && self.cursor.saturating_sub(end) >= self.ms(ms)
        {
            self.utterance_end_due = false;
            out.push(Output::UtteranceEnd {
                last_word_end: self.secs(end),
            });
        }
        if self.speaking && silence >= self.ms(VAD_HANGOVER_MS) {
            self.speaking = false;
        }
        let max_segment = self.ms(self.settings.max_segment_ms);
        let still_speaking = self.speaking && silence < self.ms(STEP_MS);
        if let Some(first) = self.pending.iter().find(|d| !d.ch.is_whitespace())
            && still_speaking
            && self.cursor - first.at_sample >= max_segment
        {
            let cut = self.last_word_boundary().unwrap_or(self.cursor);
            out.push(Output::Results(self.finalise(cut, false, false)));
        }
        if !self.has_words() && !self.speaking && self.cursor - self.window_start >= max_segment {
            out.push(Output::Results(self.finalise(self.cursor, false, false)));
        }
        if self.settings.interim_results
            && self.interim_dirty
            && self.has_words()
            && self.cursor - self.last_interim_at >= self.ms(self.settings.interim_every_ms)
        {
            self.interim_dirty = false;
            self.last_interim_at = self.cursor;
            out.push(Output::Results(self.segment(
                self.window_start,
                self.cursor,
                &self.pending,
                false,
                false,
                false,
            )));
        }
    }

    /// End of the whitespace symbol that follows the last complete word, if any word is complete.
    fn last_word_boundary(&self) -> Option<u64> {
        let mut seen_word = false;
        let mut boundary = None;
        for d in &self.pending {
            if d.ch.is_whitespace() {
                if seen_word {
                    boundary = Some(d.at_sample + self.symbol);
                }
            } else {
                seen_word = true;
            }
        }
        boundary
    }

    fn has_words(&self) -> bool {
        self.pending.iter().any(|d| !d.ch.is_whitespace())
    }

    /// Closes the window at `end`: characters starting before it become a final.
    fn finalise(&mut self, end: u64, speech_final: bool, from_finalize: bool) -> Segment {
        let n = self.pending.partition_point(|d| d.at_sample < end);
        let chars: Vec<Decoded> = self.pending.drain(..n).collect();
        let segment = self.segment(
            self.window_start,
            end,
            &chars,
            true,
            speech_final,
            from_finalize,
        );
        self.window_start = end;
        self.last_interim_at = end;
        self.interim_dirty = self.has_words();
        segment
    }

    fn segment(
        &self,
        start: u64,
        end: u64,
        chars: &[Decoded],
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> Segment {
        let words = self.words(chars);
        let transcript = words
            .iter()
            .map(|w| {
                if self.settings.punctuate {
                    w.punctuated.as_str()
                } else {
                    w.word.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Segment {
            start: self.secs(start),
            duration: self.secs(end.max(start) - start),
            is_final,
            speech_final,
            from_finalize,
            transcript,
            words,
        }
    }

    fn words(&self, chars: &[Decoded]) -> Vec<Word> {
        let mut words = Vec::new();
        let mut current: Vec<Decoded> = Vec::new();
        for d in chars.iter().chain(std::iter::once(&Decoded {
            ch: ' ',
            at_sample: 0,
        })) {
            if !d.ch.is_whitespace() {
                current.push(*d);
                continue;
            }
            if let (Some(first), Some(last)) = (current.first(), current.last()) {
                let punctuated: String = current.iter().map(|c| c.ch).collect();
                words.push(Word {
                    word: plain(&punctuated),
                    start: self.secs(first.at_sample),
                    end: self.secs(last.at_sample + self.symbol),
                    punctuated,
                });
            }
            current.clear();
        }
        words
    }

    fn ms(&self, ms: u64) -> u64 {
        ms * self.settings.sample_rate as u64 / 1000
    }

    fn secs(&self, samples: u64) -> f64 {
        samples as f64 / self.settings.sample_rate as f64
    }
}

/// Deepgram's `word`: lower case without surrounding punctuation. Devanagari vowel signs are
/// not alphanumeric, so only punctuation is stripped, never "non-alphanumeric" characters.
fn plain(word: &str) -> String {
    let is_punct =
        |c: char| c.is_ascii_punctuation() || matches!(c, '।' | '॥' | '…' | '“' | '”' | '‘' | '’');
    let stripped = word.trim_matches(is_punct);
    if stripped.is_empty() { word } else { stripped }.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulators::speech::{silence, synthesize};

    fn settings() -> Settings {
        Settings {
            sample_rate: 8000,
            interim_results: true,
            interim_every_ms: 300,
            endpointing_ms: Some(300),
            utterance_end_ms: Some(1000),
            vad_events: true,
            punctuate: true,
            max_segment_ms: 3000,
        }
    }

    fn finals(out: &[Output]) -> Vec<&Segment> {
        out.iter()
            .filter_map(|o| match o {
                Output::Results(s) if s.is_final && !s.transcript.is_empty() => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pause_after_words_gives_one_speech_final_with_audio_times() {
        let mut t = Transcriber::new(settings());
        let mut audio = silence(500, 8000);
        audio.extend(synthesize("Hello there.", 8000));
        audio.extend(silence(1500, 8000));
        let out = t.push(&audio);
        let f = finals(&out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].transcript, "Hello there.");
        assert!(f[0].speech_final);
        assert_eq!(f[0].words[0].word, "hello");
        assert!((f[0].words[0].start - 0.5).abs() < 1e-9);
        assert!((f[0].words[1].end - (0.5 + 12.0 * 0.06)).abs() < 1e-9);
        assert!(out.contains(&Output::SpeechStarted { timestamp: 0.5 }));
        assert!(out.iter().any(|o| matches!(o, Output::UtteranceEnd { .. })));
    }

    #[test]
    fn long_speech_is_finalised_in_contiguous_pieces() {
        let mut t = Transcriber::new(settings());
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        let mut audio = synthesize(text, 8000);
        audio.extend(silence(600, 8000));
        let out = t.push(&audio);
        let f = finals(&out);
        assert!(f.len() >= 2, "{f:?}");
        assert!(f.iter().rev().skip(1).all(|s| !s.speech_final));
        assert!(f.last().unwrap().speech_final);
        let joined: Vec<&str> = f.iter().map(|s| s.transcript.as_str()).collect();
        assert_eq!(joined.join(" "), text);
        for pair in f.windows(2) {
            assert!((pair[0].start + pair[0].duration - pair[1].start).abs() < 1e-9);
        }
    }

    #[test]
    fn finalize_with_nothing_pending_is_an_empty_final() {
        let mut t = Transcriber::new(settings());
        t.push(&silence(100, 8000));
        let Output::Results(s) = t.finalize() else {
            panic!("not a result")
        };
        assert!(s.is_final && s.from_finalize && s.transcript.is_empty());
    }

    #[test]
    fn hindi_words_keep_their_vowel_signs() {
        assert_eq!(plain("नमस्ते,"), "नमस्ते");
        assert_eq!(plain("है।"), "है");
        assert_eq!(plain("Yes!"), "yes");
    }
}
