/*
 * src/service/service_internal.h - what the service area shares with its
 * tests: the fault-injection hook for thread creation.
 *
 * sluice__service_spawn is how the lifecycle (and the service) start every
 * thread of their own. It is pthread_create unless a test replaced it to
 * make thread creation fail (the RLIMIT_NPROC / RLIMIT_AS case of issue
 * 12.11, which a test running as root cannot produce with rlimits). Only
 * tests write it, before any lifecycle exists; everything else reads it.
 */
#ifndef SLUICE_SERVICE_INTERNAL_H
#define SLUICE_SERVICE_INTERNAL_H

#include <pthread.h>

typedef int (*sluice__spawn_fn)(pthread_t *thread, void *(*start)(void *), void *arg, const char *what);

/* Returns 0 or an errno value, as pthread_create does. `what` names the
 * thread for a test that fails only some ("signal", "reload", "drain"). */
extern sluice__spawn_fn sluice__service_spawn;

int sluice__service_spawn_default(pthread_t *thread, void *(*start)(void *), void *arg, const char *what);

#endif /* SLUICE_SERVICE_INTERNAL_H */
