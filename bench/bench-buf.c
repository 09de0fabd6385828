/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem bench buf
 *
 * Measures one cross-process buffer hand-off through hetmem against the
 * same hand-off built from raw system calls, in the same run, and prints
 * (times in us per hand-off):
 *
 * - buf.size_bytes: the size of every buffer handed off (64 KiB).
 * - buf.xproc_handoff_us: the producer allocates a buffer from the
 *   "system" heap (hetmem_dma_heap_alloc(), a sealed memfd), exports a
 *   fresh "write done" fence as a sync_file, sends the buffer
 *   (hetmem_buf_send()) and the fence (hetmem_fence_send()) over a unix
 *   socket, maps the buffer (hetmem_buf_map()), writes its first bytes
 *   and signals the fence. The consumer receives and validates the buffer
 *   (hetmem_buf_recv()), maps it read-only (hetmem_buf_map()), receives
 *   the fence (hetmem_fence_recv()), waits for it (sync_wait()), reads
 *   and checks the bytes, unmaps and closes the buffer, then exports its
 *   own "read done" fence, sends it and signals it. The hand-off is timed
 *   in the producer from the allocation to sync_wait() returning on the
 *   consumer's fence.
 * - memfd.xproc_handoff_us: the raw equivalent: memfd_create(),
 *   ftruncate(), mmap() and write the first bytes, sendmsg() of the
 *   descriptor with SCM_RIGHTS and the size; the consumer recvmsg()s it,
 *   mmap()s it read-only, reads and checks the bytes, unmaps and closes,
 *   and sends a one-byte message back on the socket as its "read done"
 *   fence; timed until the producer has received that byte. No seals, no
 *   validation, no fences.
 * - ratio.buf_handoff_vs_raw: the median of per-pair ratios of the two
 *   (ratio.buf_handoff_vs_raw_of_medians: the ratio of the two medians;
 *   buf.xproc_handoff_pairs: the number of pairs). No goal.
 *
 * In both kinds the producer's own clean-up (unmapping and closing its
 * buffer, closing and dropping its fences) follows the timed interval;
 * the consumer's clean-up precedes its "read done" signal, so it is
 * inside. Both run on one SOCK_SEQPACKET socket between a pair of
 * processes that lives for a whole placement; a batch is HO_ROUNDS
 * hand-offs of one kind, batches of the two kinds alternate (which kind
 * goes first alternates too) and a batch's value is its mean.
 *
 * Placement is explicit, as in "hetmem bench fence": the headline keys
 * have both processes pinned to the first allowed CPU (the consumer
 * inherits the affinity at fork), the same keys with _cross_cpu have them
 * on the first two. Every wait has a timeout (BENCH_TIMEOUT_MS); a peer
 * that dies or stops answering fails the measurement, and the consumer
 * process is always reaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hetmem/buf/dma-heap.h>
#include <hetmem/buf/transfer.h>
#include <hetmem/core/rcu.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sync_file.h>

#include "bench.h"
#include "bench-util.h"

#define HO_SIZE (64u * 1024u)
#define HO_ROUNDS 8
#define HO_STAMP 64	/* bytes written by the producer, read back */

enum ho_mode {
	HO_BUF = 1,
	HO_RAW = 2,
};

/* Batch start and end (status) messages on the control socket. */
struct ho_msg {
	uint32_t mode;
	uint32_t rounds;
	int32_t status;
};

/* What the raw producer sends with its memfd. */
struct ho_raw_rec {
	uint64_t size;
};

static const char *ho_fence_name(struct dma_fence *fence)
{
	return "hetmem-bench-buf";
}

static const struct dma_fence_ops ho_fence_ops = {
	.get_driver_name = ho_fence_name,
	.get_timeline_name = ho_fence_name,
};

static hetmem_spinlock_t ho_lock = HETMEM_SPINLOCK_INIT(bench_buf_lock);

/* A calloc()ed fence, freed by the default release. */
static struct dma_fence *ho_fence(uint64_t context, uint64_t seqno)
{
	struct dma_fence *fence = calloc(1, sizeof(*fence));

