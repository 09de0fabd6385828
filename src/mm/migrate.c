/* SPDX-License-Identifier: MIT */
/*
 * hetmem - migrate_vma: moving pages between the CPU and device memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "mm/devmem.h"

/**
 * DOC: How a page leaves the CPU
 *
 * The kernel replaces the page-table entry of a migrating page by a
 * migration entry: from then on a CPU access waits, and the page's
 * content is stable while the driver copies it. hetmem uses the
 * mechanisms the kernel offers to userspace (measured in
 * ../shared/spec/mechanisms.md, Q2):
 *
 *  - The range around the page is registered with the monitor's
 *    userfaultfd for missing-page faults (2 MiB-aligned windows, clipped
 *    to the mapping), so that a hole there faults to hetmem instead of
 *    reading as zeros.
 *  - The page is moved out with UFFDIO_MOVE into hetmem's staging area
 *    (staging.c), at the same offset in a 2 MiB block, so one ioctl moves
 *    a whole run (see DOC: Huge pages for transparent huge pages). The
 *    move is atomic for the CPU: a write lands before it, or faults after
 *    it and waits. It allocates nothing, copies nothing, and raises no
 *    address-space event (the staging area is registered on a second
 *    userfaultfd that has no events, and the move goes through it, so it
 *    never fails with EAGAIN either).
 *  - UFFDIO_MOVE needs a writable private anonymous source that no other
 *    process shares. A copy-on-write page shared with a forked child is
 *    made exclusive with MADV_POPULATE_WRITE first (the child keeps its
 *    copy, which is what it would see in the kernel too). A read-only
 *    mapping falls back to write-protect, copy, then MADV_DONTNEED: the
 *    write-protection closes the window in which a write (after an
 *    mprotect) could land between the copy and the drop, and the REMOVE
 *    event that the drop raises is recognised as hetmem's own. That
 *    fallback makes the calling thread wait for the monitor, so the
 *    monitor itself never takes it (such pages are not collected there).
 *  - Back: the driver copies into a staging page placed at the
 *    destination's offset, and UFFDIO_MOVE moves it into the hole through
 *    the monitor's userfaultfd, which also wakes any thread waiting on
 *    the page. That ioctl fails with EAGAIN while an address-space event
 *    is queued; other threads wait for the monitor to deliver it, the
 *    monitor itself gives up the page and serves the fault again later.
 *    Read-only mappings are filled with UFFDIO_COPY.
 *
 * Per page, the device entry (devtab.c) is the state machine shared with
 * the fault handler: set to MIGRATING under the table lock before the
 * page moves, and to DEVICE (or erased, for a page that went back) in
 * migrate_vma_finalize(), which wakes the monitor to serve the faults it
 * deferred. An event that erases a MIGRATING entry (munmap, MADV_DONTNEED)
 * makes the migration drop the page, as the kernel does when it finds its
 * migration entry gone.
 *
 * migrate_vma_setup() takes the read side of the mm's fork semaphore and
 * migrate_vma_finalize() releases it, so that fork(), which brings every
 * device page back first, never sees a migration half done. Calls on the
 * monitor thread (from migrate_to_ram) skip it: they only bring pages
 * back, which is what fork wants, and fork waits for the monitor.
 */

/**
 * DOC: Moving before looking
 *
 * The kernel classifies each page-table entry as it collects it: a hole
 * or the zero page has nothing to copy, a swapped-out or special entry is
 * not collected. Asking the page tables (PAGEMAP_SCAN) costs about as
 * much as moving 16 pages, so in the common case hetmem does not ask
 * first. It marks the pages MIGRATING, then moves each run as though it
 * held plain pages. UFFDIO_MOVE itself tells what is not one: it stops
 * at a hole (ENOENT) or a guard page (EFAULT). From the first page that
 * did not move, the rest of the run is classified from a snapshot taken
 * then, and handled the careful way. Of the pages that did move, only
 * the zero page is not what it seems (UFFDIO_MOVE moves it like a page);
 * only a page whose first 64 bytes are zero can be it, and those alone
 * are looked up, in the staging area where they now are.
 *
 * Moving first is not done when a page could be swapped out (the system
 * has swap space; UFFDIO_MOVE would move the swap entry, and the kernel
 * does not collect such a page), nor when MIGRATE_VMA_SELECT_COMPOUND
 * asks for a range that contains a whole PMD window (the window must be
 * known to be one huge page or one hole before anything moves). Swap
 * space is read with sysinfo() at most once a second, so for up to a
 * second after swapon(), a swapped-out page can be collected and swapped
 * in by the driver's copy instead of being left out.
 */

/**
 * DOC: Huge pages
 *
 * With MIGRATE_VMA_SELECT_COMPOUND, a PMD-aligned 2 MiB window of the
 * range that is one PMD-mapped transparent huge page (by the page-map
 * snapshot), one hole, or one device folio mapped whole and in order is
 * collected as one MIGRATE_PFN_COMPOUND entry followed by 511 zero
 * placeholders, as the kernel does. A huge page moves out as one PMD into
 * a huge staging block (staging.c); a staging folio a driver filled moves
 * back as one PMD, and a destination that reads as a huge page afterwards
 * proves the staging block's PMD empty again.
 *
 * A device folio is mapped page by page: each of its 512 entries holds one
 * reference to the folio and each subpage records its own address, so
 * partial munmap, mremap and faults work on it as on base pages. Entries
 * of a compound window are read and written through the leaf of the table
 * that spans exactly that window. Whatever cannot stay whole goes page by
 * page: a compound source served by per-page destinations, a window part
 * of which was unmapped meanwhile, a folio that fork or eviction finds
 * partly mapped. A page that goes back from a huge staging folio without
 * its neighbours is copied (UFFDIO_COPY), not moved, so that nothing ever
 * moves a single page out of a huge page (see DOC: The staging area).
 * Subpages of one folio collected as separate entries share its lock: the
 * first entry locks it (MF_LOCKED) and unlocks it after every entry is
 * final.
 */

enum mig_kind {
	KIND_NONE,
	KIND_HOLE,		/* hole or zero page, nothing to copy */
	KIND_ZERO,		/* zero page still mapped: moved out like a page */
	KIND_PENDING,		/* system page marked, not classified yet */
	KIND_MOVED,		/* system page moved into a staging page */
	KIND_COPIED,		/* system page copied, then dropped */
	KIND_DEVICE,		/* device page */
	KIND_TAIL,		/* placeholder after a compound entry */
};

/* Per-entry flags, mig->fl[]. */
#define MF_COMPOUND	0x01	/* a PMD-sized entry; the next 511 are KIND_TAIL */
#define MF_LOCKED	0x02	/* this entry took its folio's lock */
#define MF_HUGE		0x04	/* the snapshot saw a PMD-mapped huge page */
#define MF_GUESS	0x08	/* KIND_MOVED unclassified: moved optimistically */

struct hetmem_migrate {
	struct mm_struct *mm;
	bool on_monitor;
	bool fork_locked;
	bool vma_write;
	bool select_system;	/* the mapping can give system pages */
	struct page *locked_head;	/* the folio this migration locked last */
	uint8_t *fl;		/* npages flags, after kind[] */
	uint8_t kind[];
};

#define WINDOW_PAGES HPAGE_PMD_NR

static struct hetmem_mutex copy_fallback_lock = HETMEM_MUTEX_INIT(copy_fallback_lock);

static unsigned long mig_addr(const struct migrate_vma *args, unsigned long i)
{
	return args->start + (i << HETMEM_PAGE_SHIFT);
}

/* ---- setup: checks ---- */

static bool mig_vma_ok(const struct vm_area_struct *vma)
{
	return !(vma->vm_flags & (VM_HUGETLB | VM_IO | VM_PFNMAP | VM_MIXEDMAP)) &&
	       !vma->hetmem_special;
}

static int mig_check(struct migrate_vma *args)
{
	struct vm_area_struct *vma = args->vma;

	args->start &= HETMEM_PAGE_MASK;
	args->end &= HETMEM_PAGE_MASK;
	if (!vma || !args->src || !args->dst || args->start >= args->end)
		return -EINVAL;
	if (args->start < vma->vm_start || args->end > vma->vm_end ||
	    !mig_vma_ok(vma) || !hetmem_mm_is_current(vma->vm_mm))
		return -EINVAL;
	if (args->fault_page && (!is_device_private_page(args->fault_page) ||
				 !(page_folio(args->fault_page)->page.flags &
				   HETMEM_PGF_LOCKED)))
		return -EINVAL;
	return 0;
}

/* The mapping as it is now: private anonymous, or nothing migrates. */
static bool mig_private_anon(struct mm_struct *mm, struct migrate_vma *args,
			     struct hetmem_migrate *mig)
{
	struct hetmem_vma now;

	/* The driver's snapshot under the mmap lock it still holds, or now. */
	if ((!hetmem_vma_fresh(args->vma, &now) &&
	     hetmem_vma_find(mm, args->start, &now)) ||
	    now.start > args->start || now.end < args->end)
		return false;
	mig->vma_write = now.flags & HETMEM_VMA_WRITE;
	return !(now.flags & (HETMEM_VMA_SHARED | HETMEM_VMA_FILE |
			      HETMEM_VMA_HUGETLB | HETMEM_VMA_SPECIAL));
}

/* ---- setup: collecting ---- */

/*
 * Entries of the table read or replaced in place through the leaf that
 * holds them: a leaf spans one PMD-aligned window, so a compound entry's
 * 512 pages cost one walk instead of 512. Replacing a non-zero entry by
 * a non-zero one changes no count; erasing goes through the tree.
 */
struct devtab_cursor {
	unsigned long base;
	uint64_t *entry;
};

