/* SPDX-License-Identifier: MIT */
/*
 * hetmem - test harness runner.
 */
#include <dirent.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include <hetmem/core/warn.h>

#include "harness.h"

#if defined(__SANITIZE_THREAD__)
#define HARNESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HARNESS_TSAN 1
#endif
#endif

#ifdef HARNESS_TSAN
/*
 * Defaults for every test binary; TSAN_OPTIONS still overrides them.
 * liburcu's call_rcu worker outlives each case, so TSan would sleep a
 * second at every case's exit waiting for it; and liburcu restarts that
 * worker in forked children, which TSan refuses after a multi-threaded
 * fork unless die_after_fork=0.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "atexit_sleep_ms=0:die_after_fork=0";
}
#endif

#define TH_DEFAULT_DURATION 2.0

struct th_case {
	const struct th_test *test;
	const struct th_variant *variant;
	char *name;
	bool selected;
};

/* Filled by constructors, so none of this may depend on main(). */
static const struct th_test **tests;
static const struct th_variant **variants;
static struct th_case *cases;
static size_t n_tests, n_variants, n_cases;

static double duration_s = -1;
static long timeout_env = -1;
static sigset_t orig_mask;

/* MAP_SHARED so that a forked case can hand its skip reason back. */
static struct {
	char skip_reason[256];
} *shared;

/* Written by the case's own thread outside the case; others only read. */
static struct {
	jmp_buf jb;
	pthread_t owner;
	pid_t pid;
	int active;
	int status;
} cur;

static void *must(void *p)
{
	if (!p) {
		fputs("harness: out of memory\n", stderr);
		abort();
	}
	return p;
}

#define APPEND(arr, n, x) do {						\
	(arr) = must(realloc((arr), ((n) + 1) * sizeof(*(arr))));	\
	(arr)[(n)++] = (x);						\
} while (0)

void th_register_test(struct th_test *t)
{
	APPEND(tests, n_tests, t);
}

void th_register_variant(struct th_variant *v)
{
	APPEND(variants, n_variants, v);
}

/*
 * Compilers run one file's constructors in source order today; sorting by
 * line within each file keeps definition order should one ever reverse
 * them, without mixing files.
 */
#define SORT_BY_LINE(arr, n) do {					\
	for (size_t i = 1; i < (n); i++) {				\
		__typeof__((arr)[0]) x = (arr)[i];			\
		size_t j = i;						\
									\
		for (; j && !strcmp((arr)[j - 1]->file, x->file) &&	\
		       (arr)[j - 1]->line > x->line; j--)		\
			(arr)[j] = (arr)[j - 1];			\
		(arr)[j] = x;						\
	}								\
} while (0)

static void add_case(const struct th_test *t, const struct th_variant *v)
{
	struct th_case c = { t, v, NULL, false };
	int ret;

	if (!t->fixture)
		ret = asprintf(&c.name, "%s", t->name);
	else if (!v)
		ret = asprintf(&c.name, "%s.%s", t->fixture->name, t->name);
	else
		ret = asprintf(&c.name, "%s.%s.%s", t->fixture->name, v->name,
			       t->name);
	must(ret < 0 ? NULL : c.name);
	APPEND(cases, n_cases, c);
}

static void expand_cases(void)
{
	SORT_BY_LINE(tests, n_tests);
	SORT_BY_LINE(variants, n_variants);
	for (size_t i = 0; i < n_tests; i++) {
		size_t before = n_cases;

		for (size_t j = 0; tests[i]->fixture && j < n_variants; j++)
			if (variants[j]->fixture == tests[i]->fixture)
				add_case(tests[i], variants[j]);
		if (n_cases == before)
			add_case(tests[i], NULL);
	}
}

static bool parse_seconds(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return !errno && end != s && !*end && isfinite(*out) && *out >= 0;
}

double harness_duration_s(void)
{
	const char *env = getenv("HETMEM_STRESS_SECONDS");
	double d;

	/* main() settles this; the fallback only serves constructors. */
	if (duration_s >= 0)
		return duration_s;
	return env && parse_seconds(env, &d) ? d : TH_DEFAULT_DURATION;
}

