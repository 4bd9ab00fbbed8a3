//! What the conversation established ([`Facts`]: intent, callback time, questions, the answer to
//! the qualifying question), read from a transcript or the turns and corrected by the tools the
//! agent called; and the `qualification` argument of `record_outcome`.

use chrono::DateTime;
use serde_json::{Value, json};

use super::caller::{Said, classify, detect_lang};
use super::time::callback_time;
use super::{Conversation, Facts, Intent};

impl Conversation {
    pub(super) fn facts(&self) -> Facts {
        // A transcript pasted into a message ("Caller: …" lines), else the user turns that are
        // not the extraction instruction itself.
        let mut lines: Vec<String> = std::iter::once(self.system.as_str())
            .chain(self.turns.iter().map(|t| t.text.as_str()))
            .flat_map(str::lines)
            .filter_map(caller_line)
            .collect();
        if lines.is_empty() {
            lines = self
                .turns
                .iter()
                .filter(|t| t.role == "user")
                .filter(|t| {
                    let l = t.text.to_lowercase();
                    !(l.contains("json") || l.contains("summar") || l.contains("extract"))
                })
                .map(|t| t.text.clone())
                .collect();
        }
        let mut facts = Facts {
            lang: detect_lang(&self.system, lines.last().map_or("", String::as_str)),
            intent: None,
            callback_at: None,
            questions: Vec::new(),
            answer: None,
            now: self.now,
        };
        for line in &lines {
            match classify(line) {
                Said::DoNotCall => facts.intent = Some(Intent::DoNotCall),
                Said::WrongNumber => facts.intent = Some(Intent::WrongNumber),
                Said::Callback => {
                    facts.intent = Some(Intent::Callback);
                    facts.callback_at = Some(callback_time(line, self.now));
                }
                Said::Refusal { strong: false } | Said::Other
                    if facts.intent == Some(Intent::Interested) =>
                {
                    facts.answer = Some(line.clone());
                }
                Said::Refusal { .. } => facts.intent = Some(Intent::NotInterested),
                Said::Question(_) => facts.questions.push(line.clone()),
                Said::Positive { .. } => {
                    if facts.intent == Some(Intent::Interested) {
                        facts.answer = Some(line.clone());
                    }
                    facts.intent = Some(Intent::Interested);
                }
                Said::Unclear | Said::Other => {}
            }
        }
        // What the agent recorded with its tools is authoritative.
        for call in self.turns.iter().flat_map(|t| &t.calls) {
            match call.name.as_str() {
                "record_outcome" => {
                    if let Some(i) = call.arguments["intent"].as_str().and_then(Intent::parse) {
                        facts.intent = Some(i);
                    }
                }
                "schedule_callback" => {
                    if let Some(at) = call.arguments["at"]
                        .as_str()
                        .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
                    {
                        facts.callback_at = Some(at);
                    }
                }
                _ => {}
            }
        }
        facts
    }
}

/// `qualification` for `record_outcome`: the schema's fields filled from the answer, or
/// the question and answer.
pub(super) fn qualification(schema: &Value, question: &str, answer: &str) -> Value {
    let Some(props) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
        return json!({"question": question, "answer": answer});
    };
    let number = first_number(answer);
    props
        .iter()
        .map(|(k, p)| {
            let v = match p["type"].as_str() {
                Some("number") | Some("integer") => json!(number.unwrap_or(0.0)),
                Some("boolean") => json!(true),
                _ => json!(answer),
            };
            (k.clone(), v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub fn first_number(text: &str) -> Option<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.chars().any(|c| c.is_ascii_digit()))
        .and_then(|w| w.trim_matches('.').parse().ok())
}

fn caller_line(line: &str) -> Option<String> {
    let (speaker, rest) = line.trim().split_once(':')?;
    let speaker = speaker.trim().to_lowercase();
    [
        "caller",
        "user",
        "customer",
        "lead",
        "callee",
        "human",
        "ग्राहक",
    ]
    .contains(&speaker.as_str())
    .then(|| rest.trim().to_string())
}
