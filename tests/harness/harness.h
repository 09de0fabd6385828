/* SPDX-License-Identifier: MIT */
/*
 * hetmem - test harness.
 */
#ifndef HETMEM_TESTS_HARNESS_H
#define HETMEM_TESTS_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/**
 * DOC: Test harness
 *
 * Every test binary is a list of cases registered by constructors and run,
 * in definition order, by the main() in harness.c, which speaks TAP 13 so
 * meson can parse it. Each case gets a fresh forked child: a crash, an
 * abort() from a fatal HETMEM_WARN (the runner makes warnings fatal unless
 * HETMEM_WARN says otherwise), a deadlock caught by the timeout or a
 * leaked fd then costs one case instead of the whole binary, and no state
 * leaks from one case into the next. The child reports through its exit
 * status (0 pass, 77 skip, 1 fail) and calls exit() rather than _exit()
 * so that LeakSanitizer gets to look at it. Naming cases (or fnmatch()
 * patterns) on the command line runs them in-process without a timeout,
 * which is what gdb wants; -f forks them anyway, -l lists every case.
 *
 * The timeout is 30 s unless TEST_TIMEOUT() or TEST_F_TIMEOUT() give
 * another whole number of seconds (0 for none). Those figures assume the
 * default stress duration, so a longer -d (or HETMEM_STRESS_SECONDS)
 * stretches them by the difference, while HETMEM_TEST_TIMEOUT replaces
 * them all outright.
 *
 * Fixtures follow the familiar kselftest shape: FIXTURE_SETUP() and
 * FIXTURE_TEARDOWN() bracket every TEST_F(), and a TEST_F() runs once per
 * FIXTURE_VARIANT_ADD() under the name "fixture.variant.test". Teardown
 * only runs when setup returned, since a setup cut short by an ASSERT
 * leaves nothing teardown could trust; the body only runs when setup
 * neither failed nor skipped. Fixture names double as the struct tags of
 * their data, and the data starts zeroed.
 *
 * A failing ASSERT_*() on the thread running the case longjmp()s out of
 * whatever helper it sits in, back to the runner, which still calls
 * teardown. longjmp() cannot cross threads, so on any other thread of the
 * case it prints its report and ends the whole case with _exit(1);
 * EXPECT_*() just marks the case failed and is fine on any thread. A
 * grandchild created with fork() is a separate process whose failures the
 * case cannot see: it must report through its own exit status, which the
 * case then checks. A failing ASSERT_*() in a grandchild exits it with
 * status 1 to that end. SKIP() does not jump: its first argument (usually
 * "return") leaves the function, so it cannot be "break" or "continue".
 */

/* Exit codes of a case's child; 77 is what meson and automake call skip. */
#define TH_PASS 0
#define TH_FAIL 1
#define TH_SKIP 77

#define TH_DEFAULT_TIMEOUT 30

struct th_fixture {
	const char *name;
	void (*setup)(void *self, const void *variant);
	void (*teardown)(void *self, const void *variant);
};

struct th_variant {
	struct th_fixture *fixture;
	const char *name;
	const void *data;
	const char *file;
	int line;
};

struct th_test {
	const char *name;
	const char *file;
	int line;
	struct th_fixture *fixture;
	size_t self_size;
	unsigned int timeout;
	void (*fn)(void *self, const void *variant);
};

void th_register_test(struct th_test *t);
void th_register_variant(struct th_variant *v);

double harness_duration_s(void);

