/*
 * src/obs/stacks.c - the backtrace of another thread, for
 * /debug/pools/stacks ("all workers blocked on the same downstream").
 *
 * Purpose. A stuck pool is diagnosed by looking at where its workers are.
 * glibc offers backtrace() only for the calling thread, so the target
 * thread has to take its own backtrace: we send it a signal and let the
 * handler do it.
 *
 * Design. One handler for SIGURG, installed once per process with
 * SA_RESTART (interrupted system calls resume; a worker parked in a
 * condition wait just wakes and re-checks). SIGURG's default action is to
 * ignore it, so a late or stray signal can never kill a thread. backtrace()
 * is called once at install time so that its lazy loading of libgcc (which
 * allocates) happens outside any handler.
 *
 * A request (target thread, frame buffer, a semaphore) lives in one static
 * slot, published through the atomic pointer `pending`; captures
 * serialise on `capture_lock`, so at most one request is pending. Static,
 * not on the requester's stack: a late handler may read the slot after its
 * request has timed out and the requesting thread has returned, or exited
 * (an HTTP connection thread), so the memory must stay valid and `target`
 * is atomic.
 *
 * The claim protocol (who may touch the request):
 *   1. The requester stores `pending = req` (release), then pthread_kill.
 *   2. The handler loads `pending` (acquire); if it is a request for the
 *      current thread, it claims it with CAS(pending: req -> NULL). Only
 *      the claimer writes the frames; then it sem_posts (async-signal-safe).
 *   3. The requester waits on the semaphore up to the timeout. On timeout
 *      it tries CAS(pending: req -> NULL) itself. If that succeeds, no
 *      handler has the request and none ever will (a late handler finds
 *      NULL or another request): the slot may be reused. If it fails, a
 *      handler claimed it and is finishing: wait for its sem_post (it does
 *      only a bounded backtrace) before the next capture reuses the slot.
 * A signal meant for an earlier, timed-out request that arrives during a
 * later request for the same thread simply answers the later one: both
 * ask for that thread's current stack.
 *
 * A SIGURG that is not ours (no pending request for this thread) goes on
 * to the handler that was installed before ours, if any, so an
 * application using SIGURG for out-of-band data keeps working, although
 * it may see an extra call per capture.
 *
 * Pool workers. A handle from sluice_pool_workers_get may belong to a
 * worker that exits and is joined before the signal is sent (idle expiry,
 * resize); pthread_kill on a joined thread is undefined and crashed the
 * process when the thread's stack had been unmapped. So
 * sluice_pool_worker_backtrace does not send the signal itself: the pool
 * sends it under its lock, only while the slot still holds that thread
 * (sluice__pool_signal_worker). A worker that exits after the signal was
 * sent never runs the handler: the request times out (or is claimed by
 * nobody) as in step 3, and the request never outlives the call.
 *
 * Hazards: sluice_thread_backtrace's caller must pass a thread that has
 * not been joined. A thread that blocks SIGURG, or is stopped, times out.
 * The handler is installed with SA_RESTART, but calls that never restart
 * after a handler (nanosleep, poll, select, epoll_wait, sem_timedwait, ...)
 * return EINTR in the target thread: task code must retry them.
 *
 * Lock order: capture_lock -> pool->mu (inside sluice__pool_signal_worker).
 */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "sluice/clock.h"
#include "sluice/metrics.h"

#define CAPTURE_SIGNAL SIGURG
#define CAPTURE_MAX 64
/* The handler's own frame and the kernel's signal trampoline. */
#define SKIP_FRAMES 2

/* The one request slot. Captures serialise on capture_lock, so one slot is
 * enough, and it is static rather than on the requester's stack: a late
 * handler (its request timed out and the requester moved on, or its thread
 * exited) may still load `pending` and read `target`, and must find live
 * memory and an atomic value there. */
typedef struct request {
    _Atomic(pthread_t) target; /* written under capture_lock before `pending` is published */
    void *frames[CAPTURE_MAX + SKIP_FRAMES];
    int count;  /* frames and count: written only by the claiming handler */
    sem_t done; /* initialised once by install(); one post per claim, consumed by that capture */
} request;

static request slot;
static _Atomic(request *) pending;
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_errno;
static struct sigaction previous; /* written once by install(), before any capture */

