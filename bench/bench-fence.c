/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem bench fence
 *
 * Measures the fence hot paths against the primitive beneath each, in the
 * same run, and prints (values in ns unless the key says otherwise):
 *
 * - fence.signal_wake_ns, futex.wake_ns, ratio.fence_signal_wake_vs_futex:
 *   two threads ping-pong, one signalling a fence the other is blocked on
 *   in dma_fence_wait_timeout(), against the same ping-pong on two raw
 *   futex words. One-way latency is half a round trip. Goal: ratio <= 1.25.
 * - fence.is_signaled_ns, atomic.load_ns, ratio.is_signaled_vs_load:
 *   dma_fence_is_signaled() on a signalled fence against an acquire load
 *   and bit test in the same loop. Goal: fence.is_signaled_ns <= 2.
 * - fence.callback_signal_ns, fence.init_signal_ns: add a callback to a
 *   pre-initialised fence and signal it, against initialising a fence and
 *   signalling it without a callback, single thread.
 * - syncfile.xproc_wake_ns, pipe.xproc_wake_ns, ratio.syncfile_vs_pipe:
 *   two processes ping-pong through exported sync_file descriptors
 *   (signal -> the peer's poll() sees POLLIN -> it signals its own fence
 *   back) against the same ping-pong through one fresh pipe per message.
 *   Goal: ratio <= 1.25. pipe_close.xproc_wake_ns and
 *   ratio.syncfile_vs_pipe_close compare with a pipe that is written and
 *   then closed per message, which is what a sync_file signal does.
 * - chain.find_seqno_4096_ns: dma_fence_chain_find_seqno() for random
 *   seqnos on a 4096-node chain of unsignalled fences.
 * - unwrap.merge_64_ns: dma_fence_unwrap_merge() of two fence arrays of
 *   32 unsignalled fences each (64 contexts), the shape of merging two
 *   sync_files; the result is a new 64-member array, released each time.
 *
 * Placement is explicit. On a machine with few vCPUs an unpinned
 * ping-pong lands in one of three regimes from batch to batch (both ends on
 * one CPU; on two CPUs with the waiter's vCPU going idle, where the
 * hypervisor's wake-up dominates at 15-25 us; on two CPUs that both stay
 * busy, a few hundred ns), and the hetmem path and its baseline need not
 * land in the same one: the ratio then measures the scheduler, not hetmem.
 * So each wake-up measurement runs twice, pinned: both ends on the first
 * allowed CPU (the headline keys and the goals: every wake is a real sleep
 * and context switch, so the ratio is hetmem's own overhead) and on the
 * first two (the same keys with _cross_cpu, printed for reference). Within
 * a placement, hetmem and raw batches alternate on the same pair of threads
 * or processes and each ratio is the median of the per-pair ratios (the
 * ratio of the two medians is printed too, as _of_medians).
 * Every wait has a timeout; a peer that stops
 * answering fails the measurement instead of hanging the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <hetmem/core/rcu.h>
#include <hetmem/core/time.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/dma-fence-array.h>
#include <hetmem/fence/dma-fence-chain.h>
#include <hetmem/fence/dma-fence-unwrap.h>
#include <hetmem/fence/sync_file.h>

#include "bench.h"
#include "bench-util.h"

/* Fence providers of the benchmark. */

static const char *bench_fence_name(struct dma_fence *fence)
{
	return "hetmem-bench";
}

/* Fences embedded in the benchmark's own arrays: nothing to free. */
static void bench_fence_keep(struct dma_fence *fence)
{
}

static const struct dma_fence_ops embedded_fence_ops = {
	.get_driver_name = bench_fence_name,
	.get_timeline_name = bench_fence_name,
	.release = bench_fence_keep,
};

/* calloc()ed fences, freed by the default release (dma_fence_free()). */
static const struct dma_fence_ops heap_fence_ops = {
	.get_driver_name = bench_fence_name,
	.get_timeline_name = bench_fence_name,
};

static hetmem_spinlock_t lock_ab = HETMEM_SPINLOCK_INIT(bench_lock_ab);
static hetmem_spinlock_t lock_ba = HETMEM_SPINLOCK_INIT(bench_lock_ba);
static hetmem_spinlock_t lock_heap = HETMEM_SPINLOCK_INIT(bench_lock_heap);

static struct dma_fence *heap_fence(uint64_t context, uint64_t seqno)
{
	struct dma_fence *fence = calloc(1, sizeof(*fence));

	if (fence)
		dma_fence_init(fence, &heap_fence_ops, &lock_heap, context,
			       seqno);
	return fence;
}

/* Signal a fence we own unless it already is, so no peer waits on it. */
static void cancel_fence(struct dma_fence *fence)
{
	if (!fence || dma_fence_test_signaled_flag(fence))
		return;
	dma_fence_set_error(fence, -ECANCELED);
	dma_fence_signal(fence);
}

static long wait_jiffies(void)
{
	return hetmem_msecs_to_jiffies(BENCH_TIMEOUT_MS);
}

static double ns_since(int64_t t0, unsigned long ops)
{
	return (double)(bench_now_ns() - t0) / (double)ops;
}

/*
 * Thread ping-pong: fence.signal_wake_ns against futex.wake_ns.
 *
 * One peer thread B lives for the whole measurement and alternates with
 * this thread A between a fence batch and a futex batch, so that both
 * kinds run with the same pair of threads, wherever the scheduler put
 * them. A batch starts when A bumps pp->start (B sleeps on it between
 * batches) and B reports ready; A then times WAKE_ROUNDS round trips.
 */

#define WAKE_ROUNDS 64
#define WORD_ABORT UINT32_MAX

enum pp_mode {
	PP_FENCE,
	PP_FUTEX,
	PP_STOP,
};

struct pingpong {
	struct dma_fence ab[WAKE_ROUNDS];	/* A signals, B waits */
	struct dma_fence ba[WAKE_ROUNDS];	/* B signals, A waits */
	uint32_t word_ab;			/* the futex baseline */
	uint32_t word_ba;
	uint32_t start;				/* batch number, B sleeps on it */
	enum pp_mode mode;
	int ready;
	int pin_b;				/* CPU B pins itself to, -1 none */
	int err_b;
};

static long sys_futex(uint32_t *word, int op, uint32_t val,
		      const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, val, timeout,
		       NULL, 0);
}

