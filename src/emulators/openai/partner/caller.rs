//! Reading the caller: a line classified as a [`Said`] (a refusal, a callback request, a
//! question on a [`Topic`], …) by whole-word keyword lists in English, Hinglish and Hindi, and
//! the language of the call.

use super::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Topic {
    Price,
    Identity,
    About,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Said {
    DoNotCall,
    WrongNumber,
    Callback,
    /// `strong`: an explicit refusal ("not interested"), not a bare "no".
    Refusal {
        strong: bool,
    },
    Question(Topic),
    /// `more`: asked for details ("tell me more").
    Positive {
        more: bool,
    },
    Unclear,
    Other,
}

#[rustfmt::skip]
    const FILLERS: &[&str] = &[
        "hmm", "hm", "hmmm", "uh", "um", "umm", "ah", "huh", "hello", "hallo", "helo", "what",
        "sorry", "pardon", "kya", "हेलो", "हैलो", "क्या", "हम्म", "अं",
    ];
#[rustfmt::skip]
    const DO_NOT_CALL: &[&str] = &[
        "dont call", "do not call", "stop calling", "never call", "remove my number", "remove me",
        "take me off", "unsubscribe", "do not disturb", "dnd", "call mat", "phone mat", "कॉल मत",
        "फोन मत", "फ़ोन मत", "परेशान मत",
    ];
#[rustfmt::skip]
    const WRONG_NUMBER: &[&str] = &[
        "wrong number", "galat number", "wrong person", "no one by that name",
        "nobody by that name", "not the right person", "गलत नंबर", "ग़लत नंबर", "रॉन्ग नंबर",
    ];
const BARE_WHO: &[&str] = &["who", "kaun", "kon", "कौन"];
#[rustfmt::skip]
    const CALLBACK: &[&str] = &[
        "call me later", "call later", "call back", "call me back", "callback", "call me tomorrow",
        "call me in", "call me at", "call me after", "call me on", "later", "tomorrow", "busy",
        "not now", "not a good time", "another time", "some other time", "in a meeting", "driving",
        "baad mein", "baad me", "baad main", "bad me", "abhi nahi", "abhi nahin", "abhi busy",
        "kal", "parso", "parson", "dobara call", "phir se call", "fir se call", "बाद में",
        "अभी नहीं", "व्यस्त", "बिज़ी", "बिजी", "कल", "परसों", "फिर से कॉल", "दोबारा कॉल",
    ];
#[rustfmt::skip]
    const UNSURE: &[&str] = &[
        "not sure", "dont know", "pata nahi", "maybe", "shayad", "पता नहीं", "शायद",
    ];
#[rustfmt::skip]
    const STRONG_REFUSAL: &[&str] = &[
        "not interested", "no thanks", "no thank you", "nahi chahiye", "nahin chahiye",
        "interest nahi", "interested nahi", "interest nahin", "dont want", "do not want",
        "not looking", "not required", "no need", "zarurat nahi", "jarurat nahi", "नहीं चाहिए",
        "रुचि नहीं", "दिलचस्पी नहीं", "ज़रूरत नहीं", "जरूरत नहीं", "इंटरेस्ट नहीं",
    ];
#[rustfmt::skip]
    const WEAK_REFUSAL: &[&str] = &[
        "no", "nope", "nah", "nahi", "nahin", "na", "नहीं", "नही", "ना",
    ];
#[rustfmt::skip]
    const QUESTION_START: &[&str] = &[
        "what", "whats", "how", "why", "which", "where", "when", "who", "is", "are", "does", "can",
        "could", "kya", "kaise", "kitna", "kitne", "kitni", "kaun", "kyun", "kyon", "kab", "kahan",
        "क्या", "कैसे", "कितना", "कितने", "कितनी", "कौन", "क्यों", "कब", "कहाँ",
    ];
#[rustfmt::skip]
    const QUESTION_ANYWHERE: &[&str] = &[
        "kya hai", "kya he", "kaun hai", "kaun ho", "kaun bol", "kitna hai", "what is this",
        "क्या है", "कितना है", "कौन है", "कौन हो", "कौन बोल",
    ];
#[rustfmt::skip]
    const PRICE_WORDS: &[&str] = &[
        "price", "cost", "costs", "charges", "charge", "fees", "fee", "rate", "emi", "how much",
        "kitna", "kitne", "kitni", "paisa", "paise", "rupees", "rupaye", "kimat", "keemat", "daam",
        "कीमत", "दाम", "कितना", "कितने", "पैसे", "रुपये", "खर्च",
    ];
#[rustfmt::skip]
    const IDENTITY_WORDS: &[&str] = &[
        "who are you", "who is this", "who is calling", "kaun ho", "kaun hai", "kaun bol",
        "which company", "calling from", "कौन हो", "कौन है", "कौन बोल",
    ];
#[rustfmt::skip]
    const POSITIVE: &[&str] = &[
        "yes", "yeah", "yep", "yup", "ya", "sure", "ok", "okay", "interested", "tell me more",
        "go ahead", "sounds good", "of course", "why not", "definitely", "absolutely", "haan",
        "haa", "han", "ha", "ji", "haanji", "bilkul", "theek hai", "thik hai", "achha", "accha",
        "acha", "batao", "bataiye", "bataye", "boliye", "bolo", "zaroor", "zarur", "jarur", "हाँ",
        "हां", "जी", "हाँजी", "ज़रूर", "जरूर", "बिल्कुल", "बिलकुल", "ठीक है", "अच्छा", "बताइए",
        "बताइये", "बताओ", "बोलिए", "इंटरेस्टेड",
    ];
#[rustfmt::skip]
    const MORE: &[&str] = &[
        "tell me more", "more", "details", "explain", "batao", "bataiye", "bataye", "jaankari",
        "बताइए", "बताइये", "बताओ", "जानकारी",
    ];
#[rustfmt::skip]
    pub(super) const OFFER_WORDS: &[&str] = &[
        "offer", "we ", "our ", "provide", "sell", "scheme", "plan", "product", "service", "loan",
        "policy", "subsidy", "हम", "हमारी", "हमारा", "ऑफ़र", "ऑफर", "योजना",
    ];
#[rustfmt::skip]
    pub(super) const PRICE_FACT_WORDS: &[&str] = &[
        "rs", "inr", "rupee", "rupees", "price", "prices", "cost", "costs", "emi", "per month",
        "lakh", "discount", "कीमत", "रुपये", "रुपए",
    ];

pub(super) fn contains_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(n))
}

