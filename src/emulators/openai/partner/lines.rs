//! What the agent says, in English and Hindi: the fixed lines, the acknowledgement said with the
//! tools that conclude a call, the closing line, and the reason given to `end_call`.

use super::{Intent, Lang};

fn pick(lang: Lang, en: &'static str, hi: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Hi => hi,
    }
}

pub(super) const REPEAT: (&str, &str) = (
    "Sorry, I didn't catch that. Could you please repeat?",
    "माफ़ कीजिए, आपकी आवाज़ साफ़ नहीं आई। क्या आप फिर से बोल सकते हैं?",
);
pub(super) const GIVE_UP: (&str, &str) = (
    "Sorry, the line doesn't seem clear. We will call you back another time.",
    "माफ़ कीजिए, लाइन साफ़ नहीं है। हम आपको बाद में फिर कॉल करेंगे।",
);
pub(super) const QUALIFIER: (&str, &str) = (
    "Could you tell me a little about your current requirement?",
    "क्या आप अपनी ज़रूरत के बारे में थोड़ा बता सकते हैं?",
);
pub(super) const ABOUT: (&str, &str) = (
    "We are calling about a special offer that could save you money.",
    "हम आपके लिए एक खास ऑफ़र लेकर आए हैं, जिससे आपकी बचत हो सकती है।",
);
pub(super) const PRICE: (&str, &str) = (
    "The exact price depends on your requirement, and our team will share a detailed quote.",
    "कीमत आपकी ज़रूरत पर निर्भर करती है, हमारी टीम आपको पूरी जानकारी देगी।",
);
pub(super) const ASK_INTEREST: (&str, &str) = ("Would you be interested?", "क्या आप इसमें रुचि रखेंगे?");
pub(super) const GREAT: (&str, &str) = ("Great!", "बहुत बढ़िया!");
pub(super) const NEUTRAL: (&str, &str) = (
    "I see. Would you like to know more about our offer?",
    "ठीक है। क्या आप हमारे ऑफ़र के बारे में और जानना चाहेंगे?",
);

pub(super) fn say(lang: Lang, text: (&'static str, &'static str)) -> &'static str {
    pick(lang, text.0, text.1)
}

/// What is said alongside the tool calls that conclude the call.
pub(super) fn acknowledgement(lang: Lang, intent: Intent, when: Option<String>) -> String {
    match intent {
        Intent::Interested => pick(
            lang,
            "Thank you, I have noted your interest.",
            "धन्यवाद, मैंने आपकी रुचि नोट कर ली है।",
        )
        .into(),
        Intent::NotInterested => pick(
            lang,
            "No problem, thank you for your time.",
            "कोई बात नहीं, आपके समय के लिए धन्यवाद।",
        )
        .into(),
        Intent::Callback => {
            let when = when.unwrap_or_default();
            match lang {
                Lang::En => format!("Sure, we will call you back {when}."),
                Lang::Hi => format!("ज़रूर, हम आपको {when} कॉल करेंगे।"),
            }
        }
        Intent::WrongNumber => pick(
            lang,
            "Sorry for the trouble, it seems we have the wrong number.",
            "माफ़ कीजिए, लगता है यह गलत नंबर है।",
        )
        .into(),
        Intent::DoNotCall => pick(
            lang,
            "I am sorry for the disturbance; we will not call you again.",
            "परेशानी के लिए माफ़ी चाहते हैं, हम आपको दोबारा कॉल नहीं करेंगे।",
        )
        .into(),
    }
}

/// The last sentence of a call, after the tools have run.
pub(super) fn closing(lang: Lang, intent: Option<Intent>) -> &'static str {
    match intent {
        Some(Intent::Interested) => pick(
            lang,
            "Our team will contact you shortly with the details. Have a great day!",
            "हमारी टीम जल्द ही आपसे संपर्क करेगी। आपका दिन शुभ हो!",
        ),
        Some(Intent::Callback) => pick(lang, "Talk to you then. Goodbye!", "तब बात करते हैं, धन्यवाद!"),
        Some(Intent::WrongNumber) => pick(
            lang,
            "Apologies again. Goodbye!",
            "परेशानी के लिए क्षमा करें। नमस्ते!",
        ),
        Some(Intent::NotInterested | Intent::DoNotCall) => {
            pick(lang, "Have a good day. Goodbye!", "आपका दिन शुभ हो, नमस्ते!")
        }
        None => pick(lang, "Thank you. Goodbye!", "धन्यवाद, नमस्ते!"),
    }
}

pub(super) fn end_reason(intent: Intent) -> &'static str {
    match intent {
        Intent::Interested => "caller interested; sales team to follow up",
        Intent::NotInterested => "caller not interested",
        Intent::Callback => "callback scheduled",
        Intent::WrongNumber => "wrong number",
        Intent::DoNotCall => "caller asked not to be called again",
    }
}
