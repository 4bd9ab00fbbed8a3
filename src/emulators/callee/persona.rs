//! Who answers the phone: the [`Persona`]s (parsed from a CSV `persona` column), the
//! [`Language`] the person speaks, everything the person can say (the `Line`s, per language)
//! and the few words of the agent the person recognises (a goodbye, a question).
//!
//! It owns no timing: when a line is said is `person`'s business.

use std::fmt;
use std::str::FromStr;

/// Who answers the phone. Parsed from a CSV `persona` column (`interested`, `not_interested`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Persona {
    /// Answers the greeting with interest, then "yes" to questions, for a few turns.
    #[default]
    Interested,
    NotInterested,
    /// Asks to be called tomorrow at 5 pm.
    Callback,
    WrongNumber,
    /// Asks never to be called again.
    DoNotCall,
    /// Never says anything: the bot's silence handling must end the call.
    Silent,
    /// Starts "Hello, who is this?" and hangs up mid-sentence after about a second.
    HangsUp,
    /// Barges in about a second into the agent's greeting, then behaves like `Interested`.
    Interrupts,
    /// Says "haan" / "hmm" / "ok" while the agent talks, then answers like `Interested`.
    Backchannel,
    /// An answering machine: plays its greeting and a beep, then stays silent.
    Voicemail,
    /// Never answers: an Exotel outcome, never a `/media` stream.
    NoAnswer,
    /// Line busy: an Exotel outcome, never a `/media` stream.
    Busy,
}

impl Persona {
    pub const ALL: [Persona; 12] = [
        Persona::Interested,
        Persona::NotInterested,
        Persona::Callback,
        Persona::WrongNumber,
        Persona::DoNotCall,
        Persona::Silent,
        Persona::HangsUp,
        Persona::Interrupts,
        Persona::Backchannel,
        Persona::Voicemail,
        Persona::NoAnswer,
        Persona::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Interested => "interested",
            Persona::NotInterested => "not_interested",
            Persona::Callback => "callback",
            Persona::WrongNumber => "wrong_number",
            Persona::DoNotCall => "do_not_call",
            Persona::Silent => "silent",
            Persona::HangsUp => "hangs_up",
            Persona::Interrupts => "interrupts",
            Persona::Backchannel => "backchannel",
            Persona::Voicemail => "voicemail",
            Persona::NoAnswer => "no_answer",
            Persona::Busy => "busy",
        }
    }

    /// What Exotel reports for a call to this persona.
    pub fn outcome(self) -> CalleeOutcome {
        match self {
            Persona::NoAnswer => CalleeOutcome::NoAnswer,
            Persona::Busy => CalleeOutcome::Busy,
            _ => CalleeOutcome::Answered,
        }
    }

    /// Exotel's `AnsweredBy` for an answered call.
    pub fn answered_by(self) -> &'static str {
        match self {
            Persona::Voicemail => "Machine",
            _ => "Human",
        }
    }

    /// The first thing this persona says, if anything.
    pub fn first_line(self, language: Language) -> Option<&'static str> {
        let line = match self {
            Persona::Interested | Persona::Backchannel => Line::Interested,
            Persona::NotInterested => Line::NotInterested,
            Persona::Callback => Line::Callback,
            Persona::WrongNumber => Line::WrongNumber,
            Persona::DoNotCall => Line::DoNotCall,
            Persona::HangsUp => Line::WhoIsThis,
            Persona::Interrupts => Line::Wait,
            Persona::Voicemail => Line::Voicemail,
            Persona::Silent | Persona::NoAnswer | Persona::Busy => return None,
        };
        Some(line.text(language))
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown persona {0:?}")]
pub struct UnknownPersona(pub String);

impl FromStr for Persona {
    type Err = UnknownPersona;

    /// Case-insensitive; `-` and spaces count as `_` (`Not Interested`, `do-not-call`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        Persona::ALL
            .into_iter()
            .find(|p| p.as_str() == norm)
            .ok_or_else(|| UnknownPersona(s.to_string()))
    }
}

/// What the simulated callee does when Exotel calls: every [`Persona`] answers but `no_answer`
/// and `busy` ([`Persona::outcome`]); a test can also have a number fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalleeOutcome {
    Answered,
    NoAnswer,
    Busy,
    Failed,
}

