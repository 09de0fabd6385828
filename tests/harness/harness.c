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

#define TH_DEFAULT_DURATION 2.0

struct th_case {
	const struct th_test *test;
	const struct th_variant *variant;
	char *name;
};

/* Filled by constructors, so nothing here may need main() to have run. */
static const struct th_test **tests;
static size_t n_tests;
static const struct th_variant **variants;
static size_t n_variants;

static struct th_case *cases;
static size_t n_cases;
static double duration_s = -1;
static long timeout_env = -1;
static sigset_t orig_mask;

/* MAP_SHARED so that a forked case can hand its skip reason to the parent. */
static struct {
	char skip_reason[256];
} *shared;

/* Written only by the case's own thread between cases; others just read. */
static struct {
	jmp_buf jb;
	pthread_t owner;
	pid_t pid;
	int active;
	int status;
} cur;

static void *grow(void *arr, size_t n, size_t size)
{
	arr = realloc(arr, (n + 1) * size);
	if (!arr) {
		fputs("harness: out of memory\n", stderr);
		abort();
	}
	return arr;
}

void th_register_test(struct th_test *t)
{
	tests = grow(tests, n_tests, sizeof(*tests));
	tests[n_tests++] = t;
}

void th_register_variant(struct th_variant *v)
{
	variants = grow(variants, n_variants, sizeof(*variants));
	variants[n_variants++] = v;
}

/*
 * Compilers emit one translation unit's constructors in source order today;
 * sorting by line within a file keeps "definition order" true should a
 * toolchain ever reverse them, without mixing files.
 */
#define SORT_BY_LINE(arr, n) do {					\
	for (size_t i = 1; i < (n); i++) {				\
		__typeof__((arr)[0]) x = (arr)[i];			\
		size_t j = i;						\
		while (j && !strcmp((arr)[j - 1]->file, x->file) &&	\
		       (arr)[j - 1]->line > x->line) {			\
			(arr)[j] = (arr)[j - 1];			\
			j--;						\
		}							\
		(arr)[j] = x;						\
	}								\
} while (0)

static void add_case(const struct th_test *t, const struct th_variant *v,
		     char *name)
{
	if (!name) {
		fputs("harness: out of memory\n", stderr);
		abort();
	}
	cases = grow(cases, n_cases, sizeof(*cases));
	cases[n_cases++] = (struct th_case){ t, v, name };
}

static void expand_cases(void)
{
	char *name;

	SORT_BY_LINE(tests, n_tests);
	SORT_BY_LINE(variants, n_variants);
	for (size_t i = 0; i < n_tests; i++) {
		const struct th_test *t = tests[i];
		bool any = false;

		if (!t->fixture) {
			add_case(t, NULL, strdup(t->name));
			continue;
		}
		for (size_t j = 0; j < n_variants; j++) {
			const struct th_variant *v = variants[j];

			if (v->fixture != t->fixture)
				continue;
			if (asprintf(&name, "%s.%s.%s", t->fixture->name,
				     v->name, t->name) < 0)
				name = NULL;
			add_case(t, v, name);
			any = true;
		}
		if (!any) {
			if (asprintf(&name, "%s.%s", t->fixture->name,
				     t->name) < 0)
				name = NULL;
			add_case(t, NULL, name);
		}
	}
}

static bool parse_seconds(const char *s, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d < 0)
		return false;
	*out = d;
	return true;
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

/* One write per message, so lines from racing threads do not interleave. */
static void emit_comment(const char *msg)
{
	flockfile(stdout);
	do {
		size_t len = strcspn(msg, "\n");

		fprintf(stdout, "# %.*s\n", (int)len, msg);
		msg += len + (msg[len] == '\n');
	} while (*msg);
	funlockfile(stdout);
}

void th_log(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit_comment(buf);
}

