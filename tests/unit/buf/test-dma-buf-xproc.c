/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dma-buf implicit fences handed between real processes: a
 * producer exports a buffer and a sync_file of its pending write fence,
 * a consumer waits on it, reads, and hands back its own read fence that
 * the producer imports as an implicit fence; export/import flag and
 * descriptor checks across processes; death of either side while the
 * other waits. Every peer is a fork() child talking over a
 * SOCK_SEQPACKET socketpair with the transfer helpers; every wait is
 * bounded, every child reaped, every descriptor closed.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hetmem/buf/dma-buf.h>
#include <hetmem/buf/transfer.h>
#include <hetmem/core/rcu.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sync_file.h>
#include <hetmem/resv/dma-resv.h>

#include "harness.h"
#include "mock-fence.h"

#define WAIT_MS 10000
#define SZ (64 * 1024)
/*
 * How long the consumer holds its read fence after the go-ahead. Not a
 * synchronisation: correctness rests on timestamps; it only makes it
 * likely that the producer is really asleep in the wait when it signals.
 */
#define HOLD_MS 50

static int exporter_priv;

static void x_release(struct dma_buf *d)
{
	(void)d;
}

static const struct dma_buf_ops memfd_ops = {
	.map_dma_buf = hetmem_dma_buf_map_memfd,
	.unmap_dma_buf = hetmem_dma_buf_unmap_memfd,
	.release = x_release,
	.vmap = hetmem_dma_buf_vmap_memfd,
	.vunmap = hetmem_dma_buf_vunmap_memfd,
};

/* NULL on failure, so that fork children can report a code of their own. */
static struct dma_buf *export_buf(void)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct dma_buf *d;

	info.exp_name = "xproc-exporter";
	info.ops = &memfd_ops;
	info.size = SZ;
	info.priv = &exporter_priv;
	d = dma_buf_export(&info);
	return hetmem_dma_buf_is_err(d) ? NULL : d;
}

static int add_fence(struct dma_buf *d, struct dma_fence *f,
		     enum dma_resv_usage usage)
{
	int ret;

	dma_resv_lock(d->resv, NULL);
	ret = dma_resv_reserve_fences(d->resv, 1);
	if (!ret)
		dma_resv_add_fence(d->resv, f, usage);
	dma_resv_unlock(d->resv);
	return ret;
}

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 13 + 1);
}

/* Fill the buffer through a vmap, as a device (or its CPU stand-in) would. */
static int write_pattern(struct dma_buf *d)
{
	struct iosys_map map;
	unsigned char *p;
	size_t i;

	if (dma_buf_vmap_unlocked(d, &map))
		return -1;
	p = map.vaddr;
	for (i = 0; i < SZ; i++)
		p[i] = pattern(i);
	dma_buf_vunmap_unlocked(d, &map);
	return 0;
}

static bool has_pattern(const unsigned char *p)
{
	size_t i;

	for (i = 0; i < SZ; i++)
		if (p[i] != pattern(i))
			return false;
	return true;
}

/* --- plumbing ------------------------------------------------------------ */

static int send_msg(int sock, const void *p, size_t len)
{
	return send(sock, p, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* One control message of exactly @len bytes, waiting at most WAIT_MS. */
static int recv_msg(int sock, void *p, size_t len)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	if (poll(&pfd, 1, WAIT_MS) != 1)
		return -1;
	return recv(sock, p, len, 0) == (ssize_t)len ? 0 : -1;
}

static int send_time(int sock, int64_t t)
{
	return send_msg(sock, &t, sizeof(t));
}

static int recv_time(int sock, int64_t *t)
{
	return recv_msg(sock, t, sizeof(*t));
}

static int send_byte(int sock, char c)
{
	return send_msg(sock, &c, 1);
}

static int recv_byte(int sock, char want)
{
	char c;

	if (recv_msg(sock, &c, 1))
		return -1;
	return c == want ? 0 : -1;
}

/* Fork a peer running @fn on its end of a SEQPACKET socketpair. */
static pid_t fork_peer(int sv[2], int (*fn)(int sock))
{
	pid_t pid;

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(fn(sv[1]));
	}
	close(sv[1]);
	return pid;
}

