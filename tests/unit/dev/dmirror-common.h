/* SPDX-License-Identifier: MIT */
/*
 * hetmem - helpers shared by the dmirror tests: a fixture with one open
 * mirror, command wrappers in the style of the kernel selftest's
 * hmm_dmirror_cmd(), mappings and data patterns.
 */
#ifndef HETMEM_TESTS_DMIRROR_COMMON_H
#define HETMEM_TESTS_DMIRROR_COMMON_H

#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hetmem/core/time.h>
#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/mm.h>

#include "harness.h"
/*
 * White-box: the page walkers cache /proc descriptors for the life of the
 * process, which the harness's fd-leak check would report per case.
 */
#include "mm/pagewalk.h"

#define PAGE HETMEM_PAGE_SIZE
/* Wait for the monitor to deliver queued events: 5 s is "something hangs". */
#define SYNC_TIMEOUT (5 * HETMEM_HZ)

FIXTURE(dmirror) {
	struct dmirror *mirror;
	struct mm_struct *mm;
};

FIXTURE_SETUP(dmirror)
{
	int ret = hetmem_dmirror_open(0, &self->mirror);

	if (ret == -EOPNOTSUPP)
		SKIP(return, "no usable userfaultfd in this process");
	ASSERT_EQ(ret, 0);
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
}

/* Release what the mm layer keeps per process, for the fd-leak check. */
static TH_UNUSED void dm_release_process_state(void)
{
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

FIXTURE_TEARDOWN(dmirror)
{
	hetmem_dmirror_close(self->mirror);
	dm_release_process_state();
}

/* Run a command; @cmd (may be NULL) receives the result. */
static TH_UNUSED int dm_cmd(struct dmirror *mirror, unsigned long req,
			    const void *addr, void *ptr, unsigned long npages,
			    struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)ptr,
		.npages = npages,
	};
	int ret = hetmem_dmirror_cmd(mirror, req, &cmd);

	if (out)
		*out = cmd;
	return ret;
}

/* A private anonymous mapping without THP, so page states are 4 KiB. */
static TH_UNUSED void *map_anon(unsigned long npages, int prot)
{
	void *p = mmap(NULL, npages * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, npages * PAGE, MADV_NOHUGEPAGE);
	return p;
}

/* Fill pages with words seed + index, so every page is distinct. */
static TH_UNUSED void fill_pattern(void *p, unsigned long npages, uint32_t seed)
{
	uint32_t *w = p;
	unsigned long i;

	for (i = 0; i < npages * PAGE / sizeof(*w); i++)
		w[i] = seed + (uint32_t)i;
}

/* Does page @pg of @p hold page @pg of the pattern with @seed? */
static TH_UNUSED bool page_has_pattern(const void *p, unsigned long pg, uint32_t seed)
{
	const uint32_t *w = (const uint32_t *)((const char *)p + pg * PAGE);
	unsigned long i, base = pg * PAGE / sizeof(*w);

	for (i = 0; i < PAGE / sizeof(*w); i++)
		if (w[i] != seed + (uint32_t)(base + i))
			return false;
	return true;
}

static TH_UNUSED bool has_pattern(const void *p, unsigned long npages, uint32_t seed)
{
	unsigned long pg;

	for (pg = 0; pg < npages; pg++)
		if (!page_has_pattern(p, pg, seed))
			return false;
	return true;
}

/*
 * Is [p, p + len) still a hole? Another thread (the monitor, a sanitizer's
 * allocator) may map its own memory into a range the test unmapped; tests
 * then skip what depends on the hole instead of touching foreign memory.
 */
static TH_UNUSED bool still_unmapped(void *p, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += PAGE)
		if (msync((char *)p + off, PAGE, MS_ASYNC) == 0 || errno != ENOMEM)
			return false;
	return true;
}

static TH_UNUSED bool all_bytes(const void *p, size_t len, unsigned char c)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != c)
			return false;
	return true;
}

/* ---- Device memory (migration, exclusive access) ---- */

/*
 * Migration moves pages with UFFDIO_MOVE: without it (or without a usable
 * userfaultfd) the device-memory commands cannot work and tests skip.
 */
static TH_UNUSED bool dm_can_migrate(void)
{
	struct hetmem_mm_caps caps;

	return hetmem_mm_probe(&caps) == 0 && caps.uffd && caps.uffd_move;
}

/* Device counters of @minor (zeroed on failure, which the caller sees). */
static TH_UNUSED struct hetmem_dmirror_stats dm_stats(unsigned int minor)
{
	struct hetmem_dmirror_stats st;

	if (hetmem_dmirror_get_stats(minor, &st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

/*
 * Wait up to @ms for device @minor to have @want pages in use: unmap
 * events reach the device after the fact (userfaultfd delivers them once
 * the change is done), so frees that follow a munmap are asynchronous.
 * Returns the last count seen.
 */
static TH_UNUSED uint64_t dm_wait_pages_used(unsigned int minor, uint64_t want,
					     long ms)
{
	int64_t end = harness_now_ms() + ms;
	uint64_t used;

	for (;;) {
		hetmem_mm_sync(hetmem_current_mm(), SYNC_TIMEOUT);
		used = dm_stats(minor).device_pages_used;
		if (used == want || harness_now_ms() > end)
			return used;
		harness_sleep_ms(2);
	}
}

/* RssAnon of this process in KiB, from /proc/self/status; -1 if unknown. */
static TH_UNUSED long dm_rss_anon_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * @npages of private anonymous memory aligned to 2 MiB and marked
 * MADV_HUGEPAGE (for THP cases); NULL on failure. Unmap with munmap().
 */
static TH_UNUSED void *map_anon_huge(unsigned long npages)
{
	size_t len = npages * PAGE, slack = HETMEM_PMD_SIZE;
	char *raw = mmap(NULL, len + slack, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + slack - 1) & ~(uintptr_t)(slack - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (p + len < raw + len + slack)
		munmap(p + len, (size_t)(raw + len + slack - (p + len)));
	madvise(p, len, MADV_HUGEPAGE);
	return p;
}

/* Is every byte of the snapshot @snap (@n pages) equal to @want? */
static TH_UNUSED bool snap_all(const unsigned char *snap, unsigned long n,
			       unsigned char want)
{
	return all_bytes(snap, n, want);
}

/* Read every page (one byte each) so that device pages come back. */
static TH_UNUSED void touch_read(const void *p, unsigned long npages)
{
	const volatile char *c = p;
	unsigned long pg;

	for (pg = 0; pg < npages; pg++)
		(void)c[pg * PAGE];
}

/*
 * Wait for child @pid; true when it exited with status @code. A child
 * killed by a signal stores the signal number in *@sig (if non-NULL).
 */
static TH_UNUSED bool dm_child_exited(pid_t pid, int code, int *sig)
{
	int status;

	if (sig)
		*sig = 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	if (WIFSIGNALED(status) && sig)
		*sig = WTERMSIG(status);
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

#endif /* HETMEM_TESTS_DMIRROR_COMMON_H */
