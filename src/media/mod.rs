//! The live call's audio path: the `/media` WebSocket (`ws.rs`), the per-call pipeline
//! (`call.rs`: STT → turn-taking → LLM → phrases → TTS → carrier), outbound playout, and the
//! ordered writer that persists each turn as it happens.

pub mod call;
pub mod playout;
pub mod writer;
pub mod ws;
