/*
 * src/sync/keyed_limiter.c - one token bucket per key, with a bound on the
 * number of keys kept (least recently used is forgotten).
 *
 * Purpose. Per-tenant (per-client, per-route) rate limits where the set of
 * keys is open-ended and partly hostile: memory must stay bounded however
 * many distinct keys arrive.
 *
 * Design. A chained hash table (FNV-1a, power-of-two buckets sized for
 * max_keys at load <= 1, never resized) maps the key to an entry holding
 * the key's copy and its bucket (sluice__tb, shared with limiter.c). The
 * entries also form a doubly-linked LRU list: a lookup moves the entry to
 * the front; when a new key would exceed max_keys, the entry at the back
 * is unlinked and its memory reused for the new key (so a flood of new
 * keys allocates nothing once the table is full). A forgotten key's
 * bucket starts full if it returns: the bound trades a possible extra
 * burst for a hard memory limit; size max_keys above the number of keys
 * active within one refill time (burst / rate) to make that rare.
 *
 * One mutex guards the table, the list and the counters. wait() sleeps
 * with it released; a reservation made before the sleep is cancelled on a
 * context's end only if the key is still tracked (its entry may have been
 * evicted and reused meanwhile; the lookup is by key, never by pointer).
 *
 * Lock order: kl->mu only; released around context callback registration.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/limiter.h"
#include "sync/sync_internal.h"

typedef struct entry {
    struct entry *hnext; /* hash chain */
    struct entry *lru_prev, *lru_next;
    uint64_t hash;
    sluice__tb tb;
    size_t key_len;
    char key[SLUICE_KEYED_LIMITER_KEY_MAX + 1];
} entry;

struct sluice_keyed_limiter {
    char name[SLUICE_LIMITER_NAME_MAX + 1];
    const sluice_clock *clock;
    double rate;
    uint64_t burst;
    size_t max_keys;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    entry **table;
    size_t mask;
    entry *lru_head, *lru_tail; /* head = most recently used */
    size_t keys;
    sluice_keyed_limiter_stats st; /* counters */
};

void sluice_keyed_limiter_config_init(sluice_keyed_limiter_config *cfg)
{
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
    }
}

