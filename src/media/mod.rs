//! The live call's audio path: the `/media` WebSocket (`ws.rs`), the per-call pipeline
//! (`call.rs`: STT → turn-taking → LLM → phrases → TTS → carrier), the carrier socket's two
//! halves owned by the call task (`link.rs`), outbound playout, and the ordered writer that
//! persists each turn as it happens.

pub mod call;
pub mod link;
pub mod playout;
pub mod writer;
pub mod ws;