/*
 * Reap @pid within WAIT_MS (pidfd), killing it if it overstays: its exit
 * code, 128 + signal if it was killed, -1 if waitpid() failed.
 */
static int reap(pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), ws;

	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) != 1)
			kill(pid, SIGKILL);
		close(pfd);
	}
	if (waitpid(pid, &ws, 0) != pid)
		return -1;
	if (WIFSIGNALED(ws))
		return 128 + WTERMSIG(ws);
	return WEXITSTATUS(ws);
}

/* Pending: sync_wait() times out at once, poll() sees nothing, status 0. */
static bool fd_pending(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int status = 99;

	if (sync_wait(fd, 0) != -1 || errno != ETIME)
		return false;
	if (poll(&pfd, 1, 0) != 0)
		return false;
	return !hetmem_sync_file_status(fd, &status) && status == 0;
}

static int fd_status(int fd)
{
	int status = 99, ret = hetmem_sync_file_status(fd, &status);

	return ret ? ret * 1000 : status;
}

/* sync_file_info(): overall and single-leaf status, leaf timestamp. */
static int info_status(int fd, int *leaf_status, uint64_t *leaf_ts)
{
	struct sync_file_info *info = sync_file_info(fd);
	int status;

	if (!info)
		return -9999;
	status = info->status;
	*leaf_status = info->num_fences == 1 ?
		       sync_get_fence_info(info)[0].status : -9998;
	if (leaf_ts)
		*leaf_ts = sync_get_fence_info(info)[0].timestamp_ns;
	sync_file_info_free(info);
	return status;
}

static void put_all(struct dma_buf *d)
{
	dma_buf_put(d);
	hetmem_rcu_barrier();
}

/* --- 1: implicit write fence out, explicit read fence back -------------- */

static int handoff_consumer(int sock)
{
	struct hetmem_buf_desc desc;
	struct dma_fence *rf;
	struct dma_buf *d;
	unsigned char *p;
	int64_t t_w, t_woke, t_go, t_sig;
	uint64_t ts;
	int bfd, ffd, rfd, leaf;

	if (hetmem_buf_recv(sock, &bfd, &desc, NULL, WAIT_MS) || desc.size != SZ)
		return 10;
	if (hetmem_fence_recv(sock, &ffd, WAIT_MS))
		return 11;
	if (hetmem_buf_map(bfd, SZ, PROT_READ | PROT_WRITE, (void **)&p))
		return 12;
	/* The producer has not written yet: its write fence is pending. */
	if (!fd_pending(ffd))
		return 13;
	/*
	 * Implicit fences are per process: the consumer's own object of the
	 * buffer knows nothing until it imports the sync_file.
	 */
	d = dma_buf_get(bfd);
	if (hetmem_dma_buf_is_err(d) || strcmp(d->exp_name, "hetmem-import"))
		return 14;
	if (hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0) != (POLLIN | POLLOUT))
		return 15;
	if (dma_buf_import_sync_file(d, DMA_BUF_SYNC_WRITE, ffd))
		return 16;
	if (hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0) != 0)
		return 17;
	if (send_byte(sock, 'r'))
		return 18;

	if (sync_wait(ffd, WAIT_MS))
		return 19;
	t_woke = harness_now_ms();
	if (fd_status(ffd) != 1 || info_status(ffd, &leaf, &ts) != 1 || leaf != 1)
		return 20;
	if (recv_time(sock, &t_w))
		return 21;
	/* Woken after the producer began to signal; the stamp agrees. */
	if (t_woke < t_w || ts < (uint64_t)t_w * 1000000)
		return 22;
	if (hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0) != (POLLIN | POLLOUT))
		return 23;
	if (dma_buf_begin_cpu_access(d, DMA_FROM_DEVICE))
		return 24;
	if (!has_pattern(p))
		return 25;
	if (dma_buf_end_cpu_access(d, DMA_FROM_DEVICE))
		return 26;

	/* The consumer's read of the buffer, as a fence of its own. */
	rf = mock_fence_create(0);
	rfd = hetmem_sync_file_export(rf, 0);
	if (rfd < 0)
		return 27;
	if (hetmem_fence_send(sock, rfd, WAIT_MS))
		return 28;
	close(rfd);
	if (recv_time(sock, &t_go))
		return 29;
	harness_sleep_ms(HOLD_MS);
	t_sig = harness_now_ms();
	if (dma_fence_signal(rf))
		return 30;
	dma_fence_put(rf);
	if (send_time(sock, t_sig))
		return 31;

	munmap(p, SZ);
	close(ffd);
	close(bfd);
	put_all(d);
	return 0;
}

