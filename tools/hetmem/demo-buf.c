/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem demo, shared buffer phase
 *
 * The last phase of "hetmem demo": a frame buffer shared between two
 * processes, with implicit synchronisation inside each process and
 * explicit synchronisation (sync_file descriptors) between them.
 *
 * - the producer allocates 64 KiB from the "system" heap
 *   (hetmem_dma_heap_alloc()) and wraps the heap's memfd as a dma-buf
 *   with dma_buf_get() (an imported object, exporter "hetmem-import"),
 *   names it and attaches its device;
 * - its device thread renders a frame into the buffer while a WRITE fence
 *   sits in the buffer's reservation object (implicit sync);
 * - the producer exports the buffer's implicit fences with
 *   dma_buf_export_sync_file(DMA_BUF_SYNC_READ) (wait for the writers)
 *   and sends the buffer (hetmem_buf_send()) and the fence
 *   (hetmem_fence_send()) to a fresh consumer process;
 * - the consumer validates the buffer on receipt, waits on the fence with
 *   sync_wait(), maps the buffer and checks the frame, then sends back a
 *   READ fence of its own ("display scan-out") that it signals only when
 *   told the producer is about to write;
 * - the producer imports that fence (dma_buf_import_sync_file() with
 *   DMA_BUF_SYNC_READ), prints the buffer listing as "hetmem stat" does,
 *   and shows that dma_buf_begin_cpu_access(DMA_TO_DEVICE) waits for the
 *   consumer's read.
 *
 * Every wait has a timeout, every child is reaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <hetmem/buf/dma-buf.h>
#include <hetmem/buf/dma-heap.h>
#include <hetmem/buf/transfer.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>
#include <hetmem/resv/dma-resv.h>

#include "bench-util.h"
#include "hetmem.h"

#define BUF_TIMEOUT_MS 2000	/* every wait of this phase */
#define BUF_SIZE (64 * 1024)
#define RENDER_MS 100		/* the device writes the frame */
#define SCANOUT_MS 100		/* the consumer reads it */

enum buf_msg_kind {
	BUF_MSG_WRITING = 1,	/* producer is about to write again */
	BUF_MSG_RESULT,		/* value: failed checks in the consumer */
};

struct buf_msg {
	uint32_t kind;
	int32_t value;
};

static struct hetmem_device buf_gpu = { .name = "demo-gfx" };

static int buf_send(int sock, enum buf_msg_kind kind, int value)
{
	struct buf_msg msg = { .kind = kind, .value = value };

	return bench_send_fds(sock, &msg, sizeof(msg), NULL, 0);
}

static int buf_recv(int sock, enum buf_msg_kind kind, int *value)
{
	struct buf_msg msg;
	int ret;

	ret = bench_recv_fds(sock, &msg, sizeof(msg), NULL, 0,
			     BUF_TIMEOUT_MS + RENDER_MS + SCANOUT_MS);
	if (ret)
		return ret;
	if (msg.kind != kind)
		return -EPROTO;
	if (value)
		*value = msg.value;
	return 0;
}

static uint8_t frame_byte(size_t i)
{
	return (uint8_t)(i * 31 + 7);
}

static double ms_since(int64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e6;
}

static void nap_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* A new fence at @seqno of @tl, added to @b's resv with @usage. */
static int add_implicit_fence(struct dma_buf *b, struct sync_timeline *tl,
			      unsigned int seqno, enum dma_resv_usage usage)
{
	struct dma_fence *fence = hetmem_sync_pt_create(tl, seqno);
	int ret;

	if (!fence)
		return -ENOMEM;
	ret = dma_resv_lock(b->resv, NULL);
	if (!ret) {
		ret = dma_resv_reserve_fences(b->resv, 1);
		if (!ret)
			dma_resv_add_fence(b->resv, fence, usage);
		dma_resv_unlock(b->resv);
	}
	dma_fence_put(fence);
	return ret;
}

/* Consumer. */