static void word_post(uint32_t *word, uint32_t val)
{
	__atomic_store_n(word, val, __ATOMIC_RELEASE);
	sys_futex(word, FUTEX_WAKE, 1, NULL);
}

/* Sleep until *@word != @old; no spinning, like the default fence wait. */
static int word_wait_change(uint32_t *word, uint32_t old)
{
	const struct timespec ts = {
		BENCH_TIMEOUT_MS / 1000, (BENCH_TIMEOUT_MS % 1000) * 1000000L
	};

	while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == old)
		if (sys_futex(word, FUTEX_WAIT, old, &ts) < 0 &&
		    errno == ETIMEDOUT)
			return -ETIMEDOUT;
	return 0;
}

/* Sleep until *@word == @val (the words count up by one per round). */
static int word_wait(uint32_t *word, uint32_t val)
{
	uint32_t cur;
	int ret;

	while ((cur = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != val) {
		if (cur == WORD_ABORT)
			return -EPIPE;
		ret = word_wait_change(word, cur);
		if (ret)
			return ret;
	}
	return 0;
}

static bool fence_wait_ok(struct dma_fence *fence)
{
	return dma_fence_wait_timeout(fence, false, wait_jiffies()) > 0;
}

static void cancel_from(struct dma_fence *fences, unsigned int from)
{
	unsigned int i;

	for (i = from; i < WAKE_ROUNDS; i++)
		cancel_fence(&fences[i]);
}

static int pp_fence_b(struct pingpong *pp)
{
	unsigned int i;

	for (i = 0; i < WAKE_ROUNDS; i++) {
		if (!fence_wait_ok(&pp->ab[i])) {
			cancel_from(pp->ba, i);
			return -ETIMEDOUT;
		}
		dma_fence_signal(&pp->ba[i]);
	}
	return 0;
}

static int pp_futex_b(struct pingpong *pp)
{
	unsigned int i;
	int ret;

	for (i = 0; i < WAKE_ROUNDS; i++) {
		ret = word_wait(&pp->word_ab, i + 1);
		if (ret) {
			word_post(&pp->word_ba, WORD_ABORT);
			return ret;
		}
		word_post(&pp->word_ba, i + 1);
	}
	return 0;
}

/* Thread B: run B's side of each batch A starts, until PP_STOP. */
static void *pp_thread(void *arg)
{
	struct pingpong *pp = arg;
	uint32_t seen = 0;

	for (;;) {
		if (word_wait_change(&pp->start, seen))
			break;
		seen = __atomic_load_n(&pp->start, __ATOMIC_ACQUIRE);
		if (pp->mode == PP_STOP)
			break;
		if (pp->pin_b >= 0)
			bench_pin_self(pp->pin_b);
		__atomic_store_n(&pp->ready, 1, __ATOMIC_RELEASE);
		if (pp->mode == PP_FENCE)
			pp->err_b = pp_fence_b(pp);
		else
			pp->err_b = pp_futex_b(pp);
		if (pp->err_b)
			break;
	}
	return NULL;
}

static int pp_fence_a(struct pingpong *pp, double *ns)
{
	unsigned int i;
	int64_t t0;

	t0 = bench_now_ns();
	for (i = 0; i < WAKE_ROUNDS; i++) {
		dma_fence_signal(&pp->ab[i]);
		if (!fence_wait_ok(&pp->ba[i])) {
			cancel_from(pp->ab, i + 1);
			return -ETIMEDOUT;
		}
	}
	*ns = ns_since(t0, 2 * WAKE_ROUNDS);
	return 0;
}

static int pp_futex_a(struct pingpong *pp, double *ns)
{
	unsigned int i;
	int64_t t0;
	int ret;

	t0 = bench_now_ns();
	for (i = 0; i < WAKE_ROUNDS; i++) {
		word_post(&pp->word_ab, i + 1);
		ret = word_wait(&pp->word_ba, i + 1);
		if (ret) {
			word_post(&pp->word_ab, WORD_ABORT);
			return ret;
		}
	}
	*ns = ns_since(t0, 2 * WAKE_ROUNDS);
	return 0;
}

/* Fresh fences and words, then wake B with the batch's mode. */
static void pp_start(struct pingpong *pp, enum pp_mode mode)
{
	uint64_t ctx = dma_fence_context_alloc(2);
	unsigned int i;

	for (i = 0; i < WAKE_ROUNDS; i++) {
		dma_fence_init(&pp->ab[i], &embedded_fence_ops, &lock_ab, ctx,
			       i + 1);
		dma_fence_init(&pp->ba[i], &embedded_fence_ops, &lock_ba,
			       ctx + 1, i + 1);
	}
	pp->word_ab = 0;
	pp->word_ba = 0;
	pp->mode = mode;
	__atomic_store_n(&pp->ready, 0, __ATOMIC_RELAXED);
	word_post(&pp->start, pp->start + 1);
}

static int pp_wait_ready(struct pingpong *pp)
{
	int64_t deadline = bench_now_ns() + BENCH_TIMEOUT_MS * INT64_C(1000000);

	while (!__atomic_load_n(&pp->ready, __ATOMIC_ACQUIRE)) {
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		sched_yield();
	}
	return 0;
}

/* One batch of @mode. */
static int pp_batch(struct pingpong *pp, enum pp_mode mode, double *ns)
{
	int ret;

	pp_start(pp, mode);
	ret = pp_wait_ready(pp);
	if (ret)
		return ret;
	if (mode == PP_FENCE)
		return pp_fence_a(pp, ns);
	return pp_futex_a(pp, ns);
}

/* Alternate fence and futex batches until the slice is used up. */
static int pp_run(struct pingpong *pp, double share, double *fence,
		  double *futex, double *ratio, unsigned int *n)
{
	struct bench_slice slice;
	int ret = 0;

	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = pp_batch(pp, PP_FENCE, &fence[*n]);
		if (!ret)
			ret = pp_batch(pp, PP_FUTEX, &futex[*n]);
		if (!ret) {
			ratio[*n] = fence[*n] / futex[*n];
			(*n)++;
		}
	}
	return ret;
}

