/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the dmirror reference device on every kind of memory: fork
 * (private and shared anonymous), transparent and hugetlbfs huge pages,
 * shared and private file mappings, brk-grown heap and malloc memory.
 * Children report through their exit status and leave with _exit().
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "dmirror-common.h"

/* Wait for @pid and check that it exited with status 0. */
static bool child_ok(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Child of anon_fork: its own mirror reads the parent's data, writes its copy. */
static int fork_child_private(void *buf, void *tmp, unsigned long npages)
{
	struct hmm_dmirror_cmd cmd;
	struct dmirror *m;

	if (hetmem_dmirror_open(0, &m))
		return 2;
	if (dm_cmd(m, HMM_DMIRROR_READ, buf, tmp, npages, &cmd) ||
	    cmd.cpages != npages || !has_pattern(tmp, npages, 0x21000))
		return 3;
	fill_pattern(tmp, npages, 0x22000);
	if (dm_cmd(m, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL) ||
	    !has_pattern(buf, npages, 0x22000))
		return 4;
	return 0;
}

/* hmm-tests.c anon_read_child: a child's write never reaches the parent. */
TEST_F(dmirror, anon_fork)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	pid_t pid;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(tmp);
	fill_pattern(buf, npages, 0x21000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, buf, npages, NULL), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(fork_child_private(buf, tmp, npages));
	ASSERT_TRUE(child_ok(pid));
	EXPECT_TRUE(has_pattern(buf, npages, 0x21000));
	/* The parent's device still reads and writes its own copy. */
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x21000));
	fill_pattern(tmp, npages, 0x23000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, npages, 0x23000));
	munmap(buf, npages * PAGE);
	munmap(tmp, npages * PAGE);
}

static int fork_child_shared(void *buf, unsigned long npages)
{
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	struct dmirror *m;

	if (!tmp || hetmem_dmirror_open(0, &m))
		return 2;
	if (dm_cmd(m, HMM_DMIRROR_READ, buf, tmp, npages, NULL) ||
	    !has_pattern(tmp, npages, 0x24000))
		return 3;
	fill_pattern(tmp, npages, 0x25000);
	return dm_cmd(m, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL) ? 4 : 0;
}

/* hmm-tests.c anon_write_child_shared: shared memory carries the write. */
TEST_F(dmirror, shared_anon_fork)
{
	unsigned long npages = 16;
	void *buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	pid_t pid;

	ASSERT_TRUE(buf != MAP_FAILED);
	ASSERT_NONNULL(tmp);
	fill_pattern(buf, npages, 0x24000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(fork_child_shared(buf, npages));
	ASSERT_TRUE(child_ok(pid));
	EXPECT_TRUE(has_pattern(buf, npages, 0x25000));
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x25000));
	munmap(buf, npages * PAGE);
	munmap(tmp, npages * PAGE);
}

/* hmm-tests.c anon_huge_snapshot-like: a PMD-mapped THP shows the PMD bit. */
TEST_F(dmirror, thp)
{
	unsigned long i, npages = HETMEM_PMD_SIZE / PAGE;
	unsigned char *snap = malloc(npages);
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	char *raw, *buf;

	ASSERT_NONNULL(snap);
	ASSERT_NONNULL(tmp);
	if (!harness_thp_enabled())
		SKIP(goto out_free, "transparent huge pages are disabled");
	raw = mmap(NULL, 2 * HETMEM_PMD_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(raw != MAP_FAILED);
	buf = (char *)(((uintptr_t)raw + HETMEM_PMD_SIZE - 1) & ~(HETMEM_PMD_SIZE - 1));
	ASSERT_EQ(madvise(buf, HETMEM_PMD_SIZE, MADV_HUGEPAGE), 0);
	fill_pattern(buf, npages, 0x26000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, NULL), 0);
	if (!(snap[0] & HMM_DMIRROR_PROT_PMD)) {
		munmap(raw, 2 * HETMEM_PMD_SIZE);
		SKIP(goto out_free, "no huge page was allocated (snapshot 0x%02x)", snap[0]);
	}
	for (i = 0; i < npages; i++)
		EXPECT_EQ(snap[i], HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x26000));
	fill_pattern(tmp, npages, 0x27000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, npages, 0x27000));
	munmap(raw, 2 * HETMEM_PMD_SIZE);