static uint64_t *devtab_slot(struct mm_struct *mm, struct devtab_cursor *c,
			     unsigned long vpn)
{
	unsigned long base = vpn & ~(HETMEM_RADIX_FANOUT - 1), next;
	struct hetmem_radix_node *leaf;

	if (!c->entry || c->base != base) {
		leaf = hetmem_radix_leaf(&mm->devtab, vpn, &next);
		c->base = base;
		c->entry = leaf ? leaf->entry : NULL;
	}
	return c->entry ? &c->entry[vpn - base] : NULL;
}

static uint64_t devtab_get(struct mm_struct *mm, struct devtab_cursor *c,
			   unsigned long vpn)
{
	uint64_t *slot = devtab_slot(mm, c, vpn);

	return slot ? *slot : 0;
}

/*
 * The lock of device page @page, collected as entry @i. The subpages of
 * a folio share its lock: the fault path holds it for fault_page's
 * folio, and a folio this migration locked for an earlier entry is not
 * locked again (its first entry unlocks it in finalize).
 */
static bool mig_lock_device(struct migrate_vma *args, struct hetmem_migrate *mig,
			    unsigned long i, struct page *page)
{
	struct page *head = &page_folio(page)->page;

	if ((args->fault_page && head == &page_folio(args->fault_page)->page) ||
	    head == mig->locked_head)
		return true;
	if (!trylock_page(head))
		return false;
	mig->fl[i] |= MF_LOCKED;
	mig->locked_head = head;
	return true;
}

/* Do entries [vpn, vpn + 512) map device folio @head whole, in order, as @e? */
static bool mig_folio_whole(struct mm_struct *mm, unsigned long vpn,
			    struct page *head, uint64_t e)
{
	struct devtab_cursor c = { 0 };

	if ((vpn % HPAGE_PMD_NR) || page_folio(head) != (struct folio *)head ||
	    folio_order((struct folio *)head) != HPAGE_PMD_ORDER)
		return false;
	for (unsigned long j = 1; j < HPAGE_PMD_NR; j++) {
		if (devtab_get(mm, &c, vpn + j) != e + ((uint64_t)j << HETMEM_DEVTAB_PFN_SHIFT))
			return false;
	}
	return true;
}

/* Mark [vpn, vpn + nr) MIGRATING, keeping each entry's write bit. */
static void mig_mark_run(struct mm_struct *mm, unsigned long vpn, unsigned long nr)
{
	struct devtab_cursor c = { 0 };

	for (unsigned long j = 0; j < nr; j++) {
		uint64_t *slot = devtab_slot(mm, &c, vpn + j);

		/* Every entry exists (the caller saw it): replaced in place. */
		*slot = hetmem_devtab_entry(0, HETMEM_DEVTAB_MIGRATING |
					    (*slot & HETMEM_DEVTAB_WRITE));
	}
}

/* Collect a whole device folio mapped at PMD-aligned entry @i as one entry. */
static unsigned long mig_collect_folio(struct migrate_vma *args,
				       struct hetmem_migrate *mig,
				       unsigned long i, struct page *head, uint64_t e)
{
	unsigned long vpn = mig_addr(args, i) >> HETMEM_PAGE_SHIFT;

	if (!mig_lock_device(args, mig, i, head))
		return HPAGE_PMD_NR;
	get_page(head);
	mig_mark_run(mig->mm, vpn, HPAGE_PMD_NR);
	args->src[i] = migrate_pfn(page_to_pfn(head)) | MIGRATE_PFN_MIGRATE |
		       MIGRATE_PFN_COMPOUND |
		       ((e & HETMEM_DEVTAB_WRITE) ? MIGRATE_PFN_WRITE : 0);
	mig->kind[i] = KIND_DEVICE;
	mig->fl[i] |= MF_COMPOUND;
	memset(&mig->kind[i + 1], KIND_TAIL, HPAGE_PMD_NR - 1);
	return HPAGE_PMD_NR;
}

static bool mig_want_folio(const struct migrate_vma *args, unsigned long i)
{
	return (args->flags & MIGRATE_VMA_SELECT_COMPOUND) &&
	       !(mig_addr(args, i) & (HETMEM_PMD_SIZE - 1)) &&
	       i + HPAGE_PMD_NR <= args->npages;
}

/*
 * Collect page @i if the flags select it, marking its entry MIGRATING;
 * returns the entries consumed (512 for a device folio kept whole).
 * A system page (no entry yet) is only marked here, as KIND_PENDING: it
 * is classified from a page-table snapshot taken after every mark, so
 * that the snapshot cannot be older than the entries (a page that was on
 * a device when an earlier snapshot was taken may be back by now).
 * Table lock held.
 */
static unsigned long mig_collect_one(struct migrate_vma *args,
				     struct hetmem_migrate *mig, unsigned long i)
{
	struct mm_struct *mm = mig->mm;
	unsigned long vpn = mig_addr(args, i) >> HETMEM_PAGE_SHIFT;
	uint64_t e = hetmem_radix_lookup(&mm->devtab, vpn);
	struct page *page = NULL;

	if (hetmem_devtab_type(e) == HETMEM_DEVTAB_DEVICE) {
		page = hetmem_device_pfn_to_page(hetmem_devtab_pfn(e));
		if (!(args->flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) || !page ||
		    page->pgmap->owner != args->pgmap_owner)
			return 1;
		if (mig_want_folio(args, i) && mig_folio_whole(mm, vpn, page, e))
			return mig_collect_folio(args, mig, i, page, e);
		if (!mig_lock_device(args, mig, i, page))
			return 1;
		get_page(page);
		args->src[i] = migrate_pfn(hetmem_devtab_pfn(e)) | MIGRATE_PFN_MIGRATE |
			       ((e & HETMEM_DEVTAB_WRITE) ? MIGRATE_PFN_WRITE : 0);
		mig->kind[i] = KIND_DEVICE;
	} else if (e || !mig->select_system) {
		return 1;
	} else {
		mig->kind[i] = KIND_PENDING;
	}
	if (hetmem_radix_store(&mm->devtab, vpn,
			       hetmem_devtab_entry(0, HETMEM_DEVTAB_MIGRATING |
						   (e & HETMEM_DEVTAB_WRITE)))) {
		if (mig->kind[i] == KIND_DEVICE) {
			if (mig->fl[i] & MF_LOCKED) {
				unlock_page(page);
				mig->locked_head = NULL;
			}
			put_page(page);
		}
		mig->fl[i] = 0;
		mig->kind[i] = KIND_NONE;
		args->src[i] = 0;
	}
	return 1;
}

static void mig_collect(struct migrate_vma *args, struct hetmem_migrate *mig)
{
	unsigned long i;

	hetmem_mutex_lock(&mig->mm->dev_lock);
	for (i = 0; i < args->npages; i += mig_collect_one(args, mig, i))
		;
	hetmem_mutex_unlock(&mig->mm->dev_lock);
}

static void mig_drop(struct migrate_vma *args, struct hetmem_migrate *mig,
		     unsigned long i);
static void mig_detach(struct migrate_vma *args, struct hetmem_migrate *mig,
		       unsigned long from, unsigned long to);
static bool mig_set_entry(struct mm_struct *mm, unsigned long addr, uint64_t e);

/*
 * What the marked system pages of [from, to) are, from a snapshot taken
 * after the marks (pending ones, or ones only guessed to be pages).
 */
static void mig_classify(struct migrate_vma *args, struct hetmem_migrate *mig,
			 unsigned long from, unsigned long to)
{
	uint16_t *cats = calloc(to - from, sizeof(*cats));

	if (cats && hetmem_pagemap_snapshot(mig->mm, mig_addr(args, from),
					    mig_addr(args, to), cats)) {
		free(cats);
		cats = NULL;	/* cannot see the pages: none is collected */
	}
	for (unsigned long i = from; i < to; i++) {
		uint16_t cat = cats ? cats[i - from] : HETMEM_PG_SWAPPED;

		if (mig->fl[i] & MF_GUESS) {
			mig->fl[i] &= ~MF_GUESS;
			mig->kind[i] = KIND_PENDING;
		}
		if (mig->kind[i] != KIND_PENDING)
			continue;
		if (cat & (HETMEM_PG_SWAPPED | HETMEM_PG_FILE | HETMEM_PG_GUARD)) {
			mig_drop(args, mig, i);
		} else if (!(cat & HETMEM_PG_PRESENT)) {
			args->src[i] = MIGRATE_PFN_MIGRATE;
			mig->kind[i] = KIND_HOLE;
		} else {
			/* The zero page is moved out too: a CPU write must fault. */
			mig->kind[i] = (cat & HETMEM_PG_PFNZERO) ? KIND_ZERO : KIND_MOVED;
			if (cat & HETMEM_PG_HUGE)
				mig->fl[i] |= MF_HUGE;
		}
	}
	free(cats);
}

/* Page @i could not be detached: forget it. */
static void mig_drop(struct migrate_vma *args, struct hetmem_migrate *mig,
		     unsigned long i)
{
	unsigned long vpn = mig_addr(args, i) >> HETMEM_PAGE_SHIFT;

	hetmem_mutex_lock(&mig->mm->dev_lock);
	if (hetmem_devtab_type(hetmem_radix_lookup(&mig->mm->devtab, vpn)) ==
	    HETMEM_DEVTAB_MIGRATING)
		hetmem_radix_erase_range(&mig->mm->devtab, vpn, vpn);
	hetmem_mutex_unlock(&mig->mm->dev_lock);
	mig->kind[i] = KIND_NONE;
	args->src[i] = 0;
	hetmem_devmem_count(migrate_skipped, 1);
}

/*
 * Record that page @i now lives in staging page @page. The zero page is
 * a source without data (the kernel's rule): its staging copy is dropped,
 * and restoring it is leaving the hole, which reads as the zero page.
 */
