/* SPDX-License-Identifier: MIT */
/*
 * hetmem - migration to device memory: the dmirror commands
 * MIGRATE_TO_DEV, MIGRATE_TO_SYS, RELEASE and FLAGS (FAIL_ALLOC) with the
 * scenarios of the kernel HMM selftest (CPU faults bring pages back,
 * device access to own pages, two devices, munmap / MADV_DONTNEED /
 * mremap of device pages, fork and exit), RSS accounting and eviction
 * under a device-memory limit; then the migrate_vma API itself through a
 * tiny driver of the test's own (setup errors, src[] flags, declined
 * pages, migrate_to_ram calls, hmm_range_fault of device pages).
 *
 * Documented differences from the kernel: device pages are not in the
 * process's anonymous RSS, and fork() brings every device page back to
 * system memory in the parent first.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>

#include <hetmem/mm/hmm.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/mmu_notifier.h>
#include <hetmem/mm/page.h>

#include "dmirror-common.h"

#define DEV_RW (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE)
#define DEV_RO (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_READ)

FIXTURE(mig) {
	struct dmirror *m0, *m1;
};

FIXTURE_SETUP(mig)
{
	int ret;

	if (!dm_can_migrate())
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
	ret = hetmem_dmirror_open(0, &self->m0);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no usable userfaultfd in this process");
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(hetmem_dmirror_open(1, &self->m1), 0);
}

FIXTURE_TEARDOWN(mig)
{
	hetmem_dmirror_close(self->m0);
	hetmem_dmirror_close(self->m1);
	dm_release_process_state();
}

/* Mapping plus an output buffer of the same size. */
struct bufs {
	char *p;
	char *out;
	unsigned char *snap;
	unsigned long n;
};

static void bufs_get(struct bufs *b, unsigned long n, uint32_t seed)
{
	b->n = n;
	b->p = map_anon(n, PROT_READ | PROT_WRITE);
	b->out = map_anon(n, PROT_READ | PROT_WRITE);
	b->snap = calloc(n, 1);
	ASSERT_NONNULL(b->p);
	ASSERT_NONNULL(b->out);
	ASSERT_NONNULL(b->snap);
	fill_pattern(b->p, n, seed);
}

static void bufs_put(struct bufs *b)
{
	if (b->p)
		munmap(b->p, b->n * PAGE);
	if (b->out)
		munmap(b->out, b->n * PAGE);
	free(b->snap);
}

/* SNAPSHOT through @m; every byte must be @want. */
static void expect_snapshot(struct dmirror *m, void *p, unsigned char *snap,
			    unsigned long n, unsigned char want)
{
	struct hmm_dmirror_cmd cmd;
	unsigned long i;

	memset(snap, 0xee, n);
	ASSERT_EQ(dm_cmd(m, HMM_DMIRROR_SNAPSHOT, p, snap, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	for (i = 0; i < n; i++)
		if (snap[i] != want) {
			TH_LOG("page %lu: snapshot 0x%02x, want 0x%02x", i, snap[i], want);
			EXPECT_EQ(snap[i], want);
			return;
		}
}

/* MIGRATE_TO_DEV of the whole buffer through @m, must fully succeed. */
static void migrate_all(struct dmirror *m, struct bufs *b, uint32_t seed)
{
	struct hmm_dmirror_cmd cmd;

	memset(b->out, 0, b->n * PAGE);
	ASSERT_EQ(dm_cmd(m, HMM_DMIRROR_MIGRATE_TO_DEV, b->p, b->out, b->n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, b->n);
	ASSERT_TRUE(has_pattern(b->out, b->n, seed));
}

TEST_F(mig, migrate)
{
	struct bufs b = { 0 };

	bufs_get(&b, 16, 0x1000);
	migrate_all(self->m0, &b, 0x1000);
	EXPECT_EQ(dm_stats(0).device_pages_used, b.n);
	expect_snapshot(self->m0, b.p, b.snap, b.n, DEV_RW);
	/* The CPU reads fault every page back, with its data. */
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x1000));
	expect_snapshot(self->m0, b.p, b.snap, b.n, HMM_DMIRROR_PROT_WRITE);
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
	EXPECT_GE(dm_stats(0).cpu_faults, 1);
	bufs_put(&b);
}

/* The kernel's migrate_fault: half comes back, the rest stays mirrored. */
TEST_F(mig, migrate_fault)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 16, 0x2000);
	migrate_all(self->m0, &b, 0x2000);
	EXPECT_TRUE(has_pattern(b.p, b.n / 2, 0x2000));
	memset(b.out, 0, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, b.p, b.out, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x2000));
	expect_snapshot(self->m0, b.p, b.snap, b.n, DEV_RW);
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x2000));
	bufs_put(&b);
}

TEST_F(mig, migrate_release)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 16, 0x3000);
	migrate_all(self->m0, &b, 0x3000);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_RELEASE, b.p, NULL, b.n, &cmd), 0);
	/* Evicted before any CPU touch. */
	EXPECT_EQ(dm_stats(0).device_pages_used, 0);
	expect_snapshot(self->m0, b.p, b.snap, b.n, HMM_DMIRROR_PROT_WRITE);
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x3000));
	/* The device works again afterwards. */
	migrate_all(self->m0, &b, 0x3000);
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x3000));
	bufs_put(&b);
}

/* Shared anonymous memory is shmem: nothing migrates. */
TEST_F(mig, migrate_shared)
{
	unsigned long n = 8;
	struct hmm_dmirror_cmd cmd = { 0 };
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *out = map_anon(n, PROT_READ | PROT_WRITE);

	ASSERT_NE(p, MAP_FAILED);
	ASSERT_NONNULL(out);
	fill_pattern(p, n, 0x4000);
	EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, n, &cmd), -ENOENT);
	EXPECT_EQ(dm_stats(0).device_pages_used, 0);
	EXPECT_TRUE(has_pattern(p, n, 0x4000));
	munmap(p, n * PAGE);
	munmap(out, n * PAGE);
}

TEST_F(mig, migrate_prot_none)
{
	unsigned long n = 4;
	char *p = map_anon(n, PROT_NONE);
	char *out = map_anon(n, PROT_READ | PROT_WRITE);

	ASSERT_NONNULL(p);
	ASSERT_NONNULL(out);
	EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, n, NULL), -EINVAL);
	EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_SYS, p, out, n, NULL), -EINVAL);
	munmap(p, n * PAGE);
	munmap(out, n * PAGE);
}

