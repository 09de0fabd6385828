/* SPDX-License-Identifier: MIT */
/*
 * hetmem - self-test of the test harness.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>

#include <hetmem/core/warn.h>

#include "harness.h"

/*
 * What the harness does with a failing, hanging, leaking or crashing case
 * can only be seen from outside the runner, so the outer cases re-execute
 * this binary on the inner_* cases and read its TAP output and exit
 * status. The inner cases misbehave only under HARNESS_SELFTEST_INNER=1;
 * in a normal run they pass, so this binary itself stays green.
 */
static bool inner(void)
{
	const char *env = getenv("HARNESS_SELFTEST_INNER");

	return env && !strcmp(env, "1");
}

/* Cases are separate processes, so their order is recorded in a file. */
static __attribute__((format(printf, 1, 2)))
void trace(const char *fmt, ...)
{
	const char *path = getenv("HARNESS_SELFTEST_TRACE");
	va_list ap;
	FILE *f;

	if (!path || !(f = fopen(path, "a")))
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

static char out[1 << 16];

/*
 * Run this binary with @args and the "NAME=value" (or bare "NAME", to
 * unset) entries of @env; return its exit status, or 128 + signal, and
 * leave stdout and stderr together in out[]. Uses ASSERT_*() on purpose:
 * a failure here must end the calling case from inside the helper.
 */
static int run_self(const char *const *env, const char *const *args)
{
	const char *argv[16] = { "test-harness" };
	size_t len = 0, n = 1;
	int pfd[2], ws;
	ssize_t r;
	pid_t pid;

	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	ASSERT_EQ(pipe(pfd), 0);
	fflush(stdout);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		unsetenv("HETMEM_TEST_TIMEOUT");
		unsetenv("HETMEM_STRESS_SECONDS");
		unsetenv("HETMEM_WARN");
		unsetenv("HETMEM_SKIP_EXIT");
		setenv("HARNESS_SELFTEST_INNER", "1", 1);
		for (; env && *env; env++)
			strchr(*env, '=') ? putenv((char *)*env) : unsetenv(*env);
		execv("/proc/self/exe", (char **)argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((r = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += r;
	out[len] = '\0';
	close(pfd[0]);
	ASSERT_EQ(waitpid(pid, &ws, 0), pid);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* A bare strstr() failure says nothing; show what the run printed. */
#define ASSERT_OUT(found, s) do {					\
	if (!!strstr(out, s) != (found))					\
		TH_LOG("inner run printed:\n%s", out);			\
	ASSERT_EQ(!!strstr(out, s), found);				\
} while (0)
#define ASSERT_OUT_HAS(s) ASSERT_OUT(1, s)
#define ASSERT_OUT_LACKS(s) ASSERT_OUT(0, s)

TEST(comparisons_that_hold)
{
	const char *none = NULL;
	int x = 3;

	ASSERT_EQ(-5, -5);
	ASSERT_NE(-1, 1);
	ASSERT_LT(-2, 1);
	ASSERT_LE(x, 3);
	ASSERT_GT(1ull << 40, 1);
	ASSERT_GE(x, -3);
	ASSERT_EQ(UINT64_MAX, UINT64_MAX);
	ASSERT_TRUE(x == 3);
	ASSERT_FALSE(x == 4);
	ASSERT_NULL(none);
	ASSERT_NONNULL(&x);
	ASSERT_STREQ("abc", "abc");
	ASSERT_STREQ(none, NULL);
	ASSERT_STRNE("abc", "abd");
	ASSERT_STRNE(none, "abc");
	EXPECT_EQ(x, 3);
	EXPECT_NE(x, 4);
	EXPECT_LT(x, 4);
	EXPECT_LE(x, 4);
	EXPECT_GT(x, 2);
	EXPECT_GE(x, 2);
	EXPECT_TRUE(x);
	EXPECT_FALSE(!x);
	EXPECT_NULL(none);
	EXPECT_NONNULL(&x);
	EXPECT_STREQ("", "");
	EXPECT_STRNE("", "x");
}

FIXTURE(lifecycle) {
	int value;
	int fd;
};

FIXTURE_VARIANT(lifecycle) {
	int value;
	const char *label;
};

FIXTURE_VARIANT_ADD(lifecycle, one) {
	.value = 1,
	.label = "one",
};

FIXTURE_VARIANT_ADD(lifecycle, two) {
	.value = 2,
	.label = "two",
};

/* The fd makes a skipped teardown show up as a leak as well. */
FIXTURE_SETUP(lifecycle)
{
	self->value = variant->value * 10;
	self->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(self->fd, 0);
	trace("setup %s", variant->label);
}

FIXTURE_TEARDOWN(lifecycle)
{
	close(self->fd);
	trace("teardown %s %d", variant->label, self->value);
}

TEST_F(lifecycle, body_sees_setup)
{
	ASSERT_EQ(self->value, variant->value * 10);
	ASSERT_GE(fcntl(self->fd, F_GETFD), 0);
	trace("body %s %d", variant->label, self->value);
}

static void must_be_positive(int v)
{
	ASSERT_GT(v, 0);
	trace("helper returned");
}

TEST_F(lifecycle, inner_assert_in_helper)
{
	trace("helper %s", variant->label);
	must_be_positive(inner() ? -variant->value : 1);
	trace("body continued");
}

static const char lifecycle_trace[] =
	"setup one\nbody one 10\nteardown one 10\n"
	"setup two\nbody two 20\nteardown two 20\n"
	"setup one\nhelper one\nteardown one 10\n"
	"setup two\nhelper two\nteardown two 20\n";

static void check_lifecycle(bool fork_flag)
{
	char path[] = "/tmp/harness-trace-XXXXXX";
	char env[64], got[1024];
	int fd = mkstemp(path);
	ssize_t len;

	ASSERT_GE(fd, 0);
	snprintf(env, sizeof(env), "HARNESS_SELFTEST_TRACE=%s", path);
	EXPECT_EQ(run_self((const char *[]){ env, NULL }, fork_flag ?
			   (const char *[]){ "-f", "lifecycle.*", NULL } :
			   (const char *[]){ "lifecycle.*", NULL }), 1);
	len = read(fd, got, sizeof(got) - 1);
	close(fd);
	unlink(path);
	ASSERT_GE(len, 0);
	got[len] = '\0';
	EXPECT_STREQ(got, lifecycle_trace);
	EXPECT_TRUE(strstr(out, "\n1..4\n"));
	EXPECT_TRUE(strstr(out, "\nok 1 - lifecycle.one.body_sees_setup\n"));
	EXPECT_TRUE(strstr(out, "\nok 2 - lifecycle.two.body_sees_setup\n"));
	EXPECT_TRUE(strstr(out, "\nnot ok 3 - lifecycle.one.inner_assert_in_helper\n"));
	EXPECT_TRUE(strstr(out, "\nnot ok 4 - lifecycle.two.inner_assert_in_helper\n"));
	EXPECT_TRUE(strstr(out, "ASSERT_GT(v, 0) failed: v = -2"));
	EXPECT_FALSE(strstr(out, "leaked fd"));
}

TEST(fixture_lifecycle_forked)
{
	check_lifecycle(true);
}

TEST(fixture_lifecycle_in_process)
{
	check_lifecycle(false);
}

FIXTURE(plain) {
	int x;
};

FIXTURE_SETUP(plain)
{
	self->x = 42;
}

FIXTURE_TEARDOWN(plain)
{
}

TEST_F(plain, without_variants)
{
	ASSERT_EQ(self->x, 42);
	ASSERT_NULL(variant);
}

TEST(listing_in_definition_order)
{
	static const char *const names[] = {
		"comparisons_that_hold", "lifecycle.one.body_sees_setup",
		"lifecycle.two.body_sees_setup",
		"lifecycle.one.inner_assert_in_helper",
		"lifecycle.two.inner_assert_in_helper", "plain.without_variants",
		"listing_in_definition_order",
	};
	const char *prev = out;

	ASSERT_EQ(run_self(NULL, (const char *[]){ "-l", NULL }), 0);
	ASSERT_OUT_LACKS("TAP version");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char line[128];
		const char *at;

		snprintf(line, sizeof(line), "%s\n", names[i]);
		at = strstr(out, line);
		ASSERT_NONNULL(at);
		ASSERT_GE(at - prev, 0);
		prev = at;
	}
}

TEST(inner_expect_continues)
{
	if (!inner())
		return;
	EXPECT_EQ(1 + 1, 3);
	EXPECT_STREQ("left", "right");
	TH_LOG("still running");
}

TEST(expect_does_not_stop_the_case)
{
	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_expect_continues",
						   NULL }), 1);
	ASSERT_OUT_HAS("EXPECT_EQ(1 + 1, 3) failed: 1 + 1 = 2 (0x2), 3 = 3 (0x3)");
	ASSERT_OUT_HAS("EXPECT_STREQ(\"left\", \"right\") failed");
	ASSERT_OUT_HAS("\n# still running\n");
	ASSERT_OUT_HAS("\nnot ok 1 - inner_expect_continues\n");
}

