/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: what the files of the reference device share. Only
 * public headers are used here, as in an out-of-tree driver.
 */
#ifndef HETMEM_SRC_DEV_DMIRROR_PRIV_H
#define HETMEM_SRC_DEV_DMIRROR_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <hetmem/core/list.h>
#include <hetmem/core/radix.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>
#include <hetmem/mm/page.h>
#include <hetmem/mm/rmap.h>

/* Pages per hmm_range_fault() call in fault rounds and snapshots. */
#define DMIRROR_RANGE_FAULT_BATCH 32

/* Per-device counters, updated with relaxed atomics from any thread. */
struct dmirror_counters {
	uint64_t mirrors;
	uint64_t mirrored_pages;
	uint64_t table_bytes;
	uint64_t invalidations;
	uint64_t fault_rounds;
	uint64_t reads;
	uint64_t writes;
	uint64_t snapshots;
	uint64_t chunks;
	uint64_t device_pages;
	uint64_t device_pages_used;
	uint64_t migrated_to_dev;
	uint64_t migrated_to_sys;
	uint64_t cpu_faults;
	uint64_t evicted;
	uint64_t exclusive;
};

#define dmirror_count_add(ctr, field, n) \
	__atomic_fetch_add(&(ctr)->field, (n), __ATOMIC_RELAXED)
#define dmirror_count_sub(ctr, field, n) \
	__atomic_fetch_sub(&(ctr)->field, (n), __ATOMIC_RELAXED)

/* Pages per migrate_vma batch (the kernel's PTRS_PER_PTE). */
#define DMIRROR_MIGRATE_BATCH 512UL

/* Device memory: chunk size, default and minimum capacity, eviction batch. */
#define DMIRROR_CHUNK_BYTES (256UL << 20)
#define DMIRROR_CHUNK_PAGES (DMIRROR_CHUNK_BYTES >> HETMEM_PAGE_SHIFT)
#define DMIRROR_CAPACITY_DEFAULT (4ULL << 30)
#define DMIRROR_CAPACITY_MIN (2ULL << 20)
#define DMIRROR_EVICT_MIN 64UL

/* States of a device page's driver record (struct dmirror_dpage). */
enum {
	DMIRROR_DPAGE_FRESH,		/* never handed out (record untouched) */
	DMIRROR_DPAGE_FREE,		/* on the base-page free list */
	DMIRROR_DPAGE_BLOCK,		/* head of a free 512-page block */
	DMIRROR_DPAGE_IN_BLOCK,		/* free, inside a free block */
	DMIRROR_DPAGE_USED,		/* handed out (a folio head): on the LRU */
	DMIRROR_DPAGE_TAIL,		/* tail of a handed-out folio */
	DMIRROR_DPAGE_GONE,		/* freed while its chunk is released */
};

struct dmirror_chunk;

/*
 * The driver's record of one device page, in an array parallel to the
 * chunk's pages; page->zone_device_data points at it while the page is
 * handed out. @link is on a free list or on the LRU, by @state. @vpn is
 * where a mirror table last stored the page (a hint for eviction, which
 * has no address; every erase it guides checks the entry first).
 */
struct dmirror_dpage {
	struct hetmem_list_head link;
	struct dmirror_chunk *chunk;
	unsigned long vpn;
	uint8_t state;
	uint8_t order;
};

/* 256 MiB of device memory: one dev_pagemap. */
struct dmirror_chunk {
	struct dev_pagemap pgmap;
	struct dmirror_device *mdevice;
	void *base;			/* from memremap_pages() */
	unsigned long pfn_first;
	unsigned long used;		/* pages handed out */
	unsigned long fresh;		/* first never-used page (512-aligned) */
	bool removing;			/* RELEASE is evicting it */
	struct dmirror_dpage dpages[];	/* DMIRROR_CHUNK_PAGES records */
};

struct dmirror_device {
	unsigned int minor;
	int type;			/* HMM_DMIRROR_MEMORY_*, 0: absent */
	struct dmirror_counters stats;
	/* Device memory, under devmem_lock (never held across an mm call). */
	struct hetmem_mutex devmem_lock;
	struct dmirror_chunk **chunks;
	unsigned int nchunks;
	unsigned int chunk_slots;
	struct hetmem_list_head free_pages;	/* base pages, LIFO */
	struct hetmem_list_head free_blocks;	/* 512-aligned free blocks */
	struct hetmem_list_head lru;		/* handed out, oldest first */
	unsigned long used_pages;
	unsigned long capacity_pages;
	/* Open mirrors, for the copy-back routines to erase their entries. */
	struct hetmem_mutex mirrors_lock;
	struct hetmem_list_head mirrors;
};

