/* SPDX-License-Identifier: MIT */
/*
 * hetmem - spinlocks and mutexes.
 */
#ifndef HETMEM_CORE_SPINLOCK_H
#define HETMEM_CORE_SPINLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>
#include <hetmem/core/lockdep.h>
#include <hetmem/core/warn.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Spinlocks and mutexes in userspace
 *
 * A pure spinlock is a poor idea in a process that can be preempted while
 * holding it (two cores, many threads). hetmem_spinlock_t is therefore a
 * futex lock that spins briefly before sleeping; what makes it a
 * "spinlock" is its role, which the lock-dependency checker enforces:
 * holding one is atomic context, so sleeping, fence waits and mutexes taken
 * under it are reported. Fence locks are spinlocks, as in the kernel, and
 * fence callbacks run under them.
 *
 * struct hetmem_mutex is the same futex lock in the sleeping role.
 * Both record their owner thread so that "held by me" assertions
 * (the _locked fence functions) work without the checker.
 *
 * Both types are embeddable (they are part of struct dma_fence users'
 * structures); initialise them with hetmem_spin_lock_init() /
 * hetmem_mutex_init(), which give every call site its own lock class, or
 * statically with HETMEM_SPINLOCK_INIT() / HETMEM_MUTEX_INIT().
 */
struct hetmem_futex_lock {
	uint32_t val;	/* 0 free, 1 locked, 2 locked with sleepers */
	int32_t owner;	/* thread id of the holder, 0 when free */
	struct hetmem_lockdep_map dep_map;
};

typedef struct hetmem_futex_lock hetmem_spinlock_t;

struct hetmem_mutex {
	struct hetmem_futex_lock base;
};

#define HETMEM_SPINLOCK_INIT(name) \
	{ 0, 0, HETMEM_LOCKDEP_MAP_INIT(#name, HETMEM_LOCKDEP_ATOMIC) }
#define HETMEM_MUTEX_INIT(name) \
	{ { 0, 0, HETMEM_LOCKDEP_MAP_INIT(#name, 0) } }

HETMEM_API void hetmem_spin_lock_init_key(hetmem_spinlock_t *lock,
					  const char *name,
					  const struct hetmem_lock_class_key *key);
HETMEM_API void hetmem_spin_lock(hetmem_spinlock_t *lock);
HETMEM_API bool hetmem_spin_trylock(hetmem_spinlock_t *lock);
HETMEM_API void hetmem_spin_unlock(hetmem_spinlock_t *lock);
HETMEM_API bool hetmem_spin_is_locked(hetmem_spinlock_t *lock);
HETMEM_API bool hetmem_spin_is_held(hetmem_spinlock_t *lock);

HETMEM_API void hetmem_mutex_init_key(struct hetmem_mutex *lock,
				      const char *name,
				      const struct hetmem_lock_class_key *key);
HETMEM_API void hetmem_mutex_lock(struct hetmem_mutex *lock);
HETMEM_API bool hetmem_mutex_trylock(struct hetmem_mutex *lock);
HETMEM_API void hetmem_mutex_unlock(struct hetmem_mutex *lock);
HETMEM_API bool hetmem_mutex_is_locked(struct hetmem_mutex *lock);
HETMEM_API bool hetmem_mutex_is_held(struct hetmem_mutex *lock);

#define hetmem_spin_lock_init(lock) do {				\
	static const struct hetmem_lock_class_key __hetmem_key;		\
	hetmem_spin_lock_init_key((lock), #lock, &__hetmem_key);	\
} while (0)

#define hetmem_mutex_init(lock) do {					\
	static const struct hetmem_lock_class_key __hetmem_key;		\
	hetmem_mutex_init_key((lock), #lock, &__hetmem_key);		\
} while (0)

#define hetmem_assert_spin_held(lock) \
	HETMEM_WARN(!hetmem_spin_is_held(lock), "spinlock %s not held by this thread", \
		    (lock)->dep_map.name)

HETMEM_END_DECLS

#endif /* HETMEM_CORE_SPINLOCK_H */
