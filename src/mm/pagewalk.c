/* SPDX-License-Identifier: MIT */
/*
 * hetmem - mapping lookup and page-state snapshots of the own address
 * space, from /proc/self/maps and /proc/self/pagemap.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/internal.h"
#include "mm/pagewalk.h"

/**
 * DOC: Looking up mappings
 *
 * hetmem_vma_find() is the userspace find_vma(): the mapping that covers
 * an address, or the next one above it. Since Linux 6.11 the PROCMAP_QUERY
 * ioctl on /proc/self/maps answers that in one system call without
 * formatting text; older kernels fall back to reading /proc/self/maps line
 * by line, which costs time proportional to the number of mappings.
 *
 * PROCMAP_QUERY reports permissions, the inode, and the page size of the
 * mapping (larger than 4 KiB only for hugetlb), but not whether it is one
 * of the kernel's special mappings ([vdso], [vvar], ...), which hold no
 * normal pages and must never be handed to a device. Only the name says
 * that, and producing a name costs the kernel a path lookup for files, so
 * it is asked for only when the mapping could be special: no inode and
 * not writable.
 */

/**
 * DOC: Page-state snapshots
 *
 * hetmem_pagemap_snapshot() gives one category word (HETMEM_PG_*, the
 * PAGEMAP_SCAN PAGE_IS_* values) per page. Since Linux 6.7 the
 * PAGEMAP_SCAN ioctl walks the page tables and returns runs of pages that
 * share their categories; asking for every category with no filter makes
 * it report every page inside a mapping, so pages it does not mention are
 * outside any mapping and get 0. The run buffer is small and on the
 * stack: when it fills, the kernel says where it stopped (walk_end) and
 * the next call continues from there.
 *
 * Older kernels fall back to reading the 64-bit entries of
 * /proc/self/pagemap. They carry present, swapped, file-or-shared and
 * exclusively-mapped bits, but identify the zero page and huge pages only
 * through page frame numbers, which an unprivileged process reads as 0.
 * With frame numbers visible, the zero page's number is learnt once by
 * reading a fresh anonymous page, and a 2 MiB block whose 512 frames are
 * consecutive and start a transparent huge page in /proc/kpageflags is
 * reported HUGE. A present anonymous page that is not exclusively mapped
 * is either the zero page or shared copy-on-write with a child; both are
 * read-only to this process until a write copies them, exactly like a
 * private page-cache page, so when it is not recognised as the zero page
 * it is reported FILE.
 */

/**
 * DOC: Cached descriptors
 *
 * Both ioctls take a descriptor of a /proc/self file. Opening one costs
 * several microseconds, so each is opened once (close-on-exec) and kept.
 * Such a descriptor names the process that opened it, not "self" at the
 * time of use: after fork() the child's copy still describes the parent.
 * The cached word therefore holds the owner's pid next to the descriptor;
 * a fork handler closes the inherited copies in the child before anything
 * can reuse their numbers, and a pid mismatch (a raw clone() that ran no
 * fork handler) drops the word without closing, since that number may
 * already name something else. Publication is a compare-and-swap, so
 * threads racing to open the first descriptor agree on one and close the
 * others; ioctl() and pread() on a shared descriptor need no lock.
 */

/* uapi <linux/fs.h> of 6.11: the system headers predate PROCMAP_QUERY. */
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};

#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02
#define PROCMAP_QUERY_VMA_EXECUTABLE 0x04
#define PROCMAP_QUERY_VMA_SHARED 0x08
#define PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10

/* uapi <linux/fs.h> of 6.7 (PAGE_IS_GUARD: 6.14). */
struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#define PAGE_IS_GUARD (1 << 8)

#define PAGE_IS_ALL_OLD (PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_FILE | \
			 PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO | \
			 PAGE_IS_HUGE | PAGE_IS_SOFT_DIRTY)
#define PAGE_IS_ALL (PAGE_IS_ALL_OLD | PAGE_IS_GUARD)

