/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: READ and WRITE, and the device fault round.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dmirror-priv.h"

/**
 * DOC: Device accesses
 *
 * READ and WRITE work as in the kernel device: the data goes through a
 * bounce buffer; under the user lock the device page table is walked
 * from the current position and the pages it maps are copied; the first
 * page without a usable translation (none at all, or, for WRITE, one
 * without DPT_TAG_WRITE) ends the walk with -ENOENT and one device fault
 * round over the rest of the range follows, counted in cmd->faults.
 *
 * The copy itself is where userspace differs. A translation names a
 * system page by its virtual page number, and the device reaches it with
 * process_vm_readv()/process_vm_writev() on its own process, one iovec per
 * page. These calls honour the mapping's current permissions and fail
 * instead of faulting the process, which matters because some changes
 * send no invalidation at all (mprotect()) and others send it only after
 * the fact (munmap()). A page whose copy fails has its translation
 * dropped and is treated as missing: the fault round that follows then
 * reports what the CPU side now is (-EFAULT for a hole or PROT_NONE,
 * -EPERM for a write to read-only memory) or maps the page again. So a
 * command ends with the data the CPU sees or an error, never with a
 * crash or with data of memory that is no longer mapped there. Copying
 * through the address also keeps copy-on-write and the zero page right:
 * a translation of the shared zero page is read through the address too,
 * since a CPU write that replaces it raises no event.
 *
 * Copies run under the user lock, as the kernel's memcpy does, so an
 * invalidate callback waits until they are done. That is safe only
 * because a device copy never waits for the monitor: the mm layer
 * registers memory in write-protect mode only to receive events and never
 * write-protects a page, so a write through process_vm_writev() is never
 * held for the monitor to resolve.
 *
 * A page that fails its copy again right after fault rounds mapped it is
 * given up on with -EFAULT after DMIRROR_COPY_RETRIES rounds, instead of
 * looping for ever on memory that hmm_range_fault() reports as accessible
 * and the copy refuses (or that a racing thread keeps unmapping).
 *
 * The fault round is the kernel's dmirror_fault(): batches of
 * DMIRROR_RANGE_FAULT_BATCH pages, each retried under the collision
 * protocol until it settles or HMM_RANGE_DEFAULT_TIMEOUT ms pass (-EBUSY).
 * When the address space is gone it fails with -EFAULT where the kernel
 * returns 0 and leaves READ looping (pitfall 6.1.11).
 */

/* Pages per copy call: bounded so the iovec array can live on the stack. */
#define DMIRROR_COPY_RUN 256
/* Copy failures of one page, each followed by a fault round, before -EFAULT. */
#define DMIRROR_COPY_RETRIES 2

struct dmirror_xfer {
	struct dmirror *dmirror;
	struct hmm_dmirror_cmd *cmd;
	char *bounce;
	bool write;
	unsigned long fail_vpn;		/* page of the last failed copy */
	unsigned int fail_count;	/* its consecutive failures */
};

static unsigned long dmirror_xfer_pos(const struct dmirror_xfer *x)
{
	return x->cmd->addr + (x->cmd->cpages << HETMEM_PAGE_SHIFT);
}

static unsigned long dmirror_xfer_end(const struct dmirror_xfer *x)
{
	return x->cmd->addr + (x->cmd->npages << HETMEM_PAGE_SHIFT);
}

/* Does @entry allow this access? ATOMIC entries read, but never write. */
static bool dmirror_entry_usable(uint64_t entry, bool write)
{
	if (write)
		return dpt_entry_tag(entry) == DPT_TAG_WRITE;
	return entry != 0;
}

/*
 * Where the device reaches the page of @entry, mapped at @vpn; NULL for
 * frames it cannot reach (device memory, until that layer exists).
 */
static void *dmirror_entry_address(uint64_t entry, unsigned long vpn)
{
	unsigned long pfn = dpt_entry_pfn(entry);

	if (hetmem_pfn_is_system(pfn))
		return hetmem_pfn_to_virt(pfn);
	/* A CPU write may have replaced the zero page without an event. */
	if (is_zero_pfn(pfn))
		return (void *)(vpn << HETMEM_PAGE_SHIFT);
	return NULL;
}

/* One process_vm_*v call; bytes copied, or -errno when nothing was. */
static ssize_t dmirror_vm_copy(bool write, void *local, size_t len,
			       const struct iovec *remote, unsigned long nr)
{
	struct iovec liov = { .iov_base = local, .iov_len = len };
	ssize_t n;

	if (write)
		n = process_vm_writev(getpid(), &liov, 1, remote, nr, 0);
	else
		n = process_vm_readv(getpid(), &liov, 1, remote, nr, 0);
	return n < 0 ? -errno : n;
}

/*
 * The copy of page @vpn failed: the CPU unmapped or protected it and the
 * event (if there is one) has not arrived. Drop the translation so the
 * next fault round decides, unless that keeps happening.
 */