TEST_F(mig, migrate_hole)
{
	unsigned long n = 3;
	char *p = map_anon(n, PROT_READ | PROT_WRITE);
	char *out = map_anon(n, PROT_READ | PROT_WRITE);

	ASSERT_NONNULL(p);
	ASSERT_NONNULL(out);
	memset(p, 1, n * PAGE);
	ASSERT_EQ(munmap(p + PAGE, PAGE), 0);
	if (!still_unmapped(p + PAGE, PAGE))
		SKIP(goto out, "another thread mapped memory into the hole");
	EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, n, NULL), -EINVAL);
	EXPECT_EQ(p[0], 1);
	EXPECT_EQ(p[2 * PAGE], 1);
out:
	munmap(p, PAGE);
	munmap(p + 2 * PAGE, PAGE);
	munmap(out, n * PAGE);
}

/*
 * A page mapped to the zero page migrates like a hole: the device page
 * replaces the zero page in the CPU page table, so the device and the
 * CPU keep seeing the same memory afterwards.
 */
TEST_F(mig, migrate_zero_page)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 4, 0);
	ASSERT_EQ(madvise(b.p, b.n * PAGE, MADV_DONTNEED), 0);
	touch_read(b.p, b.n);				/* zero pages */
	memset(b.out, 0xaa, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, b.p, b.out, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n);
	EXPECT_TRUE(all_bytes(b.out, b.n * PAGE, 0));
	EXPECT_EQ(dm_stats(0).device_pages_used, b.n);
	expect_snapshot(self->m0, b.p, b.snap, b.n, DEV_RW);
	/* A CPU write lands where the device reads. */
	b.p[0] = 7;
	memset(b.out, 0xaa, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_EQ(b.out[0], 7);
	EXPECT_TRUE(all_bytes(b.out + 1, b.n * PAGE - 1, 0));
	touch_read(b.p, b.n);
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
	bufs_put(&b);
}

/*
 * The kernel's migrate_mixed, extended: a read-only zero page, a
 * read-only written page and two writable pages (two VMAs) all go to
 * device 1; device 0 can then migrate none of them.
 */
TEST_F(mig, migrate_mixed)
{
	unsigned long n = 4, i;
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };
	volatile char c;

	bufs_get(&b, n, 0x5000);
	memset(b.p, 0, PAGE);
	ASSERT_EQ(madvise(b.p, PAGE, MADV_DONTNEED), 0);
	c = b.p[0];			/* page 0: the zero page */
	(void)c;
	ASSERT_EQ(mprotect(b.p, 2 * PAGE, PROT_READ), 0);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_MIGRATE_TO_DEV, b.p, b.out, n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, n);
	EXPECT_TRUE(all_bytes(b.out, PAGE, 0));
	for (i = 1; i < n; i++)
		EXPECT_TRUE(page_has_pattern(b.out, i, 0x5000));
	EXPECT_EQ(dm_stats(1).device_pages_used, n);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_SNAPSHOT, b.p, b.snap, n, &cmd), 0);
	EXPECT_EQ(b.snap[0], DEV_RO);
	EXPECT_EQ(b.snap[1], DEV_RO);
	EXPECT_EQ(b.snap[2], DEV_RW);
	EXPECT_EQ(b.snap[3], DEV_RW);
	/* Device 0 selects no page of device 1 and mirrors nothing. */
	EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, b.p, b.out, n, &cmd), -ENOENT);
	EXPECT_EQ(dm_stats(1).device_pages_used, n);
	EXPECT_EQ(dm_stats(0).device_pages_used, 0);
	/* And the CPU still sees everything. */
	EXPECT_TRUE(all_bytes(b.p, PAGE, 0));
	for (i = 1; i < n; i++)
		EXPECT_TRUE(page_has_pattern(b.p, i, 0x5000));
	bufs_put(&b);
}

/* Device access to its own pages needs no fault and leaves them there. */
TEST_F(mig, anon_read_write_migrated)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };
	uint64_t cpu_faults;

	bufs_get(&b, 16, 0x6000);
	migrate_all(self->m0, &b, 0x6000);
	cpu_faults = dm_stats(0).cpu_faults;
	memset(b.out, 0, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n);
	EXPECT_EQ(cmd.faults, 0);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x6000));
	expect_snapshot(self->m0, b.p, b.snap, b.n, DEV_RW);
	fill_pattern(b.out, b.n, 0x6100);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_WRITE, b.p, b.out, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n);
	EXPECT_EQ(cmd.faults, 0);
	expect_snapshot(self->m0, b.p, b.snap, b.n, DEV_RW);
	EXPECT_EQ(dm_stats(0).cpu_faults, cpu_faults);
	/* The CPU sees what the device wrote. */
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x6100));
	bufs_put(&b);
}

/* A second fd on the same device owns the same pages. */
TEST_F(mig, same_device_second_fd)
{
	struct dmirror *m;
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 8, 0x6800);
	ASSERT_EQ(hetmem_dmirror_open(0, &m), 0);
	migrate_all(self->m0, &b, 0x6800);
	expect_snapshot(m, b.p, b.snap, b.n, DEV_RW);
	memset(b.out, 0, b.n * PAGE);
	EXPECT_EQ(dm_cmd(m, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x6800));
	/* The read went to device memory: the pages are still there. */
	expect_snapshot(self->m0, b.p, b.snap, b.n, DEV_RW);
	hetmem_dmirror_close(m);
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x6800));
	bufs_put(&b);
}

TEST_F(mig, migrate_multiple)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };
	uint32_t seed;
	int i;

	bufs_get(&b, 16, 0);
	for (i = 0; i < 10; i++) {
		seed = 0x7000u + (uint32_t)i * 0x100u;
		fill_pattern(b.p, b.n, seed);
		migrate_all(self->m0, &b, seed);
		ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_SYS, b.p, NULL, b.n, &cmd), 0);
		ASSERT_EQ(cmd.cpages, b.n);
		ASSERT_TRUE(has_pattern(b.p, b.n, seed));
	}
	EXPECT_EQ(dm_stats(0).device_pages_used, 0);
	bufs_put(&b);
}

