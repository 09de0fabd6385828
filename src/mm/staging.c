/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the staging area: system pages with descriptors, which
 * migration moves application pages into and out of with UFFDIO_MOVE.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "mm/devmem.h"

/**
 * DOC: The staging area
 *
 * Migration needs system pages that it can name, count and lock while
 * they are outside the application's mappings: the source pages that
 * migrate_vma_setup() detaches, and the pages a driver allocates to bring
 * data back. hetmem moves them with UFFDIO_MOVE, which remaps a page
 * without copying it, between the application and one large private
 * anonymous reservation, the arena, whose pages have descriptors.
 *
 * UFFDIO_MOVE is a userfaultfd operation and needs the destination
 * registered with the descriptor it is issued on. The arena is therefore
 * registered with a userfaultfd of its own, in write-protect mode only
 * and with no events: nothing in the arena is ever write-protected, so
 * the registration changes no fault (a driver's memcpy into a hole just
 * allocates), munmap() or MADV_DONTNEED of arena memory reports nothing,
 * and a move never returns EAGAIN waiting for an event to be read. The
 * monitor's userfaultfd, which does have events, is not involved.
 *
 * The reservation is 16 GiB of MAP_NORESERVE address space (it costs
 * nothing until written), 2 MiB aligned, in two parts:
 *
 *  - The small part (seven eighths) is MADV_NOHUGEPAGE and serves single
 *    pages. A driver's copy into a staging hole there must not fault in
 *    a huge page whose subpages are then moved one by one into the
 *    application. On 6.18 that combination (UFFDIO_MOVE of single pages
 *    out of a PTE-mapped huge folio, while the application faults on the
 *    destination) was seen to leave a page mapped at an address hetmem
 *    had emptied, so a device page and a CPU page coexisted; with base
 *    pages it never happened in millions of moves
 *    (tests/stress/test-migrate.c).
 *  - The huge part (one eighth, none when transparent huge pages are
 *    off) is MADV_HUGEPAGE and serves PMD-sized folios only, always as a
 *    whole: a transparent huge page of the application moves in as one
 *    PMD, a driver copies into a block that faults in (or already holds)
 *    one huge page, and the block moves back into the application as one
 *    PMD. Nothing ever moves a single page out of it, so the combination
 *    above cannot arise there.
 *
 * UFFDIO_MOVE moves a PMD only when the destination PMD is empty: if a
 * page table is there, the kernel splits the source huge page and moves
 * its pages one by one. A huge block is therefore known to have no page
 * table (block->maybe_table false) only when it was never touched, was
 * just scrubbed (mapped afresh over itself, which frees its page tables),
 * holds one PMD-mapped huge page (checked with the page-map snapshot), or
 * had one zapped or moved out as a whole (MADV_DONTNEED of a PMD-mapped
 * block; an install whose destination reads as a huge page afterwards).
 * Every other block is scrubbed when it is freed.
 */

/**
 * DOC: Staging allocation
 *
 * The arena is cut into 2 MiB blocks. A page allocated for address A
 * takes the slot of A's offset within 2 MiB, in a block recently
 * allocated from, so that a run of consecutive addresses gets a run of
 * consecutive slots and one UFFDIO_MOVE moves the run. A PMD-sized folio
 * takes a whole block.
 *
 * A slot may hold memory or not: UFFDIO_MOVE needs an empty destination,
 * while a driver that copies into a page should reuse memory rather than
 * fault in a fresh page. A bitmap per block marks the slots that may hold
 * memory; a bit is set whenever a slot is handed out (whoever has it may
 * write it) or moved into, and cleared when its memory is moved out or
 * discarded. The bits change outside the allocator lock (moves run
 * without it), so they are atomic, and a bitmap rather than a page flag
 * lets "does this block hold memory, and where" read eight words instead
 * of 512 descriptors.
 *
 * A block whose last slot is freed keeps its memory if it is the only
 * such cached block (STAGING_CACHE_BLOCKS, HUGE_CACHE_BLOCKS for the huge
 * part), and is otherwise emptied with MADV_DONTNEED, or for a huge block
 * that may hold a page table mapped afresh over itself: the only system
 * calls made under the allocator lock. Whether a huge block holds one
 * PMD-mapped page is read (one page-map snapshot) before the lock.
 *
 * Small blocks are emptied a few at a time. A MADV_DONTNEED of 16 pages
 * costs about 7 us on the reference machine, of 16 pages in each of
 * several blocks about 5 us per block, and migrating 64 KiB at a time
 * frees one block per call. So a block to empty waits (PENDING_BLOCKS)
 * until three more join it or 128 pages of memory wait (what a 2 MiB call
 * frees is emptied at once); the pending blocks go in one call per run of
 * adjacent ones, which the allocation order makes usual. Nothing is
 * handed out of a pending block, and the memory they hold is counted as
 * cached (hetmem_staging_cached_bytes()).
 *
 * A forked child inherits the parent's arena, but not its registration
 * (the staging userfaultfd has no fork event): the child forgets the
 * parent's state and reserves an arena of its own when it needs one,
 * leaking the inherited copy.
 */

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE ((__u64)1 << 16)
#endif