/* Whole lines under the stdio lock, so racing threads do not interleave. */
static __attribute__((format(printf, 2, 0)))
void vlog(const char *prefix, const char *fmt, va_list ap)
{
	char buf[4096];
	const char *msg = buf;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	flockfile(stdout);
	do {
		size_t len = strcspn(msg, "\n");

		printf("# %s%.*s\n", prefix, (int)len, msg);
		msg += len + (msg[len] == '\n');
		prefix = "";
	} while (*msg);
	funlockfile(stdout);
}

void th_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

static bool in_case_process(void)
{
	return __atomic_load_n(&cur.active, __ATOMIC_ACQUIRE) &&
	       getpid() == cur.pid;
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
	char where[PATH_MAX + 16];
	va_list ap;

	snprintf(where, sizeof(where), "%s:%d: ", file, line);
	va_start(ap, fmt);
	vlog(where, fmt, ap);
	va_end(ap);
	if (in_case_process())
		__atomic_store_n(&cur.status, TH_FAIL, __ATOMIC_RELAXED);
}

void th_fail_cmp(const char *file, int line, const char *kind,
		 const char *ea, const char *eb, intmax_t a, intmax_t b)
{
	th_fail(file, line, "%s(%s, %s) failed: %s = %jd (%#jx), %s = %jd (%#jx)",
		kind, ea, eb, ea, a, (uintmax_t)a, eb, b, (uintmax_t)b);
}

void th_fail_str(const char *file, int line, const char *kind,
		 const char *ea, const char *eb, const char *a, const char *b)
{
	th_fail(file, line, "%s(%s, %s) failed: %s = \"%s\", %s = \"%s\"",
		kind, ea, eb, ea, a ? a : "(null)", eb, b ? b : "(null)");
}

void th_assert_failed(void)
{
	if (in_case_process() && pthread_equal(pthread_self(), cur.owner))
		longjmp(cur.jb, 1);
	/* Another thread or a grandchild: there is no frame to return to. */
	fflush(stdout);
	_exit(TH_FAIL);
}