/* Two devices mirror the same memory; migration to one keeps the other right. */
TEST_F(mig, double_map_two_devices)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 16, 0x8000);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x8000));
	memset(b.out, 0, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x8000));
	migrate_all(self->m0, &b, 0x8000);
	memset(b.out, 0, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x8000));
	memset(b.out, 0, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0x8000));
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x8000));
	bufs_put(&b);
}

static bool have_zero_page_reporting(void)
{
	struct hetmem_mm_caps caps;

	return !hetmem_mm_probe(&caps) && (caps.pagemap_scan || caps.pagemap_pfn);
}

/*
 * Snapshot of holes, an unmapped page, the zero page, read-only and
 * writable pages and pages on either device, as device 0 and device 1
 * see them.
 */
TEST_F(mig, snapshot_mixed)
{
	unsigned long n = 7;
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };
	bool hole;
	volatile char c;

	bufs_get(&b, n, 0x9000);
	ASSERT_EQ(madvise(b.p, 3 * PAGE, MADV_DONTNEED), 0);	/* 0..2 empty */
	ASSERT_EQ(munmap(b.p + PAGE, PAGE), 0);		/* 1 unmapped */
	c = b.p[2 * PAGE];					/* 2 zero page */
	(void)c;
	ASSERT_EQ(mprotect(b.p + 3 * PAGE, PAGE, PROT_READ), 0);	/* 3 RO */
	hole = still_unmapped(b.p + PAGE, PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, b.p + 5 * PAGE, b.out, 1, &cmd), 0);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_MIGRATE_TO_DEV, b.p + 6 * PAGE, b.out, 1, &cmd), 0);
	memset(b.snap, 0xee, n);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_SNAPSHOT, b.p, b.snap, n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, n);
	EXPECT_EQ(b.snap[0], HMM_DMIRROR_PROT_NONE);
	if (hole)
		EXPECT_EQ(b.snap[1], HMM_DMIRROR_PROT_ERROR);
	if (have_zero_page_reporting())
		EXPECT_EQ(b.snap[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	EXPECT_EQ(b.snap[3], HMM_DMIRROR_PROT_READ);
	EXPECT_EQ(b.snap[4], HMM_DMIRROR_PROT_WRITE);
	EXPECT_EQ(b.snap[5], DEV_RW);
	EXPECT_EQ(b.snap[6], HMM_DMIRROR_PROT_NONE);
	memset(b.snap, 0xee, n);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_SNAPSHOT, b.p + 3 * PAGE, b.snap, 4, &cmd), 0);
	EXPECT_EQ(b.snap[0], HMM_DMIRROR_PROT_READ);
	EXPECT_EQ(b.snap[1], HMM_DMIRROR_PROT_WRITE);
	EXPECT_EQ(b.snap[2], HMM_DMIRROR_PROT_NONE);
	EXPECT_EQ(b.snap[3], DEV_RW);
	/* A snapshot never faults: both pages are still on their devices. */
	EXPECT_EQ(dm_stats(0).device_pages_used, 1);
	EXPECT_EQ(dm_stats(1).device_pages_used, 1);
	EXPECT_TRUE(page_has_pattern(b.p, 3, 0x9000));
	EXPECT_TRUE(page_has_pattern(b.p, 5, 0x9000));
	EXPECT_TRUE(page_has_pattern(b.p, 6, 0x9000));
	munmap(b.p, PAGE);
	munmap(b.p + 2 * PAGE, (n - 2) * PAGE);
	b.p = NULL;
	bufs_put(&b);
}

TEST_F(mig, migrate_to_sys_counts)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 16, 0xa000);
	migrate_all(self->m0, &b, 0xa000);
	EXPECT_TRUE(page_has_pattern(b.p, 3, 0xa000));		/* one comes back */
	cmd.cpages = 12345;
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_SYS, b.p, NULL, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n - 1);
	EXPECT_EQ(dm_stats(0).device_pages_used, 0);
	expect_snapshot(self->m0, b.p, b.snap, b.n, HMM_DMIRROR_PROT_WRITE);
	/* Nothing left to move: still 0. */
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_SYS, b.p, NULL, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, 0);
	/* Another device's pages are not selected. */
	migrate_all(self->m1, &b, 0xa000);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_SYS, b.p, NULL, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, 0);
	EXPECT_EQ(dm_stats(1).device_pages_used, b.n);
	ASSERT_EQ(dm_cmd(self->m1, HMM_DMIRROR_MIGRATE_TO_SYS, b.p, NULL, b.n, &cmd), 0);
	EXPECT_EQ(cmd.cpages, b.n);
	EXPECT_TRUE(has_pattern(b.p, b.n, 0xa000));
	bufs_put(&b);
}

TEST_F(mig, munmap_device_pages)
{
	struct bufs b = { 0 };

	bufs_get(&b, 32, 0xb000);
	migrate_all(self->m0, &b, 0xb000);
	EXPECT_EQ(dm_stats(0).device_pages_used, b.n);
	ASSERT_EQ(munmap(b.p, b.n * PAGE), 0);
	b.p = NULL;
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
	bufs_put(&b);
}

TEST_F(mig, dontneed_device_pages)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 16, 0xc000);
	migrate_all(self->m0, &b, 0xc000);
	ASSERT_EQ(madvise(b.p, b.n * PAGE, MADV_DONTNEED), 0);
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
	EXPECT_TRUE(all_bytes(b.p, b.n * PAGE, 0));
	/* The device agrees. */
	memset(b.out, 0xaa, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, b.p, b.out, b.n, &cmd), 0);
	EXPECT_TRUE(all_bytes(b.out, b.n * PAGE, 0));
	bufs_put(&b);
}

/* Reserve @n pages of address space for an mremap target. */
static char *reserve(unsigned long n)
{
	void *p = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

TEST_F(mig, mremap_device_pages)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };
	char *dst, *q;

	bufs_get(&b, 16, 0xd000);
	dst = reserve(b.n);
	ASSERT_NONNULL(dst);
	migrate_all(self->m0, &b, 0xd000);
	q = mremap(b.p, b.n * PAGE, b.n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(q, dst);
	/* The monitor learns of the move after the fact. */
	ASSERT_EQ(hetmem_mm_sync(hetmem_current_mm(), SYNC_TIMEOUT), 0);
	if (still_unmapped(b.p, b.n * PAGE)) {
		EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, b.p, b.out, b.n, NULL), -EFAULT);
	}
	b.p = NULL;
	/* The device reads the moved pages at their new address. */
	memset(b.out, 0, b.n * PAGE);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_READ, dst, b.out, b.n, &cmd), 0);
	EXPECT_TRUE(has_pattern(b.out, b.n, 0xd000));
	EXPECT_TRUE(has_pattern(dst, b.n, 0xd000));
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
	munmap(dst, b.n * PAGE);
	bufs_put(&b);
}

