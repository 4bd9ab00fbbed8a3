//! The person: when to talk and what to say. [`Person`] turns what the [`Ear`] has heard, and
//! how long the agent has been quiet, into an [`Act`], following its [`Persona`].

use std::time::Duration;

use tokio::time::Instant;

use super::config::CalleeConfig;
use super::ear::Ear;
use super::persona::{Language, Line, Persona, backchannels, is_goodbye, is_question};
use super::report::LineKind;
use super::rng::Rng;

/// Voicemail greetings and `hangs_up` start this long after the stream starts.
const OPENING_AFTER: Duration = Duration::from_millis(300);
/// `hangs_up` hangs up this long after starting to speak.
const HANG_UP_AFTER: Duration = Duration::from_secs(1);
/// `interrupts` barges in this far into the agent's first utterance.
const INTERRUPT_AFTER: Duration = Duration::from_secs(1);
/// `backchannel` leaves at least this much between two acknowledgements.
const BACKCHANNEL_GAP: Duration = Duration::from_millis(2_500);

pub(super) enum Act {
    Nothing,
    Say(&'static str, LineKind),
    HangUp,
    /// Hang up because the bot never did.
    GiveUp,
}

#[derive(Debug)]
pub(super) struct Person {
    persona: Persona,
    language: Language,
    rng: Rng,
    reply_delay: Duration,
    patience: Duration,
    max_turns: u32,
    pub(super) born: Instant,
    /// Silence to wait before the next answer.
    delay: Duration,
    turns: u32,
    opened: bool,
    interrupted: bool,
    backchannel_after: Duration,
    last_backchannel: Option<Instant>,
    nothing_to_say_since: Option<Instant>,
    hang_up_at: Option<Instant>,
}

impl Person {
    pub(super) fn new(config: &CalleeConfig, born: Instant) -> Self {
        let mut rng = Rng(config.seed ^ 0x5EED_CA11_EE00_0000);
        let delay = config.reply_delay + rng.millis(150);
        let backchannel_after = Duration::from_millis(1_200) + rng.millis(400);
        Self {
            persona: config.persona,
            language: config.language,
            rng,
            reply_delay: config.reply_delay,
            patience: config.patience,
            max_turns: config.max_turns,
            born,
            delay,
            turns: 0,
            opened: false,
            interrupted: false,
            backchannel_after,
            last_backchannel: None,
            nothing_to_say_since: None,
            hang_up_at: None,
        }
    }

    /// Silence before speech starts within its first frame, so lines do not all start on a
    /// frame boundary.
    pub(super) fn lead_in(&mut self) -> Duration {
        self.rng.millis(40)
    }

    pub(super) fn decide(&mut self, now: Instant, ear: &mut Ear, speaking: bool) -> Act {
        if self.hang_up_at.is_some_and(|t| now >= t) {
            return Act::HangUp;
        }
        match self.persona {
            Persona::Silent | Persona::NoAnswer | Persona::Busy => return Act::Nothing,
            Persona::Voicemail | Persona::HangsUp => return self.opening(now),
            _ => {}
        }
        if speaking {
            return Act::Nothing;
        }
        if ear.agent_playing(now) {
            return self.while_agent_talks(now, ear);
        }
        if !ear.fresh.is_empty() && ear.silent_for(now) >= self.delay {
            let heard = ear.take_fresh();
            self.delay = self.reply_delay + self.rng.millis(150);
            if let Some(line) = self.answer(&heard) {
                self.turns += 1;
                self.nothing_to_say_since = None;
                return Act::Say(line.text(self.language), LineKind::Turn);
            }
            self.nothing_to_say_since.get_or_insert(now);
        }
        if self
            .nothing_to_say_since
            .is_some_and(|t| now >= t + self.patience)
        {
            return Act::GiveUp;
        }
        Act::Nothing
    }

    /// Voicemail and `hangs_up` speak first, whatever the bot does.
    fn opening(&mut self, now: Instant) -> Act {
        if self.opened || now < self.born + OPENING_AFTER {
            return Act::Nothing;
        }
        self.opened = true;
        let Some(line) = self.persona.first_line(self.language) else {
            return Act::Nothing;
        };
        if self.persona == Persona::HangsUp {
            // Speech starts in the next frame, which covers audio from `now` on.
            self.hang_up_at = Some(now + HANG_UP_AFTER);
            return Act::Say(line, LineKind::Turn);
        }
        Act::Say(line, LineKind::Voicemail)
    }

    fn while_agent_talks(&mut self, now: Instant, ear: &mut Ear) -> Act {
        let Some(since) = ear.utterance_start else {
            return Act::Nothing;
        };
        let talking = now.saturating_duration_since(since);
        match self.persona {
            Persona::Interrupts if !self.interrupted && talking >= INTERRUPT_AFTER => {
                self.interrupted = true;
                ear.take_fresh();
                Act::Say(Line::Wait.text(self.language), LineKind::Interruption)
            }
            Persona::Backchannel
                if talking >= self.backchannel_after
                    && self
                        .last_backchannel
                        .is_none_or(|t| now >= t + BACKCHANNEL_GAP) =>
            {
                self.last_backchannel = Some(now);
                let words = backchannels(self.language);
                let word = words[self.rng.below(words.len() as u64) as usize];
                Act::Say(word, LineKind::Backchannel)
            }
            _ => Act::Nothing,
        }
    }

    /// The answer to what the agent just said, if the person has one.
    fn answer(&self, heard: &str) -> Option<Line> {
        if is_goodbye(heard) || self.turns >= self.max_turns {
            return None;
        }
        let n = self.turns as usize;
        match self.persona {
            Persona::Interested | Persona::Interrupts | Persona::Backchannel => Some(if n == 0 {
                Line::Interested
            } else if is_question(heard) {
                Line::Yes
            } else {
                Line::Okay
            }),
            Persona::NotInterested => [Line::NotInterested, Line::StillNotInterested]
                .get(n)
                .copied(),
            Persona::Callback => [Line::Callback, Line::CallbackConfirm].get(n).copied(),
            Persona::WrongNumber => (n == 0).then_some(Line::WrongNumber),
            Persona::DoNotCall => (n == 0).then_some(Line::DoNotCall),
            _ => None,
        }
    }
}
