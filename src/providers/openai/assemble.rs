//! Reply assembly: [`ReplyAssembler`] folds streamed chunks in (text, tool-call fragments per
//! index or per id, finish reason, usage) and hands out whole [`ToolCall`]s.

use super::wire::{WireChunk, WireToolCallDelta};
use crate::voice::llm::ToolCall;
use crate::voice::llm::{FinishReason, TokenUsage};

struct PartialCall {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Accumulates a streamed reply: tool-call fragments per index, the finish reason, usage.
#[derive(Default)]
pub(super) struct ReplyAssembler {
    calls: Vec<PartialCall>,
    pub(super) finish_reason: Option<FinishReason>,
    pub(super) usage: Option<TokenUsage>,
    /// Whether any content or tool-call fragment has arrived (the "first token").
    pub(super) progressed: bool,
}

impl ReplyAssembler {
    /// Folds one chunk in; returns its text, if any.
    pub(super) fn apply(&mut self, chunk: WireChunk) -> Option<String> {
        if chunk.usage.is_some() {
            // Some servers repeat (cumulative) usage on every chunk: the last one wins.
            self.usage = chunk.usage;
        }
        let mut text: Option<String> = None;
        // n = 1: every choice is choice 0, whatever its index says.
        for choice in chunk.choices.into_iter().flatten() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(content) = delta.content.filter(|c| !c.is_empty()) {
                self.progressed = true;
                text.get_or_insert_with(String::new).push_str(&content);
            }
            for fragment in delta.tool_calls.into_iter().flatten() {
                self.progressed = true;
                self.add_fragment(fragment);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(FinishReason::parse(&reason));
            }
        }
        text
    }

    fn add_fragment(&mut self, fragment: WireToolCallDelta) {
        let index = fragment.index.unwrap_or(0);
        let id = fragment.id.filter(|id| !id.is_empty());
        let latest = self.calls.iter().rposition(|c| c.index == index);
        // A new id at an index already in use starts a new call: servers that put every
        // parallel call at index 0 tell them apart only by id.
        let position = match (latest, &id) {
            (Some(p), Some(id)) if !self.calls[p].id.is_empty() && self.calls[p].id != *id => None,
            (found, _) => found,
        };
        let position = position.unwrap_or_else(|| {
            self.calls.push(PartialCall {
                index,
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            self.calls.len() - 1
        });
        let call = &mut self.calls[position];
        if let Some(id) = id
            && call.id.is_empty()
        {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let Some(name) = function.name
                && call.name.is_empty()
            {
                call.name = name;
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    pub(super) fn tool_calls(&self) -> Vec<ToolCall> {
        self.calls
            .iter()
            .enumerate()
            .map(|(n, c)| ToolCall {
                id: if c.id.is_empty() {
                    format!("call_{n}")
                } else {
                    c.id.clone()
                },
                name: c.name.clone(),
                arguments_json: if c.arguments.trim().is_empty() {
                    "{}".to_string()
                } else {
                    c.arguments.clone()
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn chunk(v: Value) -> WireChunk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fragments_at_a_reused_index_with_new_ids_are_separate_calls() {
        let mut r = ReplyAssembler::default();
        for c in [
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"record_outcome","arguments":""}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"intent\":"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"end_call","arguments":"{}"}}]}}]}),
            json!({"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}),
        ] {
            r.apply(chunk(c));
        }
        let calls = r.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("a", "record_outcome")
        );
        assert_eq!(calls[0].arguments_json, r#"{"intent":"x"}"#);
        assert_eq!(
            (calls[1].id.as_str(), calls[1].name.as_str()),
            ("b", "end_call")
        );
        assert_eq!(
            r.usage,
            Some(TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 4
            })
        );
    }
}
