/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem bench migrate
 *
 * Measures migration between system memory and device memory
 * (migrate_vma_setup() / migrate_vma_pages() / migrate_vma_finalize())
 * and the CPU fault that brings a device page back, against the bare
 * kernel mechanism beneath each, in the same run. The throughput figures
 * use a small driver written here: its own 512 MiB device pagemap
 * (memremap_pages(), a lazily populated memfd), a free list of device
 * pages and of PMD-sized device folios, page_free() and a
 * migrate_to_ram() that moves back exactly the faulting page (or folio).
 * It copies with memcpy() into page_address() of the destination, as a
 * device's DMA engine would. It prints:
 *
 * - migrate.to_dev_gbps_{4k,64k,2m,64m}, migrate.to_sys_gbps_{...}: a
 *   populated 64 MiB buffer (4 KiB pages) migrated to the device in
 *   chunks of the given size, then back in the same chunks (64m is one
 *   call over the whole buffer); memcpy.gbps_{...}: memcpy() of the same
 *   chunks between two populated buffers, alternating with them.
 * - migrate.gbps_64k, floor.gbps_64k, ratio.migrate_vs_floor_64k: the
 *   64 KiB round trip (bytes / (time out + time back)) against the bare
 *   mechanism hetmem is built on: two userfaultfds of this suite's own,
 *   the buffer registered MISSING|WP on one, a staging area registered WP
 *   on the other, UFFDIO_MOVE out + memcpy() to a memfd mapping +
 *   MADV_DONTNEED of the staging chunk, and back memcpy() + UFFDIO_MOVE.
 *   Goal: ratio >= 0.85.
 * - migrate.thp_roundtrip_gbps_2m, memcpy.roundtrip_gbps_2m,
 *   ratio.migrate_vs_memcpy_2m: a THP-backed, 2 MiB-aligned 64 MiB buffer
 *   (a fresh one per batch) migrated out and back 2 MiB at a time
 *   (MIGRATE_VMA_SELECT_COMPOUND) against two memcpy() calls per 2 MiB
 *   chunk between two THP-backed buffers. Goal: ratio >= 0.8.
 *   thp.huge_mib_before_migration / thp.huge_mib_after_round_trip: the
 *   AnonHugePages of the migrated buffer before and after (last batch).
 * - faultback.page_us, uffd.copy_roundtrip_us, ratio.faultback_vs_uffd:
 *   a pinned thread stores to each page of a 16 MiB buffer that lives on
 *   the device, timing each store (median per batch); the baseline is a
 *   bare handler thread blocked in poll() on a nonblocking userfaultfd
 *   (MISSING) answering each fault with UFFDIO_COPY of one page. Goal:
 *   ratio <= 1.2. uffd.sigbus_us: the same toucher with
 *   UFFD_FEATURE_SIGBUS and UFFDIO_COPY from a SIGBUS handler (a raw
 *   figure; kernel-mode accesses then fail with EFAULT instead of
 *   faulting).
 * - devmem.descriptor_bytes_per_page: sizeof(struct page) or hetmem's
 *   private memory growth per page over memremap_pages() (VmData),
 *   whichever is larger, plus this driver's bookkeeping per page. Goal:
 *   <= 64.
 * - migrate.rss_drop_ratio: RssAnon drop / bytes migrated for 64 MiB.
 *   Goal: >= 0.95.
 * - thp.to_dev_gbps_<N>pmd_{huge,nohuge}, thp.to_sys_gbps_...: the kernel
 *   hmm benchmark's table, buffers of 1/4 to 128 PMDs migrated in one
 *   call, with MADV_HUGEPAGE and with MADV_NOHUGEPAGE, a freshly
 *   populated buffer for every iteration (so that every cell starts from
 *   the same state); -d < 2: up to 8 PMDs.
 * - dmirror.to_dev_gbps_{64k,2m}, dmirror.to_sys_gbps_{...}: the
 *   reference device's MIGRATE_TO_DEV (which also copies the data out to
 *   cmd->ptr) and MIGRATE_TO_SYS commands in chunks, single-sided.
 *
 * Method, as in the other suites: the measuring thread is pinned to the
 * first allowed CPU; hetmem's monitor and the bare handler thread are
 * created from a thread pinned to the second one (they inherit it), so
 * that both handlers are in the same place; hetmem and its baseline
 * alternate batch by batch and
 * each ratio is the median of per-batch ratios. Data is checked after
 * every migration pass. A measurement that cannot run here prints a
 * "note:" line and is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/page.h>

#include "bench.h"
#include "bench-util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* UFFDIO_MOVE (Linux 6.8), absent from older headers. */
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1ULL << 16)
#endif
struct bm_uffdio_move {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t move;
};
#define BM_UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct bm_uffdio_move)

#define PG HETMEM_PAGE_SIZE
#define PMD HETMEM_PMD_SIZE
#define MIB (1UL << 20)
#define BUF_BYTES (64 * MIB)
#define BUF_PAGES (BUF_BYTES / PG)
#define FB_BYTES (16 * MIB)
#define FB_PAGES (FB_BYTES / PG)
#define THP_MAX_BYTES (256 * MIB)
#define THP_MAX_PAGES (THP_MAX_BYTES / PG)

static struct hetmem_mm_caps caps;
static double duration_s = 1.0;

