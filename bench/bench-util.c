/* SPDX-License-Identifier: MIT */
/**
 * DOC: Benchmark helpers
 *
 * Timing (CLOCK_MONOTONIC in ns), time slices that bound a run started
 * with "-d SECONDS", medians, "key: value" output, and a forked peer
 * process for two-process ping-pongs.
 *
 * Every suite measures a hetmem path and, in the same run, the raw
 * primitive beneath it. On a small shared machine (two vCPUs here, a
 * cross-CPU wake-up costing 15-25 us, bimodal) absolute numbers move from
 * run to run; the ratio of two measurements taken side by side does not,
 * which is why suites print ratios and state their goals as ratios.
 *
 * The peer helper never leaves a process behind: the child dies with its
 * parent (PR_SET_PDEATHSIG), every receive has a timeout, and
 * bench_peer_stop() reaps the child, killing it when it does not exit in
 * time. SIGPIPE is ignored so that a dead peer shows up as EPIPE.
 */
#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hetmem/core/lockdep.h>

#include "bench.h"
#include "bench-util.h"

const struct hetmem_bench_suite hetmem_bench_suites[] = {
	{ "fence", "dma-fence wake, test, callbacks, sync_file, chain, merge",
	  hetmem_bench_fence },
	{ "resv", "ww_mutex uncontended and contended locking, back-off rate",
	  hetmem_bench_resv },
	{ "buf", "cross-process buffer hand-off with fences vs raw memfd",
	  hetmem_bench_buf },
	{ "mm", "notifier invalidation, hmm_range_fault, dmirror vs raw uffd/pagemap",
	  hetmem_bench_mm },
	{ "migrate", "migrate_vma to device memory and back, CPU fault-back vs raw uffd",
	  hetmem_bench_migrate },
	{ NULL, NULL, NULL },
};