#define STAGING_DEFAULT_BYTES (16UL << 30)
#define BLOCK_BYTES HETMEM_PMD_SIZE
#define BLOCK_PAGES HPAGE_PMD_NR
#define STAGING_CACHE_BLOCKS 1
#define PENDING_BLOCKS 4
#define PENDING_PAGES 128		/* 512 KiB awaiting one discard at most */
#define HUGE_CACHE_BLOCKS 1
#define HUGE_PART_SHIFT 3		/* one eighth of the arena */
#define RECENT_BLOCKS 4
#define ANY_SLOT BLOCK_PAGES
#define NO_BLOCK (-1L)

#define BLOCK_WORDS (BLOCK_PAGES / 64)

struct staging_block {
	uint64_t used[BLOCK_WORDS];
	uint64_t filled[BLOCK_WORDS];	/* may hold memory; atomic */
	unsigned int nused;
	bool maybe_table;	/* huge part: may hold a page table */
};

struct staging {
	unsigned long base;		/* arena, BLOCK_BYTES aligned */
	unsigned long nblocks;
	unsigned long nsmall;		/* blocks below are the small part */
	struct page *pages;		/* nblocks * BLOCK_PAGES descriptors */
	size_t pages_bytes;
	struct staging_block *blocks;
	uint32_t *empty;		/* stack of free blocks without memory */
	unsigned long nempty;
	uint32_t cached[STAGING_CACHE_BLOCKS];
	unsigned int ncached;
	uint32_t pending[PENDING_BLOCKS];	/* free, memory to discard */
	unsigned int npending;
	unsigned int pending_pages;
	uint32_t *hfree;		/* stack of free huge blocks, empty */
	unsigned long nhfree;
	uint32_t hcached[HUGE_CACHE_BLOCKS];	/* free, one PMD-mapped page */
	unsigned int nhcached;
	long recent[RECENT_BLOCKS];	/* open blocks, most recent first */
	unsigned long nused;		/* slots in use */
	int uffd;
};

/* Starting and stopping (system calls, never under st_lock). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
/* The allocator state of st, once st_ready. */
static struct hetmem_mutex st_lock = HETMEM_MUTEX_INIT(hetmem_staging);
static struct staging st = { .uffd = -1 };
static bool st_ready;
static unsigned long arena_bytes = STAGING_DEFAULT_BYTES;
static uint64_t cached_bytes;

static bool staging_ready(void)
{
	return __atomic_load_n(&st_ready, __ATOMIC_ACQUIRE);
}

/* ---- blocks and slots (under st_lock) ---- */

static struct page *slot_page(unsigned long blk, unsigned int slot)
{
	return &st.pages[blk * BLOCK_PAGES + slot];
}

static unsigned long slot_addr(unsigned long blk, unsigned int slot)
{
	return st.base + blk * BLOCK_BYTES + (unsigned long)slot * HETMEM_PAGE_SIZE;
}

static bool slot_busy(const struct staging_block *b, unsigned int slot)
{
	return (b->used[slot / 64] >> (slot % 64)) & 1;
}

static bool slot_filled(unsigned long blk, unsigned int slot)
{
	return (__atomic_load_n(&st.blocks[blk].filled[slot / 64], __ATOMIC_RELAXED) >>
		(slot % 64)) & 1;
}

/* The bits of [slot, slot + nr) within word @w of a block's bitmap. */
static uint64_t word_mask(unsigned int w, unsigned int slot, unsigned int nr)
{
	unsigned int lo = slot > w * 64 ? slot - w * 64 : 0;
	unsigned int hi = slot + nr < (w + 1) * 64 ? slot + nr - w * 64 : 64;

	if (lo >= hi)
		return 0;
	return (hi - lo == 64 ? ~0ULL : ((1ULL << (hi - lo)) - 1)) << lo;
}

/* Set (@on) or clear the filled bits of @nr slots of @blk from @slot on. */
static void slots_mark(unsigned long blk, unsigned int slot, unsigned int nr, bool on)
{
	uint64_t *words = st.blocks[blk].filled, m;

	for (unsigned int w = slot / 64; w < BLOCK_WORDS && w * 64 < slot + nr; w++) {
		m = word_mask(w, slot, nr);
		if (on)
			__atomic_fetch_or(&words[w], m, __ATOMIC_RELAXED);
		else if (__atomic_load_n(&words[w], __ATOMIC_RELAXED) & m)
			__atomic_fetch_and(&words[w], ~m, __ATOMIC_RELAXED);
	}
}

