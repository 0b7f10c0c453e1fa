/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.h: the C ABI of the ioasidd client library (C++: include/ioasid/client.hpp), in the
 * conventions of ioasid.h (0 or a negative errno; out-parameters written only on success;
 * argument structs start with `uint32_t size`; thread-safe).
 *
 * ioasid_backend_daemon_create() gives a struct ioasid_backend (ioasid.h) whose PASIDs live in the
 * host daemon: every ioasid_backend_* call and ioasid_vtd_device_create() accept it. On a broken
 * connection a call reconnects with backoff, resumes the session and retries with the same request
 * id (exactly-once); timeout_ms bounds each call (-ETIMEDOUT). ioasid_backend_destroy()
 * disconnects and leaves the session to the daemon's grace period (resumable with its token);
 * ioasid_backend_daemon_close_session() ends it and frees its PASIDs.
 *
 * Errors besides ioasid.h's: -EPERM the policy refuses these credentials; -EEXIST the VM's
 * session is held by another connection; -ETIMEDOUT; -ENOENT (any call) the session is gone.
 */
#ifndef IOASID_CLIENT_H
#define IOASID_CLIENT_H

#include <stdint.h>

#include "ioasid/ioasid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IOASID_DAEMON_TOKEN_SIZE 16
/* ioasid_daemon_config.flags: resume_token is valid (resume an earlier process's session). */
#define IOASID_DAEMON_F_RESUME (1u << 0)

struct ioasid_daemon_config {
  uint32_t size;  /* sizeof(struct ioasid_daemon_config) */
  uint32_t flags; /* IOASID_DAEMON_F_*; other bits must be 0 */
  const char* socket_path;
  uint64_t vm_token;   /* the VM's identity */
  uint32_t quota;      /* >= 1 for a new session; 0 with IOASID_DAEMON_F_RESUME keeps the set's */
  uint32_t timeout_ms; /* per call, creation included; 0: no limit */
  uint8_t resume_token[IOASID_DAEMON_TOKEN_SIZE];
};

/* Connects to ioasidd and opens (or resumes) the VM's session.
 * Returns 0, -EINVAL (NULL or empty path, size, unknown flag, quota 0 without resume, zero
 * token), -E2BIG, -EPERM, -EEXIST, -ENOSPC, -ETIMEDOUT, -ENOMEM, -EIO. */
IOASID_API int ioasid_backend_daemon_create(const struct ioasid_daemon_config* config,
                                            struct ioasid_backend** out);

struct ioasid_daemon_session {
  uint32_t size;    /* in: sizeof(struct ioasid_daemon_session); fields beyond it are not written */
  uint32_t resumed; /* 1: creation resumed an existing session (its PASIDs are still there) */
  uint32_t grace_seconds;
  uint32_t reserved0;
  uint8_t resume_token[IOASID_DAEMON_TOKEN_SIZE]; /* keep it to resume after a restart */
};
/* Returns 0, -EINVAL (not a daemon backend, size too small). */
IOASID_API int ioasid_backend_daemon_session(struct ioasid_backend* backend,
                                             struct ioasid_daemon_session* out);

/* Ends the session: the daemon frees every PASID of the VM. Later calls return -ENOENT.
 * Returns 0, -EINVAL (not a daemon backend), -ETIMEDOUT, -EIO. */
IOASID_API int ioasid_backend_daemon_close_session(struct ioasid_backend* backend);

/* Reference and lookup calls of any backend (ioasid.h has alloc, free, bind, unbind).
 * put stores whether the ID was released in *released (may be NULL). */
IOASID_API int ioasid_backend_get(struct ioasid_backend* backend, ioasid_t id);
IOASID_API int ioasid_backend_put(struct ioasid_backend* backend, ioasid_t id, bool* released);
IOASID_API int ioasid_backend_find_by_spid(struct ioasid_backend* backend, ioasid_t spid,
                                           ioasid_t* out);

#ifdef __cplusplus
}
#endif

#endif /* IOASID_CLIENT_H */
