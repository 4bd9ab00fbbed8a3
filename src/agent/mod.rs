//! The conversation: prompt building, phrase splitting, tools, turn-taking (live-call issue).

pub mod phrases;
