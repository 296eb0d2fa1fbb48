/* tests/docs/examples/service.h - what docs/service.md's C examples call
 * but do not define (see tests/docs/c_examples.py). */
#include <stdio.h>

#include <sluice/sluice.h>
#include <sluice/config.h>

void persist_for_retry(const sluice_abandoned *task, void *user);
void stop_consuming(void *user);
void start_consuming(void *app, sluice_pool *pool);
int transcribe(void *job);
extern void *app;
extern void *job;
extern sluice_config *cfg;
extern sluice_service *svc;
extern char err[256];
