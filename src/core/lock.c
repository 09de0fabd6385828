/* SPDX-License-Identifier: MIT */
/*
 * hetmem - spinlocks and mutexes on futexes.
 */
#include <sched.h>

#include "core/internal.h"

/**
 * DOC: The futex lock
 *
 * One three-state futex lock (0 free, 1 locked, 2 locked and maybe
 * contended) serves both the spinlock and the mutex role. The uncontended
 * path is one compare-and-swap to take and one exchange to release; only a
 * release that finds state 2 enters the kernel to wake a sleeper. Before
 * sleeping, a contender spins for a short while, because fence locks are
 * held for a handful of instructions and a sleep/wake pair costs far more
 * than the wait it would save.
 *
 * The holder's thread id is kept beside the word. It answers "is this lock
 * held by me" cheaply (the _locked fence functions and
 * hetmem_assert_spin_held() need that even with the dependency checker
 * off) and it makes a deadlock on oneself diagnosable in a debugger.
 *
 * Acquire and release are reported to the lock-dependency checker with the
 * caller's return address as the site.
 */

/**
 * DOC: Deferred wake-ups
 *
 * Fence callbacks run under the fence lock, and the most common callback
 * wakes a thread blocked in dma_fence_wait(). Waking it there makes the
 * waiter run into the lock it needs to dequeue itself and sleep again:
 * one extra sleep/wake pair per signal, measured at four times the cost of
 * a bare futex wake-up. Such wakes are queued per thread and issued when
 * the thread releases its last spinlock, as the kernel's wake_q does for
 * the same reason.
 */

#define SPIN_TRIES 100
#define WAKE_QUEUE_LEN 16

/* Spinlocks held by this thread, and wakes waiting for the last release. */
static HETMEM_TLS_HOT unsigned int spin_depth;
static HETMEM_TLS_HOT unsigned int wake_len;
static __thread uint32_t *wake_queue[WAKE_QUEUE_LEN];

static void flush_wakes(void)
{
	while (wake_len)
		hetmem_futex_wake(wake_queue[--wake_len], 1);
}

bool hetmem_in_atomic(void)
{
	return spin_depth != 0;
}

void hetmem_futex_wake_after_unlock(uint32_t *word)
{
	if (!spin_depth || wake_len == WAKE_QUEUE_LEN) {
		hetmem_futex_wake(word, 1);
		return;
	}
	wake_queue[wake_len++] = word;
}

static void lock_init(struct hetmem_futex_lock *lock, const char *name,
		      const struct hetmem_lock_class_key *key,
		      unsigned int flags)
{
	__atomic_store_n(&lock->val, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&lock->owner, 0, __ATOMIC_RELAXED);
	hetmem_lockdep_init_map(&lock->dep_map, name, key, flags);
}

