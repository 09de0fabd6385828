/* SPDX-License-Identifier: MIT */
/*
 * hetmem - hmm_range_fault(): snapshot and fault the CPU side of a range
 * for a device mirror.
 */
#include <errno.h>
#include <sys/mman.h>

#include "mm/devmem.h"

/**
 * DOC: How hmm_range_fault() walks a range
 *
 * The kernel walks page tables under the mmap lock; hetmem reads them
 * through the kernel's own reporting interfaces and faults through
 * madvise(). The walk goes mapping by mapping (hetmem_vma_find()):
 *
 *  - An address with no mapping, a mapping without read permission, or a
 *    special mapping ([vdso], [vvar], ...) is unusable: every page there
 *    is HMM_PFN_ERROR, or the call fails with -EFAULT if one of them asks
 *    for a fault. So is a mapping the monitor cannot watch
 *    (hetmem_mm_watch_range() says -EOPNOTSUPP): a device must not keep
 *    translations that no invalidation would ever revoke.
 *  - Otherwise the piece is watched first and snapshotted second, so that
 *    any change after the snapshot is seen by the notifier. The snapshot
 *    is taken in chunks of HMM_CHUNK_PAGES pages, one PAGEMAP_SCAN call
 *    each, and turned into output words in a loop that handles runs of
 *    pages with equal state at once.
 *
 * The CPU state of a page becomes an output word as follows. A present
 * page is HMM_PFN_VALID with the frame number addr >> PAGE_SHIFT (see
 * <hetmem/mm/hmm.h>: devices reach system memory through the virtual
 * address); the shared zero page is VALID with HETMEM_ZERO_PFN and never
 * writable. HMM_PFN_WRITE approximates the kernel's writable PTE, which
 * pagemap does not show: the mapping is writable and either shared, or
 * the page is private anonymous memory. A private mapping's page-cache
 * page that no write has copied yet is read-only in the kernel too. A
 * PMD-mapped transparent huge page reports order 9, a hugetlb page the
 * order of its page size. Pages that are not present, swapped out, or
 * guard regions are not VALID.
 *
 * Faults follow the kernel: a page needs one if it asks for
 * HMM_PFN_REQ_FAULT and is not VALID, or also asks for HMM_PFN_REQ_WRITE
 * and is not writable. A write on a mapping without write permission is
 * -EPERM before anything is faulted. Otherwise MADV_POPULATE_READ or
 * MADV_POPULATE_WRITE faults from that page to the end of the walk step
 * (the next 2 MiB boundary, or the end of the mapping or range), which
 * mirrors the kernel's over-faulting, and the walk restarts at that page
 * after checking the notifier: the fault itself may have invalidated it
 * (copy-on-write), which the caller sees as -EBUSY.
 *
 * Before returning 0 the call waits until the monitor has delivered every
 * address-space event queued so far (hetmem_mm_sync_events()). An munmap
 * or madvise that the application finished before the snapshot is only
 * reported afterwards; without the wait, mmu_interval_read_retry() could
 * pass for a snapshot of memory that is already gone.
 */

/* Pages per PAGEMAP_SCAN call; the category buffer lives on the stack. */
#define HMM_CHUNK_PAGES 1024

/* Internal: a fault was taken, re-walk from walk->last. */
#define HMM_WALK_AGAIN 1

#define HMM_REQ_MASK (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)
#define HMM_PMD_ORDER (HETMEM_PMD_SHIFT - HETMEM_PAGE_SHIFT)

struct hmm_walk {
	struct hmm_range *range;
	struct mm_struct *mm;
	unsigned long last;	/* words from here on still hold requests */
	bool may_fault;		/* some page may carry HMM_PFN_REQ_FAULT */
};

/* What every page of one piece (a mapping clipped to the range) shares. */
struct hmm_piece {
	unsigned long start;
	unsigned long end;
	unsigned long step;	/* fault granularity: 2 MiB or the huge page */
	unsigned long hugetlb_order;
	bool vma_write;
	bool shared;
};