/*
 * One placement: A (this thread) on @cpu_a, B on @cpu_b. Keys get @suffix;
 * the goal is judged on the same-CPU placement only (see the DOC block).
 */
static const struct bench_pair_keys wake_keys = {
	"fence.signal_wake", "futex.wake", "ns",
	"ratio.fence_signal_wake_vs_futex",
};

static int measure_wake_on(double share, int cpu_a, int cpu_b,
			   const char *suffix, bool goal)
{
	static double fence[BENCH_MAX_BATCHES], futex[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	struct pingpong *pp = calloc(1, sizeof(*pp));
	pthread_t thread;
	unsigned int n = 0;
	int ret;
	double r;

	if (!pp)
		return -ENOMEM;
	pp->pin_b = cpu_b;
	bench_pin_self(cpu_a);
	ret = -pthread_create(&thread, NULL, pp_thread, pp);
	if (ret) {
		free(pp);
		return ret;
	}
	ret = pp_run(pp, share, fence, futex, ratio, &n);
	/* B may be blocked in either kind of wait: release both. */
	cancel_from(pp->ab, 0);
	word_post(&pp->word_ab, WORD_ABORT);
	pp->mode = PP_STOP;
	word_post(&pp->start, pp->start + 1);
	pthread_join(thread, NULL);
	bench_unpin_self();
	if (!ret)
		ret = pp->err_b;
	free(pp);
	if (ret)
		return ret;
	/*
	 * Both views: the goal uses the median of per-pair ratios; the ratio
	 * of the two medians can differ when batches fall into different
	 * scheduling regimes.
	 */
	r = bench_print_paired(&wake_keys, suffix, fence, futex, ratio, n);
	if (goal)
		bench_print_goal("ratio.fence_signal_wake_vs_futex", r, 1.25);
	return 0;
}

static int measure_wake(double share)
{
	int ret = measure_wake_on(share / 2, 0, 0, "", true);

	if (ret || bench_ncpus() < 2)
		return ret;
	return measure_wake_on(share / 2, 0, 1, "_cross_cpu", false);
}

/* Testing a signalled fence: fence.is_signaled_ns against atomic.load_ns. */

#define TEST_LOOPS 1000000UL

/*
 * Both loops read the object through a volatile pointer and end each
 * iteration with a compiler barrier, so the load cannot be hoisted out of
 * the loop; the loop skeleton is the same on both sides.
 */
static int time_is_signaled(struct dma_fence *fence, double *ns)
{
	struct dma_fence *volatile vfence = fence;
	unsigned long i, hits = 0;
	int64_t t0;

	t0 = bench_now_ns();
	for (i = 0; i < TEST_LOOPS; i++) {
		hits += dma_fence_is_signaled(vfence);
		__asm__ __volatile__("" ::: "memory");
	}
	*ns = ns_since(t0, TEST_LOOPS);
	return hits == TEST_LOOPS ? 0 : -EPROTO;
}

static int time_load(unsigned long *word, double *ns)
{
	unsigned long *volatile vword = word;
	unsigned long i, hits = 0;
	int64_t t0;

	t0 = bench_now_ns();
	for (i = 0; i < TEST_LOOPS; i++) {
		hits += !!(__atomic_load_n(vword, __ATOMIC_ACQUIRE) &
			   (1UL << DMA_FENCE_FLAG_SIGNALED_BIT));
		__asm__ __volatile__("" ::: "memory");
	}
	*ns = ns_since(t0, TEST_LOOPS);
	return hits == TEST_LOOPS ? 0 : -EPROTO;
}

static int measure_test(double share)
{
	static double test[BENCH_MAX_BATCHES], load[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	unsigned long word = 1UL << DMA_FENCE_FLAG_SIGNALED_BIT;
	struct bench_slice slice;
	struct dma_fence fence;
	double t;
	unsigned int n = 0;
	int ret = 0;

	dma_fence_init(&fence, &embedded_fence_ops, &lock_ab,
		       dma_fence_context_alloc(1), 1);
	dma_fence_signal(&fence);
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = time_is_signaled(&fence, &test[n]);
		if (!ret)
			ret = time_load(&word, &load[n]);
		if (!ret) {
			ratio[n] = test[n] / load[n];
			n++;
		}
	}
	if (ret)
		return ret;
	t = bench_median(test, n);
	bench_print("fence.is_signaled_ns", t);
	bench_print("atomic.load_ns", bench_median(load, n));
	bench_print_ratio("ratio.is_signaled_vs_load", bench_median(ratio, n));
	bench_print_goal("fence.is_signaled_ns", t, 2.0);
	return 0;
}

/* Callbacks: fence.callback_signal_ns against fence.init_signal_ns. */

#define CB_FENCES 1024

struct cb_bench {
	struct dma_fence fence[CB_FENCES];
	struct dma_fence_cb cb[CB_FENCES];
	uint64_t context;
	unsigned long calls;
};

static unsigned long *cb_counter;

static void count_callback(struct dma_fence *fence, struct dma_fence_cb *cb)
{
	(*cb_counter)++;
}

static void cb_init_one(struct cb_bench *cb, unsigned int i)
{
	dma_fence_init(&cb->fence[i], &embedded_fence_ops, &lock_ab,
		       cb->context, i + 1);
}

static int time_callback_signal(struct cb_bench *cb, double *ns)
{
	unsigned int i;
	int64_t t0;

	for (i = 0; i < CB_FENCES; i++)
		cb_init_one(cb, i);
	cb->calls = 0;
	t0 = bench_now_ns();
	for (i = 0; i < CB_FENCES; i++) {
		dma_fence_add_callback(&cb->fence[i], &cb->cb[i],
				       count_callback);
		dma_fence_signal(&cb->fence[i]);
	}
	*ns = ns_since(t0, CB_FENCES);
	return cb->calls == CB_FENCES ? 0 : -EPROTO;
}

static int time_init_signal(struct cb_bench *cb, double *ns)
{
	unsigned int i;
	int64_t t0;

	t0 = bench_now_ns();
	for (i = 0; i < CB_FENCES; i++) {
		cb_init_one(cb, i);
		dma_fence_signal(&cb->fence[i]);
	}
	*ns = ns_since(t0, CB_FENCES);
	return 0;
}

static int measure_callback(double share)
{
	static double with_cb[BENCH_MAX_BATCHES], plain[BENCH_MAX_BATCHES];
	struct cb_bench *cb = calloc(1, sizeof(*cb));
	struct bench_slice slice;
	unsigned int n = 0;
	int ret = 0;

	if (!cb)
		return -ENOMEM;
	cb->context = dma_fence_context_alloc(1);
	cb_counter = &cb->calls;
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = time_callback_signal(cb, &with_cb[n]);
		if (!ret)
			ret = time_init_signal(cb, &plain[n]);
		if (!ret)
			n++;
	}
	free(cb);
	if (ret)
		return ret;
	bench_print("fence.callback_signal_ns", bench_median(with_cb, n));
	bench_print("fence.init_signal_ns", bench_median(plain, n));
	return 0;
}