static void set_cached(unsigned int small, unsigned int huge)
{
	st.ncached = small;
	st.nhcached = huge;
	__atomic_store_n(&cached_bytes, (uint64_t)(small + huge) * BLOCK_BYTES +
			 (uint64_t)st.pending_pages * HETMEM_PAGE_SIZE, __ATOMIC_RELAXED);
}

static void recent_drop(long blk)
{
	unsigned int i, j;

	for (i = 0; i < RECENT_BLOCKS; i++) {
		if (st.recent[i] != blk)
			continue;
		for (j = i; j + 1 < RECENT_BLOCKS; j++)
			st.recent[j] = st.recent[j + 1];
		st.recent[RECENT_BLOCKS - 1] = NO_BLOCK;
	}
}

static void recent_push(long blk)
{
	unsigned int i;

	recent_drop(blk);
	for (i = RECENT_BLOCKS - 1; i > 0; i--)
		st.recent[i] = st.recent[i - 1];
	st.recent[0] = blk;
}

/* Discard the memory of @nr slots from @slot on. */
static void slots_discard(unsigned long blk, unsigned int slot, unsigned int nr)
{
	madvise((void *)slot_addr(blk, slot), (size_t)nr * HETMEM_PAGE_SIZE,
		MADV_DONTNEED);
	slots_mark(blk, slot, nr, false);
}

static bool block_filled(unsigned long blk)
{
	for (unsigned int w = 0; w < BLOCK_WORDS; w++)
		if (__atomic_load_n(&st.blocks[blk].filled[w], __ATOMIC_RELAXED))
			return true;
	return false;
}

static unsigned int block_filled_pages(unsigned long blk)
{
	unsigned int n = 0;

	for (unsigned int w = 0; w < BLOCK_WORDS; w++)
		n += (unsigned int)__builtin_popcountll(
			__atomic_load_n(&st.blocks[blk].filled[w], __ATOMIC_RELAXED));
	return n;
}

/*
 * Discard the pending blocks, one MADV_DONTNEED per run of adjacent ones,
 * and make them empty blocks again.
 */
static void pending_flush(void)
{
	unsigned int i, j, n = st.npending;
	uint32_t *b = st.pending, t;

	for (i = 1; i < n; i++)		/* at most PENDING_BLOCKS: insertion sort */
		for (j = i; j > 0 && b[j - 1] > b[j]; j--) {
			t = b[j];
			b[j] = b[j - 1];
			b[j - 1] = t;
		}
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && b[j] == b[j - 1] + 1; j++)
			;
		madvise((void *)slot_addr(b[i], 0), (size_t)(j - i) * BLOCK_BYTES,
			MADV_DONTNEED);
	}
	for (i = 0; i < n; i++) {
		slots_mark(b[i], 0, BLOCK_PAGES, false);
		st.empty[st.nempty++] = b[i];
	}
	st.npending = 0;
	st.pending_pages = 0;
	set_cached(st.ncached, st.nhcached);
}

/*
 * A free block whose memory must go: most of the cost of MADV_DONTNEED
 * is per call, so a few such blocks are discarded together.
 */
static void pending_add(unsigned long blk)
{
	st.pending[st.npending++] = (uint32_t)blk;
	st.pending_pages += block_filled_pages(blk);
	if (st.npending == PENDING_BLOCKS || st.pending_pages >= PENDING_PAGES)
		pending_flush();
	else
		set_cached(st.ncached, st.nhcached);
}

/* A free block, the cached one first when @want_memory. */
static long block_take(bool want_memory)
{
	if (want_memory && st.ncached) {
		set_cached(st.ncached - 1, st.nhcached);
		return st.cached[st.ncached];
	}
	if (!st.nempty && st.npending)
		pending_flush();
	if (st.nempty)
		return st.empty[--st.nempty];
	if (st.ncached) {
		set_cached(st.ncached - 1, st.nhcached);
		return st.cached[st.ncached];
	}
	return NO_BLOCK;
}

/* The last slot of @blk was freed: keep its memory or discard it. */
static void block_release(unsigned long blk)
{
	bool filled = block_filled(blk);

	recent_drop((long)blk);
	if (filled && st.ncached < STAGING_CACHE_BLOCKS) {
		st.cached[st.ncached] = (uint32_t)blk;
		set_cached(st.ncached + 1, st.nhcached);
		return;
	}
	if (filled) {
		pending_add(blk);
		return;
	}
	st.empty[st.nempty++] = (uint32_t)blk;
}

/* Hand out @slot of @blk: one reference, unlocked, may hold memory. */
static struct page *slot_claim(unsigned long blk, unsigned int slot, bool empty)
{
	struct staging_block *b = &st.blocks[blk];
	struct page *page = slot_page(blk, slot);