static inline unsigned long *hmm_word(const struct hmm_walk *w,
				      unsigned long addr)
{
	const struct hmm_range *range = w->range;

	return range->hmm_pfns + ((addr - range->start) >> HETMEM_PAGE_SHIFT);
}

/* The request of one page: input bits allowed by the mask, plus defaults. */
static inline unsigned long hmm_request(const struct hmm_range *range,
					unsigned long in)
{
	return ((in & range->pfn_flags_mask) | range->default_flags) &
	       HMM_REQ_MASK;
}

/* The request bits a fault must satisfy, or 0 when the state is enough. */
static inline unsigned long hmm_need_fault(unsigned long req,
					   unsigned long out)
{
	if (!(req & HMM_PFN_REQ_FAULT))
		return 0;
	if (!(out & HMM_PFN_VALID))
		return req;
	if ((req & HMM_PFN_REQ_WRITE) && !(out & HMM_PFN_WRITE))
		return req;
	return 0;
}

static inline unsigned long hmm_min(unsigned long a, unsigned long b)
{
	return a < b ? a : b;
}

/*
 * A page in device memory is not present in the CPU page tables: the
 * caller's own device pages are reported (device frame, VALID, WRITE if
 * writable, never faulted); any other page that left the CPU reads as not
 * valid, and a fault request makes the walker fault it back.
 */
static inline bool hmm_device_page(const struct hmm_walk *w,
				   unsigned long addr, unsigned long *out)
{
	return hetmem_devtab_hmm(w->mm, addr, w->range->dev_private_owner, out);
}

/* Output word of a present page at @addr with categories @cat. */
static inline unsigned long hmm_present_state(const struct hmm_piece *p,
					      uint16_t cat, unsigned long addr)
{
	unsigned long out = HMM_PFN_VALID | (addr >> HETMEM_PAGE_SHIFT);
	unsigned long order = p->hugetlb_order;

	if (cat & HETMEM_PG_PFNZERO)
		return HMM_PFN_VALID | HETMEM_ZERO_PFN;
	if (!order && (cat & HETMEM_PG_HUGE))
		order = HMM_PMD_ORDER;
	out |= order << HMM_PFN_ORDER_SHIFT;
	/* A private page-cache page is read-only until a write copies it. */
	if (p->vma_write && (p->shared || !(cat & HETMEM_PG_FILE)))
		out |= HMM_PFN_WRITE;
	return out;
}

static inline unsigned long hmm_cpu_state(const struct hmm_walk *w,
					  const struct hmm_piece *p,
					  uint16_t cat, unsigned long addr)
{
	unsigned long out = 0;

	if (cat & HETMEM_PG_PRESENT)
		return hmm_present_state(p, cat, addr);
	hmm_device_page(w, addr, &out);
	return out;
}

/*
 * Pages no device may use (no mapping, no read permission, special):
 * HMM_PFN_ERROR, or -EFAULT if any of them asks for a fault.
 */
static int hmm_error_range(const struct hmm_walk *w, unsigned long start,
			   unsigned long end)
{
	unsigned long *pfns = hmm_word(w, start);
	unsigned long n = (end - start) >> HETMEM_PAGE_SHIFT;

	for (unsigned long i = 0; i < n; i++) {
		if (w->may_fault &&
		    (hmm_request(w->range, pfns[i]) & HMM_PFN_REQ_FAULT))
			return -EFAULT;
		pfns[i] = (pfns[i] & HMM_PFN_INOUT_FLAGS) | HMM_PFN_ERROR;
	}
	return 0;
}

/*
 * Decode a failed MADV_POPULATE_*. EINVAL means the kernel found the
 * mapping incompatible: a write to a read-only mapping is -EPERM, the
 * rest (PROT_NONE, VM_IO/VM_PFNMAP, gone) -EFAULT.
 */