TEST(implicit_to_explicit_handoff)
{
	struct hetmem_buf_desc desc = { .size = SZ };
	struct dma_fence *wf = mock_fence_create(0);
	struct dma_buf *d = export_buf();
	int64_t t_w, t_go, t_ret, t_sig;
	int sv[2], bfd, sf, rfd, ret;
	pid_t pid;

	ASSERT_NONNULL(d);
	ASSERT_EQ(add_fence(d, wf, DMA_RESV_USAGE_WRITE), 0);
	bfd = dma_buf_fd(d, O_CLOEXEC);
	ASSERT_GE(bfd, 0);
	/* READ: "may the CPU read", i.e. wait for writers: ours is pending. */
	sf = dma_buf_export_sync_file(d, DMA_BUF_SYNC_READ);
	ASSERT_GE(sf, 0);
	ASSERT_TRUE(fd_pending(sf));

	pid = fork_peer(sv, handoff_consumer);
	ASSERT_EQ(hetmem_buf_send(sv[0], bfd, &desc, WAIT_MS), 0);
	ASSERT_EQ(hetmem_fence_send(sv[0], sf, WAIT_MS), 0);
	close(bfd);

	/* The consumer saw the fence pending; now "the device" writes. */
	ASSERT_EQ(recv_byte(sv[0], 'r'), 0);
	ASSERT_EQ(write_pattern(d), 0);
	t_w = harness_now_ms();
	ASSERT_EQ(dma_fence_signal(wf), 0);
	ASSERT_EQ(send_time(sv[0], t_w), 0);
	EXPECT_EQ(fd_status(sf), 1);
	close(sf);

	/* The consumer's read fence comes back pending. */
	ASSERT_EQ(hetmem_fence_recv(sv[0], &rfd, WAIT_MS), 0);
	ASSERT_TRUE(fd_pending(rfd));
	ASSERT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, rfd), 0);
	/* Readable (writers done), not writable (a reader is busy). */
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN, 0), POLLIN);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLOUT, 0), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN);
	EXPECT_TRUE(dma_resv_test_signaled(d->resv, DMA_RESV_USAGE_WRITE));
	EXPECT_FALSE(dma_resv_test_signaled(d->resv, DMA_RESV_USAGE_READ));
	ASSERT_EQ(hetmem_dma_buf_poll(d, POLLOUT, 0), 0);
	/* A CPU read only waits for writers: no wait here. */
	ASSERT_EQ(hetmem_dma_buf_poll(d, POLLIN, 0), POLLIN);
	EXPECT_EQ(dma_buf_begin_cpu_access(d, DMA_FROM_DEVICE), 0);
	EXPECT_EQ(dma_buf_end_cpu_access(d, DMA_FROM_DEVICE), 0);

	/* A CPU write (DMA_TO_DEVICE) waits for the consumer's read fence. */
	t_go = harness_now_ms();
	ASSERT_EQ(send_time(sv[0], t_go), 0);
	ret = dma_buf_begin_cpu_access(d, DMA_TO_DEVICE);
	t_ret = harness_now_ms();
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(recv_time(sv[0], &t_sig), 0);
	EXPECT_GE(t_sig, t_go + HOLD_MS);
	EXPECT_GE(t_ret, t_sig);
	EXPECT_LT(t_ret - t_go, WAIT_MS);
	EXPECT_EQ(fd_status(rfd), 1);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
	EXPECT_EQ(dma_buf_end_cpu_access(d, DMA_TO_DEVICE), 0);
	EXPECT_EQ(dma_buf_begin_cpu_access(d, DMA_BIDIRECTIONAL), 0);
	EXPECT_EQ(dma_buf_end_cpu_access(d, DMA_BIDIRECTIONAL), 0);

	close(rfd);
	close(sv[0]);
	EXPECT_EQ(reap(pid), 0);
	dma_fence_put(wf);
	put_all(d);
}

