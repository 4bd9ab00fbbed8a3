//! The ports a live call speaks to: speech-to-text ([`stt`]), the chat model ([`llm`]),
//! text-to-speech ([`tts`]), and the
//! words they share with the metrics ([`kinds`]). The pipeline (`media::call`) knows only these;
//! each vendor under `providers/` implements them, so a vendor's quirk is fixed in its own folder
//! and a new vendor is a folder plus a configuration value.

pub mod kinds;
pub mod llm;
pub mod stt;
pub mod tts;

pub use kinds::{ErrorKind, Provider, ReconnectKind};