void th_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void th_skip(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void th_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void th_fail_cmp(const char *file, int line, const char *kind,
		 const char *ea, const char *eb, intmax_t a, intmax_t b);
void th_fail_str(const char *file, int line, const char *kind,
		 const char *ea, const char *eb, const char *a, const char *b);
void th_assert_failed(void) __attribute__((noreturn));

#define TH_ATTR_CTOR __attribute__((constructor))
#define TH_UNUSED __attribute__((unused))

#define TH_REGISTER(sym, fx, tname, size, secs, tramp)			\
	static struct th_test sym = {					\
		.name = tname, .file = __FILE__, .line = __LINE__,	\
		.fixture = fx, .self_size = size, .timeout = secs,	\
		.fn = tramp,						\
	};								\
	static TH_ATTR_CTOR void sym##_ctor(void)			\
	{								\
		th_register_test(&sym);					\
	}

#define TEST_TIMEOUT(name, secs)					\
	static void th_tbody_##name(void);				\
	static void th_ttramp_##name(void *s TH_UNUSED,			\
				    const void *v TH_UNUSED)		\
	{								\
		th_tbody_##name();					\
	}								\
	TH_REGISTER(th_test_##name, NULL, #name, 0, secs, th_ttramp_##name) \
	static void th_tbody_##name(void)

#define TEST(name) TEST_TIMEOUT(name, TH_DEFAULT_TIMEOUT)

#define FIXTURE_DATA(fx) struct fx
#define FIXTURE_VARIANT(fx) struct th_variant_data_##fx

/* The variant tag is declared here so that fixtures without one still work. */
#define FIXTURE(fx)							\
	FIXTURE_VARIANT(fx);						\
	static struct th_fixture th_fixture_##fx = { .name = #fx };	\
	FIXTURE_DATA(fx)

#define TH_FIXTURE_HOOK(fx, hook)					\
	static void th_##hook##_##fx(FIXTURE_DATA(fx) *self,		\
				     const FIXTURE_VARIANT(fx) *variant); \
	static void th_##hook##_tramp_##fx(void *s, const void *v)	\
	{								\
		th_##hook##_##fx(s, v);					\
	}								\
	static TH_ATTR_CTOR void th_##hook##_ctor_##fx(void)		\
	{								\
		th_fixture_##fx.hook = th_##hook##_tramp_##fx;		\
	}								\
	static void th_##hook##_##fx(FIXTURE_DATA(fx) *self TH_UNUSED,	\
				     const FIXTURE_VARIANT(fx) *variant TH_UNUSED)

#define FIXTURE_SETUP(fx) TH_FIXTURE_HOOK(fx, setup)
#define FIXTURE_TEARDOWN(fx) TH_FIXTURE_HOOK(fx, teardown)

#define FIXTURE_VARIANT_ADD(fx, vname)					\
	static const FIXTURE_VARIANT(fx) th_vdata_##fx##__##vname;	\
	static struct th_variant th_variant_##fx##__##vname = {		\
		.fixture = &th_fixture_##fx, .name = #vname,		\
		.data = &th_vdata_##fx##__##vname,			\
		.file = __FILE__, .line = __LINE__,			\
	};								\
	static TH_ATTR_CTOR void th_variant_ctor_##fx##__##vname(void)	\
	{								\
		th_register_variant(&th_variant_##fx##__##vname);	\
	}								\
	static const FIXTURE_VARIANT(fx) th_vdata_##fx##__##vname =

#define TEST_F_TIMEOUT(fx, name, secs)					\
	static void th_fbody_##fx##__##name(FIXTURE_DATA(fx) *self,	\
					  const FIXTURE_VARIANT(fx) *variant); \
	static void th_ftramp_##fx##__##name(void *s, const void *v)	\
	{								\
		th_fbody_##fx##__##name(s, v);				\
	}								\
	TH_REGISTER(th_ftest_##fx##__##name, &th_fixture_##fx, #name,	\
		    sizeof(FIXTURE_DATA(fx)), secs, th_ftramp_##fx##__##name) \
	static void th_fbody_##fx##__##name(FIXTURE_DATA(fx) *self TH_UNUSED, \
					  const FIXTURE_VARIANT(fx) *variant TH_UNUSED)

#define TEST_F(fx, name) TEST_F_TIMEOUT(fx, name, TH_DEFAULT_TIMEOUT)

#define TH_LOG(...) th_log(__VA_ARGS__)

#define SKIP(statement, ...) do {					\
	th_skip(__FILE__, __LINE__, __VA_ARGS__);			\
	statement;							\
} while (0)

/*
 * Reporting and leaving are split so that the compiler sees the noreturn
 * call in ASSERT_*() and knows, say, a pointer is non-NULL afterwards.
 */
#define TH_BAIL(fatal) do { if (fatal) th_assert_failed(); } while (0)

#define TH_CMP(fatal, kind, op, a, b) do {				\
	intmax_t __th_a = (intmax_t)(a);				\
	intmax_t __th_b = (intmax_t)(b);				\
	if (!(__th_a op __th_b)) {					\
		th_fail_cmp(__FILE__, __LINE__, kind, #a, #b,	\
			    __th_a, __th_b);				\
		TH_BAIL(fatal);						\
	}								\
} while (0)

#define TH_BOOL(fatal, kind, cond, text) do {				\
	if (!(cond)) {							\
		th_fail(__FILE__, __LINE__, "%s(%s) failed",	\
			kind, text);					\
		TH_BAIL(fatal);						\
	}								\
} while (0)

#define TH_PTR(fatal, kind, want_null, p) do {				\
	const void *__th_p = (p);					\
	if ((__th_p == NULL) != (want_null)) {				\
		th_fail(__FILE__, __LINE__, "%s(%s) failed: %p",	\
			kind, #p, __th_p);				\
		TH_BAIL(fatal);						\
	}								\
} while (0)

