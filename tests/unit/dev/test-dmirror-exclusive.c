/* SPDX-License-Identifier: MIT */
/*
 * hetmem - device-exclusive access through dmirror's EXCLUSIVE and
 * CHECK_EXCLUSIVE commands: the kernel HMM selftest's exclusive,
 * exclusive_mprotect and exclusive_cow scenarios, and the refusals for
 * shared and read-only memory.
 */
#include "dmirror-common.h"

FIXTURE(excl) {
	struct dmirror *m;
	char *p;
	char *out;
	unsigned long n;
};

FIXTURE_SETUP(excl)
{
	int ret;

	if (!dm_can_migrate())
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
	ret = hetmem_dmirror_open(0, &self->m);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no usable userfaultfd in this process");
	ASSERT_EQ(ret, 0);
	self->n = 16;
	self->p = map_anon(self->n, PROT_READ | PROT_WRITE);
	self->out = map_anon(self->n, PROT_READ | PROT_WRITE);
	ASSERT_NONNULL(self->p);
	ASSERT_NONNULL(self->out);
}

FIXTURE_TEARDOWN(excl)
{
	if (self->p)
		munmap(self->p, self->n * PAGE);
	if (self->out)
		munmap(self->out, self->n * PAGE);
	hetmem_dmirror_close(self->m);
	dm_release_process_state();
}

static void make_exclusive(FIXTURE_DATA(excl) *self, uint32_t seed)
{
	struct hmm_dmirror_cmd cmd;

	memset(self->out, 0, self->n * PAGE);
	ASSERT_EQ(dm_cmd(self->m, HMM_DMIRROR_EXCLUSIVE, self->p, self->out, self->n, &cmd), 0);
	ASSERT_EQ(cmd.cpages, self->n);
	ASSERT_TRUE(has_pattern(self->out, self->n, seed));
}

TEST_F(excl, exclusive)
{
	uint32_t *w;
	unsigned long pg;

	fill_pattern(self->p, self->n, 0x31000);
	make_exclusive(self, 0x31000);
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_CHECK_EXCLUSIVE, self->p, NULL, self->n, NULL),
		  -EPERM);
	EXPECT_GE(dm_stats(0).exclusive, self->n);
	/* The device may still read its exclusive pages. */
	memset(self->out, 0, self->n * PAGE);
	ASSERT_EQ(dm_cmd(self->m, HMM_DMIRROR_READ, self->p, self->out, self->n, NULL), 0);
	EXPECT_TRUE(has_pattern(self->out, self->n, 0x31000));
	/* The CPU touches every page: right data, and it can write. */
	for (pg = 0; pg < self->n; pg++) {
		w = (uint32_t *)(self->p + pg * PAGE);
		EXPECT_TRUE(page_has_pattern(self->p, pg, 0x31000));
		w[0] += 1;
		EXPECT_EQ(w[0], 0x31000u + pg * PAGE / 4 + 1);
	}
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_CHECK_EXCLUSIVE, self->p, NULL, self->n, NULL), 0);
}

/* A CPU read ends exclusivity too, not only a write. */
TEST_F(excl, exclusive_cpu_read_revokes)
{
	fill_pattern(self->p, self->n, 0x32000);
	make_exclusive(self, 0x32000);
	touch_read(self->p, self->n);
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_CHECK_EXCLUSIVE, self->p, NULL, self->n, NULL), 0);
	EXPECT_TRUE(has_pattern(self->p, self->n, 0x32000));
}

TEST_F(excl, exclusive_mprotect)
{
	fill_pattern(self->p, self->n, 0x33000);
	make_exclusive(self, 0x33000);
	ASSERT_EQ(mprotect(self->p, self->n * PAGE, PROT_READ), 0);
	fill_pattern(self->out, self->n, 0x34000);
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_WRITE, self->p, self->out, self->n, NULL), -EPERM);
	EXPECT_TRUE(has_pattern(self->p, self->n, 0x33000));
}

/* The kernel's exclusive_cow: fork restores the pages, then CoW as usual. */
TEST_F(excl, exclusive_cow)
{
	unsigned long i, words = self->n * PAGE / sizeof(int);
	int *ptr = (int *)self->p;
	bool ok = true;
	pid_t pid;

	for (i = 0; i < words; i++)
		ptr[i] = (int)i;
	memset(self->out, 0, self->n * PAGE);
	ASSERT_EQ(dm_cmd(self->m, HMM_DMIRROR_EXCLUSIVE, self->p, self->out, self->n, NULL), 0);
	fflush(NULL);
	pid = fork();
	ASSERT_GE(pid, 0);
	for (i = 0; i < words; i++)
		if (ptr[i] != (int)i)
			ok = false;
	for (i = 0; i < words; i++)
		ptr[i]++;
	for (i = 0; i < words; i++)
		if (ptr[i] != (int)i + 1)
			ok = false;
	if (pid == 0)
		_exit(ok ? 0 : 1);
	EXPECT_TRUE(ok);
	EXPECT_TRUE(dm_child_exited(pid, 0, NULL));
	/* The child's increments stayed in the child. */
	for (i = 0; i < words; i++)
		if (ptr[i] != (int)i + 1) {
			EXPECT_EQ(ptr[i], (int)i + 1);
			break;
		}
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_CHECK_EXCLUSIVE, self->p, NULL, self->n, NULL), 0);
}

TEST_F(excl, exclusive_shared)
{
	char *p = mmap(NULL, self->n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct hmm_dmirror_cmd cmd = { .cpages = 77 };

	ASSERT_NE(p, MAP_FAILED);
	fill_pattern(p, self->n, 0x35000);
	cmd.addr = (uintptr_t)p;
	cmd.ptr = (uintptr_t)self->out;
	cmd.npages = self->n;
	EXPECT_EQ(hetmem_dmirror_cmd(self->m, HMM_DMIRROR_EXCLUSIVE, &cmd), -EOPNOTSUPP);
	EXPECT_EQ(cmd.cpages, 77);
	EXPECT_TRUE(has_pattern(p, self->n, 0x35000));
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL, self->n, NULL), 0);
	munmap(p, self->n * PAGE);
}

/* make_device_exclusive faults writable: a read-only VMA is a GUP error. */
TEST_F(excl, exclusive_readonly)
{
	int ret;

	fill_pattern(self->p, self->n, 0x36000);
	ASSERT_EQ(mprotect(self->p, self->n * PAGE, PROT_READ), 0);
	ret = dm_cmd(self->m, HMM_DMIRROR_EXCLUSIVE, self->p, self->out, self->n, NULL);
	EXPECT_LT(ret, 0);
	EXPECT_TRUE(ret == -EFAULT || ret == -EPERM);
	EXPECT_EQ(dm_cmd(self->m, HMM_DMIRROR_CHECK_EXCLUSIVE, self->p, NULL, self->n, NULL), 0);
	EXPECT_TRUE(has_pattern(self->p, self->n, 0x36000));
}
