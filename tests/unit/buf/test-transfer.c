/* SPDX-License-Identifier: MIT */
/*
 * hetmem - buffer and fence transfer between real processes: a good
 * round trip, hostile peers (wrong descriptor types, missing seals, lying
 * sizes, truncation, malformed messages, death mid-protocol), timeouts,
 * and sync_file descriptors. No SIGBUS handler is installed anywhere: a
 * SIGBUS would kill the case.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hetmem/buf/transfer.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sync_file.h>

#include "harness.h"
#include "mock-fence.h"

#define WAIT_MS 10000
#define SZ (64 * 1024)
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* The wire record of src/buf/transfer.c, for forging hostile messages. */
struct rec {
	uint32_t magic;
	uint16_t version;
	uint16_t kind;
	uint64_t size;
	uint32_t flags;
	uint32_t reserved;
};

#define REC_BUF(sz) ((struct rec){ 0x68627566u, 1, 1, (sz), 0, 0 })

static int make_memfd(size_t size, unsigned int seals)
{
	int fd = memfd_create("test-transfer", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) || (seals && fcntl(fd, F_ADD_SEALS, seals))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send @len bytes of @data with @nfds descriptors, unchecked. */
static int raw_send(int sock, const void *data, size_t len, const int *fds,
		    int nfds)
{
	char cbuf[CMSG_SPACE(64 * sizeof(int))];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;

	if (nfds) {
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Receive a descriptor with no validation at all (what a naive peer does). */
static int raw_recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct rec r;
	struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct cmsghdr *cmsg;
	int fd = -1;

	if (poll(&pfd, 1, WAIT_MS) != 1 ||
	    recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
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

static pid_t fork_peer_type(int sv[2], int type, int (*fn)(int sock))
{
	pid_t pid;

	ASSERT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(fn(sv[1]));
	}
	close(sv[1]);
	return pid;
}

static pid_t fork_peer(int sv[2], int (*fn)(int sock))
{
	return fork_peer_type(sv, SOCK_SEQPACKET, fn);
}

/* Wait for one byte from the peer (a go-ahead), bounded. */
static int wait_byte(int sock)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, WAIT_MS) != 1)
		return -1;
	return read(sock, &c, 1) == 1 ? 0 : -1;
}

static int send_memfd(int sock, size_t size, unsigned int seals, uint64_t adv)
{
	struct hetmem_buf_desc d = { .size = adv };
	int fd = make_memfd(size, seals), ret;

	if (fd < 0)
		return 1;
	ret = hetmem_buf_send(sock, fd, &d, WAIT_MS);
	close(fd);
	return ret ? 2 : 0;
}

/* --- good round trip ---------------------------------------------------- */

static int good_sender(int sock)
{
	struct hetmem_buf_desc d = { .size = SZ };
	unsigned char *p;
	int fd = make_memfd(SZ, SEALS | F_SEAL_SEAL), i;

	if (fd < 0)
		return 1;
	if (hetmem_buf_map(fd, SZ, PROT_READ | PROT_WRITE, (void **)&p))
		return 2;
	for (i = 0; i < SZ; i++)
		p[i] = (unsigned char)(i * 7);
	munmap(p, SZ);
	if (hetmem_buf_send(sock, fd, &d, WAIT_MS))
		return 3;
	close(fd);
	/* A sealed buffer cannot be shrunk, not even by its creator. */
	return 0;
}

static void check_pattern(int fd)
{
	unsigned char *p;
	int i;

	ASSERT_EQ(hetmem_buf_map(fd, SZ, PROT_READ, (void **)&p), 0);
	for (i = 0; i < SZ; i++)
		if (p[i] != (unsigned char)(i * 7))
			break;
	EXPECT_EQ(i, SZ);
	munmap(p, SZ);
}

TEST(round_trip_seqpacket)
{
	struct hetmem_buf_desc d;
	int sv[2], fd;
	pid_t pid = fork_peer(sv, good_sender);

	ASSERT_EQ(hetmem_buf_recv(sv[0], &fd, &d, NULL, WAIT_MS), 0);
	EXPECT_EQ(d.size, SZ);
	EXPECT_EQ(d.flags, 0);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	check_pattern(fd);
	EXPECT_EQ(ftruncate(fd, 0), -1);
	EXPECT_EQ(errno, EPERM);
	close(fd);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

static int two_senders(int sock)
{
	int ret = good_sender(sock);

	return ret ? ret : good_sender(sock);
}

TEST(round_trip_stream_two_messages)
{
	int sv[2], fd, i;
	pid_t pid = fork_peer_type(sv, SOCK_STREAM, two_senders);

	for (i = 0; i < 2; i++) {
		ASSERT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), 0);
		check_pattern(fd);
		close(fd);
	}
	EXPECT_EQ(child_exit(pid), 0);
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EPIPE);
	EXPECT_EQ(fd, -1);
	close(sv[0]);
}

