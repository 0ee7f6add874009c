//! The Lua scripts the shared limiter runs in Redis, the Redis keys of one key name, and the
//! conversions between dollars and the integer nanodollars Redis keeps.

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::store::{self, DAY, MINUTE};

/// Admission. KEYS: seeded marker, minute count, day count, leases, holds, spent, month spent.
/// ARGV: now (ms), lease expiry (ms), lease id, rpm, daily, concurrent, credits (-1: none),
/// budget (-1: none), hold, minute ttl, day ttl, lease set ttl (ms).
/// Returns {status, minute count, in flight, amount}: status 0 admitted (counts include this
/// request), 1 balance (amount: balance), 2 budget (amount: spent or held this month), 3 daily,
/// 4 rpm, 5 concurrency, -1 the counters were lost and must be seeded first (nothing taken).
pub(super) const ADMIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0, 0} end
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  redis.call('HDEL', KEYS[5], unpack(expired))
end
local in_flight = redis.call('ZCARD', KEYS[4])
local held = 0
for _, v in ipairs(redis.call('HVALS', KEYS[5])) do held = held + tonumber(v) end
local minute = tonumber(redis.call('GET', KEYS[2]) or '0')
local day = tonumber(redis.call('GET', KEYS[3]) or '0')
local spent = tonumber(redis.call('GET', KEYS[6]) or '0')
local month = tonumber(redis.call('GET', KEYS[7]) or '0')
local credits = tonumber(ARGV[7])
local budget = tonumber(ARGV[8])
local hold = tonumber(ARGV[9])
if credits >= 0 and hold > credits - spent - held then return {1, minute, in_flight, credits - spent - held} end
if budget >= 0 and month + held + hold > budget then return {2, minute, in_flight, month + held} end
if day >= tonumber(ARGV[5]) then return {3, minute, in_flight, 0} end
if minute >= tonumber(ARGV[4]) then return {4, minute, in_flight, 0} end
if in_flight >= tonumber(ARGV[6]) then return {5, minute, in_flight, 0} end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[10])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[11])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[12])
if hold > 0 then
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[9])
  redis.call('PEXPIRE', KEYS[5], ARGV[12])
end
return {0, minute + 1, in_flight + 1, 0}
";

/// The headers' view without admitting. KEYS: minute count, leases. ARGV: now (ms).
pub(super) const PEEK: &str = r"
local minute = tonumber(redis.call('GET', KEYS[1]) or '0')
local in_flight = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
return {minute, in_flight}
";

/// Ends a lease and books its cost. KEYS: leases, holds, spent, month spent. ARGV: lease id,
/// cost, month ttl.
pub(super) const RELEASE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local cost = tonumber(ARGV[2])
if cost > 0 then
  redis.call('INCRBY', KEYS[3], ARGV[2])
  redis.call('INCRBY', KEYS[4], ARGV[2])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
return 1
";

/// Seeds counters lost with Redis's data from the ledger, unless another instance already did.
/// KEYS: seeded marker, minute count, day count, spent, month spent. ARGV: minute count, day
/// count, spent, month spent, minute ttl, day ttl, month ttl.
pub(super) const SEED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[6])
redis.call('SET', KEYS[4], ARGV[3])
redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[7])
redis.call('SET', KEYS[1], '1')
return 1
";

/// The Redis keys of one key name at one moment.
pub(super) struct Names {
    pub(super) seeded: String,
    pub(super) minute: String,
    pub(super) day: String,
    pub(super) leases: String,
    pub(super) holds: String,
    pub(super) spent: String,
    pub(super) month: String,
}

impl Names {
    pub(super) fn new(key: &str, now: Timestamp) -> Self {
        let secs = now.as_second();
        let base = format!("izzi:{{{key}}}");
        Self {
            seeded: format!("{base}:seeded"),
            minute: format!("{base}:minute:{}", secs.div_euclid(MINUTE)),
            day: format!("{base}:day:{}", secs.div_euclid(DAY)),
            leases: format!("{base}:leases"),
            holds: format!("{base}:holds"),
            spent: format!("{base}:spent"),
            month: format!("{base}:month:{}", store::month(now)),
        }
    }
}

/// Nanodollars, rounded up (holds: never hold too little).
pub(super) fn nanos_up(usd: Decimal) -> i64 {
    (usd * Decimal::from(1_000_000_000))
        .ceil()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// Nanodollars, rounded down (credits and budgets: never allow too much).
pub(super) fn nanos_down(usd: Decimal) -> i64 {
    (usd * Decimal::from(1_000_000_000))
        .floor()
        .try_into()
        .unwrap_or(i64::MAX)
}

pub(super) fn usd(nanos: i64) -> Decimal {
    Decimal::new(nanos, 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanodollars_round_toward_safety() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(nanos_up(d("0.0000000001")), 1);
        assert_eq!(nanos_down(d("0.0000000019")), 1);
        assert_eq!(nanos_up(d("1.5")), 1_500_000_000);
        assert_eq!(usd(1_500_000_000), d("1.5"));
    }

    #[test]
    fn every_key_of_a_name_shares_its_hash_tag() {
        let at: Timestamp = "2026-03-30T00:19:15Z".parse().unwrap();
        let names = Names::new("ci", at);
        for key in [
            &names.seeded,
            &names.minute,
            &names.day,
            &names.leases,
            &names.holds,
            &names.spent,
            &names.month,
        ] {
            assert!(key.starts_with("izzi:{ci}:"), "{key}");
        }
        assert!(names.month.ends_with(":2026-03"));
        assert_eq!(
            names.minute,
            format!("izzi:{{ci}}:minute:{}", at.as_second() / 60)
        );
    }
}
