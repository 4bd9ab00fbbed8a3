//! Rate buckets shared by every instance: the carrier account's request slots.
//!
//! A bucket hands out *slots*: instants, `interval` apart, at which one request may be sent
//! (the "generic cell rate algorithm": the state is the next free slot, `next`, plus `hold`,
//! an instant before which nothing may be sent at all, set from a carrier's `Retry-After`).
//! A reservation takes up to `want` slots in `[now, now + horizon)`, starting at
//! `max(now, next, hold)`, and moves `next` past them; slots left unused are given back only
//! when nobody reserved after them (a compare-and-set on `next`), so they can never overlap
//! another reservation.
//!
//! Three homes for the state, one arithmetic ([`reserve_in`]): in memory (SQLite: one
//! instance), one PostgreSQL row per account updated by one statement (`postgres.rs`), or one
//! Redis hash per account updated by a Lua script (when `REDIS_URL` is set). Instants are
//! microseconds since the epoch on the service clock: instances are expected to be NTP-synced
//! (their skew eats into the guard the dialer leaves between slots).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("rate bucket (database): {0}")]
    Database(#[from] sqlx::Error),
    #[error("rate bucket (redis): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("rate bucket: redis did not answer within {0:?}")]
    Timeout(Duration),
}

pub type BucketResult<T> = Result<T, BucketError>;

/// What a reservation asks for. Times in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRequest {
    pub now: i64,
    pub want: u32,
    pub horizon: i64,
    pub interval: i64,
}

/// Slots `first`, `first + interval`, … (`count` of them); `seq` numbers the reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub first: i64,
    pub count: u32,
    pub seq: i64,
}

impl Slots {
    /// Where the reservation ends: the bucket's `next` right after it.
    pub fn end(&self, interval: i64) -> i64 {
        self.first + self.count as i64 * interval
    }
}

/// The longest horizon any instance reserves over (`DIAL_TICK_MS` is at most a minute), in µs.
pub const MAX_AHEAD: i64 = 60_000_000;

/// One account's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketState {
    pub next: i64,
    pub hold: i64,
    /// Counts reservations that took slots: a give-back names the one it belongs to, so it
    /// cannot return a later reservation's slots that happen to end at the same instant.
    pub seq: i64,
}

/// The reservation arithmetic; the SQL in `postgres.rs` and the Lua script below repeat it.
///
/// A `next` further ahead than any reservation could have put it ([`MAX_AHEAD`], the longest
/// horizon, plus `horizon + interval` past `now`) means the clock went back (a test, or a
/// corrected clock): it is ignored rather than blocking the account until the clock catches
/// up. `hold` is never ignored.
pub fn reserve_in(state: &mut BucketState, r: &SlotRequest) -> Slots {
    let next = if state.next > r.now + MAX_AHEAD + r.horizon + r.interval {
        r.now
    } else {
        state.next
    };
    let first = r.now.max(next).max(state.hold);
    let stop = r.now + r.horizon;
    let count = if first < stop {
        // Slots in [first, stop): ceil((stop - first) / interval).
        let fit = (stop - first + r.interval - 1) / r.interval;
        fit.min(r.want as i64) as u32
    } else {
        0
    };
    if count > 0 {
        state.seq += 1;
        state.next = first + count as i64 * r.interval;
    }
    Slots {
        first,
        count,
        seq: state.seq,
    }
}

/// Gives back the last `unused` slots of `slots`, if it is still the latest reservation.
pub fn give_back_in(state: &mut BucketState, slots: &Slots, unused: u32, interval: i64) -> bool {
    if unused == 0 || slots.count == 0 || state.seq != slots.seq {
        return false;
    }
    state.next -= unused.min(slots.count) as i64 * interval;
    true
}