/// Whole-word (or whole-phrase) match in a `normalize`d text.
pub(super) fn has(normalized: &str, phrases: &[&str]) -> bool {
    phrases
        .iter()
        .any(|p| normalized.contains(&format!(" {p} ")))
}

fn devanagari_digit(c: char) -> char {
    match c {
        '०'..='९' => char::from(b'0' + (c as u32 - '०' as u32) as u8),
        c => c,
    }
}

/// Lower case, ASCII digits, punctuation as spaces (apostrophes dropped, `5.30` → `5:30`),
/// single spaces, and a space at each end so phrases can be matched as whole words.
pub(super) fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().map(devanagari_digit).collect();
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        match c {
            '\'' | '’' | '‘' => {}
            '.' | ':' if between_digits => out.push(':'),
            c if c.is_ascii_punctuation() => out.push(' '),
            '।' | '॥' | '“' | '”' | '…' | '？' | '،' => out.push(' '),
            c => out.extend(c.to_lowercase()),
        }
    }
    let mut collapsed = String::with_capacity(out.len() + 2);
    collapsed.push(' ');
    for w in out.split_whitespace() {
        collapsed.push_str(w);
        collapsed.push(' ');
    }
    collapsed
}

pub(super) fn classify(text: &str) -> Said {
    let n = normalize(text);
    let t = n.trim();
    let asked = text.contains('?') || text.contains('？');
    if t.is_empty() || FILLERS.contains(&t) {
        return Said::Unclear;
    }
    if has(&n, DO_NOT_CALL) {
        return Said::DoNotCall;
    }
    if has(&n, WRONG_NUMBER) || BARE_WHO.contains(&t) {
        return Said::WrongNumber;
    }
    if has(&n, CALLBACK) {
        return Said::Callback;
    }
    if has(&n, UNSURE) {
        return Said::Other;
    }
    if has(&n, STRONG_REFUSAL) {
        return Said::Refusal { strong: true };
    }
    let first = t.split(' ').next().unwrap_or("");
    let question = (asked
        || QUESTION_START.contains(&first)
        || has(&n, QUESTION_ANYWHERE)
        || has(&n, PRICE_WORDS))
        && !t.starts_with("why not");
    if question {
        return Said::Question(if has(&n, PRICE_WORDS) {
            Topic::Price
        } else if has(&n, IDENTITY_WORDS) {
            Topic::Identity
        } else {
            Topic::About
        });
    }
    if has(&n, WEAK_REFUSAL) {
        return Said::Refusal { strong: false };
    }
    if has(&n, POSITIVE) {
        return Said::Positive {
            more: has(&n, MORE),
        };
    }
    Said::Other
}

pub(super) fn has_devanagari(text: &str) -> bool {
    text.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c))
}

pub(super) fn detect_lang(system: &str, caller: &str) -> Lang {
    if has_devanagari(caller) {
        return Lang::Hi;
    }
    let lower = system.to_lowercase();
    if lower.contains("hi-in") {
        return Lang::Hi;
    }
    if ["en-in", "en-us", "en-gb"]
        .iter()
        .any(|c| lower.contains(c))
    {
        return Lang::En;
    }
    if has_devanagari(system) || lower.contains("in hindi") || lower.contains("language: hindi") {
        Lang::Hi
    } else {
        Lang::En
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_lines_are_classified_in_english_hinglish_and_hindi() {
        let cases = [
            ("Yes, tell me more", Said::Positive { more: true }),
            ("haan ji", Said::Positive { more: false }),
            ("हाँ, बताइए", Said::Positive { more: true }),
            ("Not interested, thanks", Said::Refusal { strong: true }),
            ("nahi", Said::Refusal { strong: false }),
            ("मुझे नहीं चाहिए", Said::Refusal { strong: true }),
            ("I'm busy, call me tomorrow at 5", Said::Callback),
            ("abhi nahi, baad mein", Said::Callback),
            ("कल शाम को कॉल कीजिए", Said::Callback),
            ("Wrong number", Said::WrongNumber),
            ("who?", Said::WrongNumber),
            ("galat number hai", Said::WrongNumber),
            ("Don't call me again", Said::DoNotCall),
            ("please stop calling", Said::DoNotCall),
            ("What is this about?", Said::Question(Topic::About)),
            ("price kitna hai?", Said::Question(Topic::Price)),
            ("Who is this?", Said::Question(Topic::Identity)),
            ("ye kya hai", Said::Question(Topic::About)),
            ("", Said::Unclear),
            ("hmm?", Said::Unclear),
            ("sure, why not", Said::Positive { more: false }),
            ("I am not sure", Said::Other),
        ];
        for (line, expected) in cases {
            assert_eq!(classify(line), expected, "{line:?}");
        }
    }
}