/* --- 2: export and import rules across processes ------------------------ */

/* A writer and a reader pending; READ, WRITE and RW snapshots sent. */
static int two_fence_producer(int sock)
{
	struct hetmem_buf_desc desc = { .size = SZ };
	struct dma_fence *wf = mock_fence_create(0);
	struct dma_fence *rf = mock_fence_create(0);
	struct dma_buf *d = export_buf();
	int bfd, sf[3], i;

	if (!d || add_fence(d, wf, DMA_RESV_USAGE_WRITE) ||
	    add_fence(d, rf, DMA_RESV_USAGE_READ))
		return 10;
	bfd = dma_buf_fd(d, O_CLOEXEC);
	sf[0] = dma_buf_export_sync_file(d, DMA_BUF_SYNC_READ);
	sf[1] = dma_buf_export_sync_file(d, DMA_BUF_SYNC_WRITE);
	sf[2] = dma_buf_export_sync_file(d, DMA_BUF_SYNC_RW);
	if (bfd < 0 || sf[0] < 0 || sf[1] < 0 || sf[2] < 0)
		return 11;
	if (hetmem_buf_send(sock, bfd, &desc, WAIT_MS))
		return 12;
	for (i = 0; i < 3; i++) {
		if (hetmem_fence_send(sock, sf[i], WAIT_MS))
			return 13;
		close(sf[i]);
	}
	close(bfd);
	if (recv_byte(sock, 'w') || dma_fence_signal(wf) || send_byte(sock, 'W'))
		return 14;
	if (recv_byte(sock, 'r') || dma_fence_signal(rf) || send_byte(sock, 'R'))
		return 15;
	dma_fence_put(wf);
	dma_fence_put(rf);
	put_all(d);
	return 0;
}

TEST(export_write_waits_for_readers_and_writers)
{
	struct hetmem_buf_desc desc;
	int sv[2], bfd, sf[3], i;
	pid_t pid = fork_peer(sv, two_fence_producer);

	ASSERT_EQ(hetmem_buf_recv(sv[0], &bfd, &desc, NULL, WAIT_MS), 0);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(hetmem_fence_recv(sv[0], &sf[i], WAIT_MS), 0);
	for (i = 0; i < 3; i++)
		EXPECT_TRUE(fd_pending(sf[i]));

	/* Writer done: READ (wait for writers) signals, WRITE and RW do not. */
	ASSERT_EQ(send_byte(sv[0], 'w'), 0);
	ASSERT_EQ(recv_byte(sv[0], 'W'), 0);
	EXPECT_EQ(sync_wait(sf[0], WAIT_MS), 0);
	EXPECT_EQ(fd_status(sf[0]), 1);
	EXPECT_TRUE(fd_pending(sf[1]));
	EXPECT_TRUE(fd_pending(sf[2]));

	/* Reader done too: everything signals, cleanly. */
	ASSERT_EQ(send_byte(sv[0], 'r'), 0);
	ASSERT_EQ(recv_byte(sv[0], 'R'), 0);
	EXPECT_EQ(sync_wait(sf[1], WAIT_MS), 0);
	EXPECT_EQ(sync_wait(sf[2], WAIT_MS), 0);
	EXPECT_EQ(fd_status(sf[1]), 1);
	EXPECT_EQ(fd_status(sf[2]), 1);

	for (i = 0; i < 3; i++)
		close(sf[i]);
	close(bfd);
	close(sv[0]);
	EXPECT_EQ(reap(pid), 0);
}

