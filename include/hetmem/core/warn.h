/* SPDX-License-Identifier: MIT */
/*
 * hetmem - WARN machinery.
 */
#ifndef HETMEM_CORE_WARN_H
#define HETMEM_CORE_WARN_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Warnings
 *
 * The kernel reports API misuse it can survive (signalling a fence twice is
 * not one of those, it is an ordinary -EINVAL; setting an error after
 * signalling is) with WARN_ON and carries on. hetmem does the same through
 * HETMEM_WARN_ON(): the report goes to stderr, a counter is bumped, and an
 * optional handler sees the text. The mode decides what happens next:
 *
 * - HETMEM_WARN_LOG: print and continue (the default);
 * - HETMEM_WARN_FATAL: print and abort(), which the test harness uses so
 *   that any unexpected warning fails the test case;
 * - HETMEM_WARN_SILENT: count and call the handler, print nothing; tests
 *   that provoke a warning on purpose use it and assert the count.
 *
 * The environment variable HETMEM_WARN=log|fatal|silent sets the initial
 * mode. Lock-dependency reports (see lockdep.h) are warnings too.
 */
enum hetmem_warn_mode {
	HETMEM_WARN_LOG = 0,
	HETMEM_WARN_FATAL = 1,
	HETMEM_WARN_SILENT = 2,
};

typedef void (*hetmem_warn_handler_t)(const char *msg, void *data);

HETMEM_API void hetmem_set_warn_mode(enum hetmem_warn_mode mode);
HETMEM_API enum hetmem_warn_mode hetmem_get_warn_mode(void);
HETMEM_API unsigned long hetmem_warn_count(void);
HETMEM_API void hetmem_set_warn_handler(hetmem_warn_handler_t fn, void *data);
HETMEM_API void hetmem_warn(const char *file, int line, const char *func,
			    const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Evaluates to the condition, so it can guard an early return. */
#define HETMEM_WARN_ON(cond) __extension__({				\
	bool __hetmem_c = !!(cond);					\
	if (hetmem_unlikely(__hetmem_c))				\
		hetmem_warn(__FILE__, __LINE__, __func__, "WARN_ON(%s)", #cond); \
	hetmem_unlikely(__hetmem_c);					\
})

#define HETMEM_WARN(cond, ...) __extension__({				\
	bool __hetmem_c = !!(cond);					\
	if (hetmem_unlikely(__hetmem_c))				\
		hetmem_warn(__FILE__, __LINE__, __func__, __VA_ARGS__); \
	hetmem_unlikely(__hetmem_c);					\
})

HETMEM_END_DECLS

#endif /* HETMEM_CORE_WARN_H */
