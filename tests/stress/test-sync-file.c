/* SPDX-License-Identifier: MIT */
/*
 * hetmem - stress: threads exporting fences as sync_files and signalling
 * them out of order (some with errors), "foreign" producers writing
 * records into pipes by hand, and consumer threads that import (the
 * original fence or a proxy), add callbacks, wait with timeouts, poll,
 * query the status and merge whatever they hold, all at once.
 *
 * Bounded by harness_duration_s(); meant to run clean under TSan too.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>

#include "fence/fence-work.h"
#include "fence/sync_file_internal.h"
#include "harness.h"
#include "mock-fence.h"

#define PRODUCERS 2
#define CONSUMERS 3
#define QUEUE_LEN 16
#define PENDING_MAX 64
#define FOREIGN_MAX 8
#define MERGED_MAX 1024

/* Descriptors on their way from producers to consumers. */
struct queue {
	pthread_mutex_t lock;
	int fd[QUEUE_LEN];
	unsigned int head, len;
};

struct stress {
	struct queue q;
	int64_t end_ns;
	int failed;
	pthread_mutex_t merged_lock;
	int merged[MERGED_MAX];
	unsigned int nmerged;
	uint64_t exported, imported, merges, callbacks;
};

static bool running(struct stress *s)
{
	return hetmem_ktime_get() < s->end_ns;
}

static void fail(struct stress *s, const char *what, int value)
{
	if (!__atomic_exchange_n(&s->failed, 1, __ATOMIC_RELAXED))
		TH_LOG("%s: %d", what, value);
}

static bool push(struct stress *s, int fd)
{
	bool ok;

	pthread_mutex_lock(&s->q.lock);
	ok = s->q.len < QUEUE_LEN;
	if (ok)
		s->q.fd[(s->q.head + s->q.len++) % QUEUE_LEN] = fd;
	pthread_mutex_unlock(&s->q.lock);
	return ok;
}

static int pop(struct stress *s)
{
	int fd = -1;

	pthread_mutex_lock(&s->q.lock);
	if (s->q.len) {
		fd = s->q.fd[s->q.head];
		s->q.head = (s->q.head + 1) % QUEUE_LEN;
		s->q.len--;
	}
	pthread_mutex_unlock(&s->q.lock);
	return fd;
}

/* Merged descriptors are closed at the end, once their records are out. */
static void keep_merged(struct stress *s, int fd)
{
	pthread_mutex_lock(&s->merged_lock);
	if (s->nmerged < MERGED_MAX) {
		s->merged[s->nmerged++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&s->merged_lock);
	if (fd >= 0) {
		/* Full: this one waits for its record here. */
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 10000) != 1)
			fail(s, "merge never signalled", fd);
		while (!(pfd.revents & POLLHUP) && poll(&pfd, 1, 10) >= 0)
			;
		close(fd);
	}
}

/* --- producers ---------------------------------------------------------- */

static struct dma_fence *new_fence(struct sync_timeline *tl, uint32_t *seed,
				   unsigned int *value)
{
	if (harness_rand(seed) & 1)
		return hetmem_sync_pt_create(tl, ++*value);
	return mock_fence_create(0);
}

static void signal_one(struct dma_fence *f, struct sync_timeline *tl,
		       uint32_t *seed)
{
	/* Sync points signal with their timeline, mocks one by one. */
	if (is_mock_fence(f)) {
		if (!(harness_rand(seed) % 4))
			dma_fence_set_error(f, -EIO);
		dma_fence_signal(f);
	}
	dma_fence_put(f);
}

static void export_one(struct stress *s, struct dma_fence *f, uint32_t *seed)
{
	unsigned int flags = harness_rand(seed) & 1 ? HETMEM_SYNC_FILE_INHERIT : 0;
	int fd = hetmem_sync_file_export(f, flags);

	if (fd < 0) {
		fail(s, "export", fd);
		return;
	}
	__atomic_add_fetch(&s->exported, 1, __ATOMIC_RELAXED);
	if (!push(s, fd)) {
		close(fd);
		/* Let the consumers catch up with fences still pending. */
		usleep(100);
	}
}

