/* SPDX-License-Identifier: MIT */
/*
 * hetmem - sync_file import: proxy fences for descriptors signalled
 * elsewhere.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fence/sync_file_internal.h"

/**
 * DOC: Proxy fences
 *
 * A sync_file descriptor that this process did not create (or whose local
 * fence already signalled) is imported as a proxy dma_fence: driver name
 * "hetmem-import", timeline name "pipe:[INODE]" ("sync_file:[INODE]" for a
 * kernel sync_file), seqno 1, and a context allocated once per pipe and
 * shared by every live proxy of that pipe, so that two imports of one
 * descriptor merge into one fence. The proxy owns a close-on-exec
 * duplicate of the descriptor and signals when it becomes readable, with
 * the producer's status as error and the producer's timestamp.
 *
 * Which descriptors are accepted: the read end (O_RDONLY) of a pipe on
 * pipefs whose capacity is one page, as hetmem_sync_pipe_open() makes it
 * (the packet-mode flag belongs to the write end and cannot be seen from
 * the read end; a plain pipe has 16 pages), or a file on which
 * SYNC_IOC_FILE_INFO succeeds (a kernel sync_file; only anonymous-inode
 * and regular-file types are probed, never devices). Everything else is
 * -EINVAL. A plain pipe someone shrank to one page passes; it is then read
 * like any peer's pipe (a record that does not parse is -EINVAL).
 */

/**
 * DOC: Readiness and status
 *
 * The pipe is ready when poll() reports POLLIN or POLLHUP. The status is
 * then read without consuming it: tee(2) duplicates the first packet into
 * a scratch pipe opened for the occasion, and the copy is parsed. A
 * well-formed record gives its status (1 or a negative errno) and
 * timestamp. End of file without a record means the write end was closed
 * without one, i.e. the producer died (or a holder consumed the record):
 * -EPIPE. A record of the wrong size, magic, version or status range is
 * -EINVAL. If the scratch pipe cannot be opened, that error (-EMFILE,
 * -ENFILE) becomes the status: a fence must complete, and never hang. The
 * first reader settles the status for the proxy; then the proxy closes
 * its duplicate, once no thread is using it any more. Every use of the
 * duplicate is counted, because a closed number can be reused at once by
 * another open(); a thread that saw the proxy settle waits (the instant
 * another thread's poll or tee takes to return, bounded by a second) until
 * the duplicate is closed, so that when anyone reports the fence
 * signalled, the proxy holds no descriptor any more.
 *
 * The ops: signaled() polls with timeout 0; wait() polls the descriptor
 * itself, so a waiter is woken directly by the kernel (a signal handler
 * interrupts it when @intr, giving -ERESTARTSYS; otherwise it retries with
 * the remaining time); enable_signaling() hands the descriptor to the
 * watcher thread; release() closes the duplicate.
 */

/**
 * DOC: The watcher thread
 *
 * Callbacks on a proxy must run without anybody waiting, so
 * enable_signaling() registers the descriptor with one watcher thread per
 * process, which blocks in epoll_wait() and signals proxies as their
 * pipes become ready. The thread is created by the first registration and
 * then lives as long as the process, but its epoll descriptor and eventfd
 * exist only while something is registered: the watcher closes them
 * before it signals the last proxy it was watching (and then sleeps on a
 * futex until a registration opens new ones), and a thread that
 * unregisters the last proxy by other means (a waiter that saw the pipe
 * ready first, a release) wakes the watcher through the eventfd and waits,
 * at most a second, for it to close them. So no library descriptor
 * outlives the fences that needed it, which test harnesses that check for
 * descriptor leaks can rely on, and a process that waits on proxies one
 * at a time pays for two descriptors per wait, not for a thread.
 *
 * epoll events carry a slot number and a generation, not a pointer: an
 * event fetched just before a proxy was unregistered and freed finds an
 * empty or reused slot and is ignored. The watcher takes a reference
 * (unless the count already reached zero) under its lock before signalling.
 * It runs detached with every signal blocked. If the thread or its
 * descriptors cannot be created, the proxy completes at once with that
 * error (-ENOMEM, -EMFILE, -EAGAIN) rather than never.
 */

/**
 * DOC: Fork
 *
 * A forked child must not share the parent's epoll instance (registrations
 * live in the open file, which the child would share): its handler closes
 * the inherited epoll and eventfd descriptors and, if proxies were being
 * watched at the instant of fork(), opens new ones and starts a watcher
 * thread for them in the child (the parent's did not survive fork()).
 * The locks of this file are held across fork() by the prepare handler.
 */

