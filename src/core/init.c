/* SPDX-License-Identifier: MIT */
/*
 * hetmem - process-wide setup: thread ids and fork handling.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/internal.h"

/**
 * DOC: Fork
 *
 * A forked child starts with one thread, a copy of the parent's memory and
 * hetmem's state in it. Two things must be repaired there: cached thread
 * ids (the child's only thread has a new one) and liburcu's call_rcu
 * worker, whose thread did not survive. hetmem_core_init() registers the
 * handlers once per process, from a constructor, so that they run before
 * any layer's own handlers (registered later, run earlier in the child) can
 * use locks or RCU.
 */

static HETMEM_TLS_HOT int cached_tid;

int hetmem_gettid(void)
{
	int tid = cached_tid;

	if (hetmem_unlikely(!tid)) {
		tid = (int)syscall(SYS_gettid);
		cached_tid = tid;
	}
	return tid;
}

static void child_after_fork(void)
{
	cached_tid = 0;
}

static pthread_once_t core_once = PTHREAD_ONCE_INIT;

static void core_init_once(void)
{
	void (*prepare)(void), (*parent)(void), (*child)(void);

	/* Child handlers run in registration order: thread id first. */
	pthread_atfork(NULL, NULL, child_after_fork);
	hetmem_rcu_fork_handlers(&prepare, &parent, &child);
	pthread_atfork(prepare, parent, child);
}

void hetmem_core_init(void)
{
	pthread_once(&core_once, core_init_once);
}

__attribute__((constructor)) static void hetmem_core_ctor(void)
{
	hetmem_core_init();
}