static void mig_detached(struct migrate_vma *args, struct hetmem_migrate *mig,
			 unsigned long i, struct page *page, enum mig_kind kind,
			 bool lock)
{
	if (mig->kind[i] == KIND_ZERO) {
		mig->kind[i] = KIND_HOLE;
		args->src[i] = MIGRATE_PFN_MIGRATE;
		put_page(page);
		return;
	}
	mig->kind[i] = kind;
	args->src[i] = migrate_pfn(page_to_pfn(page)) | MIGRATE_PFN_MIGRATE |
		       (mig->vma_write ? MIGRATE_PFN_WRITE : 0);
	if (lock) {
		lock_page(page);
		mig->fl[i] |= MF_LOCKED;
	}
}

/* ---- setup: detaching by moving ---- */

/*
 * Move [addr, addr + n pages) into @pages. A hole that appeared meanwhile
 * (ENOENT) or a guard page (EFAULT) is skipped page by page; a shared
 * page (EBUSY) is made exclusive once. Returns the pages handled, with
 * @moved[] saying which moved, or -errno when the rest of the run must
 * take the copy path. With @stop_early, the first page that does not
 * move ends the call instead: the pages handled are the moved prefix.
 */
long hetmem_migrate_move_out(unsigned long addr, unsigned long n,
			     struct page **pages, bool *moved, bool stop_early)
{
	unsigned long done = 0, step;
	bool unshared = false, cleared = false;
	long ret;

	while (done < n) {
		ret = hetmem_staging_move_in((unsigned long)page_address(pages[done]),
					     addr + (done << HETMEM_PAGE_SHIFT),
					     (n - done) << HETMEM_PAGE_SHIFT,
					     false, &step);
		step = (ret >= 0 ? (unsigned long)ret : step) >> HETMEM_PAGE_SHIFT;
		for (unsigned long k = 0; k < step; k++)
			moved[done + k] = true;
		done += step;
		if (ret >= 0)
			continue;
		if (stop_early)
			return (long)done;
		if (ret == -ENOENT || ret == -EFAULT) {
			moved[done++] = false;
		} else if (ret == -EEXIST && !cleared) {
			/*
			 * A free staging slot still holds memory (the rest of
			 * a huge page a driver copied into): drop it, it is
			 * ours, and the drop raises no event.
			 */
			cleared = true;
			madvise(page_address(pages[done]), (n - done) << HETMEM_PAGE_SHIFT,
				MADV_DONTNEED);
		} else if (ret == -EBUSY && !unshared) {
			/* The failing page, still mapped: make it exclusive. */
			unshared = true;
			madvise((void *)(addr + (done << HETMEM_PAGE_SHIFT)),
				HETMEM_PAGE_SIZE, MADV_POPULATE_WRITE);
		} else {
			return done ? (long)done : ret;
		}
	}
	return (long)n;
}

/* Write-protect, copy, drop: for pages UFFDIO_MOVE refuses. */
static int mig_copy_run(struct migrate_vma *args, struct hetmem_migrate *mig,
			unsigned long i, unsigned long n, struct page **pages)
{
	struct mm_struct *mm = mig->mm;
	unsigned long addr = mig_addr(args, i), len = n << HETMEM_PAGE_SHIFT;
	struct uffdio_writeprotect wp = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	int64_t deadline = hetmem_ktime_get() + 1000LL * 1000 * 1000;

	while (ioctl(hetmem_mm_uffd(mm), UFFDIO_WRITEPROTECT, &wp)) {
		if (errno != EAGAIN || hetmem_mm_sync_events(mm, deadline, true))
			return -errno;
	}
	for (unsigned long k = 0; k < n; k++)
		memcpy(page_address(pages[k]), (void *)(addr + (k << HETMEM_PAGE_SHIFT)),
		       HETMEM_PAGE_SIZE);
	hetmem_mutex_lock(&copy_fallback_lock);
	hetmem_mutex_lock(&mm->dev_lock);
	mm->own_remove_start = addr;
	mm->own_remove_end = addr + len;
	hetmem_mutex_unlock(&mm->dev_lock);
	madvise((void *)addr, len, MADV_DONTNEED);
	/*
	 * The caller is released when the monitor reads the REMOVE, before
	 * the monitor handles it: keep the range marked until it has.
	 */
	hetmem_mm_sync_events(mm, hetmem_ktime_get() + 1000LL * 1000 * 1000, false);
	hetmem_mutex_lock(&mm->dev_lock);
	mm->own_remove_start = mm->own_remove_end = 0;
	hetmem_mutex_unlock(&mm->dev_lock);
	hetmem_mutex_unlock(&copy_fallback_lock);
	hetmem_devmem_count(move_fallbacks, n);
	return 0;
}

/*
 * Pages [i, i + n) were moved without being classified: each is a page
 * unless it was the zero page, which moves like one. Only a page whose
 * first bytes read as zero can be it, and only those are looked up.
 */
static void mig_unguess(struct migrate_vma *args, struct hetmem_migrate *mig,
			unsigned long i, unsigned long n, struct page **pages)
{
	unsigned long k, lo = n, hi = 0;
	uint16_t *cats;

	for (k = 0; k < n; k++) {
		const uint64_t *w = page_address(pages[k]);

		mig->fl[i + k] &= ~MF_GUESS;
		if (!(w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])) {
			lo = lo < k ? lo : k;
			hi = k + 1;
		}
	}
	if (lo >= hi || !(cats = calloc(hi - lo, sizeof(*cats))))
		return;
	if (!hetmem_pagemap_snapshot(mig->mm, (unsigned long)page_address(pages[lo]),
				     (unsigned long)page_address(pages[hi - 1]) +
				     HETMEM_PAGE_SIZE, cats)) {
		for (k = lo; k < hi; k++)
			if (cats[k - lo] & HETMEM_PG_PFNZERO)
				mig->kind[i + k] = KIND_ZERO;
	}
	free(cats);
}

/* Detach the run of system pages [i, i + n), all in one 2 MiB window. */
static void mig_detach_run(struct migrate_vma *args, struct hetmem_migrate *mig,
			   unsigned long i, unsigned long n)
{
	struct page *pages[WINDOW_PAGES];
	uint8_t how[WINDOW_PAGES] = { KIND_NONE };
	bool moved[WINDOW_PAGES] = { false };
	bool guess = mig->fl[i] & MF_GUESS;
	/* Consecutive staging pages, so that one move takes the run. */
	unsigned long k, got = hetmem_staging_alloc_run(mig_addr(args, i), n, true, pages);
	long done = got ? hetmem_migrate_move_out(mig_addr(args, i), got, pages, moved,
						  guess) : 0;

	if (done < 0)
		done = 0;
	if (guess && (unsigned long)done < n) {
		/* Something is not a plain page: look before going on. */
		hetmem_put_pages(pages + done, got - done);
		mig_classify(args, mig, i + done, i + n);
		mig_detach(args, mig, i + done, i + n);
		n = got = (unsigned long)done;
	}
	if (guess)
		mig_unguess(args, mig, i, n, pages);
	for (k = 0; k < (unsigned long)done; k++)
		how[k] = moved[k] ? KIND_MOVED : KIND_NONE;
	if ((unsigned long)done < got && !mig->on_monitor &&
	    !mig_copy_run(args, mig, i + done, got - done, pages + done)) {
		for (k = done; k < got; k++)
			how[k] = KIND_COPIED;
	}
	for (k = 0; k < n; k++) {
		if (k < got && how[k] != KIND_NONE) {
			mig_detached(args, mig, i + k, pages[k], how[k], true);
			continue;
		}
		if (k < got)
			put_page(pages[k]);
		mig_drop(args, mig, i + k);
	}
}

static bool mig_to_detach(const struct migrate_vma *args,
			  const struct hetmem_migrate *mig, unsigned long i)
{
	return (mig->kind[i] == KIND_MOVED || mig->kind[i] == KIND_ZERO) &&
	       !args->src[i];
}

/* Detach the system pages of [from, to), run by run within 2 MiB windows. */
static void mig_detach(struct migrate_vma *args, struct hetmem_migrate *mig,
		       unsigned long from, unsigned long to)
{
	unsigned long i = from, j;

	while (i < to) {
		if (!mig_to_detach(args, mig, i)) {
			i++;
			continue;
		}
		for (j = i + 1; j < to && mig_to_detach(args, mig, j) &&
		     (mig_addr(args, j) & (HETMEM_PMD_SIZE - 1)); j++)
			;
		mig_detach_run(args, mig, i, j - i);
		i = j;
	}
}

/* ---- setup: whole huge pages and huge holes ---- */

static void mig_set_compound(struct migrate_vma *args, struct hetmem_migrate *mig,
			     unsigned long i)
{
	args->src[i] |= MIGRATE_PFN_COMPOUND;
	mig->fl[i] |= MF_COMPOUND;
	memset(&mig->kind[i + 1], KIND_TAIL, HPAGE_PMD_NR - 1);
	memset(&args->src[i + 1], 0, (HPAGE_PMD_NR - 1) * sizeof(*args->src));
}

/*
 * Move the PMD-mapped huge page at entry @i into a huge staging block as
 * one PMD. If it was split meanwhile, the kernel moves what it can page
 * by page: that prefix stays collected as base entries on the subpages
 * of the staging folio (sharing its lock and its memory), and the rest
 * takes the usual path.
 */
static void mig_detach_huge(struct migrate_vma *args, struct hetmem_migrate *mig,
			    unsigned long i)
{
	unsigned long addr = mig_addr(args, i), moved = 0, n, k;
	struct page *head = hetmem_staging_alloc(HPAGE_PMD_ORDER, addr, true);
	long ret;

	if (head && !hetmem_staging_is_huge(head)) {
		put_page(head);	/* base pages: the usual path does as well */
		head = NULL;
	}
	if (!head)
		return;
	ret = hetmem_staging_move_in((unsigned long)page_address(head), addr,
				     HETMEM_PMD_SIZE, false, &moved);
	n = (ret < 0 ? moved : (unsigned long)ret) >> HETMEM_PAGE_SHIFT;
	if (n == HPAGE_PMD_NR) {
		mig_detached(args, mig, i, head, KIND_MOVED, true);
		mig_set_compound(args, mig, i);
		return;
	}
	for (k = 0; k < n; k++) {
		if (k)
			get_page(head + k);
		mig_detached(args, mig, i + k, head + k, KIND_MOVED, !k);
	}
	if (!n)
		put_page(head);
}