TEST_TIMEOUT(inner_hang_own_timeout, 1)
{
	if (inner())
		sleep(60);
}

TEST(inner_hang)
{
	if (inner())
		pause();
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

TEST(timeouts_kill_hanging_cases)
{
	double start = now();

	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_hang_own_timeout",
						   NULL }), 1);
	ASSERT_OUT_HAS("\n# timeout after 1s\nnot ok 1 - inner_hang_own_timeout\n");
	ASSERT_EQ(run_self((const char *[]){ "HETMEM_TEST_TIMEOUT=1", NULL },
			   (const char *[]){ "-f", "inner_hang", NULL }), 1);
	ASSERT_OUT_HAS("\n# timeout after 1s\nnot ok 1 - inner_hang\n");
	ASSERT_LT(now() - start, 6);
}

TEST(inner_leak_fd)
{
	int p[2];

	if (inner())
		ASSERT_EQ(pipe(p), 0);
}

TEST(fd_leaks_fail_the_case)
{
	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_leak_fd", NULL }), 1);
	ASSERT_OUT_HAS("# leaked fd ");
	ASSERT_OUT_HAS(" -> pipe:[");
	ASSERT_OUT_HAS("\nnot ok 1 - inner_leak_fd\n");
	/* Leak checking must not depend on the fork. */
	ASSERT_EQ(run_self(NULL, (const char *[]){ "inner_leak_fd", NULL }), 1);
	ASSERT_OUT_HAS(" -> pipe:[");
}

