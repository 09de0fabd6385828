/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress: no write is ever lost to migration.
 *
 * A 4 MiB buffer of 1024 pages; in each page, word 0 is a counter that
 * only the writer thread increments (non-atomically, keeping its own
 * expected counts) and word 1 the page's index. A migrator thread keeps
 * moving random chunks of 1, 16 or 512 pages to device memory and, half
 * of the time, back with MIGRATE_TO_SYS (otherwise the writer's faults
 * bring them back); a reader thread checks word 1 of random pages. The
 * writer checks its counter and the index on every access, the device
 * output of every migration is checked for misplaced pages, and at the
 * end every counter must equal the writer's count.
 *
 *  - one_device: all migrations on device 0;
 *  - two_devices: the migrator alternates between devices 0 and 1;
 *  - huge_pages: one device, the buffer 2 MiB aligned with MADV_HUGEPAGE,
 *    and half of the chunks whole aligned 2 MiB windows, so that huge
 *    pages move as one PMD to device folios and back (whole on a fault
 *    too) while the writer and the reader run.
 *
 * Runs until both MIN_MIGRATIONS migrations (a quarter of them for
 * huge_pages) and harness_duration_s() are reached; HARD_CAP_MS fails the
 * case.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/memremap.h>

#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE
#define NPAGES 1024UL
/* Sanitized builds run the same race about five times slower. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MIN_MIGRATIONS 2000UL
#else
#define MIN_MIGRATIONS 10000UL
#endif
#define HARD_CAP_MS 60000

struct slot {
	uint64_t count;		/* word 0 */
	uint64_t index;		/* word 1 */
};

struct run {
	struct dmirror *m[2];
	int ndev;
	bool huge;
	char *buf, *raw;
	uint64_t expected[NPAGES];	/* the writer's */
	int stop;
	int failed;
	int done[3];			/* writer, reader, migrator returned */
	pid_t tid[3];
	unsigned long migrations, to_dev_ok, to_dev_enoent, to_sys;
	unsigned long writes, reads;
	char why[160];
};

static bool can_migrate(void)
{
	struct hetmem_mm_caps caps;

	return hetmem_mm_probe(&caps) == 0 && caps.uffd && caps.uffd_move;
}

static void fail(struct run *r, const char *what, unsigned long pg,
		 uint64_t got, uint64_t want)
{
	if (!__atomic_exchange_n(&r->failed, 1, __ATOMIC_ACQ_REL))
		snprintf(r->why, sizeof(r->why), "%s: page %lu has %llu, want %llu",
			 what, pg, (unsigned long long)got, (unsigned long long)want);
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
}

static bool stopping(struct run *r)
{
	return __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE);
}

static volatile struct slot *slot(struct run *r, unsigned long pg)
{
	return (volatile struct slot *)(r->buf + pg * PG);
}

static void *writer_body(void *arg)
{
	struct run *r = arg;
	uint32_t rnd = 0x9e3779b9u;
	unsigned long pg, i;
	uint64_t v;

	while (!stopping(r)) {
		pg = harness_rand(&rnd) % NPAGES;
		/* A few neighbours too, so that chunks come back from many faults. */
		for (i = 0; i < 4 && pg + i < NPAGES; i++) {
			volatile struct slot *s = slot(r, pg + i);

			v = s->count;
			if (v != r->expected[pg + i]) {
				fail(r, "lost write", pg + i, v, r->expected[pg + i]);
				return NULL;
			}
			if (s->index != pg + i) {
				fail(r, "misplaced page (writer)", pg + i, s->index, pg + i);
				return NULL;
			}
			s->count = v + 1;
			r->expected[pg + i] = v + 1;
		}
		/*
		 * Two vCPUs run four threads here: yield now and then so that
		 * the migrator and the monitor get their share.
		 */
		if (!(__atomic_fetch_add(&r->writes, 1, __ATOMIC_RELAXED) & 255))
			sched_yield();
	}
	return NULL;
}

static void *reader_body(void *arg)
{
	struct run *r = arg;
	uint32_t rnd = 0x2545f491u;
	unsigned long pg;
	uint64_t idx;

	while (!stopping(r)) {
		pg = harness_rand(&rnd) % NPAGES;
		idx = slot(r, pg)->index;
		if (idx != pg) {
			fail(r, "misplaced page (reader)", pg, idx, pg);
			return NULL;
		}
		if (!(__atomic_fetch_add(&r->reads, 1, __ATOMIC_RELAXED) & 255))
			sched_yield();
	}
	return NULL;
}