/* Are entries [i, i + 512) all of @kind, not yet detached, with @flags? */
static bool mig_window_is(const struct migrate_vma *args,
			  const struct hetmem_migrate *mig, unsigned long i,
			  enum mig_kind kind, uint8_t flags)
{
	for (unsigned long j = i; j < i + HPAGE_PMD_NR; j++) {
		if (mig->kind[j] != kind || (mig->fl[j] & flags) != flags ||
		    (kind == KIND_MOVED && args->src[j]))
			return false;
	}
	return true;
}

/*
 * With MIGRATE_VMA_SELECT_COMPOUND, a PMD-aligned window that is one
 * huge page, or one hole, is collected as one compound entry.
 */
static void mig_detach_compound(struct migrate_vma *args, struct hetmem_migrate *mig)
{
	unsigned long i;

	if (!(args->flags & MIGRATE_VMA_SELECT_COMPOUND))
		return;
	for (i = 0; i + HPAGE_PMD_NR <= args->npages; i++) {
		if (!mig_want_folio(args, i))
			continue;
		if (mig_window_is(args, mig, i, KIND_HOLE, 0))
			mig_set_compound(args, mig, i);
		else if (!mig->on_monitor && mig_window_is(args, mig, i, KIND_MOVED, MF_HUGE))
			mig_detach_huge(args, mig, i);
	}
}

static struct hetmem_migrate *mig_alloc(struct migrate_vma *args)
{
	struct hetmem_migrate *mig = calloc(1, sizeof(*mig) + 2 * args->npages);

	if (!mig)
		return NULL;
	mig->fl = mig->kind + args->npages;
	mig->mm = args->vma->vm_mm;
	mig->on_monitor = hetmem_mm_in_monitor();
	return mig;
}

static void mig_notify(struct migrate_vma *args, bool start)
{
	struct mmu_notifier_range range;

	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_MIGRATE, 0,
				      args->vma->vm_mm, args->start, args->end,
				      args->pgmap_owner);
	if (start)
		mmu_notifier_invalidate_range_start(&range);
	else
		mmu_notifier_invalidate_range_end(&range);
}

static int mig_prepare(struct migrate_vma *args, struct hetmem_migrate *mig)
{
	struct mm_struct *mm = mig->mm;
	int ret = hetmem_staging_start();

	if (!ret)
		ret = hetmem_mm_monitor_start(mm);
	if (ret)
		return ret;
	if (!mig->on_monitor) {
		hetmem_down_read(&mm->fork_sem);
		mig->fork_locked = true;
		/*
		 * Events of munmap()s and madvise()s that returned are read
		 * already: wait for their delivery. One still in flight is
		 * concurrent with this call, as it would be in the kernel.
		 */
		hetmem_mm_sync_events(mm, hetmem_ktime_get() + 1000LL * 1000 * 1000, false);
	}
	return 0;
}

/* Whether any swap space exists, read again at most once a second. */
static bool system_has_swap(void)
{
	static int64_t read_at = -1;
	static bool has;
	int64_t now = hetmem_ktime_get();
	struct sysinfo si;

	if (__atomic_load_n(&read_at, __ATOMIC_ACQUIRE) < 0 ||
	    now - __atomic_load_n(&read_at, __ATOMIC_RELAXED) > 1000LL * 1000 * 1000) {
		__atomic_store_n(&has, sysinfo(&si) || si.totalswap, __ATOMIC_RELAXED);
		__atomic_store_n(&read_at, now, __ATOMIC_RELEASE);
	}
	return __atomic_load_n(&has, __ATOMIC_RELAXED);
}

/*
 * May the system pages be moved before they are classified (DOC: Moving
 * before looking)? Not when a page could be swapped out, nor when a whole
 * PMD window is to be collected as one huge page or one hole.
 */
static bool mig_may_guess(const struct migrate_vma *args)
{
	unsigned long first = (args->start + HETMEM_PMD_SIZE - 1) & ~(HETMEM_PMD_SIZE - 1);

	if ((args->flags & MIGRATE_VMA_SELECT_COMPOUND) && first + HETMEM_PMD_SIZE <= args->end)
		return false;
	return !system_has_swap();
}

/* Collect and detach; the pages of [start, end) are then the migration's. */
static void mig_gather(struct migrate_vma *args, struct hetmem_migrate *mig)
{
	bool anon = mig_private_anon(mig->mm, args, mig);

	mig->select_system = (args->flags & MIGRATE_VMA_SELECT_SYSTEM) && anon &&
			     !hetmem_mm_watch_missing(mig->mm, args->start, args->end);
	mig_collect(args, mig);
	if (mig->select_system && mig_may_guess(args)) {
		for (unsigned long i = 0; i < args->npages; i++) {
			if (mig->kind[i] != KIND_PENDING)
				continue;
			mig->kind[i] = KIND_MOVED;
			mig->fl[i] |= MF_GUESS;
		}
	} else if (mig->select_system) {
		mig_classify(args, mig, 0, args->npages);
	}
	mig_detach_compound(args, mig);
	mig_detach(args, mig, 0, args->npages);
}

/**
 * migrate_vma_setup() - collect and detach the pages of a range
 * @args: the migration; vma, start, end, src, dst, pgmap_owner and flags
 *	are read, src, cpages, npages and end written
 *
 * See DOC: migrate_vma in <hetmem/mm/migrate.h>. Every page with
 * MIGRATE_PFN_MIGRATE in src[] is detached from the CPU afterwards: its
 * data is in the staging page src[] names (or it is a hole), and CPU
 * accesses wait until migrate_vma_finalize().
 *
 * Context: mmap lock held for reading. May sleep (moves pages, may wait
 * for the address-space monitor). Allocates. Not inside an invalidate
 * callback. On the monitor thread (from migrate_to_ram) only device pages
 * and pages that can be moved are collected.
 * Return: 0, also when nothing was collected; -EINVAL for bad arguments,
 * a range not inside @args->vma, a hugetlb or special mapping, or an
 * address space other than the caller's; -ENOMEM; -EOPNOTSUPP when the
 * kernel lacks userfaultfd or UFFD_FEATURE_MOVE.
 */
HETMEM_API int migrate_vma_setup(struct migrate_vma *args)
{
	struct hetmem_migrate *mig;
	int ret = args ? mig_check(args) : -EINVAL;

	if (ret)
		return ret;
	args->npages = (args->end - args->start) >> HETMEM_PAGE_SHIFT;
	args->cpages = 0;
	memset(args->src, 0, args->npages * sizeof(*args->src));
	mig = mig_alloc(args);
	if (!mig)
		return -ENOMEM;
	ret = mig_prepare(args, mig);
	if (ret) {
		free(mig);
		return ret;
	}
	args->priv = mig;
	mig_notify(args, true);
	mig_gather(args, mig);
	mig_notify(args, false);
	for (unsigned long i = 0; i < args->npages; i++)
		args->cpages += !!(args->src[i] & MIGRATE_PFN_MIGRATE);
	args->end = args->start + (args->npages << HETMEM_PAGE_SHIFT);
	return 0;
}

/* ---- pages ---- */

static bool mig_still_migrating(struct mm_struct *mm, unsigned long addr)
{
	return hetmem_devtab_type(hetmem_devtab_lookup(mm, addr)) ==
	       HETMEM_DEVTAB_MIGRATING;
}

/* One UFFDIO_MOVE (or UFFDIO_COPY) of a run; bytes done in *@done. */
static int install_once(struct mm_struct *mm, unsigned long dst, unsigned long src,
			unsigned long len, bool copy, unsigned long *done)
{
	struct uffdio_move mv = { .dst = dst, .src = src, .len = len };
	struct uffdio_copy cp = { .dst = dst, .src = src, .len = len };
	int fd = hetmem_mm_uffd(mm);
	int r = copy ? ioctl(fd, UFFDIO_COPY, &cp) : ioctl(fd, UFFDIO_MOVE, &mv);
	long progress = copy ? cp.copy : mv.move;

	*done = progress > 0 ? (unsigned long)progress : 0;
	return r ? -errno : 0;
}

/*
 * Move or copy a staging run into the application's hole at @addr,
 * continuing after partial progress. Returns the pages installed; they
 * are always a prefix of the run. Reads -EAGAIN (queued events) as "try
 * again after the monitor delivered them", except on the monitor.
 */
unsigned long hetmem_migrate_install(struct mm_struct *mm, unsigned long addr,
				     struct page *page, unsigned long nr,
				     bool on_monitor)
{
	unsigned long src = (unsigned long)page_address(page);
	unsigned long len = nr << HETMEM_PAGE_SHIFT, off = 0, step;
	int64_t deadline = hetmem_ktime_get() + 1000LL * 1000 * 1000;
	bool huge = hetmem_staging_is_huge(page);
	/* Part of a huge staging page is copied: moving it would split it. */
	bool copy = huge && (nr != HPAGE_PMD_NR || (addr & (HETMEM_PMD_SIZE - 1)));
	int r;

	while (off < len) {
		r = install_once(mm, addr + off, src + off, len - off, copy, &step);
		if (!copy)
			hetmem_staging_moved_out(pfn_to_page(page_to_pfn(page) +
						 (off >> HETMEM_PAGE_SHIFT)),
						 step >> HETMEM_PAGE_SHIFT);
		off += step;
		if (!r || step)
			continue;
		if (r == -EINVAL && !copy)
			copy = true;	/* read-only mapping */
		else if (r != -EAGAIN || on_monitor ||
			 hetmem_mm_sync_events(mm, deadline, true))
			break;
	}
	/* A whole huge folio moved: did it take the PMD (no table left)? */
	if (huge && !copy && off == len)
		hetmem_staging_installed_whole(page, hetmem_page_mapped_huge(addr));
	return off >> HETMEM_PAGE_SHIFT;
}

