/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sync_file across real processes: descriptors passed with
 * SCM_RIGHTS to forked and to fork+exec'd consumers, status and timestamp
 * seen by the receiver, a producer killed with SIGKILL (and a forked
 * grandchild that must not keep its pipes alive), receivers that cannot
 * signal, and merges of descriptors from other processes in both
 * directions.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sync_file.h>

#include "harness.h"
#include "mock-fence.h"

#define WAIT_MS 10000

/* One message: a 64-bit value and, optionally, a descriptor. */
static int send_msg(int sock, int64_t value, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &value, .iov_len = sizeof(value) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;

	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == sizeof(value) ? 0 : -1;
}

/* Receive one message within WAIT_MS; *fd is -1 if none came with it. */
static int recv_msg(int sock, int64_t *value, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = value, .iov_len = sizeof(*value) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct cmsghdr *cmsg;

	if (fd)
		*fd = -1;
	if (poll(&pfd, 1, WAIT_MS) != 1)
		return -1;
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != sizeof(*value) ||
	    (msg.msg_flags & MSG_CTRUNC))
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_type == SCM_RIGHTS && fd)
		memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
	return 0;
}

static int readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 && (pfd.revents & (POLLIN | POLLHUP));
}

/* Until the producer's write end is gone (see test-sync-file.c). */
static int hung_up(int fd, int ms)
{
	int64_t end = hetmem_ktime_get() + (int64_t)ms * 1000000;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	do {
		pfd.revents = 0;
		if (poll(&pfd, 1, 1) > 0 && (pfd.revents & POLLHUP))
			return 1;
	} while (hetmem_ktime_get() < end);
	return 0;
}

static int status_of(int fd)
{
	int status = 12345;

	if (hetmem_sync_file_status(fd, &status))
		return 12345;
	return status;
}

static int child_exit(pid_t pid)
{
	int ws;

	if (waitpid(pid, &ws, 0) != pid)
		return -1;
	if (WIFSIGNALED(ws))
		return 128 + WTERMSIG(ws);
	return WEXITSTATUS(ws);
}