#define PIPEFS_MAGIC_NR 0x50495045	/* "PIPE", linux/magic.h */
#define WATCH_BATCH 32
#define WATCH_WAKE UINT64_MAX
#define WATCH_ACK_NS (1000LL * 1000 * 1000)
#define FD_RETIRED 0x80000000u	/* no new users; the last one closes */
#define FD_CLOSED 0x40000000u	/* closed; futex waiters are woken */
#define FD_WAIT_NS (1000LL * 1000 * 1000)
#define CTX_BUCKETS 64u

/* One fence context per imported pipe, while some proxy of it lives. */
struct import_ctx {
	struct hetmem_list_head node;
	uint64_t dev;
	uint64_t ino;
	uint64_t context;
	unsigned int users;
};

struct sync_import {
	struct dma_fence base;		/* first: dma_fence_free() frees it */
	hetmem_spinlock_t lock;		/* the fence lock */
	hetmem_spinlock_t resolve_lock;	/* first status read */
	int fd;				/* our duplicate of the descriptor */
	uint32_t fd_users;		/* threads using @fd, | FD_* flags */
	enum hetmem_sync_fd_kind kind;
	struct import_ctx *ctx;
	bool resolved;			/* @status, @timestamp, @user_name set */
	int status;
	hetmem_ktime_t timestamp;
	char user_name[32];
	char timeline[48];
	bool watched;			/* under watch.lock */
	uint32_t slot;			/* under watch.lock */
};

struct watch_slot {
	struct sync_import *p;
	uint32_t gen;
};

static struct {
	hetmem_spinlock_t lock;
	struct hetmem_list_head bucket[CTX_BUCKETS];
} ctxmap = {
	.lock = HETMEM_SPINLOCK_INIT(sync_import_ctx_lock),
};

static struct {
	hetmem_spinlock_t lock;
	bool open;			/* @epfd and @evfd exist */
	bool started;			/* @thread exists */
	int epfd;
	int evfd;
	pthread_t thread;
	unsigned int count;		/* registered proxies */
	uint32_t opens;			/* futex word: the idle thread sleeps on it */
	uint32_t acks;			/* futex word, bumped per wake-up */
	struct watch_slot *slot;
	uint32_t nslots;
	uint32_t hint;
} watch = {
	.lock = HETMEM_SPINLOCK_INIT(sync_import_watch_lock),
	.epfd = -1,
	.evfd = -1,
};

static uint64_t pipefs_dev;

static const struct dma_fence_ops import_pipe_ops;
static const struct dma_fence_ops import_kernel_ops;

static struct sync_import *to_import(struct dma_fence *fence)
{
	return hetmem_container_of(fence, struct sync_import, base);
}

static bool is_import(struct dma_fence *fence)
{
	return fence && (fence->ops == &import_pipe_ops ||
			 fence->ops == &import_kernel_ops);
}

/* --- identifying descriptors ------------------------------------------- */

static bool is_pipefs(int fd, uint64_t dev)
{
	struct statfs sfs;

	if (dev && dev == __atomic_load_n(&pipefs_dev, __ATOMIC_RELAXED))
		return true;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != PIPEFS_MAGIC_NR)
		return false;
	__atomic_store_n(&pipefs_dev, dev, __ATOMIC_RELAXED);
	return true;
}

static int identify_pipe(int fd, const struct stat *st,
			 struct hetmem_sync_fd_id *id)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return errno == EBADF ? -EBADF : -EINVAL;
	if ((fl & O_ACCMODE) != O_RDONLY)
		return -EINVAL;
	/* Packet mode is invisible here; the one-page capacity is our mark. */
	if (fcntl(fd, F_GETPIPE_SZ) != sysconf(_SC_PAGESIZE))
		return -EINVAL;
	if (!is_pipefs(fd, st->st_dev))
		return -EINVAL;
	id->kind = HETMEM_SYNC_FD_PIPE;
	return 0;
}

static int identify_kernel(int fd, struct hetmem_sync_fd_id *id)
{
	struct sync_file_info info;

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, SYNC_IOC_FILE_INFO, &info) < 0)
		return -EINVAL;
	id->kind = HETMEM_SYNC_FD_KERNEL;
	return 0;
}

