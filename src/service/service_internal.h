/*
 * src/service/service_internal.h - what the service area shares with its
 * tests: the fault-injection hooks for thread creation and for the
 * allocation of a watcher event.
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
#include <stddef.h>

typedef int (*sluice__spawn_fn)(pthread_t *thread, void *(*start)(void *), void *arg, const char *what);

/* Returns 0 or an errno value, as pthread_create does. `what` names the
 * thread for a test that fails only some ("signal", "reload", "drain"). */
extern sluice__spawn_fn sluice__service_spawn;

int sluice__service_spawn_default(pthread_t *thread, void *(*start)(void *), void *arg, const char *what);

/* How service.c allocates the node of a watcher event posted from inside
 * a watcher call (queued until that call returns): malloc, unless a test
 * replaced it to return NULL (the ENOMEM paths of add_pool, watch and
 * set_ready called from a watcher). Only tests write it, while no watcher
 * call is in progress; the result is freed with free(). */
typedef void *(*sluice__alloc_fn)(size_t size);
extern sluice__alloc_fn sluice__service_event_alloc;

#endif /* SLUICE_SERVICE_INTERNAL_H */