TEST_F(mig, mremap_dontunmap_device_pages)
{
	struct bufs b = { 0 };
	char *dst, *q;

	bufs_get(&b, 16, 0xe000);
	dst = reserve(b.n);
	ASSERT_NONNULL(dst);
	migrate_all(self->m0, &b, 0xe000);
	q = mremap(b.p, b.n * PAGE, b.n * PAGE,
		   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, dst);
	if (q == MAP_FAILED && errno == EINVAL)
		SKIP(goto out, "MREMAP_DONTUNMAP not supported");
	ASSERT_EQ(q, dst);
	EXPECT_TRUE(has_pattern(dst, b.n, 0xe000));
	/* The old range stays mapped and empty. */
	EXPECT_TRUE(all_bytes(b.p, b.n * PAGE, 0));
	EXPECT_EQ(dm_wait_pages_used(0, 0, 5000), 0);
out:
	munmap(dst, b.n * PAGE);
	bufs_put(&b);
}

TEST_F(mig, fail_alloc_migrate)
{
	struct hmm_dmirror_cmd cmd;
	struct bufs b = { 0 };

	bufs_get(&b, 1, 0xf000);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_FLAGS, b.p, NULL,
			 HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	EXPECT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, b.p, b.out, 1, &cmd), -ENOENT);
	EXPECT_EQ(dm_stats(0).device_pages_used, 0);
	expect_snapshot(self->m0, b.p, b.snap, 1, HMM_DMIRROR_PROT_WRITE);
	EXPECT_TRUE(has_pattern(b.p, 1, 0xf000));
	/* One-shot: the next attempt works. */
	migrate_all(self->m0, &b, 0xf000);
	expect_snapshot(self->m0, b.p, b.snap, 1, DEV_RW);
	EXPECT_TRUE(has_pattern(b.p, 1, 0xf000));
	bufs_put(&b);
}

static void sigbus_exit(int sig)
{
	(void)sig;
	_exit(42);
}

/*
 * The cases below run hetmem in a child of their own. The case forks
 * before it uses hetmem at all, so it is single-threaded at fork(): a
 * sanitizer's allocator lock held by another thread would otherwise be
 * inherited locked by the child. The child exits 77 to ask for a skip.
 */
#define CHILD_SKIP 77

static void child_check_skip(pid_t pid, int want_code, int want_sig)
{
	int status;

	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP)
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
	if (WIFSIGNALED(status)) {
		TH_LOG("child killed by signal %d", WTERMSIG(status));
		EXPECT_EQ(WTERMSIG(status), want_sig);
		return;
	}
	ASSERT_TRUE(WIFEXITED(status));
	if (WEXITSTATUS(status) != want_code)
		TH_LOG("child exited with %d", WEXITSTATUS(status));
	EXPECT_EQ(WEXITSTATUS(status), want_code);
}

/*
 * FAIL_ALLOC then a CPU fault on a device page: migrate_to_ram returns
 * VM_FAULT_OOM, which hetmem delivers as SIGBUS (memremap.h). The child's
 * SIGBUS handler exits with 42 (or the signal kills it).
 */
TEST(fail_alloc_cpu_fault)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct sigaction sa = { .sa_handler = sigbus_exit };
		struct dmirror *m;
		char *p = map_anon(1, PROT_READ | PROT_WRITE);
		char out[PAGE];
		volatile char c;

		if (!dm_can_migrate())
			_exit(CHILD_SKIP);
		if (!p || hetmem_dmirror_open(0, &m))
			_exit(2);
		fill_pattern(p, 1, 0x11000);
		if (dm_cmd(m, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, 1, NULL))
			_exit(3);
		if (dm_cmd(m, HMM_DMIRROR_FLAGS, p, NULL, HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL))
			_exit(4);
		sigaction(SIGBUS, &sa, NULL);
		c = p[0];
		(void)c;
		_exit(5);
	}
	child_check_skip(pid, 42, SIGBUS);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

/* Device pages leave the process's anonymous RSS and come back. */
TEST_F_TIMEOUT(mig, rss_accounting, 60)
{
	unsigned long n = (64UL << 20) / PAGE;
	long before, migrated, after, size_kb = (long)(n * PAGE / 1024);
	struct hetmem_devmem_stats dst;
	struct hmm_dmirror_cmd cmd;
	char *p = map_anon(n, PROT_READ | PROT_WRITE);
	char *out = map_anon(n, PROT_READ | PROT_WRITE);

#ifdef UNDER_SANITIZER
	/* Shadow memory and ASan's quarantine of freed buffers are RssAnon too. */
	SKIP(goto out, "RSS is not meaningful under a sanitizer");
#endif
	ASSERT_NONNULL(p);
	ASSERT_NONNULL(out);
	fill_pattern(p, n, 0x12000);
	memset(out, 1, n * PAGE);
	/*
	 * Device memory comes in chunks whose page descriptors are process
	 * memory (as the kernel's memmap is kernel memory): create the
	 * first chunk before measuring, so only the data is counted.
	 */
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, out, out + PAGE, 1, &cmd), 0);
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_SYS, out, NULL, 1, &cmd), 0);
	ASSERT_EQ(cmd.cpages, 1);
	before = dm_rss_anon_kb();
	if (before < 0)
		SKIP(goto out, "no RssAnon in /proc/self/status");
	ASSERT_EQ(dm_cmd(self->m0, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, n);
	migrated = dm_rss_anon_kb();
	hetmem_devmem_get_stats(&dst);
	TH_LOG("RssAnon before %ld kB, migrated %ld kB (staging: %llu pages in use, %llu kB cached)",
	       before, migrated, (unsigned long long)dst.staging_pages,
	       (unsigned long long)dst.staging_cached_bytes / 1024);
	EXPECT_GE(before - migrated, size_kb * 9 / 10);
	EXPECT_TRUE(has_pattern(p, n, 0x12000));
	after = dm_rss_anon_kb();
	TH_LOG("RssAnon after the CPU touched everything %ld kB", after);
	EXPECT_GE(after - migrated, size_kb * 9 / 10);
out:
	munmap(p, n * PAGE);
	munmap(out, n * PAGE);
}

