//! What is sent: the conversation's [`Message`]s, the [`ToolSpec`]s offered, [`ResponseFormat`]
//! for structured output, and the request body they become.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Inner;
use super::error::LlmError;

/// One message of the conversation, serialised exactly as the API expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    /// A reply; `tool_calls` is present when the model called tools (content may then be absent).
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, answering the assistant message that made it.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Assistant {
            content: Some(content.into()),
            tool_calls: Vec::new(),
        }
    }

    /// An assistant turn that called tools, with the text it said alongside (if any).
    pub fn assistant_tool_calls(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self::Assistant {
            content: content.filter(|c| !c.is_empty()),
            tool_calls,
        }
    }

    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }
}

/// A complete tool call: on the wire `{"id","type":"function","function":{"name","arguments"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireToolCall", from = "WireToolCall")]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: a JSON object, not yet validated.
    pub arguments_json: String,
}

#[derive(Serialize, Deserialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: WireFunction,
}

#[derive(Serialize, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn function_type() -> String {
    "function".into()
}

impl From<ToolCall> for WireToolCall {
    fn from(c: ToolCall) -> Self {
        Self {
            id: c.id,
            kind: function_type(),
            function: WireFunction {
                name: c.name,
                arguments: c.arguments_json,
            },
        }
    }
}

impl From<WireToolCall> for ToolCall {
    fn from(c: WireToolCall) -> Self {
        Self {
            id: c.id,
            name: c.function.name,
            arguments_json: c.function.arguments,
        }
    }
}

/// A tool the model may call; `parameters` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl Serialize for ToolSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
        .serialize(s)
    }
}

/// Structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object; the API refuses it unless a message mentions "json".
    JsonObject,
    /// An object matching `schema`.
    JsonSchema {
        name: String,
        schema: Value,
        strict: bool,
    },
}

impl Serialize for ResponseFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::JsonObject => serde_json::json!({"type": "json_object"}),
            Self::JsonSchema {
                name,
                schema,
                strict,
            } => serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict},
            }),
        }
        .serialize(s)
    }
}

/// What to ask; the model comes from the client's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub response_format: Option<ResponseFormat>,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: &'a [ToolSpec],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a ResponseFormat>,
}

impl Inner {
    pub(super) fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, LlmError> {
        let wire = WireRequest {
            model: &self.model,
            messages: &request.messages,
            stream,
            stream_options: stream.then(|| serde_json::json!({"include_usage": true})),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            tools: &request.tools,
            tool_choice: (!request.tools.is_empty()).then_some("auto"),
            response_format: request.response_format.as_ref(),
        };
        serde_json::to_vec(&wire)
            .map(Bytes::from)
            .map_err(|e| LlmError::protocol(format!("serialising the request: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::openai::OpenAiClient;
    use serde_json::json;

    #[test]
    fn messages_serialise_exactly_as_the_api_expects() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "end_call".into(),
            arguments_json: r#"{"reason":"done"}"#.into(),
        };
        let messages = vec![
            Message::system("be brief"),
            Message::assistant_tool_calls(None, vec![call.clone()]),
            Message::tool_result("call_1", "ok"),
            Message::assistant("Bye."),
        ];
        assert_eq!(
            serde_json::to_value(&messages).unwrap(),
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "end_call", "arguments": "{\"reason\":\"done\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                {"role": "assistant", "content": "Bye."},
            ])
        );
        let back: Vec<Message> =
            serde_json::from_value(serde_json::to_value(&messages).unwrap()).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn a_streaming_body_asks_for_usage_and_offers_tools() {
        let client = OpenAiClient::new(reqwest::Client::new(), "http://x/v1/", None, "m");
        let request = ChatRequest {
            messages: vec![Message::user("hi")],
            tools: vec![ToolSpec {
                name: "end_call".into(),
                description: "Hang up".into(),
                parameters: json!({"type": "object"}),
            }],
            ..Default::default()
        };
        let body: Value =
            serde_json::from_slice(&client.inner.body(&request, true).unwrap()).unwrap();
        assert_eq!(client.inner.endpoint, "http://x/v1/chat/completions");
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["tools"][0]["function"]["name"], "end_call");
        let plain: Value =
            serde_json::from_slice(&client.inner.body(&ChatRequest::default(), false).unwrap())
                .unwrap();
        assert!(plain.get("stream_options").is_none() && plain.get("tools").is_none());
    }
}
