/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sw_sync timelines: the kernel selftests (sync_alloc,
 * sync_fence, sync_merge, sync_wait, sync_stress_*) ported onto hetmem
 * descriptors, and the edge rules E-SW-1..5: creation at or below the
 * value, shared duplicate points, 32-bit wrap and INT_MAX steps, ordered
 * signalling under the timeline lock, destroy with -ENOENT, deadlines.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>

#include "fence/fence-work.h"
#include "harness.h"

/* The kernel selftests' status helpers, on sync_file_info(). */
#define FENCE_STATUS_ERROR (-1)
#define FENCE_STATUS_ACTIVE 0
#define FENCE_STATUS_SIGNALED 1

static int count_with_status(int fd, int status)
{
	struct sync_file_info *info = sync_file_info(fd);
	struct sync_fence_info *leaf;
	unsigned int i;
	int n = 0;

	ASSERT_NONNULL(info);
	leaf = sync_get_fence_info(info);
	for (i = 0; i < info->num_fences; i++)
		if (leaf[i].status == status ||
		    (status == FENCE_STATUS_ERROR && leaf[i].status < 0))
			n++;
	sync_file_info_free(info);
	return n;
}

static int fence_size(int fd)
{
	struct sync_file_info *info = sync_file_info(fd);
	int n;

	ASSERT_NONNULL(info);
	n = info->num_fences;
	sync_file_info_free(info);
	return n;
}

static int status_of(int fd)
{
	int status = 12345;

	ASSERT_EQ(hetmem_sync_file_status(fd, &status), 0);
	return status;
}

/* --- sync_alloc.c ------------------------------------------------------- */

TEST(sync_alloc_timeline)
{
	int tl = sw_sync_timeline_create();

	ASSERT_GE(tl, 0);
	EXPECT_EQ(sw_sync_timeline_is_valid(tl), 1);
	EXPECT_TRUE(fcntl(tl, F_GETFD) & FD_CLOEXEC);
	sw_sync_timeline_destroy(tl);
	EXPECT_EQ(sw_sync_timeline_is_valid(tl), 0);
}

TEST(sync_alloc_fence)
{
	int tl = sw_sync_timeline_create();
	int fence;

	ASSERT_GE(tl, 0);
	fence = sw_sync_fence_create(tl, "allocFence", 1);
	ASSERT_GE(fence, 0);
	EXPECT_EQ(sw_sync_fence_is_valid(fence), 1);
	EXPECT_TRUE(fcntl(fence, F_GETFD) & FD_CLOEXEC);
	sw_sync_fence_destroy(fence);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_alloc_fence_negative)
{
	int tl = sw_sync_timeline_create();
	int p[2], fence;

	ASSERT_GE(tl, 0);
	EXPECT_EQ(sw_sync_fence_create(-1, "fence", 1), -EBADF);
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	EXPECT_EQ(sw_sync_fence_create(p[0], "fence", 1), -ENOTTY);
	EXPECT_EQ(sw_sync_timeline_inc(p[0], 1), -ENOTTY);
	EXPECT_EQ(sw_sync_timeline_is_valid(p[0]), 0);
	EXPECT_EQ(sw_sync_fence_is_valid(p[0]), 0);
	EXPECT_EQ(sw_sync_fence_is_valid(-1), 0);
	close(p[0]);
	close(p[1]);
	sw_sync_timeline_destroy(tl);
	/* Creating on a destroyed timeline fails. */
	fence = sw_sync_fence_create(tl, "fence", 1);
	EXPECT_LT(fence, 0);
	sw_sync_timeline_destroy(-1);
	sw_sync_fence_destroy(-1);
}

/* --- sync_fence.c / sync_merge.c / sync_wait.c -------------------------- */

