/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem demo
 *
 * A narrated end-to-end run of what hetmem offers today, also run as a CI
 * test. Three processes and a thread:
 *
 * - the producer (this process) owns two software timelines, "demo-gfx"
 *   and "demo-copy", standing for two engines of a device. It creates one
 *   job fence on each, exports both as sync_file descriptors and sends
 *   them to the consumer over a unix socket (SCM_RIGHTS);
 * - the device, a thread of the producer, "executes" the jobs and
 *   completes each by advancing its timeline;
 * - the consumer, a child process, inspects the fences (name, status,
 *   timestamps), merges them into one sync_file, waits on the first with
 *   sync_wait() and on the merge with poll(), and checks that the merge
 *   completed only when both jobs had;
 * - producer-2, a second child, exports a fence and is killed with
 *   SIGKILL before signalling it: the consumer's wait must end well
 *   within its timeout, with an error status, because a fence always
 *   signals;
 * - then a buffer from the system heap is shared with a fresh consumer,
 *   handing its implicit fences over as sync_files both ways (see the DOC
 *   block of demo-buf.c);
 * - last, a device mirrors the producer's address space (dmirror) and
 *   walks a linked list that the CPU built and then changes (see the DOC
 *   block of demo-mm.c).
 *
 * Every line names its actor and the time since the start. Every wait has
 * a timeout and every child is reaped; the exit status is 0 only if every
 * check passed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/libsync.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/fence/sync_file.h>
#include <hetmem/version.h>

#include "bench-util.h"
#include "hetmem.h"

#define DEMO_TIMEOUT_MS 2000	/* every wait of the demo */
#define JOB_MS 100		/* how long the device "works" on a job */
#define NR_JOBS 2
#define MAX_INFO 4

enum demo_msg_kind {
	MSG_JOB = 1,		/* + a sync_file fd; value: job index */
	MSG_WAITING,		/* consumer is about to wait */
	MSG_DOOMED,		/* + a sync_file fd from producer-2 */
	MSG_RESULT,		/* value: failed checks in the phase */
};

struct demo_msg {
	uint32_t kind;
	int32_t value;
};

static const char *const engine[NR_JOBS] = { "demo-gfx", "demo-copy" };

static int64_t demo_t0;
static int demo_failures;

/* Narration: "[actor]  +12.3 ms  text", one write() per line. */
static void __attribute__((format(printf, 2, 0)))
vsay(const char *actor, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "[%s] %+8.1f ms  ", actor,
		     (double)(bench_now_ns() - demo_t0) / 1e6);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDOUT_FILENO, line, n) < 0)
		demo_failures++;
}

static void __attribute__((format(printf, 2, 3)))
say(const char *actor, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(actor, fmt, ap);
	va_end(ap);
}

static bool __attribute__((format(printf, 3, 0)))
vcheck(const char *actor, bool ok, const char *fmt, va_list ap)
{
	char text[384];

	vsnprintf(text, sizeof(text), fmt, ap);
	say(actor, "%s: %s", ok ? "ok" : "UNEXPECTED", text);
	if (!ok)
		demo_failures++;
	return ok;
}

/* A check: narrated either way, counted when it fails. */
static bool __attribute__((format(printf, 3, 4)))
check(const char *actor, bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ok = vcheck(actor, ok, fmt, ap);
	va_end(ap);
	return ok;
}

/* Failed checks so far in this process, for demo-buf.c. */
int demo_failed(void)
{
	return demo_failures;
}

/* say() for demo-buf.c and demo-mm.c. */
void demo_say(const char *actor, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(actor, fmt, ap);
	va_end(ap);
}

/* check() for demo-buf.c and demo-mm.c; failures count towards the exit status. */
bool demo_check(const char *actor, bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ok = vcheck(actor, ok, fmt, ap);
	va_end(ap);
	return ok;
}

static double ms_since_start(uint64_t ns)
{
	return ns ? (double)((int64_t)ns - demo_t0) / 1e6 : 0;
}

static int send_msg(int sock, enum demo_msg_kind kind, int value, int fd)
{
	struct demo_msg msg = { .kind = kind, .value = value };

	return bench_send_fds(sock, &msg, sizeof(msg), &fd, fd >= 0 ? 1 : 0);
}

/* Receive a message of @kind, with a descriptor when @fd is not NULL. */
static int recv_msg(int sock, enum demo_msg_kind kind, int *value, int *fd)
{
	struct demo_msg msg;
	int ret;

	ret = bench_recv_fds(sock, &msg, sizeof(msg), fd, fd ? 1 : 0,
			     DEMO_TIMEOUT_MS + JOB_MS * NR_JOBS);
	if (ret)
		return ret;
	if (msg.kind != kind) {
		if (fd)
			close(*fd);
		return -EPROTO;
	}
	if (value)
		*value = msg.value;
	return 0;
}