TEST(inner_abort)
{
	if (inner())
		abort();
}

static void *assert_on_thread(void *arg)
{
	if (arg)
		ASSERT_EQ(1, 0);
	else
		EXPECT_EQ(1, 0);
	return NULL;
}

TEST(inner_thread_assert)
{
	pthread_t thr;

	if (!inner())
		return;
	ASSERT_EQ(pthread_create(&thr, NULL, assert_on_thread, (void *)1), 0);
	pthread_join(thr, NULL);
	TH_LOG("joined");
}

TEST(inner_thread_expect)
{
	pthread_t thr;

	if (!inner())
		return;
	ASSERT_EQ(pthread_create(&thr, NULL, assert_on_thread, NULL), 0);
	pthread_join(thr, NULL);
	TH_LOG("joined");
}

TEST(crashes_and_threads_fail)
{
	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_abort", NULL }), 1);
	ASSERT_OUT_HAS("\n# killed by signal SIGABRT");
	ASSERT_OUT_HAS("\nnot ok 1 - inner_abort\n");

	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_thread_assert",
						   NULL }), 1);
	ASSERT_OUT_HAS("ASSERT_EQ(1, 0) failed");
	ASSERT_OUT_LACKS("joined");
	ASSERT_OUT_HAS("\nnot ok 1 - inner_thread_assert\n");

	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_thread_expect",
						   NULL }), 1);
	ASSERT_OUT_HAS("EXPECT_EQ(1, 0) failed");
	ASSERT_OUT_HAS("\n# joined\n");
	ASSERT_OUT_HAS("\nnot ok 1 - inner_thread_expect\n");
}

