/* tests/docs/examples/sync.h - what docs/sync.md's metrics example uses but
 * does not define: the primitives made in the page's other examples (see
 * tests/docs/c_examples.py). */
#include <sluice/sluice.h>

extern sluice_metrics *reg;
extern sluice_sem *sem;
extern sluice_breaker *br;
extern sluice_limiter *lim;
extern sluice_keyed_limiter *per_tenant;
extern sluice_group *g;
extern sluice_retry *gateway;
extern sluice_retry_budget *budget;
extern sluice_keyed *ledger;
extern sluice_batcher *ch;
extern sluice_adaptive *downstream_limit;