static const char *status_name(int status)
{
	static char buf[64];

	if (status == 1)
		return "signalled";
	if (status == 0)
		return "active";
	snprintf(buf, sizeof(buf), "error %d (%s)", status, strerror(-status));
	return buf;
}

/* SYNC_IOC_FILE_INFO through hetmem: the file and up to MAX_INFO leaves. */
static int file_info(int fd, struct sync_file_info *info,
		     struct sync_fence_info *fences)
{
	int ret;

	memset(info, 0, sizeof(*info));
	ret = hetmem_sync_file_info(fd, info);
	if (ret || info->num_fences > MAX_INFO)
		return ret ? ret : -E2BIG;
	memset(fences, 0, sizeof(*fences) * MAX_INFO);
	info->sync_fence_info = (uintptr_t)fences;
	return hetmem_sync_file_info(fd, info);
}

static void describe(const char *actor, const char *what, int fd)
{
	struct sync_fence_info fences[MAX_INFO];
	struct sync_file_info info;
	unsigned int i;
	int ret;

	ret = file_info(fd, &info, fences);
	if (!check(actor, ret == 0, "%s: FILE_INFO on fd %d%s%s", what, fd,
		   ret ? ": " : "", ret ? strerror(-ret) : ""))
		return;
	say(actor, "%s \"%s\": %s, %u fence(s)", what, info.name,
	    status_name(info.status), info.num_fences);
	for (i = 0; i < info.num_fences; i++) {
		if (fences[i].status == 0) {
			say(actor, "    %s/%s: active", fences[i].driver_name,
			    fences[i].obj_name);
			continue;
		}
		say(actor, "    %s/%s: %s at %+.1f ms", fences[i].driver_name,
		    fences[i].obj_name, status_name(fences[i].status),
		    ms_since_start(fences[i].timestamp_ns));
	}
}

/* Latest signal time of the leaves of @fd, in ns; 0 if unknown. */
static uint64_t latest_timestamp(int fd)
{
	struct sync_fence_info fences[MAX_INFO];
	struct sync_file_info info;
	uint64_t t = 0;
	unsigned int i;

	if (file_info(fd, &info, fences))
		return 0;
	for (i = 0; i < info.num_fences; i++)
		if (fences[i].timestamp_ns > t)
			t = fences[i].timestamp_ns;
	return t;
}

/* The device: one thread completing one job per engine. */

struct device {
	struct sync_timeline *timeline[NR_JOBS];
	pthread_t thread;
};

static void *device_main(void *arg)
{
	struct timespec work = { 0, JOB_MS * 1000000L };
	struct device *dev = arg;
	unsigned int i;
	int ret;

	for (i = 0; i < NR_JOBS; i++) {
		say("device", "%s: running job 1", engine[i]);
		nanosleep(&work, NULL);
		ret = hetmem_sync_timeline_signal(dev->timeline[i], 1);
		check("device", ret == 0, "%s: job 1 done, timeline advanced to 1%s%s",
		      engine[i], ret ? ": " : "", ret ? strerror(-ret) : "");
	}
	return NULL;
}

/* Export a point at @value of @timeline as a sync_file descriptor. */
static int export_point(struct sync_timeline *timeline,
			unsigned int value)
{
	struct dma_fence *fence = hetmem_sync_pt_create(timeline, value);
	int fd;

	if (!fence)
		return -ENOMEM;
	fd = hetmem_sync_file_export(fence, 0);
	dma_fence_put(fence);
	return fd;
}

static int device_setup(struct device *dev)
{
	unsigned int i;

	for (i = 0; i < NR_JOBS; i++) {
		dev->timeline[i] = hetmem_sync_timeline_create(engine[i]);
		if (!dev->timeline[i])
			return -ENOMEM;
		say("producer", "created software timeline %s", engine[i]);
	}
	return 0;
}

static void device_teardown(struct device *dev)
{
	unsigned int i;

	for (i = 0; i < NR_JOBS; i++)
		if (dev->timeline[i])
			hetmem_sync_timeline_destroy(dev->timeline[i]);
}

/* Producer side of phase 1: export, hand over, run the device. */
static int producer_jobs(struct bench_peer *consumer, struct device *dev)
{
	unsigned int i;
	int fd, ret, failed = 0;

	for (i = 0; i < NR_JOBS; i++) {
		fd = export_point(dev->timeline[i], 1);
		if (!check("producer", fd >= 0, "job fence on %s exported as fd %d",
			   engine[i], fd))
			return fd;
		ret = send_msg(consumer->sock, MSG_JOB, i, fd);
		close(fd);
		if (ret)
			return ret;
		say("producer", "sent the %s job fence to the consumer", engine[i]);
	}
	ret = recv_msg(consumer->sock, MSG_WAITING, NULL, NULL);
	if (ret)
		return ret;
	ret = -pthread_create(&dev->thread, NULL, device_main, dev);
	if (ret)
		return ret;
	ret = recv_msg(consumer->sock, MSG_RESULT, &failed, NULL);
	pthread_join(dev->thread, NULL);
	demo_failures += failed;
	return ret;
}

