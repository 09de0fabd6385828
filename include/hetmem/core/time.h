/* SPDX-License-Identifier: MIT */
/*
 * hetmem - time: ktime, jiffies and the scheduling-timeout conventions.
 */
#ifndef HETMEM_CORE_TIME_H
#define HETMEM_CORE_TIME_H

#include <limits.h>
#include <stdint.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Time units
 *
 * Timestamps are signed 64-bit nanoseconds of CLOCK_MONOTONIC, as the
 * kernel's ktime_t. Timeouts keep the kernel's jiffies shape (signed long,
 * HETMEM_MAX_SCHEDULE_TIMEOUT means forever, remaining time is returned on
 * success) with a fixed tick of 1 ms: HETMEM_HZ is 1000. A userspace process
 * has no timer tick of its own, so "jiffies" here is simply CLOCK_MONOTONIC
 * divided into 1 ms units; conversions round up like the kernel's so that a
 * non-zero request never becomes a zero timeout.
 */
typedef int64_t hetmem_ktime_t;

#define HETMEM_HZ 1000L
#define HETMEM_MAX_SCHEDULE_TIMEOUT LONG_MAX
#define HETMEM_NSEC_PER_SEC 1000000000LL
#define HETMEM_NSEC_PER_JIFFY (HETMEM_NSEC_PER_SEC / HETMEM_HZ)

HETMEM_API hetmem_ktime_t hetmem_ktime_get(void);
HETMEM_API unsigned long hetmem_jiffies(void);

static inline long hetmem_nsecs_to_jiffies(int64_t ns)
{
	if (ns <= 0)
		return 0;
	if (ns / HETMEM_NSEC_PER_JIFFY >= HETMEM_MAX_SCHEDULE_TIMEOUT - 1)
		return HETMEM_MAX_SCHEDULE_TIMEOUT;
	/* Not (ns + NSEC_PER_JIFFY - 1) / NSEC_PER_JIFFY: that overflows. */
	return (long)(ns / HETMEM_NSEC_PER_JIFFY +
		      (ns % HETMEM_NSEC_PER_JIFFY != 0));
}

static inline long hetmem_usecs_to_jiffies(unsigned int us)
{
	return hetmem_nsecs_to_jiffies((int64_t)us * 1000);
}

static inline long hetmem_msecs_to_jiffies(unsigned int ms)
{
	return hetmem_nsecs_to_jiffies((int64_t)ms * 1000000);
}

static inline unsigned int hetmem_jiffies_to_msecs(unsigned long j)
{
	return (unsigned int)(j * (1000 / HETMEM_HZ));
}

static inline int64_t hetmem_jiffies_to_nsecs(unsigned long j)
{
	return (int64_t)j * HETMEM_NSEC_PER_JIFFY;
}

HETMEM_END_DECLS

#endif /* HETMEM_CORE_TIME_H */
