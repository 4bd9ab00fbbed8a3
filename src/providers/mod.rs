//! Real clients of the external services, one file per system. Each has a configurable base
//! URL, a timeout on every call, and typed errors; none knows whether it talks to the real
//! service or to an emulator.

pub mod deepgram;
pub mod elevenlabs;
pub mod exotel;
pub mod openai;
