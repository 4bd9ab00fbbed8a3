//! The live call's audio path: the `/media` WebSocket, outbound playout, and the per-call
//! pipeline (STT → turn-taking → LLM → phrases → TTS → carrier).

pub mod playout;