static int phase_jobs(struct bench_peer *consumer)
{
	struct device dev;
	int ret;

	memset(&dev, 0, sizeof(dev));
	ret = device_setup(&dev);
	if (!ret)
		ret = producer_jobs(consumer, &dev);
	device_teardown(&dev);
	return ret;
}

/* Consumer side of phase 1. */

static int consumer_recv_jobs(int sock, int *fds)
{
	int job, ret;
	unsigned int i;

	for (i = 0; i < NR_JOBS; i++) {
		ret = recv_msg(sock, MSG_JOB, &job, &fds[i]);
		if (ret)
			return ret;
		say("consumer", "received the %s job fence as fd %d",
		    engine[job % NR_JOBS], fds[i]);
		describe("consumer", "job fence", fds[i]);
	}
	return 0;
}

static void consumer_wait_first(int fd)
{
	int64_t t0 = bench_now_ns();
	int ret = sync_wait(fd, DEMO_TIMEOUT_MS);

	check("consumer", ret == 0, "sync_wait(fd %d, %d ms) returned %d after %.1f ms",
	      fd, DEMO_TIMEOUT_MS, ret, (double)(bench_now_ns() - t0) / 1e6);
	describe("consumer", "job fence", fd);
}

static void consumer_wait_merged(int merged, int last_job)
{
	struct pollfd pfd = { .fd = merged, .events = POLLIN };
	uint64_t done, ready;
	int ret;

	ret = poll(&pfd, 1, DEMO_TIMEOUT_MS);
	ready = (uint64_t)bench_now_ns();
	check("consumer", ret == 1 && (pfd.revents & POLLIN),
	      "poll(merged fd %d) reported POLLIN", merged);
	describe("consumer", "merged fence", merged);
	done = latest_timestamp(last_job);
	check("consumer", done && ready >= done,
	      "the merge completed at %+.1f ms, after both jobs (last at %+.1f ms)",
	      ms_since_start(ready), ms_since_start(done));
}

static int consumer_jobs(int sock)
{
	int fds[NR_JOBS] = { -1, -1 }, merged = -1, ret;

	ret = consumer_recv_jobs(sock, fds);
	if (!ret) {
		merged = hetmem_sync_file_merge("gfx+copy", fds[0], fds[1], 0);
		check("consumer", merged >= 0, "merged both job fences into fd %d",
		      merged);
	}
	if (merged >= 0) {
		describe("consumer", "merged fence", merged);
		say("consumer", "waiting for the %s job, then for the merge",
		    engine[0]);
		ret = send_msg(sock, MSG_WAITING, 0, -1);
	}
	if (!ret && merged >= 0) {
		consumer_wait_first(fds[0]);
		consumer_wait_merged(merged, fds[1]);
	}
	bench_close_fds(fds, NR_JOBS);
	if (merged >= 0)
		close(merged);
	return ret;
}

/* Phase 2: a producer that dies before signalling. */

static int producer2_main(int sock, void *arg)
{
	struct sync_timeline *timeline;
	struct demo_msg msg;
	int fd, ret;

	alarm(10);	/* never outlive a confused parent */
	timeline = hetmem_sync_timeline_create("doomed");
	if (!timeline)
		return -ENOMEM;
	fd = export_point(timeline, 1);
	if (fd < 0)
		return fd;
	say("producer-2", "exported a job fence as fd %d; it will never signal it", fd);
	ret = send_msg(sock, MSG_DOOMED, 0, fd);
	/* Hang as a crashed or stuck producer would, until killed. */
	if (!ret && bench_wait_readable(sock, 10000) == 0)
		ret = recv(sock, &msg, sizeof(msg), 0) < 0 ? -errno : 0;
	close(fd);
	hetmem_sync_timeline_destroy(timeline);
	return ret;
}

static void consumer_wait_doomed(int fd)
{
	int64_t t0 = bench_now_ns();
	int ret, status = 0;
	double waited;

	ret = sync_wait(fd, DEMO_TIMEOUT_MS);
	waited = (double)(bench_now_ns() - t0) / 1e6;
	check("consumer", ret == 0 || errno != ETIME,
	      "the wait on producer-2's fence ended after %.1f ms (timeout %d ms)",
	      waited, DEMO_TIMEOUT_MS);
	ret = hetmem_sync_file_status(fd, &status);
	check("consumer", ret == 0 && status < 0,
	      "producer-2's fence is %s: its producer died",
	      ret ? strerror(-ret) : status_name(status));
}

