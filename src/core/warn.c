/* SPDX-License-Identifier: MIT */
/*
 * hetmem - warnings.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/**
 * DOC: Warning delivery
 *
 * A warning is formatted once into a bounded buffer, counted, handed to the
 * handler (if any), printed unless the mode is silent, and turned into an
 * abort() in fatal mode. The mode starts from HETMEM_WARN in the
 * environment, read on first use, so a test runner can make every warning
 * fatal without touching the code under test. The handler pointer and
 * its data are read as one pair under a small mutex, so a handler being
 * replaced never sees the other's data.
 */

static int warn_mode = -1;
static unsigned long warn_total;
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static hetmem_warn_handler_t handler_fn;
static void *handler_data;

static enum hetmem_warn_mode mode_from_env(void)
{
	const char *env = getenv("HETMEM_WARN");

	if (env && !strcmp(env, "fatal"))
		return HETMEM_WARN_FATAL;
	if (env && !strcmp(env, "silent"))
		return HETMEM_WARN_SILENT;
	return HETMEM_WARN_LOG;
}

/**
 * hetmem_get_warn_mode() - current warning mode
 *
 * Context: Any thread.
 * Return: the mode set by hetmem_set_warn_mode(), or the one HETMEM_WARN
 * selected, or HETMEM_WARN_LOG.
 */
HETMEM_API enum hetmem_warn_mode hetmem_get_warn_mode(void)
{
	int mode = __atomic_load_n(&warn_mode, __ATOMIC_RELAXED);

	if (mode < 0) {
		mode = mode_from_env();
		__atomic_store_n(&warn_mode, mode, __ATOMIC_RELAXED);
	}
	return (enum hetmem_warn_mode)mode;
}

/**
 * hetmem_set_warn_mode() - choose what a warning does
 * @mode: HETMEM_WARN_LOG, HETMEM_WARN_FATAL or HETMEM_WARN_SILENT
 *
 * Context: Any thread; takes effect for the next warning.
 * Return: nothing.
 */
HETMEM_API void hetmem_set_warn_mode(enum hetmem_warn_mode mode)
{
	__atomic_store_n(&warn_mode, (int)mode, __ATOMIC_RELAXED);
}

/**
 * hetmem_warn_count() - number of warnings since the process started
 *
 * Context: Any thread.
 * Return: the count (silent warnings included).
 */
HETMEM_API unsigned long hetmem_warn_count(void)
{
	return __atomic_load_n(&warn_total, __ATOMIC_RELAXED);
}

/**
 * hetmem_set_warn_handler() - observe warnings
 * @fn: called with the formatted text of every warning, or NULL to remove
 * @data: passed to @fn
 *
 * The handler runs in the warning thread, possibly with library locks
 * held (a spinlock, a fence lock): it must not call back into hetmem.
 *
 * Context: Any thread.
 * Return: nothing.
 */
HETMEM_API void hetmem_set_warn_handler(hetmem_warn_handler_t fn, void *data)
{
	pthread_mutex_lock(&handler_lock);
	handler_fn = fn;
	handler_data = data;
	pthread_mutex_unlock(&handler_lock);
}

static void deliver(const char *msg)
{
	pthread_mutex_lock(&handler_lock);
	if (handler_fn)
		handler_fn(msg, handler_data);
	pthread_mutex_unlock(&handler_lock);
}

/**
 * hetmem_warn() - report a recoverable misuse or a checker finding
 * @file: source file of the report
 * @line: source line
 * @func: function name
 * @fmt: printf format of the message
 *
 * Usually reached through HETMEM_WARN_ON() / HETMEM_WARN().
 *
 * Context: Any thread, any context (also under spinlocks and in fence
 * callbacks); aborts the process in HETMEM_WARN_FATAL mode.
 * Return: nothing.
 */
HETMEM_API void hetmem_warn(const char *file, int line, const char *func,
			    const char *fmt, ...)
{
	enum hetmem_warn_mode mode = hetmem_get_warn_mode();
	char msg[4096];
	int n;
	va_list ap;

	n = snprintf(msg, sizeof(msg), "hetmem: WARNING at %s:%d %s(): ", file,
		     line, func);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	__atomic_add_fetch(&warn_total, 1, __ATOMIC_RELAXED);
	deliver(msg);
	if (mode != HETMEM_WARN_SILENT)
		fprintf(stderr, "%s\n", msg);
	if (mode == HETMEM_WARN_FATAL)
		abort();
}