_Static_assert(PAGE_IS_FILE == HETMEM_PG_FILE &&
	       PAGE_IS_PRESENT == HETMEM_PG_PRESENT &&
	       PAGE_IS_SWAPPED == HETMEM_PG_SWAPPED &&
	       PAGE_IS_PFNZERO == HETMEM_PG_PFNZERO &&
	       PAGE_IS_HUGE == HETMEM_PG_HUGE &&
	       PAGE_IS_GUARD == HETMEM_PG_GUARD &&
	       PAGE_IS_WRITTEN == HETMEM_PG_WRITTEN,
	       "HETMEM_PG_* must be the PAGEMAP_SCAN values");
_Static_assert(PROCMAP_QUERY_VMA_READABLE == HETMEM_VMA_READ &&
	       PROCMAP_QUERY_VMA_WRITABLE == HETMEM_VMA_WRITE &&
	       PROCMAP_QUERY_VMA_EXECUTABLE == HETMEM_VMA_EXEC &&
	       PROCMAP_QUERY_VMA_SHARED == HETMEM_VMA_SHARED,
	       "HETMEM_VMA_* permissions must be the PROCMAP_QUERY values");

/* /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61)
#define PM_GUARD_REGION (1ULL << 58)
#define PM_MMAP_EXCLUSIVE (1ULL << 56)
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define KPF_THP 22

#define PAGES_PER_PMD (HETMEM_PMD_SIZE >> HETMEM_PAGE_SHIFT)

/* What a feature probe found; force_* hide a working feature from tests. */
enum feature { FEAT_UNKNOWN, FEAT_YES, FEAT_YES_NO_GUARD, FEAT_NO };

static int procmap_query_state;
static int pagemap_scan_state;
static bool force_no_query;
static bool force_no_scan;

static int feature_get(const int *state)
{
	return __atomic_load_n(state, __ATOMIC_RELAXED);
}

static void feature_set(int *state, int val)
{
	__atomic_store_n(state, val, __ATOMIC_RELAXED);
}

/* ---- cached /proc descriptors ---- */

struct proc_fd {
	const char *path;
	uint64_t word;		/* owner pid << 32 | fd; 0 when none */
};

static struct proc_fd maps_fd = { .path = "/proc/self/maps" };
static struct proc_fd pagemap_fd = { .path = "/proc/self/pagemap" };
static struct proc_fd kpageflags_fd = { .path = "/proc/kpageflags" };
static pthread_once_t proc_fd_once = PTHREAD_ONCE_INIT;

static inline uint64_t proc_fd_word(pid_t pid, int fd)
{
	return (uint64_t)(uint32_t)pid << 32 | (uint32_t)fd;
}

static inline bool proc_fd_owned(uint64_t word, pid_t pid)
{
	return word && (pid_t)(word >> 32) == pid;
}

/* Closes whatever @pf holds for @pid; a word of another process is dropped. */
static void proc_fd_drop(struct proc_fd *pf, pid_t pid)
{
	uint64_t word = __atomic_exchange_n(&pf->word, 0, __ATOMIC_ACQ_REL);

	if (proc_fd_owned(word, pid))
		close((int)(uint32_t)word);
}

/* Runs in the child right after fork(), before anything can reuse the fds. */
static void proc_fd_child_after_fork(void)
{
	pid_t parent = getppid();

	proc_fd_drop(&maps_fd, parent);
	proc_fd_drop(&pagemap_fd, parent);
	proc_fd_drop(&kpageflags_fd, parent);
}

static void proc_fd_register_atfork(void)
{
	pthread_atfork(NULL, NULL, proc_fd_child_after_fork);
}