/// A store of rate buckets, one per key (a carrier account).
#[async_trait]
pub trait RateBucket: Send + Sync {
    /// `memory`, `postgres` or `redis`.
    fn kind(&self) -> &'static str;
    async fn reserve(&self, key: &str, request: &SlotRequest) -> BucketResult<Slots>;
    /// See [`give_back_in`]; `false` when someone reserved since (the slots stay unused).
    async fn give_back(
        &self,
        key: &str,
        slots: &Slots,
        unused: u32,
        interval: i64,
    ) -> BucketResult<bool>;
    /// Nothing may be sent before `until` (kept if a later hold is already there).
    async fn hold(&self, key: &str, until: i64) -> BucketResult<()>;
    /// The current hold (0 when none was ever set).
    async fn held_until(&self, key: &str) -> BucketResult<i64>;
}

/// Buckets in this process: enough for one instance (SQLite).
#[derive(Debug, Default)]
pub struct MemoryBucket {
    states: Mutex<HashMap<String, BucketState>>,
}

impl MemoryBucket {
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut BucketState) -> T) -> T {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        f(states.entry(key.to_string()).or_default())
    }
}

#[async_trait]
impl RateBucket for MemoryBucket {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn reserve(&self, key: &str, request: &SlotRequest) -> BucketResult<Slots> {
        Ok(self.with(key, |s| reserve_in(s, request)))
    }

    async fn give_back(
        &self,
        key: &str,
        slots: &Slots,
        unused: u32,
        interval: i64,
    ) -> BucketResult<bool> {
        Ok(self.with(key, |s| give_back_in(s, slots, unused, interval)))
    }

    async fn hold(&self, key: &str, until: i64) -> BucketResult<()> {
        self.with(key, |s| s.hold = s.hold.max(until));
        Ok(())
    }

    async fn held_until(&self, key: &str) -> BucketResult<i64> {
        Ok(self.with(key, |s| s.hold))
    }
}

/// Buckets in Redis: one hash per key (`next`, `hold`), changed only by Lua scripts, which
/// Redis runs atomically. Lua numbers are doubles: microsecond instants (about 2^51) are exact.
#[derive(Clone)]
pub struct RedisBucket {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// [`reserve_in`] in Lua. KEYS[1]: the hash; ARGV: now, want, horizon, interval, MAX_AHEAD.
const RESERVE_LUA: &str = r"
local now, want, horizon, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local next = tonumber(redis.call('HGET', KEYS[1], 'next') or 0)
if next > now + tonumber(ARGV[5]) + horizon + interval then next = now end
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold') or 0)
local first = math.max(now, next, hold)
local stop = now + horizon
local count = 0
if first < stop then count = math.min(want, math.floor((stop - first + interval - 1) / interval)) end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or 0)
if count > 0 then
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('HSET', KEYS[1], 'next', string.format('%d', first + count * interval))
end
redis.call('PEXPIRE', KEYS[1], math.max(60000, math.floor((math.max(hold, first) - now) / 1000) + 60000))
return {string.format('%d', first), count, seq}
";

/// [`give_back_in`] in Lua. ARGV: seq, unused (already at most the count), interval.
const GIVE_BACK_LUA: &str = r"
local seq, unused, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if unused > 0 and tonumber(redis.call('HGET', KEYS[1], 'seq') or -1) == seq then
  local next = tonumber(redis.call('HGET', KEYS[1], 'next'))
  redis.call('HSET', KEYS[1], 'next', string.format('%d', next - unused * interval))
  return 1
end
return 0
";

/// ARGV: until (µs), ttl (ms).
const HOLD_LUA: &str = r"
local hold = tonumber(ARGV[1])
if hold > tonumber(redis.call('HGET', KEYS[1], 'hold') or 0) then
  redis.call('HSET', KEYS[1], 'hold', string.format('%d', hold))
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
";

impl RedisBucket {
    /// Connects within a few seconds or fails. `prefix` namespaces the keys.
    pub async fn connect(url: &str, prefix: &str) -> BucketResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| BucketError::Timeout(REDIS_TIMEOUT * 2))??;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:rate:{key}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &str,
        key: &str,
        args: &[i64],
    ) -> BucketResult<T> {
        let script = redis::Script::new(script);
        let mut invocation = script.key(self.key(key));
        for a in args {
            invocation.arg(*a);
        }
        let mut conn = self.conn.clone();
        tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| BucketError::Timeout(REDIS_TIMEOUT))?
            .map_err(BucketError::from)
    }
}

