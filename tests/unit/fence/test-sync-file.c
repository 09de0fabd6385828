/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of sync_file in one process: export and install,
 * close-on-exec and inheritance (across a real exec), readiness, status
 * and timestamps, same-process identity, proxies of foreign and malformed
 * pipes, rejection of descriptors that are not sync_files, merge, the
 * FILE_INFO two-call pattern and its status rule, deadlines, the ioctl
 * dispatcher, proxy waits and callbacks, fork and descriptor exhaustion.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>

#include "fence/fence-work.h"
#include "fence/sync_file_internal.h"
#include "harness.h"

struct test_fence {
	struct dma_fence base;
	hetmem_spinlock_t lock;
};

static const char *test_driver(struct dma_fence *f)
{
	return "test";
}

static const char *test_timeline(struct dma_fence *f)
{
	return "tl";
}

static const struct dma_fence_ops test_ops = {
	.get_driver_name = test_driver,
	.get_timeline_name = test_timeline,
};

static struct dma_fence *test_fence_seq(uint64_t context, uint64_t seqno)
{
	struct test_fence *t = calloc(1, sizeof(*t));

	ASSERT_NONNULL(t);
	hetmem_spin_lock_init(&t->lock);
	dma_fence_init(&t->base, &test_ops, &t->lock, context, seqno);
	return &t->base;
}

static struct dma_fence *test_fence(void)
{
	return test_fence_seq(dma_fence_context_alloc(1), 1);
}

static void signal_error(struct dma_fence *f, int error)
{
	if (error)
		dma_fence_set_error(f, error);
	ASSERT_EQ(dma_fence_signal(f), 0);
}

/* 1 if @fd polls readable within @ms, 0 if not. */
static int readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n;

	do {
		n = poll(&pfd, 1, ms);
	} while (n < 0 && errno == EINTR);
	ASSERT_GE(n, 0);
	return n > 0 && (pfd.revents & POLLIN);
}

/*
 * 1 once the write end of @fd's pipe is closed (POLLHUP), within @ms. The
 * record makes the pipe readable an instant before its producer closes
 * the write end, possibly on another thread (fence executor, watcher):
 * a case that must not end with that descriptor open waits for this.
 */
static int hung_up(int fd, int ms)
{
	int64_t end = hetmem_ktime_get() + (int64_t)ms * 1000000;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	for (;;) {
		pfd.revents = 0;
		if (poll(&pfd, 1, 1) > 0 && (pfd.revents & POLLHUP))
			return 1;
		if (hetmem_ktime_get() > end)
			return 0;
	}
}

static int fd_status(int fd)
{
	int status = 12345;

	ASSERT_EQ(hetmem_sync_file_status(fd, &status), 0);
	return status;
}

static bool cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	ASSERT_GE(fl, 0);
	return fl & FD_CLOEXEC;
}

static struct dma_fence *fence_of(int fd)
{
	struct dma_fence *f = NULL;

	ASSERT_EQ(hetmem_sync_file_import(fd, &f), 0);
	ASSERT_NONNULL(f);
	return f;
}

/* A packet-mode pipe the test signals by hand, like a foreign producer. */
struct fake_producer {
	int rfd;
	int wfd;
};

static void fake_open(struct fake_producer *fp)
{
	int p[2];

	ASSERT_EQ(hetmem_sync_pipe_open(p), 0);
	fp->rfd = p[0];
	fp->wfd = p[1];
}

static void fake_record(struct hetmem_sync_record *rec, int status,
			int64_t ts, const char *name)
{
	memset(rec, 0, sizeof(*rec));
	rec->magic = HETMEM_SYNC_RECORD_MAGIC;
	rec->version = HETMEM_SYNC_RECORD_VERSION;
	rec->size = sizeof(*rec);
	rec->status = status;
	rec->pid = 1;
	rec->timestamp_ns = ts;
	hetmem_sync_strscpy(rec->name, name, sizeof(rec->name));
}

static void fake_write(struct fake_producer *fp, const void *buf, size_t len)
{
	ASSERT_EQ(write(fp->wfd, buf, len), (ssize_t)len);
}

static void fake_signal(struct fake_producer *fp, int status, int64_t ts)
{
	struct hetmem_sync_record rec;

	fake_record(&rec, status, ts, "");
	fake_write(fp, &rec, sizeof(rec));
	close(fp->wfd);
	fp->wfd = -1;
}

static void fake_close(struct fake_producer *fp)
{
	if (fp->wfd >= 0)
		close(fp->wfd);
	if (fp->rfd >= 0)
		close(fp->rfd);
	fp->rfd = fp->wfd = -1;
}

/* --- export and install ------------------------------------------------ */

TEST(export_is_cloexec_by_default)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);

	ASSERT_GE(fd, 0);
	EXPECT_TRUE(cloexec(fd));
	signal_error(f, 0);
	close(fd);
	dma_fence_put(f);
}

TEST(export_inherit_clears_cloexec)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, HETMEM_SYNC_FILE_INHERIT);

	ASSERT_GE(fd, 0);
	EXPECT_FALSE(cloexec(fd));
	signal_error(f, 0);
	close(fd);
	dma_fence_put(f);
}

TEST(export_rejects_bad_arguments)
{
	struct dma_fence *f = test_fence();

	EXPECT_EQ(hetmem_sync_file_export(NULL, 0), -EINVAL);
	EXPECT_EQ(hetmem_sync_file_export(f, 0x2), -EINVAL);
	EXPECT_EQ(hetmem_sync_file_export(f, ~0u), -EINVAL);
	dma_fence_put(f);
}

