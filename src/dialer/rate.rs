//! One request rate per carrier account, shared by every instance (`DIAL_RATE_PER_SEC`).
//!
//! The carrier counts an account's requests, not an instance's (Exotel: 200 a minute), so N
//! instances with a pacer each would send N times the rate and get 429s. The slots live in a
//! [`RateBucket`](crate::store::bucket) every instance reads: Redis when `REDIS_URL` is set,
//! else the PostgreSQL row of the account, else (SQLite, one instance) memory. A 429's
//! `Retry-After` becomes the bucket's hold, so every instance stops until it passes.
//!
//! The dialer reserves slots before claiming leads, sends each request at its slot, and gives
//! back what it could not use. Slots are `(1 s + GUARD) / rate` apart: any `rate` consecutive
//! requests then span at least 1.1 s at our end, so a request that leaves up to 100 ms late (a
//! busy process, a slow connection, instance clocks a little apart) still does not put
//! `rate + 1` of them into one second at the carrier's.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::Store;
use crate::store::bucket::{BucketResult, MemoryBucket, RateBucket, SlotRequest, Slots};

/// Slack added to each second's worth of slots, for requests that leave late.
pub const GUARD: Duration = Duration::from_millis(100);

enum Home {
    Own(Arc<dyn RateBucket>),
    /// The store's own bucket (PostgreSQL).
    Store(Arc<dyn Store>),
}

/// The account's shared request slots.
pub struct DialRate {
    home: Home,
    key: String,
    /// Microseconds between two slots.
    interval: i64,
}

/// Slots reserved by one caller: `count` of them from `first`, `interval` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    slots: Slots,
    interval: i64,
}

impl Reservation {
    pub fn count(&self) -> u32 {
        self.slots.count
    }

    /// When the `i`-th request may be sent.
    pub fn slot(&self, i: u32) -> DateTime<Utc> {
        from_micros(self.slots.first + i as i64 * self.interval)
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl DialRate {
    /// `redis`: the shared bucket when `REDIS_URL` is set. `key` names the carrier account.
    pub fn new(
        store: Arc<dyn Store>,
        redis: Option<Arc<dyn RateBucket>>,
        key: String,
        rate_per_sec: f64,
    ) -> Self {
        let home = match redis {
            Some(r) => Home::Own(r),
            None if store.rate_bucket().is_some() => Home::Store(store),
            None => Home::Own(Arc::new(MemoryBucket::default())),
        };
        Self::at(home, key, rate_per_sec)
    }

    /// A bucket of this process only (one instance; tests).
    pub fn in_memory(key: String, rate_per_sec: f64) -> Self {
        Self::at(
            Home::Own(Arc::new(MemoryBucket::default())),
            key,
            rate_per_sec,
        )
    }

    fn at(home: Home, key: String, rate_per_sec: f64) -> Self {
        let second = (Duration::from_secs(1) + GUARD).as_micros() as f64;
        Self {
            home,
            key,
            interval: (second / rate_per_sec).ceil().max(1.0) as i64,
        }
    }

    /// The account's key: the carrier's API base and account id (one limit per account).
    pub fn account_key(base_url: &str, account_sid: Option<&str>) -> String {
        format!("exotel:{base_url}:{}", account_sid.unwrap_or("-"))
    }

    fn bucket(&self) -> &dyn RateBucket {
        match &self.home {
            Home::Own(b) => b.as_ref(),
            Home::Store(s) => s.rate_bucket().expect("checked in new"),
        }
    }

    /// `memory`, `postgres` or `redis`.
    pub fn kind(&self) -> &'static str {
        self.bucket().kind()
    }

    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval as u64)
    }

    /// The most slots one reservation over `horizon` can hold.
    pub fn per_horizon(&self, horizon: Duration) -> u32 {
        (horizon.as_micros() as u64)
            .div_ceil(self.interval as u64)
            .clamp(1, u32::MAX as u64) as u32
    }

    /// Up to `want` slots in `[now, now + horizon)`.
    pub async fn reserve(
        &self,
        now: DateTime<Utc>,
        want: u32,
        horizon: Duration,
    ) -> BucketResult<Reservation> {
        let request = SlotRequest {
            now: micros(now),
            want,
            horizon: horizon.as_micros() as i64,
            interval: self.interval,
        };
        let slots = self.bucket().reserve(&self.key, &request).await?;
        Ok(Reservation {
            slots,
            interval: self.interval,
        })
    }

    /// Returns the slots after the first `used`, if nobody reserved after them.
    pub async fn give_back(&self, r: &Reservation, used: u32) -> BucketResult<bool> {
        let unused = r.count().saturating_sub(used);
        if unused == 0 {
            return Ok(false);
        }
        self.bucket()
            .give_back(&self.key, &r.slots, unused, self.interval)
            .await
    }

    /// No request from any instance before `until` (the carrier's `Retry-After`).
    pub async fn hold(&self, until: DateTime<Utc>) -> BucketResult<()> {
        self.bucket().hold(&self.key, micros(until)).await
    }

    /// The hold in force at `at`, if any.
    pub async fn held_at(&self, at: DateTime<Utc>) -> BucketResult<Option<DateTime<Utc>>> {
        let hold = self.bucket().held_until(&self.key).await?;
        Ok((hold > micros(at)).then(|| from_micros(hold)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_per_second_are_550_ms_apart_and_a_hold_stops_them() {
        let rate = DialRate::in_memory("exotel:test".into(), 2.0);
        assert_eq!(rate.kind(), "memory");
        assert_eq!(rate.interval(), Duration::from_millis(550));
        let now = Utc::now();
        let tick = Duration::from_secs(1);
        let r = rate
            .reserve(now, rate.per_horizon(tick), tick)
            .await
            .unwrap();
        assert_eq!(r.count(), 2);
        assert_eq!(r.slot(1) - r.slot(0), chrono::Duration::milliseconds(550));
        // One used: the second comes back and is the next caller's.
        assert!(rate.give_back(&r, 1).await.unwrap());
        let again = rate.reserve(now, 1, tick).await.unwrap();
        assert_eq!(again.slot(0), r.slot(1));

        let now = from_micros(micros(now));
        let until = now + chrono::Duration::seconds(30);
        rate.hold(until).await.unwrap();
        assert_eq!(rate.held_at(now).await.unwrap(), Some(until));
        let later = now + chrono::Duration::seconds(10);
        assert_eq!(rate.reserve(later, 2, tick).await.unwrap().count(), 0);
        assert_eq!(rate.held_at(until).await.unwrap(), None);
    }
}
