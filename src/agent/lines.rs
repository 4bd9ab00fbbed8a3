//! The language a call is held in, and the agent's fixed lines in it (the silence prompt,
//! goodbyes, the filler while the model is slow), one table per language, so a new language is
//! one more table and no comparison of language tags is spread through the pipeline.

/// The language family of a campaign's BCP-47 tag (`en-IN`, `hi-IN`, `hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Hindi,
}

impl Language {
    /// Hindi for `hi` and `hi-*`; English for everything else (the default voice and lines).
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("hi") {
            Language::Hindi
        } else {
            Language::English
        }
    }

    pub fn lines(self) -> &'static Lines {
        match self {
            Language::English => &ENGLISH,
            Language::Hindi => &HINDI,
        }
    }
}

/// Lines the agent says without asking the model.
#[derive(Debug)]
pub struct Lines {
    /// After the first stretch of silence.
    pub still_there: &'static str,
    /// After the second: the call ends.
    pub silence_goodbye: &'static str,
    /// When the call must end (time limit, shutdown, turn limit).
    pub goodbye: &'static str,
    /// The model failed twice, or for good.
    pub trouble_goodbye: &'static str,
    /// The model is slow to answer: said once before trying again.
    pub one_moment: &'static str,
}

pub const ENGLISH: Lines = Lines {
    still_there: "Hello, are you still there?",
    silence_goodbye: "No problem, we will talk another time. Goodbye.",
    goodbye: "Thank you for your time. Goodbye.",
    trouble_goodbye: "Sorry, I am having trouble right now. We will call you back later. Goodbye.",
    one_moment: "Sorry, one moment please.",
};

pub const HINDI: Lines = Lines {
    still_there: "क्या आप मुझे सुन पा रहे हैं?",
    silence_goodbye: "कोई बात नहीं, हम बाद में बात करेंगे। धन्यवाद।",
    goodbye: "धन्यवाद, हम आपसे फिर संपर्क करेंगे।",
    trouble_goodbye: "माफ़ कीजिए, अभी तकनीकी दिक्कत है। हम आपको बाद में कॉल करेंगे।",
    one_moment: "एक पल दीजिए।",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_map_to_their_language_family() {
        for tag in ["hi", "hi-IN", "HI_in"] {
            assert_eq!(Language::from_tag(tag), Language::Hindi, "{tag}");
        }
        for tag in ["en-IN", "en", "", "history", "multi"] {
            assert_eq!(Language::from_tag(tag), Language::English, "{tag}");
        }
        assert!(Language::Hindi.lines().goodbye.contains("धन्यवाद"));
    }
}
