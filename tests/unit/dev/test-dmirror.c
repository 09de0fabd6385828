/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the dmirror reference device, mirroring semantics: open and
 * command validation, READ and WRITE of anonymous memory, protections
 * (including mprotect() after mirroring, which sends no event), the zero
 * page, invalidation by munmap and MADV_DONTNEED, SNAPSHOT bytes, two
 * devices on the same memory, and the device counters. The expectations
 * are the kernel HMM selftest's (tools/testing/selftests/mm/hmm-tests.c).
 */
#include <sys/ioctl.h>
#include <sys/wait.h>

#include <hetmem/mm/mmu_notifier.h>

#include "dmirror-common.h"

TEST(open_errors)
{
	struct dmirror *m = (struct dmirror *)0x1;

	EXPECT_EQ(hetmem_dmirror_open(2, &m), -ENODEV);
	EXPECT_EQ(hetmem_dmirror_open(3, &m), -ENODEV);
	EXPECT_EQ(hetmem_dmirror_open(4, &m), -ENXIO);
	EXPECT_EQ(hetmem_dmirror_open(~0u, &m), -ENXIO);
	EXPECT_EQ(hetmem_dmirror_open(0, NULL), -EINVAL);
	/* Failed opens leave the output alone. */
	EXPECT_EQ((uintptr_t)m, 1);
	EXPECT_EQ(hetmem_dmirror_device_type(0), HMM_DMIRROR_MEMORY_DEVICE_PRIVATE);
	EXPECT_EQ(hetmem_dmirror_device_type(1), HMM_DMIRROR_MEMORY_DEVICE_PRIVATE);
	EXPECT_EQ(hetmem_dmirror_device_type(2), -ENODEV);
	EXPECT_EQ(hetmem_dmirror_device_type(3), -ENODEV);
	EXPECT_EQ(hetmem_dmirror_device_type(4), -ENXIO);
	hetmem_dmirror_close(NULL);
}

TEST(stats_errors)
{
	struct hetmem_dmirror_stats st;

	EXPECT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrors, 0);
	EXPECT_EQ(hetmem_dmirror_get_stats(2, &st), -ENODEV);
	EXPECT_EQ(hetmem_dmirror_get_stats(4, &st), -ENXIO);
	EXPECT_EQ(hetmem_dmirror_get_stats(0, NULL), -EINVAL);
}

TEST(open_close_many)
{
	struct hetmem_dmirror_stats st;
	struct dmirror *m[8];
	int i, ret;

	for (i = 0; i < 8; i++) {
		ret = hetmem_dmirror_open(i & 1, &m[i]);
		if (ret == -EOPNOTSUPP)
			SKIP(return, "no usable userfaultfd in this process");
		ASSERT_EQ(ret, 0);
	}
	ASSERT_EQ(hetmem_dmirror_get_stats(1, &st), 0);
	EXPECT_EQ(st.mirrors, 4);
	for (i = 0; i < 8; i++)
		hetmem_dmirror_close(m[i]);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrors, 0);
	dm_release_process_state();
}

/* An invalid command must fail with @err and leave the struct untouched. */
static void expect_rejected(struct dmirror *m, unsigned long req, uint64_t addr,
			    uint64_t npages, int err)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = addr, .ptr = 0x1000, .npages = npages,
		.cpages = 0xdead, .faults = 0xbeef,
	};
	struct hmm_dmirror_cmd old = cmd;

	EXPECT_EQ(hetmem_dmirror_cmd(m, req, &cmd), err);
	EXPECT_EQ(memcmp(&cmd, &old, sizeof(cmd)), 0);
}