TEST(create_install_and_put)
{
	struct dma_fence *f = test_fence();
	struct sync_file *sf = sync_file_create(f);
	int fd;

	ASSERT_NONNULL(sf);
	EXPECT_TRUE(sf->fence == f);
	EXPECT_STREQ(sf->user_name, "");
	ASSERT_GE(sf->fd, 0);
	EXPECT_TRUE(cloexec(sf->fd));
	EXPECT_EQ(hetmem_kref_read(&f->refcount), 2);
	/* A failed install leaves the handle usable. */
	EXPECT_EQ(hetmem_sync_file_install(sf, 0x4), -EINVAL);
	EXPECT_EQ(hetmem_sync_file_install(NULL, 0), -EINVAL);
	fd = hetmem_sync_file_install(sf, 0);
	ASSERT_GE(fd, 0);
	EXPECT_TRUE(sync_file_get_fence(fd) == f);
	dma_fence_put(f);
	signal_error(f, 0);
	close(fd);
	dma_fence_put(f);

	errno = 0;
	EXPECT_NULL(sync_file_create(NULL));
	EXPECT_EQ(errno, EINVAL);
}

TEST(put_without_install_then_signal_does_not_kill)
{
	struct dma_fence *f = test_fence();
	struct sync_file *sf = sync_file_create(f);

	ASSERT_NONNULL(sf);
	/* No reader left: the record write gets EPIPE, not SIGPIPE. */
	hetmem_sync_file_put(sf);
	signal_error(f, 0);
	dma_fence_put(f);
}

TEST(consumer_closed_before_signal_does_not_kill)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);

	ASSERT_GE(fd, 0);
	close(fd);
	signal_error(f, -EIO);
	dma_fence_put(f);
}

/* --- readiness, status, timestamp ------------------------------------- */

TEST(readable_once_signalled_not_before)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	ASSERT_GE(fd, 0);
	EXPECT_EQ(readable(fd, 0), 0);
	EXPECT_EQ(readable(fd, 20), 0);
	EXPECT_EQ(fd_status(fd), 0);
	signal_error(f, 0);
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	EXPECT_TRUE(pfd.revents & POLLIN);
	EXPECT_TRUE(pfd.revents & POLLHUP);
	EXPECT_EQ(fd_status(fd), 1);
	/* Level-triggered and not consumed by the status read. */
	EXPECT_EQ(readable(fd, 0), 1);
	EXPECT_EQ(fd_status(fd), 1);
	close(fd);
	dma_fence_put(f);
}

TEST(select_and_epoll_see_the_signal)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);
	struct epoll_event ev = { .events = EPOLLIN }, out;
	struct timeval tv = { 0, 0 };
	fd_set set;
	int ep;

	ASSERT_GE(fd, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_GE(ep, 0);
	ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	EXPECT_EQ(epoll_wait(ep, &out, 1, 0), 0);
	FD_ZERO(&set);
	FD_SET(fd, &set);
	EXPECT_EQ(select(fd + 1, &set, NULL, NULL, &tv), 0);
	signal_error(f, 0);
	EXPECT_EQ(epoll_wait(ep, &out, 1, 1000), 1);
	FD_ZERO(&set);
	FD_SET(fd, &set);
	EXPECT_EQ(select(fd + 1, &set, NULL, NULL, &tv), 1);
	close(ep);
	close(fd);
	dma_fence_put(f);
}

TEST(error_is_readable_and_reported)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);

	ASSERT_GE(fd, 0);
	signal_error(f, -ECANCELED);
	EXPECT_EQ(readable(fd, 0), 1);
	EXPECT_EQ(fd_status(fd), -ECANCELED);
	close(fd);
	dma_fence_put(f);
}

TEST(already_signalled_fence_is_readable_at_once)
{
	struct dma_fence *f = test_fence();
	struct dma_fence *p;
	int fd;

	ASSERT_EQ(dma_fence_signal_timestamp(f, 123456789), 0);
	fd = hetmem_sync_file_export(f, 0);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(readable(fd, 0), 1);
	EXPECT_EQ(fd_status(fd), 1);
	p = fence_of(fd);
	EXPECT_TRUE(dma_fence_is_signaled(p));
	EXPECT_EQ(dma_fence_timestamp(p), 123456789);
	dma_fence_put(p);
	close(fd);
	dma_fence_put(f);
}

TEST(status_and_timestamp_after_signal)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);
	struct dma_fence *p;

	ASSERT_GE(fd, 0);
	dma_fence_set_error(f, -ETIME);
	ASSERT_EQ(dma_fence_signal_timestamp(f, 987654321), 0);
	p = fence_of(fd);
	/* Signalled: the registry let go, this is a proxy. */
	EXPECT_TRUE(p != f);
	EXPECT_STREQ(p->ops->get_driver_name(p), "hetmem-import");
	EXPECT_TRUE(dma_fence_is_signaled(p));
	EXPECT_EQ(dma_fence_get_status(p), -ETIME);
	EXPECT_EQ(dma_fence_timestamp(p), 987654321);
	dma_fence_put(p);
	close(fd);
	dma_fence_put(f);
}

/* --- identity ----------------------------------------------------------- */

TEST(same_process_import_returns_the_same_fence)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);
	int dupfd;

	ASSERT_GE(fd, 0);
	dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	ASSERT_GE(dupfd, 0);
	EXPECT_TRUE(sync_file_get_fence(fd) == f);
	EXPECT_TRUE(sync_file_get_fence(dupfd) == f);
	EXPECT_EQ(hetmem_kref_read(&f->refcount), 4);
	dma_fence_put(f);
	dma_fence_put(f);
	signal_error(f, 0);
	close(dupfd);
	close(fd);
	dma_fence_put(f);
}

TEST(import_rejects_null_out)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);

	ASSERT_GE(fd, 0);
	EXPECT_EQ(hetmem_sync_file_import(fd, NULL), -EINVAL);
	signal_error(f, 0);
	close(fd);
	dma_fence_put(f);
}

/* --- descriptors that are not sync_files ------------------------------- */

static void expect_not_sync_file(int fd, int err)
{
	struct sync_file_info info = { .num_fences = 0 };
	struct sync_set_deadline dl = { 0, 0 };
	struct dma_fence *f = (struct dma_fence *)1;
	struct dma_fence *good = test_fence();
	int gfd = hetmem_sync_file_export(good, 0);

	ASSERT_GE(gfd, 0);
	EXPECT_EQ(hetmem_sync_file_import(fd, &f), err);
	EXPECT_NULL(f);
	EXPECT_NULL(sync_file_get_fence(fd));
	EXPECT_EQ(hetmem_sync_file_info(fd, &info), err);
	EXPECT_EQ(hetmem_sync_file_set_deadline(fd, &dl), err);
	EXPECT_EQ(hetmem_sync_file_merge("m", fd, gfd, 0), err);
	EXPECT_EQ(hetmem_sync_file_merge("m", gfd, fd, 0), -ENOENT);
	EXPECT_EQ(hetmem_sync_file_ioctl(fd, SYNC_IOC_FILE_INFO, &info),
		  err == -EINVAL ? -ENOTTY : err);
	signal_error(good, 0);
	close(gfd);
	dma_fence_put(good);
}

