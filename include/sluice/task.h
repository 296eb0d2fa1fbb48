/*
 * sluice/task.h - what code running inside a pool task can reach.
 *
 * All of these read thread-local state set by the worker (or by the
 * submitter, for a CALLER_RUNS task) around the task; outside a task they
 * return "nothing" (NULL, 0, false), except sluice_panic, which aborts.
 */
#ifndef SLUICE_TASK_H
#define SLUICE_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/common.h"
#include "sluice/ctx.h"
#include "sluice/pool.h"

/* The pool running the current task, or NULL outside a task. */
SLUICE_API sluice_pool *sluice_task_pool(void);

/* The state the worker_init hook set for this worker (NULL for a
 * CALLER_RUNS task, which has no worker). */
SLUICE_API void *sluice_worker_state(void);

/* The worker's index ("name/3" -> 3); UINT32_MAX outside a worker. */
SLUICE_API unsigned sluice_worker_index(void);

/* The task's deadline (pool clock ns; earliest of submit deadline and
 * context deadline), 0 if none. */
SLUICE_API uint64_t sluice_task_deadline(void);

/* The task's context as given at submit, or NULL. Borrowed. */
SLUICE_API sluice_ctx *sluice_task_ctx(void);

/*
 * sluice_task_should_stop - true when the task has been asked to stop:
 * the pool's drain deadline passed or it is being destroyed, the task's
 * deadline passed, or its context is done. Cheap: call it in loops.
 */
SLUICE_API bool sluice_task_should_stop(void);

/*
 * sluice_panic - abandon the current task: format the message, capture a
 * backtrace, run the cleanup handlers pushed by the task (innermost first),
 * unwind to the worker (longjmp; no C++ destructors, no free of the task's
 * own allocations unless a cleanup handler does it), call the pool's panic
 * handler and count a panic. The worker goes on with its next task.
 * Outside a task it prints the message and aborts.
 */
SLUICE_API _Noreturn void sluice_panic(const char *fmt, ...) SLUICE_PRINTF(1, 2);

/*
 * sluice_task_panic_message - inside a cleanup handler that runs because
 * the task panicked (sluice_panic, or a fault caught in RECOVER mode): the
 * panic's message. NULL otherwise (outside a task, or a cleanup popped with
 * run = true during normal execution). Valid until the handler returns.
 */
SLUICE_API const char *sluice_task_panic_message(void);

/*
 * Cleanup handlers, pthread_cleanup_push-style: pushed by a task, popped by
 * it; on sluice_panic (or a recovered fault) the handlers still pushed run,
 * innermost first, before the panic handler. At most
 * SLUICE_CLEANUP_MAX deep per task.
 * sluice_cleanup_push returns SLUICE_EOVERFLOW when full and SLUICE_EINVAL
 * outside a task; sluice_cleanup_pop(run) pops one and runs it if `run`.
 */
#define SLUICE_CLEANUP_MAX 16
SLUICE_API sluice_err sluice_cleanup_push(void (*fn)(void *arg), void *arg);
SLUICE_API void sluice_cleanup_pop(bool run);

#endif /* SLUICE_TASK_H */