int hetmem_sync_fd_identify(int fd, struct hetmem_sync_fd_id *id)
{
	struct stat st;

	if (fd < 0)
		return -EBADF;
	if (fstat(fd, &st) < 0)
		return errno == EBADF ? -EBADF : -EINVAL;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	switch (st.st_mode & S_IFMT) {
	case S_IFIFO:
		return identify_pipe(fd, &st, id);
	case 0:		/* anonymous inode, as kernel sync_files are */
	case S_IFREG:	/* ... as some kernels briefly reported them */
		return identify_kernel(fd, id);
	}
	return -EINVAL;
}

/* --- per-pipe contexts ------------------------------------------------- */

static struct hetmem_list_head *ctx_bucket(uint64_t ino)
{
	struct hetmem_list_head *head = &ctxmap.bucket[ino % CTX_BUCKETS];

	/* Zero-initialised static storage: make the list on first use. */
	if (!head->next)
		hetmem_list_init(head);
	return head;
}

static struct import_ctx *ctx_find_locked(const struct hetmem_sync_fd_id *id)
{
	struct hetmem_list_head *head = ctx_bucket(id->ino), *pos, *n;

	hetmem_list_for_each_safe(pos, n, head) {
		struct import_ctx *ctx =
			hetmem_list_entry(pos, struct import_ctx, node);

		if (ctx->ino == id->ino && ctx->dev == id->dev)
			return ctx;
	}
	return NULL;
}

static struct import_ctx *ctx_get(const struct hetmem_sync_fd_id *id)
{
	struct import_ctx *ctx;

	hetmem_spin_lock(&ctxmap.lock);
	ctx = ctx_find_locked(id);
	if (!ctx) {
		ctx = calloc(1, sizeof(*ctx));
		if (!ctx)
			goto unlock;
		ctx->dev = id->dev;
		ctx->ino = id->ino;
		ctx->context = dma_fence_context_alloc(1);
		hetmem_list_add(&ctx->node, ctx_bucket(id->ino));
	}
	ctx->users++;
unlock:
	hetmem_spin_unlock(&ctxmap.lock);
	return ctx;
}

static void ctx_put(struct import_ctx *ctx)
{
	hetmem_spin_lock(&ctxmap.lock);
	if (!--ctx->users) {
		hetmem_list_del_init(&ctx->node);
		free(ctx);
	}
	hetmem_spin_unlock(&ctxmap.lock);
}

/* --- the duplicate descriptor ------------------------------------------ */

/*
 * Threads using @fd count themselves in @fd_users; whoever retires the
 * descriptor, or is the last user after that, closes it. A number that
 * was closed can be reused at once by another open(), so nobody may touch
 * @fd without being counted.
 */
static bool import_fd_get(struct sync_import *p)
{
	uint32_t v = __atomic_load_n(&p->fd_users, __ATOMIC_ACQUIRE);

	do {
		if (v & FD_RETIRED)
			return false;
	} while (!__atomic_compare_exchange_n(&p->fd_users, &v, v + 1, true,
					      __ATOMIC_ACQUIRE,
					      __ATOMIC_ACQUIRE));
	return true;
}

static void import_fd_close(struct sync_import *p)
{
	close(p->fd);
	__atomic_fetch_or(&p->fd_users, FD_CLOSED, __ATOMIC_RELEASE);
	hetmem_futex_wake(&p->fd_users, INT_MAX);
}

static void import_fd_put(struct sync_import *p)
{
	if (__atomic_sub_fetch(&p->fd_users, 1, __ATOMIC_ACQ_REL) == FD_RETIRED)
		import_fd_close(p);
}

static void import_fd_retire(struct sync_import *p)
{
	if (!__atomic_fetch_or(&p->fd_users, FD_RETIRED, __ATOMIC_ACQ_REL))
		import_fd_close(p);
}

/*
 * Once the pipe is ready every use of @fd is a call that returns at once
 * (poll, tee, epoll_ctl), so a thread that saw the proxy settle waits the
 * moment it takes another user to finish: when it reports the fence
 * signalled, the duplicate is closed, whichever thread closed it.
 */
static void import_fd_wait_closed(struct sync_import *p)
{
	int64_t deadline = hetmem_ktime_get() + FD_WAIT_NS;
	uint32_t v;

	for (;;) {
		v = __atomic_load_n(&p->fd_users, __ATOMIC_ACQUIRE);
		if (!(v & FD_RETIRED) || (v & FD_CLOSED))
			return;
		if (hetmem_futex_wait(&p->fd_users, v, deadline, false) ==
		    -ETIMEDOUT)
			return;
	}
}