static void *producer(void *arg)
{
	struct stress *s = arg;
	struct sync_timeline *tl = hetmem_sync_timeline_create("stress");
	struct dma_fence *pending[PENDING_MAX];
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	unsigned int n = 0, value = 0, reached = 0, inc, i;

	while (running(s)) {
		struct dma_fence *f = new_fence(tl, &seed, &value);

		if (!f)
			continue;
		export_one(s, f, &seed);
		pending[n++] = f;
		/* Signal a random one, or the timeline, now and then. */
		if (n == PENDING_MAX || !(harness_rand(&seed) % 3)) {
			i = harness_rand(&seed) % n;
			signal_one(pending[i], tl, &seed);
			pending[i] = pending[--n];
		}
		/* The timeline trails its newest point by a little. */
		if (!(harness_rand(&seed) % 4)) {
			inc = harness_rand(&seed) % (value - reached + 1);
			hetmem_sync_timeline_signal(tl, inc);
			reached += inc;
		}
	}
	while (n)
		signal_one(pending[--n], tl, &seed);
	hetmem_sync_timeline_destroy(tl);
	return NULL;
}

/* A producer from "another process": records written by hand. */
static void foreign_signal(int wfd, uint32_t *seed)
{
	struct hetmem_sync_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.magic = HETMEM_SYNC_RECORD_MAGIC;
	rec.version = HETMEM_SYNC_RECORD_VERSION;
	rec.size = sizeof(rec);
	rec.status = harness_rand(seed) % 4 ? 1 : -EIO;
	rec.timestamp_ns = hetmem_ktime_get();
	/* Now and then a producer "dies" without a record: -EPIPE. */
	if (harness_rand(seed) % 8 && write(wfd, &rec, sizeof(rec)) != sizeof(rec))
		rec.status = 0;
	close(wfd);
}

static void *foreign_producer(void *arg)
{
	struct stress *s = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 3;
	int wfd[FOREIGN_MAX], p[2];
	unsigned int n = 0, i;
	sigset_t pipe_set;

	/* Our own writes to pipes whose reader left (the library's are safe). */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	while (running(s)) {
		if (hetmem_sync_pipe_open(p)) {
			fail(s, "pipe", errno);
			break;
		}
		wfd[n++] = p[1];
		if (!push(s, p[0])) {
			close(p[0]);
			usleep(100);
		}
		if (n == FOREIGN_MAX || !(harness_rand(&seed) % 2)) {
			i = harness_rand(&seed) % n;
			foreign_signal(wfd[i], &seed);
			wfd[i] = wfd[--n];
		}
		sched_yield();
	}
	while (n)
		foreign_signal(wfd[--n], &seed);
	return NULL;
}

/* --- consumers ---------------------------------------------------------- */

struct heap_cb {
	struct dma_fence_cb cb;
	struct stress *s;
	struct dma_fence *fence;	/* a pending callback needs a reference */
};

static void heap_cb_fn(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct heap_cb *h = hetmem_container_of(cb, struct heap_cb, cb);
	int status = dma_fence_get_status_locked(f);

	if (status != 1 && status != -EIO && status != -EPIPE &&
	    status != -ENOENT)
		fail(h->s, "callback status", status);
	__atomic_add_fetch(&h->s->callbacks, 1, __ATOMIC_RELAXED);
	/* Not the last: the signaller holds its own across the signal. */
	dma_fence_put(h->fence);
	free(h);
}

static void check_status(struct stress *s, int fd)
{
	int status;

	if (hetmem_sync_file_status(fd, &status)) {
		fail(s, "status", fd);
		return;
	}
	if (status != 0 && status != 1 && status != -EIO &&
	    status != -EPIPE && status != -ENOENT)
		fail(s, "status value", status);
}