/*
 * Two processes: syncfile.xproc_wake_ns against pipe.xproc_wake_ns.
 *
 * Per batch, each side prepares XP_ROUNDS "signals" and hands the waiting
 * ends to the other side over the control socket (SCM_RIGHTS), before any
 * timing: exported sync_file fds of fresh fences, or the read ends of fresh
 * pipes. The producer then times XP_ROUNDS round trips: signal its i-th
 * fence (or write a byte into its i-th pipe), poll() the consumer's i-th
 * fd for POLLIN; the consumer polls the producer's i-th fd and signals
 * back the same way. Creation, export and transfer are outside the timed
 * loop. After each batch the consumer reports its own verdict, so a peer
 * that failed or died fails the measurement.
 */

#define XP_ROUNDS 64

enum xp_mode {
	XP_SYNCFILE = 1,
	XP_PIPE = 2,		/* signal: write a byte */
	XP_PIPE_CLOSE = 3,	/* signal: write a byte, close the write end */
};

struct xp_msg {
	uint32_t mode;
	int32_t status;
};

struct xp_side {
	enum xp_mode mode;
	struct dma_fence *fence[XP_ROUNDS];	/* XP_SYNCFILE: what we signal */
	int wfd[XP_ROUNDS];			/* XP_PIPE: what we write */
	int out[XP_ROUNDS];			/* waiting ends for the peer */
	int in[XP_ROUNDS];			/* the peer's, which we poll */
};