/* A device-memory limit: making room evicts older pages to system memory. */
TEST_F(mig, eviction)
{
	unsigned long n = (3UL << 20) / PAGE;
	struct hetmem_dmirror_stats st;
	struct bufs a = { 0 }, b = { 0 };

	ASSERT_EQ(hetmem_dmirror_set_capacity(0, 4UL << 20), 0);
	bufs_get(&a, n, 0x13000);
	bufs_get(&b, n, 0x14000);
	migrate_all(self->m0, &a, 0x13000);
	migrate_all(self->m0, &b, 0x14000);
	st = dm_stats(0);
	EXPECT_GT(st.evicted, 0);
	EXPECT_LE(st.device_pages_used, (4UL << 20) / PAGE);
	EXPECT_EQ(st.capacity_pages, (4UL << 20) / PAGE);
	EXPECT_TRUE(has_pattern(a.p, n, 0x13000));
	EXPECT_TRUE(has_pattern(b.p, n, 0x14000));
	bufs_put(&a);
	bufs_put(&b);
}

/* fork brings pages back; copy-on-write holds in both directions. */
TEST_F(mig, fork_cow)
{
	struct bufs b = { 0 };
	int to_child[2], to_parent[2];
	char tok = 0;
	pid_t pid;

	bufs_get(&b, 16, 0x15000);
	migrate_all(self->m0, &b, 0x15000);
	ASSERT_EQ(pipe(to_child), 0);
	ASSERT_EQ(pipe(to_parent), 0);
	fflush(NULL);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		bool ok = has_pattern(b.p, b.n, 0x15000);

		fill_pattern(b.p, b.n, 0x16000);
		ok = ok && has_pattern(b.p, b.n, 0x16000);
		ok = ok && write(to_parent[1], &tok, 1) == 1;
		ok = ok && read(to_child[0], &tok, 1) == 1;
		/* The parent wrote its copy meanwhile. */
		ok = ok && has_pattern(b.p, b.n, 0x16000);
		_exit(ok ? 0 : 1);
	}
	close(to_child[0]);
	close(to_parent[1]);
	ASSERT_EQ(read(to_parent[0], &tok, 1), 1);
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x15000));
	fill_pattern(b.p, b.n, 0x17000);
	ASSERT_EQ(write(to_child[1], &tok, 1), 1);
	EXPECT_TRUE(dm_child_exited(pid, 0, NULL));
	EXPECT_TRUE(has_pattern(b.p, b.n, 0x17000));
	close(to_child[1]);
	close(to_parent[0]);
	bufs_put(&b);
}

/* A process may exit with pages on the device and mirrors open. */
TEST(exit_with_device_pages)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		unsigned long n = 64;
		struct hmm_dmirror_cmd cmd;
		struct dmirror *m;
		char *p = map_anon(n, PROT_READ | PROT_WRITE);
		char *out = map_anon(n, PROT_READ | PROT_WRITE);

		if (!dm_can_migrate())
			_exit(CHILD_SKIP);
		if (!p || !out || hetmem_dmirror_open(0, &m))
			_exit(2);
		fill_pattern(p, n, 0x18000);
		if (dm_cmd(m, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, n, &cmd) || cmd.cpages != n)
			_exit(3);
		exit(0);
	}
	child_check_skip(pid, 0, 0);
}

/* ---- The migrate_vma API through a driver of the test's own ---- */

#define DRV_PAGES 64UL

static struct drv {
	struct dev_pagemap pgmap;
	void *base;
	unsigned long pfn_first;
	struct page *free[DRV_PAGES];
	unsigned long nfree;
	unsigned long frees;		/* page_free calls */
	unsigned long m2r;		/* migrate_to_ram calls */
	unsigned long m2r_addr;		/* address of the last one */
	pthread_mutex_t lock;
} drv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void drv_page_free(struct page *page)
{
	pthread_mutex_lock(&drv.lock);
	drv.frees++;
	drv.free[drv.nfree++] = page;
	pthread_mutex_unlock(&drv.lock);
}

static struct page *drv_alloc(void)
{
	struct page *page = NULL;

	pthread_mutex_lock(&drv.lock);
	if (drv.nfree)
		page = drv.free[--drv.nfree];
	pthread_mutex_unlock(&drv.lock);
	if (page)
		zone_device_page_init(page);
	return page;
}

static vm_fault_t drv_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma = vmf->vma, .src = &src, .dst = &dst,
		.start = vmf->address, .end = vmf->address + PAGE,
		.pgmap_owner = &drv, .flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = vmf->page,
	};
	struct page *spage, *dpage;

	pthread_mutex_lock(&drv.lock);
	drv.m2r++;
	drv.m2r_addr = vmf->address;
	pthread_mutex_unlock(&drv.lock);
	if (migrate_vma_setup(&args))
		return VM_FAULT_SIGBUS;
	spage = migrate_pfn_to_page(src);
	if ((src & MIGRATE_PFN_MIGRATE) && spage) {
		dpage = alloc_page_vma(0, vmf->vma, vmf->address);
		if (!dpage) {
			migrate_vma_finalize(&args);
			return VM_FAULT_OOM;
		}
		lock_page(dpage);
		memcpy(page_address(dpage), page_address(spage), PAGE);
		dst = migrate_pfn(page_to_pfn(dpage)) | (src & MIGRATE_PFN_WRITE);
	}
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	return 0;
}

/* A counter of the driver, read under its lock (the ops run on the monitor). */
static unsigned long drv_get(const unsigned long *field)
{
	unsigned long v;

	pthread_mutex_lock(&drv.lock);
	v = *field;
	pthread_mutex_unlock(&drv.lock);
	return v;
}

/*
 * page_free comes when the last reference goes; the fault path may drop
 * its own reference just after the faulting thread resumed, so allow it
 * a moment. Returns the last count seen.
 */
static unsigned long drv_wait(const unsigned long *field, unsigned long want)
{
	int64_t end = harness_now_ms() + 2000;
	unsigned long v;

	while ((v = drv_get(field)) != want && harness_now_ms() < end)
		harness_sleep_ms(1);
	return v;
}