/* ---- helpers ---- */

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A 2 MiB-aligned anonymous mapping of @len, with THP on or off. */
static char *map_aligned(size_t len, bool huge)
{
	char *raw = map_anon(len + PMD), *p;
	size_t head;

	if (!raw)
		return NULL;
	p = (char *)(((uintptr_t)raw + PMD - 1) & ~(uintptr_t)(PMD - 1));
	head = (size_t)(p - raw);
	if (head)
		munmap(raw, head);
	munmap(p + len, PMD - head);
	madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

static int populate(void *p, size_t len)
{
	return madvise(p, len, MADV_POPULATE_WRITE) ? -errno : 0;
}

/* "note: WHAT[: DETAIL]", for what was skipped or needs a caveat. */
static void note(const char *what, const char *detail)
{
	printf("note: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	fflush(stdout);
}

/* Word 1 of every page holds (tag << 32 | index). */
static void fill(char *p, size_t len, unsigned int tag)
{
	size_t i;

	for (i = 0; i < len / PG; i++)
		((uint64_t *)(p + i * PG))[1] = ((uint64_t)tag << 32) | i;
}

static int check(const char *p, size_t len, unsigned int tag,
		 const char *what)
{
	size_t i;

	for (i = 0; i < len / PG; i++) {
		uint64_t v = ((const uint64_t *)(p + i * PG))[1];

		if (v != (((uint64_t)tag << 32) | i)) {
			fprintf(stderr, "hetmem bench migrate: %s: page %zu holds %#llx\n",
				what, i, (unsigned long long)v);
			return -EPROTO;
		}
	}
	return 0;
}

static double gbps(size_t bytes, int64_t ns)
{
	return ns > 0 ? (double)bytes / (double)ns : 0;
}

/* A "Key:   N kB" line of a /proc/self file, in bytes; -1 if absent. */
static long long proc_kb(const char *file, const char *key)
{
	size_t klen = strlen(key);
	long long kb = -1;
	char line[256];
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			kb = atoll(line + klen + 1);
			break;
		}
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static void print_pair(const char *hkey, const char *bkey, const char *rkey,
		       double *h, double *b, double *r, unsigned int n)
{
	char key[96];
	double hm = bench_median(h, n), bm = bench_median(b, n);

	bench_print(hkey, hm);
	bench_print(bkey, bm);
	snprintf(key, sizeof(key), "%s_pairs", rkey);
	bench_print_int(key, n);
	snprintf(key, sizeof(key), "%s_of_medians", rkey);
	bench_print_ratio(key, bm > 0 ? hm / bm : 0);
	bench_print_ratio(rkey, bench_median(r, n));
}

/* ---- the benchmark's device driver ---- */

#define BD_BYTES (512 * MIB)
#define BD_PAGES (BD_BYTES / PG)
#define BD_BLOCKS (BD_PAGES / HPAGE_PMD_NR)

struct bench_dev {
	struct dev_pagemap pgmap;
	unsigned long base_pfn;
	pthread_mutex_t lock;
	uint32_t *free_pages;		/* stack of free base-page indices */
	uint32_t *free_blocks;		/* stack of free PMD block indices */
	bool *folio;			/* per block: handed out as one folio */
	unsigned long nfree, nblocks;
	unsigned long used;		/* device pages handed out */
	long long vmdata_growth;	/* VmData growth over memremap_pages() */
};

static struct bench_dev bd = { .lock = PTHREAD_MUTEX_INITIALIZER };
static char bd_owner;

static struct page *bd_page(unsigned long idx)
{
	return pfn_to_page(bd.base_pfn + idx);
}

/* Every device page is free again: start from whole blocks. */
static void bd_reset(void)
{
	unsigned long i;

	pthread_mutex_lock(&bd.lock);
	if (!bd.used) {
		bd.nfree = 0;
		bd.nblocks = BD_BLOCKS;
		for (i = 0; i < BD_BLOCKS; i++)
			bd.free_blocks[i] = (uint32_t)(BD_BLOCKS - 1 - i);
	}
	pthread_mutex_unlock(&bd.lock);
}

/*
 * Up to @n device pages into @pages under one hold of the lock, as a
 * driver hands out a run; how many (fewer when memory runs out).
 */
static unsigned long bd_alloc_pages(unsigned long n, struct page **pages)
{
	unsigned long k, b, i, idx[HPAGE_PMD_NR];

	if (n > HPAGE_PMD_NR)
		n = HPAGE_PMD_NR;
	pthread_mutex_lock(&bd.lock);
	if (bd.nfree < n && bd.nblocks) {
		/* Pages freed in address order come back out in that order. */
		b = bd.free_blocks[--bd.nblocks];
		memmove(bd.free_pages + HPAGE_PMD_NR, bd.free_pages, bd.nfree * sizeof(uint32_t));
		for (i = 0; i < HPAGE_PMD_NR; i++)
			bd.free_pages[i] = (uint32_t)(b * HPAGE_PMD_NR + i);
		bd.nfree += HPAGE_PMD_NR;
	}
	k = n < bd.nfree ? n : bd.nfree;
	bd.nfree -= k;
	for (i = 0; i < k; i++)
		idx[i] = bd.free_pages[bd.nfree + i];
	bd.used += k;
	pthread_mutex_unlock(&bd.lock);
	for (i = 0; i < k; i++) {
		pages[i] = bd_page(idx[i]);
		zone_device_page_init(pages[i]);
	}
	return k;
}

static struct page *bd_alloc_page(void)
{
	struct page *page;

	return bd_alloc_pages(1, &page) ? page : NULL;
}

static struct folio *bd_alloc_folio(void)
{
	struct folio *folio;
	unsigned long b;

	pthread_mutex_lock(&bd.lock);
	if (!bd.nblocks) {
		pthread_mutex_unlock(&bd.lock);
		return NULL;
	}
	b = bd.free_blocks[--bd.nblocks];
	bd.used += HPAGE_PMD_NR;
	bd.folio[b] = true;
	pthread_mutex_unlock(&bd.lock);
	folio = (struct folio *)bd_page(b * HPAGE_PMD_NR);
	zone_device_folio_init(folio, HPAGE_PMD_ORDER);
	return folio;
}

static void bd_page_free(struct page *page)
{
	unsigned long idx = page_to_pfn(page) - bd.base_pfn;
	bool large;

	/* page_free() gets the head of a folio already unmarked: ask the records. */
	pthread_mutex_lock(&bd.lock);
	large = !(idx % HPAGE_PMD_NR) && bd.folio[idx / HPAGE_PMD_NR];
	if (large) {
		bd.folio[idx / HPAGE_PMD_NR] = false;
		bd.free_blocks[bd.nblocks++] = (uint32_t)(idx / HPAGE_PMD_NR);
		bd.used -= HPAGE_PMD_NR;
	} else {
		bd.free_pages[bd.nfree++] = (uint32_t)idx;
		bd.used--;
	}
	pthread_mutex_unlock(&bd.lock);
}

/* Destination word for a copy: writable if the source was (or a hole). */
static unsigned long bd_dst(struct page *dpage, unsigned long src)
{
	unsigned long w = migrate_pfn(page_to_pfn(dpage));

	if ((src & MIGRATE_PFN_WRITE) || !migrate_pfn_to_page(src))
		w |= MIGRATE_PFN_WRITE;
	return w;
}

static void bd_copy_page(struct page *dpage, struct page *spage,
			 unsigned long n, size_t len)
{
	char *to = page_address(dpage);

	if (spage)
		memcpy(to, (char *)page_address(spage) + n * PG, len);
	else
		memset(to, 0, len);
}

/* A compound source, to one device folio or, failing that, 512 pages. */
static int bd_to_dev_compound(struct migrate_vma *m, unsigned long i)
{
	struct page *spage = migrate_pfn_to_page(m->src[i]);
	struct folio *folio = bd_alloc_folio();
	unsigned long j;

	if (folio) {
		bd_copy_page(&folio->page, spage, 0, PMD);
		m->dst[i] = bd_dst(&folio->page, m->src[i]) | MIGRATE_PFN_COMPOUND;
		return 0;
	}
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		struct page *dpage = bd_alloc_page();

		if (!dpage)
			return -ENOMEM;
		bd_copy_page(dpage, spage, j, PG);
		m->dst[i + j] = bd_dst(dpage, m->src[i]);
	}
	return 0;
}

/*
 * Base entries [i, i + n) that migrate, each to a device page of one run;
 * a stretch contiguous on both sides is one copy, as a driver's DMA is.
 */
static int bd_to_dev_run(struct migrate_vma *m, unsigned long i, unsigned long n)
{
	struct page *dpages[HPAGE_PMD_NR];
	unsigned long k, r, got = bd_alloc_pages(n, dpages);

	for (k = 0; k < got; k += r) {
		struct page *spage = migrate_pfn_to_page(m->src[i + k]);

		for (r = 1; k + r < got && spage &&
		     migrate_pfn_to_page(m->src[i + k + r]) == spage + r &&
		     dpages[k + r] == dpages[k] + r; r++)
			;
		if (spage)
			memcpy(page_address(dpages[k]), page_address(spage), r * PG);
		else
			memset(page_address(dpages[k]), 0, PG);
		for (unsigned long q = 0; q < r; q++)
			m->dst[i + k + q] = bd_dst(dpages[k + q], m->src[i + k + q]);
	}
	return got == n ? 0 : -ENOMEM;
}

static bool bd_base_entry(const struct migrate_vma *m, unsigned long i)
{
	return (m->src[i] & MIGRATE_PFN_MIGRATE) && !(m->src[i] & MIGRATE_PFN_COMPOUND);
}

static int bd_to_dev_copy(struct migrate_vma *m)
{
	unsigned long i = 0, n;
	int ret = 0;

	while (!ret && i < m->npages) {
		if (m->src[i] & MIGRATE_PFN_COMPOUND) {
			ret = (m->src[i] & MIGRATE_PFN_MIGRATE) ? bd_to_dev_compound(m, i) : 0;
			i += HPAGE_PMD_NR;
			continue;
		}
		for (n = 0; i + n < m->npages && n < HPAGE_PMD_NR && bd_base_entry(m, i + n); n++)
			;
		if (n)
			ret = bd_to_dev_run(m, i, n);
		i += n ? n : 1;
	}
	return ret;
}

/* A device folio back to a system THP, or page by page. */
static int bd_to_sys_compound(struct migrate_vma *m, unsigned long i,
			      struct page *spage)
{
	unsigned long addr = m->start + i * PG, j;
	struct folio *folio;
	struct page *dpage;

	folio = vma_alloc_folio(0, HPAGE_PMD_ORDER, m->vma, addr);
	if (folio) {
		folio_lock(folio);
		memcpy(page_address(&folio->page), page_address(spage), PMD);
		m->dst[i] = bd_dst(&folio->page, m->src[i]) | MIGRATE_PFN_COMPOUND;
		return 0;
	}
	for (j = 0; j < HPAGE_PMD_NR; j++) {
		dpage = alloc_page_vma(0, m->vma, addr + j * PG);
		if (!dpage)
			return -ENOMEM;
		lock_page(dpage);
		memcpy(page_address(dpage), (char *)page_address(spage) + j * PG, PG);
		m->dst[i + j] = bd_dst(dpage, m->src[i]);
	}
	return 0;
}

static int bd_to_sys_copy(struct migrate_vma *m)
{
	struct page *spage, *dpage;
	unsigned long i, s;
	int ret;

	for (i = 0; i < m->npages; i++) {
		s = m->src[i];
		spage = migrate_pfn_to_page(s);
		if (!spage || !(s & MIGRATE_PFN_MIGRATE))
			continue;
		if (s & MIGRATE_PFN_COMPOUND) {
			ret = bd_to_sys_compound(m, i, spage);
			if (ret)
				return ret;
			i += HPAGE_PMD_NR - 1;
			continue;
		}
		dpage = alloc_page_vma(0, m->vma, m->start + i * PG);
		if (!dpage)
			return -ENOMEM;
		lock_page(dpage);
		memcpy(page_address(dpage), page_address(spage), PG);
		m->dst[i] = bd_dst(dpage, s);
	}
	return 0;
}

/* Pages that really moved, after migrate_vma_pages(). */
static unsigned long bd_moved(const struct migrate_vma *m)
{
	unsigned long i, n = 0;

	for (i = 0; i < m->npages; i++)
		if ((m->src[i] & MIGRATE_PFN_MIGRATE) && m->dst[i])
			n += (m->dst[i] & MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
	return n;
}

/* The three steps; the caller holds the mmap lock. Pages moved or -errno. */
static long bd_migrate_locked(struct migrate_vma *m, bool to_dev)
{
	unsigned long moved;
	int ret;

	ret = migrate_vma_setup(m);
	if (ret)
		return ret;
	if (!m->cpages)
		return 0;
	ret = to_dev ? bd_to_dev_copy(m) : bd_to_sys_copy(m);
	migrate_vma_pages(m);
	moved = bd_moved(m);
	migrate_vma_finalize(m);
	return ret ? ret : (long)moved;
}

static unsigned long bd_src[THP_MAX_PAGES], bd_dst_words[THP_MAX_PAGES];

/* Migrate [start, start + len) to the device or back; pages moved. */
static long bd_migrate(char *start, size_t len, bool to_dev)
{
	struct mm_struct *mm = hetmem_current_mm();
	struct migrate_vma m;
	long ret;

	memset(&m, 0, sizeof(m));
	m.src = bd_src;
	m.dst = bd_dst_words;
	m.start = (uintptr_t)start;
	m.end = (uintptr_t)start + len;
	m.pgmap_owner = &bd_owner;
	m.flags = (to_dev ? MIGRATE_VMA_SELECT_SYSTEM :
		   MIGRATE_VMA_SELECT_DEVICE_PRIVATE) | MIGRATE_VMA_SELECT_COMPOUND;
	memset(bd_dst_words, 0, len / PG * sizeof(bd_dst_words[0]));
	mmap_read_lock(mm);
	m.vma = vma_lookup(mm, m.start);
	ret = m.vma ? bd_migrate_locked(&m, to_dev) : -EFAULT;
	mmap_read_unlock(mm);
	return ret;
}

/* A whole buffer in chunks; -EPROTO if a page did not move. */
static int bd_migrate_chunks(char *buf, size_t len, size_t chunk, bool to_dev)
{
	size_t off;
	long n;

	for (off = 0; off < len; off += chunk) {
		n = bd_migrate(buf + off, chunk, to_dev);
		if (n < 0)
			return (int)n;
		if ((size_t)n != chunk / PG) {
			fprintf(stderr, "hetmem bench migrate: %s: %ld of %zu pages moved at +%zu\n",
				to_dev ? "to device" : "to system", n, chunk / PG, off);
			return -EPROTO;
		}
	}
	return 0;
}

/* The CPU touched a device page: bring back exactly that page (folio). */
static vm_fault_t bd_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long src[HPAGE_PMD_NR], dst[HPAGE_PMD_NR];
	unsigned int order = folio_order(page_folio(vmf->page));
	unsigned long size = PG << order;
	struct migrate_vma m;
	long ret;

	memset(&m, 0, sizeof(m));
	memset(dst, 0, sizeof(dst));
	m.vma = vmf->vma;
	m.src = src;
	m.dst = dst;
	m.start = vmf->address & ~(size - 1);
	m.end = m.start + size;
	m.pgmap_owner = &bd_owner;
	m.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND;
	m.fault_page = vmf->page;
	if (m.start < vmf->vma->vm_start || m.end > vmf->vma->vm_end) {
		m.start = vmf->address;
		m.end = vmf->address + PG;
	}
	ret = bd_migrate_locked(&m, false);
	if (ret == -ENOMEM)
		return VM_FAULT_OOM;
	return ret < 0 ? VM_FAULT_SIGBUS : 0;
}

static const struct dev_pagemap_ops bd_ops = {
	.page_free = bd_page_free,
	.migrate_to_ram = bd_migrate_to_ram,
};

static void bd_destroy(void)
{
	if (bd.base_pfn)
		memunmap_pages(&bd.pgmap);
	free(bd.free_pages);
	free(bd.free_blocks);
	free(bd.folio);
	bd.free_pages = NULL;
	bd.free_blocks = NULL;
	bd.folio = NULL;
	bd.base_pfn = 0;
}

static int bd_create(void)
{
	long long before;
	void *base;

	bd.free_pages = malloc(BD_PAGES * sizeof(uint32_t));
	bd.free_blocks = malloc(BD_BLOCKS * sizeof(uint32_t));
	bd.folio = calloc(BD_BLOCKS, sizeof(bool));
	if (!bd.free_pages || !bd.free_blocks || !bd.folio) {
		bd_destroy();
		return -ENOMEM;
	}
	memset(&bd.pgmap, 0, sizeof(bd.pgmap));
	bd.pgmap.type = MEMORY_DEVICE_PRIVATE;
	bd.pgmap.ops = &bd_ops;
	bd.pgmap.owner = &bd_owner;
	bd.pgmap.range.end = BD_BYTES - 1;
	bd.pgmap.nr_range = 1;
	before = proc_kb("/proc/self/status", "VmData");
	base = memremap_pages(&bd.pgmap, -1);
	if (hetmem_is_err_ptr(base) || !base) {
		bd_destroy();
		return base ? hetmem_ptr_err(base) : -ENOMEM;
	}
	bd.vmdata_growth = proc_kb("/proc/self/status", "VmData") - before;
	bd.base_pfn = bd.pgmap.range.start >> HETMEM_PAGE_SHIFT;
	bd.used = 0;
	bd_reset();
	return 0;
}

/*
 * The device pages this run left in use (a leak if not 0). A fault
 * served on the monitor thread may release its device page just after
 * the faulting thread resumed, so give it a moment.
 */
static int bd_check_idle(const char *what)
{
	int64_t deadline = bench_now_ns() + 100 * 1000000LL;

	while (__atomic_load_n(&bd.used, __ATOMIC_ACQUIRE) &&
	       bench_now_ns() < deadline)
		sched_yield();
	if (!__atomic_load_n(&bd.used, __ATOMIC_ACQUIRE))
		return 0;
	fprintf(stderr, "hetmem bench migrate: %s: %lu device pages still in use\n",
		what, bd.used);
	return -EPROTO;
}

/* ---- chunked throughput, memcpy, and the 64 KiB floor ---- */

struct floor_ctx {
	int uffd_a;	/* the buffer: MISSING|WP */
	int uffd_s;	/* the staging area: WP, no events */
	char *a, *s, *d;
	int memfd;
};

static int uffd_open(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int uffd_register(int fd, void *p, size_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

static void floor_destroy(struct floor_ctx *f)
{
	if (f->uffd_a >= 0)
		close(f->uffd_a);
	if (f->uffd_s >= 0)
		close(f->uffd_s);
	if (f->a)
		munmap(f->a, BUF_BYTES);
	if (f->s)
		munmap(f->s, BUF_BYTES);
	if (f->d)
		munmap(f->d, BUF_BYTES);
	if (f->memfd >= 0)
		close(f->memfd);
}

static int floor_map_device(struct floor_ctx *f)
{
	void *d;

	f->memfd = memfd_create("bench-floor", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, BUF_BYTES))
		return -errno;
	d = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (d == MAP_FAILED)
		return -errno;
	f->d = d;
	return populate(f->d, BUF_BYTES);
}

static int floor_create(struct floor_ctx *f)
{
	int ret;

	memset(f, 0, sizeof(*f));
	f->uffd_a = f->uffd_s = f->memfd = -1;
	f->a = map_aligned(BUF_BYTES, false);
	f->s = map_aligned(BUF_BYTES, false);
	if (!f->a || !f->s)
		return -ENOMEM;
	ret = floor_map_device(f);
	if (!ret)
		ret = populate(f->a, BUF_BYTES);
	if (ret)
		return ret;
	fill(f->a, BUF_BYTES, 3);
	f->uffd_a = uffd_open(UFFD_FEATURE_MOVE);
	if (f->uffd_a < 0)
		return f->uffd_a;
	f->uffd_s = uffd_open(UFFD_FEATURE_MOVE);
	if (f->uffd_s < 0)
		return f->uffd_s;
	ret = uffd_register(f->uffd_a, f->a, BUF_BYTES,
			    UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
	if (!ret)
		ret = uffd_register(f->uffd_s, f->s, BUF_BYTES,
				    UFFDIO_REGISTER_MODE_WP);
	return ret;
}

static int uffd_move(int fd, char *dst, char *src, size_t len)
{
	struct bm_uffdio_move mv = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
	};

	if (ioctl(fd, BM_UFFDIO_MOVE, &mv))
		return -errno;
	return mv.move == (int64_t)len ? 0 : -EPROTO;
}

/* One 64 KiB round trip pass over the buffer; bytes per ns. */
static int floor_pass(struct floor_ctx *f, size_t chunk, double *rate)
{
	int64_t t0 = bench_now_ns();
	size_t off;
	int ret;

	for (off = 0; off < BUF_BYTES; off += chunk) {
		ret = uffd_move(f->uffd_s, f->s + off, f->a + off, chunk);
		if (ret)
			return ret;
		memcpy(f->d + off, f->s + off, chunk);
		madvise(f->s + off, chunk, MADV_DONTNEED);
	}
	for (off = 0; off < BUF_BYTES; off += chunk) {
		memcpy(f->s + off, f->d + off, chunk);
		ret = uffd_move(f->uffd_a, f->a + off, f->s + off, chunk);
		if (ret)
			return ret;
	}
	*rate = gbps(BUF_BYTES, bench_now_ns() - t0);
	return check(f->a, BUF_BYTES, 3, "floor round trip");
}

static void memcpy_pass(char *to, const char *from, size_t chunk, double *rate)
{
	int64_t t0 = bench_now_ns();
	size_t off;

	for (off = 0; off < BUF_BYTES; off += chunk) {
		memcpy(to + off, from + off, chunk);
		__asm__ __volatile__("" : : "r"(to) : "memory");
	}
	*rate = gbps(BUF_BYTES, bench_now_ns() - t0);
}

struct chunk_ctx {
	char *buf, *cpy;
	struct floor_ctx floor;
	bool has_floor;
};

/* Out and back in @chunk pieces; both rates, data checked. */
static int migrate_pass(char *buf, size_t chunk, double *out, double *back)
{
	int64_t t0, t1, t2;
	int ret;

	t0 = bench_now_ns();
	ret = bd_migrate_chunks(buf, BUF_BYTES, chunk, true);
	t1 = bench_now_ns();
	if (!ret)
		ret = bd_migrate_chunks(buf, BUF_BYTES, chunk, false);
	t2 = bench_now_ns();
	if (ret)
		return ret;
	*out = gbps(BUF_BYTES, t1 - t0);
	*back = gbps(BUF_BYTES, t2 - t1);
	return check(buf, BUF_BYTES, 1, "migration round trip");
}

static const char *const chunk_names[] = { "4k", "64k", "2m", "64m" };
static const size_t chunk_sizes[] = { 4096, 64 << 10, 2 << 20, 64 << 20 };

struct chunk_samples {
	double out[BENCH_MAX_BATCHES], back[BENCH_MAX_BATCHES];
	double mc[BENCH_MAX_BATCHES], rt[BENCH_MAX_BATCHES];
	double fl[BENCH_MAX_BATCHES], r[BENCH_MAX_BATCHES];
};

static struct chunk_samples cs;

static int chunk_batch(struct chunk_ctx *c, size_t chunk, bool floor,
		       unsigned int n)
{
	int ret;

	memcpy_pass(c->cpy, c->buf, chunk, &cs.mc[n]);
	ret = migrate_pass(c->buf, chunk, &cs.out[n], &cs.back[n]);
	if (ret || !floor)
		return ret;
	cs.rt[n] = 1.0 / (1.0 / cs.out[n] + 1.0 / cs.back[n]);
	ret = floor_pass(&c->floor, chunk, &cs.fl[n]);
	if (!ret)
		cs.r[n] = cs.rt[n] / cs.fl[n];
	return ret;
}

static void chunk_print(unsigned int k, bool floor, unsigned int n)
{
	char key[64];

	snprintf(key, sizeof(key), "migrate.to_dev_gbps_%s", chunk_names[k]);
	bench_print(key, bench_median(cs.out, n));
	snprintf(key, sizeof(key), "migrate.to_sys_gbps_%s", chunk_names[k]);
	bench_print(key, bench_median(cs.back, n));
	snprintf(key, sizeof(key), "memcpy.gbps_%s", chunk_names[k]);
	bench_print(key, bench_median(cs.mc, n));
	if (!floor)
		return;
	print_pair("migrate.gbps_64k", "floor.gbps_64k", "ratio.migrate_vs_floor_64k",
		   cs.rt, cs.fl, cs.r, n);
	bench_print_goal_min("ratio.migrate_vs_floor_64k", bench_median(cs.r, n), 0.85);
}

static int chunk_run(struct chunk_ctx *c, unsigned int k, double share)
{
	bool floor = c->has_floor && chunk_sizes[k] == (64 << 10);
	struct bench_slice slice;
	unsigned int n = 0;
	int ret = 0;

	bench_slice_init(&slice, share, k ? 2 : 1, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = chunk_batch(c, chunk_sizes[k], floor, n);
		if (!ret)
			n++;
	}
	if (ret)
		return ret;
	chunk_print(k, floor, n);
	return bd_check_idle("chunks");
}

static int measure_chunks(double share)
{
	static const double shares[] = { 0.25, 0.35, 0.2, 0.2 };
	struct chunk_ctx c;
	unsigned int k;
	int ret;

	memset(&c, 0, sizeof(c));
	c.buf = map_aligned(BUF_BYTES, false);
	c.cpy = map_aligned(BUF_BYTES, false);
	ret = c.buf && c.cpy ? populate(c.buf, BUF_BYTES) : -ENOMEM;
	if (!ret)
		ret = populate(c.cpy, BUF_BYTES);
	if (!ret && caps.uffd_move) {
		ret = floor_create(&c.floor);
		c.has_floor = !ret;
		if (ret)
			note("floor.gbps_64k skipped", strerror(-ret));
		ret = 0;
	} else if (!ret) {
		note("floor.gbps_64k skipped", "no UFFDIO_MOVE");
	}
	if (!ret)
		fill(c.buf, BUF_BYTES, 1);
	bench_pin_self(0);
	for (k = 0; !ret && k < 4; k++) {
		bd_reset();
		ret = chunk_run(&c, k, share * shares[k]);
	}
	bench_unpin_self();
	floor_destroy(&c.floor);
	if (c.buf)
		munmap(c.buf, BUF_BYTES);
	if (c.cpy)
		munmap(c.cpy, BUF_BYTES);
	return ret;
}

/* ---- THP round trip in 2 MiB chunks vs memcpy ---- */

/* Huge pages backing [p, p + len), in MiB (from /proc/self/smaps). */
static long long thp_mib_in(const char *p, size_t len)
{
	unsigned long start = 0, end = 0, s, e, want = (uintptr_t)p;
	long long kb = 0, got = 0;
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			start = s;
			end = e;
			continue;
		}
		if (!strncmp(line, "AnonHugePages:", 14) && start < want + len &&
		    end > want && sscanf(line + 14, "%lld", &kb) == 1)
			got += kb;
	}
	fclose(f);
	return got / 1024;
}

