/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private interfaces of the mm layer.
 */
#ifndef HETMEM_SRC_MM_INTERNAL_H
#define HETMEM_SRC_MM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <hetmem/core/interval_tree.h>
#include <hetmem/core/radix.h>
#include <hetmem/core/rwsem.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

#include "core/internal.h"

struct hetmem_mm_monitor;
struct hetmem_vma;

/*
 * One process address space. The notifier fields follow the kernel's
 * mmu_notifier_subscriptions: invalidate_seq is even when no invalidation
 * that touches a notifier is running; active counts running invalidations.
 */
struct mm_struct {
	uint32_t users;			/* mmget / mmput */
	uint32_t count;			/* mmgrab / mmdrop */
	pid_t pid;			/* the process this mm is */
	struct hetmem_rw_semaphore mmap_lock;

	hetmem_spinlock_t lock;		/* the fields below */
	unsigned long invalidate_seq;
	unsigned long active_invalidate_ranges;
	struct hetmem_rb_root_cached itree;
	struct mmu_interval_notifier *deferred_list;
	uint32_t epoch;			/* futex: bumped when an epoch ends */
	uint32_t epoch_waiters;
	uint64_t nr_notifiers;

	struct hetmem_mutex mon_lock;	/* starting / stopping the monitor */
	struct hetmem_mm_monitor *mon;	/* created with the first notifier */
	struct hetmem_mm_stats stats;	/* updated with __atomic ops */
	struct hetmem_lockdep_map inv_map;	/* "an invalidation runs" */

	/* Device memory (devtab.c): pages of this mm that left the CPU. */
	struct hetmem_mutex dev_lock;	/* devtab and own_removes */
	struct hetmem_radix devtab;	/* vpn -> HETMEM_DEVTAB_* entry */
	uint64_t dev_entries;
	uint64_t dev_table_bytes;
	struct hetmem_rw_semaphore fork_sem;	/* migrations vs fork */
	unsigned long own_remove_start;	/* a REMOVE hetmem raised itself */
	unsigned long own_remove_end;
	struct hetmem_lockdep_map devfault_map;	/* "a CPU fault is served" */
};

/* monitor.c */
int hetmem_mm_monitor_start(struct mm_struct *mm);
void hetmem_mm_monitor_stop(struct mm_struct *mm);
void hetmem_mm_unwatch_all(struct mm_struct *mm);
int hetmem_uffd_create(uint64_t want, uint64_t *features, char *reason,
		       size_t reason_len);
/*
 * Around fork(): report it when the kernel refuses EVENT_FORK (no
 * CAP_SYS_PTRACE), and park the monitor until fork_done().
 */
void hetmem_mm_monitor_fork_prepare(struct mm_struct *mm);
void hetmem_mm_monitor_fork_done(struct mm_struct *mm);

/*
 * Register the 2 MiB windows around [start, end), within its mapping,
 * for missing-page faults too. 0, -EFAULT (no mapping), -EOPNOTSUPP.
 */
int hetmem_mm_watch_missing(struct mm_struct *mm, unsigned long start,
			    unsigned long end);
/* The monitor's userfaultfd, -1 when it is not running. */
int hetmem_mm_uffd(struct mm_struct *mm);
/* Wake the monitor so that it retries the faults it deferred. */
void hetmem_mm_kick(struct mm_struct *mm);
/* Features the monitor's userfaultfd has. */
uint64_t hetmem_mm_uffd_features(struct mm_struct *mm);

/* mmu_notifier.c: the teardown invalidation of every notifier. */
void hetmem_mm_release_notifiers(struct mm_struct *mm);

/* Mapping flags of struct hetmem_vma. */
#define HETMEM_VMA_READ		0x01u
#define HETMEM_VMA_WRITE	0x02u
#define HETMEM_VMA_EXEC		0x04u
#define HETMEM_VMA_SHARED	0x08u
#define HETMEM_VMA_FILE		0x10u	/* backed by a file (incl. memfd) */
#define HETMEM_VMA_HUGETLB	0x20u	/* vma_page_size > 4 KiB */
#define HETMEM_VMA_SPECIAL	0x40u	/* [vvar], [vdso], [vsyscall], ... */