static int proc_fd_open(struct proc_fd *pf, uint64_t old, pid_t pid)
{
	uint64_t word;
	int fd;

	pthread_once(&proc_fd_once, proc_fd_register_atfork);
	fd = open(pf->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	word = proc_fd_word(pid, fd);
	while (!__atomic_compare_exchange_n(&pf->word, &old, word, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Another thread got there first: use its descriptor. */
		if (proc_fd_owned(old, pid)) {
			close(fd);
			return (int)(uint32_t)old;
		}
	}
	return fd;
}

/* The descriptor of @pf for the calling process, opened on first use. */
static int proc_fd_get(struct proc_fd *pf)
{
	uint64_t word = __atomic_load_n(&pf->word, __ATOMIC_ACQUIRE);
	pid_t pid = hetmem_mm_getpid();

	if (hetmem_likely(proc_fd_owned(word, pid)))
		return (int)(uint32_t)word;
	return proc_fd_open(pf, word, pid);
}

void hetmem_pagewalk_close(void)
{
	pid_t pid = hetmem_mm_getpid();

	proc_fd_drop(&maps_fd, pid);
	proc_fd_drop(&pagemap_fd, pid);
	proc_fd_drop(&kpageflags_fd, pid);
}

void hetmem_pagewalk_force_fallback(bool no_query, bool no_scan)
{
	__atomic_store_n(&force_no_query, no_query, __ATOMIC_RELAXED);
	__atomic_store_n(&force_no_scan, no_scan, __ATOMIC_RELAXED);
}

/* ---- mappings ---- */

static bool name_is_special(const char *name)
{
	static const char *const special[] = {
		"[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]",
	};

	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (!strcmp(name, special[i]))
			return true;
	return false;
}

/* Flags the name adds: a path means a file even without an inode. */
static unsigned int name_flags(const char *name)
{
	if (name[0] == '/')
		return HETMEM_VMA_FILE;
	if (name_is_special(name))
		return HETMEM_VMA_SPECIAL;
	return 0;
}

static void vma_from_query(const struct procmap_query *q,
			   struct hetmem_vma *vma)
{
	vma->start = q->vma_start;
	vma->end = q->vma_end;
	vma->flags = q->vma_flags & (HETMEM_VMA_READ | HETMEM_VMA_WRITE |
				     HETMEM_VMA_EXEC | HETMEM_VMA_SHARED);
	if (q->inode)
		vma->flags |= HETMEM_VMA_FILE;
	vma->page_size = q->vma_page_size ? q->vma_page_size : HETMEM_PAGE_SIZE;
	if (vma->page_size > HETMEM_PAGE_SIZE)
		vma->flags |= HETMEM_VMA_HUGETLB;
}

/* Special mappings have no inode and are never writable. */
static bool query_needs_name(const struct procmap_query *q)
{
	return !q->inode && !(q->vma_flags & PROCMAP_QUERY_VMA_WRITABLE);
}

static int query_error(int err)
{
	if ((err == ENOTTY || err == EINVAL) &&
	    feature_get(&procmap_query_state) != FEAT_YES) {
		feature_set(&procmap_query_state, FEAT_NO);
		return -ENOTTY;
	}
	return -err;
}

static int vma_query_name(int fd, unsigned long addr, struct hetmem_vma *vma)
{
	char name[256];
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
		.query_addr = addr,
		.vma_name_size = sizeof(name),
		.vma_name_addr = (uintptr_t)name,
	};

	if (ioctl(fd, PROCMAP_QUERY, &q) < 0) {
		/* A long "[anon:...]" name: not one of the special ones. */
		if (errno == ENAMETOOLONG)
			return 0;
		return query_error(errno);
	}
	/* The mapping may have changed in between; this answer wins. */
	vma_from_query(&q, vma);
	if (q.vma_name_size)
		vma->flags |= name_flags(name);
	return 0;
}

static int vma_query(unsigned long addr, struct hetmem_vma *vma)
{
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
		.query_addr = addr,
	};
	int fd = proc_fd_get(&maps_fd);

	if (fd < 0)
		return fd;
	if (ioctl(fd, PROCMAP_QUERY, &q) < 0)
		return query_error(errno);
	if (feature_get(&procmap_query_state) != FEAT_YES)
		feature_set(&procmap_query_state, FEAT_YES);
	vma_from_query(&q, vma);
	if (query_needs_name(&q))
		return vma_query_name(fd, addr, vma);
	return 0;
}

/* Default hugetlb page size, for MAP_HUGETLB mappings seen in the text. */
static unsigned long default_huge_page_size(void)
{
	static unsigned long cached;
	unsigned long size = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	char line[128];
	FILE *f;

	if (size)
		return size;
	size = HETMEM_PMD_SIZE;
	f = fopen("/proc/meminfo", "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Hugepagesize: %lu kB", &size) == 1) {
				size <<= 10;
				break;
			}
		fclose(f);
	}
	__atomic_store_n(&cached, size, __ATOMIC_RELAXED);
	return size;
}

