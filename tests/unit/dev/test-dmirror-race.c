/* SPDX-License-Identifier: MIT */
/*
 * hetmem - the dmirror reference device against concurrent changes of the
 * CPU side: unmapping and remapping under a device that keeps reading
 * (the kernel's teardown race, where userspace learns of the unmap only
 * after the fact), and MADV_DONTNEED racing with CPU writes and two device
 * readers. Every READ must end with 0 and data the CPU had at some point,
 * or with -EFAULT; never a crash, a hang or foreign data.
 */
#include <pthread.h>

#include "dmirror-common.h"

#define RACE_MS 1000
#define HALF 32UL
#define OLD_SEED 0x40000u
#define NEW_SEED 0x50000u

struct race {
	struct dmirror *mirror;
	char *buf;
	int memfd;
	int stop;
	unsigned long reads_ok, reads_fault, reads_bad;
	bool lost_half;			/* the hole was taken by someone else */
};

/* Replace the second half with @prot memory: memfd data, or a PROT_NONE void. */
static bool replace_half(struct race *r, int flags, bool data)
{
	char *half = r->buf + HALF * PAGE;
	void *p;

	if (data)
		p = mmap(half, HALF * PAGE, PROT_READ, MAP_PRIVATE | flags, r->memfd, 0);
	else
		p = mmap(half, HALF * PAGE, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	return p == half;
}

/*
 * Unmap the second half and map the prefilled memfd there, then swap it
 * for a PROT_NONE mapping and back, in a loop. The memfd's data appears
 * at once, so there is no window of zeros. A hole is refilled only with
 * MAP_FIXED_NOREPLACE: another thread (the monitor, TSan) may have mapped
 * its own memory there meanwhile, and then this thread stops for good.
 */
static void *remapper(void *arg)
{
	struct race *r = arg;
	char *half = r->buf + HALF * PAGE;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (munmap(half, HALF * PAGE))
			return (void *)1;
		harness_sleep_us(50);
		if (!replace_half(r, MAP_FIXED_NOREPLACE, true)) {
			r->lost_half = true;
			return errno == EEXIST ? NULL : (void *)1;
		}
		harness_sleep_us(200);
		if (!replace_half(r, MAP_FIXED, false))
			return (void *)1;
		harness_sleep_us(50);
		if (!replace_half(r, MAP_FIXED, true))
			return (void *)1;
		harness_sleep_us(200);
	}
	return NULL;
}

/* Each page holds the old mapping's data, or (second half) the new one's. */
static bool race_data_ok(const char *out)
{
	unsigned long pg;

	for (pg = 0; pg < 2 * HALF; pg++) {
		if (page_has_pattern(out, pg, OLD_SEED))
			continue;
		/* The memfd's page pg - HALF carries pattern page pg - HALF. */
		if (pg >= HALF && page_has_pattern(out + HALF * PAGE, pg - HALF, NEW_SEED))
			continue;
		return false;
	}
	return true;
}

static void race_reader(struct race *r, char *out, int64_t end)
{
	int ret;

	while (harness_now_ms() < end) {
		ret = dm_cmd(r->mirror, HMM_DMIRROR_READ, r->buf, out, 2 * HALF, NULL);
		if (ret == -EFAULT)
			r->reads_fault++;
		else if (ret == 0 && race_data_ok(out))
			r->reads_ok++;
		else
			r->reads_bad++;
	}
}