/*
 * Device page table entries: (pfn << 2) | tag, 0 = no translation. Any
 * non-zero entry may be read by READ; only DPT_TAG_WRITE satisfies WRITE.
 */
#define DPT_TAG_READ	1ULL
#define DPT_TAG_ATOMIC	2ULL
#define DPT_TAG_WRITE	3ULL
#define DPT_TAG_MASK	3ULL

static inline uint64_t dpt_entry(unsigned long pfn, uint64_t tag)
{
	return ((uint64_t)pfn << 2) | tag;
}

static inline unsigned long dpt_entry_pfn(uint64_t entry)
{
	return (unsigned long)(entry >> 2);
}

static inline uint64_t dpt_entry_tag(uint64_t entry)
{
	return entry & DPT_TAG_MASK;
}

/*
 * Lock rules. mirrors_lock nests outside a mirror's mutex; devmem_lock is
 * a leaf. A mirror's mutex is held only briefly by commands: never across
 * migrate_vma_*(), migrate_device_*(), hmm_range_fault(),
 * make_device_exclusive() or anything else that may wait for the
 * address-space monitor, and never while touching memory that may fault
 * to it (see DOC: Invalidation in dmirror.c). migrate_to_ram runs on the
 * monitor thread and takes mirrors_lock and every mirror's mutex; these
 * rules are what keep it from waiting for a thread that waits for it.
 * page_free may run inside any mm call, so nothing of this device is held
 * across one.
 */

/* One open of a device: the kernel's struct dmirror. */
struct dmirror {
	struct dmirror_device *mdevice;
	struct hetmem_list_head mirrors_link;	/* on mdevice->mirrors */
	struct mm_struct *mm;
	pid_t pid;			/* process the mirror was opened in */
	struct mmu_interval_notifier notifier;
	struct hetmem_mutex mutex;	/* the user lock: table and sequence */
	struct hetmem_radix pt;
	uint64_t flags;			/* HMM_DMIRROR_FLAG_* */
};

bool dmirror_lock(struct dmirror *dmirror,
		  const struct mmu_notifier_range *range);
bool dmirror_is_owner_process(const struct dmirror *dmirror);
void dmirror_prune(struct dmirror *dmirror);
bool dmirror_budget_exceeded(int64_t deadline);
int dmirror_range_fault(struct dmirror *dmirror, struct hmm_range *range);
int64_t dmirror_budget_start(void);

int dmirror_read(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_write(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_snapshot(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_read_mirrored(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);

/* dmirror-devmem.c */
void dmirror_devmem_init(struct dmirror_device *mdevice);
struct page *dmirror_devmem_alloc(struct dmirror_device *mdevice,
				  unsigned int order);
struct page *dmirror_devmem_alloc_run(struct dmirror_device *mdevice);
int dmirror_devmem_set_capacity(struct dmirror_device *mdevice, uint64_t bytes);
void dmirror_devmem_release(struct dmirror_device *mdevice);
void dmirror_devmem_note_vpn(unsigned long pfn, unsigned long vpn);
bool dmirror_fail_alloc(struct dmirror *dmirror);
bool dmirror_fail_alloc_mm(struct dmirror_device *mdevice, struct mm_struct *mm);
void dmirror_erase_vpn(struct dmirror_device *mdevice, struct mm_struct *mm,
		       unsigned long vpn, unsigned long nr);
int dmirror_copy_to_ram(struct dmirror_device *mdevice, struct migrate_vma *args,
			struct dmirror *dmirror);
void dmirror_dst_undo(unsigned long *dst, unsigned long npages);
unsigned long dmirror_count_migrated(const unsigned long *src, unsigned long npages);

/* dmirror-migrate.c */
int dmirror_migrate_to_device(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_migrate_to_system(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_migrate_page_to_system(struct dmirror *dmirror, unsigned long addr);
int dmirror_exclusive(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_check_exclusive(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);
int dmirror_release(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);

#endif /* HETMEM_SRC_DEV_DMIRROR_PRIV_H */