TEST_F(dmirror, cmd_validation)
{
	unsigned long top = ~0UL & HETMEM_PAGE_MASK;
	struct hmm_dmirror_cmd cmd = { 0 };
	void *buf = map_anon(1, PROT_READ | PROT_WRITE);

	ASSERT_NONNULL(buf);
	EXPECT_EQ(hetmem_dmirror_cmd(NULL, HMM_DMIRROR_READ, &cmd), -EINVAL);
	EXPECT_EQ(hetmem_dmirror_cmd(self->mirror, HMM_DMIRROR_READ, NULL), -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_READ, (uintptr_t)buf + 8, 1, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_WRITE, (uintptr_t)buf, 0, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_SNAPSHOT, top, 2, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_READ, (uintptr_t)buf, 1UL << 60, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_READ, (uintptr_t)buf, ~0UL, -EINVAL);
	/* FLAGS passes its word in npages and is validated like the rest. */
	expect_rejected(self->mirror, HMM_DMIRROR_FLAGS, (uintptr_t)buf, 0, -EINVAL);
	/* Unknown requests, including near misses of real ones. */
	expect_rejected(self->mirror, _IOWR('H', 0x09, struct hmm_dmirror_cmd),
			(uintptr_t)buf, 1, -EINVAL);
	expect_rejected(self->mirror, _IOW('H', 0x00, struct hmm_dmirror_cmd),
			(uintptr_t)buf, 1, -EINVAL);
	expect_rejected(self->mirror, 0x1234, (uintptr_t)buf, 1, -EINVAL);
	/* The device-memory commands validate the same way. */
	expect_rejected(self->mirror, HMM_DMIRROR_MIGRATE_TO_DEV, (uintptr_t)buf, 0, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_MIGRATE_TO_SYS, (uintptr_t)buf + 1, 1, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_EXCLUSIVE, (uintptr_t)buf, 0, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_CHECK_EXCLUSIVE, (uintptr_t)buf, ~0UL, -EINVAL);
	expect_rejected(self->mirror, HMM_DMIRROR_RELEASE, (uintptr_t)buf, 0, -EINVAL);
	/* Success copies back, with cpages and faults cleared. */
	cmd = (struct hmm_dmirror_cmd){ .addr = (uintptr_t)buf,
		.npages = HMM_DMIRROR_FLAG_FAIL_ALLOC, .cpages = 7, .faults = 7 };
	EXPECT_EQ(hetmem_dmirror_cmd(self->mirror, HMM_DMIRROR_FLAGS, &cmd), 0);
	EXPECT_EQ(cmd.cpages, 0);
	EXPECT_EQ(cmd.faults, 0);
	munmap(buf, PAGE);
}

TEST_F(dmirror, bad_user_buffer)
{
	unsigned long npages = 4;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *none = map_anon(npages, PROT_NONE);
	struct hmm_dmirror_cmd cmd = { .addr = (uintptr_t)buf, .npages = npages,
				       .cpages = 3, .faults = 3 };

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(none);
	fill_pattern(buf, npages, 1);
	EXPECT_EQ(hetmem_dmirror_cmd(self->mirror, HMM_DMIRROR_READ, &cmd), -EFAULT);
	EXPECT_EQ(cmd.cpages, 3);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, none, npages, NULL), -EFAULT);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, none, npages, NULL), -EFAULT);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, none, npages, NULL), -EFAULT);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, NULL, npages, NULL), -EFAULT);
	/* A failed WRITE changed nothing. */
	EXPECT_TRUE(has_pattern(buf, npages, 1));
	munmap(buf, npages * PAGE);
	munmap(none, npages * PAGE);
}

/* hmm-tests.c anon_read, over more than one fault batch. */
TEST_F(dmirror, anon_read)
{
	unsigned long npages = 100;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	fill_pattern(buf, npages, 0x1000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_TRUE(has_pattern(out, npages, 0x1000));
	/* Mirrored now: the second READ needs no fault round. */
	memset(out, 0, npages * PAGE);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_EQ(cmd.faults, 0);
	EXPECT_TRUE(has_pattern(out, npages, 0x1000));
	/* A CPU write needs no event: the device reads through the page. */
	fill_pattern(buf, 1, 0x2000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, 1, &cmd), 0);
	EXPECT_EQ(cmd.faults, 0);
	EXPECT_TRUE(page_has_pattern(out, 0, 0x2000));
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}

