/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sync_file: export, identity, merge, info and the uapi calls.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <hetmem/fence/dma-fence-unwrap.h>

#include "fence/sync_file_internal.h"

/**
 * DOC: Mechanism
 *
 * sync_file_create() opens a pipe with pipe2(O_CLOEXEC | O_DIRECT): packet
 * mode, so that the status record is one atomic packet. The read end is
 * the sync_file descriptor; the write end stays in this process, in the
 * sync_file object, and is never handed out (it is O_NONBLOCK as well, so
 * that a write can never stall the thread that signals the fence). The
 * pipe's capacity is cut to one page: one record needs no more, and it is
 * what marks the pipe as a sync_file to importers, because packet mode is
 * a flag of the write end only and cannot be seen from the read end.
 *
 * The object holds a reference to the fence and queues a dma_fence_cb on
 * it. The callback runs in whichever thread signals the fence, under the
 * fence lock; it only takes two short locks of this file, writes one
 * struct hetmem_sync_record (status 1 or the fence error, the fence's
 * CLOCK_MONOTONIC timestamp, the producer's context, seqno, pid and merge
 * name) and closes the write end, then drops the callback's reference.
 * The signaller holds its own fence reference across the signal (the
 * dma-fence rule), so that drop is never the fence's last while the signal
 * path still uses it. A fence that is already signalled at creation gets
 * its record written at once.
 *
 * Readers therefore see POLLIN (and POLLHUP) exactly once the fence has
 * signalled. Holders read the status without consuming it: tee(2)
 * duplicates the packet into a private scratch pipe and the copy is read.
 *
 * If no reader is left when the fence signals, the write fails with EPIPE;
 * SIGPIPE is blocked around the write and a SIGPIPE that the write raised
 * is consumed, so a consumer that closed its descriptor early cannot kill
 * the producer.
 */

/**
 * DOC: Identity
 *
 * While a sync_file is pending, a process-local registry maps its pipe
 * (st_dev, st_ino) to the object, so sync_file_get_fence() in the creating
 * process returns a new reference to the very fence that was exported,
 * whatever descriptor number it arrives under (dup(), or a round trip
 * through a socket). Once the record is written the entry is removed:
 * importing the descriptor then yields a signalled proxy fence carrying
 * the same status and timestamp (see sync_file_import.c), and
 * hetmem_sync_file_info() on it reports that one leaf instead of the
 * original leaves.
 */

/**
 * DOC: Trust model
 *
 * A holder of the read end can poll it and read the status, but it cannot
 * signal the fence or forge a status: it holds no write end, and the write
 * end is close-on-exec and never sent. Two limits remain, both documented
 * rather than fixed:
 *
 * - a holder that read()s the packet away (instead of using this library)
 *   makes later importers see -EPIPE instead of the real status; readiness
 *   itself cannot be undone, POLLHUP is permanent;
 * - a process of the same user can reopen /proc/PID/fd/N for writing and
 *   inject a record; the trust boundary is the user id, as for ptrace.
 *
 * Records that do not parse (wrong size, magic, version or status range)
 * are reported as status -EINVAL; nothing a peer writes can crash or block
 * the importer.
 */

/**
 * DOC: Fork and exec
 *
 * Write ends are close-on-exec, so an exec()ed program never keeps a
 * producer's pipe alive. After fork() the child is not the signaller: a
 * child handler closes every write end the child inherited and forgets the
 * registry entries, so the pending sync_files of the parent are "remote"
 * in the child (importing them gives proxies that the parent, or its
 * death, will signal). Without this a forked child that outlives its
 * parent would keep the pipes open and the fences would never signal.
 * The child's copies of the parent's fences may still signal locally;
 * their sync_file callbacks then write nothing.
 *
 * Pipe creation and the callback's write-and-close run under the read side
 * of a fork guard whose write side the prepare handler takes, so no write
 * end can be half-created or half-closed at the instant of fork().
 */

/**
 * DOC: Limits
 *
 * Each pending sync_file costs its producer one descriptor (the write
 * end) until its fence signals; the read end belongs to whoever holds the
 * sync_file. When pipe2() fails with EMFILE, the soft RLIMIT_NOFILE is
 * raised to the hard limit once per process and the call retried; beyond
 * that the error is -EMFILE. (Raising the soft limit lets descriptor
 * numbers exceed FD_SETSIZE, which matters only to select() users that
 * were already at the limit.)
 *
 * The record makes the pipe readable an instant before the write end is
 * closed, and the signal may run on another thread (the fence executor
 * for merged fences, the import watcher): POLLHUP, not POLLIN, tells that
 * the producer's descriptor is gone.
 *
 * Two internal waits are not bounded by a caller's timeout, only by one
 * second each and in practice by a few system calls: a thread that
 * unregisters the last watched proxy waits for the watcher to close its
 * descriptors, and a thread that saw a proxy settle waits for its
 * duplicate descriptor to be closed (see sync_file_import.c).
 */

