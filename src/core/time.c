/* SPDX-License-Identifier: MIT */
/*
 * hetmem - CLOCK_MONOTONIC time and jiffies.
 */
#include <limits.h>

#include "core/internal.h"

/**
 * DOC: Clock
 *
 * Every hetmem timestamp and deadline uses CLOCK_MONOTONIC, the clock the
 * kernel's ktime_get() reads, so fence timestamps from different processes
 * on one machine are comparable and sync_file info reports the same values
 * a kernel sync_file would. Jiffies are derived from it (HETMEM_HZ ticks per
 * second) instead of counting ticks, so they never drift from ktime.
 */

/**
 * hetmem_ktime_get() - read CLOCK_MONOTONIC in nanoseconds
 *
 * Context: Any thread, any context; never blocks.
 * Return: the current monotonic time in ns.
 */
HETMEM_API hetmem_ktime_t hetmem_ktime_get(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (hetmem_ktime_t)ts.tv_sec * HETMEM_NSEC_PER_SEC + ts.tv_nsec;
}

/**
 * hetmem_jiffies() - the monotonic clock in HETMEM_HZ ticks
 *
 * Context: Any thread, any context; never blocks.
 * Return: CLOCK_MONOTONIC expressed in jiffies.
 */
HETMEM_API unsigned long hetmem_jiffies(void)
{
	return (unsigned long)(hetmem_ktime_get() / HETMEM_NSEC_PER_JIFFY);
}

int64_t hetmem_timeout_to_deadline(long timeout)
{
	int64_t now;

	if (timeout == HETMEM_MAX_SCHEDULE_TIMEOUT)
		return -1;
	now = hetmem_ktime_get();
	/* Negative timeouts are rejected by the callers; never overflow. */
	if (timeout <= 0)
		return now;
	if (timeout > (INT64_MAX - now) / HETMEM_NSEC_PER_JIFFY)
		return INT64_MAX;
	return now + hetmem_jiffies_to_nsecs((unsigned long)timeout);
}

long hetmem_deadline_to_timeout(int64_t deadline)
{
	int64_t left;
	long j;

	if (deadline < 0)
		return HETMEM_MAX_SCHEDULE_TIMEOUT;
	left = deadline - hetmem_ktime_get();
	/*
	 * The kernel reports at least one jiffy to a waiter whose condition
	 * came true, even at the very end of its timeout.
	 */
	j = left > 0 ? left / HETMEM_NSEC_PER_JIFFY : 0;
	return j > 0 ? j : 1;
}

int hetmem_deadline_to_poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - hetmem_ktime_get();
	if (left <= 0)
		return 0;
	/* Round up: poll() must not return before the deadline passed. */
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}
