/* SPDX-License-Identifier: MIT */
/*
 * hetmem - OPT-IN kernel infrastructure spellings for code ported from a
 * kernel driver.
 */
#ifndef HETMEM_LINUX_COMPAT_H
#define HETMEM_LINUX_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <hetmem/core/compiler.h>
#include <hetmem/core/errno.h>
#include <hetmem/core/kref.h>
#include <hetmem/core/list.h>
#include <hetmem/core/lockdep.h>
#include <hetmem/core/rcu.h>
#include <hetmem/core/spinlock.h>
#include <hetmem/core/time.h>
#include <hetmem/core/warn.h>

/**
 * DOC: Kernel spellings, on request
 *
 * hetmem's installed headers never define the kernel's infrastructure names
 * (u64, spinlock_t, struct list_head, container_of, WARN_ON, ...): Mesa and
 * libdrm define some of them differently, and a library must not collide
 * with its users. Driver logic brought over from the kernel can include
 * this header to get those spellings mapped onto hetmem's prefixed types,
 * so that it compiles with few edits. Include it only in such code, never
 * from a header that other projects include.
 *
 * Memory allocation maps onto malloc: GFP flags are accepted and ignored
 * (allocation in userspace does not enter reclaim the way the kernel's
 * does; failure is still possible and must be handled).
 */

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef hetmem_ktime_t ktime_t;
typedef hetmem_spinlock_t spinlock_t;
typedef unsigned int gfp_t;

#define GFP_KERNEL 0u
#define GFP_NOWAIT 0u
#define GFP_ATOMIC 0u
#define __GFP_NOWARN 0u

#ifndef ERESTARTSYS
#define ERESTARTSYS HETMEM_ERESTARTSYS
#endif
#define MAX_ERRNO HETMEM_MAX_ERRNO
#define MAX_SCHEDULE_TIMEOUT HETMEM_MAX_SCHEDULE_TIMEOUT
#define HZ HETMEM_HZ
#define jiffies (hetmem_jiffies())
#define msecs_to_jiffies(m) hetmem_msecs_to_jiffies(m)
#define usecs_to_jiffies(u) hetmem_usecs_to_jiffies(u)
#define nsecs_to_jiffies(n) hetmem_nsecs_to_jiffies(n)
#define jiffies_to_msecs(j) hetmem_jiffies_to_msecs(j)
#define ktime_get() hetmem_ktime_get()
#define ktime_add_ns(kt, ns) ((kt) + (ns))
#define ktime_sub(a, b) ((a) - (b))
#define ktime_to_ns(kt) ((int64_t)(kt))
#define ns_to_ktime(ns) ((hetmem_ktime_t)(ns))

#define container_of(ptr, type, member) hetmem_container_of(ptr, type, member)
#define likely(x) hetmem_likely(x)
#define unlikely(x) hetmem_unlikely(x)
#define WARN_ON(cond) HETMEM_WARN_ON(cond)
#define WARN(cond, ...) HETMEM_WARN(cond, __VA_ARGS__)
#define WARN_ON_ONCE(cond) HETMEM_WARN_ON(cond)

#define list_head hetmem_list_head
#define LIST_HEAD_INIT(name) HETMEM_LIST_HEAD_INIT(name)
#define INIT_LIST_HEAD(head) hetmem_list_init(head)
#define list_empty(head) hetmem_list_empty(head)
#define list_add(n, h) hetmem_list_add(n, h)
#define list_add_tail(n, h) hetmem_list_add_tail(n, h)
#define list_del_init(n) hetmem_list_del_init(n)
#define list_del(n) hetmem_list_del_init(n)
#define list_entry(p, t, m) hetmem_list_entry(p, t, m)
#define list_first_entry(h, t, m) hetmem_list_first_entry(h, t, m)
#define list_for_each_safe(p, n, h) hetmem_list_for_each_safe(p, n, h)
#define list_for_each_entry(pos, head, member)				\
	for (pos = list_entry((head)->next, __typeof__(*pos), member);	\
	     &pos->member != (head);					\
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))

#define kref hetmem_kref
#define kref_init(k) hetmem_kref_init(k)
#define kref_get(k) hetmem_kref_get(k)
#define kref_get_unless_zero(k) hetmem_kref_get_unless_zero(k)
#define kref_put(k, release) hetmem_kref_put(k, release)
#define kref_read(k) hetmem_kref_read(k)

#define spin_lock_init(l) hetmem_spin_lock_init(l)
#define spin_lock(l) hetmem_spin_lock(l)
#define spin_unlock(l) hetmem_spin_unlock(l)
#define spin_trylock(l) hetmem_spin_trylock(l)
#define spin_lock_irq(l) hetmem_spin_lock(l)
#define spin_unlock_irq(l) hetmem_spin_unlock(l)
#define spin_lock_irqsave(l, flags) ((void)(flags), hetmem_spin_lock(l))
#define spin_unlock_irqrestore(l, flags) ((void)(flags), hetmem_spin_unlock(l))
#define lockdep_assert_held(l) hetmem_lockdep_assert_held(&(l)->dep_map)
#define might_sleep() hetmem_might_sleep(__builtin_return_address(0))

#define rcu_read_lock() hetmem_rcu_read_lock()
#define rcu_read_unlock() hetmem_rcu_read_unlock()
#define synchronize_rcu() hetmem_synchronize_rcu()

#define kmalloc(size, gfp) ((void)(gfp), malloc(size))
#define kzalloc(size, gfp) ((void)(gfp), calloc(1, (size)))
#define kcalloc(n, size, gfp) ((void)(gfp), calloc((n), (size)))
#define kfree(p) free(p)

#define ERR_PTR(err) ((void *)(long)(err))
#define PTR_ERR(ptr) ((long)(ptr))
#define IS_ERR(ptr) \
	((unsigned long)(const void *)(ptr) >= (unsigned long)-HETMEM_MAX_ERRNO)
#define IS_ERR_OR_NULL(ptr) (!(ptr) || IS_ERR(ptr))

#endif /* HETMEM_LINUX_COMPAT_H */
