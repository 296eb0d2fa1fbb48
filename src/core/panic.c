/*
 * src/core/panic.c - faults inside tasks: sluice_panic, cleanup handlers,
 * the opt-in fault guard, and what a task can see of itself.
 *
 * sluice_panic. A worker arms one sigsetjmp point for its whole run loop
 * (worker.c, worker_guarded; savemask 0, so no system call), re-armed
 * after each panic; a CALLER_RUNS task gets its own (worker.c, invoke).
 * sluice_panic formats the message and a backtrace into a panic record it
 * allocates for the frame (a panic is rare; the record is not part of the
 * frame every task pushes), runs the cleanup handlers the task pushed
 * (innermost first), and siglongjmps back to the worker, which counts a
 * panic, calls the panic handler, frees the record and goes on. Only
 * C frames are unwound: memory the task allocated is freed only by its
 * cleanup handlers, exactly as with pthread_cleanup_push and cancellation.
 *
 * The fault guard. Installed once per process by the first pool with
 * fault_mode != OFF. Handlers for SIGSEGV/SIGBUS/SIGFPE/SIGILL run on the
 * worker's alternate signal stack (so a stack overflow is caught too),
 * with SA_NODEFER so that jumping out leaves no signal blocked. On a thread
 * that is not a guarded worker inside a task, the signal goes to the
 * previous handler, or the default action. The handler does only
 * async-signal-safe work in RERAISE mode (write(2), backtrace into a
 * record preallocated beside the altstack, backtrace_symbols_fd): it
 * reports, counts, restores
 * the default action and re-raises, so the process dies with a core dump.
 * In RECOVER mode it marks the worker for retirement and siglongjmps to the
 * task's jump point; the worker then reports the panic outside the signal
 * handler and exits, and a replacement starts.
 *
 * Thread-local state: sluice__tls_frame (the running task's frame: in the
 * worker's run state for a worker, on the submitter's stack for
 * CALLER_RUNS) and sluice__tls_worker (the worker's run state, on its
 * own stack: internal.h, sluice__run). Both are written only by their
 * own thread; the signal handler reads them on the same thread.
 */
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "sluice/fault.h"

SLUICE__TLS sluice__frame *sluice__tls_frame;

/* ---- what a task can see -------------------------------------------------- */

sluice_pool *sluice_task_pool(void)
{
    return sluice__tls_frame ? sluice__tls_frame->pool : NULL;
}

void *sluice_worker_state(void)
{
    if (sluice__tls_frame) { /* inside a task: NULL for a CALLER_RUNS task */
        return sluice__tls_frame->worker ? sluice__tls_frame->worker->worker_state : NULL;
    }
    return sluice__tls_worker ? sluice__tls_worker->worker_state : NULL;
}

unsigned sluice_worker_index(void)
{
    return sluice__tls_worker ? sluice__tls_worker->slot->index : UINT32_MAX;
}

uint64_t sluice_task_deadline(void)
{
    return sluice__tls_frame ? sluice__tls_frame->task->deadline_ns : 0;
}

sluice_ctx *sluice_task_ctx(void)
{
    return sluice__tls_frame ? sluice__tls_frame->task->ctx : NULL;
}

bool sluice_task_should_stop(void)
{
    sluice__frame *f = sluice__tls_frame;
    if (!f) {
        return false;
    }
    if (atomic_load_explicit(&f->pool->stop, memory_order_acquire)) {
        return true;
    }
    const sluice__task *t = f->task;
    if (t->deadline_ns && sluice__deadline_passed(sluice__now(f->pool), t->deadline_ns)) {
        return true;
    }
    return t->ctx && sluice_ctx_err(t->ctx) != SLUICE_OK;
}

sluice_err sluice_cleanup_push(void (*fn)(void *arg), void *arg)
{
    sluice__frame *f = sluice__tls_frame;
    if (!f || !fn) {
        return SLUICE_EINVAL;
    }
    if (f->ncleanup >= SLUICE_CLEANUP_MAX) {
        return SLUICE_EOVERFLOW;
    }
    f->cleanup[f->ncleanup].fn = fn;
    f->cleanup[f->ncleanup].arg = arg;
    f->ncleanup++;
    return SLUICE_OK;
}

void sluice_cleanup_pop(bool run)
{
    sluice__frame *f = sluice__tls_frame;
    if (!f || f->ncleanup == 0) {
        return;
    }
    f->ncleanup--;
    if (run) {
        f->cleanup[f->ncleanup].fn(f->cleanup[f->ncleanup].arg);
    }
}

/* What a panic reports when sluice_panic could not allocate its record. */
static const char lost_message[] = "(panic message lost: out of memory)";

