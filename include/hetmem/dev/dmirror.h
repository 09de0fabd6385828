/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror, the reference mirroring device: the semantics of the
 * kernel's HMM test device (lib/test_hmm.c) as a C API.
 */
#ifndef HETMEM_DEV_DMIRROR_H
#define HETMEM_DEV_DMIRROR_H

#include <stdint.h>
#include <linux/ioctl.h>
#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: The dmirror device
 *
 * dmirror is a device built only on hetmem's public API, the way an
 * out-of-tree driver would be, and behaves like the kernel's HMM test
 * device so that the HMM selftests port one to one. There are
 * HETMEM_DMIRROR_NDEVICES devices; 0 and 1 have device-private memory,
 * 2 and 3 would be device-coherent and do not exist here (as on a kernel
 * loaded without the "special purpose memory" parameters).
 *
 * hetmem_dmirror_open() is the open() of /dev/hmm_dmirrorN: it binds a
 * mirror to the calling process's address space with an interval notifier
 * over the whole address space, and a device page table. Commands take
 * the kernel uapi's struct hmm_dmirror_cmd and its numbers
 * (HMM_DMIRROR_READ, ...), with the same validation, the same cpages and
 * faults results, and the same rule that nothing is written back on
 * error. hetmem_dmirror_cmd() is the ioctl(); no file descriptor is
 * involved.
 *
 * The device reaches system memory through the pfn encoding of
 * <hetmem/mm/hmm.h> with fault-safe copies (process_vm_readv/writev on
 * the own process): a page that the CPU unmapped or write-protected
 * meanwhile makes the access fail, the entry is dropped and the device
 * faults again, so READ and WRITE end with the data the CPU sees or with
 * -EFAULT / -EPERM, never with a crash or stale data.
 */

#define HETMEM_DMIRROR_NDEVICES 4

/* The kernel test device's uapi (lib/test_hmm_uapi.h). */
struct hmm_dmirror_cmd {
	uint64_t addr;		/* in: page-aligned start address */
	uint64_t ptr;		/* in: buffer for data in or out */
	uint64_t npages;	/* in: number of pages (FLAGS: the flags) */
	uint64_t cpages;	/* out: pages copied or processed */
	uint64_t faults;	/* out: device fault rounds */
};

#define HMM_DMIRROR_READ		_IOWR('H', 0x00, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_WRITE		_IOWR('H', 0x01, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_DEV	_IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS	_IOWR('H', 0x03, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_SNAPSHOT		_IOWR('H', 0x04, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_RELEASE		_IOWR('H', 0x07, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_FLAGS		_IOWR('H', 0x08, struct hmm_dmirror_cmd)

#define HMM_DMIRROR_FLAG_FAIL_ALLOC	(1ULL << 0)

/* SNAPSHOT: one byte per page. Kinds are values, READ/WRITE/PMD/PUD bits. */
enum {
	HMM_DMIRROR_PROT_ERROR			= 0xFF,
	HMM_DMIRROR_PROT_NONE			= 0x00,
	HMM_DMIRROR_PROT_READ			= 0x01,
	HMM_DMIRROR_PROT_WRITE			= 0x02,
	HMM_DMIRROR_PROT_PMD			= 0x04,
	HMM_DMIRROR_PROT_PUD			= 0x08,
	HMM_DMIRROR_PROT_ZERO			= 0x10,
	HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL	= 0x20,
	HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE	= 0x30,
	HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL	= 0x40,
	HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE	= 0x50,
};

/* Device memory types, as reported by hetmem_dmirror_device_type(). */
enum {
	HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1,
	HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2,
};

struct dmirror;

/* Per-device counters for `hetmem stat`. */
struct hetmem_dmirror_stats {
	uint64_t mirrors;		/* open mirrors */
	uint64_t mirrored_pages;	/* device page-table entries in use */
	uint64_t table_bytes;		/* memory of the device page tables */
	uint64_t invalidations;		/* callbacks that erased entries */
	uint64_t fault_rounds;		/* device fault rounds */
	uint64_t reads, writes, snapshots;
	uint64_t chunks;		/* device memory chunks created */
	uint64_t capacity_pages;	/* device memory limit, in pages */
	uint64_t device_pages;		/* device pages in chunks */
	uint64_t device_pages_used;	/* device pages holding data */
	uint64_t migrated_to_dev;	/* pages moved to the device */
	uint64_t migrated_to_sys;	/* pages moved back (commands, faults) */
	uint64_t cpu_faults;		/* migrate_to_ram calls */
	uint64_t evicted;		/* pages evicted to make room */
	uint64_t exclusive;		/* pages made device-exclusive */
};

HETMEM_API int hetmem_dmirror_open(unsigned int minor, struct dmirror **mirror);
HETMEM_API void hetmem_dmirror_close(struct dmirror *mirror);
HETMEM_API int hetmem_dmirror_cmd(struct dmirror *mirror, unsigned long request,
				  struct hmm_dmirror_cmd *cmd);
HETMEM_API int hetmem_dmirror_device_type(unsigned int minor);
HETMEM_API int hetmem_dmirror_get_stats(unsigned int minor,
					struct hetmem_dmirror_stats *stats);
HETMEM_API int hetmem_dmirror_set_capacity(unsigned int minor, uint64_t bytes);

HETMEM_END_DECLS

#endif /* HETMEM_DEV_DMIRROR_H */