/* hmm-tests.c anon_write. */
TEST_F(dmirror, anon_write)
{
	unsigned long npages = 70;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *in = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(in);
	fill_pattern(in, npages, 0x3000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, in, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_TRUE(has_pattern(buf, npages, 0x3000));
	/* Writable translations are cached too. */
	fill_pattern(in, npages, 0x4000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, in, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 0);
	EXPECT_TRUE(has_pattern(buf, npages, 0x4000));
	munmap(buf, npages * PAGE);
	munmap(in, npages * PAGE);
}

/* Read-faulted pages need a write fault before the device may write. */
TEST_F(dmirror, read_then_write)
{
	unsigned long npages = 8;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(tmp);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, &cmd), 0);
	EXPECT_TRUE(all_bytes(tmp, npages * PAGE, 0));
	EXPECT_EQ(cmd.faults, 1);
	fill_pattern(tmp, npages, 0x5000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_TRUE(has_pattern(buf, npages, 0x5000));
	munmap(buf, npages * PAGE);
	munmap(tmp, npages * PAGE);
}

/* hmm-tests.c anon_read_prot / anon_write_prot on a read-only mapping. */
TEST_F(dmirror, read_only_mapping)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(tmp);
	fill_pattern(buf, npages, 0x6000);
	ASSERT_EQ(mprotect(buf, npages * PAGE, PROT_READ), 0);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x6000));
	fill_pattern(tmp, npages, 0x7000);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), -EPERM);
	EXPECT_TRUE(has_pattern(buf, npages, 0x6000));
	munmap(buf, npages * PAGE);
	munmap(tmp, npages * PAGE);
}

TEST_F(dmirror, prot_none_mapping)
{
	unsigned long npages = 4;
	void *buf = map_anon(npages, PROT_NONE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	memset(out, 0xab, npages * PAGE);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), -EFAULT);
	EXPECT_TRUE(all_bytes(out, npages * PAGE, 0xab));
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, out, npages, NULL), -EFAULT);
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}

/*
 * mprotect() sends no invalidation: the cached translations stay, and the
 * failed copy must turn into a fault round that reports the new state.
 */
TEST_F(dmirror, mprotect_after_mirroring)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(tmp);
	fill_pattern(buf, npages, 0x8000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, &cmd), 0);
	ASSERT_EQ(mprotect(buf, npages * PAGE, PROT_NONE), 0);
	memset(tmp, 0xab, npages * PAGE);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, NULL), -EFAULT);
	EXPECT_TRUE(all_bytes(tmp, npages * PAGE, 0xab));

	ASSERT_EQ(mprotect(buf, npages * PAGE, PROT_READ | PROT_WRITE), 0);
	fill_pattern(tmp, npages, 0x9000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, &cmd), 0);
	ASSERT_TRUE(has_pattern(buf, npages, 0x9000));
	ASSERT_EQ(mprotect(buf, npages * PAGE, PROT_READ), 0);
	fill_pattern(tmp, npages, 0xa000);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, tmp, npages, NULL), -EPERM);
	EXPECT_TRUE(has_pattern(buf, npages, 0x9000));
	/* Reading is still allowed, and sees the CPU's data. */
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, tmp, npages, &cmd), 0);
	EXPECT_TRUE(has_pattern(tmp, npages, 0x9000));
	munmap(buf, npages * PAGE);
	munmap(tmp, npages * PAGE);
}

static int expected_result(int prot, bool write)
{
	if (!(prot & PROT_READ))
		return -EFAULT;
	if (write && !(prot & PROT_WRITE))
		return -EPERM;
	return 0;
}

/* One cell of prot_matrix: @prot on a (maybe already mirrored) range. */
static void prot_case(struct dmirror *m, int prot, bool write, bool cached,
		      void *tmp, unsigned long npages)
{
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	int want = expected_result(prot, write);

	ASSERT_NONNULL(buf);
	fill_pattern(buf, npages, 0x100);
	if (cached)
		ASSERT_EQ(dm_cmd(m, HMM_DMIRROR_WRITE, buf, buf, npages, NULL), 0);
	ASSERT_EQ(mprotect(buf, npages * PAGE, prot), 0);
	fill_pattern(tmp, npages, 0x200);
	EXPECT_EQ(dm_cmd(m, write ? HMM_DMIRROR_WRITE : HMM_DMIRROR_READ, buf, tmp,
			 npages, NULL), want);
	ASSERT_EQ(mprotect(buf, npages * PAGE, PROT_READ), 0);
	/* Data moves only on success; a failed command changes nothing. */
	EXPECT_TRUE(has_pattern(buf, npages, write && !want ? 0x200 : 0x100));
	EXPECT_TRUE(has_pattern(tmp, npages, !write && !want ? 0x100 : 0x200));
	munmap(buf, npages * PAGE);
}

