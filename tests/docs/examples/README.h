/* tests/docs/examples/README.h - what README.md's C example calls but does
 * not define: the application's own types and functions (see
 * tests/docs/c_examples.py). */
#include <sluice/sluice.h>

struct notification;
int push_gateway_send(struct notification *n);
void requeue_durably(void *arg, const char *reason);
void die(const char *fmt, ...);
extern struct notification *n;