/* A fresh THP-backed 64 MiB buffer: a THP does not come back as one. */
static char *thp_fresh(int *ret)
{
	char *p = map_aligned(BUF_BYTES, true);

	*ret = p ? populate(p, BUF_BYTES) : -ENOMEM;
	if (!*ret)
		fill(p, BUF_BYTES, 4);
	return p;
}

/* Out and back per 2 MiB chunk over a fresh THP buffer; checked. */
static int thp_rt_pass(double *rate, long long *huge_mib)
{
	int64_t t0;
	size_t off;
	int ret;
	char *buf = thp_fresh(&ret);

	if (!ret)
		*huge_mib = thp_mib_in(buf, BUF_BYTES);
	t0 = bench_now_ns();
	for (off = 0; !ret && off < BUF_BYTES; off += PMD) {
		ret = bd_migrate_chunks(buf + off, PMD, PMD, true);
		if (!ret)
			ret = bd_migrate_chunks(buf + off, PMD, PMD, false);
	}
	*rate = gbps(BUF_BYTES, bench_now_ns() - t0);
	if (!ret)
		ret = check(buf, BUF_BYTES, 4, "THP round trip");
	if (!ret)
		huge_mib[1] = thp_mib_in(buf, BUF_BYTES);
	if (buf)
		munmap(buf, BUF_BYTES);
	return ret;
}

