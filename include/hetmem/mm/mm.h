/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the process address space (struct mm_struct) and its lock.
 */
#ifndef HETMEM_MM_MM_H
#define HETMEM_MM_MM_H

#include <stdbool.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Address spaces
 *
 * struct mm_struct stands for one process address space, as in the kernel.
 * hetmem can only watch its own process, so there is one live mm per
 * process: hetmem_current_mm() (the kernel's current->mm). It is created
 * on first use and lives until hetmem_mm_teardown() or process exit.
 *
 * The reference counts keep the kernel's two meanings. mmget_not_zero() /
 * mmput() pin the address space itself ("mm_users"): they fail once it is
 * torn down, and in a forked child for the parent's mm, whose memory the
 * child cannot reach. mmgrab() / mmdrop() keep the structure allocated
 * ("mm_count"); every interval notifier holds one.
 *
 * The mmap lock is a reader/writer semaphore. In the kernel it serialises
 * every change of the VMA tree; in userspace the application changes its
 * mappings without asking hetmem, so the lock orders hetmem's own work
 * only: hmm_range_fault() runs under the read side, as the kernel requires,
 * and later layers (migration) take it the same way. Changes made by the
 * application are learnt from the address-space monitor instead (see
 * <hetmem/mm/mmu_notifier.h>).
 *
 * Pages are 4 KiB (PAGE_SHIFT 12), as on x86-64 and most arm64 kernels;
 * the mm layer refuses to start (-EOPNOTSUPP) on a kernel with another
 * base page size.
 */
#define HETMEM_PAGE_SHIFT 12
#define HETMEM_PAGE_SIZE (1UL << HETMEM_PAGE_SHIFT)
#define HETMEM_PAGE_MASK (~(HETMEM_PAGE_SIZE - 1))
#define HETMEM_PMD_SHIFT 21
#define HETMEM_PMD_SIZE (1UL << HETMEM_PMD_SHIFT)
#define HETMEM_PUD_SHIFT 30

struct mm_struct;

HETMEM_API struct mm_struct *hetmem_current_mm(void);
HETMEM_API bool mmget_not_zero(struct mm_struct *mm);
HETMEM_API void mmput(struct mm_struct *mm);
HETMEM_API void mmgrab(struct mm_struct *mm);
HETMEM_API void mmdrop(struct mm_struct *mm);

HETMEM_API void mmap_read_lock(struct mm_struct *mm);
HETMEM_API bool mmap_read_trylock(struct mm_struct *mm);
HETMEM_API void mmap_read_unlock(struct mm_struct *mm);
HETMEM_API void mmap_write_lock(struct mm_struct *mm);
HETMEM_API void mmap_write_unlock(struct mm_struct *mm);
HETMEM_API void mmap_assert_locked(struct mm_struct *mm);
HETMEM_API void mmap_assert_write_locked(struct mm_struct *mm);

/**
 * DOC: What the monitor can observe
 *
 * hetmem_mm_probe() reports which substrate features this kernel offers;
 * `hetmem info` prints it. Without userfaultfd no address-space change can
 * be observed and interval notifiers cannot be inserted (-EOPNOTSUPP, with
 * the reason in @reason); without PAGEMAP_SCAN hmm_range_fault() reads
 * /proc/self/pagemap instead (the zero page and huge mappings are then
 * only recognised with CAP_SYS_ADMIN); without PROCMAP_QUERY mappings are
 * looked up in /proc/self/maps.
 */
struct hetmem_mm_caps {
	bool uffd;			/* userfaultfd usable by this process */
	bool uffd_wp_async;		/* any mapping type can be watched */
	bool uffd_move;			/* UFFDIO_MOVE (migration, later) */
	bool pagemap_scan;		/* PAGEMAP_SCAN ioctl */
	bool pagemap_pfn;		/* pagemap shows PFNs (privileged) */
	bool procmap_query;		/* PROCMAP_QUERY ioctl */
	bool process_vm;		/* process_vm_readv/writev on self */
	bool populate;			/* MADV_POPULATE_READ/WRITE */
	uint64_t uffd_features;		/* UFFDIO_API features offered */
	char reason[128];		/* why uffd is unusable, if it is */
};

/* Counters of one address space, for `hetmem stat` and tests. */
struct hetmem_mm_stats {
	uint64_t events[5];		/* uffd events: unmap, remove, remap, fork, other */
	uint64_t invalidations;		/* invalidate_range_start calls */
	uint64_t callbacks;		/* notifier callbacks run */
	uint64_t notifiers;		/* interval notifiers inserted now */
	uint64_t watched_bytes;		/* address range registered with uffd */
	uint64_t range_faults;		/* hmm_range_fault calls */
	uint64_t rescued_reads;		/* events read by the rescue reader */
	bool monitor_running;
};

#define HETMEM_MM_EV_UNMAP 0
#define HETMEM_MM_EV_REMOVE 1
#define HETMEM_MM_EV_REMAP 2
#define HETMEM_MM_EV_FORK 3
#define HETMEM_MM_EV_OTHER 4

HETMEM_API int hetmem_mm_probe(struct hetmem_mm_caps *caps);
HETMEM_API int hetmem_mm_get_stats(struct mm_struct *mm,
				   struct hetmem_mm_stats *stats);
HETMEM_API int hetmem_mm_sync(struct mm_struct *mm, long timeout);
HETMEM_API void hetmem_mm_teardown(void);

HETMEM_END_DECLS

#endif /* HETMEM_MM_MM_H */