static int hmm_fault_error(struct hmm_walk *w, unsigned long addr,
			   bool write, int err)
{
	struct hetmem_vma vma;

	switch (err) {
	case EINTR:
	case EAGAIN:
		w->last = addr;
		return HMM_WALK_AGAIN;
	case EINVAL:
		if (hetmem_vma_find(w->mm, addr, &vma) || vma.start > addr)
			return -EFAULT;
		if (write && (vma.flags & HETMEM_VMA_READ) &&
		    !(vma.flags & HETMEM_VMA_WRITE))
			return -EPERM;
		return -EFAULT;
	default:	/* ENOMEM (unmapped meanwhile), EFAULT, EHWPOISON */
		return -EFAULT;
	}
}

/* Fault from @addr to the end of its walk step, then re-walk from @addr. */
static int hmm_fault(struct hmm_walk *w, const struct hmm_piece *p,
		     unsigned long addr, uint16_t cat, unsigned long need)
{
	bool write = need & HMM_PFN_REQ_WRITE;
	unsigned long end = hmm_min((addr | (p->step - 1)) + 1, p->end);

	if (write && !p->vma_write)
		return -EPERM;
	/* Guard regions fault SIGSEGV: no point asking. */
	if (cat & HETMEM_PG_GUARD)
		return -EFAULT;
	if (madvise((void *)addr, end - addr,
		    write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ))
		return hmm_fault_error(w, addr, write, errno);
	w->last = addr;
	return HMM_WALK_AGAIN;
}

/*
 * Pages one by one: read each request, fault at the first page whose
 * state does not satisfy it. Pure snapshots never fault here (no request
 * can carry HMM_PFN_REQ_FAULT).
 */
static int hmm_fill_pages(struct hmm_walk *w, const struct hmm_piece *p,
			  unsigned long start, unsigned long n, uint16_t cat)
{
	unsigned long *pfns = hmm_word(w, start);
	const struct hmm_range *range = w->range;

	for (unsigned long i = 0; i < n; i++) {
		unsigned long addr = start + (i << HETMEM_PAGE_SHIFT);
		unsigned long out = hmm_cpu_state(w, p, cat, addr);
		unsigned long need = hmm_need_fault(hmm_request(range, pfns[i]),
						    out);

		if (need)
			return hmm_fault(w, p, addr, cat, need);
		pfns[i] = (pfns[i] & HMM_PFN_INOUT_FLAGS) | out;
	}
	return 0;
}

/*
 * Present run whose state satisfies any request: no request needs to be
 * read. Frame numbers of a run are consecutive, except the zero page's.
 */
static void hmm_fill_run(unsigned long *pfns, unsigned long n,
			 unsigned long out, uint16_t cat)
{
	unsigned long inc = (cat & HETMEM_PG_PFNZERO) ? 0 : 1;

	for (unsigned long i = 0; i < n; i++, out += inc)
		pfns[i] = (pfns[i] & HMM_PFN_INOUT_FLAGS) | out;
}

/* Turn one snapshot chunk into outputs, a run of equal categories at a time. */
static int hmm_fill(struct hmm_walk *w, const struct hmm_piece *p,
		    unsigned long start, unsigned long n, const uint16_t *cats)
{
	unsigned long i = 0, j, addr, out;
	int ret;

	while (i < n) {
		uint16_t cat = cats[i];

		for (j = i + 1; j < n && cats[j] == cat; j++)
			;
		addr = start + (i << HETMEM_PAGE_SHIFT);
		out = (cat & HETMEM_PG_PRESENT) ? hmm_present_state(p, cat, addr) : 0;
		if ((cat & HETMEM_PG_PRESENT) &&
		    (!w->may_fault || !hmm_need_fault(HMM_REQ_MASK, out))) {
			hmm_fill_run(hmm_word(w, addr), j - i, out, cat);
		} else {
			ret = hmm_fill_pages(w, p, addr, j - i, cat);
			if (ret)
				return ret;
		}
		i = j;
	}
	return 0;
}