const struct hetmem_bench_suite *hetmem_bench_find(const char *name)
{
	const struct hetmem_bench_suite *s;

	for (s = hetmem_bench_suites; s->name; s++)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

#define BENCH_MAX_DURATION_S 3600.0

static int64_t bench_start_ns;
static int64_t bench_budget_ns;

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void bench_usage(FILE *out, const char *suite)
{
	fprintf(out,
		"usage: hetmem bench %s [-d SECONDS] [-m NAME]\n"
		"  -d, --duration SECONDS  rough bound of the run (default 1)\n"
		"  -m, --measure NAME      only the measurements whose name contains NAME\n"
		"  -h, --help              this text\n", suite);
}

static int parse_duration(const char *arg, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(arg, &end);
	if (errno || end == arg || *end || !(d > 0) ||
	    d > BENCH_MAX_DURATION_S)
		return -EINVAL;
	*out = d;
	return 0;
}

/*
 * Parse the options common to every suite; argv[0] is the suite name.
 * Return: 0 to run, 1 when help was printed, -EINVAL on a usage error
 * (reported on stderr).
 */
int bench_parse_opts(int argc, char **argv, struct bench_opts *opts)
{
	static const struct option longopts[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "measure", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opts->duration_s = 1.0;
	opts->only = NULL;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+d:m:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			opts->only = optarg;
			break;
		case 'd':
			if (parse_duration(optarg, &opts->duration_s) < 0) {
				fprintf(stderr, "hetmem bench %s: bad duration '%s' (want 0 < SECONDS <= %.0f)\n",
					argv[0], optarg, BENCH_MAX_DURATION_S);
				return -EINVAL;
			}
			break;
		case 'h':
			bench_usage(stdout, argv[0]);
			return 1;
		default:
			fprintf(stderr, "hetmem bench %s: unknown or incomplete option '%s'\n",
				argv[0], argv[optind - 1]);
			bench_usage(stderr, argv[0]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hetmem bench %s: unexpected argument '%s'\n",
			argv[0], argv[optind]);
		bench_usage(stderr, argv[0]);
		return -EINVAL;
	}
	return 0;
}

/*
 * Start a run: remember the budget and measure the library as it runs in
 * production, with the lock-dependency checker off, unless HETMEM_LOCKDEP
 * asks otherwise (its cost is then part of every number).
 */
void bench_begin(const struct bench_opts *opts)
{
	bench_start_ns = bench_now_ns();
	bench_budget_ns = (int64_t)(opts->duration_s * 1e9);
	if (!getenv("HETMEM_LOCKDEP"))
		hetmem_lockdep_set_enabled(false);
	bench_print_int("bench.cpus", sysconf(_SC_NPROCESSORS_ONLN));
	bench_print_int("bench.lockdep", hetmem_lockdep_enabled());
}

void bench_end(void)
{
	bench_print("bench.duration_s",
		    (double)(bench_now_ns() - bench_start_ns) / 1e9);
}

/* A slice is @share of the whole budget, starting now. */
void bench_slice_init(struct bench_slice *slice, double share,
		      unsigned int min, unsigned int max)
{
	slice->end_ns = bench_now_ns() + (int64_t)(share * bench_budget_ns);
	slice->done = 0;
	slice->min = min;
	slice->max = max < BENCH_MAX_BATCHES ? max : BENCH_MAX_BATCHES;
}

/* Account one more batch; true while the caller should run it. */
bool bench_slice_next(struct bench_slice *slice)
{
	if (slice->done >= slice->max)
		return false;
	if (slice->done >= slice->min && bench_now_ns() >= slice->end_ns)
		return false;
	slice->done++;
	return true;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of @n samples (sorted in place); 0 when there are none. */
double bench_median(double *samples, size_t n)
{
	if (!n)
		return 0;
	qsort(samples, n, sizeof(*samples), cmp_double);
	if (n & 1)
		return samples[n / 2];
	return (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

void bench_print(const char *key, double value)
{
	printf("%s: %.2f\n", key, value);
	fflush(stdout);
}

void bench_print_int(const char *key, long long value)
{
	printf("%s: %lld\n", key, value);
	fflush(stdout);
}

void bench_print_ratio(const char *key, double value)
{
	printf("%s: %.3f\n", key, value);
	fflush(stdout);
}

/* "goal.KEY: met" when @value <= @limit. */
void bench_print_goal(const char *key, double value, double limit)
{
	printf("goal.%s: %s\n", key, value <= limit ? "met" : "missed");
	fflush(stdout);
}

/*
 * "goal.KEY: met" when @value >= @min: for rates and ratios of rates,
 * where bigger is better.
 */
void bench_print_goal_min(const char *key, double value, double min)
{
	printf("goal.%s: %s\n", key, value >= min ? "met" : "missed");
	fflush(stdout);
}

static void peer_child(int sock, pid_t parent, bench_peer_fn fn, void *arg)
{
	int ret;

	/* Die with the parent; it may have died before prctl(). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(BENCH_EXIT_FAIL);
	ret = fn(sock, arg);
	/* _exit: the parent's atexit handlers and stdio are not ours. */
	_exit(ret ? BENCH_EXIT_FAIL : BENCH_EXIT_OK);
}

/*
 * Fork a peer running @fn(sock, @arg) on one end of a SOCK_SEQPACKET
 * socketpair; the other end is @peer->sock. @fn returns 0 on success.
 * Return: 0, or a negative errno.
 */
int bench_peer_start(struct bench_peer *peer, bench_peer_fn fn, void *arg)
{
	pid_t parent = getpid();
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(NULL);
	peer->pid = fork();
	if (peer->pid < 0) {
		int err = -errno;

		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (peer->pid == 0) {
		close(sv[0]);
		peer_child(sv[1], parent, fn, arg);
	}
	close(sv[1]);
	peer->sock = sv[0];
	return 0;
}

/* Wait up to @timeout_ms for @pid; kill it if it is still there. */
static int reap(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec pause = { 0, 1000000 };
	pid_t ret;

	for (;;) {
		ret = waitpid(pid, status, WNOHANG);
		if (ret == pid)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (bench_now_ns() >= deadline)
			break;
		nanosleep(&pause, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return -ETIMEDOUT;
}

/*
 * Close the control socket (the peer sees EOF), then reap the peer,
 * killing it after @timeout_ms.
 * Return: 0 if it exited with status 0; -ETIMEDOUT if it had to be
 * killed; -EPIPE if it failed or died of a signal.
 */
int bench_peer_stop(struct bench_peer *peer, int timeout_ms)
{
	int status = 0, ret;

	if (peer->pid <= 0)
		return 0;
	close(peer->sock);
	peer->sock = -1;
	ret = reap(peer->pid, timeout_ms, &status);
	peer->pid = 0;
	if (ret)
		return ret;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -EPIPE;
	return 0;
}

/*
 * Send @len bytes of @buf and @nfds descriptors in one message.
 * Return: 0, or a negative errno (-EPIPE when the peer is gone).
 */
int bench_send_fds(int sock, const void *buf, size_t len, const int *fds,
		   unsigned int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 253)];
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;

	if (nfds > 253)
		return -EINVAL;
	if (nfds) {
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Copy the received descriptors out; close any beyond @nfds. */
static unsigned int take_fds(struct msghdr *msg, int *fds, unsigned int nfds)
{
	struct cmsghdr *cmsg;
	unsigned int got = 0, i, n;
	int fd;

	for (cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			       sizeof(int));
			if (got < nfds)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	return got;
}

/*
 * Receive one message of exactly @len bytes carrying exactly @nfds
 * descriptors, waiting at most @timeout_ms.
 * Return: 0; -EPIPE on EOF (the peer is gone); -ETIMEDOUT; -EPROTO on a
 * message of the wrong shape (any descriptors in it are closed).
 */
int bench_recv_fds(int sock, void *buf, size_t len, int *fds,
		   unsigned int nfds, int timeout_ms)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 253)];
	struct iovec iov = { buf, len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	unsigned int got;
	ssize_t n;
	int ret;

	ret = bench_wait_readable(sock, timeout_ms);
	if (ret)
		return ret;
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	got = take_fds(&msg, fds, nfds);
	if ((size_t)n != len || got != nfds || (msg.msg_flags & MSG_CTRUNC)) {
		bench_close_fds(fds, got);
		return -EPROTO;
	}
	return 0;
}

/*
 * Wait until @fd is readable.
 * Return: 0 when POLLIN is reported; -ETIMEDOUT; -EPIPE when the fd hung
 * up or failed without becoming readable.
 */
int bench_wait_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int ret;

	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return -ETIMEDOUT;
	if (pfd.revents & POLLIN)
		return 0;
	return -EPIPE;
}

void bench_close_fds(int *fds, unsigned int nfds)
{
	unsigned int i;

	for (i = 0; i < nfds; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

int bench_ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set);
}

/* The n-th CPU of the original mask, so a restricted affinity still works. */
static int nth_allowed_cpu(const cpu_set_t *allowed, int n)
{
	int cpu;

	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, allowed) && n-- == 0)
			return cpu;
	return -1;
}

static cpu_set_t original_mask;
static int original_saved;

void bench_pin_self(int n)
{
	cpu_set_t one;
	int cpu;

	if (!original_saved) {
		sched_getaffinity(0, sizeof(original_mask), &original_mask);
		original_saved = 1;
	}
	cpu = nth_allowed_cpu(&original_mask, n);
	if (cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

void bench_unpin_self(void)
{
	if (original_saved)
		sched_setaffinity(0, sizeof(original_mask), &original_mask);
}

int bench_run_suite(const char *suite, const struct bench_measure *m,
		    unsigned int count, int argc, char **argv)
{
	struct bench_opts opts;
	bool failed = false;
	unsigned int i;
	int ret;

	ret = bench_parse_opts(argc, argv, &opts);
	if (ret)
		return ret > 0 ? BENCH_EXIT_OK : BENCH_EXIT_USAGE;
	bench_begin(&opts);
	for (i = 0; i < count; i++) {
		if (opts.only && !strstr(m[i].name, opts.only))
			continue;
		ret = m[i].run(m[i].share);
		if (ret) {
			fprintf(stderr, "hetmem bench %s: %s: %s\n", suite,
				m[i].name, strerror(-ret));
			failed = true;
		}
	}
	bench_end();
	return failed ? BENCH_EXIT_FAIL : BENCH_EXIT_OK;
}

/* <stem><suffix>_<unit>, or for a "name." stem name.<suffix>_<unit>. */
static void paired_key(char *key, size_t len, const char *stem,
		       const char *suffix, const char *unit)
{
	size_t n = strlen(stem);

	if (!n || stem[n - 1] != '.')
		snprintf(key, len, "%s%s_%s", stem, suffix, unit);
	else if (*suffix)
		snprintf(key, len, "%s%s_%s", stem,
			 suffix + (*suffix == '_'), unit);
	else
		snprintf(key, len, "%s%s", stem, unit);
}

double bench_print_paired(const struct bench_pair_keys *k, const char *suffix,
			  double *hetmem, double *base, double *ratio,
			  unsigned int n)
{
	double h = bench_median(hetmem, n), b = bench_median(base, n);
	double r = bench_median(ratio, n);
	char key[128];

	paired_key(key, sizeof(key), k->hetmem, suffix, k->unit);
	bench_print(key, h);
	paired_key(key, sizeof(key), k->base, suffix, k->unit);
	bench_print(key, b);
	snprintf(key, sizeof(key), "%s%s_pairs", k->hetmem, suffix);
	bench_print_int(key, n);
	snprintf(key, sizeof(key), "%s%s_of_medians", k->ratio, suffix);
	bench_print_ratio(key, h / b);
	snprintf(key, sizeof(key), "%s%s", k->ratio, suffix);
	bench_print_ratio(key, r);
	return r;
}