TEST(foreign_descriptors_are_rejected)
{
	int sv[2], fd;

	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	expect_not_sync_file(fd, -EINVAL);
	close(fd);

	fd = eventfd(0, EFD_CLOEXEC);
	ASSERT_GE(fd, 0);
	expect_not_sync_file(fd, -EINVAL);
	close(fd);

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	expect_not_sync_file(sv[0], -EINVAL);
	close(sv[0]);
	close(sv[1]);

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	expect_not_sync_file(fd, -EINVAL);
	close(fd);

	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	expect_not_sync_file(fd, -EINVAL);
	close(fd);
}

TEST(pipe_ends_that_are_not_sync_files_are_rejected)
{
	int p[2];

	/* A plain pipe (no packet mode), both ends. */
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	expect_not_sync_file(p[0], -EINVAL);
	expect_not_sync_file(p[1], -EINVAL);
	close(p[0]);
	close(p[1]);
	/* A packet-mode pipe of the default size is not one of ours. */
	ASSERT_EQ(pipe2(p, O_CLOEXEC | O_DIRECT), 0);
	expect_not_sync_file(p[0], -EINVAL);
	expect_not_sync_file(p[1], -EINVAL);
	close(p[0]);
	close(p[1]);
	/* The write end of a sync_file pipe. */
	ASSERT_EQ(hetmem_sync_pipe_open(p), 0);
	expect_not_sync_file(p[1], -EINVAL);
	close(p[0]);
	close(p[1]);
}

TEST(closed_and_negative_descriptors_are_ebadf)
{
	/* Far above anything the case opens. */
	ASSERT_EQ(fcntl(999, F_GETFD), -1);
	expect_not_sync_file(999, -EBADF);
	expect_not_sync_file(-1, -EBADF);
}

/* --- proxies of foreign pipes ------------------------------------------ */

TEST(foreign_record_gives_status_timestamp_and_name)
{
	struct hetmem_sync_record rec;
	struct fake_producer fp;
	struct sync_file_info info = { .num_fences = 0 };
	struct dma_fence *p;

	fake_open(&fp);
	p = fence_of(fp.rfd);
	EXPECT_STREQ(p->ops->get_driver_name(p), "hetmem-import");
	EXPECT_EQ(p->seqno, 1);
	EXPECT_FALSE(dma_fence_is_signaled(p));
	EXPECT_EQ(fd_status(fp.rfd), 0);
	fake_record(&rec, -ENODATA, 4242, "remote-merge");
	fake_write(&fp, &rec, sizeof(rec));
	/* Readable before the write end closes: the record is the signal. */
	EXPECT_EQ(readable(fp.rfd, 0), 1);
	EXPECT_TRUE(dma_fence_is_signaled(p));
	EXPECT_EQ(dma_fence_get_status(p), -ENODATA);
	EXPECT_EQ(dma_fence_timestamp(p), 4242);
	ASSERT_EQ(hetmem_sync_file_info(fp.rfd, &info), 0);
	EXPECT_STREQ(info.name, "remote-merge");
	EXPECT_EQ(info.status, -ENODATA);
	dma_fence_put(p);
	fake_close(&fp);
}

TEST(closed_without_record_is_epipe)
{
	struct fake_producer fp;
	struct dma_fence *p;

	fake_open(&fp);
	p = fence_of(fp.rfd);
	close(fp.wfd);
	fp.wfd = -1;
	EXPECT_GT(dma_fence_wait_timeout(p, false, 1000), 0);
	EXPECT_EQ(dma_fence_get_status(p), -EPIPE);
	EXPECT_EQ(fd_status(fp.rfd), -EPIPE);
	dma_fence_put(p);
	fake_close(&fp);
}

static int status_of_packet(const void *buf, size_t len, bool close_it)
{
	struct fake_producer fp;
	int status;

	fake_open(&fp);
	fake_write(&fp, buf, len);
	if (close_it) {
		close(fp.wfd);
		fp.wfd = -1;
	}
	status = fd_status(fp.rfd);
	fake_close(&fp);
	return status;
}

TEST(malformed_records_are_einval)
{
	struct hetmem_sync_record rec;
	char junk[200];

	memset(junk, 0x5a, sizeof(junk));
	EXPECT_EQ(status_of_packet(junk, 3, true), -EINVAL);
	EXPECT_EQ(status_of_packet(junk, sizeof(junk), false), -EINVAL);
	fake_record(&rec, 1, 1, "");
	rec.magic ^= 1;
	EXPECT_EQ(status_of_packet(&rec, sizeof(rec), true), -EINVAL);
	fake_record(&rec, 1, 1, "");
	rec.version = 99;
	EXPECT_EQ(status_of_packet(&rec, sizeof(rec), true), -EINVAL);
	fake_record(&rec, 5, 1, "");
	EXPECT_EQ(status_of_packet(&rec, sizeof(rec), true), -EINVAL);
	fake_record(&rec, -5000, 1, "");
	EXPECT_EQ(status_of_packet(&rec, sizeof(rec), true), -EINVAL);
	fake_record(&rec, 0, 1, "");
	EXPECT_EQ(status_of_packet(&rec, sizeof(rec), true), -EINVAL);
	/* A good record with trailing bytes: the first 72 bytes count. */
	{
		char big[sizeof(rec) + 16];

		fake_record(&rec, -EIO, 7, "");
		memcpy(big, &rec, sizeof(rec));
		memset(big + sizeof(rec), 0x5a, 16);
		EXPECT_EQ(status_of_packet(big, sizeof(big), true), -EIO);
	}
}