/**
 * DOC: Differences from the kernel
 *
 * - The descriptor is a pipe, not an anon-inode file: read() on it returns
 *   the record (and consumes it, see Trust model); the sync_file ioctls
 *   are library calls (hetmem_sync_file_ioctl()).
 * - Close-on-exec is the default for every descriptor, as SYNC_IOC_MERGE
 *   does; HETMEM_SYNC_FILE_INHERIT asks for an inheritable one.
 * - The fence behind a descriptor is the original only inside the
 *   creating process and only while it is pending (Identity).
 * - Deadlines on a fence imported from another process are accepted and
 *   dropped (there is no channel back to the producer), except for real
 *   kernel sync_files, where they are forwarded to the kernel.
 * - hetmem_sync_file_merge() of a descriptor that is not a sync_file
 *   returns -EINVAL for the first and -ENOENT for the second, as the
 *   ioctl does; through hetmem_sync_file_ioctl() a non-sync_file target
 *   gets -ENOTTY, as ioctl(2) on such a descriptor would.
 */

enum sync_file_state {
	SYNC_FILE_NEW = 0,	/* no pipe yet */
	SYNC_FILE_PENDING,	/* registered, write end open */
	SYNC_FILE_DONE,		/* record written, write end closed */
	SYNC_FILE_REMOTE,	/* inherited by fork(): another process signals */
};

#define REGISTRY_BUCKETS 256u

static struct {
	hetmem_spinlock_t lock;
	struct hetmem_list_head bucket[REGISTRY_BUCKETS];
} registry = {
	.lock = HETMEM_SPINLOCK_INIT(sync_file_registry_lock),
};

/*
 * Read side: creating or closing write ends. Write side: fork(). Readers
 * in the low bits, GUARD_FORKING while a fork() is being prepared. Not a
 * pthread_rwlock: glibc recognises a write-locked rwlock's owner by thread
 * id, which the child no longer has, and ThreadSanitizer would not accept
 * it being re-initialised there.
 */
#define GUARD_FORKING 0x80000000u
static uint32_t fork_guard;

static pthread_once_t sync_once = PTHREAD_ONCE_INIT;

/* --- small helpers ----------------------------------------------------- */

/* Wait out a fork() being prepared; returns the guard's value after. */
static uint32_t guard_wait_unforked(void)
{
	uint32_t v;

	while ((v = __atomic_load_n(&fork_guard, __ATOMIC_RELAXED)) &
	       GUARD_FORKING)
		hetmem_futex_wait(&fork_guard, v, -1, false);
	return v;
}