const char *sluice_task_panic_message(void)
{
    sluice__frame *f = sluice__tls_frame;
    if (!f || !f->panicking) {
        return NULL;
    }
    return f->rec ? f->rec->message : lost_message;
}

/* Runs the still-pushed cleanup handlers of a panicking task. */
static void run_cleanups(sluice__frame *f)
{
    f->panicking = true;
    while (f->ncleanup > 0) {
        f->ncleanup--;
        f->cleanup[f->ncleanup].fn(f->cleanup[f->ncleanup].arg);
    }
}

_Noreturn void sluice_panic(const char *fmt, ...)
{
    sluice__frame *f = sluice__tls_frame;
    va_list ap;
    va_start(ap, fmt);
    if (!f) {
        fprintf(stderr, "sluice: sluice_panic called outside a pool task: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        abort();
    }
    if (!f->rec) {
        /* Freed by the worker once the panic is reported (worker.c,
         * task_end). A panic from a cleanup handler of a panic reuses it. */
        f->rec = malloc(sizeof *f->rec);
        f->rec_owned = f->rec != NULL;
    }
    if (f->rec) {
        vsnprintf(f->rec->message, sizeof f->rec->message, fmt, ap);
        f->rec->nframes = backtrace(f->rec->frames, SLUICE_BACKTRACE_MAX);
    }
    va_end(ap);
    f->signo = 0;
    run_cleanups(f);
    siglongjmp(*f->jump, 1);
}

/* ---- reporting ------------------------------------------------------------- */

void sluice__backtrace_warmup(void)
{
    /* The first backtrace() loads libgcc_s (it allocates); do it now, not
     * inside a signal handler. */
    static _Atomic int done;
    if (!atomic_exchange(&done, 1)) {
        void *frames[2];
        (void)backtrace(frames, 2);
    }
}

size_t sluice_backtrace_format(void *const *frames, int frame_count, char *buf, size_t len)
{
    size_t used = 0;
    if (buf && len) {
        buf[0] = '\0';
    }
    for (int i = 0; i < frame_count; i++) {
        Dl_info info = {0};
        const char *sym = NULL;
        uintptr_t off = 0;
        const char *obj = "?";
        if (dladdr(frames[i], &info)) {
            sym = info.dli_sname;
            if (info.dli_saddr) {
                off = (uintptr_t)frames[i] - (uintptr_t)info.dli_saddr;
            }
            if (info.dli_fname) {
                obj = strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
            }
        }
        char line[256];
        int n;
        if (sym) {
            n = snprintf(line, sizeof line, "#%d %p %s+0x%lx (%s)\n", i, frames[i], sym, (unsigned long)off,
                         obj);
        } else {
            /* Hidden or static symbol: module+offset, which addr2line -e
             * <module> resolves. */
            uintptr_t rel = info.dli_fbase ? (uintptr_t)frames[i] - (uintptr_t)info.dli_fbase : 0;
            n = snprintf(line, sizeof line, "#%d %p ? (%s+0x%lx)\n", i, frames[i], obj, (unsigned long)rel);
        }
        if (n < 0) {
            continue;
        }
        if (buf && used + 1 < len) {
            size_t room = len - used - 1;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(buf + used, line, take);
            buf[used + take] = '\0';
        }
        used += (size_t)n;
    }
    return used;
}

static const char *signal_name(int sig);

void sluice__report_panic(struct sluice_pool *p, sluice__frame *f)
{
    /* No record: sluice_panic could not allocate one, or a fault came on
     * a worker without an altstack (its allocation failed). */
    const char *message = f->rec ? f->rec->message : f->signo ? signal_name(f->signo) : lost_message;
    sluice_panic_info info = {
        .pool_name = p->name,
        .worker_index = f->worker ? f->worker->slot->index : UINT32_MAX,
        .message = message,
        .signal = f->signo,
        .task_label = f->task ? f->task->label : NULL,
        .frames = f->rec ? f->rec->frames : NULL,
        .frame_count = f->rec ? f->rec->nframes : 0,
        .caller_thread = f->worker == NULL,
    };
    if (p->cfg.panic_handler) {
        p->cfg.panic_handler(&info, p->cfg.user);
        return;
    }
    char bt[4096];
    sluice_backtrace_format(info.frames, info.frame_count, bt, sizeof bt);
    fprintf(stderr, "sluice: panic in pool %s worker %u%s%s: %s\n%s", p->name, info.worker_index,
            info.task_label ? " task " : "", info.task_label ? info.task_label : "", message, bt);
}

/* ---- the fault guard ------------------------------------------------------- */

static const int guarded_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#define NGUARDED (sizeof guarded_signals / sizeof guarded_signals[0])
static struct sigaction previous[NGUARDED];
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static _Atomic int guard_installed;

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    }
    return "signal";
}