static bool in_case_process(void)
{
	return __atomic_load_n(&cur.active, __ATOMIC_ACQUIRE) &&
	       getpid() == cur.pid;
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
	char buf[4096];
	int len = snprintf(buf, sizeof(buf), "%s:%d: ", file, line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	va_end(ap);
	emit_comment(buf);
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
	/* Another thread or a grandchild: no frame to return to, so stop. */
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
		th_log("%s:%d: SKIP ignored: case already failed or not in a case",
		       file, line);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(shared->skip_reason, sizeof(shared->skip_reason), fmt, ap);
	va_end(ap);
	/* The reason goes on the TAP result line, which must stay one line. */
	for (char *p = shared->skip_reason; *p; p++)
		if (*p == '\n' || *p == '#')
			*p = ' ';
}

struct fdset {
	int *fd;
	size_t n;
};

static bool fd_snapshot(struct fdset *s)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	s->fd = NULL;
	s->n = 0;
	if (!d)
		return false;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(d))
			continue;
		s->fd = grow(s->fd, s->n, sizeof(*s->fd));
		s->fd[s->n++] = fd;
	}
	closedir(d);
	return true;
}

static void fd_check(const struct fdset *before)
{
	struct fdset after;
	char path[64], target[PATH_MAX];

	if (!fd_snapshot(&after))
		return;
	for (size_t i = 0; i < after.n; i++) {
		size_t j = 0;
		ssize_t len;

		while (j < before->n && before->fd[j] != after.fd[i])
			j++;
		if (j < before->n)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", after.fd[i]);
		len = readlink(path, target, sizeof(target) - 1);
		target[len < 0 ? 0 : len] = '\0';
		th_log("leaked fd %d -> %s", after.fd[i], target);
		cur.status = TH_FAIL;
	}
	free(after.fd);
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
	struct fdset before;
	bool have_fds, setup_ok = true;
	void *self = NULL;

	shared->skip_reason[0] = '\0';
	have_fds = fd_snapshot(&before);
	if (t->self_size)
		self = grow(NULL, 0, t->self_size);
	memset(self, 0, t->self_size);
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
	if (have_fds)
		fd_check(&before);
	free(before.fd);
	return __atomic_load_n(&cur.status, __ATOMIC_RELAXED);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *signame(int sig)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev) {
		static char buf[16];

		snprintf(buf, sizeof(buf), "SIG%s", abbrev);
		return buf;
	}
#endif
	return strsignal(sig);
}

static unsigned int case_timeout(const struct th_test *t)
{
	double extra = harness_duration_s() - TH_DEFAULT_DURATION;

	if (timeout_env >= 0)
		return (unsigned int)timeout_env;
	/* Case timeouts are written for the default stress duration. */
	if (t->timeout && extra > 0)
		return t->timeout + (unsigned int)ceil(extra);
	return t->timeout;
}

/*
 * SIGCHLD stays blocked in the runner so sigtimedwait() can sleep until the
 * child exits or the deadline passes, with no handler and no alarm() race.
 */
static int run_forked(const struct th_case *c)
{
	unsigned int timeout = case_timeout(c->test);
	double deadline = now_s() + timeout;
	sigset_t chld;
	int ws, code;
	pid_t pid;

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
	while (waitpid(pid, &ws, timeout ? WNOHANG : 0) != pid) {
		double left = deadline - now_s();
		struct timespec ts;

		if (!timeout)
			continue;
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &ws, 0);
			th_log("timeout after %us", timeout);
			return TH_FAIL;
		}
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
		sigtimedwait(&chld, NULL, &ts);
	}

	if (WIFSIGNALED(ws)) {
		th_log("killed by signal %s%s", signame(WTERMSIG(ws)),
		       WCOREDUMP(ws) ? " (core dumped)" : "");
		return TH_FAIL;
	}
	code = WEXITSTATUS(ws);
	if (code != TH_PASS && code != TH_SKIP && code != TH_FAIL) {
		th_log("exit status %d", code);
		return TH_FAIL;
	}
	return code;
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out, "usage: %s [-l] [-f] [-d SECONDS] [CASE-PATTERN...]\n"
		"  -l          list case names\n"
		"  -f          fork and time out even when cases are named\n"
		"  -d SECONDS  stress duration (HETMEM_STRESS_SECONDS, default 2)\n"
		"Named cases run in-process without a timeout, for gdb.\n", prog);
}

