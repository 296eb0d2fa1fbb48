/*
 * sluice/fault.h - the opt-in fault guard for pool workers.
 *
 * A pool created with fault_mode != SLUICE_FAULT_OFF installs (once per
 * process) handlers for SIGSEGV, SIGBUS, SIGFPE and SIGILL on an alternate
 * signal stack per worker. When one of these signals is raised by a task on
 * a guarded worker:
 *
 *   SLUICE_FAULT_RERAISE  writes "sluice: fatal SIGSEGV in pool P worker N
 *                         task L (re-raising: the process dumps core)" (task
 *                         L when the task has a label) and the backtrace to
 *                         stderr (async-signal-safe),
 *                         counts a panic, restores the default action and
 *                         re-raises: the process dies with a core dump, as
 *                         it would without Sluice, but the log says which
 *                         pool and task. This is the default: after a wild
 *                         write, memory may be corrupt, and going on can turn
 *                         a crash into silent data corruption.
 *   SLUICE_FAULT_RECOVER  unwinds the faulting worker (siglongjmp), counts a
 *                         panic, calls the panic handler (with signal set),
 *                         retires that worker and starts a replacement. Use
 *                         only when the faulting code cannot corrupt shared
 *                         state (for example a parser of untrusted input
 *                         that reads out of bounds), and alert on it.
 *
 * Signals raised on threads that are not guarded workers go to the handler
 * that was installed before Sluice's (or the default action).
 */
#ifndef SLUICE_FAULT_H
#define SLUICE_FAULT_H

#include "sluice/common.h"

/* sluice_fault_guard_installed - true once the process-wide handlers have
 * been installed (by the first pool with fault_mode != OFF). It does not
 * notice a handler installed over Sluice's later (sigaction by other
 * code): a guarded pool made after that is not guarded. */
SLUICE_API int sluice_fault_guard_installed(void);

#endif /* SLUICE_FAULT_H */
