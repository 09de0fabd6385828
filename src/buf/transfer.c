/* SPDX-License-Identifier: MIT */
/*
 * hetmem - buffer and fence transfer over unix sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <hetmem/buf/transfer.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/sync_file.h>

/**
 * DOC: Wire format
 *
 * One message is one struct xfer_record in host byte order (both ends
 * are on one machine) plus one SCM_RIGHTS descriptor. The receiver reads
 * exactly sizeof(struct xfer_record) bytes, so on a stream socket the
 * next message stays queued. Its control buffer has room for
 * XFER_MAX_FDS descriptors: a hostile peer sending more than that gets
 * its extras closed by the kernel (MSG_CTRUNC), fewer are closed here;
 * either way the message is -EPROTO. Non-SCM_RIGHTS control messages
 * (credentials) carry no resources and are ignored.
 */

/**
 * DOC: Error codes
 *
 * - -EBADF: @sock or the buffer descriptor is not an open descriptor.
 * - -ENOTSOCK: @sock is not a socket.
 * - -EINVAL: a bad argument, or a received descriptor of the wrong type
 *   (not a regular file on tmpfs/hugetlbfs; not a sync_file), as the
 *   kernel's dma_buf_get() answers for a non-dma-buf descriptor.
 * - -EPERM: a required seal is missing (the peer did not give the
 *   guarantee; an unsealed memfd could be truncated under a mapping).
 * - -EMSGSIZE: st_size differs from the advertised size (a lying peer),
 *   or is smaller than the range hetmem_buf_map() was asked to map.
 * - -EFBIG: the advertised size exceeds the receiver's limit.
 * - -EACCES: the access mode does not allow what the caller asked for
 *   (read-write wanted, descriptor O_RDONLY or write-sealed; O_WRONLY).
 * - -EPROTO: a malformed message (see the transfer DOC in the header).
 * - -ETIMEDOUT: nothing complete arrived (or could be sent) in time.
 * - -EPIPE, -ECONNRESET: the peer is gone.
 * - -EAGAIN, -EMFILE, -ENOMEM, -ENOBUFS: resource errors, passed through.
 */

#define XFER_MAGIC 0x68627566u		/* "hbuf" */
#define XFER_VERSION 1
#define XFER_KIND_BUF 1
#define XFER_KIND_FENCE 2
#define XFER_MAX_FDS 16
#define TMPFS_MAGIC_NR 0x01021994
#define HUGETLBFS_MAGIC_NR 0x958458f6

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define KNOWN_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | \
		     F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC)
#define WRITE_SEALS (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

_Static_assert(HETMEM_BUF_SEALS_DEFAULT == (F_SEAL_SHRINK | F_SEAL_GROW),
	       "HETMEM_BUF_SEALS_DEFAULT must be SHRINK | GROW");

struct xfer_record {
	uint32_t magic;
	uint16_t version;
	uint16_t kind;
	uint64_t size;
	uint32_t flags;
	uint32_t reserved;
};

_Static_assert(sizeof(struct xfer_record) == 24, "wire record is 24 bytes");

/* --- time ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before @deadline (-1: no deadline) for poll(). */
static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/*
 * Wait until @sock reports @events or the deadline passes. 0 when ready
 * (including error and hang-up conditions, which the following I/O call
 * turns into an error code), -ETIMEDOUT, -EBADF.
 */