void th_skip(const char *file, int line, const char *fmt, ...)
{
	int pass = TH_PASS;
	va_list ap;

	if (!in_case_process() ||
	    !__atomic_compare_exchange_n(&cur.status, &pass, TH_SKIP, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		th_log("%s:%d: SKIP ignored: not in a case, or already failed or skipped",
		       file, line);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(shared->skip_reason, sizeof(shared->skip_reason), fmt, ap);
	va_end(ap);
	/* It goes on the TAP result line, which must stay one line. */
	for (char *p = shared->skip_reason; *p; p++)
		if (*p == '\n' || *p == '#')
			*p = ' ';
}

/*
 * The open fds as a malloc()ed array, or NULL without /proc; a leading -1
 * keeps the array non-NULL when /proc works.
 */
static int *fd_snapshot(size_t *n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int *fds = NULL;

	*n = 0;
	if (!d)
		return NULL;
	APPEND(fds, *n, -1);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
			APPEND(fds, *n, atoi(de->d_name));
	closedir(d);
	return fds;
}

static void fd_check(const int *before, size_t n_before)
{
	char path[64], target[PATH_MAX];
	size_t n_after;
	int *after = fd_snapshot(&n_after);

	for (size_t i = 0; i < n_after; i++) {
		size_t j = 0;
		ssize_t len;

		while (j < n_before && before[j] != after[i])
			j++;
		if (j < n_before)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", after[i]);
		len = readlink(path, target, sizeof(target) - 1);
		target[len < 0 ? 0 : len] = '\0';
		th_log("leaked fd %d -> %s", after[i], target);
		__atomic_store_n(&cur.status, TH_FAIL, __ATOMIC_RELAXED);
	}
	free(after);
}

/* No local changes between setjmp() and longjmp(), so no volatile needed. */
static bool guarded(void (*fn)(void *, const void *), void *self,
		    const void *variant)
{
	if (setjmp(cur.jb))
		return false;
	fn(self, variant);
	return true;
}

static int run_in_process(const struct th_case *c)
{
	const struct th_test *t = c->test;
	const struct th_fixture *f = t->fixture;
	const void *vdata = c->variant ? c->variant->data : NULL;
	void *self = t->self_size ? must(calloc(1, t->self_size)) : NULL;
	bool setup_ok = true;
	size_t n_fds;
	int *fds;

	shared->skip_reason[0] = '\0';
	fds = fd_snapshot(&n_fds);
	cur.owner = pthread_self();
	cur.pid = getpid();
	cur.status = TH_PASS;
	__atomic_store_n(&cur.active, 1, __ATOMIC_RELEASE);

	if (f && f->setup)
		setup_ok = guarded(f->setup, self, vdata);
	if (setup_ok && __atomic_load_n(&cur.status, __ATOMIC_RELAXED) == TH_PASS)
		guarded(t->fn, self, vdata);
	if (setup_ok && f && f->teardown)
		guarded(f->teardown, self, vdata);

	__atomic_store_n(&cur.active, 0, __ATOMIC_RELEASE);
	free(self);
	if (fds)
		fd_check(fds, n_fds);
	free(fds);
	return __atomic_load_n(&cur.status, __ATOMIC_RELAXED);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void log_signal(int sig, bool core)
{
	const char *name = NULL;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	name = sigabbrev_np(sig);
#endif
	if (name)
		th_log("killed by signal SIG%s%s", name, core ? " (core dumped)" : "");
	else
		th_log("killed by signal %d%s", sig, core ? " (core dumped)" : "");
}

static unsigned int case_timeout(const struct th_test *t)
{
	double extra = duration_s - TH_DEFAULT_DURATION;

	if (timeout_env >= 0)
		return (unsigned int)timeout_env;
	/* Timeouts are written for the default stress duration. */
	if (t->timeout && extra > 0)
		return t->timeout + (unsigned int)extra + 1;
	return t->timeout;
}

/*
 * SIGCHLD stays blocked in the runner, so sigtimedwait() sleeps until the
 * child exits or the deadline passes, with no handler and no alarm() race.
 */
static int run_forked(const struct th_case *c)
{
	unsigned int timeout = case_timeout(c->test);
	double deadline = now_s() + timeout;
	sigset_t chld;
	pid_t pid, ret;
	int ws;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		th_log("fork: %s", strerror(errno));
		return TH_FAIL;
	}
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &orig_mask, NULL);
		exit(run_in_process(c));
	}

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	while ((ret = waitpid(pid, &ws, timeout ? WNOHANG : 0)) != pid) {
		double left = deadline - now_s();
		struct timespec ts = { (time_t)left, 0 };

		if (ret < 0 && errno != EINTR) {
			th_log("waitpid: %s", strerror(errno));
			return TH_FAIL;
		}
		if (!timeout)
			continue;
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &ws, 0);
			th_log("timeout after %us", timeout);
			return TH_FAIL;
		}
		ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
		sigtimedwait(&chld, NULL, &ts);
	}

	if (WIFSIGNALED(ws)) {
		log_signal(WTERMSIG(ws), WCOREDUMP(ws));
		return TH_FAIL;
	}
	if (WEXITSTATUS(ws) == TH_PASS || WEXITSTATUS(ws) == TH_SKIP)
		return WEXITSTATUS(ws);
	if (WEXITSTATUS(ws) != TH_FAIL)
		th_log("exit status %d", WEXITSTATUS(ws));
	return TH_FAIL;
}

static int parse_env(const char *prog)
{
	const char *env = getenv("HETMEM_STRESS_SECONDS");
	char *end;

	if (duration_s < 0 && env && !parse_seconds(env, &duration_s)) {
		fprintf(stderr, "%s: bad HETMEM_STRESS_SECONDS '%s'\n", prog, env);
		return -1;
	}
	if (duration_s < 0)
		duration_s = TH_DEFAULT_DURATION;
	env = getenv("HETMEM_TEST_TIMEOUT");
	if (env) {
		timeout_env = strtol(env, &end, 10);
		if (end == env || *end || timeout_env < 0 || timeout_env > INT_MAX) {
			fprintf(stderr, "%s: bad HETMEM_TEST_TIMEOUT '%s'\n",
				prog, env);
			return -1;
		}
	}
	if (!getenv("HETMEM_WARN"))
		setenv("HETMEM_WARN", "fatal", 1);
	if (!strcmp(getenv("HETMEM_WARN"), "fatal"))
		hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	return 0;
}