	if (fence)
		dma_fence_init(fence, &ho_fence_ops, &ho_lock, context, seqno);
	return fence;
}

/* Signal (cancelled if need be) and drop a fence we own. */
static void ho_fence_done(struct dma_fence *fence)
{
	if (!fence)
		return;
	if (!dma_fence_test_signaled_flag(fence)) {
		dma_fence_set_error(fence, -ECANCELED);
		dma_fence_signal(fence);
	}
	dma_fence_put(fence);
}

static void ho_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void ho_unmap(void **addr)
{
	if (*addr)
		munmap(*addr, HO_SIZE);
	*addr = NULL;
}

static void stamp_write(unsigned char *p, unsigned int tag)
{
	memset(p, (unsigned char)tag, HO_STAMP);
}

static int stamp_check(const volatile unsigned char *p, unsigned int tag)
{
	unsigned int i;

	for (i = 0; i < HO_STAMP; i++)
		if (p[i] != (unsigned char)tag)
			return -EPROTO;
	return 0;
}

/* sync_wait() with the bench timeout, as a negative errno. */
static int ho_sync_wait(int fd)
{
	if (sync_wait(fd, BENCH_TIMEOUT_MS) == 0)
		return 0;
	return errno == ETIME || errno == ETIMEDOUT ? -ETIMEDOUT :
	       errno ? -errno : -EIO;
}

/* Consumer side of one hetmem hand-off. */
static int ho_buf_consume(int sock, unsigned int tag, uint64_t ctx)
{
	const struct hetmem_buf_limits limits = {
		.max_size = HO_SIZE, .flags = HETMEM_BUF_RDONLY,
	};
	struct hetmem_buf_desc desc;
	struct dma_fence *done = NULL;
	void *addr = NULL;
	int buf = -1, wsf = -1, rsf = -1;
	int ret;

	ret = hetmem_buf_recv(sock, &buf, &desc, &limits, BENCH_TIMEOUT_MS);
	if (!ret)
		ret = hetmem_buf_map(buf, desc.size, PROT_READ, &addr);
	if (!ret)
		ret = hetmem_fence_recv(sock, &wsf, BENCH_TIMEOUT_MS);
	if (!ret)
		ret = ho_sync_wait(wsf);
	if (!ret)
		ret = stamp_check(addr, tag);
	if (addr)
		munmap(addr, desc.size);
	ho_close(&buf);
	ho_close(&wsf);
	if (!ret) {
		done = ho_fence(ctx, tag);
		ret = done ? 0 : -ENOMEM;
	}
	if (!ret) {
		rsf = hetmem_sync_file_export(done, 0);
		ret = rsf < 0 ? rsf : 0;
	}
	if (!ret)
		ret = hetmem_fence_send(sock, rsf, BENCH_TIMEOUT_MS);
	if (!ret)
		dma_fence_signal(done);
	ho_close(&rsf);
	ho_fence_done(done);
	return ret;
}

/* Consumer side of one raw hand-off. */
static int ho_raw_consume(int sock, unsigned int tag)
{
	struct ho_raw_rec rec;
	void *addr = MAP_FAILED;
	int fd = -1, ret;

	ret = bench_recv_fds(sock, &rec, sizeof(rec), &fd, 1,
			     BENCH_TIMEOUT_MS);
	if (!ret) {
		addr = mmap(NULL, rec.size, PROT_READ, MAP_SHARED, fd, 0);
		ret = addr == MAP_FAILED ? -errno : 0;
	}
	if (!ret)
		ret = stamp_check(addr, tag);
	if (addr != MAP_FAILED)
		munmap(addr, rec.size);
	if (fd >= 0)
		close(fd);
	if (!ret)
		ret = bench_send_fds(sock, "", 1, NULL, 0);
	return ret;
}

static int ho_send_msg(int sock, uint32_t mode, uint32_t rounds, int status)
{
	struct ho_msg msg = { .mode = mode, .rounds = rounds, .status = status };

	return bench_send_fds(sock, &msg, sizeof(msg), NULL, 0);
}

