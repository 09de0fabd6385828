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
 * Device pages of this device are reached through page_address() of
 * their descriptor. Their accesses do not go through the CPU's page
 * tables, so the mapping's permissions are checked with vma_lookup()
 * instead (once per run of pages): hetmem sees no event for mprotect(),
 * and without the check a WRITE would land in device memory that the
 * CPU may only read. A page that fails the check is dropped and faulted
 * like one whose copy failed; a write fault round that finds its own
 * device page in a VMA without VM_WRITE fails with -EPERM, and one that
 * finds it read-only in a writable VMA brings it back to system memory
 * first (pitfall 6.4.11), so the CPU's copy-on-write decides.
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
	unsigned long vma_end;		/* device pages allowed below this vpn */
};

/*
 * May the device access its own page mapped at @vpn? hetmem sees no event
 * for mprotect(), and device memory, unlike a system page reached through
 * the address, does not check the CPU's permissions: so the VMA is looked
 * up, once per run, and must allow the access (VM_READ, VM_WRITE).
 */
static bool dmirror_vma_allows(struct dmirror_xfer *x, unsigned long vpn)
{
	struct vm_area_struct *vma;
	unsigned long need = x->write ? VM_WRITE : VM_READ;

	if (vpn < x->vma_end)
		return true;
	vma = vma_lookup(x->dmirror->mm, vpn << HETMEM_PAGE_SHIFT);
	if (!vma || !(vma->vm_flags & need))
		return false;
	x->vma_end = vma->vm_end >> HETMEM_PAGE_SHIFT;
	return true;
}

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
 * Where the device reaches the page of @entry, mapped at @vpn: a system
 * frame through its address, a device frame through page_address() of
 * its descriptor (never the frame number as an address, pitfall
 * 6.4.12); NULL for a frame no pagemap holds any more.
 */
static void *dmirror_entry_address(uint64_t entry, unsigned long vpn)
{
	unsigned long pfn = dpt_entry_pfn(entry);
	struct page *page;

	if (hetmem_pfn_is_system(pfn))
		return hetmem_pfn_to_virt(pfn);
	/* A CPU write may have replaced the zero page without an event. */
	if (is_zero_pfn(pfn))
		return (void *)(vpn << HETMEM_PAGE_SHIFT);
	page = pfn >= HETMEM_DEVICE_PFN_BASE ? pfn_to_page(pfn) : NULL;
	return page ? page_address(page) : NULL;
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

	x->vma_end = 0;
	for (n = 0; n < DMIRROR_COPY_RUN && vpn + n <= last; n++) {
		entry = hetmem_radix_lookup(&x->dmirror->pt, vpn + n);
		if (!dmirror_entry_usable(entry, x->write))
			break;
		iov[n].iov_base = dmirror_entry_address(entry, vpn + n);
		if (dpt_entry_pfn(entry) >= HETMEM_DEVICE_PFN_BASE &&
		    !dmirror_vma_allows(x, vpn + n))
			iov[n].iov_base = NULL;
		if (!iov[n].iov_base && !n)
			return dmirror_xfer_failed(x, vpn);
		if (!iov[n].iov_base)
			break;
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

/* Is @addr in a writable VMA? (mprotect() sends no event; see above.) */
static bool dmirror_vma_writable(struct dmirror *dmirror, unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(dmirror->mm, addr);

	return vma && (vma->vm_flags & VM_WRITE);
}

/*
 * Program the table from a settled range; called under the user lock.
 * -EAGAIN with *@back set: a write needs the read-only own device page at
 * that address brought back to system memory first (pitfall 6.4.11).
 */
static int dmirror_do_fault(struct dmirror *dmirror, struct hmm_range *range,
			    unsigned long *back)
{
	unsigned long npages = (range->end - range->start) >> HETMEM_PAGE_SHIFT;
	unsigned long vpn = range->start >> HETMEM_PAGE_SHIFT;
	bool write = range->default_flags & HMM_PFN_REQ_WRITE;
	unsigned long i, w, pfn;
	int ret;

	for (i = 0; i < npages; i++) {
		w = range->hmm_pfns[i];
		pfn = hetmem_hmm_pfn_to_pfn(w);
		/* The kernel WARNs here; for us it is a failed access. */
		if (!(w & HMM_PFN_VALID) || (w & HMM_PFN_ERROR))
			return -EFAULT;
		if (write && pfn >= HETMEM_DEVICE_PFN_BASE &&
		    !dmirror_vma_writable(dmirror, range->start + (i << HETMEM_PAGE_SHIFT)))
			return -EPERM;
		if (write && !(w & HMM_PFN_WRITE) && pfn >= HETMEM_DEVICE_PFN_BASE) {
			*back = range->start + (i << HETMEM_PAGE_SHIFT);
			return -EAGAIN;
		}
		if (write && !(w & HMM_PFN_WRITE))
			return -EFAULT;
		/* Own device frames are stored as such; see dmirror_entry_address(). */
		ret = hetmem_radix_store(&dmirror->pt, vpn + i,
				dpt_entry(pfn, (w & HMM_PFN_WRITE) ? DPT_TAG_WRITE :
								     DPT_TAG_READ));
		if (ret)
			return ret;
		dmirror_devmem_note_vpn(pfn, vpn + i);
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

/* Pages a write fault round brings back from the device before -EFAULT. */
#define DMIRROR_FAULT_BACK_MAX 16

/*
 * One batch of a fault round; a read-only own device page in the way of
 * a write is migrated back and the batch retried.
 */
static int dmirror_fault_batch(struct dmirror *dmirror, struct hmm_range *range)
{
	unsigned long back = 0;
	int ret, tries = 0;

	for (;;) {
		ret = dmirror_range_fault(dmirror, range);
		if (ret)
			return ret;
		ret = dmirror_do_fault(dmirror, range, &back);
		hetmem_mutex_unlock(&dmirror->mutex);
		if (ret != -EAGAIN)
			return ret;
		if (++tries > DMIRROR_FAULT_BACK_MAX)
			return -EFAULT;
		ret = dmirror_migrate_page_to_system(dmirror, back);
		if (ret)
			return ret;
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
		ret = dmirror_fault_batch(dmirror, &range);
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

/**
 * dmirror_read_mirrored() - read a range through the table, without faulting
 * @dmirror: the mirror
 * @cmd: the command copy; the data goes to @cmd->ptr, cpages is set
 *
 * The self-check of MIGRATE_TO_DEV and EXCLUSIVE: every page of the range
 * must be mapped by the table now.
 *
 * Context: command context; takes the user lock.
 * Return: 0 with cpages = npages; -ENOENT when a page has no usable
 * entry; -EFAULT for a bad @cmd->ptr or a page the device keeps failing
 * to read; -ENOMEM.
 */
int dmirror_read_mirrored(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	struct dmirror_xfer x;
	int ret;

	ret = dmirror_xfer_init(&x, dmirror, cmd, false);
	if (ret)
		return ret;
	ret = dmirror_xfer_mirrored(&x);
	if (!ret)
		ret = dmirror_user_copy(&x, true);
	free(x.bounce);
	return ret;
}