/* Bits of the entries of [vpn, vpn + n) that are MIGRATING; n <= 512. */
static void mig_read_migrating(struct mm_struct *mm, unsigned long vpn,
			       unsigned long n, uint64_t *bits)
{
	struct devtab_cursor c = { 0 };

	memset(bits, 0, HPAGE_PMD_NR / 8);
	hetmem_mutex_lock(&mm->dev_lock);
	for (unsigned long k = 0; k < n; k++) {
		if (hetmem_devtab_type(devtab_get(mm, &c, vpn + k)) == HETMEM_DEVTAB_MIGRATING)
			bits[k / 64] |= 1ULL << (k % 64);
	}
	hetmem_mutex_unlock(&mm->dev_lock);
}

/* How many entries from @addr on, up to @n (<= 512), are still MIGRATING. */
static unsigned long mig_migrating_prefix(struct mm_struct *mm, unsigned long addr,
					  unsigned long n)
{
	uint64_t bits[HPAGE_PMD_NR / 64];
	unsigned long k = 0;

	mig_read_migrating(mm, addr >> HETMEM_PAGE_SHIFT, n, bits);
	while (k < n && ((bits[k / 64] >> (k % 64)) & 1))
		k++;
	return k;
}

/* Install the run of system destinations [i, i + n) back into the mapping. */
static void mig_install_run(struct migrate_vma *args, struct hetmem_migrate *mig,
			    unsigned long i, unsigned long n)
{
	struct page *page = migrate_pfn_to_page(args->dst[i]);
	unsigned long k;

	k = mig_migrating_prefix(mig->mm, mig_addr(args, i), n);
	k = hetmem_migrate_install(mig->mm, mig_addr(args, i), page, k,
				   mig->on_monitor);
	for (; k < n; k++)
		args->src[i + k] &= ~MIGRATE_PFN_MIGRATE;
}

/* Are dst[j] and dst[j - 1] consecutive staging pages of one window? */
static bool mig_dst_follows(struct migrate_vma *args, unsigned long j)
{
	return (mig_addr(args, j) & (HETMEM_PMD_SIZE - 1)) &&
	       (args->src[j] & MIGRATE_PFN_MIGRATE) &&
	       (args->dst[j] >> MIGRATE_PFN_SHIFT) ==
	       (args->dst[j - 1] >> MIGRATE_PFN_SHIFT) + 1;
}

static bool mig_dst_system(unsigned long dst)
{
	struct page *page = migrate_pfn_to_page(dst);

	return page && (page->flags & HETMEM_PGF_STAGING);
}

static bool mig_dst_device(unsigned long dst)
{
	struct page *page = migrate_pfn_to_page(dst);

	return page && is_device_private_page(page);
}

/* Are the 512 entries from @addr all still MIGRATING? */
static bool mig_window_migrating(struct mm_struct *mm, unsigned long addr)
{
	return mig_migrating_prefix(mm, addr, HPAGE_PMD_NR) == HPAGE_PMD_NR;
}

/* Page @j of a run: the subpage of @head, or the page @pfns[j] names. */
static struct page *run_page(struct page *head, const unsigned long *pfns,
			     unsigned long j)
{
	return pfns ? migrate_pfn_to_page(pfns[j]) : head + j;
}

/*
 * Erase the entries of [vpn + from, vpn + to) that are still MIGRATING,
 * under one hold of the table lock; @left gets a bit for each. At most 512.
 */
static void mig_erase_left(struct mm_struct *mm, unsigned long vpn, unsigned long from,
			   unsigned long to, uint64_t *left)
{
	struct devtab_cursor c = { 0 };
	bool all = true;
	unsigned long j;

	hetmem_mutex_lock(&mm->dev_lock);
	for (j = from; j < to; j++) {
		if (hetmem_devtab_type(devtab_get(mm, &c, vpn + j)) ==
		    HETMEM_DEVTAB_MIGRATING)
			left[j / 64] |= 1ULL << (j % 64);
		else
			all = false;
	}
	if (all && to > from)	/* the usual case: one erasure */
		hetmem_radix_erase_range(&mm->devtab, vpn + from, vpn + to - 1);
	for (j = from; !all && j < to; j++) {
		if (left[j / 64] & (1ULL << (j % 64)))
			hetmem_radix_erase_range(&mm->devtab, vpn + j, vpn + j);
	}
	hetmem_mutex_unlock(&mm->dev_lock);
}

/*
 * Device pages [from, to) of a run mapped from @addr (subpages of the
 * folio @head, or the pages @pfns names) are back in system memory: their
 * entries go now, with the mapping's references. With @all, an entry an
 * event erased meanwhile loses its reference too (finalize: nothing else
 * will); otherwise finalize restores those entries later.
 */
static void mig_left(struct mm_struct *mm, unsigned long addr, struct page *head,
		     const unsigned long *pfns, unsigned long from, unsigned long to,
		     bool all)
{
	uint64_t left[HPAGE_PMD_NR / 64] = { 0 };
	unsigned long j, n = 0;
	struct page *page;

	mig_erase_left(mm, addr >> HETMEM_PAGE_SHIFT, from, to, left);
	for (j = from; j < to; j++) {
		bool was = left[j / 64] & (1ULL << (j % 64));

		if (!was && !all)
			continue;
		page = run_page(head, pfns, j);
		page_set_map(page, NULL, 0);
		put_page(page);	/* the mapping's reference */
		n += was;
	}
	hetmem_devmem_count(migrated_to_ram, n);
}

/* Are dst[i + k] and dst[i + k - 1] consecutive staging pages? */
static bool mig_dst_next(const unsigned long *dst, unsigned long k)
{
	return mig_dst_system(dst[k]) &&
	       (dst[k] >> MIGRATE_PFN_SHIFT) == (dst[k - 1] >> MIGRATE_PFN_SHIFT) + 1;
}

/* A device folio back into the mapping: one staging folio, or base pages. */
static void mig_pages_folio_back(struct migrate_vma *args, struct hetmem_migrate *mig,
				 unsigned long i)
{
	unsigned long addr = mig_addr(args, i), *dst = args->dst + i, j = 0, k, n;
	struct page *head = migrate_pfn_to_page(args->src[i]);
	bool all = true;

	if (dst[0] & MIGRATE_PFN_COMPOUND) {
		n = hetmem_migrate_install(mig->mm, addr, migrate_pfn_to_page(dst[0]),
					   HPAGE_PMD_NR, mig->on_monitor);
		mig_left(mig->mm, addr, head, NULL, 0, n, false);
		all = n == HPAGE_PMD_NR;
	} else {
		while (j < HPAGE_PMD_NR) {
			if (!mig_dst_system(dst[j])) {
				all = false;
				j++;
				continue;
			}
			for (k = j + 1; k < HPAGE_PMD_NR && mig_dst_next(dst, k); k++)
				;
			n = hetmem_migrate_install(mig->mm, addr + (j << HETMEM_PAGE_SHIFT),
						   migrate_pfn_to_page(dst[j]), k - j,
						   mig->on_monitor);
			mig_left(mig->mm, addr, head, NULL, j, j + n, false);
			all = all && n == k - j;
			j = k;
		}
	}
	if (!all)
		args->src[i] &= ~MIGRATE_PFN_MIGRATE;
}

/* A compound entry: see mig_pages_folio_back() and mig_finalize_compound(). */
static void mig_pages_compound(struct migrate_vma *args, struct hetmem_migrate *mig,
			       unsigned long i)
{
	bool whole = args->dst[i] & MIGRATE_PFN_COMPOUND, any = false;

	if (!mig_window_migrating(mig->mm, mig_addr(args, i))) {
		args->src[i] &= ~MIGRATE_PFN_MIGRATE;	/* partly unmapped */
		return;
	}
	if (mig->kind[i] == KIND_DEVICE) {
		if (whole && !mig_dst_system(args->dst[i]))
			args->src[i] &= ~MIGRATE_PFN_MIGRATE;
		else
			mig_pages_folio_back(args, mig, i);
		return;
	}
	/* To a device: takes effect in finalize, page by page when split. */
	for (unsigned long j = 0; j < (whole ? 1 : HPAGE_PMD_NR) && !any; j++)
		any = mig_dst_device(args->dst[i + j]);
	if (!any)
		args->src[i] &= ~MIGRATE_PFN_MIGRATE;
}

/* Which entries from one up to the end of its 2 MiB window are MIGRATING. */
struct window_bits {
	unsigned long from, to;
	uint64_t bits[HPAGE_PMD_NR / 64];
};

/* Is entry @i still MIGRATING? Read for the rest of its window at once. */
static bool mig_window_bit(struct migrate_vma *args, struct hetmem_migrate *mig,
			   struct window_bits *w, unsigned long i)
{
	unsigned long off = (mig_addr(args, i) & (HETMEM_PMD_SIZE - 1)) >> HETMEM_PAGE_SHIFT;

	if (i < w->from || i >= w->to) {
		w->from = i;
		w->to = i + HPAGE_PMD_NR - off < args->npages ? i + HPAGE_PMD_NR - off :
								args->npages;
		mig_read_migrating(mig->mm, mig_addr(args, i) >> HETMEM_PAGE_SHIFT,
				   w->to - w->from, w->bits);
	}
	return (w->bits[(i - w->from) / 64] >> ((i - w->from) % 64)) & 1;
}

/**
 * migrate_vma_pages() - install the destinations the driver provided
 * @migrate: the migration after migrate_vma_setup() and the driver's copy
 *
 * Entries whose dst[] is empty, or whose page was unmapped meanwhile, lose
 * MIGRATE_PFN_MIGRATE. Device destinations take effect in
 * migrate_vma_finalize(); system destinations (bringing device pages
 * back) are moved into the mapping now.
 *
 * Context: mmap lock held for reading; may sleep (may wait for the
 * address-space monitor to deliver queued events).
 * Return: nothing; consult src[].
 */
