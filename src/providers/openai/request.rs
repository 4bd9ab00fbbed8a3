//! The request body a [`ChatRequest`] becomes on the chat-completions API.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::client::Inner;
use crate::voice::llm::{ChatRequest, LlmError, Message, ResponseFormat, ToolSpec};

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
    use crate::voice::llm::ToolCall;
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
