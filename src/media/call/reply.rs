//! Replying: the model answers a finished caller turn. Its tokens are cut into phrases and
//! spoken as they stream; every tool call of a reply runs before the model is asked again
//! (once, and only if the reply said nothing), so two tool calls never make two replies.
//!
//! The model's stream is bounded by its client (a first-token deadline, then a stall timeout
//! between chunks). A stream that stalls after the reply has started is taken as the end of the
//! reply: what was said is kept and spoken, and the stall is counted.

use tokio::time::Instant;

use crate::agent::tools::{self, Action};
use crate::voice::llm::{ChatRequest, ChatStream, LlmError, LlmEvent, Message, ToolCall};

use super::Call;
use super::Ending;
use crate::media::writer::Write;

impl Call {
    /// Starts an agent turn answered by the model.
    pub(super) async fn respond(&mut self, caller_done_at: Option<Instant>, stt_ms: Option<i32>) {
        let Some(mut turn) = self.start_turn(caller_done_at) else {
            return;
        };
        turn.latency.stt_ms = stt_ms;
        turn.latency.llm_started = Some(Instant::now());
        self.agent = Some(turn);
        let stream = self.ask_model();
        if let Some(t) = self.agent.as_mut() {
            t.llm = Some(stream);
        }
    }

    /// Asks the model for the current turn's reply (its request traced inside the turn).
    fn ask_model(&self) -> ChatStream {
        let request = ChatRequest {
            messages: self.history.clone(),
            tools: tools::specs(&self.setup.campaign.spec.qualification_fields),
            temperature: Some(0.3),
            max_tokens: Some(200),
            response_format: None,
        };
        let deadline = Instant::now() + self.tuning.first_token_deadline;
        let span = self
            .agent
            .as_ref()
            .map_or_else(tracing::Span::current, |t| t.span.clone());
        span.in_scope(|| self.llm.stream_reply(&request, deadline))
    }

    pub(super) async fn on_llm(&mut self, ev: Option<Result<LlmEvent, LlmError>>) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        let first_token = |t: &mut super::speak::AgentTurn| {
            let started = t.latency.llm_started.unwrap_or_else(Instant::now);
            t.latency.llm_ttft.get_or_insert(started.elapsed());
        };
        match ev {
            Some(Ok(LlmEvent::Token(t))) => {
                first_token(turn);
                for p in turn.splitter.push(&t) {
                    self.send_phrase(&p);
                }
            }
            Some(Ok(LlmEvent::ToolCalls(calls))) => {
                first_token(turn);
                turn.tool_calls.extend(calls);
            }
            Some(Ok(LlmEvent::Usage(u))) => {
                self.usage.llm_prompt_tokens += u.prompt_tokens;
                self.usage.llm_completion_tokens += u.completion_tokens;
            }
            Some(Ok(LlmEvent::Done { .. })) | None => self.model_reply_done().await,
            Some(Err(e))
                if turn.latency.llm_ttft.is_some()
                    && (!turn.phrases.is_empty() || turn.splitter.has_pending()) =>
            {
                // The reply had started: keep and speak what was said.
                if matches!(e, LlmError::Timeout { .. }) {
                    self.stalled(self.llm.provider(), "the reply stream stalled");
                } else {
                    tracing::warn!(error = %e, "the reply stream failed: keeping what was said");
                }
                self.model_reply_done().await;
            }
            Some(Err(e)) => self.model_failed(e).await,
        }
    }

    /// The model's reply is complete: speak the rest, run every tool call, ask once more only
    /// if the reply said nothing.
    async fn model_reply_done(&mut self) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        turn.llm = None;
        if let Some(rest) = turn.splitter.finish() {
            self.send_phrase(&rest);
        }
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        let calls = std::mem::take(&mut turn.tool_calls);
        let said = turn.text().trim().to_string();
        // A model saying the same thing again and again is stuck: end politely.
        if !said.is_empty() && said == self.last_reply {
            self.repeats += 1;
        } else if !said.is_empty() {
            self.repeats = 0;
            self.last_reply = said.clone();
        }
        if self.repeats >= 2 && self.ending.is_none() {
            tracing::warn!(
                call_id = self.setup.call_id,
                "the model keeps repeating itself: ending the call"
            );
            self.ending = Some(Ending::AgentHungUp);
            if let Some(t) = self.agent.as_mut() {
                t.end_after = true;
            }
        }
        if calls.is_empty() {
            if !said.is_empty() {
                self.history.push(Message::assistant(said));
            }
            self.end_text().await;
            return;
        }
        self.history.push(Message::assistant_tool_calls(
            (!said.is_empty()).then_some(said.clone()),
            calls.clone(),
        ));
        for call in &calls {
            let result = self.run_tool(call);
            self.history
                .push(Message::tool_result(call.id.clone(), result));
        }
        let ask_again = said.is_empty() && self.agent.as_ref().is_some_and(|t| t.follow_ups == 0);
        if ask_again {
            let stream = self.ask_model();
            if let Some(t) = self.agent.as_mut() {
                t.follow_ups += 1;
                t.latency.llm_started = Some(Instant::now());
                t.llm = Some(stream);
            }
        } else {
            self.end_text().await;
        }
    }

    fn run_tool(&mut self, call: &ToolCall) -> String {
        let now = chrono::Utc::now();
        match tools::parse(call) {
            Action::EndCall { reason } => {
                tracing::info!(call_id = self.setup.call_id, %reason, "agent ends the call");
                self.ending.get_or_insert(Ending::AgentHungUp);
                if let Some(t) = self.agent.as_mut() {
                    t.end_after = true;
                }
                "ok: the call will end after your last sentence".into()
            }
            Action::RecordOutcome {
                intent,
                notes,
                qualification,
            } => {
                self.writer.send(Write::Outcome {
                    intent: intent.clone(),
                    qualification,
                    summary: notes,
                    at: now,
                });
                format!("recorded: {intent}")
            }
            Action::ScheduleCallback { at } => {
                if let Some(lead) = &self.setup.lead {
                    self.writer.send(Write::Callback {
                        lead_id: lead.id,
                        at,
                        now,
                    });
                }
                format!("callback scheduled for {}", at.to_rfc3339())
            }
            Action::Invalid { error } => format!("error: {error}"),
        }
    }

    async fn model_failed(&mut self, e: LlmError) {
        tracing::warn!(error = %e, "LLM turn failed");
        self.llm_failures += 1;
        if self.llm_failures >= 2 || e.is_permanent() {
            let bye = self.lines.trouble_goodbye;
            self.say(bye, Some(Ending::ProviderFailed(e.to_string())))
                .await;
            return;
        }
        // A short filler instead of silence, spoken at once (a flush keeps the turn's context
        // open), then one more try whose answer follows it in the same turn.
        let filler = format!("{} ", self.lines.one_moment);
        self.send_phrase(&filler);
        if let Err(e) = self.tts.flush() {
            tracing::debug!(error = %e, "TTS flush refused");
        }
        let stream = self.ask_model();
        if let Some(t) = self.agent.as_mut() {
            t.latency.llm_started = Some(Instant::now());
            t.llm = Some(stream);
        }
    }
}