static void *migrator_body(void *arg)
{
	static const unsigned long sizes[] = { 1, 16, 512 };
	struct run *r = arg;
	uint32_t rnd = 0x6c078965u;
	struct hmm_dmirror_cmd cmd;
	unsigned long n, start, i;
	struct dmirror *m;
	char *out;
	int ret, dev = 0;

	out = mmap(NULL, 512 * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (out == MAP_FAILED) {
		fail(r, "mmap", 0, 0, 0);
		return NULL;
	}
	while (!stopping(r)) {
		m = r->m[dev];
		n = sizes[harness_rand(&rnd) % 3];
		start = harness_rand(&rnd) % (NPAGES - n + 1);
		if (r->huge && (harness_rand(&rnd) & 1)) {
			n = HPAGE_PMD_NR;	/* a whole window: one compound entry */
			start = (harness_rand(&rnd) % (NPAGES / n)) * n;
		}
		cmd = (struct hmm_dmirror_cmd){
			.addr = (uintptr_t)(r->buf + start * PG),
			.ptr = (uintptr_t)out, .npages = n,
		};
		ret = hetmem_dmirror_cmd(m, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
		__atomic_fetch_add(&r->migrations, 1, __ATOMIC_RELAXED);
		if (ret == 0) {
			r->to_dev_ok++;
			if (cmd.cpages != n) {
				fail(r, "MIGRATE_TO_DEV cpages", start, cmd.cpages, n);
				break;
			}
			/* The device's copy of each page is that page. */
			for (i = 0; i < n; i++) {
				const struct slot *s = (const struct slot *)(out + i * PG);

				if (s->index != start + i) {
					fail(r, "misplaced page (device)", start + i,
					     s->index, start + i);
					break;
				}
			}
		} else if (ret == -ENOENT || ret == -EBUSY) {
			r->to_dev_enoent++;
		} else {
			fail(r, "MIGRATE_TO_DEV error", start, (uint64_t)-ret, 0);
			break;
		}
		if (harness_rand(&rnd) & 1) {
			ret = hetmem_dmirror_cmd(m, HMM_DMIRROR_MIGRATE_TO_SYS, &cmd);
			if (ret) {
				fail(r, "MIGRATE_TO_SYS error", start, (uint64_t)-ret, 0);
				break;
			}
			r->to_sys++;
		}
		if (r->ndev == 2)
			dev ^= 1;
	}
	munmap(out, 512 * PG);
	return NULL;
}

/* Each thread says when it returned, so a stuck one can be named. */
#define THREAD_FN(name, idx)						\
static void *name(void *arg)						\
{									\
	struct run *r = arg;						\
	void *ret;							\
									\
	r->tid[idx] = (pid_t)syscall(SYS_gettid);			\
	ret = name##_body(arg);						\
									\
	__atomic_store_n(&r->done[idx], 1, __ATOMIC_RELEASE);		\
	return ret;							\
}
THREAD_FN(writer, 0)
THREAD_FN(reader, 1)
THREAD_FN(migrator, 2)

/* Where in the kernel a thread sleeps (e.g. handle_userfault). */
static void log_wchan(pid_t tid)
{
	char path[64], buf[128] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	TH_LOG("thread %d sleeps in '%s'", (int)tid, buf);
}

/* The buffer, 2 MiB aligned inside r->raw (NPAGES pages + 2 MiB). */
static char *map_buf(struct run *r)
{
	size_t len = NPAGES * PG + HETMEM_PMD_SIZE;

	r->raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->raw == MAP_FAILED)
		return MAP_FAILED;
	r->buf = (char *)(((uintptr_t)r->raw + HETMEM_PMD_SIZE - 1) &
			  ~(HETMEM_PMD_SIZE - 1));
	madvise(r->buf, NPAGES * PG, r->huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return r->buf;
}

static void run(int ndev, bool huge)
{
	/* Half of the huge case's migrations copy 2 MiB each way. */
	unsigned long min_migrations = huge ? MIN_MIGRATIONS / 4 : MIN_MIGRATIONS;
	struct run *r = calloc(1, sizeof(*r));
	pthread_t tw, tr, tm;
	int64_t start, floor_ms, now;
	struct hmm_dmirror_cmd cmd;
	unsigned long pg;
	int i, ret;

	ASSERT_NONNULL(r);
	r->ndev = ndev;
	r->huge = huge;
	for (i = 0; i < ndev; i++) {
		ret = hetmem_dmirror_open((unsigned int)i, &r->m[i]);
		if (ret == -EOPNOTSUPP)
			SKIP(goto out, "no usable userfaultfd in this process");
		ASSERT_EQ(ret, 0);
	}
	ASSERT_NE(map_buf(r), MAP_FAILED);
	for (pg = 0; pg < NPAGES; pg++) {
		slot(r, pg)->count = 0;
		slot(r, pg)->index = pg;
	}

	ASSERT_EQ(pthread_create(&tw, NULL, writer, r), 0);
	ASSERT_EQ(pthread_create(&tr, NULL, reader, r), 0);
	ASSERT_EQ(pthread_create(&tm, NULL, migrator, r), 0);
	start = harness_now_ms();
	floor_ms = (int64_t)(harness_duration_s() * 1000);
	for (;;) {
		harness_sleep_ms(20);
		now = harness_now_ms() - start;
		if (stopping(r))
			break;
		if (__atomic_load_n(&r->migrations, __ATOMIC_RELAXED) >= min_migrations &&
		    now >= floor_ms)
			break;
		if (now > HARD_CAP_MS)
			break;
	}
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 3; i++) {
		static const char *const names[] = { "writer", "reader", "migrator" };

		if (harness_wait_int(&r->done[i], 1, 10000))
			continue;
		/* Blocked for good, most likely in a page fault: report and leave. */
		TH_LOG("the %s thread did not stop within 10 s of the stop request "
		       "(%lu migrations, %lu writes, %lu reads so far)", names[i],
		       __atomic_load_n(&r->migrations, __ATOMIC_RELAXED),
		       __atomic_load_n(&r->writes, __ATOMIC_RELAXED),
		       __atomic_load_n(&r->reads, __ATOMIC_RELAXED));
		log_wchan(r->tid[i]);
		fflush(NULL);
		_exit(1);
	}
	pthread_join(tm, NULL);
	pthread_join(tr, NULL);
	pthread_join(tw, NULL);
	TH_LOG("%lu migrations (%lu ok, %lu refused), %lu to system, %lu writes, %lu reads in %lld ms",
	       r->migrations, r->to_dev_ok, r->to_dev_enoent, r->to_sys, r->writes,
	       r->reads, (long long)(harness_now_ms() - start));
	if (r->failed)
		TH_LOG("%s", r->why);
	EXPECT_FALSE(r->failed);
	EXPECT_GE(r->migrations, min_migrations);
	EXPECT_GT(r->to_dev_ok, 0);

	/* Everything back to system memory; no write lost, no page misplaced. */
	for (i = 0; i < ndev; i++) {
		cmd = (struct hmm_dmirror_cmd){ .addr = (uintptr_t)r->buf, .npages = NPAGES };
		EXPECT_EQ(hetmem_dmirror_cmd(r->m[i], HMM_DMIRROR_MIGRATE_TO_SYS, &cmd), 0);
	}
	for (pg = 0; pg < NPAGES; pg++) {
		if (slot(r, pg)->count != r->expected[pg] || slot(r, pg)->index != pg) {
			TH_LOG("page %lu: count %llu (want %llu), index %llu", pg,
			       (unsigned long long)slot(r, pg)->count,
			       (unsigned long long)r->expected[pg],
			       (unsigned long long)slot(r, pg)->index);
			EXPECT_TRUE(false);
			break;
		}
	}
	/* And nothing left on the device: the CPU and device views agree. */
	{
		struct hetmem_devmem_stats st;

		hetmem_devmem_get_stats(&st);
		EXPECT_EQ(st.device_pages_used, 0);
	}
	munmap(r->raw, NPAGES * PG + HETMEM_PMD_SIZE);
out:
	for (i = 0; i < ndev; i++)
		hetmem_dmirror_close(r->m[i]);
	free(r);
}

FIXTURE(st) {
	int unused;
};

FIXTURE_SETUP(st)
{
	if (!can_migrate())
		SKIP(return, "no userfaultfd with UFFD_FEATURE_MOVE");
}

FIXTURE_TEARDOWN(st)
{
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
}

TEST_F_TIMEOUT(st, one_device, 90)
{
	run(1, false);
}

TEST_F_TIMEOUT(st, two_devices, 90)
{
	run(2, false);
}

TEST_F_TIMEOUT(st, huge_pages, 90)
{
	if (!harness_thp_enabled())
		SKIP(return, "transparent huge pages are disabled");
	run(1, true);
}
