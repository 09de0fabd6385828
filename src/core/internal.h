/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private helpers of the core layer, usable by every layer above.
 */
#ifndef HETMEM_SRC_CORE_INTERNAL_H
#define HETMEM_SRC_CORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/lockdep.h>
#include <hetmem/core/rcu.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/time.h>
#include <hetmem/core/warn.h>

#define HETMEM_RET_IP (__builtin_return_address(0))

/*
 * Small per-thread state read on hot paths (every lock operation, every
 * migration): the initial-exec model reaches it with one instruction
 * instead of a __tls_get_addr() call. It takes a little of the static TLS
 * space glibc reserves for libraries loaded with dlopen(); keep it to a
 * few words per variable.
 */
#define HETMEM_TLS_HOT __thread __attribute__((tls_model("initial-exec")))

/* Thread id of the caller, cached per thread and refreshed after fork. */
int hetmem_gettid(void);

/*
 * Futex waits on a 32-bit word. @deadline is an absolute CLOCK_MONOTONIC
 * time in ns, or a negative value for "no deadline". Returns 0 when woken
 * (or the word no longer held @val), -ETIMEDOUT at the deadline, -EINTR
 * when a signal handler ran and @intr is set.
 */
int hetmem_futex_wait(uint32_t *word, uint32_t val, int64_t deadline,
		      bool intr);
void hetmem_futex_wake(uint32_t *word, int count);

/*
 * Wake one sleeper on @word once the calling thread has released its last
 * spinlock (immediately if it holds none). Like the kernel's wake_q: a
 * waiter woken while we still hold the lock it needs next would only run
 * into it and sleep again. Only the address is kept, so the waiter may be
 * gone by then (a spurious futex wake is harmless).
 */
void hetmem_futex_wake_after_unlock(uint32_t *word);

/* True while the calling thread holds a hetmem spinlock. */
bool hetmem_in_atomic(void);

/* Absolute deadline for a jiffies timeout; -1 for MAX_SCHEDULE_TIMEOUT. */
int64_t hetmem_timeout_to_deadline(long timeout);
/* Jiffies left until @deadline, at least 1 while it has not passed. */
long hetmem_deadline_to_timeout(int64_t deadline);
/* poll(2) timeout for @deadline: ms left rounded up, -1 for no deadline. */
int hetmem_deadline_to_poll_ms(int64_t deadline);

/* liburcu's fork handlers, registered by hetmem_core_init(). */
void hetmem_rcu_fork_handlers(void (**prepare)(void), void (**parent)(void),
			      void (**child)(void));

/* Library-wide fork handlers are registered once, from hetmem_core_init(). */
void hetmem_core_init(void);

#endif /* HETMEM_SRC_CORE_INTERNAL_H */
