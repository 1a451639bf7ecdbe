//! The shared backend: the same buckets as in memory, kept in Redis and changed only by Lua
//! scripts, which Redis runs atomically, with the Redis server's clock (`TIME`), so replicas
//! with skewed clocks still agree.

use std::sync::Arc;
use std::time::Duration;

use super::{Ask, Refusal};
use crate::config::security::Tenant;
use crate::redis_link::{RedisLink, RedisStatus};

/// KEYS: requests bucket, tokens bucket, leases (sorted set, score = expiry in ms).
/// ARGV: requests/min, tokens/min, max in flight, tokens asked, lease id, lease ms.
/// Returns {1, 0, "ok"} or {0, retry-after ms, limit}.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ask, lease_ms = tonumber(ARGV[4]), tonumber(ARGV[6])
local function level(key, cap)
  local v = redis.call('HMGET', key, 'level', 'at')
  local l, at = tonumber(v[1]), tonumber(v[2])
  if l == nil then return cap end
  return math.min(cap, l + math.max(0, now - at) * cap / 60000)
end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then return {0, 1000, 'concurrent'} end
end
local rl, tl
if rpm > 0 then
  rl = level(KEYS[1], rpm)
  if rl < 1 then return {0, math.ceil((1 - rl) * 60000 / rpm), 'requests'} end
end
if tpm > 0 then
  tl = level(KEYS[2], tpm)
  local need = math.min(ask, tpm)
  if tl < need then return {0, math.ceil((need - tl) * 60000 / tpm), 'tokens'} end
end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'level', tostring(rl - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[1], 120000)
end
if tpm > 0 then
  redis.call('HSET', KEYS[2], 'level', tostring(tl - ask), 'at', now)
  redis.call('PEXPIRE', KEYS[2], 3600000)
end
if conc > 0 then
  redis.call('ZADD', KEYS[3], now + lease_ms, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], lease_ms + 60000)
end
return {1, 0, 'ok'}
";

/// KEYS: tokens bucket, leases. ARGV: tokens/min, reserved - used, lease id ('' = none).
const SETTLE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm > 0 and delta ~= 0 then
  local v = redis.call('HMGET', KEYS[1], 'level', 'at')
  local l, at = tonumber(v[1]), tonumber(v[2])
  if l == nil then l, at = tpm, now end
  l = math.min(tpm, l + math.max(0, now - at) * tpm / 60000)
  redis.call('HSET', KEYS[1], 'level', tostring(math.min(tpm, l + delta)), 'at', now)
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
";

pub(super) struct RedisLimits {
    link: Arc<RedisLink>,
    prefix: String,
    admit: redis::Script,
    settle: redis::Script,
}

impl RedisLimits {
    pub(super) fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            link: Arc::new(RedisLink::new(url, timeout, "rate limits")?),
            prefix: prefix.to_owned(),
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
        })
    }

    pub(super) fn status(&self) -> RedisStatus {
        self.link.status()
    }

    fn key(&self, tenant: &Tenant, what: &str) -> String {
        // `{tenant}` keeps one tenant's keys in one Redis Cluster slot.
        format!("{}{{{}}}:{what}", self.prefix, tenant.name())
    }

    /// `Ok(Some(lease))` when admitted (the lease id when the in-flight limit applies);
    /// `Ok(None)` when Redis could not be asked and the request is admitted anyway (nothing
    /// was reserved, so settlement charges the tokens used).
    pub(super) async fn admit(
        &self,
        t: &Tenant,
        ask: Ask,
    ) -> Result<Option<Option<String>>, (Refusal, Duration)> {
        let lease = (t.max_concurrent() > 0).then(|| uuid::Uuid::new_v4().to_string());
        let mut inv = self.admit.prepare_invoke();
        inv.key(self.key(t, "requests"))
            .key(self.key(t, "tokens"))
            .key(self.key(t, "leases"))
            .arg(t.requests_per_minute())
            .arg(t.tokens_per_minute())
            .arg(t.max_concurrent())
            .arg(ask.tokens)
            .arg(lease.as_deref().unwrap_or(""))
            .arg(u64::try_from(ask.lease.as_millis()).unwrap_or(u64::MAX));
        let reply: Option<(i64, i64, String)> = self
            .link
            .run("rate-limit admit", |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await;
        match reply {
            None => {
                metrics::counter!(crate::telemetry::metrics::RATE_LIMIT_BACKEND_ERRORS)
                    .increment(1);
                Ok(None)
            }
            Some((1, _, _)) => Ok(Some(lease)),
            Some((_, ms, limit)) => {
                let refusal = match limit.as_str() {
                    "requests" => Refusal::Requests,
                    "tokens" => Refusal::Tokens,
                    _ => Refusal::Concurrent,
                };
                Err((refusal, Duration::from_millis(ms.max(0).unsigned_abs())))
            }
        }
    }

    pub(super) async fn settle(&self, t: &Tenant, reserved: u64, used: u64, lease: Option<&str>) {
        let delta =
            i64::try_from(reserved).unwrap_or(i64::MAX) - i64::try_from(used).unwrap_or(i64::MAX);
        let mut inv = self.settle.prepare_invoke();
        inv.key(self.key(t, "tokens"))
            .key(self.key(t, "leases"))
            .arg(t.tokens_per_minute())
            .arg(delta)
            .arg(lease.unwrap_or(""));
        let done: Option<i64> = self
            .link
            .run("rate-limit settle", |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await;
        if done.is_none() {
            metrics::counter!(crate::telemetry::metrics::RATE_LIMIT_BACKEND_ERRORS).increment(1);
        }
    }
}