TEST(inner_skip)
{
	if (inner())
		SKIP(return, "nothing to see\non two lines");
}

FIXTURE(skipper) {
	int body_ran;
};

FIXTURE_SETUP(skipper)
{
	if (inner())
		SKIP(return, "setup declined");
}

FIXTURE_TEARDOWN(skipper)
{
	TH_LOG("skipper teardown, body_ran=%d", self->body_ran);
}

TEST_F(skipper, inner_body)
{
	self->body_ran = 1;
	TH_LOG("skipper body");
}

TEST(skips_are_reported)
{
	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_skip",
						   "skipper.*", NULL }), 77);
	ASSERT_OUT_HAS("\nok 1 - inner_skip # SKIP nothing to see on two lines\n");
	ASSERT_OUT_HAS("\n# skipper teardown, body_ran=0\n"
		       "ok 2 - skipper.inner_body # SKIP setup declined\n");
	ASSERT_OUT_LACKS("skipper body");

	/* One pass among skips is a pass, in process as well. */
	ASSERT_EQ(run_self(NULL, (const char *[]){ "inner_skip", "plain.*",
						   NULL }), 0);
	ASSERT_OUT_HAS("\nok 1 - plain.without_variants\n"
		       "ok 2 - inner_skip # SKIP nothing to see on two lines\n");
}

TEST(inner_environment)
{
	const char *want = getenv("HARNESS_SELFTEST_DURATION");

	if (!inner() || !want)
		return;
	ASSERT_EQ(harness_duration_s() * 1000, atof(want) * 1000);
	ASSERT_STREQ(getenv("HETMEM_WARN"), "fatal");
	ASSERT_EQ(hetmem_get_warn_mode(), HETMEM_WARN_FATAL);
}

TEST(inner_warn_aborts)
{
	if (inner())
		(void)HETMEM_WARN_ON(inner());
}

TEST(command_line_and_environment)
{
	ASSERT_EQ(run_self((const char *[]){ "HARNESS_SELFTEST_DURATION=2", NULL },
			   (const char *[]){ "-f", "inner_environment", NULL }), 0);
	ASSERT_EQ(run_self((const char *[]){ "HARNESS_SELFTEST_DURATION=7",
					     "HETMEM_STRESS_SECONDS=7", NULL },
			   (const char *[]){ "inner_environment", NULL }), 0);
	ASSERT_EQ(run_self((const char *[]){ "HARNESS_SELFTEST_DURATION=0.5",
					     "HETMEM_STRESS_SECONDS=7", NULL },
			   (const char *[]){ "-d", "0.5", "inner_env*", NULL }), 0);
	ASSERT_OUT_HAS("\nok 1 - inner_environment\n");

	ASSERT_EQ(run_self(NULL, (const char *[]){ "-f", "inner_warn_aborts",
						   NULL }), 1);
	ASSERT_OUT_HAS("\n# killed by signal SIGABRT");

	ASSERT_EQ(run_self(NULL, (const char *[]){ "no_such_case", NULL }), 2);
	ASSERT_OUT_HAS("no case matches 'no_such_case'");
	ASSERT_OUT_LACKS("TAP version");
	ASSERT_EQ(run_self(NULL, (const char *[]){ "-d", "soon", NULL }), 2);
}
