/* SPDX-License-Identifier: MIT */
/*
 * hetmem - reader-preferring read/write semaphores on a futex.
 */

/**
 * DOC: The read/write futex
 *
 * The whole lock state is one 32-bit word, count: the number of readers
 * holding the semaphore, or HETMEM_RWSEM_WRITER alone while a writer holds
 * it. A reader gets in by incrementing count whenever the writer bit is
 * clear, and a writer by changing count from 0 to the writer bit. Nothing
 * records that a writer is waiting, which is exactly what makes the lock
 * reader-preferring: readers never look at waiters, only at the writer bit.
 *
 * Sleepers of both kinds wait on count itself, passing the value they saw,
 * so a change that happens between their look and their sleep makes the
 * futex return at once. They announce themselves in a second word,
 * waiters, before sleeping. A release that empties the lock (last reader
 * out, or writer out) wakes everybody asleep if waiters is non-zero. The
 * announcement and the releaser's change of count are both sequentially
 * consistent read-modify-writes, so either the releaser sees the sleeper
 * announced and wakes it, or the sleeper's futex sees the new count and
 * does not sleep. A sleeper only ever sleeps while count is non-zero, and
 * whoever holds the lock then will bring it back to zero and wake it.
 *
 * Waking every sleeper rather than one is deliberate: readers woken after
 * a writer all get in together, and writers are rare enough in hetmem that
 * the few woken in vain do not matter. There is no spinning before
 * sleeping either: the read side is held across address-space walks, far
 * longer than a sleep/wake pair costs.
 *
 * Memory ordering: taking the lock is an acquire on count and releasing it
 * a release (sequentially consistent, for the waiters handshake), so the
 * critical sections are ordered for ThreadSanitizer too, which follows the
 * atomics and needs no annotation of the futex calls.
 */

/**
 * DOC: The read/write semaphore and the dependency checker
 *
 * Each down_* call is reported to the lock-dependency checker before it
 * may block, reads as shared acquisitions. Two threads reading at once are
 * invisible to the checker (it tracks held locks per thread), and the same
 * thread reading twice is allowed by both the checker and the lock: since
 * readers are admitted while a writer waits, a nested read cannot
 * deadlock. A read under a held write, or a write under any hold of the
 * same semaphore, is reported as recursive locking.
 *
 * The checker treats a read exactly like an exclusive acquisition when it
 * records lock order. With this reader-preferring lock that is
 * conservative: "read R then mutex M" in one thread and "M then read R" in
 * another cannot deadlock by themselves, yet form a reported cycle. They
 * only need a writer of R taking M, or holding R while somebody waits
 * for M, to become a real deadlock, so keep read sides ordered too.
 */

#include <limits.h>

#include <hetmem/core/rwsem.h>

#include "core/internal.h"

static void rwsem_wake_all(struct hetmem_rw_semaphore *sem)
{
	if (__atomic_load_n(&sem->waiters, __ATOMIC_SEQ_CST))
		hetmem_futex_wake(&sem->count, INT_MAX);
}

/* Sleep until count may differ from @seen. */
static void rwsem_sleep(struct hetmem_rw_semaphore *sem, uint32_t seen)
{
	__atomic_add_fetch(&sem->waiters, 1, __ATOMIC_SEQ_CST);
	hetmem_futex_wait(&sem->count, seen, -1, false);
	__atomic_sub_fetch(&sem->waiters, 1, __ATOMIC_RELAXED);
}

