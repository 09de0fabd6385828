/* SPDX-License-Identifier: MIT */
/*
 * hetmem - mmu interval notifiers: learning when the CPU side of a mirrored
 * range changes.
 */
#ifndef HETMEM_MM_MMU_NOTIFIER_H
#define HETMEM_MM_MMU_NOTIFIER_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>
#include <hetmem/core/interval_tree.h>
#include <hetmem/mm/mm.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Interval notifiers
 *
 * A device that mirrors part of an address space subscribes to it with an
 * interval notifier and follows the kernel's collision-retry protocol:
 * mmu_interval_read_begin(), fault or snapshot the range, take the
 * driver's own lock, mmu_interval_read_retry(), and program the device
 * page table only if no invalidation hit the notifier in between. The
 * invalidate callback takes the same lock, records the new sequence with
 * mmu_interval_set_seq() and stops all device use of the range before it
 * returns. Sequence numbers, epochs, deferred inserts and removals, and
 * the "remove waits for a running invalidation" rule follow the kernel
 * exactly.
 *
 * Where invalidations come from. One userfaultfd per process, owned by a
 * monitor thread, reports the application's munmap (UNMAP), madvise
 * DONTNEED / FREE / REMOVE (CLEAR), mremap (the old range as UNMAP) and
 * fork (PROTECTION_PAGE over every watched range, since fork write-protects
 * private memory for copy-on-write). A range is registered with the
 * userfaultfd in write-protect mode, which costs an ordinary CPU page fault
 * nothing, the first time hmm_range_fault() looks at it: a device cannot
 * hold translations for memory it never faulted, so memory mapped later is
 * watched from its first device use on. hetmem itself raises MIGRATE and
 * EXCLUSIVE (device-memory layer) and RELEASE (hetmem_mm_teardown()); any
 * code may raise its own with mmu_notifier_invalidate_range_start() /
 * _end(), which is how tests drive the protocol deterministically.
 *
 * How this differs from the kernel (also in docs/semantics-vs-kernel.md):
 *  - UNMAP and the mremap UNMAP are reported after the change; REMOVE is
 *    queued before the pages are zapped, but the application thread
 *    resumes as soon as the monitor reads it, so callbacks run while or
 *    after the zap happens. Device accesses in hetmem go through fault-safe
 *    copies, so a device using a stale translation in that window gets an
 *    error or the CPU's current data, never freed memory.
 *  - mprotect(), MADV_GUARD_INSTALL, hole punching of a shared file and
 *    brk growth produce no event. Permission changes are caught when a
 *    device access fails; hmm_range_fault() always reads the current
 *    protections.
 *  - Callbacks run on the monitor thread (or on the thread that called
 *    mmu_notifier_invalidate_range_start()). They may sleep, but must not
 *    unmap, madvise or free memory inside a watched range: the monitor
 *    would have to read the event that this raises. If one does, a rescue
 *    reader takes the event over after HETMEM_MM_RESCUE_MS and a warning
 *    is printed.
 */

/* Why a range is being invalidated (values as in the kernel). */
enum mmu_notifier_event {
	MMU_NOTIFY_UNMAP = 0,
	MMU_NOTIFY_CLEAR,
	MMU_NOTIFY_PROTECTION_VMA,
	MMU_NOTIFY_PROTECTION_PAGE,
	MMU_NOTIFY_SOFT_DIRTY,
	MMU_NOTIFY_RELEASE,
	MMU_NOTIFY_MIGRATE,
	MMU_NOTIFY_EXCLUSIVE,
};

#define MMU_NOTIFIER_RANGE_BLOCKABLE (1u << 0)

/* How long a callback may keep the monitor before the rescue reader runs. */
#define HETMEM_MM_RESCUE_MS 100

struct mmu_notifier_range {
	struct mm_struct *mm;
	unsigned long start;		/* first byte */
	unsigned long end;		/* one past the last byte */
	unsigned int flags;		/* MMU_NOTIFIER_RANGE_BLOCKABLE */
	enum mmu_notifier_event event;
	void *owner;			/* MIGRATE / EXCLUSIVE: who caused it */
};

struct mmu_interval_notifier;

struct mmu_interval_notifier_ops {
	bool (*invalidate)(struct mmu_interval_notifier *interval_sub,
			   const struct mmu_notifier_range *range,
			   unsigned long cur_seq);
};

struct mmu_interval_notifier {
	struct hetmem_interval_tree_node interval_tree;
	const struct mmu_interval_notifier_ops *ops;
	struct mm_struct *mm;
	struct mmu_interval_notifier *deferred_next;	/* deferred insert/remove */
	unsigned long invalidate_seq;
	unsigned int deferred_op;			/* internal */
};

/**
 * mmu_notifier_range_blockable() - may the callback sleep for this range?
 * @range: the range passed to the invalidate callback
 *
 * Context: any.
 * Return: true when the callback may take sleeping locks; false when it
 * must only try-lock and return false on contention.
 */
static inline bool mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return range->flags & MMU_NOTIFIER_RANGE_BLOCKABLE;
}

HETMEM_API int mmu_interval_notifier_insert(struct mmu_interval_notifier *interval_sub,
					    struct mm_struct *mm,
					    unsigned long start,
					    unsigned long length,
					    const struct mmu_interval_notifier_ops *ops);
HETMEM_API int mmu_interval_notifier_insert_locked(struct mmu_interval_notifier *interval_sub,
						   struct mm_struct *mm,
						   unsigned long start,
						   unsigned long length,
						   const struct mmu_interval_notifier_ops *ops);
HETMEM_API void mmu_interval_notifier_remove(struct mmu_interval_notifier *interval_sub);
HETMEM_API unsigned long mmu_interval_read_begin(struct mmu_interval_notifier *interval_sub);
HETMEM_API bool mmu_interval_read_retry(struct mmu_interval_notifier *interval_sub,
					unsigned long seq);
HETMEM_API bool mmu_interval_check_retry(struct mmu_interval_notifier *interval_sub,
					 unsigned long seq);
HETMEM_API void mmu_interval_set_seq(struct mmu_interval_notifier *interval_sub,
				     unsigned long cur_seq);

HETMEM_API void mmu_notifier_range_init(struct mmu_notifier_range *range,
					enum mmu_notifier_event event,
					unsigned int flags,
					struct mm_struct *mm,
					unsigned long start,
					unsigned long end);
HETMEM_API void mmu_notifier_range_init_owner(struct mmu_notifier_range *range,
					      enum mmu_notifier_event event,
					      unsigned int flags,
					      struct mm_struct *mm,
					      unsigned long start,
					      unsigned long end,
					      void *owner);
HETMEM_API void mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range);
HETMEM_API int mmu_notifier_invalidate_range_start_nonblock(struct mmu_notifier_range *range);
HETMEM_API void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range);

HETMEM_END_DECLS

#endif /* HETMEM_MM_MMU_NOTIFIER_H */