static const struct dev_pagemap_ops drv_ops = {
	.page_free = drv_page_free,
	.migrate_to_ram = drv_migrate_to_ram,
};

FIXTURE(api) {
	struct mm_struct *mm;
	bool mapped;
};

FIXTURE_SETUP(api)
{
	unsigned long i;

	if (!dm_can_migrate())
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
	self->mm = hetmem_current_mm();
	ASSERT_NONNULL(self->mm);
	drv.pgmap.type = MEMORY_DEVICE_PRIVATE;
	drv.pgmap.ops = &drv_ops;
	drv.pgmap.owner = &drv;
	drv.pgmap.range.start = 0;
	drv.pgmap.range.end = DRV_PAGES * PAGE - 1;
	drv.pgmap.nr_range = 1;
	drv.base = memremap_pages(&drv.pgmap, -1);
	ASSERT_FALSE(hetmem_is_err_ptr(drv.base));
	ASSERT_NONNULL(drv.base);
	self->mapped = true;
	drv.pfn_first = drv.pgmap.range.start >> HETMEM_PAGE_SHIFT;
	ASSERT_GE(drv.pfn_first, HETMEM_DEVICE_PFN_BASE);
	ASSERT_EQ(drv.pgmap.range.end - drv.pgmap.range.start + 1, DRV_PAGES * PAGE);
	for (i = 0; i < DRV_PAGES; i++) {
		drv.free[i] = pfn_to_page(drv.pfn_first + DRV_PAGES - 1 - i);
		ASSERT_NONNULL(drv.free[i]);
		ASSERT_TRUE(is_device_private_page(drv.free[i]));
		ASSERT_EQ(page_pgmap(drv.free[i]), &drv.pgmap);
	}
	drv.nfree = DRV_PAGES;
}

FIXTURE_TEARDOWN(api)
{
	if (self->mapped)
		memunmap_pages(&drv.pgmap);
	dm_release_process_state();
}

/*
 * Migrate [p, p + n pages) to the driver's memory, declining the pages
 * whose bit is set in @decline. Returns migrate_vma_setup()'s result;
 * @src receives src[] after migrate_vma_pages().
 */
static int drv_migrate(struct mm_struct *mm, char *p, unsigned long n,
		       unsigned long decline, unsigned long *src,
		       unsigned long *cpages)
{
	unsigned long dst[16] = { 0 };
	struct migrate_vma args = {
		.src = src, .dst = dst,
		.start = (uintptr_t)p, .end = (uintptr_t)p + n * PAGE,
		.pgmap_owner = &drv, .flags = MIGRATE_VMA_SELECT_SYSTEM,
	};
	struct page *spage, *dpage;
	unsigned long i;
	int ret;

	mmap_read_lock(mm);
	args.vma = vma_lookup(mm, (uintptr_t)p);
	if (!args.vma) {
		mmap_read_unlock(mm);
		return -EFAULT;
	}
	ret = migrate_vma_setup(&args);
	if (ret) {
		mmap_read_unlock(mm);
		return ret;
	}
	*cpages = args.cpages;
	for (i = 0; i < n; i++) {
		if (!(src[i] & MIGRATE_PFN_MIGRATE) || (decline & (1UL << i)))
			continue;
		dpage = drv_alloc();
		if (!dpage)
			continue;
		spage = migrate_pfn_to_page(src[i]);
		if (spage)
			memcpy(page_address(dpage), page_address(spage), PAGE);
		else
			memset(page_address(dpage), 0, PAGE);
		dst[i] = migrate_pfn(page_to_pfn(dpage)) | (src[i] & MIGRATE_PFN_WRITE);
	}
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	mmap_read_unlock(mm);
	return 0;
}

static int setup_only(struct migrate_vma *args)
{
	int ret = migrate_vma_setup(args);

	if (!ret) {
		migrate_vma_pages(args);
		migrate_vma_finalize(args);
	}
	return ret;
}

TEST_F(api, setup_errors)
{
	unsigned long src[4], dst[4] = { 0 };
	char *p = map_anon(4, PROT_READ | PROT_WRITE);
	struct migrate_vma args;
	struct vm_area_struct *vma;

	ASSERT_NONNULL(p);
	memset(p, 1, 4 * PAGE);
	ASSERT_EQ(mprotect(p + 2 * PAGE, 2 * PAGE, PROT_READ), 0);
	mmap_read_lock(self->mm);
	vma = vma_lookup(self->mm, (uintptr_t)p);
	ASSERT_NONNULL(vma);
	ASSERT_EQ(vma->vm_end, (uintptr_t)p + 2 * PAGE);
	args = (struct migrate_vma){ .vma = vma, .src = NULL, .dst = dst,
		.start = (uintptr_t)p, .end = (uintptr_t)p + PAGE,
		.pgmap_owner = &drv, .flags = MIGRATE_VMA_SELECT_SYSTEM };
	EXPECT_EQ(setup_only(&args), -EINVAL);
	args.src = src;
	args.dst = NULL;
	EXPECT_EQ(setup_only(&args), -EINVAL);
	args.dst = dst;
	args.end = args.start;
	EXPECT_EQ(setup_only(&args), -EINVAL);
	args.start = (uintptr_t)p + PAGE;
	args.end = (uintptr_t)p;
	EXPECT_EQ(setup_only(&args), -EINVAL);
	/* Not inside one VMA. */
	args.start = (uintptr_t)p;
	args.end = (uintptr_t)p + 4 * PAGE;
	EXPECT_EQ(setup_only(&args), -EINVAL);
	mmap_read_unlock(self->mm);
	EXPECT_EQ(drv_get(&drv.nfree), DRV_PAGES);
	EXPECT_TRUE(all_bytes(p, 4 * PAGE, 1));
	munmap(p, 4 * PAGE);
}

/* Holes of a non-anonymous mapping are not collected. */
TEST_F(api, nonanon_hole_skipped)
{
	int fd = (int)syscall(SYS_memfd_create, "mig-api", 0);
	unsigned long src[4], cpages = 99, i;
	char *p;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(ftruncate(fd, 4 * PAGE), 0);
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	ASSERT_NE(p, MAP_FAILED);
	memset(src, 0xff, sizeof(src));
	ASSERT_EQ(drv_migrate(self->mm, p, 4, 0, src, &cpages), 0);
	EXPECT_EQ(cpages, 0);
	for (i = 0; i < 4; i++)
		EXPECT_EQ(src[i] & MIGRATE_PFN_MIGRATE, 0);
	EXPECT_EQ(drv_get(&drv.nfree), DRV_PAGES);
	munmap(p, 4 * PAGE);
}