static int dmirror_xfer_failed(struct dmirror_xfer *x, unsigned long vpn)
{
	hetmem_radix_erase_range(&x->dmirror->pt, vpn, vpn);
	if (vpn != x->fail_vpn) {
		x->fail_vpn = vpn;
		x->fail_count = 0;
	}
	if (++x->fail_count > DMIRROR_COPY_RETRIES)
		return -EFAULT;
	return -ENOENT;
}

/* Collect the run of usable entries at the current position. */
static int dmirror_xfer_gather(struct dmirror_xfer *x, struct iovec *iov,
			       unsigned long *nr)
{
	unsigned long vpn = dmirror_xfer_pos(x) >> HETMEM_PAGE_SHIFT;
	unsigned long last = (dmirror_xfer_end(x) >> HETMEM_PAGE_SHIFT) - 1;
	uint64_t entry;
	unsigned long n;

	for (n = 0; n < DMIRROR_COPY_RUN && vpn + n <= last; n++) {
		entry = hetmem_radix_lookup(&x->dmirror->pt, vpn + n);
		if (!dmirror_entry_usable(entry, x->write))
			break;
		iov[n].iov_base = dmirror_entry_address(entry, vpn + n);
		if (!iov[n].iov_base)
			return -EFAULT;
		iov[n].iov_len = HETMEM_PAGE_SIZE;
	}
	*nr = n;
	return n ? 0 : -ENOENT;
}

/* Copy one run of mapped pages; -ENOENT where a fault round is needed. */
static int dmirror_xfer_run(struct dmirror_xfer *x)
{
	struct iovec iov[DMIRROR_COPY_RUN];
	unsigned long nr, done;
	ssize_t n;
	int ret;

	ret = dmirror_xfer_gather(x, iov, &nr);
	if (ret)
		return ret;
	n = dmirror_vm_copy(x->write, x->bounce + (x->cmd->cpages << HETMEM_PAGE_SHIFT),
			    nr << HETMEM_PAGE_SHIFT, iov, nr);
	if (n < 0 && n != -EFAULT)
		return (int)n;
	done = n < 0 ? 0 : (unsigned long)n >> HETMEM_PAGE_SHIFT;
	x->cmd->cpages += done;
	if (done < nr)
		return dmirror_xfer_failed(x, dmirror_xfer_pos(x) >> HETMEM_PAGE_SHIFT);
	return 0;
}

/* Copy what the table maps from the current position on, under the lock. */
static int dmirror_xfer_mirrored(struct dmirror_xfer *x)
{
	unsigned long end = dmirror_xfer_end(x);
	int ret = 0;

	hetmem_mutex_lock(&x->dmirror->mutex);
	while (!ret && dmirror_xfer_pos(x) < end)
		ret = dmirror_xfer_run(x);
	hetmem_mutex_unlock(&x->dmirror->mutex);
	return ret;
}

