/* SPDX-License-Identifier: MIT */
/*
 * hetmem - wound/wait mutexes: deadlock-free locking of many objects.
 *
 * Tracks the semantics of Linux v6.17 include/linux/ww_mutex.h (Wound-Wait
 * and Wait-Die classes, -EALREADY, -EDEADLK back-off, ww_mutex_trylock()
 * with a context).
 */
#ifndef HETMEM_RESV_WW_MUTEX_H
#define HETMEM_RESV_WW_MUTEX_H

#include <stdbool.h>
#include <stdint.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/list.h>
#include <hetmem/core/lockdep.h>
#include <hetmem/core/spinlock.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Wound/wait mutexes
 *
 * A ww_mutex is a sleeping mutex that can be taken as part of an acquire
 * context (struct ww_acquire_ctx). Every context draws a stamp from its
 * class when it starts; a lower stamp is an older, more important
 * transaction. When two contexts contend, the class algorithm decides
 * which one backs off with -EDEADLK, so that any set of mutexes of one
 * class can be locked in any order without deadlock:
 *
 * - Wait-Die (DEFINE_WD_CLASS): a younger context that holds locks and
 *   would wait for an older one dies at once.
 * - Wound-Wait (DEFINE_WW_CLASS): an older context that would wait for a
 *   younger holder marks the holder wounded; the holder backs off the
 *   next time it would have to block while holding locks.
 *
 * The back-off protocol is the kernel's: on -EDEADLK release every lock
 * taken with the context, take the contended one with ww_mutex_lock_slow()
 * and lock the rest again. Locking with a NULL context makes the ww_mutex
 * a plain mutex.
 *
 * All structures here are embeddable (struct dma_resv contains a
 * struct ww_mutex) and so part of the ABI; the debugging fields of
 * struct ww_acquire_ctx are always present. Fields are for reading by
 * ported code exactly as the kernel's are (lock->ctx, ctx->acquired,
 * ctx->stamp); change them only through the functions.
 */

/**
 * struct ww_class - a family of ww_mutexes locked together
 * @stamp: stamp counter; ww_acquire_init() takes the next value, the first
 *	context gets 1. Updated atomically; wraps around safely.
 * @acquire_key: lock class of the acquire contexts (dependency checker)
 * @mutex_key: lock class of the mutexes
 * @acquire_name: name of the context class in dependency reports
 * @mutex_name: name of the mutex class in dependency reports
 * @is_wait_die: 1 for Wait-Die, 0 for Wound-Wait
 *
 * Define one with DEFINE_WW_CLASS() or DEFINE_WD_CLASS(); a class must
 * live as long as any mutex or context that uses it (normally static).
 */
struct ww_class {
	unsigned long stamp;
	struct hetmem_lock_class_key acquire_key;
	struct hetmem_lock_class_key mutex_key;
	const char *acquire_name;
	const char *mutex_name;
	unsigned int is_wait_die;
};

