//! The scripted sales agent: reads a request the way a model would (instructions, history, the
//! caller's last line) and decides the reply by keyword rules, in English or Hindi.
//! Deterministic: the same request always gets the same reply (given a current time in the
//! prompt).
//!
//! The files: this one (the conversation read from the request, and the turn's decision),
//! `lines` (what the agent says, per language), `instructions` (facts and questions taken from
//! the system prompt), `facts` (what the conversation established, for structured output),
//! `caller` (what the caller's line means) and `time` (the current time and callback times).

mod caller;
mod facts;
mod instructions;
mod lines;
mod time;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{Value, json};

use caller::{Said, Topic, classify, detect_lang};
pub(super) use facts::first_number;
use facts::qualification;
use lines::{
    ASK_INTEREST, GIVE_UP, GREAT, NEUTRAL, REPEAT, acknowledgement, closing, end_reason, say,
};
use time::{callback_time, find_now, ist, when_phrase};

pub(super) struct Reply {
    pub content: String,
    pub tool_calls: Vec<Call>,
}

impl Reply {
    fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            tool_calls: Vec::new(),
        }
    }
}

pub(super) struct Call {
    pub name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    En,
    Hi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Intent {
    Interested,
    NotInterested,
    Callback,
    WrongNumber,
    DoNotCall,
}

impl Intent {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Interested => "interested",
            Self::NotInterested => "not_interested",
            Self::Callback => "callback",
            Self::WrongNumber => "wrong_number",
            Self::DoNotCall => "do_not_call",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Interested,
            Self::NotInterested,
            Self::Callback,
            Self::WrongNumber,
            Self::DoNotCall,
        ]
        .into_iter()
        .find(|i| i.as_str() == s)
    }
}

/// What the conversation established, for structured extraction.
pub(super) struct Facts {
    pub lang: Lang,
    pub intent: Option<Intent>,
    pub callback_at: Option<DateTime<FixedOffset>>,
    pub questions: Vec<String>,
    /// The caller's answer to the qualifying question.
    pub answer: Option<String>,
    pub now: DateTime<FixedOffset>,
}

struct Turn {
    role: String,
    text: String,
    calls: Vec<Call>,
}

pub(super) struct Conversation {
    system: String,
    turns: Vec<Turn>,
    /// Offered tools: name and parameters schema.
    tools: Vec<(String, Value)>,
    response_format: Value,
    now: DateTime<FixedOffset>,
    lang: Lang,
}