HETMEM_API void migrate_vma_pages(struct migrate_vma *migrate)
{
	struct migrate_vma *args = migrate;
	struct hetmem_migrate *mig = args->priv;
	struct window_bits w = { 0, 0, { 0 } };
	unsigned long i = 0, j;

	while (mig && i < args->npages) {
		if (!(args->src[i] & MIGRATE_PFN_MIGRATE)) {
			i++;
			continue;
		}
		if (mig->fl[i] & MF_COMPOUND) {
			mig_pages_compound(args, mig, i);
			i += HPAGE_PMD_NR;
			continue;
		}
		if (!(args->dst[i] & MIGRATE_PFN_VALID) ||
		    !mig_window_bit(args, mig, &w, i)) {
			args->src[i++] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		if (mig->kind[i] != KIND_DEVICE) {
			/* To a device: takes effect in finalize. */
			if (!is_device_private_page(migrate_pfn_to_page(args->dst[i])))
				args->src[i] &= ~MIGRATE_PFN_MIGRATE;
			i++;
			continue;
		}
		if (!mig_dst_system(args->dst[i])) {
			args->src[i++] &= ~MIGRATE_PFN_MIGRATE;	/* device to device */
			continue;
		}
		for (j = i + 1; j < args->npages && mig->kind[j] == KIND_DEVICE &&
		     mig_dst_follows(args, j); j++)
			;
		mig_install_run(args, mig, i, j - i);
		i = j;
	}
}

/* ---- finalize ---- */

/* A system page that did not leave: put it back where it was. */
static void mig_restore_system(struct migrate_vma *args, struct hetmem_migrate *mig,
			       unsigned long i, struct page *src)
{
	unsigned long addr = mig_addr(args, i);

	if (mig_still_migrating(mig->mm, addr) && src)
		hetmem_migrate_install(mig->mm, addr, src, 1, mig->on_monitor);
}

/* Replace the MIGRATING entry at @addr; false when an event erased it. */
static bool mig_set_entry(struct mm_struct *mm, unsigned long addr, uint64_t e)
{
	unsigned long vpn = addr >> HETMEM_PAGE_SHIFT;
	bool ours;

	hetmem_mutex_lock(&mm->dev_lock);
	ours = hetmem_devtab_type(hetmem_radix_lookup(&mm->devtab, vpn)) ==
	       HETMEM_DEVTAB_MIGRATING;
	if (ours && e)
		ours = !hetmem_radix_store(&mm->devtab, vpn, e);
	else if (ours)
		hetmem_radix_erase_range(&mm->devtab, vpn, vpn);
	hetmem_mutex_unlock(&mm->dev_lock);
	return ours;
}

/*
 * Entries [i, i + n) went to device pages (the subpages of folio @dhead,
 * or the pages @pfns names): the entries now name them, one mapping
 * reference each, in one hold of the table lock. An entry that an event
 * erased meanwhile (munmap) is left alone. At most 512.
 *
 * The entries are writable as the CPU mapping was (the kernel carries the
 * PTE's bit; every page hetmem detaches from a writable mapping was made
 * exclusive, so that is the mapping's permission), holes included.
 */
static void mig_commit_run(struct migrate_vma *args, struct hetmem_migrate *mig,
			   unsigned long i, unsigned long n, struct page *dhead,
			   const unsigned long *pfns)
{
	struct mm_struct *mm = mig->mm;
	unsigned long addr = mig_addr(args, i), vpn = addr >> HETMEM_PAGE_SHIFT, j, ok = 0;
	uint64_t flags = HETMEM_DEVTAB_DEVICE | (mig->vma_write ? HETMEM_DEVTAB_WRITE : 0);
	struct devtab_cursor c = { 0 };
	struct page *dpage;
	uint64_t *slot;

	hetmem_mutex_lock(&mm->dev_lock);
	for (j = 0; j < n; j++) {
		slot = devtab_slot(mm, &c, vpn + j);
		if (!slot || hetmem_devtab_type(*slot) != HETMEM_DEVTAB_MIGRATING)
			continue;	/* unmapped meanwhile */
		dpage = run_page(dhead, pfns, j);
		get_page(dpage);	/* the mapping's reference */
		page_set_map(dpage, mm, addr + (j << HETMEM_PAGE_SHIFT));
		*slot = hetmem_devtab_entry(page_to_pfn(dpage), flags);
		ok++;
	}
	hetmem_mutex_unlock(&mm->dev_lock);
	hetmem_devmem_count(migrated_to_device, ok);
}

/*
 * Device page @page, mapped at @addr, did not leave: its MIGRATING entry
 * names it again with @flags, or, when an event erased the entry
 * meanwhile (munmap), the page loses the mapping's reference instead.
 */
static void dev_entry_restore(struct mm_struct *mm, unsigned long addr,
			      struct page *page, uint64_t flags)
{
	if (mig_set_entry(mm, addr, hetmem_devtab_entry(page_to_pfn(page), flags)))
		return;
	page_set_map(page, NULL, 0);
	put_page(page);		/* the mapping's reference */
}

/* A device page that did not leave: its entry names it again. */
static void mig_restore_device(struct migrate_vma *args, unsigned long i,
			       struct hetmem_migrate *mig, struct page *dpage)
{
	uint64_t flags = HETMEM_DEVTAB_DEVICE;

	if (args->src[i] & MIGRATE_PFN_WRITE)
		flags |= HETMEM_DEVTAB_WRITE;
	dev_entry_restore(mig->mm, mig_addr(args, i), dpage, flags);
}

/*
 * The subpages of device folio @head that are still mapped and did not
 * leave are device pages again; a subpage whose entry an event erased
 * meanwhile (munmap) loses the mapping's reference instead.
 */
static void folio_remap(struct page *head)
{
	uint64_t gone[HPAGE_PMD_NR / 64] = { 0 };
	unsigned long j;

	for (j = 0; j < HPAGE_PMD_NR; j++) {
		struct mm_struct *mm = page_mm(head + j);
		unsigned long vpn = page_vaddr(head + j) >> HETMEM_PAGE_SHIFT;
		uint64_t e;

		if (!mm)
			continue;
		hetmem_mutex_lock(&mm->dev_lock);
		e = hetmem_radix_lookup(&mm->devtab, vpn);
		if (hetmem_devtab_type(e) == HETMEM_DEVTAB_MIGRATING)
			(void)hetmem_radix_store(&mm->devtab, vpn,
						 hetmem_devtab_entry(page_to_pfn(head + j),
								     HETMEM_DEVTAB_DEVICE |
								     (e & HETMEM_DEVTAB_WRITE)));
		else
			gone[j / 64] |= 1ULL << (j % 64);
		hetmem_mutex_unlock(&mm->dev_lock);
	}
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		if (!(gone[j / 64] & (1ULL << (j % 64))))
			continue;
		page_set_map(head + j, NULL, 0);
		put_page(head + j);	/* the mapping's reference */
	}
}

/* Entry @i stays in system memory: its page (if any) goes back, the entry goes. */
static void mig_restore_page(struct migrate_vma *args, struct hetmem_migrate *mig,
			     unsigned long i, struct page *src)
{
	mig_restore_system(args, mig, i, src);
	mig_set_entry(mig->mm, mig_addr(args, i), 0);
}

/* A compound system entry that did not move: back whole when it can. */
static void mig_unwind_huge(struct migrate_vma *args, struct hetmem_migrate *mig,
			    unsigned long i)
{
	struct page *src = migrate_pfn_to_page(args->src[i]);
	unsigned long addr = mig_addr(args, i), j, n = 0;

	if (src && mig_window_migrating(mig->mm, addr))
		n = hetmem_migrate_install(mig->mm, addr, src, HPAGE_PMD_NR,
					   mig->on_monitor);
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		if (j < n)
			mig_set_entry(mig->mm, addr + (j << HETMEM_PAGE_SHIFT), 0);
		else
			mig_restore_page(args, mig, i + j, src ? src + j : NULL);
	}
}

static void mig_finalize_compound(struct migrate_vma *args, struct hetmem_migrate *mig,
				  unsigned long i)
{
	struct page *src = migrate_pfn_to_page(args->src[i]), *d;
	unsigned long *dst = args->dst + i;
	bool whole = (dst[0] & MIGRATE_PFN_COMPOUND) && (dst[0] & MIGRATE_PFN_VALID);

	if (mig->kind[i] == KIND_DEVICE) {
		/* What moved back left in migrate_vma_pages(). */
		folio_remap(src);
		return;
	}
	if (!(args->src[i] & MIGRATE_PFN_MIGRATE)) {
		mig_unwind_huge(args, mig, i);
		return;
	}
	if (whole && is_device_private_page(migrate_pfn_to_page(dst[0]))) {
		mig_commit_run(args, mig, i, HPAGE_PMD_NR, migrate_pfn_to_page(dst[0]), NULL);
		return;
	}
	for (unsigned long j = 0; j < HPAGE_PMD_NR; j++) {
		d = whole ? NULL : migrate_pfn_to_page(dst[j]);
		if (d && is_device_private_page(d))
			mig_commit_run(args, mig, i + j, 1, NULL, dst + j);
		else
			mig_restore_page(args, mig, i + j, src ? src + j : NULL);
	}
}

enum fin_class { FIN_OTHER, FIN_BACK, FIN_COMMIT };

/* Entry @i: a device page that went back, a page that went to a device, other. */
static enum fin_class mig_fin_class(const struct migrate_vma *args,
				    const struct hetmem_migrate *mig, unsigned long i)
{
	struct page *dst = migrate_pfn_to_page(args->dst[i]);

	if (!(args->src[i] & MIGRATE_PFN_MIGRATE) || (mig->fl[i] & MF_COMPOUND))
		return FIN_OTHER;
	if (mig->kind[i] == KIND_DEVICE)
		return FIN_BACK;
	return dst && is_device_private_page(dst) ? FIN_COMMIT : FIN_OTHER;
}

