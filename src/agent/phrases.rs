//! Cuts the model's token stream into speakable phrases for streaming TTS.
//!
//! Tokens arrive one by one; a phrase is handed to TTS as soon as it is complete, so the caller
//! hears the first sentence while the model is still writing the second. A phrase ends at a
//! sentence end (`.`, `!`, `?`, the Hindi danda `।` and `॥`), or at a comma, semicolon or colon
//! once the phrase is long enough to be worth speaking on its own. A full stop inside a number
//! (`3.5`), an abbreviation (`Mr.`, `Dr.`, `Rs.`, `e.g.`) or a thousands separator (`1,50,000`)
//! is not a boundary: the splitter waits for the character after a punctuation mark before
//! deciding.
//!
//! Every phrase it emits is trimmed and ends with exactly one space, so phrases can be sent to
//! TTS as they are and concatenated without gluing words together ("Solar." + "We" must never
//! become "Solar.We", see PITFALLS). It owns no I/O and allocates only the phrases it returns.

/// Words that end with a full stop without ending the sentence (compared lower-case).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "rs", "pvt", "smt", "shri", "approx",
    "dept", "govt", "mt", "ft", "lt", "col", "capt", "gen", "sgt", "rev",
];

/// A phrase is cut at a clause mark (`,` `;` `:`) only once it has this many characters.
pub const DEFAULT_MIN_CLAUSE_CHARS: usize = 40;
/// Without any boundary, a phrase is cut at the last space once it has this many characters, so
/// one run-on sentence cannot hold back speech for long.
pub const DEFAULT_MAX_CHARS: usize = 250;

/// Turns a stream of tokens into phrases; one per reply.
#[derive(Debug, Clone)]
pub struct PhraseSplitter {
    pending: String,
    min_clause_chars: usize,
    max_chars: usize,
}

impl Default for PhraseSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl PhraseSplitter {
    pub fn new() -> Self {
        Self {
            pending: String::new(),
            min_clause_chars: DEFAULT_MIN_CLAUSE_CHARS,
            max_chars: DEFAULT_MAX_CHARS,
        }
    }

    /// Sets how long a phrase must be before a comma, semicolon or colon ends it.
    pub fn with_min_clause_chars(mut self, chars: usize) -> Self {
        self.min_clause_chars = chars;
        self
    }

    /// Sets the length at which a phrase without punctuation is cut at its last space.
    pub fn with_max_chars(mut self, chars: usize) -> Self {
        self.max_chars = chars.max(1);
        self
    }

    /// Adds one token and returns the phrases it completed (usually none or one).
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.pending.push_str(token);
        let mut phrases = Vec::new();
        while let Some(end) = self.next_boundary() {
            let rest = self.pending.split_off(end);
            let phrase = std::mem::replace(&mut self.pending, rest);
            if let Some(phrase) = speakable(&phrase) {
                phrases.push(phrase);
            }
        }
        phrases
    }

    /// Whether text is waiting for its phrase to end.
    pub fn has_pending(&self) -> bool {
        !self.pending.trim().is_empty()
    }

    /// Returns whatever is left (the end of the reply), if anything speakable.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        speakable(&rest)
    }

    /// Forgets the pending text (barge-in: the rest of the reply will not be spoken).
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Byte offset just after the first complete phrase in `pending`, if there is one.
    fn next_boundary(&self) -> Option<usize> {
        let text = &self.pending;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i].1;
            if is_terminal(c) {
                // A run such as `?!`, `...` or `."` is one mark; decide on the character after it.
                let mut j = i + 1;
                while j < chars.len() && (is_terminal(chars[j].1) || is_closing(chars[j].1)) {
                    j += 1;
                }
                let &(end, next) = chars.get(j)?;
                let run = &text[chars[i].0..end];
                let has_danda = run.contains(['।', '॥']);
                if has_danda
                    || (next.is_whitespace()
                        && !(run == "." && ends_with_abbreviation(&text[..chars[i].0])))
                {
                    return Some(end);
                }
                i = j;
                continue;
            }
            if is_clause(c) {
                let &(end, next) = chars.get(i + 1)?;
                let len = text[..end].trim_start().chars().count();
                if next.is_whitespace() && len >= self.min_clause_chars {
                    return Some(end);
                }
            }
            i += 1;
        }
        if chars.len() > self.max_chars {
            // Cut at the last space within the limit, keeping the word being written for later.
            let (cut, _) = chars[..=self.max_chars]
                .iter()
                .rev()
                .find(|(at, c)| *at > 0 && c.is_whitespace())?;
            return Some(*cut);
        }
        None
    }
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '।' | '॥')
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

fn is_clause(c: char) -> bool {
    matches!(c, ',' | ';' | ':')
}

/// Whether the word just before a full stop is an abbreviation (`Mr`, `e.g`, an initial `A`).
fn ends_with_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(['(', '"', '\'', '“', '‘']);
    if word.is_empty() {
        return false;
    }
    let lower = word.to_lowercase();
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return true;
    }
    // `e.g`, `i.e`, `p.m`: letters separated by dots.
    if word.contains('.') && word.chars().all(|c| c == '.' || c.is_alphabetic()) {
        return true;
    }
    // An initial, as in `A. P. J. Abdul Kalam`.
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase())
}

