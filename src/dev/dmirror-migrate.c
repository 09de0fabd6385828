/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: the device-memory commands. MIGRATE_TO_DEV,
 * MIGRATE_TO_SYS, EXCLUSIVE, CHECK_EXCLUSIVE and RELEASE.
 */
#include <errno.h>
#include <string.h>

#include "dmirror-priv.h"

/**
 * DOC: Migration commands
 *
 * MIGRATE_TO_DEV and MIGRATE_TO_SYS follow the kernel device. Under an
 * mm reference (none: -EINVAL, also for a process that does not own the
 * mirror) and the mmap read lock, the range is cut into batches of
 * DMIRROR_MIGRATE_BATCH pages clipped to the VMA found by vma_lookup();
 * a gap or a VMA without VM_READ ends the command with -EINVAL, batches
 * before it staying migrated. Each batch is one migrate_vma_setup() /
 * migrate_vma_pages() / migrate_vma_finalize() with this device as
 * pgmap_owner and MIGRATE_VMA_SELECT_COMPOUND, so PMD-aligned THPs and
 * holes move whole.
 *
 * To the device, each collected source gets a device page (a PMD-sized
 * device folio for a compound source, base pages if none is free) with
 * the source's data, or zeroes for a hole or the zero page. A PMD-aligned
 * run of 512 sources that the core collected as base pages (hetmem's
 * migrate_vma_setup() may not keep a THP or a huge hole whole) is served
 * from one aligned device block and treated as the large allocation the
 * kernel would make: FAIL_ALLOC (or no free block) makes it fall back to
 * single pages instead of failing a page, as the kernel's THP path does. After
 * migrate_vma_pages() every page that moved is stored in the mirror's
 * table as its device frame, tagged WRITE when dst carried
 * MIGRATE_PFN_WRITE, before migrate_vma_finalize() makes it visible. The
 * command then checks itself as the kernel's does: a READ-style walk of
 * the table over the whole range without faulting; a page without an
 * entry is -ENOENT, otherwise the data is copied to cmd->ptr and cpages
 * is npages. So cpages counts pages this mirror maps, not pages moved by
 * this call.
 *
 * To system memory, the copy routine of dmirror-devmem.c does the work
 * and cpages counts the pages whose entries kept VALID and MIGRATE after
 * migrate_vma_pages() (a compound entry counts its 512 pages). Nothing is
 * copied to cmd->ptr. A failed base allocation fails the command with
 * -ENOMEM after the batch is restored.
 *
 * No mirror mutex is held across a migrate_vma_*() call: the table is
 * updated under the mutex between migrate_vma_pages() and
 * migrate_vma_finalize(), as the kernel does, while the pages are still
 * locked.
 */

/**
 * DOC: Exclusive access
 *
 * EXCLUSIVE makes each page of the range device-exclusive with
 * make_device_exclusive() (owner NULL, as the kernel device passes) and
 * stores the returned page's frame (a staging page the device reaches
 * through its address) tagged DPT_TAG_ATOMIC; the EXCLUSIVE invalidation
 * sent before erased any older entry. The first error stops the command
 * and is returned. Like MIGRATE_TO_DEV it then verifies itself with a
 * READ-style walk. A CPU access restores the page and its EXCLUSIVE event
 * (owner NULL) erases the ATOMIC entry, which is what CHECK_EXCLUSIVE
 * looks for: any ATOMIC entry left in the range is -EPERM.
 */

typedef int (*dmirror_batch_fn)(struct dmirror *dmirror, struct migrate_vma *args,
				struct hmm_dmirror_cmd *cmd);

/* End of the batch at @addr: 512 pages, clipped to the range and VMA. */
static unsigned long dmirror_batch_end(unsigned long addr, unsigned long end,
				       const struct vm_area_struct *vma)
{
	unsigned long next = addr + (DMIRROR_MIGRATE_BATCH << HETMEM_PAGE_SHIFT);

	if (next > end || next < addr)
		next = end;
	if (next > vma->vm_end)
		next = vma->vm_end;
	return next;
}