TEST(pipe_holds_one_record_only)
{
	struct fake_producer fp;
	char junk[8] = { 0 };

	/* One page, one packet: a second write finds the pipe full. */
	fake_open(&fp);
	fake_write(&fp, junk, sizeof(junk));
	EXPECT_EQ(write(fp.wfd, junk, sizeof(junk)), -1);
	EXPECT_EQ(errno, EAGAIN);
	EXPECT_EQ(fcntl(fp.rfd, F_GETPIPE_SZ), sysconf(_SC_PAGESIZE));
	fake_close(&fp);
}

TEST(consumed_record_reads_as_epipe_but_stays_ready)
{
	struct hetmem_sync_record rec;
	struct fake_producer fp;

	fake_open(&fp);
	fake_signal(&fp, 1, 99);
	/* A holder that read()s the record away: documented limit. */
	ASSERT_EQ(read(fp.rfd, &rec, sizeof(rec)), (ssize_t)sizeof(rec));
	{
		struct pollfd pfd = { .fd = fp.rfd, .events = POLLIN };

		EXPECT_EQ(poll(&pfd, 1, 0), 1);
		EXPECT_TRUE(pfd.revents & POLLHUP);
	}
	EXPECT_EQ(fd_status(fp.rfd), -EPIPE);
	fake_close(&fp);
}

TEST(two_imports_of_one_pipe_share_a_context)
{
	struct fake_producer fp;
	struct dma_fence *a, *b, *c;
	struct sync_file_info info = { .num_fences = 0 };
	int dupfd, merged;

	fake_open(&fp);
	dupfd = fcntl(fp.rfd, F_DUPFD_CLOEXEC, 0);
	ASSERT_GE(dupfd, 0);
	a = fence_of(fp.rfd);
	b = fence_of(dupfd);
	EXPECT_TRUE(a != b);
	EXPECT_EQ(a->context, b->context);
	merged = hetmem_sync_file_merge("same", fp.rfd, dupfd, 0);
	ASSERT_GE(merged, 0);
	ASSERT_EQ(hetmem_sync_file_info(merged, &info), 0);
	EXPECT_EQ(info.num_fences, 1);
	EXPECT_EQ(readable(merged, 0), 0);
	fake_signal(&fp, 1, 5);
	EXPECT_EQ(hung_up(merged, 5000), 1);
	EXPECT_EQ(fd_status(merged), 1);
	dma_fence_put(a);
	dma_fence_put(b);
	/* With every proxy gone, a new import gets a new context. */
	c = fence_of(fp.rfd);
	EXPECT_TRUE(dma_fence_is_signaled(c));
	dma_fence_put(c);
	close(merged);
	close(dupfd);
	fake_close(&fp);
}

/* --- proxy waits and callbacks ----------------------------------------- */

struct delayed {
	struct fake_producer *fp;
	struct dma_fence *fence;
	int ms;
	int status;
};

static void *delayed_signal(void *arg)
{
	struct delayed *d = arg;

	usleep(d->ms * 1000);
	if (d->fp)
		fake_signal(d->fp, d->status, hetmem_ktime_get());
	else
		signal_error(d->fence, d->status < 0 ? d->status : 0);
	return NULL;
}

TEST(proxy_wait_times_out_then_succeeds)
{
	struct fake_producer fp;
	struct delayed d = { .fp = &fp, .ms = 50, .status = 1 };
	struct dma_fence *p;
	pthread_t t;
	long ret;

	fake_open(&fp);
	p = fence_of(fp.rfd);
	EXPECT_EQ(dma_fence_wait_timeout(p, false, 0), 0);
	EXPECT_EQ(dma_fence_wait_timeout(p, true, 10), 0);
	ASSERT_EQ(pthread_create(&t, NULL, delayed_signal, &d), 0);
	ret = dma_fence_wait_timeout(p, true, 5000);
	EXPECT_GT(ret, 0);
	EXPECT_LE(ret, 5000);
	EXPECT_EQ(dma_fence_get_status(p), 1);
	EXPECT_EQ(dma_fence_wait_timeout(p, false, 0), 1);
	EXPECT_EQ(dma_fence_wait(p, true), 0);
	pthread_join(t, NULL);
	dma_fence_put(p);
	fake_close(&fp);
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
	int i;

	for (i = 0; i < 10 && !__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE); i++) {
		usleep(20 * 1000);
		pthread_kill(k->target, SIGUSR1);
	}
	return NULL;
}

TEST(proxy_wait_interruptible_and_not)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	struct kicker k = { .target = pthread_self() };
	struct fake_producer fp;
	struct dma_fence *p;
	int64_t t0;
	pthread_t t;

	sigaction(SIGUSR1, &sa, NULL);
	fake_open(&fp);
	p = fence_of(fp.rfd);
	ASSERT_EQ(pthread_create(&t, NULL, kick, &k), 0);
	EXPECT_EQ(dma_fence_wait_timeout(p, true, 5000), -HETMEM_ERESTARTSYS);
	/* Not interruptible: keeps waiting, with the remaining time. */
	t0 = hetmem_ktime_get();
	EXPECT_EQ(dma_fence_wait_timeout(p, false, 150), 0);
	EXPECT_GE(hetmem_ktime_get() - t0, 150LL * 1000 * 1000);
	EXPECT_LT(hetmem_ktime_get() - t0, 1000LL * 1000 * 1000);
	__atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	fake_signal(&fp, 1, 1);
	EXPECT_GT(dma_fence_wait_timeout(p, true, 1000), 0);
	dma_fence_put(p);
	fake_close(&fp);
}

struct cb_record {
	struct dma_fence_cb cb;
	int calls;
	int status;
	uint32_t done;
};

static void record_cb(struct dma_fence *f, struct dma_fence_cb *cb)
{
	struct cb_record *r = hetmem_container_of(cb, struct cb_record, cb);

	r->calls++;
	r->status = dma_fence_get_status_locked(f);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
}

static bool wait_flag(uint32_t *flag, int ms)
{
	int64_t end = hetmem_ktime_get() + (int64_t)ms * 1000000;

	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		if (hetmem_ktime_get() > end)
			return false;
		usleep(1000);
	}
	return true;
}

