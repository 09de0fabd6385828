/* SPDX-License-Identifier: MIT */
/*
 * hetmem - helpers shared by the benchmark suites.
 */
#ifndef HETMEM_BENCH_UTIL_H
#define HETMEM_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit statuses of a suite (and of "hetmem bench"). */
#define BENCH_EXIT_OK 0
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

/* Most batches one measurement keeps; more are not run. */
#define BENCH_MAX_BATCHES 4096

/* Default poll/wait timeout of the ping-pong helpers, in ms. */
#define BENCH_TIMEOUT_MS 5000

struct bench_opts {
	double duration_s;	/* -d: rough bound of the whole run */
	const char *only;	/* -m: run the measurements whose name has this */
};

int bench_parse_opts(int argc, char **argv, struct bench_opts *opts);
void bench_begin(const struct bench_opts *opts);
void bench_end(void);

int64_t bench_now_ns(void);

/*
 * A time slice for one measurement: batches run while bench_slice_next()
 * says so, at least @min and at most @max (<= BENCH_MAX_BATCHES) of them.
 */
struct bench_slice {
	int64_t end_ns;
	unsigned int done;
	unsigned int min;
	unsigned int max;
};

void bench_slice_init(struct bench_slice *slice, double share,
		      unsigned int min, unsigned int max);
bool bench_slice_next(struct bench_slice *slice);

double bench_median(double *samples, size_t n);

void bench_print(const char *key, double value);
void bench_print_int(const char *key, long long value);
void bench_print_ratio(const char *key, double value);

/*
 * Key stems of a paired measurement: hetmem path, its baseline, and their
 * ratio, e.g. "fence.signal_wake", "futex.wake", "ns",
 * "ratio.fence_signal_wake_vs_futex". A side's key is
 * <stem><suffix>_<unit>; a stem that ends in '.' names a primitive alone
 * and its key is <stem><suffix without its '_'>_<unit>, or <stem><unit>
 * without a suffix ("memcpy." and "gbps" give "memcpy.gbps").
 */
struct bench_pair_keys {
	const char *hetmem;
	const char *base;
	const char *unit;
	const char *ratio;
};

/*
 * Print the medians of both sides, the pair count, the ratio of the two
 * medians (<ratio><suffix>_of_medians) and the median of per-pair ratios
 * (<ratio><suffix>), which is returned for a goal check. The arrays are
 * sorted in place.
 */
double bench_print_paired(const struct bench_pair_keys *k, const char *suffix,
			  double *hetmem, double *base, double *ratio,
			  unsigned int n);

/* One measurement of a suite; shares of the -d budget add up to 1. */
struct bench_measure {
	const char *name;
	int (*run)(double share);
	double share;
};

/*
 * Parse "SUITE [-d SECONDS]", run every measurement (a failure is reported
 * and the others still run) and return the BENCH_EXIT_* status.
 */
int bench_run_suite(const char *suite, const struct bench_measure *m,
		    unsigned int count, int argc, char **argv);

/* CPUs this process may run on; pin the calling thread to the n-th / undo. */
int bench_ncpus(void);
void bench_pin_self(int n);
void bench_unpin_self(void);
void bench_print_goal(const char *key, double value, double limit);
void bench_print_goal_min(const char *key, double value, double min);

/* A forked peer process and the control socket connecting it. */
struct bench_peer {
	pid_t pid;
	int sock;
};

typedef int (*bench_peer_fn)(int sock, void *arg);

int bench_peer_start(struct bench_peer *peer, bench_peer_fn fn, void *arg);
int bench_peer_stop(struct bench_peer *peer, int timeout_ms);

int bench_send_fds(int sock, const void *buf, size_t len, const int *fds,
		   unsigned int nfds);
int bench_recv_fds(int sock, void *buf, size_t len, int *fds,
		   unsigned int nfds, int timeout_ms);
int bench_wait_readable(int fd, int timeout_ms);
void bench_close_fds(int *fds, unsigned int nfds);

#endif /* HETMEM_BENCH_UTIL_H */