/* --- wrong descriptor types ---------------------------------------------- */

static int send_fd_as_buf(int sock, int fd)
{
	struct hetmem_buf_desc d = { .size = 4096 };
	int ret = hetmem_buf_send(sock, fd, &d, WAIT_MS);

	close(fd);
	return ret;
}

static int wrong_types(int sock)
{
	char path[] = "./test-transfer-XXXXXX";
	int p[2], s[2], fd;

	if (pipe2(p, O_CLOEXEC) || send_fd_as_buf(sock, p[0]))
		return 1;
	close(p[1]);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) ||
	    send_fd_as_buf(sock, s[0]))
		return 2;
	close(s[1]);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || send_fd_as_buf(sock, fd))
		return 3;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 4096))
		return 4;
	unlink(path);
	if (send_fd_as_buf(sock, fd))
		return 5;
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || send_fd_as_buf(sock, fd))
		return 6;
	return 0;
}

TEST(wrong_fd_types)
{
	struct statfs sfs;
	int sv[2], fd, i;
	pid_t pid;

	/* The "regular file on disk" must not be on tmpfs here. */
	ASSERT_EQ(statfs(".", &sfs), 0);
	if (sfs.f_type == 0x01021994)
		TH_LOG("cwd is tmpfs: the disk-file case is a tmpfs file");
	pid = fork_peer(sv, wrong_types);
	for (i = 0; i < 5; i++) {
		int want = -EINVAL;

		if (i == 3 && sfs.f_type == 0x01021994)
			want = -EPERM;	/* tmpfs non-memfd: F_SEAL_SEAL only */
		EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), want);
		EXPECT_EQ(fd, -1);
	}
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

/* --- seals and sizes ----------------------------------------------------- */

static int seal_cases(int sock)
{
	return send_memfd(sock, SZ, 0, SZ) |		/* unsealed */
	       send_memfd(sock, SZ, F_SEAL_SHRINK, SZ) |	/* no GROW */
	       send_memfd(sock, SZ, F_SEAL_SHRINK, SZ) |	/* accepted */
	       send_memfd(sock, SZ, SEALS, 2 * SZ) |	/* bigger lie */
	       send_memfd(sock, SZ, SEALS, SZ / 2) |	/* smaller lie */
	       send_memfd(sock, SZ, SEALS, 1ull << 40) |	/* over limit */
	       send_memfd(sock, SZ, SEALS, SZ);		/* over 4K limit */
}

TEST(seals_and_sizes)
{
	struct hetmem_buf_limits shrink_only = { .required_seals = F_SEAL_SHRINK };
	struct hetmem_buf_limits small = { .max_size = 4096 };
	int sv[2], fd;
	pid_t pid = fork_peer(sv, seal_cases);

	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EPERM);
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EPERM);
	ASSERT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, &shrink_only, WAIT_MS), 0);
	close(fd);
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EMSGSIZE);
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EMSGSIZE);
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EFBIG);
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, &small, WAIT_MS), -EFBIG);
	EXPECT_EQ(fd, -1);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

/* The peer truncates its unsealed memfd after sending it. */
static int truncater(int sock)
{
	int fd = make_memfd(SZ, 0);

	if (fd < 0 || raw_send(sock, &REC_BUF(SZ), sizeof(struct rec), &fd, 1))
		return 1;
	if (wait_byte(sock) || ftruncate(fd, 0))
		return 2;
	close(fd);
	return write(sock, "t", 1) == 1 ? 0 : 3;
}

TEST(truncated_after_send)
{
	int sv[2], fd;
	void *p;
	pid_t pid = fork_peer(sv, truncater);

	fd = raw_recv_fd(sv[0]);
	ASSERT_GE(fd, 0);
	/* Validation catches the missing seal while the size still matches. */
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, 0, 0), -EPERM);
	EXPECT_EQ(hetmem_buf_map(fd, SZ, PROT_READ, &p), -EPERM);
	ASSERT_EQ(write(sv[0], "g", 1), 1);
	ASSERT_EQ(wait_byte(sv[0]), 0);
	/* Now the file is empty: mapping is still refused, no SIGBUS. */
	EXPECT_EQ(hetmem_buf_map(fd, SZ, PROT_READ, &p), -EPERM);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, F_SEAL_SHRINK, 0), -EPERM);
	close(fd);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

/* A sealed buffer: the peer's truncation fails, the mapping stays whole. */
static int sealed_truncater(int sock)
{
	int fd = make_memfd(SZ, SEALS);
	struct hetmem_buf_desc d = { .size = SZ };

	if (fd < 0 || hetmem_buf_send(sock, fd, &d, WAIT_MS))
		return 1;
	if (wait_byte(sock))
		return 2;
	if (ftruncate(fd, 0) == 0 || errno != EPERM)
		return 3;
	close(fd);
	return write(sock, "t", 1) == 1 ? 0 : 4;
}

