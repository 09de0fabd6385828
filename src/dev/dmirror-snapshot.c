/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: SNAPSHOT, the CPU page-table state of a range.
 */
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dmirror-priv.h"

/**
 * DOC: Snapshots
 *
 * SNAPSHOT reports, one byte per page, what hmm_range_fault() sees without
 * faulting: HMM_DMIRROR_PROT_ERROR (0xFF) for a hole or an inaccessible
 * mapping, NONE for a page not present, otherwise a kind value (ZERO for
 * the shared zero page, the DEV_* kinds for device memory) with READ or
 * WRITE and the PMD or PUD bit for a huge CPU mapping. It neither reads
 * nor changes the device page table.
 *
 * Like the kernel device it does not use the mirror's own notifier: that
 * one ignores this device's MIGRATE events, which a snapshot must not
 * miss. Each chunk of DMIRROR_RANGE_FAULT_BATCH pages gets a temporary
 * interval notifier exactly covering it, whose callback only takes the
 * user lock and records the sequence; the chunk is re-read until no
 * invalidation hit it, or until HMM_RANGE_DEFAULT_TIMEOUT ms pass
 * (-EBUSY). The bytes of a chunk are copied to the caller's buffer as
 * soon as it is encoded, so after an error the buffer holds the chunks
 * before it.
 */

struct dmirror_snapshot_sub {
	struct mmu_interval_notifier notifier;
	struct dmirror *dmirror;
};

static bool dmirror_snapshot_invalidate(struct mmu_interval_notifier *mni,
					const struct mmu_notifier_range *range,
					unsigned long cur_seq)
{
	struct dmirror_snapshot_sub *sub =
		hetmem_container_of(mni, struct dmirror_snapshot_sub, notifier);

	/* The lock orders the new sequence against mmu_interval_read_retry(). */
	if (!dmirror_lock(sub->dmirror, range))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	hetmem_mutex_unlock(&sub->dmirror->mutex);
	return true;
}

static const struct mmu_interval_notifier_ops dmirror_snapshot_ops = {
	.invalidate = dmirror_snapshot_invalidate,
};

/*
 * Kind of a valid frame: a device page is DEV_PRIVATE_LOCAL when its
 * pagemap belongs to this device, DEV_PRIVATE_REMOTE otherwise (which
 * owner filtering keeps from happening: another device's pages come back
 * not valid). There are no device-coherent pages here.
 */
static uint8_t dmirror_snapshot_kind(struct dmirror *dmirror, unsigned long pfn)
{
	struct page *page;

	if (is_zero_pfn(pfn))
		return HMM_DMIRROR_PROT_ZERO;
	if (pfn < HETMEM_DEVICE_PFN_BASE)
		return 0;
	page = pfn_to_page(pfn);
	if (!page || !is_device_private_page(page) || !page_pgmap(page))
		return 0;
	return page_pgmap(page)->owner == dmirror->mdevice ?
	       HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
}

static uint8_t dmirror_snapshot_byte(struct dmirror *dmirror, unsigned long w)
{
	unsigned int shift;
	uint8_t perm;

	if (w & HMM_PFN_ERROR)
		return HMM_DMIRROR_PROT_ERROR;
	if (!(w & HMM_PFN_VALID))
		return HMM_DMIRROR_PROT_NONE;
	perm = dmirror_snapshot_kind(dmirror, hetmem_hmm_pfn_to_pfn(w));
	perm |= (w & HMM_PFN_WRITE) ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
	shift = hmm_pfn_to_map_order(w) + HETMEM_PAGE_SHIFT;
	if (shift == HETMEM_PMD_SHIFT)
		perm |= HMM_DMIRROR_PROT_PMD;
	else if (shift == HETMEM_PUD_SHIFT)
		perm |= HMM_DMIRROR_PROT_PUD;
	return perm;
}

/* Read a chunk under the collision protocol and encode it into @perm. */
static int dmirror_snapshot_settle(struct dmirror *dmirror, struct hmm_range *range,
				   uint8_t *perm)
{
	unsigned long i, npages = (range->end - range->start) >> HETMEM_PAGE_SHIFT;
	int ret = dmirror_range_fault(dmirror, range);

	if (ret)
		return ret;
	for (i = 0; i < npages; i++)
		perm[i] = dmirror_snapshot_byte(dmirror, range->hmm_pfns[i]);
	hetmem_mutex_unlock(&dmirror->mutex);
	return 0;
}

/* Snapshot [start, end) (at most one batch) through a temporary notifier. */
static int dmirror_snapshot_chunk(struct dmirror *dmirror, unsigned long start,
				  unsigned long end, uint8_t *perm)
{
	unsigned long pfns[DMIRROR_RANGE_FAULT_BATCH];
	struct dmirror_snapshot_sub sub = { .dmirror = dmirror };
	struct hmm_range range = {
		.notifier = &sub.notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = 0,
		.pfn_flags_mask = 0,
		.dev_private_owner = dmirror->mdevice,
	};
	int ret;

	ret = mmu_interval_notifier_insert(&sub.notifier, dmirror->mm, start,
					   end - start, &dmirror_snapshot_ops);
	if (ret)
		return ret;
	ret = dmirror_snapshot_settle(dmirror, &range, perm);
	mmu_interval_notifier_remove(&sub.notifier);
	return ret;
}

/* Copy @len snapshot bytes to the caller's buffer at @dst. */
static int dmirror_snapshot_copy_out(uint64_t dst, const uint8_t *perm, size_t len)
{
	struct iovec local = { .iov_base = (void *)perm, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)dst, .iov_len = len };

	if (!dst)
		return -EFAULT;
	if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)len)
		return -EFAULT;
	return 0;
}

static int dmirror_snapshot_range(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long end = cmd->addr + (cmd->npages << HETMEM_PAGE_SHIFT);
	uint8_t perm[DMIRROR_RANGE_FAULT_BATCH];
	unsigned long addr, next, n;
	int ret = 0;

	for (addr = cmd->addr; addr < end && !ret; addr = next) {
		next = end - addr > DMIRROR_RANGE_FAULT_BATCH * HETMEM_PAGE_SIZE ?
		       addr + DMIRROR_RANGE_FAULT_BATCH * HETMEM_PAGE_SIZE : end;
		n = (next - addr) >> HETMEM_PAGE_SHIFT;
		ret = dmirror_snapshot_chunk(dmirror, addr, next, perm);
		if (!ret)
			ret = dmirror_snapshot_copy_out(cmd->ptr + cmd->cpages, perm, n);
		if (!ret)
			cmd->cpages += n;
	}
	return ret;
}

/**
 * dmirror_snapshot() - HMM_DMIRROR_SNAPSHOT: encode the CPU state of a range
 * @dmirror: the mirror
 * @cmd: the validated command copy; cpages is filled in
 *
 * Context: command context (see hetmem_dmirror_cmd()).
 * Return: 0; -EINVAL when the address space is gone (or the caller is not
 * the mirror's process); -EFAULT for a bad @cmd->ptr; -EBUSY when a chunk
 * did not settle in time; the errors of mmu_interval_notifier_insert()
 * and hmm_range_fault().
 */
int dmirror_snapshot(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	int ret;

	if (!dmirror_is_owner_process(dmirror) || !mmget_not_zero(dmirror->mm))
		return -EINVAL;
	ret = dmirror_snapshot_range(dmirror, cmd);
	mmput(dmirror->mm);
	if (!ret)
		dmirror_count_add(&dmirror->mdevice->stats, snapshots, 1);
	return ret;
}