TEST_F_TIMEOUT(dmirror, teardown_race, 60)
{
	struct race r = { .mirror = self->mirror };
	char *out = map_anon(2 * HALF, PROT_READ | PROT_WRITE);
	char *seedbuf = map_anon(HALF, PROT_READ | PROT_WRITE);
	pthread_t thr;
	void *res;

	ASSERT_NONNULL(out);
	ASSERT_NONNULL(seedbuf);
	r.buf = map_anon(2 * HALF, PROT_READ | PROT_WRITE);
	ASSERT_NONNULL(r.buf);
	fill_pattern(r.buf, 2 * HALF, OLD_SEED);
	r.memfd = memfd_create("dmirror-race", MFD_CLOEXEC);
	ASSERT_GE(r.memfd, 0);
	fill_pattern(seedbuf, HALF, NEW_SEED);
	ASSERT_EQ(pwrite(r.memfd, seedbuf, HALF * PAGE, 0), (ssize_t)(HALF * PAGE));
	ASSERT_EQ(dm_cmd(self->mirror, HMM_DMIRROR_READ, r.buf, out, 2 * HALF, NULL), 0);
	ASSERT_EQ(pthread_create(&thr, NULL, remapper, &r), 0);
	race_reader(&r, out, harness_now_ms() + RACE_MS);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(pthread_join(thr, &res), 0);
	EXPECT_NULL(res);
	TH_LOG("reads: %lu ok, %lu -EFAULT, %lu bad", r.reads_ok, r.reads_fault,
	       r.reads_bad);
	EXPECT_EQ(r.reads_bad, 0);
	EXPECT_GT(r.reads_ok + r.reads_fault, 0);
	close(r.memfd);
	munmap(r.buf, (r.lost_half ? 1 : 2) * HALF * PAGE);
	munmap(out, 2 * HALF * PAGE);
	munmap(seedbuf, HALF * PAGE);
}

/*
 * DONTNEED race: pages hold a generation number in their first word and
 * zeros elsewhere. One thread bumps the generations (single 8-byte
 * stores), one zaps the pages, two read through the device.
 */
#define DN_PAGES 16UL

struct dn_race {
	struct dmirror *mirror;
	uint64_t *buf;
	uint64_t gen;
	int stop;
	int bad;
};

static uint64_t *dn_word(uint64_t *buf, unsigned long pg)
{
	return (uint64_t *)((char *)buf + pg * PAGE);
}

static void *dn_writer(void *arg)
{
	struct dn_race *r = arg;
	unsigned long pg;
	uint64_t gen;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		gen = __atomic_add_fetch(&r->gen, 1, __ATOMIC_RELAXED);
		for (pg = 0; pg < DN_PAGES; pg++)
			__atomic_store_n(dn_word(r->buf, pg), gen, __ATOMIC_RELAXED);
		if (gen % 4 == 0)
			madvise(r->buf, DN_PAGES * PAGE, MADV_DONTNEED);
	}
	return NULL;
}

/* Only the first word may be non-zero, and no newer than what was written. */
static bool dn_page_ok(const char *page, uint64_t max_gen)
{
	uint64_t w;

	memcpy(&w, page, sizeof(w));
	return w <= max_gen && all_bytes(page + 8, PAGE - 8, 0);
}

static void *dn_reader(void *arg)
{
	struct dn_race *r = arg;
	char *out = map_anon(DN_PAGES, PROT_READ | PROT_WRITE);
	unsigned long pg;
	int ret;

	if (!out) {
		__atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		ret = dm_cmd(r->mirror, HMM_DMIRROR_READ, r->buf, out, DN_PAGES, NULL);
		if (ret && ret != -EBUSY)
			__atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED);
		for (pg = 0; !ret && pg < DN_PAGES; pg++)
			if (!dn_page_ok(out + pg * PAGE, __atomic_load_n(&r->gen, __ATOMIC_RELAXED)))
				__atomic_store_n(&r->bad, 2, __ATOMIC_RELAXED);
	}
	munmap(out, DN_PAGES * PAGE);
	return NULL;
}

TEST_F_TIMEOUT(dmirror, dontneed_race, 60)
{
	struct dn_race r = { .mirror = self->mirror };
	pthread_t thr[3];
	int i;

	r.buf = map_anon(DN_PAGES, PROT_READ | PROT_WRITE);
	ASSERT_NONNULL(r.buf);
	ASSERT_EQ(pthread_create(&thr[0], NULL, dn_writer, &r), 0);
	ASSERT_EQ(pthread_create(&thr[1], NULL, dn_reader, &r), 0);
	ASSERT_EQ(pthread_create(&thr[2], NULL, dn_reader, &r), 0);
	harness_sleep_ms(RACE_MS);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(pthread_join(thr[i], NULL), 0);
	EXPECT_EQ(r.bad, 0);
	munmap(r.buf, DN_PAGES * PAGE);
}