TEST(sealed_cannot_be_truncated)
{
	volatile unsigned char *p;
	unsigned int sum = 0;
	int sv[2], fd, i;
	pid_t pid = fork_peer(sv, sealed_truncater);

	ASSERT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), 0);
	ASSERT_EQ(hetmem_buf_map(fd, SZ, PROT_READ | PROT_WRITE, (void **)&p), 0);
	ASSERT_EQ(write(sv[0], "g", 1), 1);
	ASSERT_EQ(wait_byte(sv[0]), 0);
	for (i = 0; i < SZ; i += 4096) {
		p[i] = 1;
		sum += p[i];
	}
	EXPECT_EQ(sum, SZ / 4096);
	munmap((void *)p, SZ);
	close(fd);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

/* --- malformed messages -------------------------------------------------- */

static int malformed(int sock)
{
	int fds[20], i, ret = 0;
	struct rec r = REC_BUF(SZ);

	for (i = 0; i < 20; i++) {
		fds[i] = make_memfd(SZ, SEALS);
		if (fds[i] < 0)
			return 1;
	}
	ret |= raw_send(sock, &r, sizeof(r), fds, 3);	/* too many */
	ret |= raw_send(sock, &r, sizeof(r), fds, 20);	/* MSG_CTRUNC */
	ret |= raw_send(sock, &r, sizeof(r), NULL, 0);	/* no fd */
	ret |= raw_send(sock, &r, 10, fds, 1);		/* short record */
	r.magic = 0;
	ret |= raw_send(sock, &r, sizeof(r), fds, 1);	/* bad magic */
	r = REC_BUF(0);
	ret |= raw_send(sock, &r, sizeof(r), fds, 1);	/* size 0 */
	r = REC_BUF(SZ);
	r.kind = 2;
	ret |= raw_send(sock, &r, sizeof(r), fds, 1);	/* a fence record */
	r = REC_BUF(SZ);
	r.flags = 0x100;
	ret |= raw_send(sock, &r, sizeof(r), fds, 1);	/* unknown flags */
	{
		char big[2 * sizeof(r)] = { 0 };

		memcpy(big, &REC_BUF(SZ), sizeof(r));
		ret |= raw_send(sock, big, sizeof(big), fds, 1); /* too long */
	}
	for (i = 0; i < 20; i++)
		close(fds[i]);
	return ret ? 2 : 0;
}

TEST(malformed_messages)
{
	int sv[2], fd, i;
	pid_t pid = fork_peer(sv, malformed);

	for (i = 0; i < 9; i++) {
		EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS),
			  -EPROTO);
		EXPECT_EQ(fd, -1);
	}
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

/* Half a record on a stream socket, then death by SIGKILL. */
static int dies_midway(int sock)
{
	struct rec r = REC_BUF(SZ);
	int fd = make_memfd(SZ, SEALS);

	if (fd < 0 || raw_send(sock, &r, 8, &fd, 1))
		return 1;
	harness_sleep_ms(200);
	raise(SIGKILL);
	return 2;
}

TEST(peer_killed_mid_message)
{
	int sv[2], fd;
	int64_t t0;
	pid_t pid = fork_peer_type(sv, SOCK_STREAM, dies_midway);

	t0 = harness_now_ms();
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, WAIT_MS), -EPIPE);
	EXPECT_LT(harness_now_ms() - t0, WAIT_MS / 2);
	EXPECT_EQ(fd, -1);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 128 + SIGKILL);
}

static int silent(int sock)
{
	return wait_byte(sock) ? 1 : 0;
}