TEST(sync_fence_one_timeline_wait)
{
	int tl = sw_sync_timeline_create();
	int fence = sw_sync_fence_create(tl, "allocFence", 5);

	ASSERT_GE(fence, 0);
	EXPECT_EQ(sync_wait(fence, 0), -1);
	EXPECT_EQ(errno, ETIME);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 1), 0);
	EXPECT_EQ(sync_wait(fence, 0), -1);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 3), 0);	/* 4 */
	EXPECT_EQ(sync_wait(fence, 0), -1);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 1), 0);	/* 5 */
	EXPECT_EQ(sync_wait(fence, 0), 0);
	/* Past the point, further increments change nothing. */
	EXPECT_EQ(sw_sync_timeline_inc(tl, 5), 0);
	EXPECT_EQ(sync_wait(fence, 0), 0);
	EXPECT_EQ(status_of(fence), 1);
	sw_sync_fence_destroy(fence);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_fence_one_timeline_merge)
{
	int tl = sw_sync_timeline_create();
	int a = sw_sync_fence_create(tl, "a", 1);
	int b = sw_sync_fence_create(tl, "b", 2);
	int c = sw_sync_fence_create(tl, "c", 3);
	int d = sw_sync_fence_create(tl, "d", 3);
	int ab, cd, abcd;

	ASSERT_GE(d, 0);
	ab = sync_merge("ab", a, b);
	cd = sync_merge("cd", c, d);
	abcd = sync_merge("abcd", ab, cd);
	ASSERT_GE(abcd, 0);
	/* One timeline: the merge keeps only its latest point. */
	EXPECT_EQ(fence_size(abcd), 1);
	EXPECT_EQ(count_with_status(abcd, FENCE_STATUS_ACTIVE), 1);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 1), 0);
	EXPECT_EQ(sync_wait(a, 0), 0);
	EXPECT_EQ(sync_wait(abcd, 0), -1);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 2), 0);
	EXPECT_EQ(sync_wait(abcd, 0), 0);
	EXPECT_EQ(count_with_status(abcd, FENCE_STATUS_SIGNALED), 1);
	sw_sync_fence_destroy(abcd);
	sw_sync_fence_destroy(ab);
	sw_sync_fence_destroy(cd);
	sw_sync_fence_destroy(a);
	sw_sync_fence_destroy(b);
	sw_sync_fence_destroy(c);
	sw_sync_fence_destroy(d);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_fence_merge_same_fence)
{
	int tl = sw_sync_timeline_create();
	int fence = sw_sync_fence_create(tl, "allocFence", 5);
	int merged;

	ASSERT_GE(fence, 0);
	merged = sync_merge("mergeFence", fence, fence);
	ASSERT_GE(merged, 0);
	EXPECT_EQ(count_with_status(merged, FENCE_STATUS_SIGNALED), 0);
	EXPECT_EQ(fence_size(merged), 1);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 5), 0);
	EXPECT_EQ(count_with_status(merged, FENCE_STATUS_SIGNALED), 1);
	sw_sync_fence_destroy(merged);
	sw_sync_fence_destroy(fence);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_merge)
{
	int tl = sw_sync_timeline_create();
	int f = sw_sync_fence_create(tl, "f", 5);
	int m = sync_merge("m", f, f);
	struct sync_file_info *info;

	ASSERT_GE(m, 0);
	info = sync_file_info(m);
	ASSERT_NONNULL(info);
	EXPECT_STREQ(info->name, "m");
	EXPECT_EQ(info->status, 0);
	EXPECT_STREQ(sync_get_fence_info(info)[0].driver_name, "sw_sync");
	sync_file_info_free(info);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 5), 0);
	EXPECT_EQ(sync_wait(m, 0), 0);
	sw_sync_fence_destroy(m);
	sw_sync_fence_destroy(f);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_fence_multi_timeline_wait)
{
	int a = sw_sync_timeline_create(), b = sw_sync_timeline_create();
	int c = sw_sync_timeline_create();
	int fa = sw_sync_fence_create(a, "a", 5);
	int fb = sw_sync_fence_create(b, "b", 5);
	int fc = sw_sync_fence_create(c, "c", 5);
	int ab = sync_merge("ab", fa, fb);
	int merged = sync_merge("abc", ab, fc);

	ASSERT_GE(merged, 0);
	EXPECT_EQ(fence_size(merged), 3);
	EXPECT_EQ(count_with_status(merged, FENCE_STATUS_ACTIVE), 3);
	EXPECT_EQ(sync_wait(merged, 0), -1);
	EXPECT_EQ(sw_sync_timeline_inc(a, 5), 0);
	EXPECT_EQ(count_with_status(merged, FENCE_STATUS_ACTIVE), 2);
	EXPECT_EQ(count_with_status(merged, FENCE_STATUS_SIGNALED), 1);
	EXPECT_EQ(sync_wait(merged, 0), -1);
	EXPECT_EQ(sw_sync_timeline_inc(b, 5), 0);
	EXPECT_EQ(count_with_status(merged, FENCE_STATUS_SIGNALED), 2);
	EXPECT_EQ(sw_sync_timeline_inc(c, 5), 0);
	EXPECT_EQ(sync_wait(merged, 5000), 0);
	EXPECT_EQ(status_of(merged), 1);
	/* The array signals on the fence executor; its record follows. */
	hetmem_fence_work_flush();
	sw_sync_fence_destroy(merged);
	sw_sync_fence_destroy(ab);
	sw_sync_fence_destroy(fa);
	sw_sync_fence_destroy(fb);
	sw_sync_fence_destroy(fc);
	sw_sync_timeline_destroy(a);
	sw_sync_timeline_destroy(b);
	sw_sync_timeline_destroy(c);
}