sluice_err sluice_keyed_limiter_create(const sluice_keyed_limiter_config *cfg, sluice_keyed_limiter **out,
                                       char *errbuf, size_t errlen)
{
    if (!cfg || !out) {
        sluice__errf(errbuf, errlen, "%s: must not be NULL", !cfg ? "cfg" : "out");
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice__limiter_check(cfg->rate, cfg->burst, errbuf, errlen);
    if (err) {
        return err;
    }
    size_t max_keys = cfg->max_keys ? cfg->max_keys : SLUICE_KEYED_LIMITER_DEFAULT_KEYS;
    if (max_keys > ((size_t)1 << 30)) {
        sluice__errf(errbuf, errlen, "max_keys: at most 2^30, got %zu", max_keys);
        return SLUICE_EINVAL;
    }
    sluice_keyed_limiter *kl = calloc(1, sizeof *kl);
    if (!kl) {
        return SLUICE_ENOMEM;
    }
    err = sluice__sync_name_copy(kl->name, sizeof kl->name, cfg->name, "keyed_limiter", errbuf, errlen);
    if (err) {
        free(kl);
        return err;
    }
    size_t nb = 16;
    while (nb < max_keys) {
        nb <<= 1;
    }
    kl->table = calloc(nb, sizeof *kl->table);
    if (!kl->table || pthread_mutex_init(&kl->mu, NULL) != 0) {
        free(kl->table);
        free(kl);
        return SLUICE_ENOMEM;
    }
    kl->mask = nb - 1;
    kl->clock = cfg->clock ? cfg->clock : sluice_clock_system();
    kl->rate = cfg->rate;
    kl->burst = cfg->burst;
    kl->max_keys = max_keys;
    *out = kl;
    return SLUICE_OK;
}

void sluice_keyed_limiter_destroy(sluice_keyed_limiter *kl)
{
    if (!kl) {
        return;
    }
    entry *e = kl->lru_head;
    while (e) {
        entry *next = e->lru_next;
        free(e);
        e = next;
    }
    free(kl->table);
    pthread_mutex_destroy(&kl->mu);
    free(kl);
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* A usable key: 1..KEY_MAX bytes. Returns its length, or 0. */
static size_t key_len(const char *key)
{
    if (!key) {
        return 0;
    }
    size_t len = strnlen(key, SLUICE_KEYED_LIMITER_KEY_MAX + 1);
    return len > SLUICE_KEYED_LIMITER_KEY_MAX ? 0 : len;
}

static void lru_unlink(sluice_keyed_limiter *kl, entry *e)
{
    if (e->lru_prev) {
        e->lru_prev->lru_next = e->lru_next;
    } else {
        kl->lru_head = e->lru_next;
    }
    if (e->lru_next) {
        e->lru_next->lru_prev = e->lru_prev;
    } else {
        kl->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(sluice_keyed_limiter *kl, entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = kl->lru_head;
    if (kl->lru_head) {
        kl->lru_head->lru_prev = e;
    } else {
        kl->lru_tail = e;
    }
    kl->lru_head = e;
}

static entry *find(sluice_keyed_limiter *kl, const char *key, size_t len, uint64_t h)
{
    for (entry *e = kl->table[h & kl->mask]; e; e = e->hnext) {
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
            return e;
        }
    }
    return NULL;
}

static void hash_remove(sluice_keyed_limiter *kl, entry *e)
{
    entry **pp = &kl->table[e->hash & kl->mask];
    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
}

/* Find key, or create it (full bucket) evicting the LRU key at the bound.
 * Moves it to the front. NULL only when memory ran out. mu held. */
static entry *lookup(sluice_keyed_limiter *kl, const char *key, size_t len, uint64_t now)
{
    uint64_t h = fnv1a(key, len);
    entry *e = find(kl, key, len, h);
    if (e) {
        if (kl->lru_head != e) {
            lru_unlink(kl, e);
            lru_push_front(kl, e);
        }
        return e;
    }
    if (kl->keys >= kl->max_keys) {
        e = kl->lru_tail; /* reuse the least recently used entry */
        lru_unlink(kl, e);
        hash_remove(kl, e);
        kl->keys--;
        kl->st.evictions++;
    } else {
        e = malloc(sizeof *e);
        if (!e) {
            kl->st.alloc_failures++;
            return NULL;
        }
    }
    e->hash = h;
    e->key_len = len;
    memcpy(e->key, key, len);
    e->key[len] = 0;
    sluice__tb_init(&e->tb, kl->burst, now);
    e->hnext = kl->table[h & kl->mask];
    kl->table[h & kl->mask] = e;
    lru_push_front(kl, e);
    kl->keys++;
    return e;
}

bool sluice_keyed_limiter_allow(sluice_keyed_limiter *kl, const char *key, uint64_t n)
{
    size_t len = key_len(key);
    if (!kl || len == 0) {
        return false;
    }
    uint64_t now = sluice_clock_now(kl->clock);
    pthread_mutex_lock(&kl->mu);
    entry *e = lookup(kl, key, len, now);
    bool ok = e ? sluice__tb_allow(&e->tb, kl->rate, kl->burst, n, now) : true; /* fail open on ENOMEM */
    if (ok) {
        kl->st.allowed++;
    } else {
        kl->st.limited++;
    }
    pthread_mutex_unlock(&kl->mu);
    return ok;
}

sluice_err sluice_keyed_limiter_wait(sluice_keyed_limiter *kl, const char *key, uint64_t n, sluice_ctx *ctx)
{
    size_t len = key_len(key);
    if (!kl || len == 0) {
        return SLUICE_EINVAL;
    }
    sluice_err err = sluice_ctx_err(ctx);
    if (err) {
        return err;
    }
    uint64_t now = sluice_clock_now(kl->clock);
    pthread_mutex_lock(&kl->mu);
    entry *e = lookup(kl, key, len, now);
    if (!e) {
        pthread_mutex_unlock(&kl->mu);
        return SLUICE_ENOMEM;
    }
    sluice_reservation r;
    err = sluice__tb_reserve(&e->tb, kl->rate, kl->burst, n, now, &r);
    if (err) {
        kl->st.limited++;
        pthread_mutex_unlock(&kl->mu);
        return err;
    }
    if (r.delay_ns > 0) {
        uint64_t cd = sluice_ctx_deadline(ctx);
        if (cd && cd < r.act_at_ns && sluice__same_clock(sluice_ctx_clock(ctx), kl->clock)) {
            err = SLUICE_ETIMEDOUT;
        } else {
            err = sluice__sync_sleep_until(&kl->mu, kl->clock, r.act_at_ns, ctx);
        }
        if (err) {
            /* Give the tokens back if the key is still the same bucket. */
            uint64_t h = fnv1a(key, len);
            entry *still = find(kl, key, len, h);
            if (still) {
                sluice__tb_cancel(&still->tb, kl->rate, kl->burst, &r, sluice_clock_now(kl->clock));
            }
            if (err == SLUICE_ETIMEDOUT) {
                kl->st.wait_timeouts++;
            } else {
                kl->st.wait_canceled++;
            }
        }
    }
    if (!err) {
        kl->st.allowed++;
    }
    pthread_mutex_unlock(&kl->mu);
    if (err) {
        sluice_ctx_err(ctx);
    }
    return err;
}

double sluice_keyed_limiter_tokens(sluice_keyed_limiter *kl, const char *key)
{
    size_t len = key_len(key);
    if (!kl || len == 0) {
        return 0;
    }
    uint64_t now = sluice_clock_now(kl->clock);
    pthread_mutex_lock(&kl->mu);
    entry *e = find(kl, key, len, fnv1a(key, len));
    double t = (double)kl->burst;
    if (e) {
        sluice__tb_advance(&e->tb, kl->rate, kl->burst, now);
        t = e->tb.tokens;
    }
    pthread_mutex_unlock(&kl->mu);
    return t;
}

void sluice_keyed_limiter_stats_get(sluice_keyed_limiter *kl, sluice_keyed_limiter_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!kl) {
        return;
    }
    pthread_mutex_lock(&kl->mu);
    *out = kl->st;
    out->keys = kl->keys;
    out->max_keys = kl->max_keys;
    out->rate = kl->rate;
    out->burst = kl->burst;
    pthread_mutex_unlock(&kl->mu);
}

const char *sluice_keyed_limiter_name(const sluice_keyed_limiter *kl)
{
    return kl ? kl->name : NULL;
}