static int no_fence_producer(int sock)
{
	struct hetmem_buf_desc desc = { .size = SZ };
	struct dma_buf *d = export_buf();
	int bfd, sr, sw;

	if (!d)
		return 10;
	bfd = dma_buf_fd(d, O_CLOEXEC);
	sr = dma_buf_export_sync_file(d, DMA_BUF_SYNC_READ);
	sw = dma_buf_export_sync_file(d, DMA_BUF_SYNC_WRITE);
	if (bfd < 0 || sr < 0 || sw < 0)
		return 11;
	if (hetmem_buf_send(sock, bfd, &desc, WAIT_MS) ||
	    hetmem_fence_send(sock, sr, WAIT_MS) ||
	    hetmem_fence_send(sock, sw, WAIT_MS))
		return 12;
	close(sr);
	close(sw);
	close(bfd);
	put_all(d);
	return 0;
}

TEST(export_without_fences_is_signalled)
{
	struct hetmem_buf_desc desc;
	struct dma_buf *d;
	int sv[2], bfd, sr, sw, own, leaf = 0;
	pid_t pid = fork_peer(sv, no_fence_producer);

	ASSERT_EQ(hetmem_buf_recv(sv[0], &bfd, &desc, NULL, WAIT_MS), 0);
	ASSERT_EQ(hetmem_fence_recv(sv[0], &sr, WAIT_MS), 0);
	ASSERT_EQ(hetmem_fence_recv(sv[0], &sw, WAIT_MS), 0);
	close(sv[0]);
	/* Signalled at export, so the producer's exit is no -EPIPE. */
	EXPECT_EQ(reap(pid), 0);
	EXPECT_EQ(sync_wait(sr, 0), 0);
	EXPECT_EQ(sync_wait(sw, 0), 0);
	EXPECT_EQ(fd_status(sr), 1);
	EXPECT_EQ(fd_status(sw), 1);
	EXPECT_EQ(info_status(sw, &leaf, NULL), 1);
	EXPECT_EQ(leaf, 1);

	/* The consumer's own object of the buffer has no fences either. */
	d = dma_buf_get(bfd);
	ASSERT_FALSE(hetmem_dma_buf_is_err(d));
	own = dma_buf_export_sync_file(d, DMA_BUF_SYNC_RW);
	ASSERT_GE(own, 0);
	EXPECT_EQ(sync_wait(own, 0), 0);
	EXPECT_EQ(fd_status(own), 1);
	close(own);
	close(sr);
	close(sw);
	close(bfd);
	put_all(d);
}

static int pending_writer(int sock)
{
	struct hetmem_buf_desc desc = { .size = SZ };
	struct dma_fence *wf = mock_fence_create(0);
	struct dma_buf *d = export_buf();
	int bfd, sf;

	if (!d || add_fence(d, wf, DMA_RESV_USAGE_WRITE))
		return 10;
	bfd = dma_buf_fd(d, O_CLOEXEC);
	sf = dma_buf_export_sync_file(d, DMA_BUF_SYNC_READ);
	if (bfd < 0 || sf < 0)
		return 11;
	if (hetmem_buf_send(sock, bfd, &desc, WAIT_MS) ||
	    hetmem_fence_send(sock, sf, WAIT_MS))
		return 12;
	close(sf);
	close(bfd);
	/* Signal on request, or be killed while waiting for it. */
	if (recv_byte(sock, 'q') || dma_fence_signal(wf))
		return 13;
	dma_fence_put(wf);
	put_all(d);
	return 0;
}