/* One mapping, as PROCMAP_QUERY or /proc/self/maps describes it. */
struct hetmem_vma {
	unsigned long start;
	unsigned long end;
	unsigned int flags;
	unsigned long page_size;
};

/* Per-page categories of a snapshot (PAGEMAP_SCAN's PAGE_IS_* values). */
#define HETMEM_PG_WPALLOWED	(1u << 0)
#define HETMEM_PG_WRITTEN	(1u << 1)
#define HETMEM_PG_FILE		(1u << 2)
#define HETMEM_PG_PRESENT	(1u << 3)
#define HETMEM_PG_SWAPPED	(1u << 4)
#define HETMEM_PG_PFNZERO	(1u << 5)
#define HETMEM_PG_HUGE		(1u << 6)
#define HETMEM_PG_SOFT_DIRTY	(1u << 7)
#define HETMEM_PG_GUARD		(1u << 8)

/* This process's pid, cached (reset in a forked child). */
pid_t hetmem_mm_getpid(void);

/* True when @mm is live and is the address space of the calling process. */
bool hetmem_mm_is_current(struct mm_struct *mm);

/*
 * Make sure the monitor watches [start, end), which lies inside one
 * mapping described by @vma. Returns 0 when it is watched (now or
 * already), -EOPNOTSUPP when the kernel refuses to watch this kind of
 * mapping (the range must then be treated as unusable by devices), or
 * another negative errno.
 */
int hetmem_mm_watch_range(struct mm_struct *mm, const struct hetmem_vma *vma,
			  unsigned long start, unsigned long end);

/*
 * Wait until every address-space event read before the call has been
 * delivered to the notifiers; with @queued, also every event queued but
 * not read yet (one poll() more). The system call that raised an event
 * returns only once it is read, so without @queued the call covers every
 * munmap(), madvise() and mremap() that returned before it. -ETIMEDOUT at
 * @deadline (absolute CLOCK_MONOTONIC ns, negative for none), -EDEADLK on
 * the monitor thread.
 */
int hetmem_mm_sync_events(struct mm_struct *mm, int64_t deadline, bool queued);

/* True on the monitor thread (callbacks run there). */
bool hetmem_mm_in_monitor(void);

struct vm_area_struct;

/* Nonzero and unchanged while this thread keeps holding an mmap lock. */
unsigned long hetmem_mmap_hold_epoch(void);

/*
 * The mapping behind @vma if it is a snapshot that vma_lookup() or
 * find_vma() gave this thread under the mmap lock hold it still has.
 */
bool hetmem_vma_fresh(const struct vm_area_struct *vma, struct hetmem_vma *out);

/* The covering-or-next mapping at or above @addr; -ENOENT when none. */
int hetmem_vma_find(struct mm_struct *mm, unsigned long addr,
		    struct hetmem_vma *vma);

/*
 * Categories (HETMEM_PG_*) of every page of [start, end) into cats[];
 * pages outside any mapping get 0. -errno on failure.
 */
int hetmem_pagemap_snapshot(struct mm_struct *mm, unsigned long start,
			    unsigned long end, uint16_t *cats);

/* Is the page at @addr part of a PMD-mapped huge page now? */
bool hetmem_page_mapped_huge(unsigned long addr);

/* Feature probes shared by hetmem_mm_probe() and the walkers. */
bool hetmem_have_pagemap_scan(void);
bool hetmem_have_procmap_query(void);

#define hetmem_mm_stat_inc(mm, field) \
	__atomic_fetch_add(&(mm)->stats.field, 1, __ATOMIC_RELAXED)

#endif /* HETMEM_SRC_MM_INTERNAL_H */