static void xp_init(struct xp_side *s, enum xp_mode mode)
{
	unsigned int i;

	s->mode = mode;
	for (i = 0; i < XP_ROUNDS; i++) {
		s->fence[i] = NULL;
		s->wfd[i] = -1;
		s->out[i] = -1;
		s->in[i] = -1;
	}
}

static int xp_make_one(struct xp_side *s, unsigned int i, uint64_t ctx)
{
	int p[2];

	if (s->mode != XP_SYNCFILE) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		s->out[i] = p[0];
		s->wfd[i] = p[1];
		return 0;
	}
	s->fence[i] = heap_fence(ctx, i + 1);
	if (!s->fence[i])
		return -ENOMEM;
	s->out[i] = hetmem_sync_file_export(s->fence[i], 0);
	return s->out[i] < 0 ? s->out[i] : 0;
}

static int xp_prepare(struct xp_side *s, enum xp_mode mode)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	unsigned int i;
	int ret = 0;

	xp_init(s, mode);
	for (i = 0; i < XP_ROUNDS && !ret; i++)
		ret = xp_make_one(s, i, ctx);
	return ret;
}

static void xp_signal(struct xp_side *s, unsigned int i)
{
	if (s->mode == XP_SYNCFILE) {
		dma_fence_signal(s->fence[i]);
		return;
	}
	/*
	 * A reader that is gone fails its own side; close, it sees POLLHUP.
	 * XP_PIPE_CLOSE also closes after writing, as a sync_file signal does
	 * (a pipe used as a one-shot fence has to give its write end back).
	 */
	if (write(s->wfd[i], "", 1) < 0 || s->mode == XP_PIPE_CLOSE) {
		close(s->wfd[i]);
		s->wfd[i] = -1;
	}
}

/* Signal whatever is left, close every fd, drop every fence. */
static void xp_release(struct xp_side *s)
{
	unsigned int i;

	for (i = 0; i < XP_ROUNDS; i++) {
		cancel_fence(s->fence[i]);
		dma_fence_put(s->fence[i]);
		s->fence[i] = NULL;
	}
	bench_close_fds(s->wfd, XP_ROUNDS);
	bench_close_fds(s->out, XP_ROUNDS);
	bench_close_fds(s->in, XP_ROUNDS);
}