/* The consumer: serve batches until the producer closes the socket. */
static int ho_consumer(int sock, void *arg)
{
	uint64_t ctx = dma_fence_context_alloc(1);
	unsigned int tag = 0, i;
	struct ho_msg msg;
	int ret;

	for (;;) {
		ret = bench_recv_fds(sock, &msg, sizeof(msg), NULL, 0,
				     BENCH_TIMEOUT_MS);
		if (ret == -EPIPE)
			return 0;	/* the producer is done */
		if (ret)
			break;
		if ((msg.mode != HO_BUF && msg.mode != HO_RAW) ||
		    msg.rounds != HO_ROUNDS) {
			ret = -EPROTO;
			break;
		}
		for (i = 0; i < msg.rounds && !ret; i++) {
			tag++;
			if (msg.mode == HO_BUF)
				ret = ho_buf_consume(sock, tag, ctx);
			else
				ret = ho_raw_consume(sock, tag);
		}
		if (ho_send_msg(sock, msg.mode, msg.rounds, ret) || ret)
			break;
	}
	fprintf(stderr, "hetmem bench buf: consumer: %s\n", strerror(-ret));
	return -1;
}

static double us_between(int64_t t0, int64_t t1)
{
	return (double)(t1 - t0) / 1e3;
}

/* Producer side of one hetmem hand-off; *@us is the timed part. */
static int ho_buf_produce(int sock, unsigned int tag, uint64_t ctx,
			  double *us)
{
	struct dma_heap_allocation_data data = {
		.len = HO_SIZE, .fd_flags = O_RDWR | O_CLOEXEC,
	};
	const struct hetmem_buf_desc desc = { .size = HO_SIZE };
	struct dma_fence *written = NULL;
	void *addr = NULL;
	int buf = -1, wsf = -1, rsf = -1;
	int64_t t0;
	int ret;

	t0 = bench_now_ns();
	ret = hetmem_dma_heap_alloc("system", &data);
	if (!ret) {
		buf = (int)data.fd;
		written = ho_fence(ctx, tag);
		ret = written ? 0 : -ENOMEM;
	}
	if (!ret) {
		wsf = hetmem_sync_file_export(written, 0);
		ret = wsf < 0 ? wsf : 0;
	}
	if (!ret)
		ret = hetmem_buf_send(sock, buf, &desc, BENCH_TIMEOUT_MS);
	if (!ret)
		ret = hetmem_fence_send(sock, wsf, BENCH_TIMEOUT_MS);
	if (!ret)
		ret = hetmem_buf_map(buf, HO_SIZE, PROT_READ | PROT_WRITE,
				     &addr);
	if (!ret) {
		stamp_write(addr, tag);
		dma_fence_signal(written);
		ret = hetmem_fence_recv(sock, &rsf, BENCH_TIMEOUT_MS);
	}
	if (!ret)
		ret = ho_sync_wait(rsf);
	*us = us_between(t0, bench_now_ns());
	ho_unmap(&addr);
	ho_close(&buf);
	ho_close(&wsf);
	ho_close(&rsf);
	ho_fence_done(written);
	return ret;
}

/* Producer side of one raw hand-off; *@us is the timed part. */
static int ho_raw_produce(int sock, unsigned int tag, double *us)
{
	const struct ho_raw_rec rec = { .size = HO_SIZE };
	void *addr = MAP_FAILED;
	char byte;
	int fd, ret = 0;
	int64_t t0;

	t0 = bench_now_ns();
	fd = memfd_create("hetmem-bench", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, HO_SIZE) < 0)
		ret = -errno;
	if (!ret) {
		addr = mmap(NULL, HO_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			    fd, 0);
		ret = addr == MAP_FAILED ? -errno : 0;
	}
	if (!ret) {
		stamp_write(addr, tag);
		ret = bench_send_fds(sock, &rec, sizeof(rec), &fd, 1);
	}
	if (!ret)
		ret = bench_recv_fds(sock, &byte, 1, NULL, 0,
				     BENCH_TIMEOUT_MS);
	*us = us_between(t0, bench_now_ns());
	if (addr != MAP_FAILED)
		munmap(addr, HO_SIZE);
	close(fd);
	return ret;
}