static void use_fence(struct stress *s, struct dma_fence *f, uint32_t *seed)
{
	struct heap_cb *h;
	long ret;

	switch (harness_rand(seed) % 4) {
	case 0:
		h = calloc(1, sizeof(*h));
		if (!h)
			break;
		h->s = s;
		h->fence = dma_fence_get(f);
		if (dma_fence_add_callback(f, &h->cb, heap_cb_fn)) {
			dma_fence_put(f);
			free(h);
		}
		break;
	case 1:
		ret = dma_fence_wait_timeout(f, false, harness_rand(seed) % 3);
		if (ret < 0)
			fail(s, "wait", (int)ret);
		break;
	case 2:
		dma_fence_is_signaled(f);
		break;
	default:
		dma_fence_get_status(f);
		break;
	}
}

static void consume_one(struct stress *s, int fd, int *prev, uint32_t *seed)
{
	struct dma_fence *f = sync_file_get_fence(fd);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int m;

	if (!f) {
		fail(s, "import", fd);
		close(fd);
		return;
	}
	__atomic_add_fetch(&s->imported, 1, __ATOMIC_RELAXED);
	use_fence(s, f, seed);
	dma_fence_put(f);
	poll(&pfd, 1, harness_rand(seed) % 2);
	check_status(s, fd);
	if (*prev >= 0) {
		m = hetmem_sync_file_merge("stress", *prev, fd, 0);
		if (m < 0)
			fail(s, "merge", m);
		else
			keep_merged(s, m);
		__atomic_add_fetch(&s->merges, 1, __ATOMIC_RELAXED);
		close(*prev);
	}
	*prev = fd;
}

static void *consumer(void *arg)
{
	struct stress *s = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 5;
	int prev = -1, fd;

	for (;;) {
		fd = pop(s);
		if (fd < 0) {
			if (!running(s))
				break;
			sched_yield();
			continue;
		}
		consume_one(s, fd, &prev, &seed);
	}
	if (prev >= 0)
		close(prev);
	return NULL;
}

/* After everything signalled: every merge publishes its record. */
static void drain(struct stress *s)
{
	struct pollfd pfd = { .events = POLLIN };
	int64_t end = hetmem_ktime_get() + 20LL * 1000 * 1000 * 1000;
	unsigned int i;
	int fd;

	while ((fd = pop(s)) >= 0)
		close(fd);
	for (i = 0; i < s->nmerged; i++) {
		pfd.fd = s->merged[i];
		do {
			pfd.revents = 0;
			poll(&pfd, 1, 10);
		} while (!(pfd.revents & POLLHUP) && hetmem_ktime_get() < end);
		if (!(pfd.revents & POLLHUP))
			fail(s, "merge never signalled", i);
		check_status(s, s->merged[i]);
		close(s->merged[i]);
	}
}

TEST_TIMEOUT(sync_file_stress, 90)
{
	pthread_t prod[PRODUCERS + 1], cons[CONSUMERS];
	struct stress *s = calloc(1, sizeof(*s));
	int i;

	ASSERT_NONNULL(s);
	pthread_mutex_init(&s->q.lock, NULL);
	pthread_mutex_init(&s->merged_lock, NULL);
	s->end_ns = hetmem_ktime_get() +
		    (int64_t)(harness_duration_s() * 1e9);
	for (i = 0; i < PRODUCERS; i++)
		ASSERT_EQ(pthread_create(&prod[i], NULL, producer, s), 0);
	ASSERT_EQ(pthread_create(&prod[PRODUCERS], NULL, foreign_producer, s), 0);
	for (i = 0; i < CONSUMERS; i++)
		ASSERT_EQ(pthread_create(&cons[i], NULL, consumer, s), 0);
	for (i = 0; i < CONSUMERS; i++)
		pthread_join(cons[i], NULL);
	for (i = 0; i <= PRODUCERS; i++)
		pthread_join(prod[i], NULL);
	drain(s);
	hetmem_fence_work_flush();
	TH_LOG("exported %llu, imported %llu, merges %llu, callbacks %llu",
	       (unsigned long long)s->exported, (unsigned long long)s->imported,
	       (unsigned long long)s->merges, (unsigned long long)s->callbacks);
	EXPECT_EQ(s->failed, 0);
	EXPECT_GT(s->exported, 0);
	EXPECT_GT(s->merges, 0);
	pthread_mutex_destroy(&s->q.lock);
	pthread_mutex_destroy(&s->merged_lock);
	free(s);
}
