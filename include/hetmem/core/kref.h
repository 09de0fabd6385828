/* SPDX-License-Identifier: MIT */
/*
 * hetmem - reference counts.
 */
#ifndef HETMEM_CORE_KREF_H
#define HETMEM_CORE_KREF_H

#include <stdbool.h>
#include <hetmem/core/compiler.h>

/**
 * DOC: Reference counts
 *
 * A plain unsigned int driven through the compiler's __atomic builtins
 * rather than a C11 _Atomic member, so that structures embedding it (struct
 * dma_fence) stay valid C++ for consumers that include the headers from
 * C++. Increments are relaxed (a reference can only be taken by someone who
 * already holds one); the final decrement is acq_rel so that the releasing
 * thread observes every write made under other references.
 */
struct hetmem_kref {
	unsigned int refcount;
};

static inline void hetmem_kref_init(struct hetmem_kref *kref)
{
	__atomic_store_n(&kref->refcount, 1, __ATOMIC_RELAXED);
}

static inline unsigned int hetmem_kref_read(const struct hetmem_kref *kref)
{
	return __atomic_load_n(&kref->refcount, __ATOMIC_RELAXED);
}

static inline void hetmem_kref_get(struct hetmem_kref *kref)
{
	__atomic_fetch_add(&kref->refcount, 1, __ATOMIC_RELAXED);
}

/* Take a reference unless the count already dropped to zero. */
static inline bool hetmem_kref_get_unless_zero(struct hetmem_kref *kref)
{
	unsigned int old = __atomic_load_n(&kref->refcount, __ATOMIC_RELAXED);

	do {
		if (old == 0)
			return false;
	} while (!__atomic_compare_exchange_n(&kref->refcount, &old, old + 1,
					      true, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return true;
}

/* Drop a reference; call @release and return true when it was the last. */
static inline bool hetmem_kref_put(struct hetmem_kref *kref,
				   void (*release)(struct hetmem_kref *kref))
{
	if (__atomic_sub_fetch(&kref->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
		release(kref);
		return true;
	}
	return false;
}

#endif /* HETMEM_CORE_KREF_H */