static void on_capture_signal(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    request *req =
        atomic_load_explicit(&pending, memory_order_acquire); /* pairs with the requester's store */
    if (req && pthread_equal(atomic_load_explicit(&req->target, memory_order_relaxed), pthread_self()) &&
        atomic_compare_exchange_strong_explicit(&pending, &req, NULL, memory_order_acq_rel,
                                                memory_order_acquire)) {
        req->count = backtrace(req->frames, CAPTURE_MAX + SKIP_FRAMES);
        sem_post(&req->done); /* publishes frames/count to the requester's sem_wait */
    } else if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, uctx); /* not ours: the application's own SIGURG handler */
    } else if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
               previous.sa_handler != SIG_IGN && previous.sa_handler) {
        previous.sa_handler(sig);
    }
    errno = saved;
}

static void install(void)
{
    void *warm[4];
    (void)backtrace(warm, 4); /* load libgcc's unwinder now, not in the handler */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (sem_init(&slot.done, 0, 0) != 0) {
        install_errno = errno;
        return;
    }
    sa.sa_sigaction = on_capture_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(CAPTURE_SIGNAL, &sa, &previous) != 0) {
        install_errno = errno;
    }
}

/* How the capture signal reaches the target: pthread_kill for a thread the
 * caller vouches for, or the pool's checked send for a worker. Returns 0 or
 * an errno value (ESRCH: the thread is gone). */
typedef struct sender {
    sluice_pool *pool; /* NULL: plain pthread_kill */
    unsigned index;
} sender;

static int send_signal(const sender *s, pthread_t thread)
{
    if (s->pool) {
        return sluice__pool_signal_worker(s->pool, s->index, thread, CAPTURE_SIGNAL);
    }
    return pthread_kill(thread, CAPTURE_SIGNAL);
}

static sluice_err capture(const sender *s, pthread_t thread, void **frames, int max, int *count,
                          uint64_t timeout_ns)
{
    if (!frames || !count || max < 1 || pthread_equal(thread, pthread_self())) {
        return SLUICE_EINVAL;
    }
    *count = 0;
    pthread_once(&install_once, install);
    if (install_errno) {
        errno = install_errno;
        return SLUICE_ESYS;
    }
    request *req = &slot;
    sluice_err r = SLUICE_OK;
    pthread_mutex_lock(&capture_lock);
    atomic_store_explicit(&req->target, thread, memory_order_relaxed);
    req->count = 0;
    atomic_store_explicit(&pending, req, memory_order_release); /* pairs with the handler's load */
    int kr = send_signal(s, thread);
    if (kr != 0) {
        atomic_store_explicit(&pending, NULL, memory_order_relaxed);
        r = kr == ESRCH ? SLUICE_ENOENT : SLUICE_ESYS;
    } else {
        struct timespec ts = sluice__ts_after(CLOCK_REALTIME, timeout_ns); /* sem_timedwait's clock */
        int wr;
        while ((wr = sem_timedwait(&req->done, &ts)) != 0 && errno == EINTR) {
        }
        if (wr != 0) {
            request *expect = req;
            if (atomic_compare_exchange_strong_explicit(&pending, &expect, NULL, memory_order_acq_rel,
                                                        memory_order_acquire)) {
                r = SLUICE_ETIMEDOUT; /* nobody claimed it; nobody will */
            } else {
                while (sem_wait(&req->done) != 0 && errno == EINTR) { /* a handler is finishing */
                }
            }
        }
        if (r == SLUICE_OK) {
            int n = req->count - SKIP_FRAMES;
            n = n < 0 ? 0 : n;
            n = n > max ? max : n;
            memcpy(frames, req->frames + SKIP_FRAMES, (size_t)n * sizeof *frames);
            *count = n;
        }
    }
    pthread_mutex_unlock(&capture_lock);
    return r;
}

sluice_err sluice_thread_backtrace(pthread_t thread, void **frames, int max, int *count, uint64_t timeout_ns)
{
    sender s = {NULL, 0};
    return capture(&s, thread, frames, max, count, timeout_ns);
}

sluice_err sluice_pool_worker_backtrace(sluice_pool *pool, const sluice_worker_info *worker, void **frames,
                                        int max, int *count, uint64_t timeout_ns)
{
    if (!pool || !worker) {
        return SLUICE_EINVAL;
    }
    sender s = {pool, worker->index};
    return capture(&s, worker->thread, frames, max, count, timeout_ns);
}