static void memcpy_rt_pass(char *a, char *b, double *rate)
{
	int64_t t0 = bench_now_ns();
	size_t off;

	for (off = 0; off < BUF_BYTES; off += PMD) {
		memcpy(b + off, a + off, PMD);
		memcpy(a + off, b + off, PMD);
		__asm__ __volatile__("" : : "r"(a), "r"(b) : "memory");
	}
	*rate = gbps(BUF_BYTES, bench_now_ns() - t0);
}

static int thp_rt_run(char *a, char *b, double share)
{
	long long huge[2] = { 0, 0 };
	struct bench_slice slice;
	unsigned int n = 0;
	int ret = 0;

	bench_slice_init(&slice, share, 2, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		if (n & 1) {
			memcpy_rt_pass(a, b, &cs.mc[n]);
			ret = thp_rt_pass(&cs.rt[n], huge);
		} else {
			ret = thp_rt_pass(&cs.rt[n], huge);
			memcpy_rt_pass(a, b, &cs.mc[n]);
		}
		if (!ret) {
			cs.r[n] = cs.rt[n] / cs.mc[n];
			n++;
		}
	}
	if (ret)
		return ret;
	bench_print_int("thp.huge_mib_before_migration", huge[0]);
	bench_print_int("thp.huge_mib_after_round_trip", huge[1]);
	bench_print_int("thp.memcpy_huge_mib", thp_mib_in(a, BUF_BYTES) + thp_mib_in(b, BUF_BYTES));
	print_pair("migrate.thp_roundtrip_gbps_2m", "memcpy.roundtrip_gbps_2m",
		   "ratio.migrate_vs_memcpy_2m", cs.rt, cs.mc, cs.r, n);
	bench_print_goal_min("ratio.migrate_vs_memcpy_2m", bench_median(cs.r, n), 0.8);
	return bd_check_idle("THP round trip");
}

