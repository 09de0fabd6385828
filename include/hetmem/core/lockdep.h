/* SPDX-License-Identifier: MIT */
/*
 * hetmem - lock-dependency checker.
 */
#ifndef HETMEM_CORE_LOCKDEP_H
#define HETMEM_CORE_LOCKDEP_H

#include <stdbool.h>
#include <sys/types.h>
#include <hetmem/core/compiler.h>
#include <hetmem/core/warn.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: One dependency graph
 *
 * hetmem checks lock ordering the way the kernel's lockdep does, scaled
 * down: every lock belongs to a class (the address of a static
 * struct hetmem_lock_class_key, or of the map itself for statically
 * initialised locks), each thread keeps the stack of classes it holds, and
 * acquiring class B while holding A records the edge A -> B in one global
 * graph together with the code site that first created it. A new edge that
 * closes a cycle is reported with the sites of every edge on the cycle.
 *
 * Things that are not locks live in the same graph as pseudo-locks, so one
 * checker covers all of them: the fence layer's "fence signalling" map
 * (taken shared by dma_fence_begin_signalling(), exclusively and only for an
 * instant by every fence wait), and later layers' reservation locks and
 * page-fault servicing contexts. "Lock L held around a fence wait" and "L
 * taken inside a signalling section" then become the two halves of a cycle
 * and are found whichever happens first.
 *
 * Maps flagged HETMEM_LOCKDEP_ATOMIC (spinlocks, which fence callbacks run
 * under) put the thread in atomic context: hetmem_might_sleep() reports.
 *
 * The checker is compiled in always and switched at run time: enabled by
 * default in builds configured with -Dlockdep=true (the default for debug
 * and test builds), overridable with HETMEM_LOCKDEP=0|1 or
 * hetmem_lockdep_set_enabled(). Reports are hetmem warnings (warn.h).
 */
struct hetmem_lock_class_key {
	char __unused;
};

#define HETMEM_LOCKDEP_ATOMIC 0x1u	/* holding it is atomic context */
#define HETMEM_LOCKDEP_PSEUDO 0x2u	/* not a real lock (annotation) */

struct hetmem_lockdep_map {
	const char *name;
	const struct hetmem_lock_class_key *key;
	unsigned int flags;
	unsigned int class_id;	/* assigned on first use, 0 = none yet */
};

#define HETMEM_LOCKDEP_MAP_INIT(mapname, mapflags) \
	{ (mapname), NULL, (mapflags), 0 }

HETMEM_API void hetmem_lockdep_init_map(struct hetmem_lockdep_map *map,
					const char *name,
					const struct hetmem_lock_class_key *key,
					unsigned int flags);
HETMEM_API void hetmem_lockdep_acquire(struct hetmem_lockdep_map *map,
				       int read, bool trylock,
				       const void *site);
HETMEM_API void hetmem_lockdep_release(struct hetmem_lockdep_map *map,
				       const void *site);
HETMEM_API bool hetmem_lockdep_is_held(const struct hetmem_lockdep_map *map);
HETMEM_API bool hetmem_lockdep_is_held_read(const struct hetmem_lockdep_map *map);
HETMEM_API void hetmem_might_sleep(const void *site);

/**
 * hetmem_lockdep_might_wait_for() - annotate a wait for a pseudo-lock
 * @map: the pseudo-lock standing for what is waited on, e.g. the fence
 *	layer's signalling map
 * @site: code address of the wait, normally __builtin_return_address(0)
 *
 * A thread that waits for every section of @map to end must not be inside
 * one itself: that is reported as a wait inside a signalling critical
 * section, naming the site that entered the section and @site. Otherwise
 * the wait is recorded as an instant exclusive acquisition of @map, giving
 * "every lock held here -> @map" edges, and any cycle those close is
 * reported. Nothing is pushed on the held stack.
 *
 * Context: Any thread; takes the checker's internal lock when it learns a
 * new dependency.
 * Return: nothing.
 */
HETMEM_API void hetmem_lockdep_might_wait_for(struct hetmem_lockdep_map *map,
					      const void *site);
HETMEM_API bool hetmem_lockdep_enabled(void);
HETMEM_API void hetmem_lockdep_set_enabled(bool on);
HETMEM_API void hetmem_lockdep_reset(void);
HETMEM_API unsigned long hetmem_lockdep_report_count(void);
HETMEM_API unsigned int hetmem_lockdep_borrow(pid_t tid,
					      struct hetmem_lockdep_map **maps,
					      unsigned int max);

#define hetmem_lockdep_assert_held(map) \
	HETMEM_WARN(hetmem_lockdep_enabled() && !hetmem_lockdep_is_held(map), \
		    "lock %s not held", (map)->name)

HETMEM_END_DECLS

#endif /* HETMEM_CORE_LOCKDEP_H */