/* --- sync_stress_parallelism.c ----------------------------------------- */

#define PAR_ITER 2000

struct par {
	int timeline;
	int counter;
};

static void *par_thread(void *arg)
{
	struct par *par = arg;
	int id = __atomic_fetch_add(&par->counter, 1, __ATOMIC_RELAXED) & 1;
	int i, fence, ok = 1;

	for (i = 0; i < PAR_ITER && ok; i++) {
		/* Take turns: thread @id owns the even/odd timeline values. */
		fence = sw_sync_fence_create(par->timeline, "thread", i * 2 + id);
		ok = fence >= 0 && sync_wait(fence, 5000) == 0;
		sw_sync_fence_destroy(fence);
		ok = ok && sw_sync_timeline_inc(par->timeline, 1) == 0;
	}
	return (void *)(intptr_t)ok;
}

TEST(stress_parallelism)
{
	struct par par = { .timeline = sw_sync_timeline_create() };
	pthread_t t[2];
	void *ok;
	int i;

	ASSERT_GE(par.timeline, 0);
	for (i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, par_thread, &par), 0);
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], &ok);
		EXPECT_EQ((intptr_t)ok, 1);
	}
	sw_sync_timeline_destroy(par.timeline);
}

/* --- sync_stress_consumer.c -------------------------------------------- */

#define CONS_PRODUCERS 4
#define CONS_ITER 200

struct consumer_test {
	int producer_tl[CONS_PRODUCERS];
	int consumer_tl;
	int counter;
	int next_id;
	int failed;
};

static void *producer_thread(void *arg)
{
	struct consumer_test *ct = arg;
	int id = __atomic_fetch_add(&ct->next_id, 1, __ATOMIC_RELAXED);
	int i, fence;

	for (i = 0; i < CONS_ITER; i++) {
		/* Wait for the consumer to have seen iteration @i - 1. */
		fence = sw_sync_fence_create(ct->consumer_tl, "fence", i);
		if (fence < 0 || sync_wait(fence, 5000))
			__atomic_store_n(&ct->failed, 1, __ATOMIC_RELAXED);
		sw_sync_fence_destroy(fence);
		__atomic_fetch_add(&ct->counter, 1, __ATOMIC_ACQ_REL);
		sw_sync_timeline_inc(ct->producer_tl[id], 1);
	}
	return NULL;
}

static int merge_producers(struct consumer_test *ct, int i)
{
	int merged = -1, fence, next, p;

	for (p = 0; p < CONS_PRODUCERS; p++) {
		fence = sw_sync_fence_create(ct->producer_tl[p], "fence", i);
		if (merged < 0) {
			merged = fence;
			continue;
		}
		next = sync_merge("merge", merged, fence);
		sw_sync_fence_destroy(merged);
		sw_sync_fence_destroy(fence);
		merged = next;
	}
	return merged;
}

