//! Turn-taking judgements: is what the caller said while the agent talks a real interruption,
//! or a backchannel ("haan", "hmm", "ok") that must not stop the agent?

/// Acknowledgements that do not take the turn, per language family.
pub fn backchannels(language: &str) -> &'static [&'static str] {
    if language.starts_with("hi") || language == "multi" {
        &[
            "haan",
            "haa",
            "han",
            "ha",
            "hmm",
            "hm",
            "mm",
            "ok",
            "okay",
            "ji",
            "accha",
            "acha",
            "achha",
            "theek",
            "thik",
            "right",
            "yes",
            "yeah",
            "हाँ",
            "हां",
            "जी",
            "अच्छा",
            "ठीक",
            "हम्म",
        ]
    } else {
        &[
            "hmm", "hm", "mm", "mhm", "uh", "huh", "ok", "okay", "right", "yes", "yeah", "yep",
            "sure", "haan", "ji", "accha",
        ]
    }
}

/// Lower-case words without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?' | '।' | ';' | ':'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// True when every word is an acknowledgement and there are at most three of them.
pub fn is_backchannel(text: &str, language: &str) -> bool {
    let ws = words(text);
    let list = backchannels(language);
    !ws.is_empty() && ws.len() <= 3 && ws.iter().all(|w| list.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_not_interruptions() {
        for t in ["haan", "Hmm.", "ok ok", "haan ji", "अच्छा", "Right,"] {
            assert!(is_backchannel(t, "hi-IN"), "{t}");
        }
        assert!(is_backchannel("uh huh", "en-IN"));
        for t in [
            "wait, what is this about",
            "no",
            "haan but I am busy",
            "",
            "stop",
        ] {
            assert!(!is_backchannel(t, "hi-IN"), "{t}");
        }
    }
}