TEST(proxy_callbacks_run_from_the_watcher)
{
	struct cb_record r1 = { 0 }, r2 = { 0 };
	struct fake_producer fp1, fp2;
	struct dma_fence *p1, *p2;

	fake_open(&fp1);
	fake_open(&fp2);
	p1 = fence_of(fp1.rfd);
	p2 = fence_of(fp2.rfd);
	ASSERT_EQ(dma_fence_add_callback(p1, &r1.cb, record_cb), 0);
	ASSERT_EQ(dma_fence_add_callback(p2, &r2.cb, record_cb), 0);
	fake_signal(&fp1, -EIO, 11);
	ASSERT_TRUE(wait_flag(&r1.done, 5000));
	EXPECT_EQ(r1.calls, 1);
	EXPECT_EQ(r1.status, -EIO);
	EXPECT_EQ(dma_fence_timestamp(p1), 11);
	EXPECT_EQ(__atomic_load_n(&r2.done, __ATOMIC_ACQUIRE), 0);
	fake_signal(&fp2, 1, 22);
	ASSERT_TRUE(wait_flag(&r2.done, 5000));
	EXPECT_EQ(r2.status, 1);
	dma_fence_put(p1);
	dma_fence_put(p2);
	fake_close(&fp1);
	fake_close(&fp2);
}

TEST(proxy_released_while_watched_leaves_nothing_open)
{
	struct fake_producer fp;
	struct dma_fence *p;

	fake_open(&fp);
	p = fence_of(fp.rfd);
	dma_fence_enable_sw_signaling(p);
	/* The harness checks that the watcher's descriptors are gone. */
	dma_fence_put(p);
	fake_close(&fp);
}

TEST(proxy_already_ready_at_enable)
{
	struct cb_record r = { 0 };
	struct fake_producer fp;
	struct dma_fence *p;

	fake_open(&fp);
	p = fence_of(fp.rfd);
	fake_signal(&fp, 1, 3);
	EXPECT_EQ(dma_fence_add_callback(p, &r.cb, record_cb), -ENOENT);
	EXPECT_EQ(r.calls, 0);
	EXPECT_TRUE(dma_fence_is_signaled(p));
	EXPECT_EQ(dma_fence_timestamp(p), 3);
	dma_fence_put(p);
	fake_close(&fp);
}

/* --- merge -------------------------------------------------------------- */

TEST(merge_two_pending_fences)
{
	struct dma_fence *a = test_fence(), *b = test_fence(), *m;
	int fa = hetmem_sync_file_export(a, 0);
	int fb = hetmem_sync_file_export(b, 0);
	int fm;

	ASSERT_GE(fa, 0);
	ASSERT_GE(fb, 0);
	fm = hetmem_sync_file_merge("ab", fa, fb, 0);
	ASSERT_GE(fm, 0);
	EXPECT_TRUE(cloexec(fm));
	m = fence_of(fm);
	EXPECT_TRUE(dma_fence_is_array(m));
	dma_fence_put(m);
	signal_error(a, 0);
	EXPECT_EQ(readable(fm, 50), 0);
	signal_error(b, 0);
	EXPECT_EQ(hung_up(fm, 5000), 1);
	EXPECT_EQ(fd_status(fm), 1);
	/* Inputs stay valid. */
	EXPECT_EQ(fd_status(fa), 1);
	close(fa);
	close(fb);
	close(fm);
	dma_fence_put(a);
	dma_fence_put(b);
}

TEST(merge_keeps_an_error)
{
	struct dma_fence *a = test_fence(), *b = test_fence();
	int fa = hetmem_sync_file_export(a, 0);
	int fb = hetmem_sync_file_export(b, 0);
	int fm = hetmem_sync_file_merge("ab", fa, fb, HETMEM_SYNC_FILE_INHERIT);

	ASSERT_GE(fm, 0);
	EXPECT_FALSE(cloexec(fm));
	signal_error(b, -EIO);
	signal_error(a, 0);
	EXPECT_EQ(hung_up(fm, 5000), 1);
	EXPECT_EQ(fd_status(fm), -EIO);
	close(fa);
	close(fb);
	close(fm);
	dma_fence_put(a);
	dma_fence_put(b);
}

TEST(merge_with_itself_is_the_same_fence)
{
	struct dma_fence *a = test_fence();
	int fa = hetmem_sync_file_export(a, 0);
	int fm = hetmem_sync_file_merge("aa", fa, fa, 0);

	ASSERT_GE(fm, 0);
	EXPECT_TRUE(sync_file_get_fence(fm) == a);
	dma_fence_put(a);
	signal_error(a, 0);
	EXPECT_EQ(hung_up(fm, 1000), 1);
	close(fa);
	close(fm);
	dma_fence_put(a);
}

TEST(merge_of_signalled_fences_is_signalled)
{
	struct dma_fence *a = test_fence(), *b = test_fence();
	int fa, fb, fm;

	ASSERT_EQ(dma_fence_signal_timestamp(a, 1000), 0);
	dma_fence_set_error(b, -EIO);
	ASSERT_EQ(dma_fence_signal_timestamp(b, 2000), 0);
	fa = hetmem_sync_file_export(a, 0);
	fb = hetmem_sync_file_export(b, 0);
	fm = hetmem_sync_file_merge("done", fa, fb, 0);
	ASSERT_GE(fm, 0);
	EXPECT_EQ(hung_up(fm, 1000), 1);
	/* The kernel drops errors of signalled inputs. */
	EXPECT_EQ(fd_status(fm), 1);
	close(fa);
	close(fb);
	close(fm);
	dma_fence_put(a);
	dma_fence_put(b);
}