out_free:
	munmap(tmp, npages * PAGE);
	free(snap);
}

static long nr_hugepages(void)
{
	long n = 0;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &n) != 1)
		n = 0;
	fclose(f);
	return n;
}

/* hmm-tests.c anon_read_huge-like on hugetlbfs, when huge pages are reserved. */
TEST_F(dmirror, hugetlbfs)
{
	unsigned long npages = HETMEM_PMD_SIZE / PAGE;
	void *tmp, *buf;

	if (nr_hugepages() < 1)
		SKIP(return, "no hugetlbfs pages reserved (/proc/sys/vm/nr_hugepages is 0)");
	buf = mmap(NULL, HETMEM_PMD_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (buf == MAP_FAILED)
		SKIP(return, "MAP_HUGETLB failed: %s", strerror(errno));
	tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	ASSERT_NONNULL(tmp);
	fill_pattern(buf, npages, 0x28000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x28000));
	fill_pattern(tmp, npages, 0x29000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, npages, 0x29000));
	munmap(buf, HETMEM_PMD_SIZE);
	munmap(tmp, npages * PAGE);
}

/* A memfd or a /tmp file of @npages pages holding pattern @seed. */
static int make_file(bool memfd, unsigned long npages, uint32_t seed)
{
	char path[] = "/tmp/hetmem-dmirror-XXXXXX";
	void *data = map_anon(npages, PROT_READ | PROT_WRITE);
	int fd;

	if (!data)
		return -1;
	fd = memfd ? memfd_create("dmirror", MFD_CLOEXEC) : mkstemp(path);
	if (fd >= 0 && !memfd)
		unlink(path);
	fill_pattern(data, npages, seed);
	if (fd >= 0 && pwrite(fd, data, npages * PAGE, 0) != (ssize_t)(npages * PAGE)) {
		close(fd);
		fd = -1;
	}
	munmap(data, npages * PAGE);
	return fd;
}

/* Does the file at @fd hold pattern @seed? */
static bool file_has_pattern(int fd, unsigned long npages, uint32_t seed)
{
	void *data = map_anon(npages, PROT_READ | PROT_WRITE);
	bool ok;

	if (!data)
		return false;
	ok = pread(fd, data, npages * PAGE, 0) == (ssize_t)(npages * PAGE) &&
	     has_pattern(data, npages, seed);
	munmap(data, npages * PAGE);
	return ok;
}

FIXTURE_VARIANT(dmirror_file) {
	bool memfd;
};

FIXTURE(dmirror_file) {
	struct dmirror *mirror;
	int fd;
	void *tmp;
};

FIXTURE_VARIANT_ADD(dmirror_file, memfd) { .memfd = true };
FIXTURE_VARIANT_ADD(dmirror_file, tmpfile) { .memfd = false };

#define FILE_PAGES 16UL

FIXTURE_SETUP(dmirror_file)
{
	int ret = hetmem_dmirror_open(0, &self->mirror);

	if (ret == -EOPNOTSUPP)
		SKIP(return, "no usable userfaultfd in this process");
	ASSERT_EQ(ret, 0);
	self->fd = make_file(variant->memfd, FILE_PAGES, 0x2a000);
	ASSERT_GE(self->fd, 0);
	self->tmp = map_anon(FILE_PAGES, PROT_READ | PROT_WRITE);
	ASSERT_NONNULL(self->tmp);
}