	if (empty && slot_filled(blk, slot))
		slots_discard(blk, slot, 1);
	b->used[slot / 64] |= 1ULL << (slot % 64);
	b->nused++;
	st.nused++;
	page->pgmap = NULL;
	page->zone_device_data = NULL;
	page->index = 0;
	page->mm = NULL;
	slots_mark(blk, slot, 1, true);
	__atomic_store_n(&page->flags, HETMEM_PGF_STAGING, __ATOMIC_RELAXED);
	__atomic_store_n(&page->_refcount, 1, __ATOMIC_RELEASE);
	return page;
}

/* A free slot of @blk: @slot itself, or any (populated ones first unless @empty). */
static int block_find_slot(unsigned long blk, unsigned int slot, bool empty)
{
	const struct staging_block *b = &st.blocks[blk];
	int fallback = -1;
	unsigned int i;

	if (slot != ANY_SLOT)
		return slot_busy(b, slot) ? -1 : (int)slot;
	for (i = 0; i < BLOCK_PAGES; i++) {
		if (slot_busy(b, i))
			continue;
		if (slot_filled(blk, i) != empty)
			return (int)i;
		if (fallback < 0)
			fallback = (int)i;
	}
	return fallback;
}

static struct page *alloc_small(unsigned int slot, bool empty)
{
	unsigned int i;
	long blk;
	int s;

	for (i = 0; i < RECENT_BLOCKS && st.recent[i] != NO_BLOCK; i++) {
		blk = st.recent[i];
		s = block_find_slot((unsigned long)blk, slot, empty);
		if (s >= 0) {
			recent_push(blk);
			return slot_claim((unsigned long)blk, (unsigned int)s, empty);
		}
	}
	blk = block_take(!empty);
	if (blk == NO_BLOCK)
		return NULL;
	recent_push(blk);
	s = block_find_slot((unsigned long)blk, slot, empty);
	return slot_claim((unsigned long)blk, (unsigned int)s, empty);
}

/* ---- the huge part (under st_lock) ---- */

static bool block_is_huge(unsigned long blk)
{
	return blk >= st.nsmall;
}

/*
 * Map @blk afresh over itself: its memory and its page tables go. A
 * block that cannot be mapped or registered again is lost for good (its
 * address range may even be someone else's now), never handed out.
 */
