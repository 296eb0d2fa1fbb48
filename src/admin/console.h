/*
 * src/admin/console.h - the web console of the admin server (internal to
 * libsluice_admin; its route row is in console.c). See console.c.
 */
#ifndef SLUICE_ADMIN_CONSOLE_H
#define SLUICE_ADMIN_CONSOLE_H

#include <stddef.h>

/* The page, embedded at build time from src/admin/console/console.html:
 * NUL-terminated, static, *len (when len is not NULL) bytes without the
 * NUL. Thread-safe. */
const char *sluice__console_page(size_t *len);

#endif /* SLUICE_ADMIN_CONSOLE_H */