/*
 * Finish the run of entries from @i that went the same way, within one
 * 2 MiB window, under one hold of the table lock; the entries finished.
 */
static unsigned long mig_finalize_run(struct migrate_vma *args,
				      struct hetmem_migrate *mig, unsigned long i)
{
	enum fin_class class = mig_fin_class(args, mig, i);
	unsigned long n = 1;

	if (class == FIN_OTHER)
		return 0;
	while (i + n < args->npages && (mig_addr(args, i + n) & (HETMEM_PMD_SIZE - 1)) &&
	       mig_fin_class(args, mig, i + n) == class)
		n++;
	if (class == FIN_BACK)
		mig_left(mig->mm, mig_addr(args, i), NULL, args->src + i, 0, n, true);
	else
		mig_commit_run(args, mig, i, n, NULL, args->dst + i);
	return n;
}

static void mig_finalize_one(struct migrate_vma *args, struct hetmem_migrate *mig,
			     unsigned long i)
{
	struct page *src = migrate_pfn_to_page(args->src[i]);
	struct page *dst = migrate_pfn_to_page(args->dst[i]);
	bool moved = args->src[i] & MIGRATE_PFN_MIGRATE;
	unsigned long addr = mig_addr(args, i);

	if (mig->kind[i] == KIND_DEVICE) {
		if (moved)
			mig_left(mig->mm, addr, NULL, args->src + i, 0, 1, true);
		else
			mig_restore_device(args, i, mig, src);
	} else if (moved && dst && is_device_private_page(dst)) {
		mig_commit_run(args, mig, i, 1, NULL, args->dst + i);
	} else {
		mig_restore_page(args, mig, i, src);
	}
}

static void unlock_put(struct page *page)
{
	if (!page)
		return;
	unlock_page(page);
	put_page(page);
}

#define RELEASE_BATCH 64

struct put_batch {
	struct page *pages[RELEASE_BATCH];
	unsigned long n;
};

/* Queue a reference to drop; the staging frees of a batch share a lock hold. */
static void batch_put(struct put_batch *b, struct page *page)
{
	if (b->n == RELEASE_BATCH) {
		hetmem_put_pages(b->pages, b->n);
		b->n = 0;
	}
	b->pages[b->n++] = page;
}

/*
 * Drop entry @i's hold on its pages, once every entry is final: the
 * entries of one folio share the lock that the first of them took.
 */
static void mig_release_entry(struct migrate_vma *args, struct hetmem_migrate *mig,
			      unsigned long i, struct put_batch *b)
{
	struct page *src = migrate_pfn_to_page(args->src[i]);
	struct page *dst = migrate_pfn_to_page(args->dst[i]);

	if (src) {
		if (mig->fl[i] & MF_LOCKED)
			unlock_page(src);
		batch_put(b, src);
	}
	if (dst) {
		unlock_page(dst);
		batch_put(b, dst);
	}
}

/**
 * migrate_vma_finalize() - finish a migration
 * @migrate: the migration after migrate_vma_pages()
 *
 * Migrated pages now live at their destination; the others are back where
 * they were, with their data. Threads that faulted on the range resume.
 * Every source and destination page is unlocked (except @fault_page) and
 * its migration reference dropped: a device page whose last reference
 * goes is returned to its driver through page_free.
 *
 * Context: mmap lock held for reading; may sleep.
 * Return: nothing.
 */
HETMEM_API void migrate_vma_finalize(struct migrate_vma *migrate)
{
	struct hetmem_migrate *mig = migrate->priv;
	struct put_batch batch = { .n = 0 };
	struct mm_struct *mm;

	if (!mig)
		return;
	mm = mig->mm;
	for (unsigned long i = 0, n; i < migrate->npages; i++) {
		if (mig->kind[i] == KIND_NONE || mig->kind[i] == KIND_TAIL)
			continue;
		if (mig->fl[i] & MF_COMPOUND)
			mig_finalize_compound(migrate, mig, i);
		else if ((n = mig_finalize_run(migrate, mig, i)))
			i += n - 1;
		else
			mig_finalize_one(migrate, mig, i);
	}
	for (unsigned long i = 0; i < migrate->npages; i++)
		mig_release_entry(migrate, mig, i, &batch);
	hetmem_put_pages(batch.pages, batch.n);
	migrate->priv = NULL;
	if (mig->fork_locked)
		hetmem_up_read(&mm->fork_sem);
	if (!mig->on_monitor)
		hetmem_devtab_prune(mm);
	free(mig);
	hetmem_mm_kick(mm);
}

/* ---- device pages named by frame number (eviction) ---- */

static void dev_notify(struct page *page, void *owner)
{
	struct mmu_notifier_range range;
	unsigned long addr = page_vaddr(page);

	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_MIGRATE, 0, page_mm(page),
				      addr, addr + HETMEM_PAGE_SIZE, owner);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
}

/* Mark the CPU mapping of @page, if any, MIGRATING; returns its entry. */
static uint64_t dev_detach(struct page *page)
{
	struct mm_struct *mm = page_mm(page);
	uint64_t e = 0;

	if (!mm)
		return 0;
	hetmem_mutex_lock(&mm->dev_lock);
	e = hetmem_radix_lookup(&mm->devtab, page_vaddr(page) >> HETMEM_PAGE_SHIFT);
	if (hetmem_devtab_type(e) == HETMEM_DEVTAB_DEVICE &&
	    hetmem_devtab_pfn(e) == page_to_pfn(page))
		hetmem_radix_store(&mm->devtab, page_vaddr(page) >> HETMEM_PAGE_SHIFT,
				   hetmem_devtab_entry(0, HETMEM_DEVTAB_MIGRATING |
						       (e & HETMEM_DEVTAB_WRITE)));
	else
		e = 0;
	hetmem_mutex_unlock(&mm->dev_lock);
	return e;
}

/* A reference on a page that may be freed concurrently. */
static bool get_page_unless_zero(struct page *page)
{
	uint32_t c = __atomic_load_n(&page->_refcount, __ATOMIC_RELAXED);

	while (c) {
		if (__atomic_compare_exchange_n(&page->_refcount, &c, c + 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return true;
	}
	return false;
}

/*
 * Lock and detach device page @pfn wherever it is mapped; a folio (from
 * its head; a tail frame reads 0, a placeholder) is detached subpage by
 * subpage and collected as one compound word.
 */
static unsigned long dev_collect(unsigned long pfn, void *owner)
{
	struct page *page = hetmem_device_pfn_to_page(pfn);
	unsigned long nr, w = 0;

	if (!page || (__atomic_load_n(&page->flags, __ATOMIC_RELAXED) & HETMEM_PGF_TAIL) ||
	    !get_page_unless_zero(page))
		return 0;
	if (!trylock_page(page)) {
		put_page(page);
		return 0;
	}
	nr = 1UL << folio_order((struct folio *)page);
	for (unsigned long j = 0; j < nr; j++) {
		if (page_mm(page + j))
			dev_notify(page + j, owner ? owner : page->pgmap->owner);
		if (dev_detach(page + j) & HETMEM_DEVTAB_WRITE)
			w = MIGRATE_PFN_WRITE;
	}
	return migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE | w |
	       (nr > 1 ? MIGRATE_PFN_COMPOUND : 0);
}

/* Is every subpage of folio @head mapped by @mm in order from PMD-aligned @addr? */
static bool dev_folio_mapped_whole(struct page *head, struct mm_struct *mm,
				   unsigned long addr)
{
	if (!mm || (addr & (HETMEM_PMD_SIZE - 1)))
		return false;
	for (unsigned long j = 0; j < HPAGE_PMD_NR; j++) {
		if (page_mm(head + j) != mm ||
		    page_vaddr(head + j) != addr + (j << HETMEM_PAGE_SHIFT) ||
		    !mig_still_migrating(mm, page_vaddr(head + j)))
			return false;
	}
	return true;
}

/* Subpage @j of an evicted folio back into its mapping, if it has one. */
static bool dev_subpage_back(struct page *sub, struct page *dpage, bool on_monitor)
{
	struct mm_struct *mm = page_mm(sub);
	unsigned long addr = page_vaddr(sub);

	if (!mm)
		return true;
	if (!dpage || !(dpage->flags & HETMEM_PGF_STAGING) ||
	    !mig_still_migrating(mm, addr) ||
	    !hetmem_migrate_install(mm, addr, dpage, 1, on_monitor))
		return false;
	mig_left(mm, addr, sub, NULL, 0, 1, false);
	return true;
}

/*
 * The compound source @i of an eviction back into system memory: the
 * destination is a staging folio (dst[i] COMPOUND) or base pages in the
 * placeholders that follow. Each subpage that is mapped somewhere goes
 * back; those that cannot stay on the device (finalize maps them again).
 */
static bool dev_folio_back(unsigned long *src, unsigned long *dst,
			   unsigned long npages, unsigned long i, bool on_monitor)
{
	struct page *head = migrate_pfn_to_page(src[i]);
	struct page *d = migrate_pfn_to_page(dst[i]), *dj;
	bool whole = (dst[i] & MIGRATE_PFN_COMPOUND) && d, all = true;
	struct mm_struct *mm = page_mm(head);
	unsigned long addr = page_vaddr(head), j = 0, n;

	if (whole && dev_folio_mapped_whole(head, mm, addr)) {
		n = hetmem_migrate_install(mm, addr, d, HPAGE_PMD_NR, on_monitor);
		mig_left(mm, addr, head, NULL, 0, n, false);
		j = n;
	}
	for (; j < HPAGE_PMD_NR; j++) {
		dj = whole ? d + j : (i + j < npages ? migrate_pfn_to_page(dst[i + j]) : NULL);
		all = dev_subpage_back(head + j, dj, on_monitor) && all;
	}
	return all;
}

/**
 * migrate_device_pfns() - collect device pages by frame number
 * @src_pfns: in: device frame numbers; out: migrate words
 * @npages: entries in @src_pfns
 *
 * For eviction without a virtual range: every page of @src_pfns that is
 * in use and not locked by someone else is locked, referenced and
 * detached from the CPU mapping that holds it (an MMU_NOTIFY_MIGRATE with
 * the pagemap's owner is sent first); free or busy pages read 0.
 *
 * Context: may sleep (invalidate callbacks run). Not on the monitor thread
 * with pages that a fault is waiting for.
 * Return: 0.
 */
HETMEM_API int migrate_device_pfns(unsigned long *src_pfns, unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++)
		src_pfns[i] = dev_collect(src_pfns[i], NULL);
	return 0;
}

/**
 * migrate_device_range() - collect a range of device pages
 * @src_pfns: out: one migrate word per page
 * @start: first device frame number
 * @npages: pages in the range
 *
 * As migrate_device_pfns() for [@start, @start + @npages).
 *
 * Context: as migrate_device_pfns().
 * Return: 0.
 */
HETMEM_API int migrate_device_range(unsigned long *src_pfns, unsigned long start,
				    unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++)
		src_pfns[i] = dev_collect(start + i, NULL);
	return 0;
}

