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

#include <hetmem/core/radix.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

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
};

#define dmirror_count_add(ctr, field, n) \
	__atomic_fetch_add(&(ctr)->field, (n), __ATOMIC_RELAXED)
#define dmirror_count_sub(ctr, field, n) \
	__atomic_fetch_sub(&(ctr)->field, (n), __ATOMIC_RELAXED)

struct dmirror_device {
	unsigned int minor;
	int type;			/* HMM_DMIRROR_MEMORY_*, 0: absent */
	struct dmirror_counters stats;
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

/* One open of a device: the kernel's struct dmirror. */
struct dmirror {
	struct dmirror_device *mdevice;
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

#endif /* HETMEM_SRC_DEV_DMIRROR_PRIV_H */
