/* SPDX-License-Identifier: MIT */
/*
 * hetmem - passing buffers and fences between processes over a unix
 * socket, with validation of everything a peer sends.
 */
#ifndef HETMEM_BUF_TRANSFER_H
#define HETMEM_BUF_TRANSFER_H

#include <stdint.h>

#include <hetmem/core/compiler.h>

HETMEM_BEGIN_DECLS

/**
 * DOC: Buffer and fence transfer between untrusting processes
 *
 * A hetmem buffer is a memfd (tmpfs or hugetlbfs) sealed against resizing,
 * the userspace stand-in for a dma-buf, whose size cannot change either.
 * hetmem_buf_send() passes one over a unix socket (SCM_RIGHTS) together
 * with a fixed 24-byte record advertising its size; hetmem_buf_recv()
 * receives it and validates it before the caller can touch it;
 * hetmem_buf_map() maps it. hetmem_fence_send() and hetmem_fence_recv()
 * do the same for sync_file descriptors (hetmem's or the kernel's).
 *
 * Why sealing, and why validation: a MAP_SHARED mapping raises SIGBUS on
 * any access beyond the file's current end, and the default action kills
 * the process. A peer that lies about the size, or truncates the file
 * after the receiver mapped it, could therefore kill the receiver. With
 * F_SEAL_SHRINK set, nobody (not even the creator) can make the file
 * smaller, ever: seals can be added but never removed. So once the
 * receiver has seen SHRINK among the seals and st_size covering its
 * mapping, no access inside the mapping can fault. Sealing is what makes
 * SIGBUS impossible; validation is what proves the seal is there. An
 * unsealed memfd is rejected before it is ever mapped.
 *
 * Validation order (hetmem_buf_validate(), also run by hetmem_buf_recv()):
 * fstat() says a regular file, fstatfs() says tmpfs or hugetlbfs (this
 * rejects pipes, sockets, devices, eventfds and files on disk or on FUSE,
 * whose mappings could block or fault), F_GET_SEALS holds every required
 * seal, st_size equals the advertised size, then the access mode: an
 * O_RDWR descriptor without write seals is required unless the caller
 * asked for read-only access (HETMEM_BUF_RDONLY). hetmem_buf_map()
 * repeats the type, SHRINK and size checks immediately before mmap(), so
 * it is safe on any descriptor, validated or not.
 *
 * Protocol: each message is one record (magic, version, kind, size,
 * flags) and exactly one descriptor. Any socket type works: a
 * SOCK_SEQPACKET or SOCK_DGRAM record must arrive whole, a SOCK_STREAM
 * record may arrive in pieces (the descriptor with its first byte, none
 * with the rest). A message with no descriptor, more than one, a cut-off
 * control message (MSG_CTRUNC), a short or long record, a wrong magic,
 * version or kind is -EPROTO, and every descriptor it carried is closed.
 * Received descriptors are close-on-exec (MSG_CMSG_CLOEXEC).
 *
 * Every receive waits at most @timeout_ms (poll(2) semantics: 0 polls
 * once, a negative value waits without limit; that is the caller's
 * choice, hetmem never picks it). A peer that exits or is killed is seen
 * as end of file: -EPIPE (or the socket's -ECONNRESET). Sends use
 * MSG_NOSIGNAL: a dead peer gives -EPIPE, never SIGPIPE.
 *
 * Limits of the model: the sender's open file description is shared with
 * the receiver (file offset, O_NONBLOCK), so never rely on either; the
 * contents of a buffer that is not write-sealed can change at any moment,
 * so copy before parsing; a sparse buffer is charged to whoever faults
 * its pages, so callers cap sizes (hetmem_buf_limits.max_size). A fence
 * from a peer may never signal: wait on it only with a timeout.
 */

/*
 * Caller asks for (or sender announces) read-only access: an O_RDONLY
 * descriptor, or a write-sealed one, is then accepted.
 */
#define HETMEM_BUF_RDONLY 0x1u

/* Seals required when the caller passes 0: F_SEAL_SHRINK | F_SEAL_GROW. */
#define HETMEM_BUF_SEALS_DEFAULT (0x0002u | 0x0004u)

/* Size cap applied when hetmem_buf_limits.max_size is 0: 1 GiB. */
#define HETMEM_BUF_MAX_SIZE_DEFAULT (1ull << 30)

/**
 * struct hetmem_buf_desc - what a sender advertises with a buffer
 * @size: size of the buffer in bytes; the descriptor's st_size must equal
 *	it exactly
 * @flags: 0 or HETMEM_BUF_RDONLY (the sender sends a read-only
 *	descriptor); advisory, the receiver checks the descriptor itself
 * @reserved: must be 0
 */
struct hetmem_buf_desc {
	uint64_t size;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * struct hetmem_buf_limits - what a receiver is willing to accept
 * @max_size: largest accepted size in bytes; 0 means
 *	HETMEM_BUF_MAX_SIZE_DEFAULT
 * @required_seals: F_SEAL_* bits the descriptor must carry; 0 means
 *	HETMEM_BUF_SEALS_DEFAULT; any other value must include F_SEAL_SHRINK
 * @flags: 0 (read-write access required) or HETMEM_BUF_RDONLY
 */
struct hetmem_buf_limits {
	uint64_t max_size;
	uint32_t required_seals;
	uint32_t flags;
};

HETMEM_API int hetmem_buf_validate(int fd, uint64_t expected_size,
				   unsigned int required_seals,
				   unsigned int flags);
HETMEM_API int hetmem_buf_map(int fd, uint64_t size, int prot, void **addr);
HETMEM_API int hetmem_buf_send(int sock, int buf_fd,
			       const struct hetmem_buf_desc *desc,
			       int timeout_ms);
HETMEM_API int hetmem_buf_recv(int sock, int *buf_fd,
			       struct hetmem_buf_desc *desc,
			       const struct hetmem_buf_limits *limits,
			       int timeout_ms);
HETMEM_API int hetmem_fence_send(int sock, int sync_file_fd, int timeout_ms);
HETMEM_API int hetmem_fence_recv(int sock, int *sync_file_fd, int timeout_ms);

HETMEM_END_DECLS

#endif /* HETMEM_BUF_TRANSFER_H */