static int consumer_recv(int sock, int *buf_fd, int *fence_fd)
{
	struct hetmem_buf_limits limits = { .max_size = BUF_SIZE };
	struct hetmem_buf_desc desc;
	int ret;

	ret = hetmem_buf_recv(sock, buf_fd, &desc, &limits, BUF_TIMEOUT_MS);
	if (!demo_check("consumer", ret == 0, "received and validated the buffer (fd %d, %llu bytes)%s%s",
			*buf_fd, (unsigned long long)desc.size,
			ret ? ": " : "", ret ? strerror(-ret) : ""))
		return ret;
	ret = hetmem_fence_recv(sock, fence_fd, BUF_TIMEOUT_MS);
	demo_check("consumer", ret == 0, "received the writers' fence as fd %d%s%s",
		   *fence_fd, ret ? ": " : "", ret ? strerror(-ret) : "");
	return ret;
}

static void consumer_wait_writers(int fence_fd)
{
	int64_t t0 = bench_now_ns();
	int ret, status = 0;

	demo_say("consumer", "waiting for the producer's writers with sync_wait(fd %d, %d ms)",
		 fence_fd, BUF_TIMEOUT_MS);
	ret = sync_wait(fence_fd, BUF_TIMEOUT_MS);
	demo_check("consumer", ret == 0, "sync_wait returned %d after %.1f ms",
		   ret, ms_since(t0));
	ret = hetmem_sync_file_status(fence_fd, &status);
	demo_check("consumer", ret == 0 && status == 1,
		   "the writers' fence signalled without error (status %d)", status);
}

static void consumer_check_frame(struct dma_buf *b)
{
	const uint8_t *p;
	void *addr = NULL;
	size_t i, bad = 0;
	int ret;

	ret = hetmem_dma_buf_mmap(b, &addr, b->size, PROT_READ, 0);
	if (!demo_check("consumer", ret == 0, "mapped the buffer read-only%s%s",
			ret ? ": " : "", ret ? strerror(-ret) : ""))
		return;
	p = addr;
	for (i = 0; i < b->size; i++)
		bad += p[i] != frame_byte(i);
	demo_check("consumer", bad == 0, "the frame is complete: %zu of %zu bytes as rendered",
		   b->size - bad, b->size);
	munmap(addr, b->size);
}

/* Export a READ fence of the display, to be signalled after scan-out. */
static int consumer_send_read_fence(int sock, struct sync_timeline *tl)
{
	struct dma_fence *fence = hetmem_sync_pt_create(tl, 1);
	int fd, ret;

	if (!fence)
		return -ENOMEM;
	fd = hetmem_sync_file_export(fence, 0);
	dma_fence_put(fence);
	if (!demo_check("consumer", fd >= 0, "display scan-out fence exported as fd %d", fd))
		return fd;
	ret = hetmem_fence_send(sock, fd, BUF_TIMEOUT_MS);
	close(fd);
	if (!ret)
		demo_say("consumer", "sent it back: the display reads the frame until it signals");
	return ret;
}

static int consumer_scanout(int sock, struct sync_timeline *tl)
{
	int ret = consumer_send_read_fence(sock, tl);

	if (!ret)
		ret = buf_recv(sock, BUF_MSG_WRITING, NULL);
	if (ret)
		return ret;
	demo_say("consumer", "the producer wants to write; scanning out for %d ms more",
		 SCANOUT_MS);
	nap_ms(SCANOUT_MS);
	ret = hetmem_sync_timeline_signal(tl, 1);
	demo_check("consumer", ret == 0, "scan-out done, display fence signalled");
	return 0;
}

static int consumer_run(int sock, int buf_fd, int fence_fd)
{
	struct sync_timeline *tl;
	struct dma_buf *b;
	int ret;

	consumer_wait_writers(fence_fd);
	b = dma_buf_get(buf_fd);
	if (!demo_check("consumer", !hetmem_dma_buf_is_err(b),
			"dma_buf_get(fd %d) gave an imported dma-buf", buf_fd))
		return hetmem_dma_buf_ptr_err(b);
	consumer_check_frame(b);
	tl = hetmem_sync_timeline_create("demo-display");
	ret = tl ? consumer_scanout(sock, tl) : -ENOMEM;
	if (tl)
		hetmem_sync_timeline_destroy(tl);
	dma_buf_put(b);
	return ret;
}

static int consumer_main(int sock, void *arg)
{
	int buf_fd = -1, fence_fd = -1, before = demo_failed(), ret;

	(void)arg;
	alarm(10);	/* never outlive a confused parent */
	ret = consumer_recv(sock, &buf_fd, &fence_fd);
	if (!ret)
		ret = consumer_run(sock, buf_fd, fence_fd);
	if (buf_fd >= 0)
		close(buf_fd);
	if (fence_fd >= 0)
		close(fence_fd);
	if (!ret)
		ret = buf_send(sock, BUF_MSG_RESULT, demo_failed() - before);
	if (ret)
		demo_say("consumer", "stopping: %s", strerror(-ret));
	return ret;
}

