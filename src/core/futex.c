/* SPDX-License-Identifier: MIT */
/*
 * hetmem - futex waits.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/internal.h"

/**
 * DOC: Futex waits and interruption
 *
 * All hetmem sleeps end in one private futex wait. A deadline is passed as
 * an absolute CLOCK_MONOTONIC time (FUTEX_WAIT_BITSET), so a wait that is
 * woken spuriously and re-armed never extends its timeout.
 *
 * The kernel's "interruptible" sleep returns -ERESTARTSYS when a signal is
 * pending. A userspace thread has no pending state to poll: an unblocked
 * signal is delivered at once to its handler. hetmem's equivalent is "a
 * signal handler ran in the sleeping thread", which the futex reports as
 * EINTR. The kernel restarts a futex wait without timeout after a handler
 * installed with SA_RESTART, hiding the interruption; an interruptible wait
 * therefore always passes a deadline (far in the future when the caller
 * asked for none), because timed futex waits are never restarted.
 * Non-interruptible waits simply re-arm after EINTR.
 */

static long futex_wait_abs(uint32_t *word, uint32_t val,
			   const struct timespec *abs)
{
	return syscall(SYS_futex, word,
		       FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, abs, NULL,
		       FUTEX_BITSET_MATCH_ANY);
}

static void ns_to_timespec(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / HETMEM_NSEC_PER_SEC;
	ts->tv_nsec = ns % HETMEM_NSEC_PER_SEC;
}

int hetmem_futex_wait(uint32_t *word, uint32_t val, int64_t deadline,
		      bool intr)
{
	struct timespec ts, *abs = NULL;
	bool forever = deadline < 0;

	/*
	 * About 104 days: "forever", but still a timed, unrestarted wait.
	 * Should it ever expire, report a spurious wake-up (callers re-check
	 * their condition and wait again), never a timeout.
	 */
	if (forever && intr)
		deadline = hetmem_ktime_get() + (INT64_C(1) << 53);
	if (deadline >= 0) {
		ns_to_timespec(deadline, &ts);
		abs = &ts;
	}
	for (;;) {
		if (futex_wait_abs(word, val, abs) == 0)
			return 0;
		switch (errno) {
		case EAGAIN:
			return 0;
		case ETIMEDOUT:
			return forever ? 0 : -ETIMEDOUT;
		case EINTR:
			if (intr)
				return -EINTR;
			continue;
		default:
			return -errno;
		}
	}
}

void hetmem_futex_wake(uint32_t *word, int count)
{
	syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count, NULL,
		NULL, 0);
}
