/*
 * src/cluster/scripts.c - the Lua scripts of libsluice-cluster.
 *
 * Every update of shared state is one script, so it is atomic in Redis
 * and costs one round trip. Times come from Redis's TIME, never from the
 * caller: replicas whose clocks disagree still agree on who expired.
 * Each script touches only the keys it is given (KEYS), so the layout
 * could move to a hash-tagged Redis Cluster later; today a single
 * primary is the supported topology (docs/cluster.md).
 *
 * redis.replicate_commands() lets Redis 3.2-4 accept writes after TIME;
 * from Redis 5 on it is the default and the call is a no-op.
 */
#include "cluster/cluster_internal.h"

#define PRELUDE                                                                                              \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                                      \
    "local t = redis.call('TIME')\n"                                                                         \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS[1] members zset (id -> expiry ms), KEYS[2] services set.
 * ARGV[1] id, ARGV[2] ttl ms, ARGV[3] service.
 * Drops expired members, refreshes this one, returns the live ids. */
static const char heartbeat_lua[] = PRELUDE "local ttl = tonumber(ARGV[2])\n"
                                            "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
                                            "redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])\n"
                                            "redis.call('PEXPIRE', KEYS[1], 2 * ttl)\n"
                                            "redis.call('SADD', KEYS[2], ARGV[3])\n"
                                            "return redis.call('ZRANGE', KEYS[1], 0, -1)\n";

/* KEYS[1] members zset; ARGV[1] id. */
static const char leave_lua[] = "return redis.call('ZREM', KEYS[1], ARGV[1])\n";

/*
 * The leased semaphore of one downstream.
 * KEYS[1] held  hash  member ("service|replica") -> permits leased
 * KEYS[2] exp   zset  member -> lease expiry (ms, Redis time)
 * KEYS[3] svc   hash  service -> permits leased by all its replicas
 * KEYS[4] meta  hash  epoch, grace_until, held (all services), total_limit, free_pool
 * KEYS[5] share hash  service -> share (published by its replicas)
 * KEYS[6] use   hash  member -> permits in use (for `sluice budget status`)
 * ARGV: 1 member, 2 service, 3 in_use, 4 target, 5 members, 6 rank,
 *       7 ttl ms, 8 known epoch ("0" = none), 9 share, 10 total_limit,
 *       11 free_pool
 *
 * Order: (1) expired leases give their permits back; (2) a missing epoch
 * after a caller saw one means Redis lost its data: a grace period of
 * one lease TTL grants nothing new while the live holders re-claim what
 * they use; (3) the caller keeps min(recorded, target) and always what
 * it has in use (a re-claim is recorded even past the limit: those calls
 * are running, and nothing new is granted until the total is back under
 * it); a replica over its fair share (the member list grew) keeps only
 * max(fair share, in use), so it converges as its calls end; (4) a grant up to target, bounded by the total
 * limit, the service's cap (share + what the free pool can still lend) and the replica's fair share of that
 * cap (by rank, so the caps of a service's replicas sum to its cap). Returns {leased, replica_cap, epoch,
 * held_total, service_held, service_cap, in_grace}.
 */
