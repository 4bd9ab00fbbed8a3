//! Reading the instructions (the system prompt): the sentences that state facts, the offer, the
//! price, the qualifying question, the agent's name and company, and the greeting made of them.

use super::caller::{OFFER_WORDS, PRICE_FACT_WORDS, contains_any, has, has_devanagari, normalize};
use super::lines::{ABOUT, PRICE, QUALIFIER, say};
use super::{Conversation, Lang};

impl Conversation {
    /// Sentences of the instructions that state facts (not orders to the model), in the
    /// reply language.
    fn fact_sentences(&self) -> Vec<String> {
        sentences(&self.system)
            .into_iter()
            .filter_map(|s| strip_label(&s))
            .filter(|s| !is_instruction(s) && !s.ends_with(['?', '？']))
            .filter(|s| has_devanagari(s) == (self.lang == Lang::Hi))
            .collect()
    }

    pub(super) fn about(&self) -> String {
        let facts = self.fact_sentences();
        let offer = facts
            .iter()
            .find(|s| contains_any(&s.to_lowercase(), OFFER_WORDS));
        offer
            .or(facts.first())
            .cloned()
            .unwrap_or_else(|| say(self.lang, ABOUT).into())
    }

    pub(super) fn price(&self) -> String {
        self.fact_sentences()
            .into_iter()
            .find(|s| s.contains('₹') || has(&normalize(s), PRICE_FACT_WORDS))
            .unwrap_or_else(|| say(self.lang, PRICE).into())
    }

    /// The qualifying question: the first question after "qualif…" in the instructions, or
    /// any question there, or a generic one.
    pub(super) fn qualifier(&self) -> String {
        let lower = self.system.to_lowercase();
        let from = lower
            .find("qualif")
            .or_else(|| self.system.find("योग्यता"))
            .unwrap_or(0);
        // Byte offsets of `lower` match `system` only for ASCII; fall back to the start.
        let tail = self.system.get(from..).unwrap_or(&self.system);
        let question = |text: &str| {
            sentences(text)
                .into_iter()
                .filter_map(|s| strip_label(&s))
                .find(|s| {
                    (s.ends_with('?') || s.ends_with('？'))
                        && has_devanagari(s) == (self.lang == Lang::Hi)
                })
        };
        question(tail)
            .or_else(|| question(&self.system))
            .unwrap_or_else(|| say(self.lang, QUALIFIER).into())
    }

    /// Agent name and company from "You are Priya, … from/for/at SunPower Solar".
    fn identity(&self) -> (Option<String>, Option<String>) {
        let Some(at) = self
            .system
            .find("You are ")
            .or(self.system.find("you are "))
        else {
            return (None, None);
        };
        let rest = &self.system[at + "You are ".len()..];
        let end = rest.find(['.', '\n', '!', '?', '।']).unwrap_or(rest.len());
        let sentence = &rest[..end];
        let first = sentence
            .split(|c: char| c.is_whitespace() || c == ',')
            .next()
            .unwrap_or("");
        let name = (first.chars().next().is_some_and(char::is_uppercase)
            && !["A", "An", "The"].contains(&first))
        .then(|| first.to_string());
        let company = [" from ", " for ", " at ", " with "].iter().find_map(|k| {
            let i = sentence.find(k)?;
            let c = &sentence[i + k.len()..];
            let c = c
                .split([',', ';', '('])
                .next()?
                .split(" to ")
                .next()?
                .trim();
            (!c.is_empty()).then(|| c.to_string())
        });
        (name, company)
    }

    pub(super) fn introduction(&self) -> String {
        match (self.lang, self.identity()) {
            (Lang::En, (Some(n), Some(c))) => format!("This is {n} from {c}."),
            (Lang::En, (None, Some(c))) => format!("I am calling from {c}."),
            (Lang::En, (Some(n), None)) => format!("This is {n}."),
            (Lang::Hi, (_, Some(c))) => format!("यह कॉल {c} की ओर से है।"),
            (Lang::En, _) => "I am calling with a quick offer.".into(),
            (Lang::Hi, _) => "मैं एक खास ऑफ़र के बारे में कॉल कर रही हूँ।".into(),
        }
    }

    pub(super) fn greeting(&self) -> String {
        match self.lang {
            Lang::En => format!(
                "Namaste! {} Do you have a minute to talk?",
                self.introduction()
            ),
            Lang::Hi => format!(
                "नमस्ते! {} क्या आपके पास बात करने के लिए एक मिनट है?",
                self.introduction()
            ),
        }
    }
}

/// Splits text into sentences at `.`/`!`/`?`/`।` followed by a space, and at line ends;
/// numbers (`3.5`) and `Rs.`/`Mr.`/`Dr.` stay whole.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
        let next_is_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if matches!(c, '!' | '?' | '？' | '।' | '॥') && next_is_space {
            out.push(std::mem::take(&mut cur));
        } else if c == '.' && next_is_space {
            let word = cur[..cur.len() - 1]
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("")
                .to_lowercase();
            if !["rs", "mr", "mrs", "ms", "dr", "no", "pvt", "st"].contains(&word.as_str()) {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Drops list markers and a short `Label:` prefix; `None` for labels that carry no fact.
fn strip_label(sentence: &str) -> Option<String> {
    let s = sentence
        .trim_start_matches(|c: char| c == '-' || c == '*' || c == '•' || c.is_whitespace());
    let s = match s.split_once(['.', ')']) {
        Some((n, rest)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => s,
    }
    .trim();
    if let Some((label, rest)) = s.split_once(':')
        && label.split_whitespace().count() <= 3
        && !label.chars().any(|c| c.is_ascii_digit())
    {
        let label = label.trim().to_lowercase();
        #[rustfmt::skip]
            const NO_FACT: &[&str] = &[
                "language", "time", "current", "now", "tool", "lead", "name", "phone", "campaign",
                "caller", "agent", "voice", "date", "today",
            ];
        if NO_FACT.iter().any(|w| label.contains(w)) {
            return None;
        }
        return Some(rest.trim().to_string()).filter(|r| !r.is_empty());
    }
    Some(s.to_string()).filter(|s| !s.is_empty())
}

fn is_instruction(sentence: &str) -> bool {
    let l = sentence.to_lowercase();
    #[rustfmt::skip]
        const STARTS: &[&str] = &[
            "you ", "your ", "be ", "keep", "do not", "don't", "dont", "always", "never", "use ",
            "ask", "if ", "when ", "reply", "respond", "speak", "talk", "call ", "end ", "record",
            "say", "greet", "introduce", "answer", "follow", "only", "make sure", "remember",
            "note", "the caller", "the lead", "the customer", "qualif", "collect", "schedule",
            "आप एक", "हमेशा", "कभी",
        ];
    STARTS.iter().any(|s| l.starts_with(s)) || l.contains('{')
}