TEST(receive_timeout)
{
	int sv[2], fd;
	int64_t t0, dt;
	pid_t pid = fork_peer(sv, silent);

	t0 = harness_now_ms();
	EXPECT_EQ(hetmem_buf_recv(sv[0], &fd, NULL, NULL, 150), -ETIMEDOUT);
	dt = harness_now_ms() - t0;
	EXPECT_GE(dt, 140);
	EXPECT_LT(dt, 3000);
	EXPECT_EQ(hetmem_fence_recv(sv[0], &fd, 0), -ETIMEDOUT);
	ASSERT_EQ(write(sv[0], "x", 1), 1);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

/* --- local checks -------------------------------------------------------- */

TEST(validate_arguments_and_access)
{
	char path[64];
	int fd = make_memfd(SZ, SEALS), ro, sock[2];
	void *p;

	ASSERT_GE(fd, 0);
	EXPECT_EQ(hetmem_buf_validate(-1, SZ, 0, 0), -EBADF);
	EXPECT_EQ(hetmem_buf_validate(fd, 0, 0, 0), -EINVAL);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, F_SEAL_GROW, 0), -EINVAL);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, 0, 0x80), -EINVAL);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, 0, 0), 0);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, F_SEAL_SHRINK | F_SEAL_SEAL, 0),
		  -EPERM);
	EXPECT_EQ(hetmem_buf_map(fd, SZ, PROT_READ, NULL), -EINVAL);
	EXPECT_EQ(hetmem_buf_map(fd, SZ, PROT_EXEC, &p), -EINVAL);
	EXPECT_EQ(hetmem_buf_map(fd, 2 * SZ, PROT_READ, &p), -EMSGSIZE);
	EXPECT_EQ(hetmem_buf_send(-1, fd, &(struct hetmem_buf_desc){ .size = 1 }, 0),
		  -EBADF);
	EXPECT_EQ(hetmem_buf_send(fd, fd, &(struct hetmem_buf_desc){ .size = 1 }, 0),
		  -ENOTSOCK);
	EXPECT_EQ(hetmem_buf_send(fd, fd, NULL, 0), -EINVAL);
	EXPECT_EQ(hetmem_buf_recv(fd, NULL, NULL, NULL, 0), -EINVAL);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock), 0);
	EXPECT_EQ(hetmem_buf_send(sock[0], -1,
				  &(struct hetmem_buf_desc){ .size = 1 }, 0), -EBADF);
	close(sock[0]);
	close(sock[1]);

	/* A read-only reopen: accepted only when read-only is asked for. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(ro, 0);
	EXPECT_EQ(hetmem_buf_validate(ro, SZ, 0, 0), -EACCES);
	EXPECT_EQ(hetmem_buf_validate(ro, SZ, 0, HETMEM_BUF_RDONLY), 0);
	EXPECT_EQ(hetmem_buf_map(ro, SZ, PROT_READ | PROT_WRITE, &p), -EACCES);
	ASSERT_EQ(hetmem_buf_map(ro, SZ, PROT_READ, &p), 0);
	munmap(p, SZ);
	close(ro);
	close(fd);

	/* Write-sealed: read-only access only. */
	fd = make_memfd(SZ, SEALS | F_SEAL_WRITE);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, 0, 0), -EACCES);
	EXPECT_EQ(hetmem_buf_validate(fd, SZ, 0, HETMEM_BUF_RDONLY), 0);
	ASSERT_EQ(hetmem_buf_map(fd, SZ, PROT_READ, &p), 0);
	munmap(p, SZ);
	close(fd);
}

/* --- fences -------------------------------------------------------------- */

static int fence_waiter(int sock)
{
	int fd, ret;

	ret = hetmem_fence_recv(sock, &fd, WAIT_MS);
	if (ret)
		return 1;
	if (sync_wait(fd, 0) != -1 || errno != ETIME)
		return 2;
	if (write(sock, "r", 1) != 1)
		return 3;
	if (sync_wait(fd, WAIT_MS))
		return 4;
	close(fd);
	return 0;
}

TEST(fence_round_trip)
{
	struct dma_fence *f = mock_fence_create(0);
	int sv[2], fd;
	pid_t pid;

	ASSERT_NONNULL(f);
	fd = hetmem_sync_file_export(f, 0);
	ASSERT_GE(fd, 0);
	pid = fork_peer(sv, fence_waiter);
	ASSERT_EQ(hetmem_fence_send(sv[0], fd, WAIT_MS), 0);
	close(fd);
	ASSERT_EQ(wait_byte(sv[0]), 0);
	ASSERT_EQ(dma_fence_signal(f), 0);
	dma_fence_put(f);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}

static int bad_fences(int sock)
{
	struct hetmem_buf_desc d = { .size = SZ };
	int fd = make_memfd(SZ, SEALS), ret = 0;

	if (fd < 0)
		return 1;
	ret |= hetmem_fence_send(sock, fd, WAIT_MS);	/* memfd as fence */
	ret |= hetmem_buf_send(sock, fd, &d, WAIT_MS);	/* buffer record */
	close(fd);
	return ret ? 2 : 0;
}

TEST(fence_not_a_sync_file)
{
	int sv[2], fd;
	pid_t pid = fork_peer(sv, bad_fences);

	EXPECT_EQ(hetmem_fence_recv(sv[0], &fd, WAIT_MS), -EINVAL);
	EXPECT_EQ(fd, -1);
	EXPECT_EQ(hetmem_fence_recv(sv[0], &fd, WAIT_MS), -EPROTO);
	EXPECT_EQ(fd, -1);
	EXPECT_EQ(hetmem_fence_recv(sv[0], NULL, 0), -EINVAL);
	close(sv[0]);
	EXPECT_EQ(child_exit(pid), 0);
}