TEST(merge_error_codes)
{
	struct dma_fence *a = test_fence();
	int fa = hetmem_sync_file_export(a, 0);
	int p[2];

	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	EXPECT_EQ(hetmem_sync_file_merge("x", fa, fa, 0x8), -EINVAL);
	EXPECT_EQ(hetmem_sync_file_merge("x", p[0], fa, 0), -EINVAL);
	EXPECT_EQ(hetmem_sync_file_merge("x", fa, p[0], 0), -ENOENT);
	EXPECT_EQ(hetmem_sync_file_merge("x", fa, -1, 0), -ENOENT);
	EXPECT_EQ(hetmem_sync_file_merge("x", -1, fa, 0), -EBADF);
	close(p[0]);
	close(p[1]);
	signal_error(a, 0);
	close(fa);
	dma_fence_put(a);
}

/* --- FILE_INFO ---------------------------------------------------------- */

TEST(file_info_two_call_pattern)
{
	struct dma_fence *a = test_fence(), *b = test_fence();
	int fa = hetmem_sync_file_export(a, 0);
	int fb = hetmem_sync_file_export(b, 0);
	int fm = hetmem_sync_file_merge("pair", fa, fb, 0);
	struct sync_file_info info = { .num_fences = 0 };
	struct sync_fence_info leaf[3];

	ASSERT_GE(fm, 0);
	info.flags = 1;
	EXPECT_EQ(hetmem_sync_file_info(fm, &info), -EINVAL);
	info.flags = 0;
	info.pad = 1;
	EXPECT_EQ(hetmem_sync_file_info(fm, &info), -EINVAL);
	info.pad = 0;
	EXPECT_EQ(hetmem_sync_file_info(fm, NULL), -EFAULT);

	ASSERT_EQ(hetmem_sync_file_info(fm, &info), 0);
	EXPECT_EQ(info.num_fences, 2);
	EXPECT_EQ(info.status, 0);
	EXPECT_STREQ(info.name, "pair");

	info.num_fences = 1;
	info.sync_fence_info = (uintptr_t)leaf;
	EXPECT_EQ(hetmem_sync_file_info(fm, &info), -EINVAL);
	info.num_fences = 3;
	info.sync_fence_info = 0;
	EXPECT_EQ(hetmem_sync_file_info(fm, &info), -EFAULT);

	memset(leaf, 0x77, sizeof(leaf));
	info.num_fences = 3;
	info.sync_fence_info = (uintptr_t)leaf;
	ASSERT_EQ(hetmem_sync_file_info(fm, &info), 0);
	EXPECT_EQ(info.num_fences, 2);
	EXPECT_EQ(info.status, 0);
	EXPECT_STREQ(leaf[0].driver_name, "test");
	EXPECT_STREQ(leaf[0].obj_name, "tl");
	EXPECT_EQ(leaf[0].status, 0);
	EXPECT_EQ(leaf[0].flags, 0);
	EXPECT_EQ(leaf[0].timestamp_ns, 0);
	EXPECT_EQ(leaf[2].status, 0x77777777);	/* not written */

	signal_error(a, 0);
	signal_error(b, 0);
	/* The array signals on the fence executor; its record then closes. */
	EXPECT_EQ(hung_up(fm, 5000), 1);
	close(fa);
	close(fb);
	close(fm);
	dma_fence_put(a);
	dma_fence_put(b);
}

/* The aggregate is the first leaf status <= 0 in iteration order. */
TEST(file_info_status_aggregation)
{
	uint64_t ctx = dma_fence_context_alloc(3);
	struct dma_fence *f0 = test_fence_seq(ctx, 1);
	struct dma_fence *f1 = test_fence_seq(ctx + 1, 1);
	struct dma_fence *f2 = test_fence_seq(ctx + 2, 1);
	int a = hetmem_sync_file_export(f0, 0);
	int b = hetmem_sync_file_export(f1, 0);
	int c = hetmem_sync_file_export(f2, 0);
	int ab = hetmem_sync_file_merge("ab", a, b, 0);
	int abc = hetmem_sync_file_merge("abc", ab, c, 0);
	struct sync_fence_info leaf[3];
	struct sync_file_info info = {
		.num_fences = 3, .sync_fence_info = (uintptr_t)leaf,
	};

	ASSERT_GE(abc, 0);
	/* Pending first, error later: the 0 hides the error. */
	ASSERT_EQ(dma_fence_signal_timestamp(f0, 10), 0);
	dma_fence_set_error(f2, -EIO);
	ASSERT_EQ(dma_fence_signal_timestamp(f2, 30), 0);
	ASSERT_EQ(hetmem_sync_file_info(abc, &info), 0);
	EXPECT_EQ(info.num_fences, 3);
	EXPECT_EQ(leaf[0].status, 1);
	EXPECT_EQ(leaf[0].timestamp_ns, 10);
	EXPECT_STREQ(leaf[0].driver_name, "detached-driver");
	EXPECT_STREQ(leaf[0].obj_name, "signaled-timeline");
	EXPECT_EQ(leaf[1].status, 0);
	EXPECT_EQ(leaf[2].status, -EIO);
	EXPECT_EQ(leaf[2].timestamp_ns, 30);
	EXPECT_EQ(info.status, 0);
	/* The whole fence is still pending. */
	info.num_fences = 0;
	ASSERT_EQ(hetmem_sync_file_info(abc, &info), 0);
	EXPECT_EQ(info.status, 0);
	close(a);
	close(b);
	close(c);
	close(ab);

	/* Error first in order: it wins over the later pending leaf. */
	{
		struct dma_fence *g0 = test_fence_seq(ctx, 2);
		struct dma_fence *g1 = test_fence_seq(ctx + 1, 2);
		int x = hetmem_sync_file_export(g0, 0);
		int y = hetmem_sync_file_export(g1, 0);
		int xy = hetmem_sync_file_merge("xy", x, y, 0);

		ASSERT_GE(xy, 0);
		signal_error(g0, -ETIME);
		info.num_fences = 3;
		info.sync_fence_info = (uintptr_t)leaf;
		ASSERT_EQ(hetmem_sync_file_info(xy, &info), 0);
		EXPECT_EQ(info.num_fences, 2);
		EXPECT_EQ(info.status, -ETIME);
		signal_error(g1, 0);
		close(x);
		close(y);
		close(xy);
		dma_fence_put(g0);
		dma_fence_put(g1);
	}
	signal_error(f1, 0);
	EXPECT_EQ(hung_up(abc, 5000), 1);
	info.num_fences = 0;
	ASSERT_EQ(hetmem_sync_file_info(abc, &info), 0);
	EXPECT_EQ(info.status, -EIO);
	close(abc);
	dma_fence_put(f0);
	dma_fence_put(f1);
	dma_fence_put(f2);
}