/// The text of a message `content`: a string or an array of `{type: text, text}` parts.
pub(super) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl Conversation {
    pub(super) fn from_request(body: &Value) -> Self {
        let mut system = String::new();
        let mut turns = Vec::new();
        for m in body["messages"].as_array().into_iter().flatten() {
            let role = m["role"].as_str().unwrap_or("").to_string();
            let text = text_of(&m["content"]);
            if role == "system" || role == "developer" {
                system.push_str(&text);
                system.push('\n');
                continue;
            }
            let calls = m["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Call {
                    name: c["function"]["name"].as_str().unwrap_or("").to_string(),
                    arguments: c["function"]["arguments"]
                        .as_str()
                        .and_then(|a| serde_json::from_str(a).ok())
                        .unwrap_or(Value::Null),
                })
                .collect();
            turns.push(Turn { role, text, calls });
        }
        let tools = body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let f = &t["function"];
                Some((f["name"].as_str()?.to_string(), f["parameters"].clone()))
            })
            .collect();
        let now = find_now(&system).unwrap_or_else(|| Utc::now().with_timezone(&ist()));
        let last_user = turns
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.text.as_str())
            .unwrap_or("");
        let lang = detect_lang(&system, last_user);
        Self {
            system,
            turns,
            tools,
            response_format: body["response_format"].clone(),
            now,
            lang,
        }
    }

    pub(super) fn reply(&self) -> Reply {
        match self.response_format["type"].as_str() {
            Some("json_schema") => {
                let schema = &self.response_format["json_schema"]["schema"];
                return Reply::text(super::schema::fill(schema, &self.facts()).to_string());
            }
            Some("json_object") => {
                return Reply::text(super::schema::default_object(&self.facts()).to_string());
            }
            _ => {}
        }
        if self.turns.last().is_some_and(|t| t.role == "tool") {
            return Reply::text(closing(self.lang, self.concluded_intent()));
        }
        let Some(at) = self.turns.iter().rposition(|t| t.role == "user") else {
            return Reply::text(self.greeting());
        };
        let previous = self.turns[..at]
            .iter()
            .rev()
            .find(|t| t.role == "assistant" && !t.text.is_empty())
            .map(|t| t.text.as_str())
            .unwrap_or("");
        self.respond(&self.turns[at].text, previous)
    }

    fn respond(&self, said: &str, previous: &str) -> Reply {
        let lang = self.lang;
        let qualifier = self.qualifier();
        let qualifying = previous.contains(qualifier.as_str());
        let heard = match classify(said) {
            // "About 3000 rupees" answers the qualifying question; it does not ask the price.
            Said::Question(_) if qualifying && !said.contains(['?', '？']) => Said::Other,
            heard => heard,
        };
        match heard {
            Said::DoNotCall => self.conclude(Intent::DoNotCall, said, previous, None),
            Said::WrongNumber => self.conclude(Intent::WrongNumber, said, previous, None),
            Said::Callback => {
                let at = callback_time(said, self.now);
                self.conclude(Intent::Callback, said, previous, Some(at))
            }
            // A bare "no" answers the qualifying question; it does not refuse the offer.
            Said::Refusal { strong: false } | Said::Positive { .. } | Said::Other if qualifying => {
                self.conclude(Intent::Interested, said, previous, None)
            }
            Said::Refusal { .. } => self.conclude(Intent::NotInterested, said, previous, None),
            Said::Unclear if previous.contains(say(lang, REPEAT)) => {
                let mut reply = Reply::text(say(lang, GIVE_UP));
                if self.offers("end_call").is_some() {
                    reply.tool_calls.push(Call {
                        name: "end_call".into(),
                        arguments: json!({"reason": "line unclear"}),
                    });
                }
                reply
            }
            Said::Unclear => Reply::text(say(lang, REPEAT)),
            Said::Question(Topic::Identity) => {
                Reply::text(format!("{} {}", self.introduction(), self.about()))
            }
            Said::Question(topic) => {
                let answer = match topic {
                    Topic::Price => self.price(),
                    _ => self.about(),
                };
                let follow = if qualifying {
                    qualifier
                } else {
                    say(lang, ASK_INTEREST).to_string()
                };
                Reply::text(format!("{answer} {follow}"))
            }
            Said::Positive { more: true } => Reply::text(format!("{} {qualifier}", self.about())),
            Said::Positive { more: false } => {
                Reply::text(format!("{} {qualifier}", say(lang, GREAT)))
            }
            Said::Other => Reply::text(say(lang, NEUTRAL)),
        }
    }

    fn offers(&self, tool: &str) -> Option<&Value> {
        self.tools.iter().find(|(n, _)| n == tool).map(|(_, p)| p)
    }

    /// The acknowledgement and the tool calls that end the call with `intent`; without
    /// tools, the closing line is said at once.
    fn conclude(
        &self,
        intent: Intent,
        said: &str,
        question: &str,
        at: Option<DateTime<FixedOffset>>,
    ) -> Reply {
        let mut calls = Vec::new();
        let at_text = at.map(|a| a.to_rfc3339_opts(SecondsFormat::Secs, true));
        if let (Some(at), Some(_)) = (&at_text, self.offers("schedule_callback")) {
            calls.push(Call {
                name: "schedule_callback".into(),
                arguments: json!({"at": at}),
            });
        }
        if let Some(params) = self.offers("record_outcome") {
            let notes = match intent {
                Intent::Interested => {
                    format!("Caller is interested. Asked \"{question}\", answered \"{said}\".")
                }
                Intent::Callback => format!(
                    "Caller asked to be called back at {}: \"{said}\".",
                    at_text.clone().unwrap_or_default()
                ),
                _ => format!("Caller said: \"{said}\"."),
            };
            let qualification = if intent == Intent::Interested {
                qualification(&params["properties"]["qualification"], question, said)
            } else {
                json!({})
            };
            let mut args =
                json!({"intent": intent.as_str(), "notes": notes, "qualification": qualification});
            // Send only what the offered schema declares, when it declares anything.
            if let (Some(props), Some(obj)) =
                (params["properties"].as_object(), args.as_object_mut())
            {
                obj.retain(|k, _| props.contains_key(k));
            }
            calls.push(Call {
                name: "record_outcome".into(),
                arguments: args,
            });
        }
        if self.offers("end_call").is_some() {
            calls.push(Call {
                name: "end_call".into(),
                arguments: json!({"reason": end_reason(intent)}),
            });
        }
        let when = at.map(|a| when_phrase(self.lang, a, self.now));
        let mut content = acknowledgement(self.lang, intent, when);
        if calls.is_empty() {
            content.push(' ');
            content.push_str(closing(self.lang, Some(intent)));
        }
        Reply {
            content,
            tool_calls: calls,
        }
    }

    /// The outcome recorded by the last assistant turn that called tools.
    fn concluded_intent(&self) -> Option<Intent> {
        let turn = self.turns.iter().rev().find(|t| !t.calls.is_empty())?;
        let recorded = turn
            .calls
            .iter()
            .find(|c| c.name == "record_outcome")
            .and_then(|c| Intent::parse(c.arguments["intent"].as_str()?));
        recorded.or_else(|| {
            turn.calls
                .iter()
                .any(|c| c.name == "schedule_callback")
                .then_some(Intent::Callback)
        })
    }
}