/* Producer. */

struct producer {
	struct bench_peer consumer;
	struct dma_buf *buf;
	struct dma_buf_attachment *att;
	struct sync_timeline *gfx;
	pthread_t device;
	bool device_started;
	void *map;
	int heap_fd;
};

/* The device thread: render the frame, then signal the WRITE fence. */
static void *device_render(void *arg)
{
	struct producer *p = arg;
	uint8_t *px = p->map;
	size_t i;
	int ret;

	demo_say("device", "demo-gfx: rendering a frame into the buffer");
	for (i = 0; i < p->buf->size; i++)
		px[i] = frame_byte(i);
	nap_ms(RENDER_MS);
	ret = hetmem_sync_timeline_signal(p->gfx, 1);
	demo_check("device", ret == 0, "demo-gfx: frame done, write fence signalled");
	return NULL;
}

static int producer_alloc(struct producer *p)
{
	struct dma_heap_allocation_data data = {
		.len = BUF_SIZE, .fd_flags = O_RDWR | O_CLOEXEC,
	};
	int ret;

	ret = hetmem_dma_heap_alloc("system", &data);
	if (!demo_check("producer", ret == 0, "allocated %d KiB from the system heap as fd %d%s%s",
			BUF_SIZE / 1024, ret ? -1 : (int)data.fd,
			ret ? ": " : "", ret ? strerror(-ret) : ""))
		return ret;
	p->heap_fd = (int)data.fd;
	p->buf = dma_buf_get(p->heap_fd);
	if (!demo_check("producer", !hetmem_dma_buf_is_err(p->buf),
			"wrapped it as a dma-buf with dma_buf_get()")) {
		ret = hetmem_dma_buf_ptr_err(p->buf);
		p->buf = NULL;
		return ret;
	}
	dma_buf_set_name(p->buf, "demo-frame");
	p->att = dma_buf_attach(p->buf, &buf_gpu);
	if (hetmem_dma_buf_is_err(p->att)) {
		ret = hetmem_dma_buf_ptr_err(p->att);
		p->att = NULL;
		return ret;
	}
	return hetmem_dma_buf_mmap(p->buf, &p->map, p->buf->size,
				   PROT_READ | PROT_WRITE, 0);
}

/* WRITE fence in, device started, writers' fence exported (or -errno). */
static int producer_render(struct producer *p)
{
	int fd, ret, status = -1;

	p->gfx = hetmem_sync_timeline_create("demo-gfx");
	if (!p->gfx)
		return -ENOMEM;
	ret = add_implicit_fence(p->buf, p->gfx, 1, DMA_RESV_USAGE_WRITE);
	if (!demo_check("producer", ret == 0,
			"demo-gfx job queued: WRITE fence in the buffer's resv"))
		return ret;
	fd = dma_buf_export_sync_file(p->buf, DMA_BUF_SYNC_READ);
	if (!demo_check("producer", fd >= 0,
			"exported the writers' fences (DMA_BUF_SYNC_READ) as fd %d", fd))
		return fd;
	hetmem_sync_file_status(fd, &status);
	demo_check("producer", status == 0, "the exported fence is active: the frame is not rendered yet");
	ret = -pthread_create(&p->device, NULL, device_render, p);
	p->device_started = ret == 0;
	if (!ret)
		demo_check("producer", hetmem_dma_buf_poll(p->buf, POLLIN, 0) == 0,
			   "hetmem_dma_buf_poll: not readable while the device writes");
	return ret ? (close(fd), ret) : fd;
}

static int producer_send(struct producer *p, int fence_fd)
{
	struct hetmem_buf_desc desc = { .size = p->buf->size };
	int sock = p->consumer.sock;
	int ret;

	ret = hetmem_buf_send(sock, p->heap_fd, &desc, BUF_TIMEOUT_MS);
	if (!ret)
		ret = hetmem_fence_send(sock, fence_fd, BUF_TIMEOUT_MS);
	if (!ret)
		demo_say("producer", "sent the buffer and the writers' fence to the consumer");
	return ret;
}