static int import_dup(int fd, int *dup)
{
	*dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (*dup < 0 && errno == EMFILE && hetmem_sync_raise_nofile())
		*dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return *dup < 0 ? -errno : 0;
}

/* >0 ready, 0 not ready (yet), -errno. The caller holds an fd user. */
static int import_poll(struct sync_import *p, int timeout_ms)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	int n = poll(&pfd, 1, timeout_ms);

	if (n < 0)
		return -errno;
	return n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

/* --- reading the status ------------------------------------------------ */

static bool import_resolved(struct sync_import *p)
{
	return __atomic_load_n(&p->resolved, __ATOMIC_ACQUIRE);
}

/* Bytes copied out of the pipe's first packet, 0 at EOF, or -errno. */
static ssize_t pipe_peek(int fd, struct hetmem_sync_record *rec)
{
	int scratch[2];
	ssize_t n;

	if (pipe2(scratch, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	n = tee(fd, scratch[1], sizeof(*rec), SPLICE_F_NONBLOCK);
	if (n > 0)
		n = read(scratch[0], rec, sizeof(*rec));
	if (n < 0)
		n = -errno;
	close(scratch[0]);
	close(scratch[1]);
	return n;
}

static int record_status(const struct hetmem_sync_record *rec, ssize_t n)
{
	if (n != (ssize_t)sizeof(*rec) || rec->magic != HETMEM_SYNC_RECORD_MAGIC ||
	    rec->version != HETMEM_SYNC_RECORD_VERSION ||
	    rec->size != sizeof(*rec))
		return -EINVAL;
	if (rec->status != 1 &&
	    (rec->status >= 0 || rec->status < -HETMEM_MAX_ERRNO))
		return -EINVAL;
	return rec->status;
}

static void import_read_pipe(struct sync_import *p)
{
	struct hetmem_sync_record rec;
	ssize_t n = pipe_peek(p->fd, &rec);

	p->timestamp = hetmem_ktime_get();
	if (n == 0 || n == -EAGAIN) {
		/* Closed without a record: the producer died. */
		p->status = -EPIPE;
		return;
	}
	if (n < 0 && n != -EINVAL) {
		p->status = (int)n;
		return;
	}
	p->status = record_status(&rec, n);
	if (p->status == -EINVAL)
		return;
	if (rec.timestamp_ns > 0)
		p->timestamp = rec.timestamp_ns;
	hetmem_sync_strscpy(p->user_name, rec.name, sizeof(p->user_name));
}

/* The latest signal time of the kernel sync_file's leaves. */
static hetmem_ktime_t kernel_timestamp(int fd, uint32_t num)
{
	struct sync_file_info info = { .num_fences = num };
	struct sync_fence_info *leaf;
	hetmem_ktime_t ts = 0;
	uint32_t i;

	leaf = num ? calloc(num, sizeof(*leaf)) : NULL;
	if (!leaf)
		return hetmem_ktime_get();
	info.sync_fence_info = (uintptr_t)leaf;
	if (!ioctl(fd, SYNC_IOC_FILE_INFO, &info))
		for (i = 0; i < info.num_fences && i < num; i++)
			if ((hetmem_ktime_t)leaf[i].timestamp_ns > ts)
				ts = (hetmem_ktime_t)leaf[i].timestamp_ns;
	free(leaf);
	return ts ? ts : hetmem_ktime_get();
}

static void import_read_kernel(struct sync_import *p)
{
	struct sync_file_info info;

	memset(&info, 0, sizeof(info));
	if (ioctl(p->fd, SYNC_IOC_FILE_INFO, &info) < 0) {
		p->status = -errno;
		p->timestamp = hetmem_ktime_get();
		return;
	}
	/* Readable means signalled; a 0 here would be a kernel bug. */
	p->status = info.status ? info.status : 1;
	p->timestamp = kernel_timestamp(p->fd, info.num_fences);
}

/* Settle the status once, the first time readiness was seen. */
static void import_resolve(struct sync_import *p)
{
	hetmem_spin_lock(&p->resolve_lock);
	if (!__atomic_load_n(&p->resolved, __ATOMIC_RELAXED)) {
		if (p->kind == HETMEM_SYNC_FD_PIPE)
			import_read_pipe(p);
		else
			import_read_kernel(p);
		/* The error must be in place before anyone signals. */
		if (p->status < 0)
			__atomic_store_n(&p->base.error, p->status,
					 __ATOMIC_RELAXED);
		__atomic_store_n(&p->resolved, true, __ATOMIC_RELEASE);
	}
	hetmem_spin_unlock(&p->resolve_lock);
}

/* Give up on the producer: complete with @err (never hang instead). */
static void import_fail(struct sync_import *p, int err)
{
	hetmem_spin_lock(&p->resolve_lock);
	if (!__atomic_load_n(&p->resolved, __ATOMIC_RELAXED)) {
		p->status = err;
		p->timestamp = hetmem_ktime_get();
		__atomic_store_n(&p->base.error, err, __ATOMIC_RELAXED);
		__atomic_store_n(&p->resolved, true, __ATOMIC_RELEASE);
	}
	hetmem_spin_unlock(&p->resolve_lock);
}

/* Signal with the producer's timestamp, whether or not we hold the lock. */
static void import_signal(struct sync_import *p)
{
	if (hetmem_spin_is_held(p->base.lock))
		dma_fence_signal_timestamp_locked(&p->base, p->timestamp);
	else
		dma_fence_signal_timestamp(&p->base, p->timestamp);
}

/* --- the watcher ------------------------------------------------------- */

static int slot_alloc_locked(struct sync_import *p, uint64_t *key)
{
	uint32_t i, idx, n;
	struct watch_slot *grown;

	for (i = 0; i < watch.nslots; i++) {
		idx = (watch.hint + i) % watch.nslots;
		if (!watch.slot[idx].p)
			goto found;
	}
	n = watch.nslots ? 2 * watch.nslots : 16;
	grown = realloc(watch.slot, n * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	memset(grown + watch.nslots, 0, (n - watch.nslots) * sizeof(*grown));
	idx = watch.nslots;
	watch.slot = grown;
	watch.nslots = n;
found:
	watch.slot[idx].p = p;
	watch.slot[idx].gen++;
	watch.hint = idx + 1;
	p->slot = idx;
	*key = (uint64_t)watch.slot[idx].gen << 32 | idx;
	return 0;
}

static struct sync_import *slot_lookup_locked(uint64_t key)
{
	uint32_t idx = (uint32_t)key, gen = (uint32_t)(key >> 32);

	if (idx >= watch.nslots || watch.slot[idx].gen != gen)
		return NULL;
	return watch.slot[idx].p;
}

static void watch_unregister_locked(struct sync_import *p)
{
	epoll_ctl(watch.epfd, EPOLL_CTL_DEL, p->fd, NULL);
	watch.slot[p->slot].p = NULL;
	p->watched = false;
	watch.count--;
}

static void watch_close_locked(void)
{
	close(watch.epfd);
	close(watch.evfd);
	watch.epfd = -1;
	watch.evfd = -1;
	watch.open = false;
}

/* Drain the wake-up counter (non-blocking eventfd). */
static void watch_drain_locked(void)
{
	uint64_t v;

	if (read(watch.evfd, &v, sizeof(v)) < 0)
		return;
}

/* Unregister the ready proxies and take a reference to each live one. */
static unsigned int watch_collect_locked(const struct epoll_event *ev, int n,
					 struct sync_import **ready)
{
	unsigned int nready = 0;
	struct sync_import *p;
	int i;

	for (i = 0; i < n; i++) {
		if (ev[i].data.u64 == WATCH_WAKE) {
			watch_drain_locked();
			continue;
		}
		p = slot_lookup_locked(ev[i].data.u64);
		if (!p)
			continue;
		watch_unregister_locked(p);
		/* A proxy being released is unregistered, never signalled. */
		if (dma_fence_get_rcu(&p->base))
			ready[nready++] = p;
	}
	return nready;
}

static bool import_check(struct sync_import *p);

static void watch_signal(struct sync_import **ready, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct sync_import *p = ready[i];

		/* epoll saw it ready, and readiness is permanent. */
		if (!import_check(p))
			import_fail(p, -EIO);
		import_signal(p);
		dma_fence_put(&p->base);
	}
}

/* One epoll_wait() and its harvest; watch.lock is dropped meanwhile. */
static unsigned int watch_round_locked(struct sync_import **ready)
{
	struct epoll_event ev[WATCH_BATCH];
	unsigned int nready;
	int epfd, n;

	epfd = watch.epfd;
	hetmem_spin_unlock(&watch.lock);
	n = epoll_wait(epfd, ev, WATCH_BATCH, -1);
	hetmem_spin_lock(&watch.lock);
	nready = watch_collect_locked(ev, n, ready);
	/* Nothing left to watch: close up before anyone is told. */
	if (!watch.count)
		watch_close_locked();
	/* Read without the lock by watch_wait_ack(). */
	__atomic_add_fetch(&watch.acks, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&watch.acks, INT_MAX);
	return nready;
}

/* No descriptors: sleep until watch_start_locked() opens new ones. */
static void watch_sleep_locked(void)
{
	uint32_t seen = __atomic_load_n(&watch.opens, __ATOMIC_RELAXED);

	hetmem_spin_unlock(&watch.lock);
	hetmem_futex_wait(&watch.opens, seen, -1, false);
	hetmem_spin_lock(&watch.lock);
}

static void *watch_main(void *arg)
{
	struct sync_import *ready[WATCH_BATCH];
	unsigned int nready;

	hetmem_spin_lock(&watch.lock);
	for (;;) {
		/* The count can also reach 0 while we signal (a callback
		 * releasing another watched proxy); nobody wakes us then. */
		if (watch.open && !watch.count)
			watch_close_locked();
		if (!watch.open) {
			watch_sleep_locked();
			continue;
		}
		nready = watch_round_locked(ready);
		hetmem_spin_unlock(&watch.lock);
		watch_signal(ready, nready);
		hetmem_spin_lock(&watch.lock);
	}
	return NULL;
}

static int watch_spawn_locked(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* User signal handlers never run on the watcher. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&watch.thread, &attr, watch_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret)
		return -ret;
	pthread_setname_np(watch.thread, "hetmem-syncfd");
	watch.started = true;
	return 0;
}

static int watch_open_locked(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WATCH_WAKE };

	watch.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (watch.epfd < 0)
		return -errno;
	watch.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch.evfd < 0 ||
	    epoll_ctl(watch.epfd, EPOLL_CTL_ADD, watch.evfd, &ev) < 0) {
		int err = -errno;

		if (watch.evfd >= 0)
			close(watch.evfd);
		close(watch.epfd);
		watch.epfd = watch.evfd = -1;
		return err;
	}
	watch.open = true;
	return 0;
}