TEST(file_info_generated_name)
{
	struct dma_fence *f = test_fence_seq(dma_fence_context_alloc(1), 77);
	struct sync_file_info info = { .num_fences = 0 };
	char want[64];
	int fd = hetmem_sync_file_export(f, 0);

	ASSERT_GE(fd, 0);
	ASSERT_EQ(hetmem_sync_file_info(fd, &info), 0);
	snprintf(want, sizeof(want), "test-tl%llu-77",
		 (unsigned long long)f->context);
	EXPECT_STREQ(info.name, want);
	EXPECT_EQ(info.num_fences, 1);
	signal_error(f, 0);
	close(fd);
	dma_fence_put(f);
}

TEST(get_name_formats_and_truncates)
{
	struct dma_fence *f = test_fence_seq(dma_fence_context_alloc(1), 5);
	struct sync_file *sf = sync_file_create(f);
	char buf[64], want[64];

	ASSERT_NONNULL(sf);
	snprintf(want, sizeof(want), "test-tl%llu-5",
		 (unsigned long long)f->context);
	EXPECT_STREQ(sync_file_get_name(sf, buf, sizeof(buf)), want);
	EXPECT_STREQ(sync_file_get_name(sf, buf, 5), "test");
	hetmem_sync_strscpy(sf->user_name, "custom", sizeof(sf->user_name));
	EXPECT_STREQ(sync_file_get_name(sf, buf, sizeof(buf)), "custom");
	EXPECT_TRUE(sync_file_get_name(sf, buf, 0) == buf);
	hetmem_sync_file_put(sf);
	signal_error(f, 0);
	dma_fence_put(f);
}

/* --- deadlines and the ioctl dispatcher -------------------------------- */

TEST(set_deadline_rules)
{
	struct sync_timeline *tl = hetmem_sync_timeline_create("dl");
	struct dma_fence *f = hetmem_sync_pt_create(tl, 1);
	struct sync_set_deadline d = { .deadline_ns = 5000, .pad = 1 };
	struct fake_producer fp;
	int fd = hetmem_sync_file_export(f, 0);

	ASSERT_GE(fd, 0);
	EXPECT_EQ(hetmem_sync_file_set_deadline(fd, &d), -EINVAL);
	EXPECT_EQ(hetmem_sync_file_set_deadline(fd, NULL), -EFAULT);
	d.pad = 0;
	EXPECT_EQ(hetmem_sync_file_set_deadline(fd, &d), 0);
	/* A foreign fence accepts and drops the hint. */
	fake_open(&fp);
	EXPECT_EQ(hetmem_sync_file_set_deadline(fp.rfd, &d), 0);
	fake_close(&fp);
	hetmem_sync_timeline_signal(tl, 1);
	close(fd);
	dma_fence_put(f);
	hetmem_sync_timeline_destroy(tl);
}

TEST(ioctl_dispatch_and_errors)
{
	struct dma_fence *a = test_fence(), *b = test_fence();
	int fa = hetmem_sync_file_export(a, 0);
	int fb = hetmem_sync_file_export(b, 0);
	struct sync_merge_data md;
	struct sync_file_info info = { .num_fences = 0 };
	struct sync_set_deadline dl = { 0, 0 };

	ASSERT_GE(fa, 0);
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, _IOWR('>', 9, int), &info),
		  -ENOTTY);
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_FILE_INFO, NULL), -EFAULT);
	EXPECT_EQ(hetmem_sync_file_ioctl(-1, SYNC_IOC_FILE_INFO, &info), -EBADF);
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_FILE_INFO, &info), 0);
	EXPECT_EQ(info.num_fences, 1);
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_SET_DEADLINE, &dl), 0);

	memset(&md, 0, sizeof(md));
	md.fd2 = fb;
	md.flags = 1;
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_MERGE, &md), -EINVAL);
	md.flags = 0;
	md.pad = 1;
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_MERGE, &md), -EINVAL);
	md.pad = 0;
	md.fd2 = -1;
	EXPECT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_MERGE, &md), -ENOENT);
	/* A name without terminator is cut at 31 characters. */
	memset(md.name, 'n', sizeof(md.name));
	md.fd2 = fb;
	ASSERT_EQ(hetmem_sync_file_ioctl(fa, SYNC_IOC_MERGE, &md), 0);
	ASSERT_GE(md.fence, 0);
	EXPECT_TRUE(cloexec(md.fence));
	info.num_fences = 0;
	ASSERT_EQ(hetmem_sync_file_info(md.fence, &info), 0);
	EXPECT_EQ(strlen(info.name), 31);
	EXPECT_EQ(info.num_fences, 2);

	signal_error(a, 0);
	signal_error(b, 0);
	EXPECT_EQ(hung_up(md.fence, 5000), 1);
	close(md.fence);
	close(fa);
	close(fb);
	dma_fence_put(a);
	dma_fence_put(b);
}

TEST(uapi_layout)
{
	EXPECT_EQ(sizeof(struct sync_merge_data), 48);
	EXPECT_EQ(sizeof(struct sync_fence_info), 80);
	EXPECT_EQ(sizeof(struct sync_file_info), 56);
	EXPECT_EQ(sizeof(struct sync_set_deadline), 16);
	EXPECT_EQ(SYNC_IOC_MERGE, 0xc0303e03);
	EXPECT_EQ(SYNC_IOC_FILE_INFO, 0xc0383e04);
	EXPECT_EQ(SYNC_IOC_SET_DEADLINE, 0x40103e05);
}

/* --- fork and exec ------------------------------------------------------ */

/* Does this process hold a descriptor that can write into pipe @ino? */
static bool holds_write_end(uint64_t ino)
{
	struct stat st;
	int fd, fl;

	for (fd = 0; fd < 1024; fd++) {
		if (fstat(fd, &st) || !S_ISFIFO(st.st_mode) || st.st_ino != ino)
			continue;
		fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY)
			return true;
	}
	return false;
}