#[async_trait]
impl RateBucket for RedisBucket {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn reserve(&self, key: &str, r: &SlotRequest) -> BucketResult<Slots> {
        let (first, count, seq): (String, u32, i64) = self
            .run(
                RESERVE_LUA,
                key,
                &[r.now, r.want as i64, r.horizon, r.interval, MAX_AHEAD],
            )
            .await?;
        let first = first.parse().map_err(|_| {
            BucketError::Redis(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "slot is not an integer",
            )))
        })?;
        Ok(Slots { first, count, seq })
    }

    async fn give_back(
        &self,
        key: &str,
        slots: &Slots,
        unused: u32,
        interval: i64,
    ) -> BucketResult<bool> {
        if unused == 0 || slots.count == 0 {
            return Ok(false);
        }
        let unused = unused.min(slots.count) as i64;
        let done: i64 = self
            .run(GIVE_BACK_LUA, key, &[slots.seq, unused, interval])
            .await?;
        Ok(done == 1)
    }

    async fn hold(&self, key: &str, until: i64) -> BucketResult<()> {
        let now = chrono::Utc::now().timestamp_micros();
        let ttl_ms = ((until - now) / 1000).max(0) + 60_000;
        let _: i64 = self.run(HOLD_LUA, key, &[until, ttl_ms]).await?;
        Ok(())
    }

    async fn held_until(&self, key: &str) -> BucketResult<i64> {
        let mut conn = self.conn.clone();
        let hold: Option<i64> = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("HGET")
                .arg(self.key(key))
                .arg("hold")
                .query_async(&mut conn),
        )
        .await
        .map_err(|_| BucketError::Timeout(REDIS_TIMEOUT))??;
        Ok(hold.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000;

    fn req(now_ms: i64, want: u32) -> SlotRequest {
        SlotRequest {
            now: now_ms * MS,
            want,
            horizon: 1_000 * MS,
            interval: 550 * MS,
        }
    }

    #[test]
    fn slots_are_an_interval_apart_and_never_overlap_across_reservations() {
        let mut s = BucketState::default();
        let first = reserve_in(&mut s, &req(0, 5));
        assert_eq!((first.first, first.count), (0, 2));
        // A second instance asking at once gets nothing in this horizon…
        assert_eq!(reserve_in(&mut s, &req(10, 5)).count, 0);
        // …and its next slot after the first reservation's, one interval on.
        let later = reserve_in(&mut s, &req(500, 5));
        assert_eq!((later.first, later.count), (1_100 * MS, 1));
        assert_eq!(s.next, 1_650 * MS);
    }

    #[test]
    fn unused_slots_come_back_only_to_the_latest_reservation() {
        let mut s = BucketState::default();
        let a = reserve_in(&mut s, &req(0, 2));
        assert!(give_back_in(&mut s, &a, 1, 550 * MS));
        assert_eq!(s.next, 550 * MS);
        let b = reserve_in(&mut s, &req(100, 1));
        assert_eq!(b.first, 550 * MS);
        // `a` is no longer the latest, though `b` ends where `a` did: giving back would hand
        // out `b`'s slot twice.
        assert_eq!(b.end(550 * MS), 1_100 * MS);
        assert!(!give_back_in(&mut s, &a, 1, 550 * MS));
        assert_eq!(s.next, 1_100 * MS);
    }

    #[test]
    fn a_hold_stops_every_reservation_until_it_passes() {
        let mut s = BucketState {
            hold: 30_000 * MS,
            ..BucketState::default()
        };
        assert_eq!(reserve_in(&mut s, &req(10_000, 2)).count, 0);
        let after = reserve_in(&mut s, &req(30_000, 2));
        assert_eq!((after.first, after.count), (30_000 * MS, 2));
    }

    #[test]
    fn a_clock_that_went_back_does_not_block_the_account() {
        let mut s = BucketState::default();
        reserve_in(&mut s, &req(3_600_000, 2));
        let earlier = reserve_in(&mut s, &req(0, 2));
        assert_eq!((earlier.first, earlier.count), (0, 2));
    }
}