TEST(import_rejects_bad_flags_and_descriptors)
{
	static const unsigned int bad[] = {
		0, DMA_BUF_SYNC_END, DMA_BUF_SYNC_READ | DMA_BUF_SYNC_END,
		DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END, 0x8, DMA_BUF_SYNC_WRITE | 0x10,
		0x80000000u, ~0u,
	};
	struct hetmem_buf_desc desc;
	struct dma_buf *d;
	int sv[2], bfd, sf, pfd[2], closed, i;
	pid_t pid = fork_peer(sv, pending_writer);

	ASSERT_EQ(hetmem_buf_recv(sv[0], &bfd, &desc, NULL, WAIT_MS), 0);
	ASSERT_EQ(hetmem_fence_recv(sv[0], &sf, WAIT_MS), 0);
	ASSERT_TRUE(fd_pending(sf));
	d = dma_buf_get(bfd);
	ASSERT_FALSE(hetmem_dma_buf_is_err(d));

	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
		EXPECT_EQ(dma_buf_import_sync_file(d, bad[i], sf), -EINVAL);
		EXPECT_EQ(dma_buf_export_sync_file(d, bad[i]), -EINVAL);
	}
	EXPECT_EQ(dma_buf_import_sync_file(NULL, DMA_BUF_SYNC_READ, sf), -EINVAL);
	EXPECT_EQ(dma_buf_export_sync_file(NULL, DMA_BUF_SYNC_READ), -EINVAL);

	/* Not sync_files: -EINVAL, never -EBADF, as the kernel's ioctl. */
	ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
	closed = dup(pfd[0]);
	ASSERT_GE(closed, 0);
	close(closed);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, bfd), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_WRITE, bfd), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, sv[0]), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, pfd[0]), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, pfd[1]), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, closed), -EINVAL);
	EXPECT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, -1), -EINVAL);
	close(pfd[0]);
	close(pfd[1]);

	/* Nothing was added by the refused imports. */
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
	/* The sync_file is still good: a proper import does take effect. */
	ASSERT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_WRITE, sf), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), 0);
	ASSERT_EQ(send_byte(sv[0], 'q'), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, WAIT_MS),
		  POLLIN | POLLOUT);
	EXPECT_EQ(fd_status(sf), 1);

	close(sf);
	close(bfd);
	close(sv[0]);
	EXPECT_EQ(reap(pid), 0);
	put_all(d);
}

/* --- 3: the consumer dies while the producer waits on its read fence ---- */

static int doomed_reader(int sock)
{
	struct dma_fence *rf = mock_fence_create(0);
	int64_t t_go;
	int rfd = hetmem_sync_file_export(rf, 0);

	if (rfd < 0 || hetmem_fence_send(sock, rfd, WAIT_MS))
		return 10;
	close(rfd);
	if (recv_time(sock, &t_go))
		return 11;
	harness_sleep_ms(HOLD_MS);
	if (send_time(sock, harness_now_ms()))
		return 12;
	/* Dies holding the pending fence; the kernel closes its write end. */
	raise(SIGKILL);
	return 13;
}