/* Program the table from a settled range; called under the user lock. */
static int dmirror_do_fault(struct dmirror *dmirror, struct hmm_range *range)
{
	unsigned long npages = (range->end - range->start) >> HETMEM_PAGE_SHIFT;
	unsigned long vpn = range->start >> HETMEM_PAGE_SHIFT;
	bool write = range->default_flags & HMM_PFN_REQ_WRITE;
	unsigned long i, w;
	int ret;

	for (i = 0; i < npages; i++) {
		w = range->hmm_pfns[i];
		/* The kernel WARNs here; for us it is a failed access. */
		if (!(w & HMM_PFN_VALID) || (w & HMM_PFN_ERROR))
			return -EFAULT;
		if (write && !(w & HMM_PFN_WRITE))
			return -EFAULT;
		/*
		 * Device frames are stored as reported for now; the
		 * device-memory layer maps owned device pages to their
		 * backing storage here (pitfall 6.4.12).
		 */
		ret = hetmem_radix_store(&dmirror->pt, vpn + i,
				dpt_entry(hetmem_hmm_pfn_to_pfn(w),
					  (w & HMM_PFN_WRITE) ? DPT_TAG_WRITE :
								DPT_TAG_READ));
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Fault (or, with no request bits, snapshot) one batch under the collision
 * protocol; on success the user lock is held and the range is settled.
 */
int dmirror_range_fault(struct dmirror *dmirror, struct hmm_range *range)
{
	int64_t deadline = dmirror_budget_start();
	int ret;

	for (;;) {
		if (dmirror_budget_exceeded(deadline))
			return -EBUSY;
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(dmirror->mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(dmirror->mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		hetmem_mutex_lock(&dmirror->mutex);
		if (!mmu_interval_read_retry(range->notifier, range->notifier_seq))
			return 0;
		hetmem_mutex_unlock(&dmirror->mutex);
	}
}

/* One device fault round over [start, end): the kernel's dmirror_fault(). */
static int dmirror_fault(struct dmirror *dmirror, unsigned long start,
			 unsigned long end, bool write)
{
	unsigned long pfns[DMIRROR_RANGE_FAULT_BATCH];
	struct hmm_range range = {
		.notifier = &dmirror->notifier,
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
		.pfn_flags_mask = 0,
		.dev_private_owner = dmirror->mdevice,
	};
	unsigned long addr;
	int ret = 0;

	if (!mmget_not_zero(dmirror->mm))
		return -EFAULT;
	for (addr = start; addr < end && !ret; addr = range.end) {
		range.start = addr;
		range.end = end - addr > DMIRROR_RANGE_FAULT_BATCH * HETMEM_PAGE_SIZE ?
			    addr + DMIRROR_RANGE_FAULT_BATCH * HETMEM_PAGE_SIZE : end;
		ret = dmirror_range_fault(dmirror, &range);
		if (ret)
			break;
		ret = dmirror_do_fault(dmirror, &range);
		hetmem_mutex_unlock(&dmirror->mutex);
	}
	mmput(dmirror->mm);
	if (!ret)
		dmirror_count_add(&dmirror->mdevice->stats, fault_rounds, 1);
	return ret;
}

/* Copy mirrored pages and fault the rest until done or an error. */
static int dmirror_xfer(struct dmirror_xfer *x)
{
	int ret;

	for (;;) {
		ret = dmirror_xfer_mirrored(x);
		if (ret != -ENOENT)
			return ret;
		ret = dmirror_fault(x->dmirror, dmirror_xfer_pos(x),
				    dmirror_xfer_end(x), x->write);
		if (ret)
			return ret;
		x->cmd->faults++;
	}
}

/* Copy between the bounce buffer and the caller's buffer at cmd->ptr. */
static int dmirror_user_copy(struct dmirror_xfer *x, bool to_user)
{
	struct iovec remote = {
		.iov_base = (void *)(uintptr_t)x->cmd->ptr,
		.iov_len = x->cmd->npages << HETMEM_PAGE_SHIFT,
	};
	ssize_t n;

	if (!remote.iov_base)
		return -EFAULT;
	n = dmirror_vm_copy(to_user, x->bounce, remote.iov_len, &remote, 1);
	if (n < 0 && n != -EFAULT)
		return (int)n;
	return n == (ssize_t)remote.iov_len ? 0 : -EFAULT;
}

static int dmirror_xfer_init(struct dmirror_xfer *x, struct dmirror *dmirror,
			     struct hmm_dmirror_cmd *cmd, bool write)
{
	x->dmirror = dmirror;
	x->cmd = cmd;
	x->write = write;
	x->fail_vpn = ~0UL;
	x->fail_count = 0;
	if (cmd->npages > SIZE_MAX >> HETMEM_PAGE_SHIFT)
		return -ENOMEM;
	x->bounce = malloc(cmd->npages << HETMEM_PAGE_SHIFT);
	return x->bounce ? 0 : -ENOMEM;
}

/**
 * dmirror_read() - HMM_DMIRROR_READ: the device reads process memory
 * @dmirror: the mirror
 * @cmd: the validated command copy; cpages and faults are filled in
 *
 * Context: command context (see hetmem_dmirror_cmd()).
 * Return: 0 or -errno as listed for hetmem_dmirror_cmd().
 */
int dmirror_read(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	struct dmirror_xfer x;
	int ret;

	if (!dmirror_is_owner_process(dmirror))
		return -EFAULT;
	dmirror_prune(dmirror);
	ret = dmirror_xfer_init(&x, dmirror, cmd, false);
	if (ret)
		return ret;
	ret = dmirror_xfer(&x);
	if (!ret)
		ret = dmirror_user_copy(&x, true);
	free(x.bounce);
	if (!ret)
		dmirror_count_add(&dmirror->mdevice->stats, reads, 1);
	return ret;
}

/**
 * dmirror_write() - HMM_DMIRROR_WRITE: the device writes process memory
 * @dmirror: the mirror
 * @cmd: the validated command copy; cpages and faults are filled in
 *
 * Context: command context (see hetmem_dmirror_cmd()).
 * Return: 0 or -errno as listed for hetmem_dmirror_cmd().
 */
int dmirror_write(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	struct dmirror_xfer x;
	int ret;

	if (!dmirror_is_owner_process(dmirror))
		return -EFAULT;
	dmirror_prune(dmirror);
	ret = dmirror_xfer_init(&x, dmirror, cmd, true);
	if (ret)
		return ret;
	ret = dmirror_user_copy(&x, false);
	if (!ret)
		ret = dmirror_xfer(&x);
	free(x.bounce);
	if (!ret)
		dmirror_count_add(&dmirror->mdevice->stats, writes, 1);
	return ret;
}