/**
 * migrate_device_pages() - install the system pages a driver copied into
 * @src_pfns: migrate words from migrate_device_pfns()/_range()
 * @dst_pfns: system destinations (staging pages), 0 to decline
 * @npages: entries
 *
 * A page that was mapped by the CPU gets its destination moved into the
 * mapping now; entries that cannot be installed lose MIGRATE_PFN_MIGRATE.
 *
 * Context: may sleep (may wait for the address-space monitor).
 * Return: nothing; consult @src_pfns.
 */
HETMEM_API void migrate_device_pages(unsigned long *src_pfns,
				     unsigned long *dst_pfns, unsigned long npages)
{
	bool on_monitor = hetmem_mm_in_monitor();

	for (unsigned long i = 0; i < npages; i++) {
		struct page *spage = migrate_pfn_to_page(src_pfns[i]);
		struct page *dpage = migrate_pfn_to_page(dst_pfns[i]);

		if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (src_pfns[i] & MIGRATE_PFN_COMPOUND) {
			if (!dev_folio_back(src_pfns, dst_pfns, npages, i, on_monitor))
				src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		struct mm_struct *mm = spage ? page_mm(spage) : NULL;
		unsigned long addr = spage ? page_vaddr(spage) : 0;

		if (!dpage || !(dpage->flags & HETMEM_PGF_STAGING) ||
		    (mm && (!mig_still_migrating(mm, addr) ||
			    !hetmem_migrate_install(mm, addr, dpage, 1, on_monitor))))
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
	}
}

/*
 * The subpages of an evicted folio that did not go back are device pages
 * again wherever they are mapped; the folio and its destinations are
 * released.
 */
static void dev_folio_finalize(unsigned long *src, unsigned long *dst,
			       unsigned long npages, unsigned long i)
{
	struct page *head = migrate_pfn_to_page(src[i]);
	unsigned long j, n = (dst[i] & MIGRATE_PFN_COMPOUND) ? 1 : HPAGE_PMD_NR;

	folio_remap(head);
	unlock_put(head);
	for (j = 0; j < n && i + j < npages; j++)
		unlock_put(migrate_pfn_to_page(dst[i + j]));
}

/**
 * migrate_device_finalize() - finish an eviction
 * @src_pfns: migrate words from migrate_device_pages()
 * @dst_pfns: the destinations
 * @npages: entries
 *
 * Migrated pages are released (their driver gets page_free once the last
 * reference goes); the others are mapped as device pages again. All
 * pages are unlocked and the migration's references dropped.
 *
 * Context: may sleep.
 * Return: nothing.
 */
HETMEM_API void migrate_device_finalize(unsigned long *src_pfns,
					unsigned long *dst_pfns,
					unsigned long npages)
{
	struct mm_struct *kick = NULL;

	for (unsigned long i = 0; i < npages; i++) {
		struct page *spage = migrate_pfn_to_page(src_pfns[i]);
		struct page *dpage = migrate_pfn_to_page(dst_pfns[i]);
		struct mm_struct *mm = spage ? page_mm(spage) : NULL;
		unsigned long addr = spage ? page_vaddr(spage) : 0;
		uint64_t flags = HETMEM_DEVTAB_DEVICE |
				 ((src_pfns[i] & MIGRATE_PFN_WRITE) ? HETMEM_DEVTAB_WRITE : 0);

		if (!spage)
			continue;
		if (src_pfns[i] & MIGRATE_PFN_COMPOUND) {
			kick = mm ? mm : kick;
			dev_folio_finalize(src_pfns, dst_pfns, npages, i);
			continue;
		}
		if (mm && (src_pfns[i] & MIGRATE_PFN_MIGRATE) && mig_set_entry(mm, addr, 0)) {
			page_set_map(spage, NULL, 0);
			put_page(spage);	/* the mapping's reference */
			hetmem_devmem_count(migrated_to_ram, 1);
		} else if (mm) {
			dev_entry_restore(mm, addr, spage, flags);
		}
		kick = mm ? mm : kick;
		unlock_put(spage);
		unlock_put(dpage);
	}
	if (kick)
		hetmem_mm_kick(kick);
}

/* ---- bringing everything back (fork, teardown) ---- */

#define EVICT_BATCH 64

/*
 * The next batch of device frames mapped in @mm from *@vpn on: base
 * pages, and the head of each device folio once (its subpages may be
 * mapped anywhere; collecting the head detaches all of them).
 */
static unsigned long evict_gather(struct mm_struct *mm, unsigned long *vpn,
				  unsigned long *pfns, unsigned long *excl,
				  unsigned long *nexcl)
{
	unsigned long n = 0, pfn;

	*nexcl = 0;
	hetmem_mutex_lock(&mm->dev_lock);
	while (n < EVICT_BATCH && *nexcl < EVICT_BATCH) {
		uint64_t e = hetmem_radix_next(&mm->devtab, vpn, HETMEM_RADIX_LIMIT - 1);
		struct page *page;

		if (!e)
			break;
		if (hetmem_devtab_type(e) == HETMEM_DEVTAB_DEVICE) {
			page = pfn_to_page(hetmem_devtab_pfn(e));
			pfn = page ? page_to_pfn(&page_folio(page)->page) : hetmem_devtab_pfn(e);
			if (!n || pfns[n - 1] != pfn)
				pfns[n++] = pfn;
		} else if (hetmem_devtab_type(e) == HETMEM_DEVTAB_EXCLUSIVE) {
			excl[(*nexcl)++] = *vpn << HETMEM_PAGE_SHIFT;
		}
		(*vpn)++;
	}
	hetmem_mutex_unlock(&mm->dev_lock);
	return n;
}

/* Copy device page (or folio) @spage into staging memory; the dst word. */
static unsigned long evict_copy_one(struct page *spage, unsigned long nr)
{
	unsigned int order = nr > 1 ? HPAGE_PMD_ORDER : 0;
	struct page *dpage = hetmem_staging_alloc(order, page_vaddr(spage), false);

	if (!dpage)
		return 0;
	memcpy(page_address(dpage), page_address(spage), nr << HETMEM_PAGE_SHIFT);
	lock_page(dpage);
	return migrate_pfn(page_to_pfn(dpage)) | (nr > 1 ? MIGRATE_PFN_COMPOUND : 0);
}

/* Copy collected device pages into staging pages for migrate_device_pages(). */
static void evict_copy(unsigned long *src, unsigned long *dst, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		struct page *spage = migrate_pfn_to_page(src[i]);

		dst[i] = 0;
		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (!(src[i] & MIGRATE_PFN_COMPOUND)) {
			dst[i] = evict_copy_one(spage, 1);
			continue;
		}
		dst[i] = evict_copy_one(spage, HPAGE_PMD_NR);
		if (dst[i])
			continue;
		/* No staging folio: page by page into the placeholders. */
		for (unsigned long j = 0; j < HPAGE_PMD_NR && i + j < n; j++)
			dst[i + j] = page_mm(spage + j) ? evict_copy_one(spage + j, 1) : 0;
		i += HPAGE_PMD_NR - 1;
	}
}

/* One device folio, with room for its placeholders. */
static void evict_folio(struct mm_struct *mm, unsigned long pfn)
{
	unsigned long src[HPAGE_PMD_NR] = { 0 }, dst[HPAGE_PMD_NR];

	src[0] = dev_collect(pfn, mm);	/* every mirror erases */
	evict_copy(src, dst, HPAGE_PMD_NR);
	migrate_device_pages(src, dst, HPAGE_PMD_NR);
	migrate_device_finalize(src, dst, HPAGE_PMD_NR);
}

static void evict_pages(struct mm_struct *mm, unsigned long *pfns, unsigned long n)
{
	unsigned long dst[EVICT_BATCH], k = 0;

	for (unsigned long i = 0; i < n; i++) {
		struct page *page = pfn_to_page(pfns[i]);

		if (page && folio_order(page_folio(page)))
			evict_folio(mm, pfns[i]);
		else
			pfns[k++] = dev_collect(pfns[i], mm);	/* every mirror erases */
	}
	evict_copy(pfns, dst, k);
	migrate_device_pages(pfns, dst, k);
	migrate_device_finalize(pfns, dst, k);
}

void hetmem_migrate_evict_all(struct mm_struct *mm)
{
	unsigned long vpn = 0, pfns[EVICT_BATCH];
	unsigned long excl[EVICT_BATCH], n, nexcl;

	if (hetmem_devtab_empty(mm))
		return;
	do {
		n = evict_gather(mm, &vpn, pfns, excl, &nexcl);
		for (unsigned long i = 0; i < nexcl; i++)
			hetmem_exclusive_restore(mm, excl[i], false);
		evict_pages(mm, pfns, n);
	} while (n || nexcl);
	hetmem_devtab_prune(mm);
}