/* Batches of [start, end) under the mmap read lock; @fn after setup. */
static int dmirror_migrate_batches(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd,
				   unsigned long flags, dmirror_batch_fn fn)
{
	unsigned long src[DMIRROR_MIGRATE_BATCH], dst[DMIRROR_MIGRATE_BATCH];
	unsigned long addr, next, end = cmd->addr + (cmd->npages << HETMEM_PAGE_SHIFT);
	struct migrate_vma args;
	int ret = 0;

	mmap_read_lock(dmirror->mm);
	for (addr = cmd->addr; addr < end && !ret; addr = next) {
		memset(&args, 0, sizeof(args));
		args.vma = vma_lookup(dmirror->mm, addr);
		if (!args.vma || !(args.vma->vm_flags & VM_READ)) {
			ret = -EINVAL;
			break;
		}
		next = dmirror_batch_end(addr, end, args.vma);
		args.src = src;
		args.dst = dst;
		args.start = addr;
		args.end = next;
		args.pgmap_owner = dmirror->mdevice;
		args.flags = flags;
		ret = migrate_vma_setup(&args);
		if (!ret)
			ret = fn(dmirror, &args, cmd);
	}
	mmap_read_unlock(dmirror->mm);
	return ret;
}

/* Run a migration command under an mm reference. */
static int dmirror_migrate_cmd(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd,
			       unsigned long flags, dmirror_batch_fn fn)
{
	int ret;

	if (!dmirror_is_owner_process(dmirror) || !mmget_not_zero(dmirror->mm))
		return -EINVAL;
	ret = dmirror_migrate_batches(dmirror, cmd, flags, fn);
	mmput(dmirror->mm);
	return ret;
}

/* ---- MIGRATE_TO_DEV ---- */

/* Fill @nr pages of device memory from @spage, or with zeroes. */
static void dmirror_dev_fill(struct page *dpage, struct page *spage, unsigned long nr)
{
	unsigned long j;

	for (j = 0; j < nr; j++) {
		if (spage)
			memcpy(page_address(dpage + j), page_address(spage + j),
			       HETMEM_PAGE_SIZE);
		else
			memset(page_address(dpage + j), 0, HETMEM_PAGE_SIZE);
	}
}

/* A device page or folio for one source, honouring FAIL_ALLOC. */
static struct page *dmirror_dev_alloc(struct dmirror *dmirror, unsigned int order)
{
	if (dmirror_fail_alloc(dmirror))
		return NULL;
	return dmirror_devmem_alloc(dmirror->mdevice, order);
}

/* Serve source @i (@nr pages) with a device page or folio; false: none. */
static bool dmirror_to_dev_one(struct dmirror *dmirror, struct migrate_vma *args,
			       unsigned long i, struct page *spage, unsigned int order)
{
	struct page *dpage = dmirror_dev_alloc(dmirror, order);

	if (!dpage)
		return false;
	dmirror_dev_fill(dpage, spage, 1UL << order);
	args->dst[i] = migrate_pfn(page_to_pfn(dpage)) |
		       (args->src[i] & MIGRATE_PFN_WRITE);
	if (order)
		args->dst[i] |= MIGRATE_PFN_COMPOUND;
	return true;
}

/* A compound source: a device folio, or base pages when none is had. */
static void dmirror_to_dev_folio(struct dmirror *dmirror, struct migrate_vma *args,
				 unsigned long i, struct page *spage)
{
	unsigned long j, write = args->src[i] & MIGRATE_PFN_WRITE;

	if (dmirror_to_dev_one(dmirror, args, i, spage, HPAGE_PMD_ORDER))
		return;
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		struct page *dpage = dmirror_dev_alloc(dmirror, 0);

		if (!dpage)
			continue;	/* this page stays; the final walk tells */
		dmirror_dev_fill(dpage, spage ? spage + j : NULL, 1);
		args->dst[i + j] = migrate_pfn(page_to_pfn(dpage)) | write;
	}
}

/*
 * Is source @i the start of a PMD-aligned run of 512 system sources that
 * migrate as base pages (a THP or a huge hole the core did not keep
 * whole)?
 */
