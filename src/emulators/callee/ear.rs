//! The ear: the bot's audio, played out at real-time pace and heard as it plays. [`Ear`] is
//! Exotel's playback buffer and the person listening to it: it decodes what has played, splits
//! it into utterances, and knows when each queued `mark` falls due.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::audio::Clock;
use crate::emulators::speech::{SYMBOL_MS, SpeechDecoder};

/// Silence that separates two heard agent utterances.
const UTTERANCE_GAP: Duration = Duration::from_millis(300);
/// A playback queue dry for longer than this mid-phrase is an audible gap.
const UNDERRUN: Duration = Duration::from_millis(20);

const SYMBOL: Duration = Duration::from_millis(SYMBOL_MS as u64);

#[derive(Debug)]
enum Queued {
    Audio { pcm: Vec<u8>, voiced: bool },
    Mark(String),
}

/// Exotel's playback buffer for the bot's audio, and the person listening to it.
///
/// Time is modelled exactly rather than ticked: `cursor` is the instant at which the first
/// unplayed byte starts playing, so a mark's due time is known in advance and `advance(now)`
/// plays (decodes) exactly what real-time playback would have played by `now`.
#[derive(Debug)]
pub(super) struct Ear {
    clock: Clock,
    queue: VecDeque<Queued>,
    cursor: Instant,
    /// Bytes of the queue's first audio already played.
    head_played: usize,
    pub(super) audio_queued: usize,
    voiced_queued: usize,
    /// When the queue last ran out of audio.
    pub(super) drained_at: Option<Instant>,
    /// No mark, clear or caller turn since the last audio frame: the next frame continues it.
    mid_phrase: bool,
    decoder: SpeechDecoder,
    /// Play time of the last character heard.
    last_char: Option<Instant>,
    /// Play time of the first character of the utterance being heard.
    pub(super) utterance_start: Option<Instant>,
    pub(super) heard: Vec<String>,
    /// Heard since the person last reacted.
    pub(super) fresh: String,
    /// Marks whose audio has played, to echo.
    pub(super) due_marks: Vec<String>,
    /// Audio bytes received since the last mark or clear.
    pub(super) unmarked: usize,
}

impl Ear {
    pub(super) fn new(clock: Clock, now: Instant) -> Self {
        Self {
            clock,
            queue: VecDeque::new(),
            cursor: now,
            head_played: 0,
            audio_queued: 0,
            voiced_queued: 0,
            drained_at: None,
            mid_phrase: false,
            decoder: SpeechDecoder::for_rate(clock.sample_rate()),
            last_char: None,
            utterance_start: None,
            heard: Vec::new(),
            fresh: String::new(),
            due_marks: Vec::new(),
            unmarked: 0,
        }
    }