/* src[] of a hole, a written page and the zero page; all declined. */
TEST_F(api, src_flags_and_decline)
{
	unsigned long src[4], dst[4] = { 0 }, cpages, i;
	char *p = map_anon(3, PROT_READ | PROT_WRITE);
	struct migrate_vma args;
	struct page *spage;
	volatile char c;

	ASSERT_NONNULL(p);
	fill_pattern(p, 3, 0x19000);
	ASSERT_EQ(madvise(p, PAGE, MADV_DONTNEED), 0);		/* hole */
	ASSERT_EQ(madvise(p + 2 * PAGE, PAGE, MADV_DONTNEED), 0);
	c = p[2 * PAGE];					/* zero page */
	(void)c;
	mmap_read_lock(self->mm);
	args = (struct migrate_vma){ .vma = vma_lookup(self->mm, (uintptr_t)p),
		.src = src, .dst = dst,
		.start = (uintptr_t)p, .end = (uintptr_t)p + 3 * PAGE,
		.pgmap_owner = &drv, .flags = MIGRATE_VMA_SELECT_SYSTEM };
	ASSERT_NONNULL(args.vma);
	ASSERT_EQ(migrate_vma_setup(&args), 0);
	EXPECT_EQ(args.cpages, 3);
	EXPECT_EQ(args.npages, 3);
	EXPECT_EQ(src[0] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID), MIGRATE_PFN_MIGRATE);
	EXPECT_EQ(src[1] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID | MIGRATE_PFN_WRITE),
		  MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID | MIGRATE_PFN_WRITE);
	EXPECT_EQ(src[2] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID), MIGRATE_PFN_MIGRATE);
	spage = migrate_pfn_to_page(src[1]);
	EXPECT_NONNULL(spage);
	if (spage)
		EXPECT_TRUE(page_has_pattern((char *)page_address(spage) - PAGE, 1, 0x19000));
	/* Decline everything: dst[] stays 0. */
	migrate_vma_pages(&args);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(src[i] & MIGRATE_PFN_MIGRATE, 0);
	migrate_vma_finalize(&args);
	mmap_read_unlock(self->mm);
	EXPECT_TRUE(all_bytes(p, PAGE, 0));
	EXPECT_TRUE(page_has_pattern(p, 1, 0x19000));
	EXPECT_TRUE(all_bytes(p + 2 * PAGE, PAGE, 0));
	EXPECT_EQ(drv_get(&drv.m2r), 0);
	EXPECT_EQ(drv_get(&drv.nfree), DRV_PAGES);

	/* A read-only page is collected without MIGRATE_PFN_WRITE. */
	ASSERT_EQ(mprotect(p + PAGE, PAGE, PROT_READ), 0);
	ASSERT_EQ(drv_migrate(self->mm, p + PAGE, 1, 1, src, &cpages), 0);
	EXPECT_EQ(cpages, 1);
	EXPECT_EQ(src[0] & (MIGRATE_PFN_VALID | MIGRATE_PFN_WRITE), MIGRATE_PFN_VALID);
	EXPECT_TRUE(page_has_pattern(p, 1, 0x19000));
	munmap(p, 3 * PAGE);
}

/*
 * The pages are moved before anything classifies them: the zero page
 * amid real pages is still reported as a hole, while a real page that
 * holds only zeros keeps its frame.
 */
TEST_F(api, zero_page_amid_pages)
{
	unsigned long src[4], dst[4] = { 0 };
	char *p = map_anon(4, PROT_READ | PROT_WRITE);
	struct migrate_vma args;
	volatile char c;

	ASSERT_NONNULL(p);
	fill_pattern(p, 4, 0x1b000);
	ASSERT_EQ(madvise(p + PAGE, PAGE, MADV_DONTNEED), 0);
	c = p[PAGE];						/* zero page */
	(void)c;
	memset(p + 2 * PAGE, 0, PAGE);				/* zeros, a real page */
	mmap_read_lock(self->mm);
	args = (struct migrate_vma){ .vma = vma_lookup(self->mm, (uintptr_t)p),
		.src = src, .dst = dst,
		.start = (uintptr_t)p, .end = (uintptr_t)p + 4 * PAGE,
		.pgmap_owner = &drv, .flags = MIGRATE_VMA_SELECT_SYSTEM };
	ASSERT_NONNULL(args.vma);
	ASSERT_EQ(migrate_vma_setup(&args), 0);
	EXPECT_EQ(args.cpages, 4);
	EXPECT_EQ(src[0] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID),
		  MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID);
	if (have_zero_page_reporting())
		EXPECT_EQ(src[1] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID), MIGRATE_PFN_MIGRATE);
	EXPECT_EQ(src[2] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID),
		  MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID);
	EXPECT_EQ(src[3] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID),
		  MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID);
	migrate_vma_pages(&args);	/* all declined */
	migrate_vma_finalize(&args);
	mmap_read_unlock(self->mm);
	EXPECT_TRUE(page_has_pattern(p, 0, 0x1b000));
	EXPECT_TRUE(all_bytes(p + PAGE, 2 * PAGE, 0));
	EXPECT_TRUE(page_has_pattern(p, 3, 0x1b000));
	EXPECT_EQ(drv_get(&drv.nfree), DRV_PAGES);
	munmap(p, 4 * PAGE);
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* A guard page amid pages is not collected; its neighbours are. */
TEST_F(api, guard_page_amid_pages)
{
	unsigned long src[3], cpages = 0;
	char *p = map_anon(3, PROT_READ | PROT_WRITE);

	ASSERT_NONNULL(p);
	fill_pattern(p, 3, 0x1c000);
	if (madvise(p + PAGE, PAGE, MADV_GUARD_INSTALL)) {
		munmap(p, 3 * PAGE);
		SKIP(return, "no MADV_GUARD_INSTALL (Linux 6.13)");
	}
	ASSERT_EQ(drv_migrate(self->mm, p, 3, 0, src, &cpages), 0);
	EXPECT_EQ(cpages, 2);
	EXPECT_EQ(src[1], 0);
	EXPECT_TRUE(page_has_pattern(p, 0, 0x1c000));	/* each comes back */
	EXPECT_TRUE(page_has_pattern(p, 2, 0x1c000));
	EXPECT_EQ(drv_get(&drv.m2r), 2);
	munmap(p, 3 * PAGE);
}