static const char lease_lua[] =
    PRELUDE "local member, svc = ARGV[1], ARGV[2]\n"
            "local in_use, target = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
            "local n, rank, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
            "local known, share = ARGV[8], tonumber(ARGV[9])\n"
            "local total, free = tonumber(ARGV[10]), tonumber(ARGV[11])\n"
            "local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)\n"
            "for _, m in ipairs(stale) do\n"
            "  local h = tonumber(redis.call('HGET', KEYS[1], m) or '0')\n"
            "  if h ~= 0 then\n"
            "    redis.call('HINCRBY', KEYS[3], string.match(m, '^(.-)|'), -h)\n"
            "    redis.call('HINCRBY', KEYS[4], 'held', -h)\n"
            "  end\n"
            "  redis.call('HDEL', KEYS[1], m)\n"
            "  redis.call('HDEL', KEYS[6], m)\n"
            "  redis.call('ZREM', KEYS[2], m)\n"
            "end\n"
            "local epoch = redis.call('HGET', KEYS[4], 'epoch')\n"
            "if not epoch then\n"
            "  epoch = tostring(now)\n"
            "  redis.call('HSET', KEYS[4], 'epoch', epoch)\n"
            "  if known ~= '0' then redis.call('HSET', KEYS[4], 'grace_until', now + ttl) end\n"
            "elseif known ~= '0' and known ~= epoch then\n"
            "  redis.call('HSET', KEYS[4], 'grace_until', now + ttl)\n"
            "end\n"
            "local in_grace = now < tonumber(redis.call('HGET', KEYS[4], 'grace_until') or '0')\n"
            "redis.call('HSET', KEYS[5], svc, share)\n"
            "redis.call('HSET', KEYS[4], 'total_limit', total)\n"
            "redis.call('HSET', KEYS[4], 'free_pool', free)\n"
            "local mine = tonumber(redis.call('HGET', KEYS[1], member) or '0')\n"
            "local svc_held = tonumber(redis.call('HGET', KEYS[3], svc) or '0')\n"
            "local held = tonumber(redis.call('HGET', KEYS[4], 'held') or '0')\n"
            "local lent = 0\n"
            "local all = redis.call('HGETALL', KEYS[3])\n"
            "for i = 1, #all, 2 do\n"
            "  if all[i] ~= svc then\n"
            "    local over = tonumber(all[i + 1]) - tonumber(redis.call('HGET', KEYS[5], all[i]) or '0')\n"
            "    if over > 0 then lent = lent + over end\n"
            "  end\n"
            "end\n"
            "local room = free - lent\n"
            "if room < 0 then room = 0 end\n"
            "local svc_cap = share + room\n"
            "if n < 1 then n = 1 end\n"
            "local cap = math.floor(svc_cap / n)\n"
            "if rank < svc_cap % n then cap = cap + 1 end\n"
            "local keep = math.min(mine, target)\n"
            "if keep > cap then keep = math.max(cap, in_use) end\n"
            "if keep < in_use then keep = in_use end\n"
            "svc_held = svc_held + keep - mine\n"
            "held = held + keep - mine\n"
            "local grant = 0\n"
            "if not in_grace and target > keep then\n"
            "  grant = math.min(target - keep, total - held, svc_cap - svc_held, cap - keep)\n"
            "  if grant < 0 then grant = 0 end\n"
            "end\n"
            "local new = keep + grant\n"
            "if new ~= mine then\n"
            "  redis.call('HINCRBY', KEYS[3], svc, new - mine)\n"
            "  redis.call('HINCRBY', KEYS[4], 'held', new - mine)\n"
            "end\n"
            "if new > 0 or target > 0 then\n"
            "  redis.call('HSET', KEYS[1], member, new)\n"
            "  redis.call('HSET', KEYS[6], member, in_use)\n"
            "  redis.call('ZADD', KEYS[2], now + ttl, member)\n"
            "else\n"
            "  redis.call('HDEL', KEYS[1], member)\n"
            "  redis.call('HDEL', KEYS[6], member)\n"
            "  redis.call('ZREM', KEYS[2], member)\n"
            "end\n"
            "return {new, cap, epoch, held + grant, svc_held + grant, svc_cap, in_grace and 1 or 0}\n";