static int consumer_doomed(int sock)
{
	int fd = -1, ret;

	ret = recv_msg(sock, MSG_DOOMED, NULL, &fd);
	if (ret)
		return ret;
	describe("consumer", "producer-2's fence", fd);
	say("consumer", "waiting on it with sync_wait(fd %d, %d ms)", fd,
	    DEMO_TIMEOUT_MS);
	ret = send_msg(sock, MSG_WAITING, 0, -1);
	if (!ret)
		consumer_wait_doomed(fd);
	close(fd);
	return ret;
}

static int consumer_main(int sock, void *arg)
{
	int ret;

	alarm(10);
	demo_failures = 0;
	ret = consumer_jobs(sock);
	if (!ret)
		ret = send_msg(sock, MSG_RESULT, demo_failures, -1);
	demo_failures = 0;
	if (!ret)
		ret = consumer_doomed(sock);
	if (!ret)
		ret = send_msg(sock, MSG_RESULT, demo_failures, -1);
	if (ret)
		say("consumer", "stopping: %s", strerror(-ret));
	return ret;
}

/* Producer-2's fence goes to the consumer; then producer-2 is killed. */
static int forward_and_kill(struct bench_peer *p2, struct bench_peer *consumer)
{
	struct timespec settle = { 0, 50 * 1000000L };
	int fd = -1, ret;

	ret = recv_msg(p2->sock, MSG_DOOMED, NULL, &fd);
	if (ret)
		return ret;
	ret = send_msg(consumer->sock, MSG_DOOMED, 0, fd);
	close(fd);
	say("producer", "forwarded producer-2's fence to the consumer");
	if (!ret)
		ret = recv_msg(consumer->sock, MSG_WAITING, NULL, NULL);
	if (ret)
		return ret;
	nanosleep(&settle, NULL);
	say("producer", "killing producer-2 (pid %d) with SIGKILL", (int)p2->pid);
	kill(p2->pid, SIGKILL);
	return 0;
}

static int phase_doomed(struct bench_peer *consumer)
{
	struct bench_peer p2;
	int ret, stop, failed = 0;

	ret = bench_peer_start(&p2, producer2_main, NULL);
	if (ret)
		return ret;
	say("producer", "started producer-2 (pid %d)", (int)p2.pid);
	ret = forward_and_kill(&p2, consumer);
	stop = bench_peer_stop(&p2, DEMO_TIMEOUT_MS);
	check("producer", stop == -EPIPE, "producer-2 reaped (%s)",
	      stop == -EPIPE ? "it did not exit normally" : "it exited on its own");
	if (!ret)
		ret = recv_msg(consumer->sock, MSG_RESULT, &failed, NULL);
	demo_failures += failed;
	return ret;
}

static int run_demo(void)
{
	struct bench_peer consumer;
	int ret, stop;

	/* Fork before any fence exists: the child inherits nothing. */
	ret = bench_peer_start(&consumer, consumer_main, NULL);
	if (ret)
		return ret;
	say("producer", "started the consumer (pid %d)", (int)consumer.pid);
	ret = phase_jobs(&consumer);
	if (!ret)
		ret = phase_doomed(&consumer);
	stop = bench_peer_stop(&consumer, DEMO_TIMEOUT_MS);
	check("producer", stop == 0, "consumer reaped (exit status %s)",
	      stop ? "non-zero" : "0");
	if (!ret)
		ret = demo_buf_phase();
	if (!ret)
		ret = demo_mm_phase();
	if (!ret)
		ret = demo_migrate_phase();
	return ret;
}

/**
 * cmd_demo() - "hetmem demo"
 * @argc: argument count, argv[0] is "demo"
 * @argv: no further arguments are accepted
 *
 * Context: Process context; forks two children and starts a thread.
 * Return: HETMEM_EXIT_OK if every check passed, HETMEM_EXIT_FAIL
 * otherwise, HETMEM_EXIT_USAGE for extra arguments.
 */
int cmd_demo(int argc, char **argv)
{
	int ret;

	if (argc > 1) {
		fprintf(stderr, "hetmem demo: unexpected argument '%s'\n",
			argv[1]);
		tool_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	demo_t0 = bench_now_ns();
	say("demo", "hetmem %s: a producer with a device thread, a consumer "
	    "process, fences passed as sync_file descriptors",
	    HETMEM_VERSION_STRING);
	ret = run_demo();
	if (ret)
		fprintf(stderr, "hetmem demo: stopped early: %s\n", strerror(-ret));
	if (ret || demo_failures) {
		say("demo", "FAILED: %d unexpected result(s)", demo_failures + !!ret);
		return HETMEM_EXIT_FAIL;
	}
	say("demo", "every step behaved as expected");
	return HETMEM_EXIT_OK;
}