/* Every protection, for a fresh range and for one mirrored read-write. */
TEST_F(dmirror, prot_matrix)
{
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE };
	unsigned long npages = 4;
	void *tmp = map_anon(npages, PROT_READ | PROT_WRITE);
	unsigned int p, w, cached;

	ASSERT_NONNULL(tmp);
	for (cached = 0; cached < 2; cached++)
		for (p = 0; p < 3; p++)
			for (w = 0; w < 2; w++)
				prot_case(self->mirror, prots[p], w, cached, tmp, npages);
	munmap(tmp, npages * PAGE);
}

static bool have_zero_page_reporting(void)
{
	struct hetmem_mm_caps caps;

	return !hetmem_mm_probe(&caps) && (caps.pagemap_scan || caps.pagemap_pfn);
}

/* Untouched anonymous memory reads as zeros through the zero page. */
TEST_F(dmirror, zero_page)
{
	unsigned long i, npages = 8;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	unsigned char snap[8];
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	/* A snapshot never faults: nothing is there yet. */
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	for (i = 0; i < npages; i++)
		EXPECT_EQ(snap[i], HMM_DMIRROR_PROT_NONE);
	memset(out, 0xab, npages * PAGE);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_TRUE(all_bytes(out, npages * PAGE, 0));
	if (!have_zero_page_reporting())
		SKIP(return, "the zero page cannot be recognised on this kernel");
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, NULL), 0);
	for (i = 0; i < npages; i++)
		EXPECT_EQ(snap[i], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	/* The CPU replaces the zero page; the device must see the new data. */
	fill_pattern(buf, 1, 0xc000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, NULL), 0);
	EXPECT_EQ(snap[0], HMM_DMIRROR_PROT_WRITE);
	EXPECT_EQ(snap[1], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_TRUE(page_has_pattern(out, 0, 0xc000));
	EXPECT_TRUE(all_bytes((char *)out + PAGE, (npages - 1) * PAGE, 0));
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}

/*
 * Replacing the mapping (an unmap and a new mapping at the same address)
 * drops the translations; the device then sees the new mapping's data.
 * MAP_FIXED over the old mapping does both at once, without the window in
 * which another thread could map its own memory into the hole.
 */
TEST_F(dmirror, remap_invalidates)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hetmem_dmirror_stats st0, st1;
	struct hmm_dmirror_cmd cmd;
	void *again;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	fill_pattern(buf, npages, 0xd000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	ASSERT_EQ(cmd.faults, 1);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	ASSERT_EQ(cmd.faults, 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st0), 0);
	EXPECT_EQ(st0.mirrored_pages, npages);
	again = mmap(buf, npages * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(again == buf);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st1), 0);
	EXPECT_EQ(st1.mirrored_pages, 0);
	EXPECT_GT(st1.invalidations, st0.invalidations);
	fill_pattern(buf, npages, 0xe000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_TRUE(has_pattern(out, npages, 0xe000));
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}

/* munmap() alone: the translations go, and so does the device's access. */
TEST_F(dmirror, munmap_invalidates)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hetmem_dmirror_stats st;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	fill_pattern(buf, npages, 0xd000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	ASSERT_EQ(munmap(buf, npages * PAGE), 0);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrored_pages, 0);
	memset(out, 0xab, npages * PAGE);
	if (!still_unmapped(buf, npages * PAGE))
		SKIP(goto out, "the unmapped range was reused meanwhile");
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), -EFAULT);
	EXPECT_TRUE(all_bytes(out, npages * PAGE, 0xab));
out:
	munmap(out, npages * PAGE);
}

