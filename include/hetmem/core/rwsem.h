/* SPDX-License-Identifier: MIT */
/*
 * hetmem - read/write semaphores.
 */
#ifndef HETMEM_CORE_RWSEM_H
#define HETMEM_CORE_RWSEM_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>
#include <hetmem/core/lockdep.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Read/write semaphores
 *
 * A futex-based sleeping reader/writer lock in the role of the kernel's
 * rw_semaphore (it is what mmap_read_lock() takes). Unlike the kernel's it
 * prefers readers: a reader is admitted whenever no writer holds the lock,
 * even if writers are waiting. hetmem needs that because a thread that
 * holds the read side may wait for the address-space monitor, and the
 * monitor may itself need the read side; with writer preference a writer
 * queued between them would deadlock all three. Writers can therefore
 * starve under a constant stream of readers; hetmem's writers are rare.
 *
 * Acquisitions are reported to the lock-dependency checker (reads as
 * recursive-read acquisitions), so ordering bugs against mutexes, fence
 * waits and invalidation callbacks are found in tests.
 */
/* count while a writer holds the semaphore (no reader can hold it then). */
#define HETMEM_RWSEM_WRITER 0x80000000u

struct hetmem_rw_semaphore {
	uint32_t count;		/* readers, or HETMEM_RWSEM_WRITER */
	uint32_t waiters;	/* threads asleep on count */
	int32_t owner;		/* writer's thread id, 0 otherwise */
	struct hetmem_lockdep_map dep_map;
};

#define HETMEM_RWSEM_INIT(name) \
	{ 0, 0, 0, HETMEM_LOCKDEP_MAP_INIT(#name, 0) }

HETMEM_API void hetmem_init_rwsem_key(struct hetmem_rw_semaphore *sem,
				      const char *name,
				      const struct hetmem_lock_class_key *key);
HETMEM_API void hetmem_down_read(struct hetmem_rw_semaphore *sem);
HETMEM_API bool hetmem_down_read_trylock(struct hetmem_rw_semaphore *sem);
HETMEM_API void hetmem_up_read(struct hetmem_rw_semaphore *sem);
HETMEM_API void hetmem_down_write(struct hetmem_rw_semaphore *sem);
HETMEM_API bool hetmem_down_write_trylock(struct hetmem_rw_semaphore *sem);
HETMEM_API void hetmem_up_write(struct hetmem_rw_semaphore *sem);
HETMEM_API bool hetmem_rwsem_is_locked(struct hetmem_rw_semaphore *sem);

#define hetmem_init_rwsem(sem) do {					\
	static const struct hetmem_lock_class_key __hetmem_key;		\
	hetmem_init_rwsem_key((sem), #sem, &__hetmem_key);		\
} while (0)

HETMEM_END_DECLS

#endif /* HETMEM_CORE_RWSEM_H */