static bool lock_try(struct hetmem_futex_lock *lock)
{
	uint32_t zero = 0;

	return __atomic_compare_exchange_n(&lock->val, &zero, 1, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void lock_slow(struct hetmem_futex_lock *lock)
{
	int i;

	for (i = 0; i < SPIN_TRIES; i++) {
		if (__atomic_load_n(&lock->val, __ATOMIC_RELAXED) == 0 &&
		    lock_try(lock))
			return;
		__builtin_ia32_pause();
	}
	/* Announce a sleeper (state 2) so that the holder wakes us. */
	while (__atomic_exchange_n(&lock->val, 2, __ATOMIC_ACQUIRE) != 0)
		hetmem_futex_wait(&lock->val, 2, -1, false);
}

static void lock_acquire(struct hetmem_futex_lock *lock, const void *site)
{
	hetmem_lockdep_acquire(&lock->dep_map, 0, false, site);
	if (hetmem_unlikely(!lock_try(lock)))
		lock_slow(lock);
	__atomic_store_n(&lock->owner, hetmem_gettid(), __ATOMIC_RELAXED);
}

static bool lock_tryacquire(struct hetmem_futex_lock *lock, const void *site)
{
	if (!lock_try(lock))
		return false;
	__atomic_store_n(&lock->owner, hetmem_gettid(), __ATOMIC_RELAXED);
	hetmem_lockdep_acquire(&lock->dep_map, 0, true, site);
	return true;
}

static void lock_release(struct hetmem_futex_lock *lock, const void *site)
{
	hetmem_lockdep_release(&lock->dep_map, site);
	__atomic_store_n(&lock->owner, 0, __ATOMIC_RELAXED);
	if (__atomic_exchange_n(&lock->val, 0, __ATOMIC_RELEASE) == 2)
		hetmem_futex_wake(&lock->val, 1);
}

static bool lock_is_locked(struct hetmem_futex_lock *lock)
{
	return __atomic_load_n(&lock->val, __ATOMIC_RELAXED) != 0;
}

static bool lock_is_held(struct hetmem_futex_lock *lock)
{
	return lock_is_locked(lock) &&
	       __atomic_load_n(&lock->owner, __ATOMIC_RELAXED) == hetmem_gettid();
}

/**
 * hetmem_spin_lock_init_key() - initialise a spinlock with a lock class
 * @lock: the lock
 * @name: name shown in dependency reports
 * @key: static object identifying the lock class; NULL makes @lock its
 *	own class
 *
 * Most callers use the hetmem_spin_lock_init() macro, which supplies a
 * per-call-site key exactly like the kernel's spin_lock_init().
 *
 * Context: Any thread; @lock must not be in use.
 * Return: nothing.
 */
HETMEM_API void hetmem_spin_lock_init_key(hetmem_spinlock_t *lock,
					  const char *name,
					  const struct hetmem_lock_class_key *key)
{
	lock_init(lock, name, key, HETMEM_LOCKDEP_ATOMIC);
}

/**
 * hetmem_spin_lock() - take a spinlock
 * @lock: the lock
 *
 * Spins briefly, then sleeps on the futex. Holding a spinlock is atomic
 * context for the dependency checker.
 *
 * Context: Any thread; must not already hold @lock (self-deadlock).
 * Return: nothing.
 */
HETMEM_API void hetmem_spin_lock(hetmem_spinlock_t *lock)
{
	lock_acquire(lock, HETMEM_RET_IP);
	spin_depth++;
}

/**
 * hetmem_spin_trylock() - take a spinlock if it is free
 * @lock: the lock
 *
 * Context: Any thread; never blocks.
 * Return: true if @lock was taken, false if somebody holds it.
 */
HETMEM_API bool hetmem_spin_trylock(hetmem_spinlock_t *lock)
{
	if (!lock_tryacquire(lock, HETMEM_RET_IP))
		return false;
	spin_depth++;
	return true;
}

/**
 * hetmem_spin_unlock() - release a spinlock
 * @lock: the lock, held by the caller
 *
 * Context: The thread that took @lock.
 * Return: nothing.
 */
HETMEM_API void hetmem_spin_unlock(hetmem_spinlock_t *lock)
{
	lock_release(lock, HETMEM_RET_IP);
	if (--spin_depth == 0 && hetmem_unlikely(wake_len))
		flush_wakes();
}

/**
 * hetmem_spin_is_locked() - is the spinlock held by anyone
 * @lock: the lock
 *
 * Context: Any thread; the answer may be stale by the time it is used.
 * Return: true if held, false if free.
 */
HETMEM_API bool hetmem_spin_is_locked(hetmem_spinlock_t *lock)
{
	return lock_is_locked(lock);
}

/**
 * hetmem_spin_is_held() - is the spinlock held by the calling thread
 * @lock: the lock
 *
 * Context: Any thread.
 * Return: true if the caller holds @lock, false otherwise.
 */
HETMEM_API bool hetmem_spin_is_held(hetmem_spinlock_t *lock)
{
	return lock_is_held(lock);
}

/**
 * hetmem_mutex_init_key() - initialise a mutex with a lock class
 * @lock: the mutex
 * @name: name shown in dependency reports
 * @key: static object identifying the lock class; NULL makes @lock its
 *	own class
 *
 * Context: Any thread; @lock must not be in use.
 * Return: nothing.
 */
HETMEM_API void hetmem_mutex_init_key(struct hetmem_mutex *lock,
				      const char *name,
				      const struct hetmem_lock_class_key *key)
{
	lock_init(&lock->base, name, key, 0);
}

/**
 * hetmem_mutex_lock() - take a mutex, sleeping if needed
 * @lock: the mutex
 *
 * Context: May sleep: reported by the checker when called with a spinlock
 * held or from a fence callback. Must not already hold @lock.
 * Return: nothing.
 */
HETMEM_API void hetmem_mutex_lock(struct hetmem_mutex *lock)
{
	hetmem_might_sleep(HETMEM_RET_IP);
	lock_acquire(&lock->base, HETMEM_RET_IP);
}

/**
 * hetmem_mutex_trylock() - take a mutex if it is free
 * @lock: the mutex
 *
 * Context: Any thread; never blocks.
 * Return: true if @lock was taken, false if somebody holds it.
 */
HETMEM_API bool hetmem_mutex_trylock(struct hetmem_mutex *lock)
{
	return lock_tryacquire(&lock->base, HETMEM_RET_IP);
}

/**
 * hetmem_mutex_unlock() - release a mutex
 * @lock: the mutex, held by the caller
 *
 * Context: The thread that took @lock.
 * Return: nothing.
 */
HETMEM_API void hetmem_mutex_unlock(struct hetmem_mutex *lock)
{
	lock_release(&lock->base, HETMEM_RET_IP);
}

/**
 * hetmem_mutex_is_locked() - is the mutex held by anyone
 * @lock: the mutex
 *
 * Context: Any thread; the answer may be stale by the time it is used.
 * Return: true if held, false if free.
 */
HETMEM_API bool hetmem_mutex_is_locked(struct hetmem_mutex *lock)
{
	return lock_is_locked(&lock->base);
}

/**
 * hetmem_mutex_is_held() - is the mutex held by the calling thread
 * @lock: the mutex
 *
 * Context: Any thread.
 * Return: true if the caller holds @lock, false otherwise.
 */
HETMEM_API bool hetmem_mutex_is_held(struct hetmem_mutex *lock)
{
	return lock_is_held(&lock->base);
}