static void write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void write_uint(unsigned v)
{
    char buf[16];
    int i = (int)sizeof buf;
    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    write_str(buf + i);
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    for (size_t i = 0; i < NGUARDED; i++) {
        if (guarded_signals[i] != sig) {
            continue;
        }
        struct sigaction *old = &previous[i];
        if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
            old->sa_sigaction(sig, si, uc);
            return;
        }
        if (old->sa_handler == SIG_IGN) {
            break; /* ignoring a synchronous fault would re-fault for ever: default */
        }
        if (old->sa_handler != SIG_DFL && old->sa_handler) {
            old->sa_handler(sig);
            return;
        }
    }
    /* Default action: restore it and re-raise (SA_NODEFER: not blocked). */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
    sluice__run *w = sluice__tls_worker;
    sluice__frame *f = sluice__tls_frame;
    if (!w || !f || f->worker != w || w->pool->cfg.fault_mode == SLUICE_FAULT_OFF) {
        chain(sig, si, uc);
        return;
    }
    struct sluice_pool *p = w->pool;
    f->signo = sig;
    /* No allocation in a signal handler: the record preallocated with the
     * altstack, unless a panic's own record is already there (a fault in
     * a cleanup handler of a panic). Without either, frames go to a local
     * array for the log only. */
    if (!f->rec) {
        f->rec = w->fault_rec;
        f->rec_owned = false;
    }
    void *local[SLUICE_BACKTRACE_MAX];
    void **frames = f->rec ? f->rec->frames : local;
    int nframes = backtrace(frames, SLUICE_BACKTRACE_MAX);
    if (f->rec) {
        f->rec->nframes = nframes;
    }

    write_str("sluice: fatal ");
    write_str(signal_name(sig));
    write_str(" in pool ");
    write_str(p->name);
    write_str(" worker ");
    write_uint(w->slot->index);
    if (f->task && f->task->label) {
        write_str(" task ");
        write_str(f->task->label);
    }
    write_str(p->cfg.fault_mode == SLUICE_FAULT_RECOVER ? " (recovering: worker retired)\n"
                                                        : " (re-raising: the process dumps core)\n");
    backtrace_symbols_fd(frames, nframes, STDERR_FILENO);

    if (p->cfg.fault_mode == SLUICE_FAULT_RECOVER) {
        /* Message for the panic handler, formatted without stdio. */
        if (f->rec) {
            const char *name = signal_name(sig);
            size_t n = strlen(name);
            memcpy(f->rec->message, name, n);
            f->rec->message[n] = '\0';
        }
        w->fault_retire = true;
        run_cleanups(f);
        siglongjmp(*f->jump, 2);
    }
    /* RERAISE: count it (the process is about to die, but a core dump
     * carries the counter too), then the default action: the process dies
     * with a core, as documented. (Chaining to a handler installed before
     * Sluice's, such as a test framework's, could turn the crash into an
     * ordinary exit.) */
    sluice__shard_add(false, &w->slot->shard.panicked, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NGUARDED; i++) {
        sigaction(guarded_signals[i], &sa, &previous[i]);
    }
    atomic_store(&guard_installed, 1);
}

void sluice__fault_guard_install(void)
{
    pthread_once(&guard_once, install_once);
}

int sluice_fault_guard_installed(void)
{
    return atomic_load(&guard_installed);
}

void sluice__unblock_fault_signals(void)
{
    /* A thread created while one of these was blocked (or a sanitizer
     * runtime that blocked it around a handler) would otherwise die on its
     * first fault instead of reaching the guard. */
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < NGUARDED; i++) {
        sigaddset(&set, guarded_signals[i]);
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

#define ALTSTACK_SIZE (64 * 1024)

/* One allocation: the altstack, and above its top (a stack grows down, so
 * the handler never writes there) the record the fault guard fills. Pages
 * of it are touched only by a fault. */
void sluice__altstack_enter(sluice__run *w)
{
    w->altstack = malloc(ALTSTACK_SIZE + sizeof(sluice__panic_rec));
    if (!w->altstack) {
        return;
    }
    stack_t ss = {.ss_sp = w->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(w->altstack);
        w->altstack = NULL;
        return;
    }
    w->fault_rec = (sluice__panic_rec *)((char *)w->altstack + ALTSTACK_SIZE);
}

void sluice__altstack_leave(sluice__run *w)
{
    if (!w->altstack) {
        return;
    }
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(w->altstack);
    w->altstack = NULL;
    w->fault_rec = NULL;
}