TEST(consumer_killed_during_begin_cpu_access)
{
	struct dma_buf *d = export_buf();
	struct dma_resv_iter cursor;
	struct dma_fence *f;
	int64_t t_go, t_kill, t_ret;
	int sv[2], rfd, ret, n = 0, err = 0, status = 0;
	pid_t pid;

	ASSERT_NONNULL(d);
	pid = fork_peer(sv, doomed_reader);
	ASSERT_EQ(hetmem_fence_recv(sv[0], &rfd, WAIT_MS), 0);
	ASSERT_TRUE(fd_pending(rfd));
	ASSERT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_READ, rfd), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN);
	/* A bounded wait for writability times out while the reader lives. */
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLOUT, 20), 0);

	t_go = harness_now_ms();
	ASSERT_EQ(send_time(sv[0], t_go), 0);
	ret = dma_buf_begin_cpu_access(d, DMA_BIDIRECTIONAL);
	t_ret = harness_now_ms();
	/* Errors are not propagated through waits: 0, as documented. */
	EXPECT_EQ(ret, 0);
	ASSERT_EQ(recv_time(sv[0], &t_kill), 0);
	EXPECT_GE(t_kill, t_go + HOLD_MS);
	EXPECT_GE(t_ret, t_kill);
	EXPECT_LT(t_ret - t_go, WAIT_MS);
	EXPECT_EQ(dma_buf_end_cpu_access(d, DMA_BIDIRECTIONAL), 0);
	EXPECT_EQ(reap(pid), 128 + SIGKILL);

	/* The descriptor and the imported proxy both carry -EPIPE. */
	EXPECT_EQ(sync_wait(rfd, 0), 0);
	EXPECT_EQ(fd_status(rfd), -EPIPE);
	dma_resv_lock(d->resv, NULL);
	dma_resv_for_each_fence(&cursor, d->resv, DMA_RESV_USAGE_READ, f) {
		n++;
		status = dma_fence_get_status(f);
		err = f->error;
		EXPECT_EQ(dma_resv_iter_usage(&cursor), DMA_RESV_USAGE_READ);
	}
	dma_resv_unlock(d->resv);
	EXPECT_EQ(n, 1);
	EXPECT_EQ(status, -EPIPE);
	EXPECT_EQ(err, -EPIPE);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);

	close(rfd);
	close(sv[0]);
	put_all(d);
}

/* --- 4: the producer dies holding its pending write fence -------------- */

TEST(producer_killed_holding_write_fence)
{
	struct hetmem_buf_desc desc;
	struct dma_buf *d;
	unsigned char *p;
	uint64_t ts = 0;
	int64_t t_kill;
	int sv[2], bfd, sf, leaf = 0;
	pid_t pid = fork_peer(sv, pending_writer);

	ASSERT_EQ(hetmem_buf_recv(sv[0], &bfd, &desc, NULL, WAIT_MS), 0);
	ASSERT_EQ(hetmem_fence_recv(sv[0], &sf, WAIT_MS), 0);
	ASSERT_TRUE(fd_pending(sf));
	d = dma_buf_get(bfd);
	ASSERT_FALSE(hetmem_dma_buf_is_err(d));
	ASSERT_EQ(dma_buf_import_sync_file(d, DMA_BUF_SYNC_WRITE, sf), 0);
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, 0), 0);

	t_kill = harness_now_ms();
	ASSERT_EQ(kill(pid, SIGKILL), 0);
	EXPECT_EQ(sync_wait(sf, WAIT_MS), 0);
	EXPECT_LT(harness_now_ms() - t_kill, WAIT_MS);
	EXPECT_EQ(reap(pid), 128 + SIGKILL);
	EXPECT_EQ(fd_status(sf), -EPIPE);
	EXPECT_EQ(info_status(sf, &leaf, &ts), -EPIPE);
	EXPECT_EQ(leaf, -EPIPE);
	/* The consumer's implicit fence signalled too, with the same error. */
	EXPECT_EQ(hetmem_dma_buf_poll(d, POLLIN | POLLOUT, WAIT_MS),
		  POLLIN | POLLOUT);
	EXPECT_EQ(dma_buf_begin_cpu_access(d, DMA_FROM_DEVICE), 0);
	EXPECT_EQ(dma_buf_end_cpu_access(d, DMA_FROM_DEVICE), 0);
	/* The memory outlives its exporter. */
	ASSERT_EQ(hetmem_buf_map(bfd, SZ, PROT_READ | PROT_WRITE, (void **)&p), 0);
	p[0] = 1;
	EXPECT_EQ(p[0], 1);
	munmap(p, SZ);

	close(sf);
	close(bfd);
	close(sv[0]);
	put_all(d);
}
