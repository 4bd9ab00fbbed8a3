//! The conversation: the language and its fixed lines, the prompt and greeting, the tools the model may call, turn-taking
//! judgements, and cutting streamed text into speakable phrases. No I/O here.

pub mod lines;
pub mod phrases;
pub mod prompt;
pub mod tools;
pub mod turns;