/* Hand our waiting ends over, get the peer's. */
static int xp_exchange(int sock, struct xp_side *s, bool first)
{
	struct xp_msg msg = { .mode = s->mode };
	int ret;

	if (first) {
		ret = bench_send_fds(sock, &msg, sizeof(msg), s->out,
				     XP_ROUNDS);
		if (ret)
			return ret;
	}
	ret = bench_recv_fds(sock, &msg, sizeof(msg), s->in, XP_ROUNDS,
			     BENCH_TIMEOUT_MS);
	if (!ret && !first)
		ret = bench_send_fds(sock, &msg, sizeof(msg), s->out,
				     XP_ROUNDS);
	if (!ret && msg.mode != s->mode)
		ret = -EPROTO;
	bench_close_fds(s->out, XP_ROUNDS);
	return ret;
}

static int xp_pingpong(struct xp_side *s, bool producer)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < XP_ROUNDS && !ret; i++) {
		if (producer)
			xp_signal(s, i);
		ret = bench_wait_readable(s->in[i], BENCH_TIMEOUT_MS);
		if (!ret && !producer)
			xp_signal(s, i);
	}
	return ret;
}

static int xp_send_status(int sock, enum xp_mode mode, int status)
{
	struct xp_msg msg = { .mode = mode, .status = status };

	return bench_send_fds(sock, &msg, sizeof(msg), NULL, 0);
}

static int xp_recv_status(int sock)
{
	struct xp_msg msg;
	int ret;

	ret = bench_recv_fds(sock, &msg, sizeof(msg), NULL, 0,
			     BENCH_TIMEOUT_MS);
	return ret ? ret : msg.status;
}

/* The consumer: serve batches until the producer closes the socket. */
static int xp_consumer(int sock, void *arg)
{
	struct xp_side s;
	struct xp_msg msg;
	int ret;

	for (;;) {
		/* Peek at the mode: it decides what we prepare. */
		if (bench_wait_readable(sock, BENCH_TIMEOUT_MS) ||
		    recv(sock, &msg, sizeof(msg), MSG_PEEK) != sizeof(msg))
			return 0;
		ret = xp_prepare(&s, msg.mode);
		if (!ret)
			ret = xp_exchange(sock, &s, false);
		if (!ret)
			ret = xp_pingpong(&s, false);
		xp_release(&s);
		if (ret)
			fprintf(stderr, "hetmem bench fence: consumer: %s\n",
				strerror(-ret));
		if (xp_send_status(sock, msg.mode, ret) || ret)
			return -1;
	}
}

static int xp_batch(struct bench_peer *peer, enum xp_mode mode, double *ns)
{
	struct xp_side s;
	int64_t t0;
	int ret;

	ret = xp_prepare(&s, mode);
	if (!ret)
		ret = xp_exchange(peer->sock, &s, true);
	if (!ret) {
		t0 = bench_now_ns();
		ret = xp_pingpong(&s, true);
		*ns = ns_since(t0, 2 * XP_ROUNDS);
	}
	xp_release(&s);
	if (ret == 0 || ret == -EPIPE || ret == -ETIMEDOUT) {
		int status = xp_recv_status(peer->sock);

		ret = ret ? ret : status;
	}
	return ret;
}

static const struct bench_pair_keys xproc_keys = {
	"syncfile.xproc_wake", "pipe.xproc_wake", "ns", "ratio.syncfile_vs_pipe",
};

static int xp_run(struct bench_peer *peer, double share, const char *suffix,
		  bool goal)
{
	static double sf[BENCH_MAX_BATCHES], pipe_ns[BENCH_MAX_BATCHES];
	static double pclose[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES], ratio_close[BENCH_MAX_BATCHES];
	struct bench_slice slice;
	unsigned int n = 0;
	char key[96];
	int ret = 0;
	double r;

	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = xp_batch(peer, XP_SYNCFILE, &sf[n]);
		if (!ret)
			ret = xp_batch(peer, XP_PIPE, &pipe_ns[n]);
		if (!ret)
			ret = xp_batch(peer, XP_PIPE_CLOSE, &pclose[n]);
		if (!ret) {
			ratio[n] = sf[n] / pipe_ns[n];
			ratio_close[n] = sf[n] / pclose[n];
			n++;
		}
	}
	if (ret)
		return ret;
	r = bench_print_paired(&xproc_keys, suffix, sf, pipe_ns, ratio, n);
	if (goal)
		bench_print_goal("ratio.syncfile_vs_pipe", r, 1.25);
	snprintf(key, sizeof(key), "pipe_close.xproc_wake%s_ns", suffix);
	bench_print(key, bench_median(pclose, n));
	snprintf(key, sizeof(key), "ratio.syncfile_vs_pipe_close%s", suffix);
	bench_print_ratio(key, bench_median(ratio_close, n));
	return 0;
}