static int measure_thp_ratio(double share)
{
	int ret, ret_b;
	char *a = thp_fresh(&ret), *b = thp_fresh(&ret_b);

	if (!ret)
		ret = ret_b;
	if (!ret) {
		bd_reset();
		bench_pin_self(0);
		ret = thp_rt_run(a, b, share);
		bench_unpin_self();
	}
	if (a)
		munmap(a, BUF_BYTES);
	if (b)
		munmap(b, BUF_BYTES);
	return ret;
}

/* ---- CPU fault-back latency ---- */

static double lat[FB_PAGES];
static double fb_h[BENCH_MAX_BATCHES], fb_b[BENCH_MAX_BATCHES];
static double fb_r[BENCH_MAX_BATCHES];

/* Store to each page in turn; median microseconds per store. */
static double touch_pages(char *p, size_t npages)
{
	size_t i;

	for (i = 0; i < npages; i++) {
		volatile uint64_t *w = (volatile uint64_t *)(p + i * PG);
		int64_t t0 = bench_now_ns();

		w[0] = i;
		lat[i] = (double)(bench_now_ns() - t0) / 1e3;
	}
	return bench_median(lat, npages);
}

static int fb_hetmem_batch(char *buf, double *us)
{
	int ret = bd_migrate_chunks(buf, FB_BYTES, FB_BYTES, true);

	if (ret)
		return ret;
	*us = touch_pages(buf, FB_PAGES);
	ret = check(buf, FB_BYTES, 5, "fault-back");
	return ret ? ret : bd_check_idle("fault-back");
}