static void hmm_piece_init(struct hmm_piece *p, const struct hetmem_vma *vma,
			   unsigned long start, unsigned long end)
{
	p->start = start;
	p->end = end;
	p->vma_write = vma->flags & HETMEM_VMA_WRITE;
	p->shared = vma->flags & HETMEM_VMA_SHARED;
	p->hugetlb_order = 0;
	p->step = HETMEM_PMD_SIZE;
	if (vma->flags & HETMEM_VMA_HUGETLB) {
		p->hugetlb_order = __builtin_ctzl(vma->page_size) - HETMEM_PAGE_SHIFT;
		if (vma->page_size > p->step)
			p->step = vma->page_size;
	}
}

/* A usable piece [start, end) of @vma, in snapshot chunks. */
static int hmm_walk_piece(struct hmm_walk *w, const struct hetmem_vma *vma,
			  unsigned long start, unsigned long end)
{
	uint16_t cats[HMM_CHUNK_PAGES];
	struct hmm_piece p;
	int ret;

	hmm_piece_init(&p, vma, start, end);
	while (start < end) {
		unsigned long stop = end - start > HMM_CHUNK_PAGES * HETMEM_PAGE_SIZE ?
				     start + HMM_CHUNK_PAGES * HETMEM_PAGE_SIZE : end;
		unsigned long n = (stop - start) >> HETMEM_PAGE_SHIFT;

		ret = hetmem_pagemap_snapshot(w->mm, start, stop, cats);
		if (ret)
			return ret;
		ret = hmm_fill(w, &p, start, n, cats);
		if (ret)
			return ret;
		start = stop;
	}
	return 0;
}

static int hmm_walk_vma(struct hmm_walk *w, const struct hetmem_vma *vma,
			unsigned long start, unsigned long end)
{
	int ret;

	if (!(vma->flags & HETMEM_VMA_READ) || (vma->flags & HETMEM_VMA_SPECIAL))
		return hmm_error_range(w, start, end);
	/* Watch before the snapshot, so that a later change is reported. */
	ret = hetmem_mm_watch_range(w->mm, vma, start, end);
	if (ret == -EOPNOTSUPP)
		return hmm_error_range(w, start, end);
	if (ret)
		return ret;
	return hmm_walk_piece(w, vma, start, end);
}

/* One pass over [w->last, end): 0, HMM_WALK_AGAIN or -errno. */
static int hmm_walk_range(struct hmm_walk *w)
{
	unsigned long addr = w->last, end = w->range->end, next;
	struct hetmem_vma vma;
	int ret;

	while (addr < end) {
		ret = hetmem_vma_find(w->mm, addr, &vma);
		if (ret == -ENOENT)
			return hmm_error_range(w, addr, end);
		if (ret)
			return ret;
		if (vma.start > addr) {
			next = hmm_min(vma.start, end);
			ret = hmm_error_range(w, addr, next);
		} else {
			next = hmm_min(vma.end, end);
			ret = hmm_walk_vma(w, &vma, addr, next);
		}
		if (ret)
			return ret;
		addr = next;
	}
	return 0;
}

static int hmm_range_check(const struct hmm_range *range)
{
	if (!range || !range->notifier || !range->hmm_pfns)
		return -EINVAL;
	if (range->start >= range->end ||
	    ((range->start | range->end) & ~HETMEM_PAGE_MASK))
		return -EINVAL;
	return 0;
}

/*
 * A fault on the monitor thread would wait for events only that thread
 * can read (or for its own userfaultfd): refuse, and say so once.
 */
static bool hmm_on_monitor(void)
{
	static bool warned;

	if (!hetmem_mm_in_monitor())
		return false;
	if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		HETMEM_WARN(true, "hmm_range_fault() called on the mm monitor thread (from a notifier callback?)");
	return true;
}

/* Let queued events reach the notifier, then check it one last time. */
static int hmm_settle(struct hmm_range *range, struct mm_struct *mm)
{
	int64_t deadline = hetmem_ktime_get() +
			   (int64_t)HMM_RANGE_DEFAULT_TIMEOUT * 1000000;
	int ret = hetmem_mm_sync_events(mm, deadline, true);

	if (ret == -ETIMEDOUT)
		return -EBUSY;
	if (ret)
		return ret;
	if (mmu_interval_check_retry(range->notifier, range->notifier_seq))
		return -EBUSY;
	return 0;
}