TEST(stress_consumer)
{
	struct consumer_test ct = { .consumer_tl = sw_sync_timeline_create() };
	pthread_t t[CONS_PRODUCERS];
	int i, merged;

	ASSERT_GE(ct.consumer_tl, 0);
	for (i = 0; i < CONS_PRODUCERS; i++)
		ct.producer_tl[i] = sw_sync_timeline_create();
	for (i = 0; i < CONS_PRODUCERS; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, producer_thread, &ct), 0);
	for (i = 1; i <= CONS_ITER; i++) {
		merged = merge_producers(&ct, i);
		ASSERT_GE(merged, 0);
		EXPECT_EQ(sync_wait(merged, 5000), 0);
		/* Every producer finished iteration i, none started i + 1. */
		EXPECT_EQ(__atomic_load_n(&ct.counter, __ATOMIC_ACQUIRE),
			  CONS_PRODUCERS * i);
		sw_sync_fence_destroy(merged);
		sw_sync_timeline_inc(ct.consumer_tl, 1);
	}
	for (i = 0; i < CONS_PRODUCERS; i++)
		pthread_join(t[i], NULL);
	EXPECT_EQ(ct.failed, 0);
	hetmem_fence_work_flush();
	for (i = 0; i < CONS_PRODUCERS; i++)
		sw_sync_timeline_destroy(ct.producer_tl[i]);
	sw_sync_timeline_destroy(ct.consumer_tl);
}

/* --- sync_stress_merge.c ------------------------------------------------ */

#define MERGE_TIMELINES 32
#define MERGE_ITER 512

TEST(stress_merge)
{
	int tl[MERGE_TIMELINES], sync_point[MERGE_TIMELINES];
	unsigned int seed = 42;
	int i, fence, merged, next, t, v, size;

	for (i = 0; i < MERGE_TIMELINES; i++) {
		tl[i] = sw_sync_timeline_create();
		ASSERT_GE(tl[i], 0);
		sync_point[i] = 0;
	}
	fence = sw_sync_fence_create(tl[0], "fence", 0);
	sync_point[0] = 0;
	ASSERT_GE(fence, 0);
	for (i = 0; i < MERGE_ITER; i++) {
		t = rand_r(&seed) % MERGE_TIMELINES;
		v = rand_r(&seed) % 1000 + 1;
		if (sync_point[t] < v)
			sync_point[t] = v;
		next = sw_sync_fence_create(tl[t], "fence", v);
		merged = sync_merge("merge", next, fence);
		ASSERT_GE(merged, 0);
		sw_sync_fence_destroy(next);
		sw_sync_fence_destroy(fence);
		fence = merged;
	}
	/* One leaf per timeline used, the latest point of each. */
	size = 0;
	for (i = 0; i < MERGE_TIMELINES; i++)
		size += sync_point[i] > 0;
	EXPECT_EQ(fence_size(fence), size);
	/* Advance each timeline to one short of its point: still pending. */
	for (i = 0; i < MERGE_TIMELINES; i++)
		if (sync_point[i] > 1)
			sw_sync_timeline_inc(tl[i], sync_point[i] - 1);
	EXPECT_EQ(sync_wait(fence, 0), -1);
	for (i = 0; i < MERGE_TIMELINES; i++)
		if (sync_point[i])
			sw_sync_timeline_inc(tl[i], 1);
	EXPECT_EQ(sync_wait(fence, 5000), 0);
	hetmem_fence_work_flush();
	sw_sync_fence_destroy(fence);
	for (i = 0; i < MERGE_TIMELINES; i++)
		sw_sync_timeline_destroy(tl[i]);
}

/* --- E-SW-1..5 ---------------------------------------------------------- */