static bool api_invalidate(struct mmu_interval_notifier *sub,
			   const struct mmu_notifier_range *range,
			   unsigned long cur_seq)
{
	(void)range;
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops api_nops = {
	.invalidate = api_invalidate,
};

/* hmm_range_fault() without faulting; retries until stable. */
static int snapshot_pfns(struct mm_struct *mm, char *p, unsigned long n,
			 void *owner, unsigned long *pfns)
{
	struct mmu_interval_notifier sub;
	struct hmm_range range = {
		.notifier = &sub, .start = (uintptr_t)p,
		.end = (uintptr_t)p + n * PAGE, .hmm_pfns = pfns,
		.dev_private_owner = owner,
	};
	int ret, tries = 0;

	ret = mmu_interval_notifier_insert(&sub, mm, range.start, n * PAGE, &api_nops);
	if (ret)
		return ret;
	do {
		range.notifier_seq = mmu_interval_read_begin(&sub);
		mmap_read_lock(mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			break;
	} while (mmu_interval_read_retry(&sub, range.notifier_seq) && ++tries < 100);
	mmu_interval_notifier_remove(&sub);
	return ret;
}

TEST_F(api, migrate_fault_back)
{
	unsigned long src[4], pfns[4], cpages, i, pfn;
	char *p = map_anon(4, PROT_READ | PROT_WRITE);
	volatile char c;

	ASSERT_NONNULL(p);
	fill_pattern(p, 4, 0x1a000);
	ASSERT_EQ(drv_migrate(self->mm, p, 4, 1UL << 1, src, &cpages), 0);
	EXPECT_EQ(cpages, 4);
	EXPECT_TRUE(src[0] & MIGRATE_PFN_MIGRATE);
	EXPECT_FALSE(src[1] & MIGRATE_PFN_MIGRATE);	/* declined */
	EXPECT_TRUE(src[2] & MIGRATE_PFN_MIGRATE);
	EXPECT_TRUE(src[3] & MIGRATE_PFN_MIGRATE);
	EXPECT_EQ(drv_get(&drv.nfree), DRV_PAGES - 3);

	/* Own device pages are reported with their device frame. */
	ASSERT_EQ(snapshot_pfns(self->mm, p, 4, &drv, pfns), 0);
	for (i = 0; i < 4; i++) {
		EXPECT_TRUE(pfns[i] & HMM_PFN_VALID);
		pfn = hetmem_hmm_pfn_to_pfn(pfns[i]);
		if (i == 1) {
			EXPECT_TRUE(hetmem_pfn_is_system(pfn));
			continue;
		}
		EXPECT_GE(pfn, HETMEM_DEVICE_PFN_BASE);
		EXPECT_GE(pfn, drv.pfn_first);
		EXPECT_LT(pfn, drv.pfn_first + DRV_PAGES);
		EXPECT_TRUE(pfns[i] & HMM_PFN_WRITE);
		/* The device memory holds the data. */
		EXPECT_TRUE(page_has_pattern((char *)page_address(pfn_to_page(pfn)) - i * PAGE,
					     i, 0x1a000));
	}
	/* Another owner's view: not valid, nothing faulted. */
	ASSERT_EQ(snapshot_pfns(self->mm, p, 4, (void *)&api_nops, pfns), 0);
	EXPECT_FALSE(pfns[0] & HMM_PFN_VALID);
	EXPECT_TRUE(pfns[1] & HMM_PFN_VALID);
	EXPECT_EQ(drv_get(&drv.m2r), 0);

	/* One CPU touch, one migrate_to_ram, at the page's address. */
	c = p[2 * PAGE + 100];
	(void)c;
	EXPECT_EQ(drv_get(&drv.m2r), 1);
	EXPECT_EQ(drv_get(&drv.m2r_addr), (uintptr_t)p + 2 * PAGE);
	EXPECT_TRUE(page_has_pattern(p, 2, 0x1a000));
	EXPECT_EQ(drv_get(&drv.m2r), 1);
	EXPECT_EQ(drv_wait(&drv.frees, 1), 1);
	/* The declined page never faults. */
	EXPECT_TRUE(page_has_pattern(p, 1, 0x1a000));
	EXPECT_EQ(drv_get(&drv.m2r), 1);
	/* A write fault brings the page back writable. */
	p[3 * PAGE] = 'x';
	EXPECT_EQ(drv_get(&drv.m2r), 2);
	EXPECT_EQ(drv_get(&drv.m2r_addr), (uintptr_t)p + 3 * PAGE);
	EXPECT_EQ(p[3 * PAGE], 'x');
	EXPECT_TRUE(page_has_pattern(p, 0, 0x1a000));
	EXPECT_EQ(drv_get(&drv.m2r), 3);
	EXPECT_EQ(drv_wait(&drv.frees, 3), 3);
	EXPECT_EQ(drv_wait(&drv.nfree, DRV_PAGES), DRV_PAGES);
	munmap(p, 4 * PAGE);
}

/* Pages of a range that was migrated as holes come back as zeros. */
TEST_F(api, migrate_holes)
{
	unsigned long src[8], cpages, i;
	char *p = map_anon(8, PROT_READ | PROT_WRITE);

	ASSERT_NONNULL(p);
	ASSERT_EQ(drv_migrate(self->mm, p, 8, 0, src, &cpages), 0);
	EXPECT_EQ(cpages, 8);
	for (i = 0; i < 8; i++)
		EXPECT_EQ(src[i] & (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_VALID), MIGRATE_PFN_MIGRATE);
	EXPECT_EQ(drv_get(&drv.nfree), DRV_PAGES - 8);
	p[0] = 5;		/* holes in a writable VMA come back writable */
	EXPECT_EQ(p[0], 5);
	EXPECT_TRUE(all_bytes(p + 1, 8 * PAGE - 1, 0));
	EXPECT_EQ(drv_get(&drv.m2r), 8);
	EXPECT_EQ(drv_wait(&drv.nfree, DRV_PAGES), DRV_PAGES);
	munmap(p, 8 * PAGE);
}