/*
 * GCRA: KEYS[1] the theoretical arrival time (TAT, us of Redis time),
 * KEYS[2] "<interval> <TAT>": the emission interval (us) the TAT was
 * built with and the TAT it vouches for. Both are set with the same PX,
 * the TAT first, so the interval key never expires before its TAT.
 *
 * Precision. Redis's TIME is whole microseconds, but an interval need not
 * be (1e6 / rate): the TAT is stored as "<us>.<nine decimals>" and every
 * computation is on offsets from now (o = TAT - now, exact integers plus
 * the fraction), so a call is charged n x interval to within 5e-10 us of
 * rounding on storage plus double rounding of the offset (2^-52 of it);
 * with whole microseconds a rate of 3e5/s (3.33 us) was held at 3 us a
 * token, 11% over, and above 2e6/s a token was charged nothing. A reader
 * of the version before (tonumber) reads the decimals as a number.
 *
 * Rolling upgrade. A replica of the version before writes the TAT alone,
 * at its own interval, and leaves KEYS[2] as it was. The part of the TAT
 * past the one KEYS[2] vouches for (or all of it, with no KEYS[2]) is
 * therefore read as built at the caller's interval, time as the version
 * before reads all of it; only the vouched part is rescaled from the
 * recorded interval. Rescaling the old replica's part by an interval it
 * never used would count its tokens by a third replica's rate.
 *
 * RESCALE: when the caller's interval differs from the recorded one, the
 * vouched outstanding part (tokens x recorded interval) is rescaled to the
 * caller's interval, so the tokens in debt (or missing from the bucket)
 * stay the same count and are repaid at the new rate, as
 * sluice_limiter_set_rate does.
 * STORE writes both keys (the caller's interval, vouching for the whole
 * TAT) with the expiry of the TAT, at most 1e15 ms (31,700 years: a PX
 * Lua would print as 1e+15 is no integer to SET, and the call would fail).
 * US is a wait in whole microseconds, rounded up, at most 2^53 (285
 * years): a reply integer Redis converts from a larger number is garbage
 * (a huge wait read as none).
 */
#define GCRA_PRELUDE                                                                                         \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                                      \
    "local t = redis.call('TIME')\n"                                                                         \
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                                \
    "local function off(s)\n"                                                                                \
    "  if not s then return nil end\n"                                                                       \
    "  local i, f = string.match(s, '^(%d+)%.?(%d*)$')\n"                                                    \
    "  if not i then local v = tonumber(s) if v then return v - now end return nil end\n"                    \
    "  local o = tonumber(i) - now\n"                                                                        \
    "  if f ~= '' then o = o + tonumber('0.' .. f) end\n"                                                    \
    "  return o\n"                                                                                           \
    "end\n"                                                                                                  \
    "local T = tonumber(ARGV[1])\n"                                                                          \
    "local o = off(redis.call('GET', KEYS[1])) or 0\n"                                                       \
    "if o < 0 then o = 0 end\n"                                                                              \
    "local told, vouched = 0, nil\n"                                                                         \
    "local rec = redis.call('GET', KEYS[2])\n"                                                               \
    "if rec then\n"                                                                                          \
    "  local ts, vs = string.match(rec, '^(%S+) (%S+)$')\n"                                                  \
    "  if ts then told = tonumber(ts) or 0 vouched = off(vs) else told = tonumber(rec) or 0 end\n"           \
    "end\n"                                                                                                  \
    "local moved = false\n"                                                                                  \
    "if o > 0 and told > 0 and told ~= T then\n"                                                             \
    "  local part = o\n"                                                                                     \
    "  if vouched and vouched < part then part = vouched end\n"                                              \
    "  if part < 0 then part = 0 end\n"                                                                      \
    "  o = o - part + part * T / told\n"                                                                     \
    "  moved = true\n"                                                                                       \
    "end\n"                                                                                                  \
    "local function store(v)\n"                                                                              \
    "  local w = math.floor(v)\n"                                                                            \
    "  local fn = math.floor((v - w) * 1e9 + 0.5)\n"                                                         \
    "  if fn >= 1e9 then w = w + 1 fn = fn - 1e9 end\n"                                                      \
    "  local s = string.format('%.0f.%09d', now + w, fn)\n"                                                  \
    "  local px = math.ceil(v / 1000) + 1\n"                                                                 \
    "  if px > 1e15 then px = 1e15 end\n"                                                                    \
    "  px = string.format('%.0f', px)\n"                                                                     \
    "  redis.call('SET', KEYS[1], s, 'PX', px)\n"                                                            \
    "  redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. s, 'PX', px)\n"                                          \
    "end\n"                                                                                                  \
    "local function us(w)\n"                                                                                 \
    "  if w > 9007199254740992 then return 9007199254740992 end\n"                                           \
    "  return math.ceil(w)\n"                                                                                \
    "end\n"