/* Descriptors exist and the thread runs on them. */
static int watch_start_locked(void)
{
	int ret;

	if (watch.open)
		return 0;
	ret = watch_open_locked();
	if (ret)
		return ret;
	if (!watch.started) {
		ret = watch_spawn_locked();
		if (ret)
			watch_close_locked();
		return ret;
	}
	__atomic_add_fetch(&watch.opens, 1, __ATOMIC_RELEASE);
	hetmem_futex_wake(&watch.opens, 1);
	return 0;
}

/*
 * Nothing is registered any more: wake the watcher so that it closes its
 * descriptors and exits. Returns true if the caller should wait for it.
 */
static bool watch_idle_locked(uint32_t *ack)
{
	uint64_t one = 1;

	if (watch.count || !watch.open)
		return false;
	/* The watcher itself notices at the top of its loop. */
	if (pthread_equal(pthread_self(), watch.thread))
		return false;
	*ack = __atomic_load_n(&watch.acks, __ATOMIC_RELAXED);
	return write(watch.evfd, &one, sizeof(one)) == sizeof(one);
}

static void watch_wait_ack(uint32_t ack)
{
	int64_t deadline = hetmem_ktime_get() + WATCH_ACK_NS;

	while (__atomic_load_n(&watch.acks, __ATOMIC_ACQUIRE) == ack)
		if (hetmem_futex_wait(&watch.acks, ack, deadline, false) ==
		    -ETIMEDOUT)
			break;
}