static bool dmirror_huge_run(const struct migrate_vma *args, unsigned long i)
{
	unsigned long addr = args->start + (i << HETMEM_PAGE_SHIFT), j;
	struct page *spage;

	if ((addr & (HETMEM_PMD_SIZE - 1)) || i + HPAGE_PMD_NR > args->npages)
		return false;
	for (j = i; j < i + HPAGE_PMD_NR; j++) {
		if (!(args->src[j] & MIGRATE_PFN_MIGRATE) ||
		    (args->src[j] & MIGRATE_PFN_COMPOUND))
			return false;
		spage = migrate_pfn_to_page(args->src[j]);
		if (spage && is_device_private_page(spage))
			return false;
	}
	return true;
}

/*
 * Serve a huge run from one aligned device block, handed out as base
 * pages; like a THP allocation it falls back to single pages when no
 * block is had or FAIL_ALLOC is set.
 */
static void dmirror_to_dev_run(struct dmirror *dmirror, struct migrate_vma *args,
			       unsigned long i)
{
	struct page *dpage = NULL;
	unsigned long j;

	if (!dmirror_fail_alloc(dmirror))
		dpage = dmirror_devmem_alloc_run(dmirror->mdevice);
	for (j = i; j < i + HPAGE_PMD_NR; j++) {
		if (!dpage) {
			dmirror_to_dev_one(dmirror, args, j,
					   migrate_pfn_to_page(args->src[j]), 0);
			continue;
		}
		dmirror_dev_fill(dpage + (j - i), migrate_pfn_to_page(args->src[j]), 1);
		args->dst[j] = migrate_pfn(page_to_pfn(dpage + (j - i))) |
			       (args->src[j] & MIGRATE_PFN_WRITE);
	}
}