/*
 * GCRA take. KEYS[3] the key prefix's limiter epoch (a string, no expiry:
 * Redis time in us when it was first set). ARGV: 1 emission interval us
 * (1/rate), 2 burst, 3 tokens, 4 "allow" (take only if conformant now) or
 * "reserve" (take now, maybe into debt), 5 tokens of debt carried in
 * first (a replica leaving fallback: its fallback bucket's reservations
 * not yet due; absent = 0), 6 the epoch the caller last saw ("0" or
 * absent = none).
 *
 * Restart grace: a Redis restarted without its data (or failed over to a
 * replica that lacked it) has lost every TAT, so each bucket would be
 * full again, a fresh burst per limiter on top of whatever the outage's
 * fallback buckets took. The epoch tells: when it is missing it is set
 * anew, and a caller that had seen another one knows the state was lost;
 * its call then starts the bucket empty (TAT at least now + burst x
 * interval: it refills at the rate from here), as the leased semaphore
 * grants nothing for a lease TTL after its own epoch changed. Each
 * limiter's first call from a replica that had seen the old epoch does
 * it (a max, so several do it once). A limiter that never reached Redis
 * before, or a replica of the version before (which passes no KEYS[3]:
 * it runs its own script), takes the bucket as it finds it.
 *
 * A refused allow still stores a rescaled TAT (and the carried debt), so
 * a rate change takes effect from the first call that sees it.
 * Returns {taken 0|1, wait us (rounded up: never act early), epoch}.
 */
static const char gcra_lua[] = GCRA_PRELUDE "local burst, n = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
                                            "local carry = tonumber(ARGV[5] or '0') or 0\n"
                                            "local ep = redis.call('GET', KEYS[3])\n"
                                            "if not ep then\n"
                                            "  ep = string.format('%.0f', now)\n"
                                            "  redis.call('SET', KEYS[3], ep)\n"
                                            "end\n"
                                            "local known = ARGV[6] or '0'\n"
                                            "if known ~= '0' and known ~= ep and o < burst * T then\n"
                                            "  o = burst * T moved = true\n"
                                            "end\n"
                                            "if carry > 0 then o = o + carry * T moved = true end\n"
                                            "local new_o = o + n * T\n"
                                            "local wait = new_o - burst * T\n"
                                            "if ARGV[4] == 'allow' and wait > 0 then\n"
                                            "  if moved then store(o) end\n"
                                            "  return {0, us(wait), ep}\n"
                                            "end\n"
                                            "store(new_o)\n"
                                            "if wait < 0 then wait = 0 end\n"
                                            "return {1, us(wait), ep}\n";

/*
 * GCRA cancel. ARGV: 1 the caller's emission interval us, 2 tokens to
 * give back. The debt is first rescaled to the caller's interval (a
 * reservation's share of it was rescaled with the rest by any rate change
 * since), then tokens x interval are taken off. Returns 1 stored, 0 the
 * bucket is full again (both keys deleted).
 */
static const char gcra_cancel_lua[] =
    GCRA_PRELUDE "local back = o - tonumber(ARGV[2]) * T\n"
                 "if back <= 0 then redis.call('DEL', KEYS[1], KEYS[2]) return 0 end\n"
                 "store(back)\n"
                 "return 1\n";

const char *const sluice__script_source[SLUICE__SCRIPT_COUNT_] = {
    [SLUICE__SCRIPT_HEARTBEAT] = heartbeat_lua,
    [SLUICE__SCRIPT_LEAVE] = leave_lua,
    [SLUICE__SCRIPT_LEASE] = lease_lua,
    [SLUICE__SCRIPT_GCRA] = gcra_lua,
    [SLUICE__SCRIPT_GCRA_CANCEL] = gcra_cancel_lua,
};