TEST(point_at_or_below_value_is_signalled_at_creation)
{
	struct sync_timeline *obj = hetmem_sync_timeline_create("created");
	struct dma_fence *zero, *p3, *p2;

	ASSERT_NONNULL(obj);
	zero = hetmem_sync_pt_create(obj, 0);
	ASSERT_NONNULL(zero);
	EXPECT_TRUE(dma_fence_test_signaled_flag(zero));
	EXPECT_EQ(hetmem_sync_timeline_signal(obj, 3), 0);
	p3 = hetmem_sync_pt_create(obj, 3);
	p2 = hetmem_sync_pt_create(obj, 2);
	EXPECT_TRUE(dma_fence_test_signaled_flag(p3));
	EXPECT_TRUE(dma_fence_test_signaled_flag(p2));
	EXPECT_EQ(dma_fence_get_status(p3), 1);
	dma_fence_put(zero);
	dma_fence_put(p3);
	dma_fence_put(p2);
	hetmem_sync_timeline_destroy(obj);
}

TEST(duplicate_points_share_one_fence)
{
	int tl = sw_sync_timeline_create();
	int a = sw_sync_fence_create(tl, "a", 3);
	int b = sw_sync_fence_create(tl, "b", 3);
	struct dma_fence *fa, *fb;

	ASSERT_GE(b, 0);
	fa = sync_file_get_fence(a);
	fb = sync_file_get_fence(b);
	ASSERT_NONNULL(fa);
	EXPECT_TRUE(fa == fb);
	EXPECT_STREQ(fa->ops->get_driver_name(fa), "sw_sync");
	dma_fence_put(fa);
	dma_fence_put(fb);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 3), 0);
	EXPECT_EQ(sync_wait(a, 0), 0);
	EXPECT_EQ(sync_wait(b, 0), 0);
	close(a);
	close(b);
	sw_sync_timeline_destroy(tl);
}

struct order_cb {
	struct dma_fence_cb cb;
	int *log;
	int *n;
	int value;
	bool under_lock;
};

static void order_cb_fn(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct order_cb *o = hetmem_container_of(cb, struct order_cb, cb);

	o->log[(*o->n)++] = o->value;
	o->under_lock = hetmem_spin_is_held(f->lock);
}

TEST(points_signal_in_order_under_the_timeline_lock)
{
	struct sync_timeline *obj = hetmem_sync_timeline_create("order");
	static const int values[] = { 5, 3, 4, 9, 1 };
	struct order_cb cb[5];
	struct dma_fence *pt[5];
	int log[5], n = 0, i;

	for (i = 0; i < 5; i++) {
		pt[i] = hetmem_sync_pt_create(obj, values[i]);
		cb[i] = (struct order_cb){ .log = log, .n = &n, .value = values[i] };
		ASSERT_EQ(dma_fence_add_callback(pt[i], &cb[i].cb, order_cb_fn), 0);
	}
	EXPECT_EQ(hetmem_sync_timeline_signal(obj, 5), 0);
	ASSERT_EQ(n, 4);
	EXPECT_EQ(log[0], 1);
	EXPECT_EQ(log[1], 3);
	EXPECT_EQ(log[2], 4);
	EXPECT_EQ(log[3], 5);
	EXPECT_TRUE(cb[0].under_lock);
	EXPECT_FALSE(dma_fence_test_signaled_flag(pt[3]));
	EXPECT_EQ(hetmem_sync_timeline_signal(obj, 4), 0);
	EXPECT_EQ(n, 5);
	for (i = 0; i < 5; i++)
		dma_fence_put(pt[i]);
	hetmem_sync_timeline_destroy(obj);
}

TEST(value_wraps_at_32_bits)
{
	struct sync_timeline *obj = hetmem_sync_timeline_create("wrap");
	struct dma_fence *max, *one;

	/* 0xfffffffe in steps: INT_MAX, INT_MAX. */
	EXPECT_EQ(hetmem_sync_timeline_signal(obj, 0xfffffffeu), 0);
	max = hetmem_sync_pt_create(obj, 0xffffffffu);
	one = hetmem_sync_pt_create(obj, 1);
	EXPECT_FALSE(dma_fence_test_signaled_flag(max));
	EXPECT_FALSE(dma_fence_test_signaled_flag(one));	/* after the wrap */
	EXPECT_EQ(hetmem_sync_timeline_signal(obj, 1), 0);
	EXPECT_TRUE(dma_fence_test_signaled_flag(max));
	EXPECT_FALSE(dma_fence_test_signaled_flag(one));
	EXPECT_EQ(hetmem_sync_timeline_signal(obj, 2), 0);	/* value 1 */
	EXPECT_TRUE(dma_fence_test_signaled_flag(one));
	dma_fence_put(max);
	dma_fence_put(one);
	hetmem_sync_timeline_destroy(obj);
}