/* One batch of @mode; *@us is the mean timed hand-off. */
static int ho_batch(int sock, enum ho_mode mode, unsigned int *tag,
		    uint64_t ctx, double *us)
{
	double sum = 0, one = 0;
	struct ho_msg msg;
	unsigned int i;
	int ret;

	ret = ho_send_msg(sock, mode, HO_ROUNDS, 0);
	for (i = 0; i < HO_ROUNDS && !ret; i++) {
		++*tag;
		if (mode == HO_BUF)
			ret = ho_buf_produce(sock, *tag, ctx, &one);
		else
			ret = ho_raw_produce(sock, *tag, &one);
		sum += one;
	}
	if (ret)
		return ret;
	ret = bench_recv_fds(sock, &msg, sizeof(msg), NULL, 0,
			     BENCH_TIMEOUT_MS);
	if (!ret && (msg.mode != mode || msg.rounds != HO_ROUNDS))
		ret = -EPROTO;
	if (!ret)
		ret = msg.status;
	*us = sum / HO_ROUNDS;
	return ret;
}

static const struct bench_pair_keys handoff_keys = {
	"buf.xproc_handoff", "memfd.xproc_handoff", "us",
	"ratio.buf_handoff_vs_raw",
};

static int ho_run(struct bench_peer *peer, double share, const char *suffix)
{
	static double buf_us[BENCH_MAX_BATCHES], raw_us[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	uint64_t ctx = dma_fence_context_alloc(1);
	struct bench_slice slice;
	unsigned int n = 0, tag = 0;
	int ret = 0;

	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		if (n & 1) {
			ret = ho_batch(peer->sock, HO_RAW, &tag, ctx, &raw_us[n]);
			if (!ret)
				ret = ho_batch(peer->sock, HO_BUF, &tag, ctx,
					       &buf_us[n]);
		} else {
			ret = ho_batch(peer->sock, HO_BUF, &tag, ctx, &buf_us[n]);
			if (!ret)
				ret = ho_batch(peer->sock, HO_RAW, &tag, ctx,
					       &raw_us[n]);
		}
		if (!ret) {
			ratio[n] = buf_us[n] / raw_us[n];
			n++;
		}
	}
	if (ret)
		return ret;
	bench_print_paired(&handoff_keys, suffix, buf_us, raw_us, ratio, n);
	return 0;
}

/* The consumer inherits the CPU it is forked on; then we move to @cpu_a. */
static int measure_handoff_on(double share, int cpu_a, int cpu_b,
			      const char *suffix)
{
	struct bench_peer peer;
	int ret, stop;

	bench_pin_self(cpu_b);
	ret = bench_peer_start(&peer, ho_consumer, NULL);
	bench_pin_self(cpu_a);
	if (ret)
		goto out_unpin;
	ret = ho_run(&peer, share, suffix);
	stop = bench_peer_stop(&peer, BENCH_TIMEOUT_MS);
	hetmem_rcu_barrier();
	if (!ret && stop)
		fprintf(stderr, "hetmem bench buf: consumer process failed\n");
	ret = ret ? ret : stop;
out_unpin:
	bench_unpin_self();
	return ret;
}

static int measure_handoff(double share)
{
	int ret;

	bench_print_int("buf.size_bytes", HO_SIZE);
	ret = measure_handoff_on(share / 2, 0, 0, "");
	if (ret || bench_ncpus() < 2)
		return ret;
	return measure_handoff_on(share / 2, 0, 1, "_cross_cpu");
}

/**
 * hetmem_bench_buf() - the "buf" benchmark suite
 * @argc: argument count; argv[0] is the suite name
 * @argv: "buf" [-d SECONDS]
 *
 * Context: Process context; forks one helper process per placement.
 * Return: BENCH_EXIT_OK, BENCH_EXIT_FAIL if a measurement failed, or
 * BENCH_EXIT_USAGE.
 */
int hetmem_bench_buf(int argc, char **argv)
{
	static const struct bench_measure buf_measures[] = {
		{ "cross-process hand-off", measure_handoff, 1.0 },
	};

	return bench_run_suite("buf", buf_measures, 1, argc, argv);
}