/* The consumer inherits the CPU it is forked on; then we move to @cpu_a. */
static int measure_xproc_on(double share, int cpu_a, int cpu_b,
			    const char *suffix, bool goal)
{
	struct bench_peer peer;
	int ret, stop;

	bench_pin_self(cpu_b);
	ret = bench_peer_start(&peer, xp_consumer, NULL);
	bench_pin_self(cpu_a);
	if (ret)
		goto out_unpin;
	ret = xp_run(&peer, share, suffix, goal);
	stop = bench_peer_stop(&peer, BENCH_TIMEOUT_MS);
	hetmem_rcu_barrier();
	if (!ret && stop)
		fprintf(stderr, "hetmem bench fence: consumer process failed\n");
	ret = ret ? ret : stop;
out_unpin:
	bench_unpin_self();
	return ret;
}

static int measure_xproc(double share)
{
	int ret = measure_xproc_on(share / 2, 0, 0, "", true);

	if (ret || bench_ncpus() < 2)
		return ret;
	return measure_xproc_on(share / 2, 0, 1, "_cross_cpu", false);
}

/*
 * Timelines: chain.find_seqno_4096_ns.
 *
 * Nothing in the chain is signalled, so a lookup for seqno S walks
 * 4096 - S + 1 nodes from the head (2048 on average) and never unlinks
 * anything. The time per lookup includes taking and dropping the head
 * reference; nothing is subtracted.
 */

#define CHAIN_LEN 4096
#define CHAIN_LOOKUPS 32

static uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

static struct dma_fence *chain_link(struct dma_fence *prev, uint64_t ctx,
				    uint64_t seqno)
{
	struct dma_fence_chain *node = dma_fence_chain_alloc();
	struct dma_fence *fence = heap_fence(ctx, seqno);

	if (!node || !fence) {
		if (node)
			dma_fence_chain_free(node);
		dma_fence_put(fence);
		dma_fence_put(prev);
		return NULL;
	}
	dma_fence_chain_init(node, prev, fence, seqno);
	return &node->base;
}

/* A chain of CHAIN_LEN nodes over unsignalled fences, seqnos 1..LEN. */
static struct dma_fence *chain_build(void)
{
	uint64_t ctx = dma_fence_context_alloc(1), seqno;
	struct dma_fence *head = NULL;

	for (seqno = 1; seqno <= CHAIN_LEN; seqno++) {
		head = chain_link(head, ctx, seqno);
		if (!head)
			return NULL;
	}
	return head;
}

/* Each lookup starts from a fresh reference to the head, as callers do. */
static int time_find_seqno(struct dma_fence *head, const uint64_t *seqnos,
			   double *ns)
{
	struct dma_fence *fence;
	unsigned int i;
	int64_t t0;
	int ret = 0;

	t0 = bench_now_ns();
	for (i = 0; i < CHAIN_LOOKUPS && !ret; i++) {
		fence = dma_fence_get(head);
		ret = dma_fence_chain_find_seqno(&fence, seqnos[i]);
		if (!ret && (!fence || fence->seqno != seqnos[i]))
			ret = -EPROTO;
		dma_fence_put(fence);
	}
	*ns = ns_since(t0, CHAIN_LOOKUPS);
	return ret;
}

static int measure_chain(double share)
{
	static double find[BENCH_MAX_BATCHES];
	uint64_t seqnos[CHAIN_LOOKUPS], rng = 0x9e3779b97f4a7c15ULL;
	struct dma_fence *head = chain_build();
	struct bench_slice slice;
	unsigned int n = 0, i;
	int ret = 0;

	if (!head)
		return -ENOMEM;
	bench_slice_init(&slice, share, 3, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		for (i = 0; i < CHAIN_LOOKUPS; i++)
			seqnos[i] = 1 + xorshift64(&rng) % CHAIN_LEN;
		ret = time_find_seqno(head, seqnos, &find[n]);
		if (!ret)
			n++;
	}
	dma_fence_put(head);
	hetmem_rcu_barrier();
	if (ret)
		return ret;
	bench_print("chain.find_seqno_4096_ns", bench_median(find, n));
	return 0;
}