struct bare_handler {
	int uffd, efd;
	char *region, *src;
	pthread_t thread;
	bool running;
	int error;
};

static int bare_serve(struct bare_handler *h, const struct uffd_msg *msg)
{
	unsigned long addr = msg->arg.pagefault.address & HETMEM_PAGE_MASK;
	struct uffdio_copy cp = {
		.dst = addr,
		.src = (uintptr_t)h->src + (addr - (uintptr_t)h->region),
		.len = PG,
	};

	if (msg->event != UFFD_EVENT_PAGEFAULT)
		return 0;
	if (ioctl(h->uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
		return -errno;
	return 0;
}

static void *bare_main(void *arg)
{
	struct bare_handler *h = arg;
	struct pollfd pfd[2] = {
		{ .fd = h->uffd, .events = POLLIN },
		{ .fd = h->efd, .events = POLLIN },
	};
	struct uffd_msg msg[16];
	ssize_t n, i;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		n = read(h->uffd, msg, sizeof(msg));
		if (n < 0)
			continue;
		for (i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			if (bare_serve(h, &msg[i]))
				h->error = -EIO;
	}
	return NULL;
}

static void bare_stop(struct bare_handler *h)
{
	uint64_t one = 1;

	if (h->running) {
		if (write(h->efd, &one, sizeof(one)) < 0)
			perror("hetmem bench migrate: eventfd");
		pthread_join(h->thread, NULL);
	}
	if (h->uffd >= 0)
		close(h->uffd);
	if (h->efd >= 0)
		close(h->efd);
	if (h->region)
		munmap(h->region, FB_BYTES);
}

static int bare_start(struct bare_handler *h, char *src)
{
	int ret;

	memset(h, 0, sizeof(*h));
	h->src = src;
	h->efd = eventfd(0, EFD_CLOEXEC);
	h->uffd = uffd_open(0);
	h->region = map_aligned(FB_BYTES, false);
	if (h->efd < 0 || h->uffd < 0 || !h->region)
		return h->uffd < 0 ? h->uffd : -ENOMEM;
	ret = uffd_register(h->uffd, h->region, FB_BYTES,
			    UFFDIO_REGISTER_MODE_MISSING);
	if (ret)
		return ret;
	ret = -pthread_create(&h->thread, NULL, bare_main, h);
	h->running = !ret;
	return ret;
}

static int fb_bare_batch(struct bare_handler *h, double *us)
{
	madvise(h->region, FB_BYTES, MADV_DONTNEED);
	*us = touch_pages(h->region, FB_PAGES);
	if (h->error)
		return h->error;
	return check(h->region, FB_BYTES, 5, "bare uffd");
}

/* SIGBUS mode: the faulting thread installs the page itself. */
static int sig_uffd = -1;
static char *sig_region, *sig_src;

static void sig_handler(int sig, siginfo_t *si, void *uc)
{
	unsigned long addr = (uintptr_t)si->si_addr & HETMEM_PAGE_MASK;
	struct uffdio_copy cp = {
		.dst = addr,
		.src = (uintptr_t)sig_src + (addr - (uintptr_t)sig_region),
		.len = PG,
	};

	(void)sig;
	(void)uc;
	if (ioctl(sig_uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
		abort();
}

static int fb_sigbus(char *src)
{
	struct sigaction sa, old;
	double us;
	int ret;

	sig_src = src;
	sig_region = map_aligned(FB_BYTES, false);
	sig_uffd = uffd_open(UFFD_FEATURE_SIGBUS);
	if (!sig_region || sig_uffd < 0) {
		ret = sig_uffd < 0 ? sig_uffd : -ENOMEM;
		goto out;
	}
	ret = uffd_register(sig_uffd, sig_region, FB_BYTES,
			    UFFDIO_REGISTER_MODE_MISSING);
	if (ret)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sig_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, &old);
	us = touch_pages(sig_region, FB_PAGES);
	sigaction(SIGBUS, &old, NULL);
	ret = check(sig_region, FB_BYTES, 5, "SIGBUS uffd");
	if (!ret) {
		bench_print("uffd.sigbus_us", us);
		note("uffd.sigbus_us is a raw arrangement: with UFFD_FEATURE_SIGBUS "
		     "kernel-mode accesses to a missing page fail with EFAULT instead of faulting", NULL);
	}
out:
	if (sig_uffd >= 0)
		close(sig_uffd);
	if (sig_region)
		munmap(sig_region, FB_BYTES);
	sig_uffd = -1;
	return ret;
}

static int fb_run(char *buf, struct bare_handler *h, double share)
{
	struct bench_slice slice;
	unsigned int n = 0;
	int ret = 0;

	bench_slice_init(&slice, share, 1, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		if (n & 1) {
			ret = fb_bare_batch(h, &fb_b[n]);
			if (!ret)
				ret = fb_hetmem_batch(buf, &fb_h[n]);
		} else {
			ret = fb_hetmem_batch(buf, &fb_h[n]);
			if (!ret)
				ret = fb_bare_batch(h, &fb_b[n]);
		}
		if (!ret) {
			fb_r[n] = fb_h[n] / fb_b[n];
			n++;
		}
	}
	if (ret)
		return ret;
	print_pair("faultback.page_us", "uffd.copy_roundtrip_us",
		   "ratio.faultback_vs_uffd", fb_h, fb_b, fb_r, n);
	bench_print_goal("ratio.faultback_vs_uffd", bench_median(fb_r, n), 1.2);
	note("fault-back placement: toucher on the first allowed CPU, hetmem's "
	     "monitor and the bare handler created on the second", NULL);
	note("faultback.page_us_spin and uffd.copy_roundtrip_us_spin skipped: "
	     "hetmem has no spinning-monitor option (<hetmem/mm/mm.h>)", NULL);
	return 0;
}

static int measure_faultback(double share)
{
	char *buf = map_aligned(FB_BYTES, false), *src = map_anon(FB_BYTES);
	struct bare_handler h;
	int ret;

	memset(&h, 0, sizeof(h));
	h.uffd = h.efd = -1;
	ret = buf && src ? populate(buf, FB_BYTES) : -ENOMEM;
	if (ret)
		goto out;
	fill(buf, FB_BYTES, 5);
	fill(src, FB_BYTES, 5);
	bench_pin_self(1);
	ret = bare_start(&h, src);
	bench_unpin_self();
	if (ret) {
		note("fault-back measurement skipped: bare userfaultfd", strerror(-ret));
		ret = 0;
		goto out;
	}
	bd_reset();
	bench_pin_self(0);
	ret = fb_run(buf, &h, share * 0.9);
	if (!ret) {
		ret = fb_sigbus(src);
		if (ret)
			note("uffd.sigbus_us skipped", strerror(-ret));
		ret = 0;
	}
	bench_unpin_self();
out:
	bare_stop(&h);
	if (buf)
		munmap(buf, FB_BYTES);
	if (src)
		munmap(src, FB_BYTES);
	return ret;
}

/* ---- RSS drop and descriptor size ---- */

static int measure_rss(double share)
{
	char *buf = map_aligned(BUF_BYTES, false);
	long long before, after;
	double per_page;
	int ret;

	(void)share;
	per_page = (double)bd.vmdata_growth / (double)BD_PAGES;
	if (per_page < (double)sizeof(struct page))
		per_page = (double)sizeof(struct page);
	per_page += (double)(BD_PAGES + BD_BLOCKS) * sizeof(uint32_t) / BD_PAGES;
	bench_print_int("devmem.struct_page_bytes", (long long)sizeof(struct page));
	bench_print("devmem.descriptor_bytes_per_page", per_page);
	bench_print_goal("devmem.descriptor_bytes_per_page", per_page, 64);
	ret = buf ? populate(buf, BUF_BYTES) : -ENOMEM;
	if (ret)
		goto out;
	fill(buf, BUF_BYTES, 6);
	bd_reset();
	before = proc_kb("/proc/self/status", "RssAnon");
	ret = bd_migrate_chunks(buf, BUF_BYTES, BUF_BYTES, true);
	after = proc_kb("/proc/self/status", "RssAnon");
	if (!ret) {
		double r = (double)(before - after) / (double)BUF_BYTES;

		bench_print_ratio("migrate.rss_drop_ratio", r);
		bench_print_goal_min("migrate.rss_drop_ratio", r, 0.95);
		ret = bd_migrate_chunks(buf, BUF_BYTES, BUF_BYTES, false);
	}
	if (!ret)
		ret = check(buf, BUF_BYTES, 6, "RSS round trip");
	if (!ret)
		ret = bd_check_idle("RSS");
out:
	if (buf)
		munmap(buf, BUF_BYTES);
	return ret;
}

/* ---- the THP table ---- */

struct thp_row {
	const char *name;
	size_t bytes;
};

static const struct thp_row thp_rows[] = {
	{ "1_4pmd", PMD / 4 }, { "1_2pmd", PMD / 2 }, { "1pmd", PMD },
	{ "2pmd", 2 * PMD }, { "4pmd", 4 * PMD }, { "8pmd", 8 * PMD },
	{ "16pmd", 16 * PMD }, { "32pmd", 32 * PMD }, { "64pmd", 64 * PMD },
	{ "128pmd", 128 * PMD },
};

/* A fresh populated buffer for one cell iteration (THP needs a fresh one). */
static char *thp_buffer(const struct thp_row *row, bool huge, int *ret)
{
	char *p = map_aligned(row->bytes, huge);

	*ret = p ? populate(p, row->bytes) : -ENOMEM;
	if (!*ret)
		fill(p, row->bytes, 7);
	return p;
}

/* One iteration: out, back, data checked; both rates. */
static int thp_iteration(const struct thp_row *row, bool huge, double *out,
			 double *back)
{
	int64_t t0, t1, t2;
	int ret;
	char *p = thp_buffer(row, huge, &ret);

	if (!ret) {
		t0 = bench_now_ns();
		ret = bd_migrate_chunks(p, row->bytes, row->bytes, true);
		t1 = bench_now_ns();
		if (!ret)
			ret = bd_migrate_chunks(p, row->bytes, row->bytes, false);
		t2 = bench_now_ns();
		*out = gbps(row->bytes, t1 - t0);
		*back = gbps(row->bytes, t2 - t1);
	}
	if (p && check(p, row->bytes, 7, "THP table"))
		ret = -EPROTO;	/* reported even after a failed migration */
	if (p)
		munmap(p, row->bytes);
	return ret;
}

static int thp_cell(const struct thp_row *row, bool huge, double share)
{
	const char *kind = huge ? "huge" : "nohuge";
	double out[64], back[64];
	struct bench_slice slice;
	unsigned int n = 0;
	char key[96];
	int ret = 0;

	bench_slice_init(&slice, share, 1, 64);
	while (!ret && bench_slice_next(&slice)) {
		ret = thp_iteration(row, huge, &out[n], &back[n]);
		n += !ret;
	}
	if (ret)
		return ret;
	snprintf(key, sizeof(key), "thp.to_dev_gbps_%s_%s", row->name, kind);
	bench_print(key, bench_median(out, n));
	snprintf(key, sizeof(key), "thp.to_sys_gbps_%s_%s", row->name, kind);
	bench_print(key, bench_median(back, n));
	return bd_check_idle("THP table");
}

static int measure_thp_table(double share)
{
	size_t rows = sizeof(thp_rows) / sizeof(thp_rows[0]), i;
	int ret = 0;

	if (duration_s < 2)
		rows = 6;	/* up to 8 PMDs for the smoke run */
	bench_pin_self(0);
	for (i = 0; !ret && i < rows; i++) {
		bd_reset();
		ret = thp_cell(&thp_rows[i], true, share / (double)(2 * rows));
		if (!ret)
			ret = thp_cell(&thp_rows[i], false, share / (double)(2 * rows));
	}
	bench_unpin_self();
	if (!ret && rows < sizeof(thp_rows) / sizeof(thp_rows[0]))
		note("THP table limited to 8 PMDs (-d below 2)", NULL);
	return ret;
}

/* ---- the reference device's commands ---- */

static int dmirror_pass(struct dmirror *mirror, char *buf, char *out,
			size_t chunk, unsigned long req, double *rate)
{
	struct hmm_dmirror_cmd cmd;
	int64_t t0 = bench_now_ns();
	size_t off;
	int ret;

	for (off = 0; off < BUF_BYTES; off += chunk) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = (uintptr_t)buf + off;
		cmd.ptr = (uintptr_t)out + off;
		cmd.npages = chunk / PG;
		ret = hetmem_dmirror_cmd(mirror, req, &cmd);
		if (ret)
			return ret;
		if (cmd.cpages != chunk / PG)
			return -EPROTO;
	}
	*rate = gbps(BUF_BYTES, bench_now_ns() - t0);
	return 0;
}

static int dmirror_run(struct dmirror *mirror, char *buf, char *out,
		       unsigned int k, double share)
{
	struct bench_slice slice;
	unsigned int n = 0;
	char key[64];
	int ret = 0;

	bench_slice_init(&slice, share, 1, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = dmirror_pass(mirror, buf, out, chunk_sizes[k],
				   HMM_DMIRROR_MIGRATE_TO_DEV, &cs.out[n]);
		if (!ret)
			ret = dmirror_pass(mirror, buf, out, chunk_sizes[k],
					   HMM_DMIRROR_MIGRATE_TO_SYS, &cs.back[n]);
		if (!ret)
			ret = check(buf, BUF_BYTES, 8, "dmirror round trip");
		if (!ret)
			n++;
	}
	if (ret)
		return ret;
	snprintf(key, sizeof(key), "dmirror.to_dev_gbps_%s", chunk_names[k]);
	bench_print(key, bench_median(cs.out, n));
	snprintf(key, sizeof(key), "dmirror.to_sys_gbps_%s", chunk_names[k]);
	bench_print(key, bench_median(cs.back, n));
	return 0;
}

static int measure_dmirror(double share)
{
	char *buf = map_aligned(BUF_BYTES, false), *out = map_anon(BUF_BYTES);
	struct dmirror *mirror = NULL;
	int ret = buf && out ? populate(buf, BUF_BYTES) : -ENOMEM;

	if (!ret)
		ret = populate(out, BUF_BYTES);
	if (!ret)
		ret = hetmem_dmirror_open(0, &mirror);
	if (!ret) {
		fill(buf, BUF_BYTES, 8);
		bench_pin_self(0);
		ret = dmirror_run(mirror, buf, out, 1, share / 2);
		if (!ret)
			ret = dmirror_run(mirror, buf, out, 2, share / 2);
		bench_unpin_self();
	}
	if (ret) {
		note("dmirror measurements skipped", strerror(-ret));
		ret = 0;
	}
	if (mirror)
		hetmem_dmirror_close(mirror);
	if (buf)
		munmap(buf, BUF_BYTES);
	if (out)
		munmap(out, BUF_BYTES);
	return ret;
}

/* -d, read before the suite runs, to size the THP table. */
static void scan_duration(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-d") && i + 1 < argc)
			duration_s = atof(argv[i + 1]);
		else if (!strncmp(argv[i], "-d", 2) && argv[i][2])
			duration_s = atof(argv[i] + 2);
		else if (!strncmp(argv[i], "--duration=", 11))
			duration_s = atof(argv[i] + 11);
		else if (!strcmp(argv[i], "--duration") && i + 1 < argc)
			duration_s = atof(argv[i + 1]);
	}
}

static const struct bench_measure migrate_measures[] = {
	{ "chunks", measure_chunks, 0.25 },
	{ "thp ratio", measure_thp_ratio, 0.10 },
	{ "fault-back", measure_faultback, 0.30 },
	{ "rss", measure_rss, 0.0 },
	{ "thp table", measure_thp_table, 0.25 },
	{ "dmirror", measure_dmirror, 0.10 },
};

/*
 * One page out and back, the first migration pinned to the second CPU:
 * this starts hetmem's monitor thread, which inherits that affinity. The
 * bare handler of the fault-back baseline is created the same way, so
 * both handlers sleep on the CPU next to the measuring thread's (the
 * "sleeping monitor on the other CPU" arrangement of the spec) instead
 * of landing on either CPU by chance.
 */
static int bd_warm_up(void)
{
	char *p = map_anon(PMD);
	int ret = p ? populate(p, PG) : -ENOMEM;

	bench_pin_self(1);
	if (!ret)
		ret = bd_migrate_chunks(p, PG, PG, true);
	bench_unpin_self();
	if (!ret)
		ret = bd_migrate_chunks(p, PG, PG, false);
	if (p)
		munmap(p, PMD);
	return ret ? ret : bd_check_idle("warm-up");
}

/* The measurements, or a note each when migration cannot run here. */
static int migrate_suite(int argc, char **argv)
{
	static const struct bench_measure none[1];
	unsigned int count = sizeof(migrate_measures) / sizeof(migrate_measures[0]);
	int ret;

	if (hetmem_mm_probe(&caps) || !caps.uffd || !caps.uffd_move) {
		note("migration skipped", !caps.uffd ?
		     (caps.reason[0] ? caps.reason : "no userfaultfd") :
		     "no UFFD_FEATURE_MOVE");
		return bench_run_suite("migrate", none, 0, argc, argv);
	}
	ret = bd_create();
	if (ret) {
		note("migration skipped: memremap_pages()", strerror(-ret));
		return bench_run_suite("migrate", none, 0, argc, argv);
	}
	ret = bd_warm_up();
	if (ret) {
		note("migration skipped: first migration", strerror(-ret));
		bd_destroy();
		return bench_run_suite("migrate", none, 0, argc, argv);
	}
	ret = bench_run_suite("migrate", migrate_measures, count, argc, argv);
	bd_destroy();
	return ret;
}

/**
 * hetmem_bench_migrate() - the "migrate" benchmark suite
 * @argc: argument count; argv[0] is the suite name
 * @argv: "migrate" [-d SECONDS]
 *
 * Context: Process context; creates a 512 MiB device pagemap, starts the
 * address-space monitor and tears the address space object down
 * (hetmem_mm_teardown()) at the end.
 * Return: BENCH_EXIT_OK (also when migration cannot run here and every
 * measurement is skipped with a note), BENCH_EXIT_FAIL if a measurement
 * failed, or BENCH_EXIT_USAGE.
 */
int hetmem_bench_migrate(int argc, char **argv)
{
	int ret;

	scan_duration(argc, argv);
	ret = migrate_suite(argc, argv);
	if (caps.uffd)
		hetmem_mm_teardown();
	return ret;
}