TEST(fork_child_is_not_the_signaller)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);
	struct stat st;
	pid_t pid;
	int ws;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(fstat(fd, &st), 0);
	EXPECT_TRUE(holds_write_end(st.st_ino));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct dma_fence *p;
		int ok = !holds_write_end(st.st_ino);

		/* Our copy of the fence signals here; the pipe must not. */
		ok &= dma_fence_signal(f) == 0;
		ok &= !readable(fd, 0);
		p = sync_file_get_fence(fd);
		ok &= p && p != f && !dma_fence_is_signaled(p);
		dma_fence_put(p);
		_exit(ok ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	EXPECT_EQ(readable(fd, 0), 0);
	EXPECT_TRUE(sync_file_get_fence(fd) == f);
	dma_fence_put(f);
	signal_error(f, 0);
	EXPECT_EQ(readable(fd, 0), 1);
	close(fd);
	dma_fence_put(f);
}

/*
 * Run by the exec tests below in a fresh process image: checks the
 * descriptor named in the environment. Skipped in a normal run.
 */
#define REPORT_FD 200

TEST(exec_helper)
{
	const char *env = getenv("HETMEM_TEST_SYNC_FD");
	const char *want = getenv("HETMEM_TEST_SYNC_EXPECT");
	int fd;

	if (!env || !want)
		SKIP(return, "run by exec_keeps_inherited_fd_pollable");
	fd = atoi(env);
	if (!strcmp(want, "closed")) {
		EXPECT_EQ(fcntl(fd, F_GETFD), -1);
		return;
	}
	/* Pending when we start; the parent signals after we report in. */
	EXPECT_EQ(readable(fd, 0), 0);
	EXPECT_EQ(write(REPORT_FD, "r", 1), 1);
	EXPECT_EQ(readable(fd, 10000), 1);
	EXPECT_EQ(fd_status(fd), -ENOLINK);
	close(fd);
}

static pid_t spawn_helper(int fd, const char *expect, int report)
{
	char num[16];
	pid_t pid;

	snprintf(num, sizeof(num), "%d", fd);
	pid = fork();
	if (pid)
		return pid;
	setenv("HETMEM_TEST_SYNC_FD", num, 1);
	setenv("HETMEM_TEST_SYNC_EXPECT", expect, 1);
	/* REPORT_FD is the report channel; stdout must not mix TAP. */
	if (dup2(report, REPORT_FD) < 0 || !freopen("/dev/null", "w", stdout))
		_exit(2);
	execl("/proc/self/exe", "test-sync-file", "exec_helper", (char *)NULL);
	_exit(3);
}

TEST(exec_keeps_inherited_fd_pollable)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, HETMEM_SYNC_FILE_INHERIT);
	int rp[2], ws;
	char c;
	pid_t pid;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(pipe2(rp, 0), 0);
	pid = spawn_helper(fd, "pending", rp[1]);
	ASSERT_GE(pid, 0);
	close(rp[1]);
	/* The exec'd image polls; only then do we signal. */
	ASSERT_EQ(read(rp[0], &c, 1), 1);
	signal_error(f, -ENOLINK);
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	EXPECT_TRUE(WIFEXITED(ws));
	EXPECT_EQ(WEXITSTATUS(ws), 0);
	close(rp[0]);
	close(fd);
	dma_fence_put(f);
}

TEST(exec_does_not_inherit_cloexec_fd)
{
	struct dma_fence *f = test_fence();
	int fd = hetmem_sync_file_export(f, 0);
	int rp[2], ws;
	pid_t pid;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(pipe2(rp, 0), 0);
	pid = spawn_helper(fd, "closed", rp[1]);
	ASSERT_GE(pid, 0);
	close(rp[1]);
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	EXPECT_TRUE(WIFEXITED(ws));
	EXPECT_EQ(WEXITSTATUS(ws), 0);
	close(rp[0]);
	signal_error(f, 0);
	close(fd);
	dma_fence_put(f);
}

/* --- descriptor exhaustion --------------------------------------------- */

TEST(out_of_descriptors_is_emfile)
{
	struct rlimit old, low;
	struct dma_fence *f = test_fence();
	int fds[64], n = 0, ret = 0;

	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* Soft and hard: the library's one-time raise cannot help. */
	low.rlim_cur = low.rlim_max = 40;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64) {
		ret = hetmem_sync_file_export(f, 0);
		if (ret < 0)
			break;
		fds[n++] = ret;
	}
	EXPECT_EQ(ret, -EMFILE);
	EXPECT_GT(n, 0);
	signal_error(f, 0);
	while (n--) {
		EXPECT_EQ(readable(fds[n], 0), 1);
		close(fds[n]);
	}
	dma_fence_put(f);
}

TEST(import_out_of_descriptors_is_emfile)
{
	struct fake_producer fp;
	struct rlimit low;
	struct dma_fence *f = (struct dma_fence *)1;
	int fill[64], n = 0, fd;

	fake_open(&fp);
	low.rlim_cur = low.rlim_max = 32;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fd = fcntl(fp.rfd, F_DUPFD_CLOEXEC, 0)) >= 0)
		fill[n++] = fd;
	/* The proxy needs its own duplicate of the descriptor. */
	EXPECT_EQ(hetmem_sync_file_import(fp.rfd, &f), -EMFILE);
	EXPECT_NULL(f);
	EXPECT_NULL(sync_file_get_fence(fp.rfd));
	close(fill[--n]);
	f = fence_of(fp.rfd);
	dma_fence_put(f);
	while (n)
		close(fill[--n]);
	fake_close(&fp);
}

TEST(raise_nofile_once)
{
	struct rlimit rl, after;

	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < 64)
		SKIP(return, "hard RLIMIT_NOFILE too low");
	rl.rlim_cur = rl.rlim_max / 2;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	EXPECT_TRUE(hetmem_sync_raise_nofile());
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &after), 0);
	EXPECT_EQ(after.rlim_cur, rl.rlim_max);
	EXPECT_FALSE(hetmem_sync_raise_nofile());
}
