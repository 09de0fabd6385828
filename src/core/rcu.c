/* SPDX-License-Identifier: MIT */
/*
 * hetmem - RCU on liburcu's bulletproof flavour.
 */
#include <urcu-bp.h>
#include <urcu/compiler.h>

#include "core/internal.h"

/**
 * DOC: Why liburcu-bp
 *
 * The reclamation scheme must let any thread read without registering
 * (hetmem is a library; it does not own its callers' threads), keep
 * read-side sections cheap enough for fence lookups, and defer frees
 * without blocking the releasing thread, which may be inside a fence
 * callback under a spinlock. liburcu's bulletproof flavour meets all three:
 * threads register themselves on their first read lock, readers cost a few
 * instructions plus a function call, and call_rcu() hands the free to a
 * worker thread. Epoch schemes written here would need the same
 * registration machinery; type-stable pools would leak the memory of every
 * fence type users define. liburcu is LGPL-2.1 and linked dynamically;
 * no liburcu code is inlined into hetmem (no _LGPL_SOURCE).
 *
 * struct hetmem_rcu_head holds liburcu's head (two pointers) and the
 * caller's callback, so that a trampoline can add the ThreadSanitizer
 * annotation described in rcu.h before the callback frees anything.
 */

struct rcu_wrap {
	struct rcu_head head;
	hetmem_rcu_callback_t func;
};

_Static_assert(sizeof(struct rcu_wrap) <= sizeof(struct hetmem_rcu_head),
	       "hetmem_rcu_head too small for liburcu's rcu_head");

/*
 * Besides "readers done -> callback", TSan must see "call_rcu -> its
 * callback" (the head travels through liburcu's queue) and "callbacks ->
 * rcu_barrier returns". liburcu's barrier also hands heap blocks it
 * allocates in the caller to its worker, which frees them: the caller's
 * accesses inside urcu_bp_barrier() are therefore hidden from TSan.
 */
#ifdef HETMEM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
static char grace_token, barrier_token;
#define tsan_reader_done() __tsan_release(&grace_token)
#define tsan_grace_elapsed() __tsan_acquire(&grace_token)
#define tsan_queued(head) __tsan_release(head)
#define tsan_dequeued(head) __tsan_acquire(head)
#define tsan_callback_done() __tsan_release(&barrier_token)
#define tsan_barrier_begin() __tsan_ignore_thread_begin()
#define tsan_barrier_end() do {						\
	__tsan_ignore_thread_end();					\
	__tsan_acquire(&barrier_token);					\
} while (0)
#else
#define tsan_reader_done() do { } while (0)
#define tsan_grace_elapsed() do { } while (0)
#define tsan_queued(head) do { } while (0)
#define tsan_dequeued(head) do { } while (0)
#define tsan_callback_done() do { } while (0)
#define tsan_barrier_begin() do { } while (0)
#define tsan_barrier_end() do { } while (0)
#endif

/**
 * hetmem_rcu_read_lock() - enter an RCU read-side section
 *
 * Sections nest. Objects reached through RCU-published pointers stay
 * allocated until the outermost section ends.
 *
 * Context: Any thread, including fence callbacks; never blocks.
 * Return: nothing.
 */
HETMEM_API void hetmem_rcu_read_lock(void)
{
	urcu_bp_read_lock();
}

/**
 * hetmem_rcu_read_unlock() - leave an RCU read-side section
 *
 * Context: The thread that entered the section.
 * Return: nothing.
 */
HETMEM_API void hetmem_rcu_read_unlock(void)
{
	tsan_reader_done();
	urcu_bp_read_unlock();
}

/**
 * hetmem_rcu_read_ongoing() - is the caller inside a read-side section
 *
 * Context: Any thread.
 * Return: true inside a section, false outside.
 */
HETMEM_API bool hetmem_rcu_read_ongoing(void)
{
	return urcu_bp_read_ongoing();
}

static void rcu_trampoline(struct rcu_head *head)
{
	struct rcu_wrap *w = caa_container_of(head, struct rcu_wrap, head);

	tsan_dequeued(w);
	tsan_grace_elapsed();
	w->func((struct hetmem_rcu_head *)(void *)w);
	tsan_callback_done();
}

/**
 * hetmem_call_rcu() - run a callback after a grace period
 * @head: storage inside the object to be reclaimed
 * @func: called with @head once every reader that might see the object
 *	has left its section; usually frees the object
 *
 * @func runs on liburcu's worker thread, never in the caller.
 *
 * Context: Any thread, any context, including fence callbacks and RCU
 * read-side sections; never blocks.
 * Return: nothing.
 */
HETMEM_API void hetmem_call_rcu(struct hetmem_rcu_head *head,
				hetmem_rcu_callback_t func)
{
	struct rcu_wrap *w = (struct rcu_wrap *)(void *)head;

	w->func = func;
	tsan_queued(w);
	urcu_bp_call_rcu(&w->head, rcu_trampoline);
}

/**
 * hetmem_synchronize_rcu() - wait for a grace period
 *
 * Context: Sleeps; must not be called inside a read-side section or with
 * a spinlock held.
 * Return: nothing.
 */
HETMEM_API void hetmem_synchronize_rcu(void)
{
	hetmem_might_sleep(HETMEM_RET_IP);
	urcu_bp_synchronize_rcu();
	tsan_grace_elapsed();
}

/**
 * hetmem_rcu_barrier() - wait until every queued hetmem_call_rcu() callback ran
 *
 * Context: Sleeps; must not be called inside a read-side section, with a
 * spinlock held, or from an RCU callback.
 * Return: nothing.
 */
HETMEM_API void hetmem_rcu_barrier(void)
{
	hetmem_might_sleep(HETMEM_RET_IP);
	tsan_barrier_begin();
	urcu_bp_barrier();
	tsan_barrier_end();
}

static void rcu_prepare_fork(void)
{
	urcu_bp_call_rcu_before_fork();
	urcu_bp_before_fork();
}

static void rcu_parent_after_fork(void)
{
	urcu_bp_after_fork_parent();
	urcu_bp_call_rcu_after_fork_parent();
}

static void rcu_child_after_fork(void)
{
	urcu_bp_after_fork_child();
	urcu_bp_call_rcu_after_fork_child();
}

void hetmem_rcu_fork_handlers(void (**prepare)(void), void (**parent)(void),
			      void (**child)(void))
{
	*prepare = rcu_prepare_fork;
	*parent = rcu_parent_after_fork;
	*child = rcu_child_after_fork;
}
