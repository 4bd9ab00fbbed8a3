//! Transcript turns: written (or rewritten when a barge-in cuts an agent turn) and read per call.
//!
//! The trait, and the SQL both backends share for it (`impl_turn_store!`, expanded by
//! `impl_store!` into each backend; see `sql.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StoreResult, TranscriptTurn};

/// Transcript turns. A supertrait of [`Store`](super::Store).
#[async_trait]
pub trait TurnStore: Send + Sync {
    /// Writes (or rewrites, e.g. when an agent turn is cut by a barge-in) one transcript turn.
    async fn add_turn(&self, turn: &TranscriptTurn, now: DateTime<Utc>) -> StoreResult<()>;
    async fn turns_of_call(&self, call_id: i64) -> StoreResult<Vec<TranscriptTurn>>;
}

/// Expands `impl TurnStore for $store` over `$db`.
macro_rules! impl_turn_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::TurnStore for $store {
            async fn add_turn(
                &self,
                t: &$crate::store::TranscriptTurn,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO transcript_turns (call_id, seq, speaker, text, started_ms, ended_ms, \
                     interrupted, stt_ms, llm_first_token_ms, tts_first_byte_ms, voice_to_voice_ms, \
                     added_ms, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
                     ON CONFLICT (call_id, seq) DO UPDATE SET text = excluded.text, \
                     ended_ms = excluded.ended_ms, interrupted = excluded.interrupted",
                )
                .bind(t.call_id)
                .bind(t.seq)
                .bind(&t.speaker)
                .bind(&t.text)
                .bind(t.started_ms)
                .bind(t.ended_ms)
                .bind(t.interrupted)
                .bind(t.stt_ms)
                .bind(t.llm_first_token_ms)
                .bind(t.tts_first_byte_ms)
                .bind(t.voice_to_voice_ms)
                .bind(t.added_ms)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn turns_of_call(&self, call_id: i64) -> $crate::store::StoreResult<Vec<$crate::store::TranscriptTurn>> {
                Ok(sqlx::query_as::<$db, $crate::store::TranscriptTurn>(
                    "SELECT call_id, seq, speaker, text, started_ms, ended_ms, interrupted, stt_ms, \
                     llm_first_token_ms, tts_first_byte_ms, voice_to_voice_ms, added_ms \
                     FROM transcript_turns WHERE call_id = $1 ORDER BY seq",
                )
                .bind(call_id)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