    /// Plays everything due by `now`; marks reached go to `due_marks`.
    pub(super) fn advance(&mut self, now: Instant) {
        loop {
            let (take, done, chars, base_sample, base_time) = match self.queue.front() {
                None => return,
                Some(Queued::Mark(_)) => {
                    if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                        self.due_marks.push(name);
                    }
                    continue;
                }
                Some(Queued::Audio { pcm, .. }) => {
                    if now <= self.cursor {
                        return;
                    }
                    let remaining = pcm.len() - self.head_played;
                    // Whole samples only, so that a `clear` never leaves half a sample behind
                    // (an odd-length payload, a violation, is played to its end).
                    let playable = self.clock.bytes(now - self.cursor);
                    let take = if playable >= remaining {
                        remaining
                    } else {
                        playable & !1
                    };
                    if take == 0 && remaining > 0 {
                        return;
                    }
                    let base_sample = self.decoder.samples_seen();
                    let chunk = &pcm[self.head_played..self.head_played + take];
                    let chars = self.decoder.push_bytes(chunk);
                    (take, take == remaining, chars, base_sample, self.cursor)
                }
            };
            self.cursor += self.clock.duration(take);
            self.head_played += take;
            for c in chars {
                let offset = c.at_sample.saturating_sub(base_sample) as usize * 2;
                self.hear(c.ch, base_time + self.clock.duration(offset));
            }
            if !done {
                return;
            }
            if let Some(Queued::Audio { voiced, .. }) = self.queue.pop_front() {
                self.head_played = 0;
                self.audio_queued -= 1;
                self.voiced_queued -= voiced as usize;
                if self.audio_queued == 0 {
                    self.drained_at = Some(self.cursor);
                }
            }
        }
    }

    fn hear(&mut self, ch: char, at: Instant) {
        let new_utterance = self
            .last_char
            .is_none_or(|prev| at.saturating_duration_since(prev + SYMBOL) >= UTTERANCE_GAP);
        if new_utterance {
            self.heard.push(String::new());
            self.utterance_start = Some(at);
            if !self.fresh.is_empty() {
                self.fresh.push(' ');
            }
        }
        if let Some(u) = self.heard.last_mut() {
            u.push(ch);
        }
        self.fresh.push(ch);
        self.last_char = Some(at);
    }

    /// Queues a frame; returns the gap it ends when it arrived late mid-phrase.
    pub(super) fn enqueue(&mut self, now: Instant, pcm: Vec<u8>, voiced: bool) -> Option<Duration> {
        self.advance(now);
        if pcm.is_empty() {
            return None;
        }
        let mut late = None;
        if self.audio_queued == 0 {
            if self.mid_phrase
                && let Some(gap) = self.drained_at.map(|d| now.saturating_duration_since(d))
                && gap > UNDERRUN
            {
                late = Some(gap);
            }
            self.cursor = now;
            self.head_played = 0;
        }
        self.unmarked += pcm.len();
        self.queue.push_back(Queued::Audio { pcm, voiced });
        self.audio_queued += 1;
        self.voiced_queued += voiced as usize;
        self.mid_phrase = true;
        late
    }

    pub(super) fn mark(&mut self, now: Instant, name: String) {
        self.unmarked = 0;
        self.queue.push_back(Queued::Mark(name));
        self.mid_phrase = false;
        self.advance(now);
    }

    /// Drops unplayed audio and pending marks; returns (nothing was playing, marks dropped).
    pub(super) fn clear(&mut self, now: Instant) -> (bool, u64) {
        self.advance(now);
        let useless = self.audio_queued == 0;
        let cancelled = self
            .queue
            .iter()
            .filter(|q| matches!(q, Queued::Mark(_)))
            .count() as u64;
        self.queue.clear();
        self.unmarked = 0;
        self.head_played = 0;
        self.audio_queued = 0;
        self.voiced_queued = 0;
        if !useless {
            self.drained_at = Some(now);
        }
        self.mid_phrase = false;
        (useless, cancelled)
    }

    /// The person took a turn: whatever the bot sends next starts a new phrase.
    pub(super) fn end_phrase(&mut self) {
        self.mid_phrase = false;
    }

    /// When the next mark falls due, if one is waiting.
    pub(super) fn next_mark_due(&self) -> Option<Instant> {
        let mut bytes = 0;
        for (i, q) in self.queue.iter().enumerate() {
            match q {
                Queued::Audio { pcm, .. } if i == 0 => bytes += pcm.len() - self.head_played,
                Queued::Audio { pcm, .. } => bytes += pcm.len(),
                Queued::Mark(_) => return Some(self.cursor + self.clock.duration(bytes)),
            }
        }
        None
    }

    pub(super) fn unplayed(&self) -> Duration {
        let bytes: usize = self
            .queue
            .iter()
            .map(|q| match q {
                Queued::Audio { pcm, .. } => pcm.len(),
                Queued::Mark(_) => 0,
            })
            .sum();
        self.clock.duration(bytes.saturating_sub(self.head_played))
    }

    pub(super) fn pending_marks(&self) -> u64 {
        self.queue
            .iter()
            .filter(|q| matches!(q, Queued::Mark(_)))
            .count() as u64
    }

    /// Agent speech is playing now or queued to play.
    pub(super) fn agent_playing(&self, now: Instant) -> bool {
        self.voiced_queued > 0 || self.last_char.is_some_and(|c| c + SYMBOL > now)
    }

    /// How long the agent has been quiet (zero while speech is queued).
    pub(super) fn silent_for(&self, now: Instant) -> Duration {
        if self.voiced_queued > 0 {
            return Duration::ZERO;
        }
        self.last_char
            .map_or(Duration::MAX, |c| now.saturating_duration_since(c + SYMBOL))
    }

    pub(super) fn take_fresh(&mut self) -> String {
        std::mem::take(&mut self.fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulators::speech;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn speech_bytes(text: &str) -> Vec<u8> {
        speech::to_bytes(&speech::synthesize(text, 8000))
    }
    #[test]
    fn a_mark_falls_due_when_the_audio_before_it_has_played() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        ear.enqueue(t, vec![0; 3200], false); // 200 ms
        ear.mark(t, "m1".into());
        assert!(ear.due_marks.is_empty());
        assert_eq!(ear.next_mark_due(), Some(t + MS(200)));
        ear.advance(t + MS(199));
        assert!(ear.due_marks.is_empty());
        ear.advance(t + MS(200));
        assert_eq!(ear.due_marks, ["m1"]);
        // Nothing queued: a mark is due at once.
        ear.due_marks.clear();
        ear.mark(t + MS(300), "m2".into());
        assert_eq!(ear.due_marks, ["m2"]);
    }

    #[test]
    fn clear_drops_the_unplayed_characters_and_pending_marks() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        ear.enqueue(t, speech_bytes("abcdefghij"), true);
        ear.mark(t, "end".into());
        // 3.5 symbols played.
        let (useless, cancelled) = ear.clear(t + MS(210));
        assert!(!useless);
        assert_eq!(cancelled, 1);
        assert_eq!(ear.heard, ["abcd"]);
        assert!(ear.due_marks.is_empty());
        assert!(!ear.agent_playing(t + MS(300)));
        let (useless, cancelled) = ear.clear(t + MS(400));
        assert!(useless);
        assert_eq!(cancelled, 0);
    }

    #[test]
    fn heard_speech_is_split_at_300_ms_of_silence() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        let mut audio = speech_bytes("Hi.");
        audio.extend(vec![0; 16 * 200]);
        audio.extend(speech_bytes("Ok."));
        audio.extend(vec![0; 16 * 350]);
        audio.extend(speech_bytes("Bye."));
        ear.enqueue(t, audio, true);
        ear.advance(t + MS(5_000));
        assert_eq!(ear.heard, ["Hi.Ok.", "Bye."]);
        assert_eq!(ear.take_fresh(), "Hi.Ok. Bye.");
    }

    #[test]
    fn a_frame_after_the_queue_ran_dry_mid_phrase_is_late() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        assert_eq!(ear.enqueue(t, vec![1; 1600], false), None);
        // On time: the previous frame is still playing.
        assert_eq!(ear.enqueue(t + MS(90), vec![1; 1600], false), None);
        // 200 ms of audio ended at t+200; 50 ms of silence.
        assert_eq!(ear.enqueue(t + MS(250), vec![1; 1600], false), Some(MS(50)));
        // After a mark, a new phrase may start whenever it likes.
        ear.mark(t + MS(250), "p1".into());
        assert_eq!(ear.enqueue(t + MS(900), vec![1; 1600], false), None);
    }
}