FIXTURE_TEARDOWN(dmirror_file)
{
	munmap(self->tmp, FILE_PAGES * PAGE);
	close(self->fd);
	hetmem_dmirror_close(self->mirror);
	dm_release_process_state();
}

/* hmm-tests.c file_read / file_write: through a shared file mapping. */
TEST_F(dmirror_file, shared)
{
	void *buf = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_SHARED, self->fd, 0);
	struct hmm_dmirror_cmd cmd;

	ASSERT_TRUE(buf != MAP_FAILED);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, self->tmp, FILE_PAGES, &cmd), 0);
	EXPECT_EQ(cmd.cpages, FILE_PAGES);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_TRUE(has_pattern(self->tmp, FILE_PAGES, 0x2a000));
	fill_pattern(self->tmp, FILE_PAGES, 0x2b000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, self->tmp, FILE_PAGES, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, FILE_PAGES, 0x2b000));
	EXPECT_TRUE(file_has_pattern(self->fd, FILE_PAGES, 0x2b000));
	munmap(buf, FILE_PAGES * PAGE);
}

/* A private file mapping: the device's write is a copy-on-write. */
TEST_F(dmirror_file, private)
{
	void *buf = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE, self->fd, 0);

	ASSERT_TRUE(buf != MAP_FAILED);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, self->tmp, FILE_PAGES, NULL), 0);
	EXPECT_TRUE(has_pattern(self->tmp, FILE_PAGES, 0x2a000));
	fill_pattern(self->tmp, FILE_PAGES, 0x2c000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, self->tmp, FILE_PAGES, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, FILE_PAGES, 0x2c000));
	EXPECT_TRUE(file_has_pattern(self->fd, FILE_PAGES, 0x2a000));
	munmap(buf, FILE_PAGES * PAGE);
}

/* A read-only shared file mapping: READ works, WRITE is -EPERM. */
TEST_F(dmirror_file, read_only)
{
	void *buf = mmap(NULL, FILE_PAGES * PAGE, PROT_READ, MAP_SHARED, self->fd, 0);

	ASSERT_TRUE(buf != MAP_FAILED);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, self->tmp, FILE_PAGES, NULL), 0);
	EXPECT_TRUE(has_pattern(self->tmp, FILE_PAGES, 0x2a000));
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, self->tmp, FILE_PAGES, NULL),
		  -EPERM);
	EXPECT_TRUE(file_has_pattern(self->fd, FILE_PAGES, 0x2a000));
	munmap(buf, FILE_PAGES * PAGE);
}

/* Heap memory grown with brk(), which raises no event when it grows. */
TEST_F(dmirror, brk_heap)
{
	unsigned long npages = 4;
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	char *top = sbrk(0), *buf;

	ASSERT_NONNULL(tmp);
	ASSERT_TRUE(top != (void *)-1);
	if (sbrk((npages + 1) * PAGE) == (void *)-1)
		SKIP(return, "sbrk() failed: %s", strerror(errno));
	buf = (char *)(((uintptr_t)top + PAGE - 1) & ~(PAGE - 1));
	fill_pattern(buf, npages, 0x2d000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x2d000));
	fill_pattern(tmp, npages, 0x2e000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, npages, 0x2e000));
	munmap(tmp, npages * PAGE);
}

/* The page-aligned interior of a large malloc(), then free(). */
TEST_F(dmirror, malloc_memory)
{
	unsigned long npages = 64;
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	char *raw = malloc((npages + 1) * PAGE), *buf;

	ASSERT_NONNULL(tmp);
	ASSERT_NONNULL(raw);
	buf = (char *)(((uintptr_t)raw + PAGE - 1) & ~(PAGE - 1));
	fill_pattern(buf, npages, 0x2f000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x2f000));
	fill_pattern(tmp, npages, 0x30000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(buf, npages, 0x30000));
	free(raw);
	/* Whatever free() did to the pages, the device follows the CPU. */
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	munmap(tmp, npages * PAGE);
}