int main(int argc, char **argv)
{
	bool list = false, force_fork = false, forking;
	size_t n_run = 0, idx = 0, n_pass = 0, n_fail = 0, n_skip = 0;
	bool *selected;
	const char *env;
	int opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "hlfd:")) != -1) {
		switch (opt) {
		case 'l':
			list = true;
			break;
		case 'f':
			force_fork = true;
			break;
		case 'd':
			if (!parse_seconds(optarg, &duration_s)) {
				fprintf(stderr, "%s: bad duration '%s'\n",
					argv[0], optarg);
				return 2;
			}
			/* Helpers the cases exec should agree on it. */
			setenv("HETMEM_STRESS_SECONDS", optarg, 1);
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	env = getenv("HETMEM_STRESS_SECONDS");
	if (duration_s < 0 && env && !parse_seconds(env, &duration_s)) {
		fprintf(stderr, "%s: bad HETMEM_STRESS_SECONDS '%s'\n",
			argv[0], env);
		return 2;
	}
	if (duration_s < 0)
		duration_s = TH_DEFAULT_DURATION;
	env = getenv("HETMEM_TEST_TIMEOUT");
	if (env) {
		char *end;

		timeout_env = strtol(env, &end, 10);
		if (end == env || *end || timeout_env < 0 || timeout_env > INT_MAX) {
			fprintf(stderr, "%s: bad HETMEM_TEST_TIMEOUT '%s'\n",
				argv[0], env);
			return 2;
		}
	}

	expand_cases();
	if (list) {
		for (size_t i = 0; i < n_cases; i++)
			puts(cases[i].name);
		return 0;
	}

	selected = calloc(n_cases + 1, sizeof(*selected));
	for (size_t i = 0; i < n_cases; i++)
		selected[i] = optind == argc;
	for (int a = optind; a < argc; a++) {
		bool hit = false;

		for (size_t i = 0; i < n_cases; i++) {
			if (!strcmp(argv[a], cases[i].name) ||
			    !fnmatch(argv[a], cases[i].name, 0))
				selected[i] = hit = true;
		}
		if (!hit) {
			fprintf(stderr, "%s: no case matches '%s' (see -l)\n",
				argv[0], argv[a]);
			return 2;
		}
	}
	for (size_t i = 0; i < n_cases; i++)
		n_run += selected[i];
	forking = optind == argc || force_fork;

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (!getenv("HETMEM_WARN"))
		setenv("HETMEM_WARN", "fatal", 1);
	if (!strcmp(getenv("HETMEM_WARN"), "fatal"))
		hetmem_set_warn_mode(HETMEM_WARN_FATAL);
	if (forking) {
		sigset_t chld;

		/* SIG_IGN would make the kernel reap cases behind our back. */
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&chld);
		sigaddset(&chld, SIGCHLD);
		sigprocmask(SIG_BLOCK, &chld, &orig_mask);
	}

	printf("TAP version 13\n");
	if (!n_run)
		printf("1..0 # SKIP no test cases\n");
	else
		printf("1..%zu\n", n_run);
	for (size_t i = 0; i < n_cases; i++) {
		int res;

		if (!selected[i])
			continue;
		res = forking ? run_forked(&cases[i]) : run_in_process(&cases[i]);
		idx++;
		if (res == TH_SKIP) {
			n_skip++;
			printf("ok %zu - %s # SKIP %s\n", idx, cases[i].name,
			       shared->skip_reason[0] ? shared->skip_reason :
			       "no reason given");
		} else {
			res == TH_PASS ? n_pass++ : n_fail++;
			printf("%sok %zu - %s\n", res == TH_PASS ? "" : "not ",
			       idx, cases[i].name);
		}
	}
	printf("# %zu passed, %zu failed, %zu skipped\n", n_pass, n_fail,
	       n_skip);
	free(selected);
	if (n_fail)
		return 1;
	return n_pass ? 0 : TH_SKIP;
}