#define TH_STR(fatal, kind, want_eq, a, b) do {				\
	const char *__th_sa = (a), *__th_sb = (b);			\
	bool __th_eq = __th_sa && __th_sb ? !strcmp(__th_sa, __th_sb) :	\
					    __th_sa == __th_sb;		\
	if (__th_eq != (want_eq)) {					\
		th_fail_str(__FILE__, __LINE__, kind, #a, #b,	\
			    __th_sa, __th_sb);				\
		TH_BAIL(fatal);						\
	}								\
} while (0)

#define ASSERT_EQ(a, b) TH_CMP(1, "ASSERT_EQ", ==, a, b)
#define ASSERT_NE(a, b) TH_CMP(1, "ASSERT_NE", !=, a, b)
#define ASSERT_LT(a, b) TH_CMP(1, "ASSERT_LT", <, a, b)
#define ASSERT_LE(a, b) TH_CMP(1, "ASSERT_LE", <=, a, b)
#define ASSERT_GT(a, b) TH_CMP(1, "ASSERT_GT", >, a, b)
#define ASSERT_GE(a, b) TH_CMP(1, "ASSERT_GE", >=, a, b)
#define ASSERT_TRUE(c) TH_BOOL(1, "ASSERT_TRUE", (c), #c)
#define ASSERT_FALSE(c) TH_BOOL(1, "ASSERT_FALSE", !(c), #c)
#define ASSERT_NULL(p) TH_PTR(1, "ASSERT_NULL", true, p)
#define ASSERT_NONNULL(p) TH_PTR(1, "ASSERT_NONNULL", false, p)
#define ASSERT_STREQ(a, b) TH_STR(1, "ASSERT_STREQ", true, a, b)
#define ASSERT_STRNE(a, b) TH_STR(1, "ASSERT_STRNE", false, a, b)

#define EXPECT_EQ(a, b) TH_CMP(0, "EXPECT_EQ", ==, a, b)
#define EXPECT_NE(a, b) TH_CMP(0, "EXPECT_NE", !=, a, b)
#define EXPECT_LT(a, b) TH_CMP(0, "EXPECT_LT", <, a, b)
#define EXPECT_LE(a, b) TH_CMP(0, "EXPECT_LE", <=, a, b)
#define EXPECT_GT(a, b) TH_CMP(0, "EXPECT_GT", >, a, b)
#define EXPECT_GE(a, b) TH_CMP(0, "EXPECT_GE", >=, a, b)
#define EXPECT_TRUE(c) TH_BOOL(0, "EXPECT_TRUE", (c), #c)
#define EXPECT_FALSE(c) TH_BOOL(0, "EXPECT_FALSE", !(c), #c)
#define EXPECT_NULL(p) TH_PTR(0, "EXPECT_NULL", true, p)
#define EXPECT_NONNULL(p) TH_PTR(0, "EXPECT_NONNULL", false, p)
#define EXPECT_STREQ(a, b) TH_STR(0, "EXPECT_STREQ", true, a, b)
#define EXPECT_STRNE(a, b) TH_STR(0, "EXPECT_STRNE", false, a, b)

/*
 * Small time helpers every suite needs. CLOCK_MONOTONIC, the clock hetmem
 * timestamps use, so test deadlines and fence timestamps compare.
 */
static inline int64_t harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep @ms milliseconds, resuming after signal handlers. */
static inline void harness_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts))
		;
}

/* Sleep @us microseconds (below one second); a signal may cut it short. */
static inline void harness_sleep_us(long us)
{
	struct timespec ts = { .tv_nsec = us * 1000 };

	nanosleep(&ts, NULL);
}

/*
 * Can a MADV_HUGEPAGE region get transparent huge pages on this machine
 * (mode "always" or "madvise")? False when THP is off or unknown.
 */
bool harness_thp_enabled(void);

/*
 * xorshift32: fast, reproducible per-thread randomness for stress tests.
 * @state must start non-zero; each thread keeps its own.
 */
static inline uint32_t harness_rand(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

/* Poll until *@p == @want (acquire) or @ms pass; true if it got there. */
static inline bool harness_wait_int(const int *p, int want, long ms)
{
	int64_t end = harness_now_ms() + ms;

	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != want) {
		if (harness_now_ms() > end)
			return false;
		harness_sleep_ms(1);
	}
	return true;
}

#endif /* HETMEM_TESTS_HARNESS_H */