static int watch_register_locked(struct sync_import *p)
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t key;
	int ret;

	ret = slot_alloc_locked(p, &key);
	if (ret)
		return ret;
	ev.data.u64 = key;
	if (epoll_ctl(watch.epfd, EPOLL_CTL_ADD, p->fd, &ev) < 0) {
		ret = -errno;
		watch.slot[p->slot].p = NULL;
		return ret;
	}
	p->watched = true;
	watch.count++;
	return 0;
}

/* 0 registered, 1 already resolved, -errno if the watcher failed. */
static int watch_add(struct sync_import *p)
{
	bool wait = false;
	uint32_t ack;
	int ret = 1;

	if (!import_fd_get(p))
		return 1;
	hetmem_spin_lock(&watch.lock);
	/* Checked under the lock: a settle unregisters after resolving. */
	if (import_resolved(p) || p->watched)
		goto unlock;
	ret = watch_start_locked();
	if (!ret)
		ret = watch_register_locked(p);
	/* A watcher started for nothing must go again. */
	if (ret)
		wait = watch_idle_locked(&ack);
unlock:
	hetmem_spin_unlock(&watch.lock);
	if (wait)
		watch_wait_ack(ack);
	import_fd_put(p);
	return ret;
}

/* Stop watching @p; its descriptor must still be open. */
static void watch_del(struct sync_import *p)
{
	bool wait = false;
	uint32_t ack;

	hetmem_spin_lock(&watch.lock);
	if (p->watched) {
		watch_unregister_locked(p);
		wait = watch_idle_locked(&ack);
	}
	hetmem_spin_unlock(&watch.lock);
	if (wait)
		watch_wait_ack(ack);
}