TEST(increments_above_int_max_are_applied_in_steps)
{
	int tl = sw_sync_timeline_create();
	int low = sw_sync_fence_create(tl, "low", 10);
	int mid = sw_sync_fence_create(tl, "mid", 0x7fffffff);

	ASSERT_GE(mid, 0);
	/*
	 * In one step the value would land on 0xffffffff, which the 32-bit
	 * rule sees as "before" 10: the point would never signal.
	 */
	EXPECT_EQ(sw_sync_timeline_inc(tl, 0xffffffffu), 0);
	EXPECT_EQ(sync_wait(low, 0), 0);
	EXPECT_EQ(sync_wait(mid, 0), 0);
	close(low);
	close(mid);
	sw_sync_timeline_destroy(tl);
}

TEST(destroy_signals_pending_points_with_enoent)
{
	int tl = sw_sync_timeline_create();
	int done = sw_sync_fence_create(tl, "done", 1);
	int pending = sw_sync_fence_create(tl, "pending", 10);
	struct dma_fence *pt;

	ASSERT_GE(pending, 0);
	pt = sync_file_get_fence(pending);
	ASSERT_NONNULL(pt);
	EXPECT_EQ(sw_sync_timeline_inc(tl, 1), 0);
	sw_sync_timeline_destroy(tl);
	EXPECT_EQ(sync_wait(pending, 0), 0);
	EXPECT_EQ(status_of(pending), -ENOENT);
	EXPECT_EQ(status_of(done), 1);
	/* The timeline object lives on with its points (named after us). */
	{
		char comm[17] = "";

		prctl(PR_GET_NAME, comm);
		EXPECT_STREQ(pt->ops->get_timeline_name(pt), comm);
	}
	EXPECT_EQ(dma_fence_get_status(pt), -ENOENT);
	dma_fence_put(pt);
	close(done);
	close(pending);
}

TEST(timeline_closed_with_close_is_destroyed_when_seen_again)
{
	int tl = sw_sync_timeline_create();
	int pending = sw_sync_fence_create(tl, "pending", 10);
	int reuse;

	ASSERT_GE(pending, 0);
	close(tl);
	reuse = memfd_create("other", MFD_CLOEXEC);
	ASSERT_EQ(reuse, tl);
	EXPECT_EQ(sw_sync_timeline_inc(reuse, 1), -ENOTTY);
	EXPECT_EQ(status_of(pending), -ENOENT);
	close(reuse);
	close(pending);
}

