/* SPDX-License-Identifier: MIT */
/*
 * hetmem - libsync on hetmem descriptors: sync_wait() (timeouts, errors,
 * signalled-with-error is success, a dead producer, EINTR resuming with
 * the remaining time), sync_merge(), sync_file_info() and
 * sync_get_fence_info().
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>

#include "fence/fence-work.h"
#include "fence/sync_file_internal.h"
#include "harness.h"

static int64_t ms_since(int64_t t0)
{
	return (hetmem_ktime_get() - t0) / 1000000;
}

TEST(sync_wait_rejects_negative_fd)
{
	errno = 0;
	EXPECT_EQ(sync_wait(-1, 0), -1);
	EXPECT_EQ(errno, EINVAL);
}

TEST(sync_wait_times_out_with_etime)
{
	int tl = sw_sync_timeline_create();
	int f = sw_sync_fence_create(tl, "f", 1);
	int64_t t0 = hetmem_ktime_get();

	ASSERT_GE(f, 0);
	errno = 0;
	EXPECT_EQ(sync_wait(f, 50), -1);
	EXPECT_EQ(errno, ETIME);
	EXPECT_GE(ms_since(t0), 50);
	EXPECT_EQ(sync_wait(f, 0), -1);
	EXPECT_EQ(errno, ETIME);
	close(f);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_wait_succeeds_even_for_an_error)
{
	int tl = sw_sync_timeline_create();
	int f = sw_sync_fence_create(tl, "f", 1);
	struct sync_file_info *info;

	ASSERT_GE(f, 0);
	sw_sync_timeline_destroy(tl);	/* -ENOENT */
	EXPECT_EQ(sync_wait(f, 1000), 0);
	EXPECT_EQ(sync_wait(f, -1), 0);
	info = sync_file_info(f);
	ASSERT_NONNULL(info);
	EXPECT_EQ(info->status, -ENOENT);
	EXPECT_EQ(info->num_fences, 1);
	EXPECT_EQ(sync_get_fence_info(info)[0].status, -ENOENT);
	sync_file_info_free(info);
	close(f);
}

TEST(sync_wait_on_a_closed_fd_is_einval)
{
	int tl = sw_sync_timeline_create();
	int f = sw_sync_fence_create(tl, "f", 0);

	ASSERT_GE(f, 0);
	close(f);
	errno = 0;
	EXPECT_EQ(sync_wait(f, 0), -1);
	EXPECT_EQ(errno, EINVAL);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_wait_sees_a_dead_producer)
{
	int p[2];

	/* Write end closed without a record: POLLHUP only. */
	ASSERT_EQ(hetmem_sync_pipe_open(p), 0);
	close(p[1]);
	EXPECT_EQ(sync_wait(p[0], 1000), 0);
	close(p[0]);
}

static void on_sigusr1(int sig)
{
}

struct kicker {
	pthread_t target;
	int stop;
};

static void *kick(void *arg)
{
	struct kicker *k = arg;

	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		pthread_kill(k->target, SIGUSR1);
		usleep(10 * 1000);
	}
	return NULL;
}

TEST(sync_wait_resumes_with_the_remaining_time)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	struct kicker k = { .target = pthread_self() };
	int tl = sw_sync_timeline_create();
	int f = sw_sync_fence_create(tl, "f", 1);
	int64_t t0, waited;
	pthread_t t;

	ASSERT_GE(f, 0);
	/* No SA_RESTART: every signal interrupts poll(). */
	sigaction(SIGUSR1, &sa, NULL);
	ASSERT_EQ(pthread_create(&t, NULL, kick, &k), 0);
	t0 = hetmem_ktime_get();
	EXPECT_EQ(sync_wait(f, 200), -1);
	waited = ms_since(t0);
	EXPECT_EQ(errno, ETIME);
	__atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	/* libsync would restart with 200 ms after each of ~20 signals. */
	EXPECT_GE(waited, 200);
	EXPECT_LT(waited, 600);
	close(f);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_merge_and_errors)
{
	int tl = sw_sync_timeline_create();
	int a = sw_sync_fence_create(tl, "a", 1);
	int p[2], m;

	ASSERT_GE(a, 0);
	m = sync_merge("merged", a, a);
	ASSERT_GE(m, 0);
	EXPECT_TRUE(fcntl(m, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	errno = 0;
	EXPECT_EQ(sync_merge("x", p[0], a), -1);
	EXPECT_EQ(errno, ENOTTY);
	EXPECT_EQ(sync_merge("x", a, p[0]), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(sync_merge("x", -1, a), -1);
	EXPECT_EQ(errno, EBADF);
	close(p[0]);
	close(p[1]);
	sw_sync_timeline_inc(tl, 1);
	EXPECT_EQ(sync_wait(m, 0), 0);
	close(m);
	close(a);
	sw_sync_timeline_destroy(tl);
}

TEST(sync_file_info_two_calls_in_one_block)
{
	int t1 = sw_sync_timeline_create(), t2 = sw_sync_timeline_create();
	int a = sw_sync_fence_create(t1, "a", 1);
	int b = sw_sync_fence_create(t2, "b", 1);
	int m = sync_merge("a+b", a, b);
	struct sync_file_info *info;
	struct sync_fence_info *leaf;
	int p[2];

	ASSERT_GE(m, 0);
	info = sync_file_info(m);
	ASSERT_NONNULL(info);
	EXPECT_STREQ(info->name, "a+b");
	EXPECT_EQ(info->num_fences, 2);
	EXPECT_EQ(info->status, 0);
	leaf = sync_get_fence_info(info);
	EXPECT_TRUE((void *)leaf == (void *)(info + 1));
	EXPECT_STREQ(leaf[0].driver_name, "sw_sync");
	EXPECT_EQ(leaf[0].status, 0);
	EXPECT_EQ(leaf[1].status, 0);
	sync_file_info_free(info);

	sw_sync_timeline_inc(t2, 1);
	info = sync_file_info(m);
	ASSERT_NONNULL(info);
	EXPECT_EQ(info->status, 0);
	EXPECT_EQ(sync_get_fence_info(info)[1].status, 1);
	EXPECT_GT(sync_get_fence_info(info)[1].timestamp_ns, 0);
	sync_file_info_free(info);

	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	errno = 0;
	EXPECT_NULL(sync_file_info(p[0]));
	EXPECT_EQ(errno, ENOTTY);
	close(p[0]);
	close(p[1]);
	sync_file_info_free(NULL);

	sw_sync_timeline_inc(t1, 1);
	EXPECT_EQ(sync_wait(m, 5000), 0);
	hetmem_fence_work_flush();
	close(m);
	close(a);
	close(b);
	sw_sync_timeline_destroy(t1);
	sw_sync_timeline_destroy(t2);
}