/* --- fence ops --------------------------------------------------------- */

/*
 * The producer has signalled: settle the status, stop watching, drop our
 * use of the duplicate and see it closed. The caller was an fd user.
 */
static void import_settle_put(struct sync_import *p)
{
	import_resolve(p);
	watch_del(p);
	import_fd_retire(p);
	import_fd_put(p);
	import_fd_wait_closed(p);
}

/* Poll once without waiting; true once the status is settled. */
static bool import_check(struct sync_import *p)
{
	if (import_resolved(p) || !import_fd_get(p)) {
		import_fd_wait_closed(p);
		return true;
	}
	if (import_poll(p, 0) > 0) {
		import_settle_put(p);
		return true;
	}
	import_fd_put(p);
	return false;
}

static const char *import_driver_name(struct dma_fence *fence)
{
	return "hetmem-import";
}

static const char *import_timeline_name(struct dma_fence *fence)
{
	return to_import(fence)->timeline;
}

static bool import_signaled(struct dma_fence *fence)
{
	struct sync_import *p = to_import(fence);

	if (!import_check(p))
		return false;
	/* Signal here so the producer's timestamp is the one recorded. */
	import_signal(p);
	return true;
}

static bool import_enable_signaling(struct dma_fence *fence)
{
	struct sync_import *p = to_import(fence);
	int ret;

	if (import_check(p))
		goto signal_now;
	ret = watch_add(p);
	if (!ret)
		return true;
	if (ret < 0)
		import_fail(p, ret);
signal_now:
	import_signal(p);
	return false;
}

/* 1 settled, 0 not yet, -errno (-EINTR for a signal handler). */
static int import_wait_once(struct sync_import *p, int64_t deadline)
{
	int ret;

	if (import_resolved(p) || !import_fd_get(p)) {
		import_fd_wait_closed(p);
		return 1;
	}
	ret = import_poll(p, hetmem_deadline_to_poll_ms(deadline));
	if (ret > 0)
		import_settle_put(p);
	else
		import_fd_put(p);
	return ret;
}

static signed long import_wait(struct dma_fence *fence, bool intr,
			       signed long timeout)
{
	struct sync_import *p = to_import(fence);
	int64_t deadline = hetmem_timeout_to_deadline(timeout);
	int ret;

	for (;;) {
		ret = import_wait_once(p, deadline);
		if (ret > 0)
			break;
		if (!ret && (!timeout || (deadline >= 0 &&
					  hetmem_ktime_get() >= deadline)))
			return 0;
		if (ret == -EINTR && intr)
			return -HETMEM_ERESTARTSYS;
		if (ret < 0 && ret != -EINTR)
			return ret;
	}
	import_signal(p);
	return timeout ? hetmem_deadline_to_timeout(deadline) : 1;
}

static void import_release(struct dma_fence *fence)
{
	struct sync_import *p = to_import(fence);

	watch_del(p);
	import_fd_retire(p);
	ctx_put(p->ctx);
	dma_fence_free(fence);
}