static void sockets(int sv[2])
{
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

/*
 * Fork a peer on a new socket pair: the child runs @fn on sv[1] and exits
 * with what it returns, the parent keeps sv[0] and gets the child's pid.
 */
static pid_t fork_peer(int sv[2], int (*fn)(int sock))
{
	pid_t pid;

	sockets(sv);
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
 * The consumer side of the hand-over protocol, for a forked child and
 * for the exec'd helper: receive the descriptor, check it is pending,
 * report, wait for it, check status and timestamp. Returns an exit code.
 */
static int consume(int sock)
{
	struct dma_fence *proxy;
	int64_t ts = 0, dummy;
	int fd, status;

	if (recv_msg(sock, &dummy, &fd) || fd < 0)
		return 10;
	if (readable(fd, 0) || status_of(fd) != 0)
		return 11;
	if (send_msg(sock, 0, -1))
		return 12;
	if (sync_wait(fd, WAIT_MS))
		return 13;
	status = status_of(fd);
	if (recv_msg(sock, &ts, NULL))
		return 14;
	proxy = sync_file_get_fence(fd);
	if (!proxy || !dma_fence_is_signaled(proxy))
		return 15;
	if (dma_fence_timestamp(proxy) != ts || status != -EIO ||
	    dma_fence_get_status(proxy) != -EIO)
		return 16;
	dma_fence_put(proxy);
	close(fd);
	return 0;
}

/* The producer side: hand over, wait for the report, signal, send ts. */
static void produce(int sock, pid_t pid)
{
	struct dma_fence *f = mock_fence_create(0);
	int fd = hetmem_sync_file_export(f, 0);
	int64_t dummy, ts = 0x12345678abcdLL;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(send_msg(sock, 0, fd), 0);
	close(fd);
	ASSERT_EQ(recv_msg(sock, &dummy, NULL), 0);
	dma_fence_set_error(f, -EIO);
	ASSERT_EQ(dma_fence_signal_timestamp(f, ts), 0);
	ASSERT_EQ(send_msg(sock, ts, -1), 0);
	EXPECT_EQ(child_exit(pid), 0);
	dma_fence_put(f);
}

TEST(scm_rights_to_forked_consumer)
{
	int sv[2];
	pid_t pid;

	pid = fork_peer(sv, consume);
	produce(sv[0], pid);
	close(sv[0]);
}

/* Run by scm_rights_to_exec_consumer in a fresh image; skipped otherwise. */
TEST(exec_consumer_helper)
{
	const char *env = getenv("HETMEM_TEST_XPROC_SOCK");
	int sock;

	if (!env)
		SKIP(return, "run by scm_rights_to_exec_consumer");
	sock = atoi(env);
	EXPECT_EQ(consume(sock), 0);
	close(sock);
}

TEST(scm_rights_to_exec_consumer)
{
	char num[16];
	int sv[2];
	pid_t pid;

	sockets(sv);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		fcntl(sv[1], F_SETFD, 0);
		snprintf(num, sizeof(num), "%d", sv[1]);
		setenv("HETMEM_TEST_XPROC_SOCK", num, 1);
		if (!freopen("/dev/null", "w", stdout))
			_exit(2);
		execl("/proc/self/exe", "test-sync-file-xproc",
		      "exec_consumer_helper", (char *)NULL);
		_exit(3);
	}
	close(sv[1]);
	produce(sv[0], pid);
	close(sv[0]);
}

/*
 * A producer that forks a grandchild (which inherits, and must drop, the
 * write end), hands the descriptor over, and hangs until killed: it never
 * returns, its int is only fork_peer()'s calling convention.
 */
static int doomed_producer(int sock)
{
	struct dma_fence *f = mock_fence_create(0);
	int fd = hetmem_sync_file_export(f, 0);
	pid_t grandchild;

	grandchild = fork();
	if (grandchild == 0) {
		alarm(20);	/* never outlive the test for long */
		pause();
		_exit(0);
	}
	send_msg(sock, grandchild, fd);
	pause();
	_exit(0);
}

TEST(killed_producer_signals_epipe)
{
	struct dma_fence *proxy;
	int64_t grandchild, t0, waited;
	int sv[2], fd;
	pid_t pid;

	pid = fork_peer(sv, doomed_producer);
	ASSERT_EQ(recv_msg(sv[0], &grandchild, &fd), 0);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(readable(fd, 50), 0);
	proxy = sync_file_get_fence(fd);
	ASSERT_NONNULL(proxy);
	EXPECT_EQ(dma_fence_wait_timeout(proxy, true, 10), 0);

	t0 = hetmem_ktime_get();
	ASSERT_EQ(kill(pid, SIGKILL), 0);
	EXPECT_EQ(child_exit(pid), 128 + SIGKILL);
	/* The grandchild is alive and must not be holding the pipe open. */
	EXPECT_EQ(kill((pid_t)grandchild, 0), 0);
	EXPECT_GT(dma_fence_wait_timeout(proxy, true, 2000), 0);
	waited = hetmem_ktime_get() - t0;
	/*
	 * Within the wait's own timeout, with the grandchild still alive: a
	 * leaked write end would keep the pipe open past it. (A tighter bound
	 * only measures how loaded the machine is.)
	 */
	EXPECT_LT(waited, 2000LL * 1000 * 1000);
	EXPECT_EQ(dma_fence_get_status(proxy), -EPIPE);
	EXPECT_EQ(sync_wait(fd, 0), 0);
	EXPECT_EQ(status_of(fd), -EPIPE);
	kill((pid_t)grandchild, SIGKILL);
	dma_fence_put(proxy);
	close(fd);
	close(sv[0]);
}

TEST(receiver_cannot_signal)
{
	struct dma_fence *f = mock_fence_create(0);
	int fd = hetmem_sync_file_export(f, 0);
	int64_t v;
	int sv[2];
	pid_t pid;

	ASSERT_GE(fd, 0);
	sockets(sv);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct dma_fence *proxy;
		int rfd, ok = 1;
		char c = 1;

		close(sv[0]);
		if (recv_msg(sv[1], &v, &rfd) || rfd < 0)
			_exit(10);
		ok &= write(rfd, &c, 1) == -1 && errno == EBADF;
		ok &= fcntl(rfd, F_SETFL, O_RDWR) == 0 &&
		      (fcntl(rfd, F_GETFL) & O_ACCMODE) == O_RDONLY;
		/* Signalling the local proxy changes nothing for others. */
		proxy = sync_file_get_fence(rfd);
		ok &= proxy && dma_fence_signal(proxy) == 0;
		dma_fence_put(proxy);
		ok &= !readable(rfd, 0);
		send_msg(sv[1], ok, -1);
		_exit(ok ? 0 : 1);
	}
	close(sv[1]);
	ASSERT_EQ(send_msg(sv[0], 0, fd), 0);
	ASSERT_EQ(recv_msg(sv[0], &v, NULL), 0);
	EXPECT_EQ(v, 1);
	EXPECT_EQ(child_exit(pid), 0);
	EXPECT_EQ(readable(fd, 0), 0);
	EXPECT_EQ(status_of(fd), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	EXPECT_EQ(status_of(fd), 1);
	close(fd);
	close(sv[0]);
	dma_fence_put(f);
}

/* The child merges two descriptors of the parent and waits on the merge. */
static int merge_in_child(int sock)
{
	struct sync_file_info info = { .num_fences = 0 };
	int a, b, m;
	int64_t v;

	if (recv_msg(sock, &v, &a) || recv_msg(sock, &v, &b) || a < 0 || b < 0)
		return 10;
	m = hetmem_sync_file_merge("child-merge", a, b, 0);
	if (m < 0)
		return 11;
	if (hetmem_sync_file_info(m, &info) || info.num_fences != 2 ||
	    info.status != 0 || strcmp(info.name, "child-merge"))
		return 12;
	if (send_msg(sock, 0, -1))
		return 13;
	/* One input signalled: the merge must still be pending. */
	if (recv_msg(sock, &v, NULL) || readable(m, 50))
		return 14;
	if (send_msg(sock, 0, -1))
		return 15;
	if (sync_wait(m, WAIT_MS) || status_of(m) != -EIO)
		return 16;
	if (!hung_up(m, WAIT_MS))
		return 17;
	close(a);
	close(b);
	close(m);
	return 0;
}

TEST(child_merges_descriptors_of_the_parent)
{
	struct dma_fence *a = mock_fence_create(0), *b = mock_fence_create(0);
	int fa = hetmem_sync_file_export(a, 0);
	int fb = hetmem_sync_file_export(b, 0);
	int64_t v;
	int sv[2];
	pid_t pid;

	pid = fork_peer(sv, merge_in_child);
	ASSERT_EQ(send_msg(sv[0], 0, fa), 0);
	ASSERT_EQ(send_msg(sv[0], 0, fb), 0);
	ASSERT_EQ(recv_msg(sv[0], &v, NULL), 0);
	ASSERT_EQ(dma_fence_signal(a), 0);
	ASSERT_EQ(send_msg(sv[0], 0, -1), 0);
	ASSERT_EQ(recv_msg(sv[0], &v, NULL), 0);
	dma_fence_set_error(b, -EIO);
	ASSERT_EQ(dma_fence_signal(b), 0);
	EXPECT_EQ(child_exit(pid), 0);
	close(fa);
	close(fb);
	close(sv[0]);
	dma_fence_put(a);
	dma_fence_put(b);
}

/* A child that exports one fence and signals it (with @error) on request. */
static int signal_on_request(int sock, int error)
{
	struct dma_fence *f = mock_fence_create(0);
	int fd = hetmem_sync_file_export(f, 0);
	int64_t v;

	if (fd < 0 || send_msg(sock, 0, fd))
		return 10;
	close(fd);
	if (recv_msg(sock, &v, NULL))
		return 11;
	if (error)
		dma_fence_set_error(f, error);
	if (dma_fence_signal(f))
		return 12;
	/* Stay alive until told: a dead producer would mean -EPIPE. */
	if (recv_msg(sock, &v, NULL))
		return 13;
	dma_fence_put(f);
	return 0;
}

static pid_t spawn_signaller(int sock[2], int error)
{
	pid_t pid;

	sockets(sock);
	pid = fork();
	if (pid == 0) {
		close(sock[0]);
		_exit(signal_on_request(sock[1], error));
	}
	close(sock[1]);
	return pid;
}

TEST(parent_merges_descriptors_of_two_children)
{
	struct sync_file_info info = { .num_fences = 0 };
	int s1[2], s2[2], f1, f2, f1b, m, same;
	pid_t c1, c2;
	int64_t v;

	c1 = spawn_signaller(s1, 0);
	c2 = spawn_signaller(s2, -ECANCELED);
	ASSERT_GE(c1, 0);
	ASSERT_GE(c2, 0);
	ASSERT_EQ(recv_msg(s1[0], &v, &f1), 0);
	ASSERT_EQ(recv_msg(s2[0], &v, &f2), 0);
	ASSERT_GE(f1, 0);
	ASSERT_GE(f2, 0);
	m = hetmem_sync_file_merge("children", f1, f2, 0);
	ASSERT_GE(m, 0);
	ASSERT_EQ(hetmem_sync_file_info(m, &info), 0);
	EXPECT_EQ(info.num_fences, 2);
	/* Two descriptors of one pipe are one fence. */
	f1b = fcntl(f1, F_DUPFD_CLOEXEC, 0);
	same = hetmem_sync_file_merge("same", f1, f1b, 0);
	ASSERT_GE(same, 0);
	info.num_fences = 0;
	ASSERT_EQ(hetmem_sync_file_info(same, &info), 0);
	EXPECT_EQ(info.num_fences, 1);

	EXPECT_EQ(readable(m, 20), 0);
	ASSERT_EQ(send_msg(s1[0], 0, -1), 0);
	EXPECT_EQ(sync_wait(f1, WAIT_MS), 0);
	EXPECT_EQ(sync_wait(same, WAIT_MS), 0);
	EXPECT_EQ(status_of(same), 1);
	EXPECT_EQ(readable(m, 50), 0);
	ASSERT_EQ(send_msg(s2[0], 0, -1), 0);
	EXPECT_EQ(sync_wait(m, WAIT_MS), 0);
	EXPECT_EQ(status_of(m), -ECANCELED);
	EXPECT_EQ(hung_up(m, WAIT_MS), 1);
	EXPECT_EQ(hung_up(same, WAIT_MS), 1);

	ASSERT_EQ(send_msg(s1[0], 0, -1), 0);
	ASSERT_EQ(send_msg(s2[0], 0, -1), 0);
	EXPECT_EQ(child_exit(c1), 0);
	EXPECT_EQ(child_exit(c2), 0);
	close(m);
	close(same);
	close(f1);
	close(f1b);
	close(f2);
	close(s1[0]);
	close(s2[0]);
}

TEST(merge_with_a_dead_producer_fails)
{
	struct dma_fence *local = mock_fence_create(0);
	int fl = hetmem_sync_file_export(local, 0);
	int64_t grandchild;
	int sv[2], fd, m;
	pid_t pid;

	pid = fork_peer(sv, doomed_producer);
	ASSERT_EQ(recv_msg(sv[0], &grandchild, &fd), 0);
	m = hetmem_sync_file_merge("mixed", fd, fl, 0);
	ASSERT_GE(m, 0);
	ASSERT_EQ(dma_fence_signal(local), 0);
	EXPECT_EQ(readable(m, 50), 0);
	kill(pid, SIGKILL);
	EXPECT_EQ(child_exit(pid), 128 + SIGKILL);
	EXPECT_EQ(sync_wait(m, WAIT_MS), 0);
	EXPECT_EQ(status_of(m), -EPIPE);
	EXPECT_EQ(hung_up(m, WAIT_MS), 1);
	kill((pid_t)grandchild, SIGKILL);
	close(m);
	close(fd);
	close(fl);
	close(sv[0]);
	dma_fence_put(local);
}

TEST(inherited_descriptor_signalled_by_parent)
{
	struct dma_fence *f = mock_fence_create(0);
	int fd = hetmem_sync_file_export(f, HETMEM_SYNC_FILE_INHERIT);
	int64_t v;
	int sv[2];
	pid_t pid;

	ASSERT_GE(fd, 0);
	sockets(sv);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		send_msg(sv[1], 0, -1);
		_exit(sync_wait(fd, WAIT_MS) == 0 && status_of(fd) == 1 ? 0 : 1);
	}
	close(sv[1]);
	ASSERT_EQ(recv_msg(sv[0], &v, NULL), 0);
	usleep(20 * 1000);
	ASSERT_EQ(dma_fence_signal(f), 0);
	EXPECT_EQ(child_exit(pid), 0);
	close(fd);
	close(sv[0]);
	dma_fence_put(f);
}