/* A hole in the middle fails the whole READ, with or without the event. */
TEST_F(dmirror, partial_munmap)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	char *mid;
	int ret;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	fill_pattern(buf, npages, 0xf000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	mid = (char *)buf + 6 * PAGE;
	ASSERT_EQ(munmap(mid, 2 * PAGE), 0);
	memset(out, 0xab, npages * PAGE);
	/* Possibly before the monitor delivered the UNMAP event. */
	ret = dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	if (!still_unmapped(mid, 2 * PAGE))
		SKIP(goto out, "the unmapped range was reused meanwhile");
	EXPECT_EQ(ret, -EFAULT);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), -EFAULT);
	EXPECT_TRUE(all_bytes(out, npages * PAGE, 0xab));
	/* The pieces on either side still work. */
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, 6, NULL), 0);
	EXPECT_TRUE(has_pattern(out, 6, 0xf000));
	/*
	 * As in the kernel, a WRITE stops at the hole but the pages before it
	 * (mapped writable by the READ's fault) have been written by then.
	 */
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, out, npages, NULL), -EFAULT);
out:
	munmap(buf, 6 * PAGE);
	munmap(mid + 2 * PAGE, 8 * PAGE);
	munmap(out, npages * PAGE);
}

/* MADV_DONTNEED sends CLEAR: the device sees zeros and faults again. */
TEST_F(dmirror, madvise_dontneed)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	fill_pattern(buf, npages, 0x11000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	ASSERT_EQ(madvise(buf, npages * PAGE, MADV_DONTNEED), 0);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	memset(out, 0xab, npages * PAGE);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_TRUE(all_bytes(out, npages * PAGE, 0));
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}

/*
 * hmm-tests.c anon_snapshot-like: a hole, PROT_NONE, not present, the zero
 * page, a written page and a written page made read-only.
 */
TEST_F(dmirror, snapshot_mixed)
{
	unsigned long npages = 6;
	char *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	unsigned char tmp[PAGE], snap[6];
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	buf[4 * PAGE] = 1;
	buf[5 * PAGE] = 1;
	ASSERT_EQ(munmap(buf, PAGE), 0);
	ASSERT_EQ(mprotect(buf + PAGE, PAGE, PROT_NONE), 0);
	ASSERT_EQ(mprotect(buf + 5 * PAGE, PAGE, PROT_READ), 0);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf + 3 * PAGE, tmp, 1, NULL), 0);
	memset(snap, 0x5a, sizeof(snap));
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	EXPECT_EQ(cmd.faults, 0);
	if (still_unmapped(buf, PAGE))
		EXPECT_EQ(snap[0], HMM_DMIRROR_PROT_ERROR);
	else
		TH_LOG("the hole was reused meanwhile; not checked");
	EXPECT_EQ(snap[1], HMM_DMIRROR_PROT_ERROR);
	EXPECT_EQ(snap[2], HMM_DMIRROR_PROT_NONE);
	if (have_zero_page_reporting())
		EXPECT_EQ(snap[3], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	EXPECT_EQ(snap[4], HMM_DMIRROR_PROT_WRITE);
	EXPECT_EQ(snap[5], HMM_DMIRROR_PROT_READ);
	munmap(buf + PAGE, (npages - 1) * PAGE);
}

/* Snapshots cross the 32-page chunks and report each page. */
TEST_F(dmirror, snapshot_large)
{
	unsigned long i, npages = 200;
	char *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	unsigned char snap[200];
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	for (i = 0; i < npages; i += 2)
		buf[i * PAGE] = 1;
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, &cmd), 0);
	EXPECT_EQ(cmd.cpages, npages);
	for (i = 0; i < npages; i++)
		EXPECT_EQ(snap[i], i % 2 ? HMM_DMIRROR_PROT_NONE : HMM_DMIRROR_PROT_WRITE);
	munmap(buf, npages * PAGE);
}

/* Two devices mirror the same memory; an unmap invalidates both. */
TEST_F(dmirror, two_devices)
{
	unsigned long npages = 16;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hetmem_dmirror_stats st0, st1;
	struct hmm_dmirror_cmd cmd;
	struct dmirror *other;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	ASSERT_EQ(hetmem_dmirror_open(1, &other), 0);
	fill_pattern(buf, npages, 0x12000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(out, npages, 0x12000));
	memset(out, 0, npages * PAGE);
	ASSERT_EQ(dm_cmd(other, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 1);
	EXPECT_TRUE(has_pattern(out, npages, 0x12000));
	/* A CPU change is seen by both. */
	fill_pattern(buf, npages, 0x13000);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(out, npages, 0x13000));
	ASSERT_EQ(dm_cmd(other, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	EXPECT_TRUE(has_pattern(out, npages, 0x13000));
	ASSERT_EQ(munmap(buf, npages * PAGE), 0);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st0), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(1, &st1), 0);
	EXPECT_EQ(st0.mirrored_pages, 0);
	EXPECT_EQ(st1.mirrored_pages, 0);
	if (still_unmapped(buf, npages * PAGE)) {
		EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL),
			  -EFAULT);
		EXPECT_EQ(dm_cmd(other, HMM_DMIRROR_READ, buf, out, npages, NULL), -EFAULT);
	}
	hetmem_dmirror_close(other);
	munmap(out, npages * PAGE);
}