/* Kernel sync_files take deadline hints themselves. */
static void import_set_deadline(struct dma_fence *fence,
				hetmem_ktime_t deadline)
{
	struct sync_import *p = to_import(fence);
	struct sync_set_deadline d = { .deadline_ns = (uint64_t)deadline };

	if (!import_fd_get(p))
		return;
	/* A hint: a failure has nobody to be reported to. */
	(void)ioctl(p->fd, SYNC_IOC_SET_DEADLINE, &d);
	import_fd_put(p);
}

static const struct dma_fence_ops import_pipe_ops = {
	.get_driver_name = import_driver_name,
	.get_timeline_name = import_timeline_name,
	.enable_signaling = import_enable_signaling,
	.signaled = import_signaled,
	.wait = import_wait,
	.release = import_release,
};

static const struct dma_fence_ops import_kernel_ops = {
	.get_driver_name = import_driver_name,
	.get_timeline_name = import_timeline_name,
	.enable_signaling = import_enable_signaling,
	.signaled = import_signaled,
	.wait = import_wait,
	.release = import_release,
	.set_deadline = import_set_deadline,
};

/* --- creating proxies -------------------------------------------------- */

static void import_kernel_name(struct sync_import *p)
{
	struct sync_file_info info;

	memset(&info, 0, sizeof(info));
	if (!ioctl(p->fd, SYNC_IOC_FILE_INFO, &info))
		hetmem_sync_strscpy(p->user_name, info.name,
				    sizeof(p->user_name));
}

static void import_init_fence(struct sync_import *p)
{
	bool pipe = p->kind == HETMEM_SYNC_FD_PIPE;

	hetmem_spin_lock_init(&p->lock);
	hetmem_spin_lock_init(&p->resolve_lock);
	snprintf(p->timeline, sizeof(p->timeline), "%s:[%llu]",
		 pipe ? "pipe" : "sync_file", (unsigned long long)p->ctx->ino);
	if (!pipe)
		import_kernel_name(p);
	dma_fence_init(&p->base, pipe ? &import_pipe_ops : &import_kernel_ops,
		       &p->lock, p->ctx->context, 1);
}

int hetmem_sync_import_proxy(int fd, const struct hetmem_sync_fd_id *id,
			     struct dma_fence **fence)
{
	struct sync_import *p;
	int ret;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ret = import_dup(fd, &p->fd);
	if (ret)
		goto free_import;
	p->kind = id->kind;
	p->ctx = ctx_get(id);
	ret = -ENOMEM;
	if (!p->ctx)
		goto close_dup;
	import_init_fence(p);
	*fence = &p->base;
	return 0;

close_dup:
	close(p->fd);
free_import:
	free(p);
	return ret;
}

bool hetmem_sync_import_user_name(struct dma_fence *fence, char *buf,
				  size_t len)
{
	struct sync_import *p;

	if (!is_import(fence))
		return false;
	p = to_import(fence);
	if (p->kind == HETMEM_SYNC_FD_PIPE && !import_resolved(p))
		return false;
	if (!p->user_name[0])
		return false;
	hetmem_sync_strscpy(buf, p->user_name, len);
	return true;
}

/* --- fork -------------------------------------------------------------- */

void hetmem_sync_import_fork_prepare(void)
{
	hetmem_spin_lock(&ctxmap.lock);
	hetmem_spin_lock(&watch.lock);
}

void hetmem_sync_import_fork_parent(void)
{
	hetmem_spin_unlock(&watch.lock);
	hetmem_spin_unlock(&ctxmap.lock);
}

/* Watch, in the child, what the parent was watching at fork(). */
static void watch_rearm_child_locked(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint32_t i;
	int ret;

	ret = watch_start_locked();
	for (i = 0; !ret && i < watch.nslots; i++) {
		if (!watch.slot[i].p)
			continue;
		ev.data.u64 = (uint64_t)watch.slot[i].gen << 32 | i;
		if (epoll_ctl(watch.epfd, EPOLL_CTL_ADD, watch.slot[i].p->fd,
			      &ev) < 0)
			ret = -errno;
	}
	HETMEM_WARN(ret, "sync_file: cannot watch imported fences in the forked child: %d",
		    ret);
}

void hetmem_sync_import_fork_child(void)
{
	/* The parent's epoll instance is shared: only drop our copies. */
	if (watch.open)
		watch_close_locked();
	/* The watcher thread did not survive fork(). */
	watch.started = false;
	if (watch.count)
		watch_rearm_child_locked();
	hetmem_spin_unlock(&watch.lock);
	hetmem_spin_unlock(&ctxmap.lock);
}