/*
 * One line of /proc/self/maps:
 * "start-end rwxp offset major:minor inode   name".
 */
static bool parse_maps_line(char *line, struct hetmem_vma *vma)
{
	char perms[5], *name;
	unsigned long inode;
	int pos = 0;

	if (sscanf(line, "%lx-%lx %4s %*x %*x:%*x %lu %n", &vma->start,
		   &vma->end, perms, &inode, &pos) < 4 || !pos)
		return false;
	name = line + pos;
	name[strcspn(name, "\n")] = '\0';
	vma->flags = (perms[0] == 'r' ? HETMEM_VMA_READ : 0) |
		     (perms[1] == 'w' ? HETMEM_VMA_WRITE : 0) |
		     (perms[2] == 'x' ? HETMEM_VMA_EXEC : 0) |
		     (perms[3] == 's' ? HETMEM_VMA_SHARED : 0) |
		     (inode ? HETMEM_VMA_FILE : 0) | name_flags(name);
	vma->page_size = HETMEM_PAGE_SIZE;
	/* Only MAP_HUGETLB is recognisable; hugetlbfs files are not (gap). */
	if (strstr(name, "/anon_hugepage") == name) {
		vma->page_size = default_huge_page_size();
		vma->flags |= HETMEM_VMA_HUGETLB;
	}
	return true;
}

static int vma_from_maps(unsigned long addr, struct hetmem_vma *vma)
{
	FILE *f = fopen("/proc/self/maps", "re");
	size_t cap = 0;
	char *line = NULL;
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		if (parse_maps_line(line, vma) && vma->end > addr) {
			ret = 0;
			break;
		}
	}
	free(line);
	fclose(f);
	return ret;
}

static bool use_procmap_query(void)
{
	return !__atomic_load_n(&force_no_query, __ATOMIC_RELAXED) &&
	       feature_get(&procmap_query_state) != FEAT_NO;
}

/*
 * hetmem_vma_find() - the mapping covering @addr, or the next one above it.
 * @mm is the calling process's address space (the caller checked that);
 * the answer always describes the process that calls.
 */
int hetmem_vma_find(struct mm_struct *mm, unsigned long addr,
		    struct hetmem_vma *vma)
{
	int ret;

	(void)mm;
	if (use_procmap_query()) {
		ret = vma_query(addr, vma);
		if (ret != -ENOTTY)
			return ret;
	}
	return vma_from_maps(addr, vma);
}

bool hetmem_have_procmap_query(void)
{
	struct hetmem_vma vma;

	if (feature_get(&procmap_query_state) == FEAT_UNKNOWN)
		vma_query((uintptr_t)&procmap_query_state, &vma);
	return use_procmap_query();
}

/* ---- page states: PAGEMAP_SCAN ---- */

static void cats_fill(uint16_t *cats, unsigned long from, unsigned long to,
		      uint16_t val)
{
	for (unsigned long i = from; i < to; i++)
		cats[i] = val;
}

/*
 * Decide what an ioctl error means while the feature is still being
 * probed: an EINVAL with PAGE_IS_GUARD in the mask may be a kernel
 * (6.7-6.13) that does not know that category yet.
 */
static int scan_error(int err, uint64_t *mask)
{
	int state = feature_get(&pagemap_scan_state);

	if (err == EINTR || err == EAGAIN)
		return 0;
	if (state != FEAT_UNKNOWN || (err != EINVAL && err != ENOTTY))
		return -err;
	if (err == EINVAL && (*mask & PAGE_IS_GUARD)) {
		*mask = PAGE_IS_ALL_OLD;
		return 0;
	}
	feature_set(&pagemap_scan_state, FEAT_NO);
	return -ENOTTY;
}

static uint64_t scan_mask(void)
{
	return feature_get(&pagemap_scan_state) == FEAT_YES_NO_GUARD ?
	       PAGE_IS_ALL_OLD : PAGE_IS_ALL;
}