/**
 * hmm_range_fault() - snapshot, and fault where asked, a range of the CPU page tables
 * @range: the range, its notifier and sequence, and one word per page
 *
 * For each page of [@range->start, @range->end) the word in
 * @range->hmm_pfns is read as a request ((word & pfn_flags_mask) |
 * default_flags: HMM_PFN_REQ_FAULT, optionally with HMM_PFN_REQ_WRITE) and
 * replaced by the CPU state: HMM_PFN_VALID with a frame number and
 * mapping order, HMM_PFN_WRITE if the CPU may write, HMM_PFN_ERROR where
 * no device may access the page, or 0 for a page that is not resident.
 * Pages whose request is not met are faulted in with MADV_POPULATE_READ
 * or MADV_POPULATE_WRITE first (together with the rest of their 2 MiB
 * walk step). The HMM_PFN_INOUT_FLAGS bits of every word are preserved.
 * When neither default_flags nor pfn_flags_mask contains
 * HMM_PFN_REQ_FAULT the call is a pure snapshot and faults nothing.
 *
 * The result is only meaningful together with the notifier protocol:
 * @range->notifier_seq comes from mmu_interval_read_begin() on
 * @range->notifier, and the caller programs the device only after
 * mmu_interval_read_retry() returned false under its own lock. No page
 * is pinned or referenced.
 *
 * Differences from the kernel: frame numbers name virtual pages (see
 * <hetmem/mm/hmm.h>); HMM_PFN_WRITE is derived from the mapping's
 * permissions and the page's kind rather than read from the PTE; the
 * shared zero page reports order 0 even when it is the huge zero page;
 * VM_IO / VM_PFNMAP mappings, which /proc does not flag, read as not
 * resident and fail a fault with -EFAULT; before returning 0 the call
 * waits until address-space events already queued have reached the
 * notifiers.
 *
 * Context: Any thread but the mm monitor (notifier callbacks); the caller
 * holds mmap_read_lock() of @range->notifier->mm. May sleep: faults pages
 * in and waits for the monitor. May run notifier callbacks on other
 * threads (a copy-on-write fault invalidates).
 * Return: 0 when every word holds an output that satisfies its request;
 * -EBUSY when the notifier was invalidated meanwhile, or the monitor did
 * not catch up within HMM_RANGE_DEFAULT_TIMEOUT ms (retry from
 * mmu_interval_read_begin()); -EFAULT when a fault was requested on an
 * address without a usable mapping or the fault failed, or when the mm is
 * not the calling process's live address space; -EPERM when a write was
 * requested on a mapping without write permission; -EINVAL for a NULL
 * @range, notifier or array, or an empty or unaligned range; -EDEADLK on
 * the monitor thread (with a one-time warning); another negative errno
 * when /proc could not be read. After an error the array holds a mix of
 * requests and outputs.
 */
HETMEM_API int hmm_range_fault(struct hmm_range *range)
{
	struct hmm_walk w;
	int ret = hmm_range_check(range);

	if (ret)
		return ret;
	w = (struct hmm_walk){
		.range = range,
		.mm = range->notifier->mm,
		.last = range->start,
		.may_fault = (range->default_flags | range->pfn_flags_mask) &
			     HMM_PFN_REQ_FAULT,
	};
	if (!hetmem_mm_is_current(w.mm))
		return -EFAULT;
	mmap_assert_locked(w.mm);
	if (hmm_on_monitor())
		return -EDEADLK;
	hetmem_mm_stat_inc(w.mm, range_faults);

	do {
		if (mmu_interval_check_retry(range->notifier,
					     range->notifier_seq))
			return -EBUSY;
		ret = hmm_walk_range(&w);
	} while (ret == HMM_WALK_AGAIN);
	if (ret)
		return ret;
	return hmm_settle(range, w.mm);
}