static void producer_listing(void)
{
	demo_say("producer", "the buffer as \"hetmem stat\" lists it:");
	stat_print_process(stdout);
	fflush(stdout);
}

/* Import the consumer's READ fence; a CPU write must now wait for it. */
static int producer_import(struct producer *p, int *read_fd)
{
	int ret;

	ret = hetmem_fence_recv(p->consumer.sock, read_fd, BUF_TIMEOUT_MS);
	if (!demo_check("producer", ret == 0, "received the consumer's display fence as fd %d", *read_fd))
		return ret;
	ret = dma_buf_import_sync_file(p->buf, DMA_BUF_SYNC_READ, *read_fd);
	if (!demo_check("producer", ret == 0, "imported it into the buffer (DMA_BUF_SYNC_READ)"))
		return ret;
	demo_check("producer", hetmem_dma_buf_poll(p->buf, POLLIN | POLLOUT, 0) == POLLIN,
		   "hetmem_dma_buf_poll: readable, but not writable while the display reads");
	producer_listing();
	return 0;
}

static int producer_cpu_write(struct producer *p, int read_fd)
{
	int64_t t0;
	int ret, status = 0;

	ret = buf_send(p->consumer.sock, BUF_MSG_WRITING, 0);
	if (ret)
		return ret;
	demo_say("producer", "dma_buf_begin_cpu_access(DMA_TO_DEVICE): waits for the display");
	t0 = bench_now_ns();
	ret = dma_buf_begin_cpu_access(p->buf, DMA_TO_DEVICE);
	hetmem_sync_file_status(read_fd, &status);
	demo_check("producer", ret == 0 && status == 1,
		   "CPU write access granted after %.1f ms, once the display fence signalled (status %d)",
		   ms_since(t0), status);
	if (ret)
		return ret;
	memset(p->map, 0, 64);
	return dma_buf_end_cpu_access(p->buf, DMA_TO_DEVICE);
}

static int producer_run(struct producer *p)
{
	int fence_fd, read_fd = -1, failed = 0, ret;

	ret = producer_alloc(p);
	if (ret)
		return ret;
	fence_fd = producer_render(p);
	if (fence_fd < 0)
		return fence_fd;
	ret = producer_send(p, fence_fd);
	close(fence_fd);
	if (!ret)
		ret = producer_import(p, &read_fd);
	if (!ret)
		ret = producer_cpu_write(p, read_fd);
	if (!ret)
		ret = buf_recv(p->consumer.sock, BUF_MSG_RESULT, &failed);
	if (read_fd >= 0)
		close(read_fd);
	demo_check("producer", failed == 0, "the consumer reported %d failed check(s)", failed);
	return ret;
}

static void producer_teardown(struct producer *p)
{
	if (p->device_started)
		pthread_join(p->device, NULL);
	if (p->gfx) {
		/* A job that never ran must not leave a waiter hanging. */
		if (!p->device_started)
			hetmem_sync_timeline_signal(p->gfx, 1);
		hetmem_sync_timeline_destroy(p->gfx);
	}
	if (p->map)
		munmap(p->map, p->buf->size);
	if (p->att)
		dma_buf_detach(p->buf, p->att);
	if (p->buf)
		dma_buf_put(p->buf);
	if (p->heap_fd >= 0)
		close(p->heap_fd);
}

/**
 * demo_buf_phase() - share a system-heap buffer with a consumer process
 *
 * Context: Process context; forks one child and starts a thread.
 * Return: 0 if the phase ran to the end (failed checks are counted by
 * demo_check()); a negative errno if it had to stop early.
 */
int demo_buf_phase(void)
{
	struct producer p;
	int ret, stop;

	memset(&p, 0, sizeof(p));
	p.heap_fd = -1;
	/* Fork before the buffer exists: the child inherits nothing of it. */
	ret = bench_peer_start(&p.consumer, consumer_main, NULL);
	if (ret)
		return ret;
	demo_say("producer", "started a consumer for the shared buffer (pid %d)",
		 (int)p.consumer.pid);
	ret = producer_run(&p);
	producer_teardown(&p);
	stop = bench_peer_stop(&p.consumer, BUF_TIMEOUT_MS);
	demo_check("producer", stop == 0, "consumer reaped (exit status %s)",
		   stop ? "non-zero" : "0");
	return ret;
}