TEST(deadlines_keep_the_earliest)
{
	int tl = sw_sync_timeline_create();
	int f = sw_sync_fence_create(tl, "f", 1);
	struct sw_sync_get_deadline gd = { .fence_fd = f };
	struct sync_set_deadline sd = { 0, 0 };
	int p[2];

	ASSERT_GE(f, 0);
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -ENOENT);
	sd.deadline_ns = 3000;
	EXPECT_EQ(hetmem_sync_file_set_deadline(f, &sd), 0);
	sd.deadline_ns = 1000;
	EXPECT_EQ(hetmem_sync_file_ioctl(f, SYNC_IOC_SET_DEADLINE, &sd), 0);
	sd.deadline_ns = 2000;
	EXPECT_EQ(hetmem_sync_file_set_deadline(f, &sd), 0);
	ASSERT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), 0);
	EXPECT_EQ(gd.deadline_ns, 1000);
	/* In-fields must be zero. */
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL);
	gd.deadline_ns = 0;
	gd.pad = 1;
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL);
	gd.pad = 0;
	/* Not a sync_file, not a sw_sync fence. */
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	gd.fence_fd = p[0];
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL);
	gd.fence_fd = -1;
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL);
	close(p[0]);
	close(p[1]);
	{
		struct sync_timeline *obj = hetmem_sync_timeline_create("x");
		struct dma_fence *pt = hetmem_sync_pt_create(obj, 1);
		struct dma_fence *merged;
		int a, b, m;

		/* A merge of two timelines is an array, not a sw_sync point. */
		a = hetmem_sync_file_export(pt, 0);
		b = sw_sync_fence_create(tl, "b", 2);
		m = sync_merge("m", a, b);
		merged = sync_file_get_fence(m);
		EXPECT_TRUE(dma_fence_is_array(merged));
		dma_fence_put(merged);
		gd.fence_fd = m;
		EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd),
			  -EINVAL);
		hetmem_sync_timeline_signal(obj, 1);
		sw_sync_timeline_inc(tl, 2);
		EXPECT_EQ(sync_wait(m, 5000), 0);
		hetmem_fence_work_flush();
		close(a);
		close(b);
		close(m);
		dma_fence_put(pt);
		hetmem_sync_timeline_destroy(obj);
	}
	close(f);
	sw_sync_timeline_destroy(tl);
}

TEST(ioctl_errors)
{
	int tl = sw_sync_timeline_create();
	struct sw_sync_create_fence_data data = { .value = 1 };
	uint32_t inc = 1;
	int p[2];

	ASSERT_GE(tl, 0);
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, _IOW('W', 7, int), &inc), -ENOTTY);
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_IOC_INC, NULL), -EFAULT);
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, NULL),
		  -EFAULT);
	EXPECT_EQ(hetmem_sw_sync_ioctl(-1, SW_SYNC_IOC_INC, &inc), -EBADF);
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	EXPECT_EQ(hetmem_sw_sync_ioctl(p[0], SW_SYNC_IOC_INC, &inc), -ENOTTY);
	close(p[0]);
	close(p[1]);
	/* The name is ignored; the descriptor comes back close-on-exec. */
	memset(data.name, 'x', sizeof(data.name));
	ASSERT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, &data), 0);
	EXPECT_TRUE(fcntl(data.fence, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(hetmem_sw_sync_ioctl(tl, SW_SYNC_IOC_INC, &inc), 0);
	EXPECT_EQ(sync_wait(data.fence, 0), 0);
	close(data.fence);
	sw_sync_timeline_destroy(tl);
}

TEST(uapi_layout)
{
	EXPECT_EQ(sizeof(struct sw_sync_create_fence_data), 40);
	EXPECT_EQ(sizeof(struct sw_sync_get_deadline), 16);
	EXPECT_EQ(SW_SYNC_IOC_CREATE_FENCE, 0xc0285700);
	EXPECT_EQ(SW_SYNC_IOC_INC, 0x40045701);
	EXPECT_EQ(SW_SYNC_GET_DEADLINE, 0xc0105702);
}

TEST(object_api_null_and_names)
{
	struct sync_timeline *obj = hetmem_sync_timeline_create(NULL);
	struct sync_timeline *named =
		hetmem_sync_timeline_create("a-very-long-timeline-name-longer-than-32");
	struct dma_fence *pt;

	ASSERT_NONNULL(obj);
	EXPECT_NULL(hetmem_sync_pt_create(NULL, 1));
	EXPECT_EQ(hetmem_sync_timeline_signal(NULL, 1), -EINVAL);
	hetmem_sync_timeline_destroy(NULL);
	pt = hetmem_sync_pt_create(named, 1);
	EXPECT_STREQ(dma_fence_timeline_name(pt),
		     "a-very-long-timeline-name-longe");
	EXPECT_STREQ(dma_fence_driver_name(pt), "sw_sync");
	hetmem_sync_timeline_destroy(named);
	EXPECT_EQ(dma_fence_get_status(pt), -ENOENT);
	dma_fence_put(pt);
	hetmem_sync_timeline_destroy(obj);
}