static bool rwsem_try_read(struct hetmem_rw_semaphore *sem)
{
	uint32_t c = __atomic_load_n(&sem->count, __ATOMIC_RELAXED);

	while (!(c & HETMEM_RWSEM_WRITER)) {
		if (__atomic_compare_exchange_n(&sem->count, &c, c + 1, true,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

static bool rwsem_try_write(struct hetmem_rw_semaphore *sem, uint32_t *seen)
{
	*seen = 0;
	return __atomic_compare_exchange_n(&sem->count, seen,
					   HETMEM_RWSEM_WRITER, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void rwsem_set_owner(struct hetmem_rw_semaphore *sem, int32_t tid)
{
	__atomic_store_n(&sem->owner, tid, __ATOMIC_RELAXED);
}

/**
 * hetmem_init_rwsem_key() - initialise a read/write semaphore
 * @sem: the semaphore
 * @name: name shown in dependency reports; the string must outlive @sem
 * @key: static object identifying the lock class; NULL makes @sem its own
 *	class
 *
 * Most callers use the hetmem_init_rwsem() macro, which supplies one key
 * per call site, as the kernel's init_rwsem() does. A semaphore can also be
 * initialised statically with HETMEM_RWSEM_INIT().
 *
 * Context: Any thread; @sem must not be in use.
 * Return: nothing.
 */
HETMEM_API void hetmem_init_rwsem_key(struct hetmem_rw_semaphore *sem,
				      const char *name,
				      const struct hetmem_lock_class_key *key)
{
	__atomic_store_n(&sem->count, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sem->waiters, 0, __ATOMIC_RELAXED);
	rwsem_set_owner(sem, 0);
	hetmem_lockdep_init_map(&sem->dep_map, name, key, 0);
}

/**
 * hetmem_down_read() - take the read side, sleeping if a writer holds it
 * @sem: the semaphore
 *
 * Any number of readers hold @sem together. A reader is admitted as soon
 * as no writer holds @sem, even while writers wait for it; only a writer
 * actually holding @sem makes it sleep. The same thread may therefore
 * take the read side again while holding it.
 *
 * Context: May sleep: reported by the checker when called with a spinlock
 * held. Must not hold the write side of @sem (self-deadlock).
 * Return: nothing.
 */
HETMEM_API void hetmem_down_read(struct hetmem_rw_semaphore *sem)
{
	hetmem_might_sleep(HETMEM_RET_IP);
	hetmem_lockdep_acquire(&sem->dep_map, 1, false, HETMEM_RET_IP);
	while (!rwsem_try_read(sem))
		rwsem_sleep(sem, HETMEM_RWSEM_WRITER);
}

/**
 * hetmem_down_read_trylock() - take the read side if no writer holds it
 * @sem: the semaphore
 *
 * Succeeds whenever no writer holds @sem, whether or not writers wait.
 *
 * Context: Any thread; never blocks.
 * Return: true if the read side was taken, false if a writer holds @sem.
 */
HETMEM_API bool hetmem_down_read_trylock(struct hetmem_rw_semaphore *sem)
{
	if (!rwsem_try_read(sem))
		return false;
	hetmem_lockdep_acquire(&sem->dep_map, 1, true, HETMEM_RET_IP);
	return true;
}

/**
 * hetmem_up_read() - release the read side
 * @sem: the semaphore, held for reading by the caller
 *
 * The last reader out wakes the threads waiting for @sem. Releasing a
 * semaphore that no reader holds is reported as a warning and ignored.
 *
 * Context: A thread that holds the read side of @sem; never blocks.
 * Return: nothing.
 */
HETMEM_API void hetmem_up_read(struct hetmem_rw_semaphore *sem)
{
	uint32_t c = __atomic_load_n(&sem->count, __ATOMIC_RELAXED);

	if (HETMEM_WARN(c == 0 || (c & HETMEM_RWSEM_WRITER),
			"rwsem %s: up_read without a reader (count %#x)",
			sem->dep_map.name, c))
		return;
	hetmem_lockdep_release(&sem->dep_map, HETMEM_RET_IP);
	if (__atomic_sub_fetch(&sem->count, 1, __ATOMIC_SEQ_CST) == 0)
		rwsem_wake_all(sem);
}

/**
 * hetmem_down_write() - take the write side, sleeping until it is free
 * @sem: the semaphore
 *
 * Waits until neither a writer nor any reader holds @sem. Readers that
 * keep arriving are still admitted meanwhile, so a writer can wait as long
 * as the read side is continuously held.
 *
 * Context: May sleep: reported by the checker when called with a spinlock
 * held. Must not hold @sem in either mode (self-deadlock).
 * Return: nothing.
 */
HETMEM_API void hetmem_down_write(struct hetmem_rw_semaphore *sem)
{
	uint32_t seen;

	hetmem_might_sleep(HETMEM_RET_IP);
	hetmem_lockdep_acquire(&sem->dep_map, 0, false, HETMEM_RET_IP);
	while (!rwsem_try_write(sem, &seen))
		rwsem_sleep(sem, seen);
	rwsem_set_owner(sem, hetmem_gettid());
}

/**
 * hetmem_down_write_trylock() - take the write side if nobody holds @sem
 * @sem: the semaphore
 *
 * Context: Any thread; never blocks.
 * Return: true if the write side was taken, false if a reader or a writer
 * holds @sem.
 */
HETMEM_API bool hetmem_down_write_trylock(struct hetmem_rw_semaphore *sem)
{
	uint32_t seen;

	if (!rwsem_try_write(sem, &seen))
		return false;
	rwsem_set_owner(sem, hetmem_gettid());
	hetmem_lockdep_acquire(&sem->dep_map, 0, true, HETMEM_RET_IP);
	return true;
}

/**
 * hetmem_up_write() - release the write side
 * @sem: the semaphore, held for writing by the caller
 *
 * Wakes every thread waiting for @sem: the readers among them all get in
 * together. Releasing a semaphore the caller does not hold for writing is
 * reported as a warning and ignored.
 *
 * Context: The thread that took the write side; never blocks.
 * Return: nothing.
 */
HETMEM_API void hetmem_up_write(struct hetmem_rw_semaphore *sem)
{
	uint32_t c = __atomic_load_n(&sem->count, __ATOMIC_RELAXED);

	if (HETMEM_WARN(c != HETMEM_RWSEM_WRITER ||
			__atomic_load_n(&sem->owner, __ATOMIC_RELAXED) !=
			hetmem_gettid(),
			"rwsem %s: up_write by a thread not holding it",
			sem->dep_map.name))
		return;
	hetmem_lockdep_release(&sem->dep_map, HETMEM_RET_IP);
	rwsem_set_owner(sem, 0);
	__atomic_store_n(&sem->count, 0, __ATOMIC_SEQ_CST);
	rwsem_wake_all(sem);
}

/**
 * hetmem_rwsem_is_locked() - is the semaphore held in either mode
 * @sem: the semaphore
 *
 * Context: Any thread; the answer may be stale by the time it is used.
 * Return: true if a writer or at least one reader holds @sem, false if it
 * is free.
 */
HETMEM_API bool hetmem_rwsem_is_locked(struct hetmem_rw_semaphore *sem)
{
	return __atomic_load_n(&sem->count, __ATOMIC_RELAXED) != 0;
}