/*
 * Merging: unwrap.merge_64_ns.
 *
 * Two dma_fence_arrays of 32 unsignalled leaves each, on 64 distinct
 * contexts, are merged with dma_fence_unwrap_merge(a, b), as merging two
 * sync_files does. Per merge the time covers flattening both arrays,
 * testing 64 leaves, sorting and de-duplicating them, allocating the new
 * 64-member array, and dropping it again (its memory is freed after a
 * grace period by the RCU worker thread, outside the timed loop's thread).
 */

#define MERGE_HALF 32
#define MERGE_LOOPS 64

struct merge_bench {
	struct dma_fence *leaf[2 * MERGE_HALF];
	struct dma_fence *array[2];
};

/* An array owning new references to @leaves[0..MERGE_HALF). */
static struct dma_fence *merge_array(struct dma_fence **leaves)
{
	struct dma_fence **members = calloc(MERGE_HALF, sizeof(*members));
	struct dma_fence_array *array;
	unsigned int i;

	if (!members)
		return NULL;
	for (i = 0; i < MERGE_HALF; i++)
		members[i] = dma_fence_get(leaves[i]);
	array = dma_fence_array_create(MERGE_HALF, members,
				       dma_fence_context_alloc(1), 1, false);
	if (array)
		return &array->base;
	for (i = 0; i < MERGE_HALF; i++)
		dma_fence_put(members[i]);
	free(members);
	return NULL;
}

static void merge_teardown(struct merge_bench *mb)
{
	unsigned int i;

	dma_fence_put(mb->array[0]);
	dma_fence_put(mb->array[1]);
	for (i = 0; i < 2 * MERGE_HALF; i++)
		dma_fence_put(mb->leaf[i]);
	hetmem_rcu_barrier();
}

/* 64 unsignalled fences, one per context, split over two arrays. */
static int merge_setup(struct merge_bench *mb)
{
	uint64_t ctx = dma_fence_context_alloc(2 * MERGE_HALF);
	unsigned int i;

	memset(mb, 0, sizeof(*mb));
	for (i = 0; i < 2 * MERGE_HALF; i++) {
		mb->leaf[i] = heap_fence(ctx + i, 1);
		if (!mb->leaf[i])
			return -ENOMEM;
	}
	mb->array[0] = merge_array(&mb->leaf[0]);
	mb->array[1] = merge_array(&mb->leaf[MERGE_HALF]);
	return mb->array[0] && mb->array[1] ? 0 : -ENOMEM;
}

static bool merge_ok(struct dma_fence *merged)
{
	struct dma_fence_array *array = to_dma_fence_array(merged);

	return array && array->num_fences == 2 * MERGE_HALF;
}

static int time_merge(struct merge_bench *mb, double *ns)
{
	struct dma_fence *merged;
	unsigned int i;
	int64_t t0;
	int ret = 0;

	t0 = bench_now_ns();
	for (i = 0; i < MERGE_LOOPS && !ret; i++) {
		merged = dma_fence_unwrap_merge(mb->array[0], mb->array[1]);
		if (!merge_ok(merged))
			ret = merged ? -EPROTO : -ENOMEM;
		dma_fence_put(merged);
	}
	*ns = ns_since(t0, MERGE_LOOPS);
	return ret;
}

static int measure_merge(double share)
{
	static double merge[BENCH_MAX_BATCHES];
	struct merge_bench mb;
	struct bench_slice slice;
	unsigned int n = 0;
	int ret;

	ret = merge_setup(&mb);
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = time_merge(&mb, &merge[n]);
		if (!ret)
			n++;
	}
	merge_teardown(&mb);
	if (ret)
		return ret;
	bench_print("unwrap.merge_64_ns", bench_median(merge, n));
	return 0;
}

/* The suite. Shares of the -d budget add up to 1. */

static const struct bench_measure fence_measures[] = {
	{ "signal/wake", measure_wake, 0.30 },
	{ "is_signaled", measure_test, 0.05 },
	{ "callback", measure_callback, 0.10 },
	{ "sync_file cross-process", measure_xproc, 0.35 },
	{ "chain", measure_chain, 0.10 },
	{ "merge", measure_merge, 0.10 },
};

/**
 * hetmem_bench_fence() - the "fence" benchmark suite
 * @argc: argument count; argv[0] is the suite name
 * @argv: "fence" [-d SECONDS]
 *
 * Context: Process context; forks one helper process and starts threads.
 * Return: BENCH_EXIT_OK, BENCH_EXIT_FAIL if a measurement failed (the
 * others still run), or BENCH_EXIT_USAGE.
 */
int hetmem_bench_fence(int argc, char **argv)
{
	return bench_run_suite("fence", fence_measures,
			       sizeof(fence_measures) / sizeof(fence_measures[0]),
			       argc, argv);
}