static void guard_read_lock(void)
{
	uint32_t v;

	do {
		v = guard_wait_unforked();
	} while (!__atomic_compare_exchange_n(&fork_guard, &v, v + 1, false,
					      __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
}

static void guard_read_unlock(void)
{
	/* The last reader out lets a waiting fork() proceed. */
	if (__atomic_sub_fetch(&fork_guard, 1, __ATOMIC_RELEASE) ==
	    GUARD_FORKING)
		hetmem_futex_wake(&fork_guard, INT_MAX);
}

/* Two threads may fork at once: one at a time, then wait for readers. */
static void guard_fork_lock(void)
{
	uint32_t v;

	do {
		v = guard_wait_unforked();
	} while (!__atomic_compare_exchange_n(&fork_guard, &v,
					      v | GUARD_FORKING, false,
					      __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	while ((v = __atomic_load_n(&fork_guard, __ATOMIC_ACQUIRE)) !=
	       GUARD_FORKING)
		hetmem_futex_wait(&fork_guard, v, -1, false);
}

static void guard_fork_unlock(void)
{
	__atomic_store_n(&fork_guard, 0, __ATOMIC_RELEASE);
	hetmem_futex_wake(&fork_guard, INT_MAX);
}

void hetmem_sync_strscpy(char *dst, const char *src, size_t len)
{
	size_t n;

	if (!len)
		return;
	n = src ? strnlen(src, len - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

bool hetmem_sync_raise_nofile(void)
{
	static int tried;
	struct rlimit rl;

	if (__atomic_exchange_n(&tried, 1, __ATOMIC_RELAXED))
		return false;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max)
		return false;
	rl.rlim_cur = rl.rlim_max;
	return !setrlimit(RLIMIT_NOFILE, &rl);
}

/* --- the registry of pending local sync_files -------------------------- */

static struct hetmem_list_head *registry_bucket(uint64_t ino)
{
	return &registry.bucket[(ino ^ (ino >> 8)) % REGISTRY_BUCKETS];
}

static void registry_add_locked(struct sync_file *sf)
{
	hetmem_list_add(&sf->node, registry_bucket(sf->ino));
}

static struct sync_file *registry_find_locked(const struct hetmem_sync_fd_id *id)
{
	struct hetmem_list_head *head = registry_bucket(id->ino), *pos, *n;

	hetmem_list_for_each_safe(pos, n, head) {
		struct sync_file *sf =
			hetmem_list_entry(pos, struct sync_file, node);

		if (sf->ino == id->ino && sf->dev == id->dev)
			return sf;
	}
	return NULL;
}

/* A new reference to the pending local fence behind @id, and its name. */
static struct dma_fence *registry_lookup(const struct hetmem_sync_fd_id *id,
					 char *user_name, size_t len)
{
	struct dma_fence *fence = NULL;
	struct sync_file *sf;

	hetmem_spin_lock(&registry.lock);
	sf = registry_find_locked(id);
	if (sf) {
		fence = dma_fence_get(sf->fence);
		hetmem_sync_strscpy(user_name, sf->user_name, len);
	}
	hetmem_spin_unlock(&registry.lock);
	return fence;
}

/* --- object lifetime --------------------------------------------------- */

static void sync_file_release(struct hetmem_kref *ref)
{
	struct sync_file *sf = hetmem_container_of(ref, struct sync_file, ref);

	if (sf->fd >= 0)
		close(sf->fd);
	dma_fence_put(sf->fence);
	free(sf);
}

/**
 * hetmem_sync_file_put() - drop the caller's handle without installing it
 * @sync_file: from sync_file_create(), not yet installed; may be NULL
 *
 * Closes the read end (the kernel's fput() of a file nobody installed).
 * The object itself lives on until its fence signals, because the write
 * end must still get its record; with no reader left that write is
 * harmless.
 *
 * Context: Any thread; never blocks.
 * Return: nothing.
 */
HETMEM_API void hetmem_sync_file_put(struct sync_file *sync_file)
{
	if (sync_file)
		hetmem_kref_put(&sync_file->ref, sync_file_release);
}

/* --- signalling: the fence callback ------------------------------------ */

static void sync_file_fill_record(struct sync_file *sf,
				  struct dma_fence *fence,
				  struct hetmem_sync_record *rec)
{
	int error = __atomic_load_n(&fence->error, __ATOMIC_RELAXED);

	memset(rec, 0, sizeof(*rec));
	rec->magic = HETMEM_SYNC_RECORD_MAGIC;
	rec->version = HETMEM_SYNC_RECORD_VERSION;
	rec->size = sizeof(*rec);
	rec->status = error ? error : 1;
	rec->pid = sf->creator_pid;
	rec->timestamp_ns = dma_fence_timestamp(fence);
	rec->context = fence->context;
	rec->seqno = fence->seqno;
	hetmem_sync_strscpy(rec->name, sf->user_name, sizeof(rec->name));
}

/*
 * A reader that closed its end makes write() raise SIGPIPE, whose default
 * action would kill the signalling process. Linux 6.18 lets one write opt
 * out (RWF_NOSIGNAL); older kernels reject the flag with EINVAL once, and
 * from then on the signal is blocked around the write and the one our
 * write raised is consumed. A SIGPIPE the thread blocked itself is left
 * alone (it may be pending for the application's own reasons).
 */
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif

static bool nosignal_unsupported;

static bool sync_file_write_nosignal(int wfd, const struct hetmem_sync_record *rec)
{
	struct iovec iov = { (void *)rec, sizeof(*rec) };

	if (__atomic_load_n(&nosignal_unsupported, __ATOMIC_RELAXED))
		return false;
	if (pwritev2(wfd, &iov, 1, -1, RWF_NOSIGNAL) >= 0 ||
	    (errno != EINVAL && errno != EOPNOTSUPP))
		return true;
	__atomic_store_n(&nosignal_unsupported, true, __ATOMIC_RELAXED);
	return false;
}

static void sync_file_write_record(int wfd, const struct hetmem_sync_record *rec)
{
	static const struct timespec zero;
	sigset_t pipe_set, old;
	ssize_t n;

	if (sync_file_write_nosignal(wfd, rec))
		return;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(wfd, rec, sizeof(*rec));
	if (n < 0 && errno == EPIPE && !sigismember(&old, SIGPIPE))
		sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void sync_file_complete(struct sync_file *sf, struct dma_fence *fence)
{
	struct hetmem_sync_record rec;
	int saved_errno = errno;

	sync_file_fill_record(sf, fence, &rec);
	guard_read_lock();
	if (sf->state == SYNC_FILE_PENDING) {
		hetmem_spin_lock(&registry.lock);
		hetmem_list_del_init(&sf->node);
		hetmem_spin_unlock(&registry.lock);
		sf->state = SYNC_FILE_DONE;
		sync_file_write_record(sf->wfd, &rec);
		close(sf->wfd);
		sf->wfd = -1;
	}
	guard_read_unlock();
	hetmem_sync_file_put(sf);
	/* The signaller's errno is none of our business. */
	errno = saved_errno;
}

static void sync_file_fence_cb(struct dma_fence *fence, struct dma_fence_cb *cb)
{
	sync_file_complete(hetmem_container_of(cb, struct sync_file, cb), fence);
}

/* --- creation ---------------------------------------------------------- */

int hetmem_sync_pipe_open(int fds[2])
{
	int err;

	if (pipe2(fds, O_CLOEXEC | O_DIRECT) < 0) {
		if (errno != EMFILE || !hetmem_sync_raise_nofile() ||
		    pipe2(fds, O_CLOEXEC | O_DIRECT) < 0)
			return -errno;
	}
	/* O_DIRECT must be repeated: F_SETFL replaces the status flags. */
	if (fcntl(fds[1], F_SETFL, O_DIRECT | O_NONBLOCK) < 0 ||
	    fcntl(fds[1], F_SETPIPE_SZ, 1) < 0)
		goto close_pipe;
	return 0;

close_pipe:
	err = -errno;
	close(fds[0]);
	close(fds[1]);
	return err;
}

static int sync_file_open(struct sync_file *sf)
{
	struct stat st;
	int fds[2], ret;

	guard_read_lock();
	ret = hetmem_sync_pipe_open(fds);
	if (ret)
		goto unlock_guard;
	if (fstat(fds[0], &st) < 0) {
		ret = -errno;
		goto close_pipe;
	}
	sf->fd = fds[0];
	sf->wfd = fds[1];
	sf->dev = st.st_dev;
	sf->ino = st.st_ino;
	sf->state = SYNC_FILE_PENDING;
	hetmem_spin_lock(&registry.lock);
	registry_add_locked(sf);
	hetmem_spin_unlock(&registry.lock);
	goto unlock_guard;

close_pipe:
	close(fds[0]);
	close(fds[1]);
unlock_guard:
	guard_read_unlock();
	return ret;
}

static void sync_file_arm(struct sync_file *sf)
{
	/* The callback's own reference, dropped once the record is out. */
	hetmem_kref_get(&sf->ref);
	if (dma_fence_add_callback(sf->fence, &sf->cb, sync_file_fence_cb))
		sync_file_complete(sf, sf->fence);
}

static struct sync_file *sync_file_alloc(struct dma_fence *fence,
					 const char *name, int *err)
{
	struct sync_file *sf;

	hetmem_sync_fork_init();
	sf = calloc(1, sizeof(*sf));
	if (!sf) {
		*err = -ENOMEM;
		return NULL;
	}
	hetmem_kref_init(&sf->ref);
	sf->fence = dma_fence_get(fence);
	sf->fd = -1;
	sf->wfd = -1;
	sf->creator_pid = getpid();
	hetmem_list_init(&sf->node);
	hetmem_sync_strscpy(sf->user_name, name, sizeof(sf->user_name));
	*err = sync_file_open(sf);
	if (*err)
		goto put_fence;
	sync_file_arm(sf);
	return sf;

put_fence:
	dma_fence_put(sf->fence);
	free(sf);
	return NULL;
}

/**
 * sync_file_create() - wrap a fence in a new sync_file
 * @fence: the fence; the sync_file takes its own reference
 *
 * Opens the pipe and arms the signal callback. The read end is in
 * @sync_file->fd until hetmem_sync_file_install() hands it over; drop an
 * uninstalled object with hetmem_sync_file_put().
 *
 * Context: Any thread that may allocate; takes @fence->lock. Not from a
 * fence callback.
 * Return: the new sync_file, or NULL (errno is set: ENOMEM, EMFILE,
 * ENFILE, or EINVAL for a NULL @fence).
 */
HETMEM_API struct sync_file *sync_file_create(struct dma_fence *fence)
{
	struct sync_file *sf;
	int err;

	if (!fence) {
		errno = EINVAL;
		return NULL;
	}
	sf = sync_file_alloc(fence, NULL, &err);
	if (!sf)
		errno = -err;
	return sf;
}

/**
 * hetmem_sync_file_install() - hand the descriptor to the caller
 * @sync_file: from sync_file_create(), not yet installed
 * @flags: 0 for a close-on-exec descriptor, HETMEM_SYNC_FILE_INHERIT to
 *	leave FD_CLOEXEC clear
 *
 * The kernel's fd_install() step. On success the caller owns the returned
 * descriptor and its handle on @sync_file is gone (do not use it again);
 * on failure the handle is untouched.
 *
 * Context: Any thread; never blocks.
 * Return: the descriptor (>= 0); -EINVAL for unknown @flags, a NULL or
 * already installed @sync_file; -errno if FD_CLOEXEC cannot be changed.
 */
HETMEM_API int hetmem_sync_file_install(struct sync_file *sync_file,
					unsigned int flags)
{
	int fd;

	if (!sync_file || (flags & ~HETMEM_SYNC_FILE_INHERIT))
		return -EINVAL;
	fd = sync_file->fd;
	if (fd < 0)
		return -EINVAL;
	if ((flags & HETMEM_SYNC_FILE_INHERIT) && fcntl(fd, F_SETFD, 0) < 0)
		return -errno;
	sync_file->fd = -1;
	hetmem_sync_file_put(sync_file);
	return fd;
}

static int sync_file_export_named(struct dma_fence *fence, const char *name,
				  unsigned int flags)
{
	struct sync_file *sf;
	int err, fd;

	sf = sync_file_alloc(fence, name, &err);
	if (!sf)
		return err;
	fd = hetmem_sync_file_install(sf, flags);
	if (fd < 0)
		hetmem_sync_file_put(sf);
	return fd;
}

/**
 * hetmem_sync_file_export() - export a fence as a new descriptor
 * @fence: the fence; the sync_file takes its own reference
 * @flags: 0 (close-on-exec) or HETMEM_SYNC_FILE_INHERIT
 *
 * sync_file_create() followed by hetmem_sync_file_install().
 *
 * Context: Any thread that may allocate; not from a fence callback.
 * Return: the descriptor (>= 0); -EINVAL for a NULL @fence or unknown
 * @flags; -ENOMEM; -EMFILE or -ENFILE when out of descriptors.
 */
HETMEM_API int hetmem_sync_file_export(struct dma_fence *fence,
				       unsigned int flags)
{
	if (!fence || (flags & ~HETMEM_SYNC_FILE_INHERIT))
		return -EINVAL;
	return sync_file_export_named(fence, NULL, flags);
}

/* --- import ------------------------------------------------------------ */

/*
 * The fence behind an identified descriptor: the original for a pending
 * local sync_file, else a proxy. @user_name gets the merge name if known.
 */
static int sync_fence_of(int fd, const struct hetmem_sync_fd_id *id,
			 struct dma_fence **fence, char *user_name, size_t len)
{
	int ret;

	hetmem_sync_fork_init();
	user_name[0] = '\0';
	if (id->kind == HETMEM_SYNC_FD_PIPE) {
		*fence = registry_lookup(id, user_name, len);
		if (*fence)
			return 0;
	}
	ret = hetmem_sync_import_proxy(fd, id, fence);
	if (!ret)
		hetmem_sync_import_user_name(*fence, user_name, len);
	return ret;
}

/**
 * hetmem_sync_file_import() - the fence behind a sync_file descriptor
 * @fd: a hetmem sync_file (from this or another process) or a kernel one
 * @fence: receives a new reference
 *
 * In the process that created a still pending sync_file this is the very
 * fence that was exported. Anything else becomes a proxy fence (driver
 * name "hetmem-import") that signals, with the producer's status and
 * timestamp, when the descriptor becomes readable; see
 * sync_file_import.c. @fd itself is not consumed.
 *
 * Context: Any thread that may allocate; never waits for the fence.
 * Return: 0; -EBADF for a descriptor that is not open; -EINVAL if it is
 * not a sync_file (regular file, socket, eventfd, a pipe's write end, a
 * pipe not in packet mode) or @fence is NULL; -ENOMEM; -EMFILE when the
 * descriptor cannot be duplicated.
 */
HETMEM_API int hetmem_sync_file_import(int fd, struct dma_fence **fence)
{
	struct hetmem_sync_fd_id id;
	char name[32];
	int ret;

	if (!fence)
		return -EINVAL;
	*fence = NULL;
	ret = hetmem_sync_fd_identify(fd, &id);
	if (ret)
		return ret;
	return sync_fence_of(fd, &id, fence, name, sizeof(name));
}

/**
 * sync_file_get_fence() - the fence behind a sync_file descriptor
 * @fd: the descriptor
 *
 * The kernel's interface to hetmem_sync_file_import().
 *
 * Context: Any thread that may allocate; never waits for the fence.
 * Return: a new reference, or NULL if @fd is not a sync_file (or on
 * allocation failure).
 */
HETMEM_API struct dma_fence *sync_file_get_fence(int fd)
{
	struct dma_fence *fence;

	if (hetmem_sync_file_import(fd, &fence))
		return NULL;
	return fence;
}

/* --- names ------------------------------------------------------------- */

static void sync_format_name(const char *user_name, struct dma_fence *fence,
			     char *buf, size_t len)
{
	if (user_name[0]) {
		hetmem_sync_strscpy(buf, user_name, len);
		return;
	}
	hetmem_rcu_read_lock();
	snprintf(buf, len, "%s-%s%llu-%lld", dma_fence_driver_name(fence),
		 dma_fence_timeline_name(fence),
		 (unsigned long long)fence->context, (long long)fence->seqno);
	hetmem_rcu_read_unlock();
}

/**
 * sync_file_get_name() - the name sync_file info reports
 * @sync_file: the sync_file
 * @buf: destination
 * @len: size of @buf
 *
 * The merge name if one was given, else "<driver>-<timeline><context>-<seqno>"
 * of the fence (whose names become "detached-driver" and
 * "signaled-timeline" once it signalled, as in the kernel). Truncated to
 * @len - 1 characters.
 *
 * Context: Any thread.
 * Return: @buf.
 */
HETMEM_API char *sync_file_get_name(struct sync_file *sync_file, char *buf,
				    int len)
{
	if (!buf || len <= 0)
		return buf;
	if (!sync_file) {
		buf[0] = '\0';
		return buf;
	}
	sync_format_name(sync_file->user_name, sync_file->fence, buf,
			 (size_t)len);
	return buf;
}

/* --- SYNC_IOC_FILE_INFO ------------------------------------------------ */

static int sync_info_fill_one(struct dma_fence *fence,
			      struct sync_fence_info *out)
{
	memset(out, 0, sizeof(*out));
	hetmem_rcu_read_lock();
	hetmem_sync_strscpy(out->obj_name, dma_fence_timeline_name(fence),
			    sizeof(out->obj_name));
	hetmem_sync_strscpy(out->driver_name, dma_fence_driver_name(fence),
			    sizeof(out->driver_name));
	hetmem_rcu_read_unlock();
	out->status = dma_fence_get_status(fence);
	out->timestamp_ns = out->status ?
		(uint64_t)dma_fence_timestamp(fence) : 0;
	return out->status;
}

static uint32_t sync_info_count(struct dma_fence *fence)
{
	struct dma_fence_unwrap iter;
	struct dma_fence *leaf;
	uint32_t n = 0;

	dma_fence_unwrap_for_each(leaf, &iter, fence)
		n++;
	return n;
}

/*
 * One entry per leaf, and the aggregate: 1 unless a leaf is pending or
 * failed, then the first such leaf's status in iteration order.
 */
static uint32_t sync_info_fill(struct dma_fence *fence, uint32_t max,
			       struct sync_fence_info *out, int32_t *status)
{
	struct dma_fence_unwrap iter;
	struct dma_fence *leaf;
	uint32_t n = 0;
	int leaf_status;

	*status = 1;
	dma_fence_unwrap_for_each(leaf, &iter, fence) {
		if (n == max) {
			/* Leaving early: the cursor's reference is ours. */
			dma_fence_put(iter.chain);
			break;
		}
		leaf_status = sync_info_fill_one(leaf, &out[n++]);
		if (*status > 0)
			*status = leaf_status;
	}
	return n;
}

/* A proxy learns its producer's name when it settles, maybe just now. */
static void sync_info_name(struct dma_fence *fence, const char *user_name,
			   char *buf, size_t len)
{
	if (user_name[0] || !hetmem_sync_import_user_name(fence, buf, len))
		sync_format_name(user_name, fence, buf, len);
}

static int sync_info_fence(struct dma_fence *fence, const char *user_name,
			   struct sync_file_info *info)
{
	uint32_t count = sync_info_count(fence);
	struct sync_fence_info *out;

	if (!info->num_fences) {
		info->status = dma_fence_get_status(fence);
		goto no_fences;
	}
	if (info->num_fences < count)
		return -EINVAL;
	out = (struct sync_fence_info *)(uintptr_t)info->sync_fence_info;
	if (!out)
		return -EFAULT;
	count = sync_info_fill(fence, count, out, &info->status);
no_fences:
	sync_info_name(fence, user_name, info->name, sizeof(info->name));
	info->num_fences = count;
	return 0;
}

static int sync_kernel_ioctl(int fd, unsigned long cmd, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, cmd, arg);
	} while (ret < 0 && (errno == EINTR || errno == EAGAIN));
	return ret < 0 ? -errno : ret;
}

/**
 * hetmem_sync_file_info() - SYNC_IOC_FILE_INFO
 * @fd: a sync_file descriptor
 * @info: in: flags and pad 0, num_fences 0 or the capacity of the array
 *	that sync_fence_info (a pointer stored in a u64) points to;
 *	out: name, status, num_fences, and the array filled
 *
 * With num_fences 0: reports the number of leaf fences (containers are
 * unwrapped), the name and the status of the whole fence (0 pending, 1
 * signalled, negative error), and writes no array. Otherwise fills one
 * struct sync_fence_info per leaf (timeline and driver name, status,
 * signal time or 0) and sets status to 1, or to the first leaf status
 * that is 0 or negative in iteration order. Kernel sync_files are passed
 * to the kernel.
 *
 * Context: Any thread that may allocate; never waits for the fence.
 * Return: 0; -EINVAL for non-zero flags or pad, a num_fences smaller
 * than the leaf count, or an @fd that is not a sync_file; -EBADF;
 * -EFAULT for a NULL @info or array; -ENOMEM, -EMFILE from importing.
 */
HETMEM_API int hetmem_sync_file_info(int fd, struct sync_file_info *info)
{
	struct hetmem_sync_fd_id id;
	struct dma_fence *fence;
	char name[32];
	int ret;

	ret = hetmem_sync_fd_identify(fd, &id);
	if (ret)
		return ret;
	if (!info)
		return -EFAULT;
	if (id.kind == HETMEM_SYNC_FD_KERNEL)
		return sync_kernel_ioctl(fd, SYNC_IOC_FILE_INFO, info);
	if (info->flags || info->pad)
		return -EINVAL;
	ret = sync_fence_of(fd, &id, &fence, name, sizeof(name));
	if (ret)
		return ret;
	ret = sync_info_fence(fence, name, info);
	dma_fence_put(fence);
	return ret;
}

/**
 * hetmem_sync_file_status() - completion status of a sync_file descriptor
 * @fd: a sync_file descriptor
 * @status: receives 0 (pending), 1 (signalled) or a negative error
 *
 * What SYNC_IOC_FILE_INFO with num_fences 0 reports as status, without
 * consuming anything: other holders of the descriptor see the same.
 *
 * Context: Any thread that may allocate; never waits for the fence.
 * Return: 0 and *@status set; -EBADF; -EINVAL if @fd is not a sync_file
 * or @status is NULL; -ENOMEM, -EMFILE from importing.
 */
HETMEM_API int hetmem_sync_file_status(int fd, int *status)
{
	struct sync_file_info info = { .num_fences = 0 };
	int ret;

	if (!status)
		return -EINVAL;
	ret = hetmem_sync_file_info(fd, &info);
	if (!ret)
		*status = info.status;
	return ret;
}

/* --- SYNC_IOC_SET_DEADLINE --------------------------------------------- */

/**
 * hetmem_sync_file_set_deadline() - SYNC_IOC_SET_DEADLINE
 * @fd: a sync_file descriptor
 * @d: deadline_ns (absolute CLOCK_MONOTONIC) and pad, which must be 0
 *
 * A hint, forwarded with dma_fence_set_deadline() to the fence behind
 * @fd. For a fence imported from another hetmem process it is accepted and
 * dropped (no channel back); a kernel sync_file gets the real ioctl.
 *
 * Context: Any thread that may allocate; never waits.
 * Return: 0; -EINVAL for a non-zero pad or an @fd that is not a
 * sync_file; -EBADF; -EFAULT for a NULL @d; -ENOMEM, -EMFILE from
 * importing.
 */
HETMEM_API int hetmem_sync_file_set_deadline(int fd,
					     const struct sync_set_deadline *d)
{
	struct hetmem_sync_fd_id id;
	struct dma_fence *fence;
	char name[32];
	int ret;

	ret = hetmem_sync_fd_identify(fd, &id);
	if (ret)
		return ret;
	if (!d)
		return -EFAULT;
	if (id.kind == HETMEM_SYNC_FD_KERNEL)
		return sync_kernel_ioctl(fd, SYNC_IOC_SET_DEADLINE, (void *)d);
	if (d->pad)
		return -EINVAL;
	ret = sync_fence_of(fd, &id, &fence, name, sizeof(name));
	if (ret)
		return ret;
	dma_fence_set_deadline(fence, (hetmem_ktime_t)d->deadline_ns);
	dma_fence_put(fence);
	return 0;
}

/* --- SYNC_IOC_MERGE ---------------------------------------------------- */

static int sync_import_for_merge(int fd, struct dma_fence **fence)
{
	struct hetmem_sync_fd_id id;
	char name[32];
	int ret;

	ret = hetmem_sync_fd_identify(fd, &id);
	if (ret)
		return ret;
	return sync_fence_of(fd, &id, fence, name, sizeof(name));
}

/**
 * hetmem_sync_file_merge() - a new sync_file that signals when both have
 * @name: name of the result (at most 31 characters kept), may be NULL
 * @fd1: first sync_file descriptor
 * @fd2: second sync_file descriptor
 * @flags: 0 (close-on-exec) or HETMEM_SYNC_FILE_INHERIT
 *
 * The fence of the result is dma_fence_unwrap_merge() of the two fences:
 * flattened, signalled leaves dropped (with their errors, as in the
 * kernel), one fence per context. Descriptors from other processes are
 * imported first, so merging the same descriptor twice, or two imports of
 * one pipe, keeps one fence. Neither input is consumed.
 *
 * Context: Any thread that may allocate; not from a fence callback.
 * Return: the new descriptor (>= 0); -EINVAL if @fd1 is not a sync_file
 * or @flags is unknown; -EBADF if @fd1 is not open; -ENOENT if @fd2 is
 * not a sync_file (open or not); -ENOMEM; -EMFILE or -ENFILE when out of
 * descriptors.
 */
HETMEM_API int hetmem_sync_file_merge(const char *name, int fd1, int fd2,
				      unsigned int flags)
{
	struct dma_fence *f1, *f2, *merged;
	int ret;

	if (flags & ~HETMEM_SYNC_FILE_INHERIT)
		return -EINVAL;
	ret = sync_import_for_merge(fd1, &f1);
	if (ret)
		return ret;
	ret = sync_import_for_merge(fd2, &f2);
	if (ret) {
		ret = ret == -EINVAL || ret == -EBADF ? -ENOENT : ret;
		goto put_f1;
	}
	merged = dma_fence_unwrap_merge(f1, f2);
	ret = -ENOMEM;
	if (merged) {
		ret = sync_file_export_named(merged, name, flags);
		dma_fence_put(merged);
	}
	dma_fence_put(f2);
put_f1:
	dma_fence_put(f1);
	return ret;
}

static bool sync_fd_is_kernel(int fd)
{
	struct hetmem_sync_fd_id id;

	return !hetmem_sync_fd_identify(fd, &id) &&
	       id.kind == HETMEM_SYNC_FD_KERNEL;
}

static int sync_ioctl_merge(int fd, const struct hetmem_sync_fd_id *id,
			    struct sync_merge_data *data)
{
	char name[sizeof(data->name)];
	int ret;

	if (data->flags || data->pad)
		return -EINVAL;
	/* Both from the kernel: the kernel merges, the result is its own. */
	if (id->kind == HETMEM_SYNC_FD_KERNEL && sync_fd_is_kernel(data->fd2))
		return sync_kernel_ioctl(fd, SYNC_IOC_MERGE, data);
	memcpy(name, data->name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	ret = hetmem_sync_file_merge(name, fd, data->fd2, 0);
	if (ret < 0)
		return ret;
	data->fence = ret;
	return 0;
}

/**
 * hetmem_sync_file_ioctl() - the sync_file ioctl(2)s, by their numbers
 * @fd: the descriptor the ioctl is issued on
 * @cmd: SYNC_IOC_MERGE, SYNC_IOC_FILE_INFO or SYNC_IOC_SET_DEADLINE
 * @arg: the command's structure
 *
 * Performs what ioctl(@fd, @cmd, @arg) does on a kernel sync_file, with
 * the kernel's error codes, on hetmem descriptors; on a kernel sync_file
 * it is that ioctl(2) (a merge with a hetmem descriptor is done here).
 * SYNC_IOC_MERGE returns the new, close-on-exec descriptor in
 * @arg->fence.
 *
 * Context: Any thread that may allocate; never waits for a fence.
 * Return: 0; -ENOTTY for an unknown @cmd or an @fd that is not a
 * sync_file (what ioctl(2) reports for another file type); -EBADF; -EFAULT
 * for a NULL @arg; otherwise what hetmem_sync_file_merge(),
 * hetmem_sync_file_info() and hetmem_sync_file_set_deadline() return.
 */
HETMEM_API int hetmem_sync_file_ioctl(int fd, unsigned long cmd, void *arg)
{
	struct hetmem_sync_fd_id id;
	int ret;

	ret = hetmem_sync_fd_identify(fd, &id);
	if (ret)
		return ret == -EINVAL ? -ENOTTY : ret;
	if (cmd != SYNC_IOC_MERGE && cmd != SYNC_IOC_FILE_INFO &&
	    cmd != SYNC_IOC_SET_DEADLINE)
		return id.kind == HETMEM_SYNC_FD_KERNEL ?
			sync_kernel_ioctl(fd, cmd, arg) : -ENOTTY;
	if (!arg)
		return -EFAULT;
	if (cmd == SYNC_IOC_MERGE)
		return sync_ioctl_merge(fd, &id, arg);
	if (cmd == SYNC_IOC_FILE_INFO)
		return hetmem_sync_file_info(fd, arg);
	return hetmem_sync_file_set_deadline(fd, arg);
}

/* --- fork -------------------------------------------------------------- */

static void sync_fork_prepare(void)
{
	guard_fork_lock();
	hetmem_spin_lock(&registry.lock);
	hetmem_sync_import_fork_prepare();
}

static void sync_fork_parent(void)
{
	hetmem_sync_import_fork_parent();
	hetmem_spin_unlock(&registry.lock);
	guard_fork_unlock();
}

/* The child is not the signaller: close its copies of the write ends. */
static void sync_disown_bucket(struct hetmem_list_head *head)
{
	struct hetmem_list_head *pos, *n;

	hetmem_list_for_each_safe(pos, n, head) {
		struct sync_file *sf =
			hetmem_list_entry(pos, struct sync_file, node);

		close(sf->wfd);
		sf->wfd = -1;
		sf->state = SYNC_FILE_REMOTE;
		hetmem_list_del_init(&sf->node);
	}
}

static void sync_fork_child(void)
{
	unsigned int i;

	hetmem_sync_import_fork_child();
	for (i = 0; i < REGISTRY_BUCKETS; i++)
		sync_disown_bucket(&registry.bucket[i]);
	hetmem_spin_unlock(&registry.lock);
	/* Readers of the parent do not exist here. */
	__atomic_store_n(&fork_guard, 0, __ATOMIC_RELAXED);
}

static void sync_once_init(void)
{
	unsigned int i;

	for (i = 0; i < REGISTRY_BUCKETS; i++)
		hetmem_list_init(&registry.bucket[i]);
	/*
	 * Register after the core's and the lock checker's handlers: their
	 * child side must run first, and our prepare side must run before
	 * the checker's takes its mutex (our locks are checked locks, and a
	 * thread holding the fork guard may need that mutex).
	 */
	hetmem_core_init();
	hetmem_lockdep_enabled();
	pthread_atfork(sync_fork_prepare, sync_fork_parent, sync_fork_child);
}

void hetmem_sync_fork_init(void)
{
	pthread_once(&sync_once, sync_once_init);
}

__attribute__((constructor)) static void sync_file_ctor(void)
{
	hetmem_sync_fork_init();
}