static int wait_sock(int sock, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = sock, .events = events };
	int ret;

	for (;;) {
		pfd.revents = 0;
		ret = poll(&pfd, 1, remaining_ms(deadline));
		if (ret > 0)
			return (pfd.revents & POLLNVAL) ? -EBADF : 0;
		if (ret == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int sock_type(int sock)
{
	socklen_t len = sizeof(int);
	int type = 0;

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type;
}

/* --- validation ---------------------------------------------------------- */

static int check_seal_mask(unsigned int *seals)
{
	if (!*seals)
		*seals = HETMEM_BUF_SEALS_DEFAULT;
	if ((*seals & ~KNOWN_SEALS) || !(*seals & F_SEAL_SHRINK))
		return -EINVAL;
	return 0;
}

/* Regular file on tmpfs or hugetlbfs; *st filled in. */
static int check_type(int fd, struct stat *st)
{
	struct statfs sfs;

	if (fd < 0)
		return -EBADF;
	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	if (sfs.f_type == TMPFS_MAGIC_NR)
		return 0;
	if (sfs.f_type == (typeof(sfs.f_type))HUGETLBFS_MAGIC_NR) {
		/* A hugetlbfs file is only mappable in whole huge pages. */
		if (sfs.f_bsize <= 0 || st->st_size % sfs.f_bsize)
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

static int get_seals(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return errno == EINVAL ? -EPERM : -errno;
	return seals;
}

static int check_access(int fd, int seals, unsigned int flags)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if ((fl & O_ACCMODE) == O_WRONLY)
		return -EACCES;
	if (flags & HETMEM_BUF_RDONLY)
		return 0;
	if ((fl & O_ACCMODE) != O_RDWR || (seals & WRITE_SEALS))
		return -EACCES;
	return 0;
}

/**
 * hetmem_buf_validate() - check a buffer descriptor before touching it
 * @fd: the descriptor, typically just received from a peer
 * @expected_size: the size the peer advertised; st_size must equal it
 * @required_seals: F_SEAL_* bits that must be set; 0 means
 *	HETMEM_BUF_SEALS_DEFAULT (SHRINK | GROW); must include F_SEAL_SHRINK
 * @flags: 0 (read-write access needed) or HETMEM_BUF_RDONLY
 *
 * Checks, in this order: a regular file on tmpfs or hugetlbfs (a memfd);
 * every required seal present; st_size == @expected_size; the access mode
 * (O_RDWR and no write seal, unless @flags has HETMEM_BUF_RDONLY; O_WRONLY
 * is never accepted). Nothing is mapped, read or modified. The caller's
 * size limit is its own business (hetmem_buf_recv() applies one).
 *
 * Context: Any thread; never blocks.
 * Return: 0 if @fd may be mapped with hetmem_buf_map(); -EBADF if @fd is
 * not open; -EINVAL for a bad @expected_size (0), @required_seals or
 * @flags, or a descriptor that is not a memfd; -EPERM if a required seal
 * is missing; -EMSGSIZE if the size differs; -EACCES for the access mode.
 */
HETMEM_API int hetmem_buf_validate(int fd, uint64_t expected_size,
				   unsigned int required_seals,
				   unsigned int flags)
{
	struct stat st;
	int seals, ret;

	if (!expected_size || (flags & ~HETMEM_BUF_RDONLY) ||
	    check_seal_mask(&required_seals))
		return -EINVAL;
	ret = check_type(fd, &st);
	if (ret)
		return ret;
	seals = get_seals(fd);
	if (seals < 0)
		return seals;
	if (((unsigned int)seals & required_seals) != required_seals)
		return -EPERM;
	if (st.st_size < 0 || (uint64_t)st.st_size != expected_size)
		return -EMSGSIZE;
	return check_access(fd, seals, flags);
}

static int map_shared(int fd, size_t len, int prot, void **addr)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);

	/* Kernels before 6.1 refuse shared read-only maps of write-sealed memfds. */
	if (p == MAP_FAILED && errno == EPERM && prot == PROT_READ)
		p = mmap(NULL, len, prot, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

/**
 * hetmem_buf_map() - map a buffer descriptor without any SIGBUS risk
 * @fd: a buffer descriptor
 * @size: bytes to map from offset 0; at most the file size
 * @prot: PROT_READ or PROT_READ | PROT_WRITE
 * @addr: set to the mapping on success (release it with munmap())
 *
 * Re-checks, immediately before mmap(), that @fd is a memfd, that
 * F_SEAL_SHRINK is set and that st_size covers @size. Since a shrink seal
 * can never be removed, the file can never again become shorter than the
 * mapping: no access inside [*addr, *addr + @size) can raise SIGBUS,
 * whatever the peer does later. This holds for any descriptor, so calling
 * it without hetmem_buf_validate() first is safe (if less informative).
 * The mapping is MAP_SHARED; a read-only mapping of a write-sealed buffer
 * falls back to MAP_PRIVATE on kernels that refuse the shared one.
 *
 * Context: Any thread; never blocks on the peer.
 * Return: 0 and *@addr set; -EINVAL for a NULL @addr, @size 0 or beyond
 * SIZE_MAX, an unknown @prot or a descriptor that is not a memfd; -EBADF;
 * -EPERM without F_SEAL_SHRINK; -EMSGSIZE if the file is shorter than
 * @size; -EACCES if @prot asks for writing and the descriptor is not
 * O_RDWR or is write-sealed; -ENOMEM from mmap().
 */
HETMEM_API int hetmem_buf_map(int fd, uint64_t size, int prot, void **addr)
{
	struct stat st;
	int seals, ret;

	if (!addr || !size || size > SIZE_MAX ||
	    (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE)))
		return -EINVAL;
	ret = check_type(fd, &st);
	if (ret)
		return ret;
	seals = get_seals(fd);
	if (seals < 0)
		return seals;
	if (!(seals & F_SEAL_SHRINK))
		return -EPERM;
	if (st.st_size < 0 || (uint64_t)st.st_size < size)
		return -EMSGSIZE;
	ret = check_access(fd, seals,
			   (prot & PROT_WRITE) ? 0 : HETMEM_BUF_RDONLY);
	if (ret)
		return ret;
	return map_shared(fd, (size_t)size, prot, addr);
}

/* --- sending ------------------------------------------------------------- */

static int send_record(int sock, int fd, const struct xfer_record *rec,
		       int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	const char *p = (const char *)rec;
	size_t done = 0;
	int64_t deadline = deadline_of(timeout_ms);
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cmsg;
	ssize_t n;
	int ret;

	ret = sock_type(sock);
	if (ret < 0)
		return ret;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	while (done < sizeof(*rec)) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = (void *)(p + done);
		iov.iov_len = sizeof(*rec) - done;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (!done) {
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			cmsg = CMSG_FIRSTHDR(&msg);
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			cmsg->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
		}
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		ret = wait_sock(sock, POLLOUT, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

/**
 * hetmem_buf_send() - send a buffer descriptor and its advertised size
 * @sock: a connected unix socket (any type)
 * @buf_fd: the buffer; the receiver gets a new descriptor for the same
 *	open file description (offset and status flags are shared)
 * @desc: what to advertise; @desc->size must be non-zero
 * @timeout_ms: how long to wait for room in the socket (poll semantics)
 *
 * Only the arguments are checked: the receiver, not the sender, decides
 * what it accepts (hetmem_buf_validate() lets a careful sender check its
 * own buffer first). Never raises SIGPIPE.
 *
 * Context: Any thread; blocks at most @timeout_ms.
 * Return: 0 once the whole record is queued; -EINVAL for a NULL @desc,
 * size 0, unknown flags or non-zero reserved; -EBADF, -ENOTSOCK;
 * -ETIMEDOUT; -EPIPE or -ECONNRESET if the peer is gone; other negative
 * errno values from sendmsg().
 */
HETMEM_API int hetmem_buf_send(int sock, int buf_fd,
			       const struct hetmem_buf_desc *desc,
			       int timeout_ms)
{
	struct xfer_record rec;

	if (!desc || !desc->size || desc->reserved ||
	    (desc->flags & ~HETMEM_BUF_RDONLY))
		return -EINVAL;
	rec = (struct xfer_record){
		.magic = XFER_MAGIC, .version = XFER_VERSION,
		.kind = XFER_KIND_BUF, .size = desc->size,
		.flags = desc->flags,
	};
	return send_record(sock, buf_fd, &rec, timeout_ms);
}

/**
 * hetmem_fence_send() - send a sync_file descriptor
 * @sock: a connected unix socket (any type)
 * @sync_file_fd: a hetmem or kernel sync_file descriptor
 * @timeout_ms: how long to wait for room in the socket (poll semantics)
 *
 * The receiver checks that it is a sync_file (hetmem_fence_recv()).
 *
 * Context: Any thread; blocks at most @timeout_ms.
 * Return: 0 once queued; -EBADF, -ENOTSOCK, -ETIMEDOUT, -EPIPE,
 * -ECONNRESET, or another negative errno value from sendmsg().
 */
HETMEM_API int hetmem_fence_send(int sock, int sync_file_fd, int timeout_ms)
{
	struct xfer_record rec = {
		.magic = XFER_MAGIC, .version = XFER_VERSION,
		.kind = XFER_KIND_FENCE,
	};

	return send_record(sock, sync_file_fd, &rec, timeout_ms);
}

/* --- receiving ----------------------------------------------------------- */

struct rx_state {
	int fds[XFER_MAX_FDS];
	unsigned int nfds;
	bool bad;		/* protocol violation seen; fds still collected */
};

static void rx_close_all(struct rx_state *rx)
{
	unsigned int i;

	for (i = 0; i < rx->nfds; i++)
		close(rx->fds[i]);
	rx->nfds = 0;
}

/* Take every descriptor the message carried, whatever else is wrong. */
static void rx_collect(struct rx_state *rx, struct msghdr *msg)
{
	struct cmsghdr *cmsg;
	size_t i, n;
	int fd;

	if (msg->msg_flags & MSG_CTRUNC)
		rx->bad = true;
	for (cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS ||
		    cmsg->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			       sizeof(int));
			if (rx->nfds < XFER_MAX_FDS)
				rx->fds[rx->nfds++] = fd;
			else
				close(fd);	/* cannot happen: buffer size */
		}
	}
}

/* One recvmsg() of what is still missing; >0 bytes, or a negative errno. */
static ssize_t rx_chunk(int sock, struct rx_state *rx, char *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(XFER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;

	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	rx_collect(rx, &msg);
	if (msg.msg_flags & MSG_TRUNC)
		rx->bad = true;
	if (n == 0)
		return -EPIPE;
	return n;
}

/*
 * Receive one whole record and exactly one descriptor into *@fd. On any
 * error every received descriptor is closed and *@fd is -1.
 */
static int recv_record(int sock, struct xfer_record *rec, int *fd,
		       unsigned int kind, int timeout_ms)
{
	struct rx_state rx = { .nfds = 0 };
	int64_t deadline = deadline_of(timeout_ms);
	char *p = (char *)rec;
	size_t done = 0;
	ssize_t n;
	int type, ret;

	*fd = -1;
	type = sock_type(sock);
	if (type < 0)
		return type;
	while (done < sizeof(*rec)) {
		ret = wait_sock(sock, POLLIN, deadline);
		if (ret)
			goto close_fds;
		n = rx_chunk(sock, &rx, p + done, sizeof(*rec) - done);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0) {
			ret = (int)n;
			goto close_fds;
		}
		if (done && rx.nfds)
			rx.bad = true;	/* descriptors after the first byte */
		done += (size_t)n;
		if (rx.bad || (type != SOCK_STREAM && done < sizeof(*rec)))
			break;
	}
	ret = -EPROTO;
	if (rx.bad || done != sizeof(*rec) || rx.nfds != 1 ||
	    rec->magic != XFER_MAGIC || rec->version != XFER_VERSION ||
	    rec->kind != kind || rec->reserved)
		goto close_fds;
	*fd = rx.fds[0];
	return 0;

close_fds:
	rx_close_all(&rx);
	return ret;
}

static int check_limits(const struct hetmem_buf_limits *limits,
			struct hetmem_buf_limits *out)
{
	*out = limits ? *limits : (struct hetmem_buf_limits){ 0 };
	if (!out->max_size)
		out->max_size = HETMEM_BUF_MAX_SIZE_DEFAULT;
	if (out->flags & ~HETMEM_BUF_RDONLY)
		return -EINVAL;
	return check_seal_mask(&out->required_seals);
}

/**
 * hetmem_buf_recv() - receive and validate a buffer descriptor
 * @sock: a connected unix socket (any type)
 * @buf_fd: set to the received close-on-exec descriptor, or -1 on error
 * @desc: set to what the peer advertised (may be NULL)
 * @limits: what to accept; NULL for the defaults (1 GiB, SHRINK | GROW
 *	seals, read-write access)
 * @timeout_ms: how long to wait for the whole message (poll semantics)
 *
 * Receives one message (see the transfer DOC), checks the advertised
 * size against @limits->max_size before touching the descriptor, then
 * runs hetmem_buf_validate() with @limits. On any failure the descriptor
 * (and any other the message carried) is closed: the caller only ever
 * sees a descriptor it can safely map with hetmem_buf_map().
 *
 * Context: Any thread; blocks at most @timeout_ms.
 * Return: 0 with *@buf_fd set; -EINVAL for bad arguments or a descriptor
 * that is not a memfd; -EBADF, -ENOTSOCK; -ETIMEDOUT; -EPIPE or
 * -ECONNRESET when the peer is gone; -EPROTO for a malformed message
 * (no descriptor, several, MSG_CTRUNC, bad record, advertised size 0 or
 * unknown flags); -EFBIG if the advertised size exceeds the limit;
 * -EPERM if a required seal is missing; -EMSGSIZE if the size is a lie;
 * -EACCES for the access mode.
 */
HETMEM_API int hetmem_buf_recv(int sock, int *buf_fd,
			       struct hetmem_buf_desc *desc,
			       const struct hetmem_buf_limits *limits,
			       int timeout_ms)
{
	struct hetmem_buf_limits lim;
	struct xfer_record rec;
	int fd, ret;

	if (!buf_fd)
		return -EINVAL;
	*buf_fd = -1;
	ret = check_limits(limits, &lim);
	if (ret)
		return ret;
	ret = recv_record(sock, &rec, &fd, XFER_KIND_BUF, timeout_ms);
	if (ret)
		return ret;
	ret = -EPROTO;
	if (!rec.size || (rec.flags & ~HETMEM_BUF_RDONLY))
		goto close_fd;
	ret = -EFBIG;
	if (rec.size > lim.max_size)
		goto close_fd;
	ret = hetmem_buf_validate(fd, rec.size, lim.required_seals, lim.flags);
	if (ret)
		goto close_fd;
	if (desc)
		*desc = (struct hetmem_buf_desc){
			.size = rec.size, .flags = rec.flags,
		};
	*buf_fd = fd;
	return 0;

close_fd:
	close(fd);
	return ret;
}

/**
 * hetmem_fence_recv() - receive and validate a sync_file descriptor
 * @sock: a connected unix socket (any type)
 * @sync_file_fd: set to the received close-on-exec descriptor, or -1
 * @timeout_ms: how long to wait for the message (poll semantics)
 *
 * Receives one fence message and checks with hetmem_sync_file_import()
 * that the descriptor is a hetmem or kernel sync_file; anything else is
 * closed. The fence itself is not waited for: a peer's fence may never
 * signal, so wait on it with a timeout (sync_wait()).
 *
 * Context: Any thread that may allocate; blocks at most @timeout_ms.
 * Return: 0 with *@sync_file_fd set; -EINVAL for a NULL @sync_file_fd or
 * a descriptor that is not a sync_file; -EBADF, -ENOTSOCK; -ETIMEDOUT;
 * -EPIPE or -ECONNRESET when the peer is gone; -EPROTO for a malformed
 * message; -ENOMEM.
 */
HETMEM_API int hetmem_fence_recv(int sock, int *sync_file_fd, int timeout_ms)
{
	struct xfer_record rec;
	struct dma_fence *fence;
	int fd, ret;

	if (!sync_file_fd)
		return -EINVAL;
	*sync_file_fd = -1;
	ret = recv_record(sock, &rec, &fd, XFER_KIND_FENCE, timeout_ms);
	if (ret)
		return ret;
	ret = -EPROTO;
	if (rec.size || rec.flags)
		goto close_fd;
	ret = hetmem_sync_file_import(fd, &fence);
	if (ret)
		goto close_fd;
	dma_fence_put(fence);
	*sync_file_fd = fd;
	return 0;

close_fd:
	close(fd);
	return ret;
}