#define __WW_CLASS_INITIALIZER(ww_class, wd)				\
	{ 0, { 0 }, { 0 }, #ww_class "_acquire", #ww_class "_mutex", (wd) }

/* A Wound-Wait class: older contexts preempt younger holders. */
#define DEFINE_WW_CLASS(classname) \
	struct ww_class classname = __WW_CLASS_INITIALIZER(classname, 0)

/* A Wait-Die class: younger contexts back off instead of waiting. */
#define DEFINE_WD_CLASS(classname) \
	struct ww_class classname = __WW_CLASS_INITIALIZER(classname, 1)

struct ww_mutex;

/**
 * struct ww_acquire_ctx - one transaction locking mutexes of a class
 * @task: thread id of the thread that owns the context
 * @wake: futex word the owning thread sleeps on while it waits for a
 *	mutex; bumped by whoever hands it a mutex or wounds it
 * @stamp: age of the transaction; lower is older
 * @acquired: number of mutexes currently held with this context
 * @wounded: set (atomically) by an older Wound-Wait context that waits for
 *	a mutex held here; cleared when a lock call starts with nothing held
 * @is_wait_die: algorithm, copied from the class
 * @done_acquired: set by ww_acquire_done(); further locking is reported
 * @ww_class: class the context was initialised with
 * @contending_lock: the mutex that returned -EDEADLK, until it is taken
 *	again (checked by ww_mutex_lock_slow())
 * @dep_map: pseudo-lock standing for the context in the dependency checker
 * @deadlock_inject: non-zero to inject -EDEADLK (test mode, see
 *	hetmem_ww_acquire_inject_deadlocks())
 * @deadlock_inject_interval: successful locks between two injections
 * @deadlock_inject_countdown: successful locks until the next injection
 */
struct ww_acquire_ctx {
	int32_t task;
	uint32_t wake;
	unsigned long stamp;
	unsigned int acquired;
	unsigned short wounded;
	unsigned short is_wait_die;
	unsigned int done_acquired;
	struct ww_class *ww_class;
	struct ww_mutex *contending_lock;
	struct hetmem_lockdep_map dep_map;
	unsigned int deadlock_inject;
	unsigned int deadlock_inject_interval;
	unsigned int deadlock_inject_countdown;
};

/**
 * struct hetmem_ww_mutex_base - the mutex proper inside a ww_mutex
 * @state: HETMEM_WW_LOCKED, HETMEM_WW_WAITERS and HETMEM_WW_CTX bits,
 *	changed atomically; HETMEM_WW_CTX says that the holder took the mutex
 *	with a context (which it may not have stored in @ctx yet)
 * @owner: thread id of the holder, 0 when free
 * @wait_lock: protects @wait_list and every slow-path state change
 * @wait_list: sleeping lockers: contexts ordered by stamp, context-less
 *	lockers in arrival order
 * @dep_map: the mutex in the dependency checker (class: ww_class mutex_key)
 *
 * Named "base" in struct ww_mutex like the kernel's embedded struct mutex,
 * so that lockdep_assert_held(&obj->lock.base) keeps compiling.
 */
struct hetmem_ww_mutex_base {
	uint32_t state;
	int32_t owner;
	hetmem_spinlock_t wait_lock;
	struct hetmem_list_head wait_list;
	struct hetmem_lockdep_map dep_map;
};

#define HETMEM_WW_LOCKED	0x1u
#define HETMEM_WW_WAITERS	0x2u
#define HETMEM_WW_CTX		0x4u

/**
 * struct ww_mutex - a wound/wait mutex
 * @base: the mutex, its waiters and its checker map
 * @ctx: context holding the mutex, NULL when free or held without one;
 *	read it with an atomic load (hetmem_ww_mutex_locking_ctx())
 * @ww_class: class given to ww_mutex_init()
 */
struct ww_mutex {
	struct hetmem_ww_mutex_base base;
	struct ww_acquire_ctx *ctx;
	struct ww_class *ww_class;
};

HETMEM_API void ww_mutex_init(struct ww_mutex *lock,
			      struct ww_class *ww_class);
HETMEM_API void ww_mutex_destroy(struct ww_mutex *lock);
HETMEM_API bool ww_mutex_is_locked(struct ww_mutex *lock);

HETMEM_API void ww_acquire_init(struct ww_acquire_ctx *ctx,
				struct ww_class *ww_class);
HETMEM_API void ww_acquire_done(struct ww_acquire_ctx *ctx);
HETMEM_API void ww_acquire_fini(struct ww_acquire_ctx *ctx);

HETMEM_API int ww_mutex_lock(struct ww_mutex *lock,
			     struct ww_acquire_ctx *ctx);
HETMEM_API int ww_mutex_lock_interruptible(struct ww_mutex *lock,
					   struct ww_acquire_ctx *ctx);
HETMEM_API void ww_mutex_lock_slow(struct ww_mutex *lock,
				   struct ww_acquire_ctx *ctx);
HETMEM_API int ww_mutex_lock_slow_interruptible(struct ww_mutex *lock,
						struct ww_acquire_ctx *ctx);
HETMEM_API int ww_mutex_trylock(struct ww_mutex *lock,
				struct ww_acquire_ctx *ctx);
HETMEM_API void ww_mutex_unlock(struct ww_mutex *lock);

HETMEM_API bool hetmem_ww_mutex_is_held(struct ww_mutex *lock);
HETMEM_API void hetmem_ww_acquire_inject_deadlocks(struct ww_acquire_ctx *ctx,
						   bool on);

/*
 * The context holding @lock, or NULL (free, or held without a context);
 * what the kernel's dma_resv_locking_ctx() reads. Only the answer "my own
 * context" is stable without holding @lock.
 */
static inline struct ww_acquire_ctx *
hetmem_ww_mutex_locking_ctx(struct ww_mutex *lock)
{
	return __atomic_load_n(&lock->ctx, __ATOMIC_ACQUIRE);
}

HETMEM_END_DECLS

#endif /* HETMEM_RESV_WW_MUTEX_H */