/* Copies one batch of runs into @cats; @next is the first unfilled page. */
static void scan_fill(const struct page_region *vec, long n,
		      unsigned long start, unsigned long *next, uint16_t *cats)
{
	for (long i = 0; i < n; i++) {
		unsigned long from = (vec[i].start - start) >> HETMEM_PAGE_SHIFT;
		unsigned long to = (vec[i].end - start) >> HETMEM_PAGE_SHIFT;

		cats_fill(cats, *next, from, 0);
		cats_fill(cats, from, to, (uint16_t)vec[i].categories);
		*next = to;
	}
}

static int snapshot_scan(unsigned long start, unsigned long end,
			 uint16_t *cats)
{
	struct page_region vec[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = sizeof(vec) / sizeof(vec[0]),
		.return_mask = scan_mask(),
	};
	unsigned long next = 0;
	int fd = proc_fd_get(&pagemap_fd);
	long n;

	if (fd < 0)
		return fd;
	while (arg.start < end) {
		n = ioctl(fd, PAGEMAP_SCAN, &arg);
		if (n < 0) {
			int ret = scan_error(errno, &arg.return_mask);

			if (ret)
				return ret;
			continue;
		}
		scan_fill(vec, n, start, &next, cats);
		/* walk_end never goes backwards; guard against a stuck walk. */
		if (arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	if (feature_get(&pagemap_scan_state) == FEAT_UNKNOWN)
		feature_set(&pagemap_scan_state, arg.return_mask & PAGE_IS_GUARD ?
			    FEAT_YES : FEAT_YES_NO_GUARD);
	cats_fill(cats, next, (end - start) >> HETMEM_PAGE_SHIFT, 0);
	return 0;
}

/* ---- page states: /proc/self/pagemap ---- */

/* 0: not known yet; UINT64_MAX: not knowable (frame numbers hidden). */
static uint64_t zero_pfn_cache;

static uint64_t learn_zero_pfn(int fd)
{
	volatile char *p = mmap(NULL, HETMEM_PAGE_SIZE, PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t entry = 0;

	if (p == MAP_FAILED)
		return 0;
	/* A read fault on untouched private anonymous memory maps the zero page. */
	(void)p[0];
	if (pread(fd, &entry, sizeof(entry),
		  ((uintptr_t)p >> HETMEM_PAGE_SHIFT) * sizeof(entry)) != sizeof(entry))
		entry = 0;
	munmap((void *)p, HETMEM_PAGE_SIZE);
	if (!(entry & PM_PRESENT))
		return 0;
	return (entry & PM_PFN_MASK) ? entry & PM_PFN_MASK : UINT64_MAX;
}

/* The zero page's frame number, or 0 when it cannot be known. */
static uint64_t zero_pfn(int fd)
{
	uint64_t pfn = __atomic_load_n(&zero_pfn_cache, __ATOMIC_RELAXED);

	if (!pfn) {
		pfn = learn_zero_pfn(fd);
		if (pfn)
			__atomic_store_n(&zero_pfn_cache, pfn, __ATOMIC_RELAXED);
	}
	return pfn == UINT64_MAX ? 0 : pfn;
}

bool hetmem_have_pagemap_pfn(void)
{
	int fd = proc_fd_get(&pagemap_fd);

	return fd >= 0 && zero_pfn(fd) != 0;
}

static uint16_t pm_category(uint64_t entry, uint64_t zpfn)
{
	uint64_t pfn = entry & PM_PFN_MASK;
	uint16_t c;

	if (!(entry & PM_PRESENT)) {
		if (!(entry & PM_SWAP))
			return 0;
		return HETMEM_PG_SWAPPED |
		       (entry & PM_GUARD_REGION ? HETMEM_PG_GUARD : 0);
	}
	c = HETMEM_PG_PRESENT;
	if (entry & PM_FILE)
		return c | HETMEM_PG_FILE;
	if (zpfn && pfn == zpfn)
		return c | HETMEM_PG_PFNZERO;
	/* Zero page or copy-on-write shared: read-only, see the DOC. */
	if (!(entry & PM_MMAP_EXCLUSIVE))
		return c | HETMEM_PG_FILE;
	return c;
}

/* Is this whole, aligned block one PMD-mapped transparent huge page? */
static bool pm_block_is_thp(const uint64_t *ent)
{
	uint64_t first = ent[0] & PM_PFN_MASK, flags = 0;
	int fd;

	if (!(ent[0] & PM_PRESENT) || !first || first % PAGES_PER_PMD)
		return false;
	for (unsigned long i = 1; i < PAGES_PER_PMD; i++)
		if (!(ent[i] & PM_PRESENT) || (ent[i] & PM_PFN_MASK) != first + i)
			return false;
	fd = proc_fd_get(&kpageflags_fd);
	if (fd < 0 || pread(fd, &flags, sizeof(flags),
			    first * sizeof(flags)) != sizeof(flags))
		return false;
	return flags & (1ULL << KPF_THP);
}

/*
 * One 2 MiB block: the entries of the whole aligned block are read, so a
 * huge page is recognised even where [start, end) covers only part of it.
 */
static int snapshot_pread_block(int fd, unsigned long blk, unsigned long start,
				unsigned long end, uint16_t *cats, uint64_t zpfn)
{
	uint64_t ent[PAGES_PER_PMD];
	uint16_t huge;
	ssize_t got;

	do {
		got = pread(fd, ent, sizeof(ent),
			    (blk >> HETMEM_PAGE_SHIFT) * sizeof(ent[0]));
	} while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	memset((char *)ent + got, 0, sizeof(ent) - (size_t)got);
	huge = zpfn && pm_block_is_thp(ent) ? HETMEM_PG_HUGE : 0;
	for (unsigned long a = start; a < end; a += HETMEM_PAGE_SIZE) {
		uint64_t e = ent[(a - blk) >> HETMEM_PAGE_SHIFT];

		*cats++ = pm_category(e, zpfn) | (e & PM_PRESENT ? huge : 0);
	}
	return 0;
}

static int snapshot_pread(unsigned long start, unsigned long end,
			  uint16_t *cats)
{
	int fd = proc_fd_get(&pagemap_fd);
	uint64_t zpfn;

	if (fd < 0)
		return fd;
	zpfn = zero_pfn(fd);
	while (start < end) {
		unsigned long blk = start & ~(HETMEM_PMD_SIZE - 1);
		unsigned long stop = blk + HETMEM_PMD_SIZE;
		int ret;

		if (stop > end || stop < blk)
			stop = end;
		ret = snapshot_pread_block(fd, blk, start, stop, cats, zpfn);
		if (ret)
			return ret;
		cats += (stop - start) >> HETMEM_PAGE_SHIFT;
		start = stop;
	}
	return 0;
}

static bool use_pagemap_scan(void)
{
	return !__atomic_load_n(&force_no_scan, __ATOMIC_RELAXED) &&
	       feature_get(&pagemap_scan_state) != FEAT_NO;
}

/*
 * hetmem_pagemap_snapshot() - categories of every page of [start, end).
 * Pages outside any mapping get 0. The calling process is walked; @mm is
 * its address space (checked by the caller).
 */
int hetmem_pagemap_snapshot(struct mm_struct *mm, unsigned long start,
			    unsigned long end, uint16_t *cats)
{
	int ret;

	(void)mm;
	if (start > end || ((start | end) & ~HETMEM_PAGE_MASK))
		return -EINVAL;
	if (start == end)
		return 0;
	if (use_pagemap_scan()) {
		ret = snapshot_scan(start, end, cats);
		if (ret != -ENOTTY)
			return ret;
	}
	return snapshot_pread(start, end, cats);
}

bool hetmem_page_mapped_huge(unsigned long addr)
{
	uint16_t cat = 0;

	addr &= HETMEM_PAGE_MASK;
	return !hetmem_pagemap_snapshot(NULL, addr, addr + HETMEM_PAGE_SIZE, &cat) &&
	       (cat & HETMEM_PG_HUGE);
}

bool hetmem_have_pagemap_scan(void)
{
	unsigned long page = (uintptr_t)&pagemap_scan_state & HETMEM_PAGE_MASK;
	uint16_t cat;

	if (feature_get(&pagemap_scan_state) == FEAT_UNKNOWN)
		snapshot_scan(page, page + HETMEM_PAGE_SIZE, &cat);
	return use_pagemap_scan();
}