/* A range invalidation raised by hand erases exactly that range. */
TEST_F(dmirror, manual_invalidation)
{
	unsigned long npages = 8;
	char *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hetmem_dmirror_stats st;
	struct mmu_notifier_range range;
	struct hmm_dmirror_cmd cmd;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, buf, npages, NULL), 0);
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, MMU_NOTIFIER_RANGE_BLOCKABLE,
				self->mm, (unsigned long)buf + 2 * PAGE,
				(unsigned long)buf + 4 * PAGE);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrored_pages, npages - 2);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, &cmd), 0);
	EXPECT_EQ(cmd.faults, 1);
	/* MIGRATE events of other owners erase too. */
	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_MIGRATE,
				      MMU_NOTIFIER_RANGE_BLOCKABLE, self->mm,
				      (unsigned long)buf, (unsigned long)buf + PAGE,
				      NULL);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrored_pages, npages - 1);
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}

/* Table memory stays within 16 bytes per mirrored page, and is freed. */
TEST_F(dmirror, table_memory)
{
	unsigned long npages = 4096;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hetmem_dmirror_stats st;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrored_pages, npages);
	EXPECT_GT(st.table_bytes, 0);
	EXPECT_LE(st.table_bytes, 16 * npages);
	EXPECT_EQ(st.reads, 1);
	EXPECT_EQ(st.fault_rounds, 1);
	ASSERT_EQ(munmap(buf, npages * PAGE), 0);
	ASSERT_EQ(hetmem_mm_sync(self->mm, SYNC_TIMEOUT), 0);
	/* Emptied nodes are freed by the next command, not by the callback. */
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, out, out, 1, NULL), 0);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_FLAGS, out, NULL, 1, NULL), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_GT(st.table_bytes, 0);
	EXPECT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, out, out, 1, NULL), 0);
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrored_pages, 1);
	/* One path of four nodes (4 KiB and a count each) is left. */
	EXPECT_LE(st.table_bytes, 4 * (PAGE + 64));
	hetmem_dmirror_close(self->mirror);
	self->mirror = NULL;
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrors, 0);
	munmap(out, npages * PAGE);
}

/* close() with translations still cached frees everything. */
TEST_F(dmirror, close_with_entries)
{
	unsigned long npages = 600;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	struct hetmem_dmirror_stats st;

	ASSERT_NONNULL(buf);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_WRITE, buf, buf, npages, NULL), 0);
	hetmem_dmirror_close(self->mirror);
	self->mirror = NULL;
	ASSERT_EQ(hetmem_dmirror_get_stats(0, &st), 0);
	EXPECT_EQ(st.mirrored_pages, 0);
	EXPECT_EQ(st.table_bytes, 0);
	munmap(buf, npages * PAGE);
}

/* A forked child using its parent's mirror finds the address space gone. */
TEST_F(dmirror, inherited_mirror)
{
	unsigned long npages = 4;
	void *buf = map_anon(npages, PROT_READ | PROT_WRITE);
	void *out = map_anon(npages, PROT_READ | PROT_WRITE);
	int status;
	pid_t pid;

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(out);
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int r1 = dm_cmd(self->mirror, HMM_DMIRROR_READ, buf, out, npages, NULL);
		int r2 = dm_cmd(self->mirror, HMM_DMIRROR_SNAPSHOT, buf, out, npages, NULL);

		_exit(r1 == -EFAULT && r2 == -EINVAL ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	munmap(buf, npages * PAGE);
	munmap(out, npages * PAGE);
}