static const char usage[] =
	"usage: %s [-l] [-f] [-d SECONDS] [CASE-PATTERN...]\n"
	"  -l          list case names\n"
	"  -f          fork and time out cases even when some are named\n"
	"  -d SECONDS  stress duration (else HETMEM_STRESS_SECONDS, else 2)\n"
	"Named cases run in-process without a timeout, for gdb.\n";

static bool select_cases(const char *pattern)
{
	bool hit = false;

	for (size_t i = 0; i < n_cases; i++) {
		if (!strcmp(pattern, cases[i].name) ||
		    !fnmatch(pattern, cases[i].name, 0))
			cases[i].selected = hit = true;
	}
	return hit;
}

int main(int argc, char **argv)
{
	size_t n_run = 0, idx = 0, n_pass = 0, n_fail = 0, n_skip = 0;
	bool list = false, forking = false;
	int opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "hlfd:")) != -1) {
		if (opt == 'l') {
			list = true;
		} else if (opt == 'f') {
			forking = true;
		} else if (opt == 'd' && parse_seconds(optarg, &duration_s)) {
			/* Helpers that the cases exec should agree. */
			setenv("HETMEM_STRESS_SECONDS", optarg, 1);
		} else {
			fprintf(opt == 'h' ? stdout : stderr, usage, argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (parse_env(argv[0]))
		return 2;

	expand_cases();
	for (size_t i = 0; i < n_cases; i++) {
		cases[i].selected = optind == argc;
		if (list)
			puts(cases[i].name);
	}
	if (list)
		return 0;
	for (int a = optind; a < argc; a++) {
		if (!select_cases(argv[a])) {
			fprintf(stderr, "%s: no case matches '%s' (see -l)\n",
				argv[0], argv[a]);
			return 2;
		}
	}
	forking |= optind == argc;
	for (size_t i = 0; i < n_cases; i++)
		n_run += cases[i].selected;

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (forking) {
		sigset_t chld;

		/* SIG_IGN would have the kernel reap cases behind our back. */
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		sigprocmask(SIG_BLOCK, &chld, &orig_mask);
	}

	printf("TAP version 13\n");
	if (n_run)
		printf("1..%zu\n", n_run);
	else
		printf("1..0 # SKIP no test cases\n");
	for (size_t i = 0; i < n_cases; i++) {
		int res;

		if (!cases[i].selected)
			continue;
		res = forking ? run_forked(&cases[i]) : run_in_process(&cases[i]);
		idx++;
		if (res == TH_SKIP) {
			n_skip++;
			printf("ok %zu - %s # SKIP %s\n", idx, cases[i].name,
			       *shared->skip_reason ? shared->skip_reason :
			       "no reason given");
		} else if (res == TH_PASS) {
			n_pass++;
			printf("ok %zu - %s\n", idx, cases[i].name);
		} else {
			n_fail++;
			printf("not ok %zu - %s\n", idx, cases[i].name);
		}
	}
	printf("# %zu passed, %zu failed, %zu skipped\n", n_pass, n_fail,
	       n_skip);
	if (n_fail)
		return TH_FAIL;
	if (n_pass)
		return TH_PASS;
	/*
	 * meson's TAP runner calls any non-zero exit an error, 77 included;
	 * it derives SKIP from the "# SKIP" lines instead. Its test
	 * environment sets HETMEM_SKIP_EXIT=0 for that reason.
	 */
	return getenv("HETMEM_SKIP_EXIT") ? atoi(getenv("HETMEM_SKIP_EXIT")) :
					    TH_SKIP;
}

bool harness_thp_enabled(void)
{
	char line[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	return strstr(line, "[always]") || strstr(line, "[madvise]");
}