/// `phrase` trimmed, with exactly one trailing space; `None` when there is nothing to say.
fn speakable(phrase: &str) -> Option<String> {
    let trimmed = phrase.trim();
    if trimmed.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(trimmed.len() + 1);
    out.push_str(trimmed);
    out.push(' ');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `tokens` one by one and returns every phrase, `finish` included.
    fn split_with(mut splitter: PhraseSplitter, tokens: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for t in tokens {
            out.extend(splitter.push(t));
        }
        out.extend(splitter.finish());
        out
    }

    fn split(tokens: &[&str]) -> Vec<String> {
        split_with(PhraseSplitter::new(), tokens)
    }

    /// Splits `text` into one-character tokens: the hardest stream to cut correctly.
    fn split_chars(text: &str) -> Vec<String> {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let tokens: Vec<&str> = chars.iter().map(String::as_str).collect();
        split(&tokens)
    }

    #[test]
    fn sentences_are_emitted_as_soon_as_the_next_token_confirms_them() {
        let mut s = PhraseSplitter::new();
        assert!(s.push("We sell").is_empty());
        assert!(s.push(" Solar.").is_empty(), "could still be `Solar.5`");
        assert_eq!(s.push(" We"), vec!["We sell Solar. "]);
        assert_eq!(s.push(" install it!"), Vec::<String>::new());
        assert_eq!(s.finish(), Some("We install it! ".to_string()));
    }

    #[test]
    fn phrases_concatenate_without_gluing_words() {
        let phrases = split(&["Solar", ".", "We", " install", " panels", ".", "Bye", "!"]);
        assert_eq!(phrases.concat(), "Solar.We install panels.Bye! ");
        let phrases = split(&["Solar.", " We", " install", " panels.", " Bye!"]);
        assert_eq!(phrases, vec!["Solar. ", "We install panels. ", "Bye! "]);
        assert_eq!(phrases.concat(), "Solar. We install panels. Bye! ");
    }

    #[test]
    fn every_phrase_ends_with_exactly_one_space() {
        let phrases = split(&[
            "  Hello  there.  ",
            "\n\nHow are you?   ",
            " Fine,  thanks  ",
        ]);
        assert!(!phrases.is_empty());
        for p in &phrases {
            assert!(p.ends_with(' ') && !p.ends_with("  "), "{p:?}");
            assert!(!p.starts_with(' '), "{p:?}");
        }
    }

    #[test]
    fn decimals_and_thousands_separators_are_not_boundaries() {
        assert_eq!(
            split_chars(
                "The rate is 3.5 percent, and the subsidy is Rs 1,50,000 for a 3 kW system. Yes."
            ),
            vec![
                "The rate is 3.5 percent, and the subsidy is Rs 1,50,000 for a 3 kW system. ",
                "Yes. "
            ]
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        assert_eq!(
            split_chars("Mr. Sharma and Dr. Rao met A. P. J. Kalam at 5 p.m. today. Then left."),
            vec![
                "Mr. Sharma and Dr. Rao met A. P. J. Kalam at 5 p.m. today. ",
                "Then left. "
            ]
        );
        assert_eq!(
            split_chars("It costs Rs. 500 only."),
            vec!["It costs Rs. 500 only. "]
        );
    }

    #[test]
    fn hindi_danda_ends_a_sentence_even_without_a_space() {
        assert_eq!(
            split(&[
                "नमस्ते",
                "।",
                "मैं",
                " प्रिया",
                " बोल",
                " रही",
                " हूँ",
                "।",
                " क्या",
                " आप",
                " ठीक",
                " हैं",
                "?"
            ]),
            vec!["नमस्ते। ", "मैं प्रिया बोल रही हूँ। ", "क्या आप ठीक हैं? "]
        );
        assert_eq!(
            split_chars("शुक्रिया॥ फिर मिलेंगे"),
            vec!["शुक्रिया॥ ", "फिर मिलेंगे "]
        );
    }

    #[test]
    fn commas_split_only_long_phrases() {
        assert_eq!(
            split_chars(
                "Yes, sure. Our rooftop solar plans start at a low monthly EMI, and installation is free."
            ),
            vec![
                "Yes, sure. ",
                "Our rooftop solar plans start at a low monthly EMI, ",
                "and installation is free. "
            ]
        );
        let short = PhraseSplitter::new().with_min_clause_chars(5);
        assert_eq!(
            split_with(short, &["Well,", " okay;", " time:", " 5:30 pm"]),
            vec!["Well, ", "okay; ", "time: ", "5:30 pm "]
        );
    }

    #[test]
    fn punctuation_runs_and_closing_quotes_stay_with_their_sentence() {
        assert_eq!(
            split_chars("Really?! He said \"yes.\" Then... we wait."),
            vec!["Really?! ", "He said \"yes.\" ", "Then... ", "we wait. "]
        );
    }

    #[test]
    fn a_long_run_on_phrase_is_cut_at_a_space() {
        let s = PhraseSplitter::new().with_max_chars(20);
        let phrases = split_with(s, &["one two three four five six seven eight nine"]);
        assert!(phrases.len() >= 2, "{phrases:?}");
        assert!(
            phrases.iter().all(|p| p.chars().count() <= 21),
            "{phrases:?}"
        );
        assert_eq!(
            phrases.concat().trim_end(),
            "one two three four five six seven eight nine"
        );
    }

    #[test]
    fn finish_flushes_the_rest_and_ignores_blank_text() {
        let mut s = PhraseSplitter::new();
        assert!(s.push("   ").is_empty());
        assert_eq!(s.finish(), None);
        assert!(s.push("Thank you").is_empty());
        assert_eq!(s.finish(), Some("Thank you ".to_string()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn reset_drops_pending_text() {
        let mut s = PhraseSplitter::new();
        assert!(s.push("Half a sent").is_empty());
        s.reset();
        assert_eq!(s.finish(), None);
    }
}