/// The language the person speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    #[default]
    En,
    /// Hindi, in Devanagari.
    Hi,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?} (expected en or hi)")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" | "en-in" | "en_in" | "english" => Ok(Language::En),
            "hi" | "hi-in" | "hi_in" | "hindi" => Ok(Language::Hi),
            _ => Err(UnknownLanguage(s.to_string())),
        }
    }
}

/// Everything the person can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    Interested,
    Yes,
    Okay,
    NotInterested,
    StillNotInterested,
    Callback,
    CallbackConfirm,
    WrongNumber,
    DoNotCall,
    WhoIsThis,
    Wait,
    Voicemail,
}

impl Line {
    pub(super) fn text(self, language: Language) -> &'static str {
        use Language::{En, Hi};
        match (self, language) {
            (Line::Interested, En) => "Yes, I am interested. Tell me more.",
            (Line::Interested, Hi) => "हाँ, मुझे दिलचस्पी है। और बताइए।",
            (Line::Yes, En) => "Yes, that works for me.",
            (Line::Yes, Hi) => "हाँ, यह मेरे लिए ठीक है।",
            (Line::Okay, En) => "Okay.",
            (Line::Okay, Hi) => "ठीक है।",
            (Line::NotInterested, En) => "No thanks, I am not interested.",
            (Line::NotInterested, Hi) => "नहीं, धन्यवाद। मुझे दिलचस्पी नहीं है।",
            (Line::StillNotInterested, En) => "I said no. I am not interested.",
            (Line::StillNotInterested, Hi) => "मैंने कहा ना, मुझे दिलचस्पी नहीं है।",
            (Line::Callback, En) => "I am busy right now. Please call me tomorrow at 5 pm.",
            (Line::Callback, Hi) => "मैं अभी व्यस्त हूँ। कृपया कल शाम 5 बजे कॉल करें।",
            (Line::CallbackConfirm, En) => "Yes, tomorrow at 5 pm.",
            (Line::CallbackConfirm, Hi) => "हाँ, कल शाम 5 बजे।",
            (Line::WrongNumber, En) => "Sorry, you have the wrong number.",
            (Line::WrongNumber, Hi) => "माफ़ कीजिए, आपने गलत नंबर लगाया है।",
            (Line::DoNotCall, En) => "Please don't call me again.",
            (Line::DoNotCall, Hi) => "कृपया मुझे दोबारा कॉल मत कीजिए।",
            (Line::WhoIsThis, En) => "Hello, who is this?",
            (Line::WhoIsThis, Hi) => "हैलो, कौन बोल रहा है?",
            (Line::Wait, En) => "Wait, wait, what is this about?",
            (Line::Wait, Hi) => "रुकिए, रुकिए, यह किस बारे में है?",
            (Line::Voicemail, En) => {
                "The person you are calling is not available. Please leave a message after the tone."
            }
            (Line::Voicemail, Hi) => {
                "आप जिस व्यक्ति को कॉल कर रहे हैं वह उपलब्ध नहीं है। कृपया टोन के बाद संदेश छोड़ें।"
            }
        }
    }
}

/// Short acknowledgements (each well under 0.5 s).
pub(super) fn backchannels(language: Language) -> &'static [&'static str] {
    match language {
        Language::En => &["haan", "hmm", "ok"],
        Language::Hi => &["हाँ", "हम्म", "अच्छा"],
    }
}

pub(super) fn is_goodbye(heard: &str) -> bool {
    let lower = heard.to_lowercase();
    [
        "bye",
        "have a nice day",
        "have a great day",
        "thank you for your time",
        "अलविदा",
        "शुभ दिन",
    ]
    .iter()
    .any(|k| lower.contains(k))
}

pub(super) fn is_question(heard: &str) -> bool {
    heard.contains('?') || heard.contains("क्या")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_parse_from_csv_names() {
        for p in Persona::ALL {
            assert_eq!(p.as_str().parse::<Persona>(), Ok(p));
        }
        assert_eq!("Not Interested".parse(), Ok(Persona::NotInterested));
        assert_eq!("do-not-call".parse(), Ok(Persona::DoNotCall));
        assert!("grumpy".parse::<Persona>().is_err());
        assert_eq!("hi".parse(), Ok(Language::Hi));
        assert_eq!(Persona::Busy.outcome(), CalleeOutcome::Busy);
        assert_eq!(Persona::NoAnswer.outcome(), CalleeOutcome::NoAnswer);
        assert_eq!(Persona::Voicemail.answered_by(), "Machine");
    }
}