/* Allocate and copy every collected source of the batch. */
static void dmirror_to_dev_copy(struct dmirror *dmirror, struct migrate_vma *args)
{
	unsigned long i, nr;
	struct page *spage;

	memset(args->dst, 0, args->npages * sizeof(*args->dst));
	for (i = 0; i < args->npages; i += nr) {
		nr = 1;
		if (!(args->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		spage = migrate_pfn_to_page(args->src[i]);
		if (spage && is_device_private_page(spage))
			continue;	/* already device memory (the kernel WARNs) */
		if ((args->src[i] & MIGRATE_PFN_COMPOUND) &&
		    i + HPAGE_PMD_NR <= args->npages) {
			nr = HPAGE_PMD_NR;
			dmirror_to_dev_folio(dmirror, args, i, spage);
		} else if (dmirror_huge_run(args, i)) {
			nr = HPAGE_PMD_NR;
			dmirror_to_dev_run(dmirror, args, i);
		} else {
			dmirror_to_dev_one(dmirror, args, i, spage, 0);
		}
	}
}

/* Store the device frame(s) of dst[@i] at page @vpn; mutex held. */
static unsigned long dmirror_map_one(struct dmirror *dmirror, unsigned long vpn,
				     unsigned long mpfn)
{
	unsigned long j, pfn = page_to_pfn(migrate_pfn_to_page(mpfn));
	unsigned long nr = (mpfn & MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
	uint64_t tag = (mpfn & MIGRATE_PFN_WRITE) ? DPT_TAG_WRITE : DPT_TAG_READ;

	for (j = 0; j < nr; j++) {
		if (hetmem_radix_store(&dmirror->pt, vpn + j, dpt_entry(pfn + j, tag)))
			break;	/* -ENOMEM: the final walk reports the page */
		dmirror_devmem_note_vpn(pfn + j, vpn + j);
	}
	return nr;
}

/*
 * Map what moved. Per-page destinations of a compound source count as
 * moved while the source's head entry kept MIGRATE_PFN_MIGRATE.
 */
static void dmirror_map_migrated(struct dmirror *dmirror, struct migrate_vma *args)
{
	unsigned long i, head_end = 0, moved = 0;
	unsigned long vpn = args->start >> HETMEM_PAGE_SHIFT;
	bool head_moved = false;

	hetmem_mutex_lock(&dmirror->mutex);
	for (i = 0; i < args->npages; i++) {
		if (args->src[i] & MIGRATE_PFN_COMPOUND) {
			head_end = i + HPAGE_PMD_NR;
			head_moved = args->src[i] & MIGRATE_PFN_MIGRATE;
		}
		if (!(args->src[i] & MIGRATE_PFN_MIGRATE) && !(i < head_end && head_moved))
			continue;
		if (!migrate_pfn_to_page(args->dst[i]))
			continue;
		moved += dmirror_map_one(dmirror, vpn + i, args->dst[i]);
	}
	hetmem_mutex_unlock(&dmirror->mutex);
	dmirror_count_add(&dmirror->mdevice->stats, migrated_to_dev, moved);
}

static int dmirror_to_dev_batch(struct dmirror *dmirror, struct migrate_vma *args,
				struct hmm_dmirror_cmd *cmd)
{
	dmirror_to_dev_copy(dmirror, args);
	migrate_vma_pages(args);
	dmirror_map_migrated(dmirror, args);
	migrate_vma_finalize(args);
	return 0;
}

/**
 * dmirror_migrate_to_device() - HMM_DMIRROR_MIGRATE_TO_DEV
 * @dmirror: the mirror
 * @cmd: the validated command copy; cpages is filled in
 *
 * Context: command context (see hetmem_dmirror_cmd()).
 * Return: 0 with the range's data in @cmd->ptr; -EINVAL when the address
 * space is gone or a page of the range has no readable VMA; -ENOENT when
 * a page ends up not mapped by this mirror; -EFAULT for a bad @cmd->ptr;
 * -ENOMEM; the errors of migrate_vma_setup().
 */
int dmirror_migrate_to_device(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	int ret;

	ret = dmirror_migrate_cmd(dmirror, cmd, MIGRATE_VMA_SELECT_SYSTEM |
				  MIGRATE_VMA_SELECT_COMPOUND, dmirror_to_dev_batch);
	if (ret)
		return ret;
	return dmirror_read_mirrored(dmirror, cmd);
}

/* ---- MIGRATE_TO_SYS ---- */

static int dmirror_to_sys_batch(struct dmirror *dmirror, struct migrate_vma *args,
				struct hmm_dmirror_cmd *cmd)
{
	struct dmirror_device *mdevice = dmirror->mdevice;
	unsigned long moved;
	int ret;

	ret = dmirror_copy_to_ram(mdevice, args, dmirror);
	migrate_vma_pages(args);
	moved = dmirror_count_migrated(args->src, args->npages);
	migrate_vma_finalize(args);
	cmd->cpages += moved;
	dmirror_count_add(&mdevice->stats, migrated_to_sys, moved);
	return ret;
}

/**
 * dmirror_migrate_to_system() - HMM_DMIRROR_MIGRATE_TO_SYS
 * @dmirror: the mirror
 * @cmd: the validated command copy; cpages is filled in
 *
 * Context: command context (see hetmem_dmirror_cmd()).
 * Return: 0, also when nothing moved; -EINVAL when the address space is
 * gone or a page of the range has no readable VMA; -ENOMEM when a system
 * page could not be allocated (or FAIL_ALLOC was set); the errors of
 * migrate_vma_setup().
 */
int dmirror_migrate_to_system(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	return dmirror_migrate_cmd(dmirror, cmd, MIGRATE_VMA_SELECT_DEVICE_PRIVATE |
				   MIGRATE_VMA_SELECT_COMPOUND, dmirror_to_sys_batch);
}

/**
 * dmirror_migrate_page_to_system() - bring one own device page back
 * @dmirror: the mirror
 * @addr: page-aligned address of the page
 *
 * Used by WRITE when a fault round finds a read-only page of this device
 * (pitfall 6.4.11): once the page is system memory again, the next fault
 * round can write-fault it (copy-on-write, or -EPERM).
 *
 * Context: command context, no mirror mutex held.
 * Return: 0 (also when the page moved meanwhile); -EFAULT when the
 * address space or the VMA is gone; -ENOMEM; the errors of
 * migrate_vma_setup().
 */
int dmirror_migrate_page_to_system(struct dmirror *dmirror, unsigned long addr)
{
	struct hmm_dmirror_cmd cmd = { .addr = addr, .npages = 1 };
	int ret;

	ret = dmirror_migrate_cmd(dmirror, &cmd, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
				  dmirror_to_sys_batch);
	return ret == -EINVAL ? -EFAULT : ret;
}

/* ---- EXCLUSIVE, CHECK_EXCLUSIVE ---- */

/* Make one page exclusive and store it tagged ATOMIC. */
static int dmirror_exclusive_one(struct dmirror *dmirror, unsigned long addr)
{
	struct folio *folio = NULL;
	struct page *page;
	int ret;

	page = make_device_exclusive(dmirror->mm, addr, NULL, &folio);
	if (hetmem_is_err_ptr(page))
		return hetmem_ptr_err(page);
	hetmem_mutex_lock(&dmirror->mutex);
	ret = hetmem_radix_store(&dmirror->pt, addr >> HETMEM_PAGE_SHIFT,
				 dpt_entry(page_to_pfn(page), DPT_TAG_ATOMIC));
	hetmem_mutex_unlock(&dmirror->mutex);
	folio_unlock(folio);
	folio_put(folio);
	if (!ret)
		dmirror_count_add(&dmirror->mdevice->stats, exclusive, 1);
	return ret;
}

static int dmirror_exclusive_range(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long addr, end = cmd->addr + (cmd->npages << HETMEM_PAGE_SHIFT);
	int ret = 0;

	mmap_read_lock(dmirror->mm);
	for (addr = cmd->addr; addr < end && !ret; addr += HETMEM_PAGE_SIZE)
		ret = dmirror_exclusive_one(dmirror, addr);
	mmap_read_unlock(dmirror->mm);
	return ret;
}

/**
 * dmirror_exclusive() - HMM_DMIRROR_EXCLUSIVE
 * @dmirror: the mirror
 * @cmd: the validated command copy; cpages is filled in
 *
 * Context: command context (see hetmem_dmirror_cmd()).
 * Return: 0 with the range's data in @cmd->ptr; -EINVAL when the address
 * space is gone; the error of make_device_exclusive() for the first page
 * it refuses (-EOPNOTSUPP for a page that is not private anonymous,
 * -EFAULT for a hole or an unwritable page, ...); -ENOENT when a page is
 * no longer mapped when the command verifies itself; -EFAULT for a bad
 * @cmd->ptr; -ENOMEM.
 */
int dmirror_exclusive(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	int ret;

	if (!dmirror_is_owner_process(dmirror) || !mmget_not_zero(dmirror->mm))
		return -EINVAL;
	ret = dmirror_exclusive_range(dmirror, cmd);
	mmput(dmirror->mm);
	if (ret)
		return ret;
	return dmirror_read_mirrored(dmirror, cmd);
}

/**
 * dmirror_check_exclusive() - HMM_DMIRROR_CHECK_EXCLUSIVE
 * @dmirror: the mirror
 * @cmd: the validated command copy
 *
 * Context: command context; takes the mirror's mutex.
 * Return: 0 when no page of the range is still device-exclusive in the
 * table, -EPERM otherwise.
 */
int dmirror_check_exclusive(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long vpn = cmd->addr >> HETMEM_PAGE_SHIFT;
	unsigned long last = vpn + cmd->npages - 1;
	uint64_t entry;
	int ret = 0;

	hetmem_mutex_lock(&dmirror->mutex);
	while (!ret && (entry = hetmem_radix_next(&dmirror->pt, &vpn, last))) {
		if (dpt_entry_tag(entry) == DPT_TAG_ATOMIC)
			ret = -EPERM;
		if (vpn++ == last)
			break;
	}
	hetmem_mutex_unlock(&dmirror->mutex);
	return ret;
}

/* ---- RELEASE ---- */

/**
 * dmirror_release() - HMM_DMIRROR_RELEASE: evict all of the device's memory
 * @dmirror: the mirror
 * @cmd: the validated command copy (unused)
 *
 * Every device page of the device, whichever mirror migrated it, goes
 * back to system memory and the chunks are removed (see
 * dmirror_devmem_release()).
 *
 * Context: command context.
 * Return: 0.
 */
int dmirror_release(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	(void)cmd;
	dmirror_devmem_release(dmirror->mdevice);
	return 0;
}