static int block_scrub(unsigned long blk)
{
	unsigned long addr = slot_addr(blk, 0);
	struct uffdio_register reg = {
		.range = { .start = addr, .len = BLOCK_BYTES },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (mmap((void *)addr, BLOCK_BYTES, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
	    MAP_FAILED)
		return -errno;
	madvise((void *)addr, BLOCK_BYTES, MADV_HUGEPAGE);
	if (ioctl(st.uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	slots_mark(blk, 0, BLOCK_PAGES, false);
	return 0;
}

/* A free huge block: the cached one when @want_memory, else an empty one. */
static long huge_take(bool want_memory)
{
	long blk;

	if (st.nhcached && (want_memory || !st.nhfree)) {
		set_cached(st.ncached, st.nhcached - 1);
		blk = st.hcached[st.nhcached];
		if (!want_memory)	/* zapping a PMD leaves no table */
			slots_discard((unsigned long)blk, 0, BLOCK_PAGES);
		return blk;
	}
	return st.nhfree ? st.hfree[--st.nhfree] : NO_BLOCK;
}

/*
 * The last reference to huge block @blk went; @filled: it may hold
 * memory, @pmd: that memory is one PMD-mapped huge page.
 */
static void huge_release(unsigned long blk, bool filled, bool pmd)
{
	struct staging_block *b = &st.blocks[blk];
	int err;

	if (filled && pmd) {
		b->maybe_table = false;
		if (st.nhcached < HUGE_CACHE_BLOCKS) {
			st.hcached[st.nhcached] = (uint32_t)blk;
			set_cached(st.ncached, st.nhcached + 1);
			return;
		}
		slots_discard(blk, 0, BLOCK_PAGES);
	} else if (filled || b->maybe_table) {
		err = block_scrub(blk);
		if (HETMEM_WARN(err, "staging block lost: %d", err))
			return;
		b->maybe_table = false;
	}
	st.hfree[st.nhfree++] = (uint32_t)blk;
}

static struct page *alloc_large(bool empty)
{
	long blk = huge_take(!empty);
	struct page *head;
	unsigned int i;

	if (blk != NO_BLOCK)
		st.blocks[blk].maybe_table = true;	/* until proven otherwise */
	else
		blk = block_take(!empty);
	if (blk == NO_BLOCK)
		return NULL;
	if (empty && block_filled((unsigned long)blk))
		slots_discard((unsigned long)blk, 0, BLOCK_PAGES);
	for (i = BLOCK_PAGES; i-- > 0;)
		slot_claim((unsigned long)blk, i, false);
	head = slot_page((unsigned long)blk, 0);
	for (i = 1; i < BLOCK_PAGES; i++) {
		__atomic_fetch_or(&head[i].flags, HETMEM_PGF_TAIL_BITS(i), __ATOMIC_RELAXED);
		__atomic_store_n(&head[i]._refcount, 0, __ATOMIC_RELAXED);
	}
	__atomic_fetch_or(&head->flags, HPAGE_PMD_ORDER << HETMEM_PGF_ORDER_SHIFT,
			  __ATOMIC_RELEASE);
	return head;
}

/* ---- starting and stopping ---- */

static void staging_forget_after_fork(void)
{
	if (st.uffd >= 0)
		close(st.uffd);
	memset(&st, 0, sizeof(st));
	st.uffd = -1;
	st_ready = false;
	cached_bytes = 0;
	hetmem_devmem_counters.staging_pages = 0;
	pthread_mutex_init(&start_lock, NULL);
	st_lock = (struct hetmem_mutex)HETMEM_MUTEX_INIT(hetmem_staging);
}

static void staging_register_fork(void)
{
	pthread_atfork(NULL, NULL, staging_forget_after_fork);
}

/* Reserve the arena, 2 MiB aligned, registered with the staging uffd. */
static int arena_map(int uffd, unsigned long bytes)
{
	size_t len = bytes + BLOCK_BYTES;
	char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	unsigned long start, head;
	struct uffdio_register reg;

	if (raw == MAP_FAILED)
		return -errno;
	start = ((unsigned long)raw + BLOCK_BYTES - 1) & ~(BLOCK_BYTES - 1);
	head = start - (unsigned long)raw;
	if (head)
		munmap(raw, head);
	if (len - head > bytes)
		munmap((void *)(start + bytes), len - head - bytes);
	reg = (struct uffdio_register){
		.range = { .start = start, .len = bytes },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		int err = -errno;

		munmap((void *)start, bytes);
		return err;
	}
	st.base = start;
	madvise((void *)start, st.nsmall * BLOCK_BYTES, MADV_NOHUGEPAGE);
	if (st.nsmall < st.nblocks)
		madvise((void *)(start + st.nsmall * BLOCK_BYTES),
			(st.nblocks - st.nsmall) * BLOCK_BYTES, MADV_HUGEPAGE);
	return 0;
}

/* Transparent huge pages on request (MADV_HUGEPAGE) or always. */
static bool thp_available(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char line[128] = "";
	bool ok;

	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) && !strstr(line, "[never]");
	fclose(f);
	return ok;
}

static void staging_meta_free(void)
{
	free(st.blocks);
	free(st.empty);
	free(st.hfree);
	if (st.pages && st.pages != MAP_FAILED)
		munmap(st.pages, st.pages_bytes);
}

static int staging_meta_alloc(void)
{
	unsigned long i;

	st.pages_bytes = st.nblocks * BLOCK_PAGES * sizeof(struct page);
	st.pages = mmap(NULL, st.pages_bytes, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (st.pages == MAP_FAILED)
		return -ENOMEM;
	st.blocks = calloc(st.nblocks, sizeof(*st.blocks));
	st.empty = calloc(st.nsmall, sizeof(*st.empty));
	st.hfree = calloc(st.nblocks - st.nsmall + 1, sizeof(*st.hfree));
	if (!st.blocks || !st.empty || !st.hfree) {
		staging_meta_free();
		return -ENOMEM;
	}
	/* Popped from the top: low blocks are handed out first. */
	for (i = 0; i < st.nsmall; i++)
		st.empty[i] = (uint32_t)(st.nsmall - 1 - i);
	st.nempty = st.nsmall;
	for (i = st.nsmall; i < st.nblocks; i++)
		st.hfree[st.nhfree++] = (uint32_t)(st.nblocks - 1 - (i - st.nsmall));
	for (i = 0; i < RECENT_BLOCKS; i++)
		st.recent[i] = NO_BLOCK;
	return 0;
}

static int staging_create(void)
{
	uint64_t features = 0;
	char reason[128];
	int uffd, err;

	uffd = hetmem_uffd_create(UFFD_FEATURE_MOVE, &features, reason,
				  sizeof(reason));
	if (uffd < 0)
		return uffd;
	st.nblocks = arena_bytes / BLOCK_BYTES;
	st.nsmall = st.nblocks;
	if (thp_available())
		st.nsmall -= st.nblocks >> HUGE_PART_SHIFT;
	err = arena_map(uffd, st.nblocks * BLOCK_BYTES);
	if (err)
		goto err_close;
	err = staging_meta_alloc();
	if (err)
		goto err_unmap_arena;
	st.uffd = uffd;
	__atomic_store_n(&st_ready, true, __ATOMIC_RELEASE);
	return 0;

err_unmap_arena:
	munmap((void *)st.base, st.nblocks * BLOCK_BYTES);
err_close:
	close(uffd);
	memset(&st, 0, sizeof(st));
	st.uffd = -1;
	return err;
}

int hetmem_staging_start(void)
{
	int err = 0;

	if (staging_ready())
		return 0;
	pthread_once(&fork_once, staging_register_fork);
	pthread_mutex_lock(&start_lock);
	if (!st_ready)
		err = staging_create();
	pthread_mutex_unlock(&start_lock);
	return err;
}

void hetmem_staging_stop(void)
{
	bool busy;

	pthread_mutex_lock(&start_lock);
	if (!st_ready)
		goto out_unlock;
	hetmem_mutex_lock(&st_lock);
	busy = st.nused != 0;
	if (!busy)
		__atomic_store_n(&st_ready, false, __ATOMIC_RELEASE);
	hetmem_mutex_unlock(&st_lock);
	if (busy)
		goto out_unlock;
	close(st.uffd);
	munmap((void *)st.base, st.nblocks * BLOCK_BYTES);
	staging_meta_free();
	memset(&st, 0, sizeof(st));
	st.uffd = -1;
	__atomic_store_n(&cached_bytes, 0, __ATOMIC_RELAXED);
out_unlock:
	pthread_mutex_unlock(&start_lock);
}

void hetmem_staging_set_arena_size(unsigned long bytes)
{
	arena_bytes = bytes ? bytes & ~(BLOCK_BYTES - 1) : STAGING_DEFAULT_BYTES;
}

/* ---- the internal interface ---- */

struct page *hetmem_staging_pfn_to_page(unsigned long pfn)
{
	unsigned long first;

	if (!staging_ready())
		return NULL;
	first = st.base >> HETMEM_PAGE_SHIFT;
	if (pfn < first || pfn - first >= st.nblocks * BLOCK_PAGES)
		return NULL;
	return &st.pages[pfn - first];
}

unsigned long hetmem_staging_page_to_pfn(const struct page *page)
{
	return (st.base >> HETMEM_PAGE_SHIFT) + (unsigned long)(page - st.pages);
}

uint64_t hetmem_staging_cached_bytes(void)
{
	return __atomic_load_n(&cached_bytes, __ATOMIC_RELAXED);
}

struct page *hetmem_staging_alloc(unsigned int order, unsigned long addr,
				  bool empty)
{
	unsigned int slot = (unsigned int)(addr >> HETMEM_PAGE_SHIFT) % BLOCK_PAGES;
	struct page *page = NULL;

	if (!staging_ready() || (order && order != HPAGE_PMD_ORDER))
		return NULL;
	hetmem_mutex_lock(&st_lock);
	page = order ? alloc_large(empty) : alloc_small(slot, empty);
	hetmem_mutex_unlock(&st_lock);
	if (page)
		hetmem_devmem_count(staging_pages, 1UL << order);
	return page;
}

static void slots_put(unsigned long idx, unsigned long nr, bool filled, bool pmd);

unsigned long hetmem_staging_alloc_run(unsigned long addr, unsigned long n,
				       bool empty, struct page **pages)
{
	unsigned int slot = (unsigned int)(addr >> HETMEM_PAGE_SHIFT) % BLOCK_PAGES;
	unsigned long k;

	if (!staging_ready())
		return 0;
	hetmem_mutex_lock(&st_lock);
	for (k = 0; k < n && slot + k < BLOCK_PAGES; k++) {
		pages[k] = alloc_small(slot + (unsigned int)k, empty);
		if (pages[k] && k && pages[k] != pages[k - 1] + 1) {
			slots_put((unsigned long)(pages[k] - st.pages), 1, false, false);
			pages[k] = NULL;
		}
		if (!pages[k])
			break;
	}
	hetmem_mutex_unlock(&st_lock);
	hetmem_devmem_count(staging_pages, k);
	return k;
}

static struct page *staging_alloc_any(unsigned int order)
{
	struct page *page;

	if (order && order != HPAGE_PMD_ORDER)
		return NULL;
	hetmem_mutex_lock(&st_lock);
	page = order ? alloc_large(false) : alloc_small(ANY_SLOT, false);
	hetmem_mutex_unlock(&st_lock);
	if (page)
		hetmem_devmem_count(staging_pages, 1UL << order);
	return page;
}

/* Mark the slots of pages [idx, idx + nr) of the arena filled or not. */
static void pages_mark(unsigned long idx, unsigned long nr, bool on)
{
	unsigned long end = idx + nr, blk, n;

	for (; idx < end; idx += n) {
		blk = idx / BLOCK_PAGES;
		n = end - idx < BLOCK_PAGES - idx % BLOCK_PAGES ?
		    end - idx : BLOCK_PAGES - idx % BLOCK_PAGES;
		slots_mark(blk, (unsigned int)(idx % BLOCK_PAGES), (unsigned int)n, on);
	}
}

static void mark_filled(unsigned long addr, unsigned long len)
{
	unsigned long idx = (addr - st.base) >> HETMEM_PAGE_SHIFT;
	unsigned long nr = (len + HETMEM_PAGE_SIZE - 1) >> HETMEM_PAGE_SHIFT;

	if (addr < st.base || idx >= st.nblocks * BLOCK_PAGES)
		return;
	if (nr > st.nblocks * BLOCK_PAGES - idx)
		nr = st.nblocks * BLOCK_PAGES - idx;
	pages_mark(idx, nr, true);
}

long hetmem_staging_move_in(unsigned long dst, unsigned long src,
			    unsigned long len, bool allow_holes,
			    unsigned long *moved)
{
	struct uffdio_move mv;
	unsigned long done = 0;
	int err = 0;

	if (!staging_ready())
		err = EINVAL;
	while (!err && done < len) {
		mv = (struct uffdio_move){
			.dst = dst + done, .src = src + done, .len = len - done,
			.mode = allow_holes ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0,
		};
		if (ioctl(st.uffd, UFFDIO_MOVE, &mv))
			err = errno;
		if (mv.move > 0)
			done += (unsigned long)mv.move;
		else if (!err)
			err = EIO;	/* no progress and no error: never loop */
		if (err == EAGAIN && mv.move > 0)
			err = 0;
	}
	mark_filled(dst, done);
	*moved = done;
	return err ? -err : (long)done;
}

void hetmem_staging_moved_out(struct page *page, unsigned long nr)
{
	pages_mark((unsigned long)(page - st.pages), nr, false);
}

bool hetmem_staging_is_huge(const struct page *page)
{
	if (!staging_ready() ||
	    !(__atomic_load_n(&page->flags, __ATOMIC_RELAXED) & HETMEM_PGF_STAGING))
		return false;
	return (unsigned long)(page - st.pages) / BLOCK_PAGES >= st.nsmall;
}

void hetmem_staging_installed_whole(struct page *head, bool pmd)
{
	unsigned long blk = (unsigned long)(head - st.pages) / BLOCK_PAGES;

	/* The block is still the caller's: nobody else reads the flag yet. */
	if (block_is_huge(blk) && pmd)
		st.blocks[blk].maybe_table = false;
}

/* Give slot @idx of the arena back (order 0 or a whole huge folio). */
static void slots_put(unsigned long idx, unsigned long nr, bool filled, bool pmd)
{
	unsigned long blk = idx / BLOCK_PAGES, i;
	struct staging_block *b = &st.blocks[blk];

	for (i = idx % BLOCK_PAGES; i < idx % BLOCK_PAGES + nr; i++)
		b->used[i / 64] &= ~(1ULL << (i % 64));
	b->nused -= (unsigned int)nr;
	st.nused -= nr;
	if (!b->nused && block_is_huge(blk))
		huge_release(blk, filled, pmd);
	else if (!b->nused)
		block_release(blk);
}

void hetmem_staging_free(struct page *page)
{
	unsigned long idx = (unsigned long)(page - st.pages);
	unsigned long blk = idx / BLOCK_PAGES, i;
	unsigned int order = (__atomic_load_n(&page->flags, __ATOMIC_RELAXED) &
			      HETMEM_PGF_ORDER_MASK) >> HETMEM_PGF_ORDER_SHIFT;
	unsigned long nr = 1UL << order;
	bool filled = false, pmd = false;

	if (block_is_huge(blk)) {	/* system calls before the lock: the block is ours */
		filled = block_filled(blk);
		pmd = filled && hetmem_page_mapped_huge(slot_addr(blk, 0));
	}
	for (i = 1; i < nr; i++)
		__atomic_fetch_and(&page[i].flags, ~(HETMEM_PGF_TAIL | HETMEM_PGF_TAIL_MASK),
				   __ATOMIC_RELAXED);
	if (order)
		__atomic_fetch_and(&page->flags, ~HETMEM_PGF_ORDER_MASK, __ATOMIC_RELAXED);
	hetmem_mutex_lock(&st_lock);
	slots_put(idx, nr, filled, pmd);
	hetmem_mutex_unlock(&st_lock);
	hetmem_devmem_count(staging_pages, -nr);
}

void hetmem_staging_free_pages(struct page **pages, unsigned long n)
{
	unsigned long i, idx, small = 0;

	for (i = 0; i < n; i++) {
		idx = (unsigned long)(pages[i] - st.pages);
		if ((__atomic_load_n(&pages[i]->flags, __ATOMIC_RELAXED) &
		     HETMEM_PGF_ORDER_MASK) || block_is_huge(idx / BLOCK_PAGES))
			hetmem_staging_free(pages[i]);
		else
			pages[small++] = pages[i];
	}
	if (!small)
		return;
	hetmem_mutex_lock(&st_lock);
	for (i = 0; i < small; i++)
		slots_put((unsigned long)(pages[i] - st.pages), 1, false, false);
	hetmem_mutex_unlock(&st_lock);
	hetmem_devmem_count(staging_pages, -small);
}

/* ---- the public allocator ---- */

static struct page *zero_if_asked(struct page *page, unsigned int gfp,
				  unsigned int order)
{
	if (page && (gfp & HETMEM_GFP_ZERO))
		memset(page_address(page), 0, HETMEM_PAGE_SIZE << order);
	return page;
}

/**
 * alloc_pages() - allocate a staging system page or PMD-sized folio
 * @gfp: HETMEM_GFP_ZERO to clear the memory; other bits are ignored
 * @order: 0 or HPAGE_PMD_ORDER
 *
 * The page lives in hetmem's staging area (started on first use), where
 * migrate_vma_pages() can move it into the application without copying;
 * page_address() is its memory. Pages that already hold memory are
 * preferred, so the contents are undefined without HETMEM_GFP_ZERO.
 *
 * Context: May sleep (briefly, for the allocator lock; the first call
 * sets up the staging area).
 * Return: the page with one reference, unlocked; NULL for another order,
 * when the staging area is exhausted or cannot be created (no
 * UFFD_FEATURE_MOVE).
 */
HETMEM_API struct page *alloc_pages(unsigned int gfp, unsigned int order)
{
	if (hetmem_staging_start())
		return NULL;
	return zero_if_asked(staging_alloc_any(order), gfp, order);
}

/**
 * alloc_page() - allocate one staging system page
 * @gfp: HETMEM_GFP_ZERO to clear it
 *
 * Context: May sleep; see alloc_pages().
 * Return: the page with one reference, or NULL (see alloc_pages()).
 */
HETMEM_API struct page *alloc_page(unsigned int gfp)
{
	return alloc_pages(gfp, 0);
}

/**
 * alloc_page_vma() - allocate a staging page meant for an address
 * @gfp: HETMEM_GFP_ZERO to clear it
 * @vma: the mapping it is meant for (unused)
 * @addr: the address it is meant for
 *
 * The page sits at @addr's offset within a 2 MiB block, next to the
 * pages allocated for neighbouring addresses, so that migrating a range
 * back moves runs of pages at once.
 *
 * Context: May sleep; see alloc_pages().
 * Return: the page with one reference, or NULL (see alloc_pages()).
 */
HETMEM_API struct page *alloc_page_vma(unsigned int gfp,
				       struct vm_area_struct *vma,
				       unsigned long addr)
{
	return (struct page *)vma_alloc_folio(gfp, 0, vma, addr);
}

/**
 * vma_alloc_folio() - allocate a staging folio meant for an address
 * @gfp: HETMEM_GFP_ZERO to clear it
 * @order: 0 or HPAGE_PMD_ORDER
 * @vma: the mapping it is meant for (unused)
 * @addr: the address it is meant for
 *
 * Context: May sleep; see alloc_pages().
 * Return: the folio with one reference, or NULL (see alloc_pages()).
 */
HETMEM_API struct folio *vma_alloc_folio(unsigned int gfp, unsigned int order,
					 struct vm_area_struct *vma,
					 unsigned long addr)
{
	struct page *page;

	(void)vma;
	if (hetmem_staging_start())
		return NULL;
	page = hetmem_staging_alloc(order, addr, false);
	return (struct folio *)zero_if_asked(page, gfp, order);
}

/**
 * __free_pages() - drop the reference alloc_pages() returned
 * @page: the page or the head of the folio
 * @order: the order it was allocated with
 *
 * Context: May sleep briefly (the allocator lock).
 * Return: nothing.
 */
HETMEM_API void __free_pages(struct page *page, unsigned int order)
{
	unsigned int have = (__atomic_load_n(&page->flags, __ATOMIC_RELAXED) &
			     HETMEM_PGF_ORDER_MASK) >> HETMEM_PGF_ORDER_SHIFT;

	HETMEM_WARN(have != order, "__free_pages() order %u of a page of order %u",
		    order, have);
	put_page(page);
}

/**
 * __free_page() - drop the reference alloc_page() returned
 * @page: the page
 *
 * Context: May sleep briefly (the allocator lock).
 * Return: nothing.
 */
HETMEM_API void __free_page(struct page *page)
{
	put_page(page);
}

