/* tests/docs/examples/config.h - what docs/config.md's C example calls but
 * does not define (see tests/docs/c_examples.py). */
#include <stdio.h>

#include <sluice/sluice.h>

void persist_for_retry(const sluice_abandoned *task, void *user);
void stop_consuming(void *user);
void start_consuming(void *app, sluice_pool *pool);
extern void *app;
