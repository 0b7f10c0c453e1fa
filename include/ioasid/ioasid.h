/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ioasid.h: the C ABI of libioasid, for VMMs and tools written in C (or bound from Rust).
 *
 * It covers the whole IOASID space of include/ioasid/space.hpp: sets, quotas, IDs, references,
 * private data with lock-free lookup, guest PASIDs (SPIDs), notifiers and custom allocators,
 * plus the host backend a vIOMMU device model calls for one VM and the VT-d virtual command
 * device model a VMM wires to its guest's MMIO (include/ioasid/vtd_device.hpp, docs/vtd.md).
 *
 * Conventions
 *  - Handles are opaque pointers (struct ioasid_space) or 64-bit values (ioasid_set_t).
 *  - Every function returning int returns 0 on success or a negative errno; results go to
 *    out-parameters, which are written only on success. No exception crosses this ABI.
 *  - Ranges are inclusive: [min, max].
 *  - An ID owned by another set is reported as -ENOENT, like an ID that does not exist.
 *  - Argument structs begin with `uint32_t size` (set it to sizeof the struct you were built
 *    with); bytes the library does not know must be zero (else -E2BIG).
 *  - Context: all functions are thread-safe. Callbacks (allocator ops, notifiers, log sink) run
 *    under the space's writer lock and may only call ioasid_find() / ioasid_find_by_spid();
 *    other calls from them return -EDEADLK.
 *
 * Errors (the meaning is the same in every function):
 *   -EINVAL bad argument or handle   -ERANGE outside the space / allocator answer out of range
 *   -ENOENT no such ID, set or SPID  -ENOSPC no free ID, or capacity short for a quota
 *   -EDQUOT set quota reached        -EBUSY FREE_PENDING ID or dying set
 *   -EEXIST duplicate                -EAGAIN custom allocator while the default one holds IDs
 *   -ENOMEM out of memory            -EDEADLK called from a callback
 *   -EOVERFLOW refcount overflow     -E2BIG unknown nonzero bytes in an argument struct
 *   -EIO a custom allocator or backend failed
 */
#ifndef IOASID_IOASID_H
#define IOASID_IOASID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioasid/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IOASID_VERSION_MAJOR 0
#define IOASID_VERSION_MINOR 1
#define IOASID_VERSION_PATCH 0
#define IOASID_VERSION \
  ((IOASID_VERSION_MAJOR << 16) | (IOASID_VERSION_MINOR << 8) | IOASID_VERSION_PATCH)

typedef uint32_t ioasid_t;
#define IOASID_INVALID UINT32_MAX

/* A set handle; IOASID_SET_ANY is accepted by find, get, put and query. */
typedef uint64_t ioasid_set_t;
#define IOASID_SET_ANY UINT64_MAX

struct ioasid_space;
struct ioasid_backend;
struct ioasid_vtd_device;

/* Runtime version, IOASID_VERSION of the library actually loaded. */
IOASID_API uint32_t ioasid_version(void);
/* A static string describing a negative errno returned by this library ("no such ID"). */
IOASID_API const char* ioasid_strerror(int err);

/* ---- space ------------------------------------------------------------------------------ */

enum ioasid_policy { IOASID_POLICY_LOWEST_FREE = 0, IOASID_POLICY_CYCLIC = 1 };
enum ioasid_log_level {
  IOASID_LOG_DEBUG = 0,
  IOASID_LOG_INFO = 1,
  IOASID_LOG_WARNING = 2,
  IOASID_LOG_ERROR = 3
};

struct ioasid_range {
  ioasid_t first; /* inclusive */
  ioasid_t last;  /* inclusive */
};

typedef void (*ioasid_log_fn)(void* opaque, int level, const char* message);

struct ioasid_space_config {
  uint32_t size;       /* sizeof(struct ioasid_space_config) */
  uint32_t width_bits; /* 1..32; 0 means 20 */
  uint32_t policy;     /* enum ioasid_policy */
  uint32_t log_level;  /* enum ioasid_log_level */
  /* IDs never handed out. NULL with count 0 means the default, {0, 0} (PASID 0). To reserve
   * nothing pass a non-NULL pointer with count 0. */
  const struct ioasid_range* reserved;
  uint32_t reserved_count;
  uint32_t reserved0; /* must be 0 */
  uint64_t capacity;  /* 0: every non-reserved ID */
  ioasid_log_fn log_fn;
  void* log_opaque;
};

/* Creates a space; config may be NULL for all defaults. Returns 0, -EINVAL, -E2BIG, -ENOMEM. */
IOASID_API int ioasid_space_create(const struct ioasid_space_config* config,
                                   struct ioasid_space** out);
/* Destroys a space (NULL is ignored); no other thread may use it. */
IOASID_API void ioasid_space_destroy(struct ioasid_space* space);

struct ioasid_stats {
  uint32_t size; /* in: sizeof(struct ioasid_stats); fields beyond it are not written */
  uint32_t custom_allocator_active;
  uint64_t live_ids, free_pending_ids, reserved_ids, capacity, quota_reserved;
  uint64_t sets, dying_sets, orphaned_ids, orphaned_total;
  uint64_t allocs, releases, quota_refusals, exhausted_refusals, allocator_rejects;
  uint64_t allocator_groups, table_bytes;
};
/* Returns 0, -EINVAL (size too small). */
IOASID_API int ioasid_space_stats(const struct ioasid_space* space, struct ioasid_stats* out);
/* Waits for every ioasid_find() in progress. Not from inside a validator. */
IOASID_API void ioasid_synchronize(const struct ioasid_space* space);
/* Releases empty table leaves; returns bytes given back. */
IOASID_API uint64_t ioasid_space_trim(struct ioasid_space* space);

/* ---- sets ------------------------------------------------------------------------------- */

struct ioasid_set_info {
  ioasid_set_t set;
  uint64_t owner_token;
  uint32_t quota, count, bound, peak;
  uint64_t quota_refusals;
  uint32_t dying; /* 1 while destroy waits for FREE_PENDING members */
  uint32_t reserved0;
};

/* Returns 0, -EINVAL (quota 0), -EEXIST, -EBUSY, -ENOSPC, -ENOMEM, -EDEADLK. */
IOASID_API int ioasid_set_create(struct ioasid_space* space, uint64_t owner_token, uint32_t quota,
                                 ioasid_set_t* out);
/* Frees every member. *gone (may be NULL) is true when the set no longer exists, false when it
 * waits for FREE_PENDING members. Returns 0, -ENOENT, -EBUSY, -EDEADLK. */
IOASID_API int ioasid_set_destroy(struct ioasid_space* space, ioasid_set_t set, bool* gone);
/* Returns 0, -ENOENT, -EINVAL, -ENOSPC, -EBUSY, -EDEADLK. */
IOASID_API int ioasid_set_quota(struct ioasid_space* space, ioasid_set_t set, uint32_t quota);
/* Returns 0, -ENOENT. */
IOASID_API int ioasid_set_query(const struct ioasid_space* space, ioasid_set_t set,
                                struct ioasid_set_info* out);
/* Returns 0, -ENOENT. */
IOASID_API int ioasid_set_find(const struct ioasid_space* space, uint64_t owner_token,
                               ioasid_set_t* out);

/* ---- IDs -------------------------------------------------------------------------------- */

/* Allocates an ID in [min, max]. Returns 0, -EINVAL, -ERANGE, -ENOENT, -EBUSY, -EDQUOT,
 * -ENOSPC, -EEXIST, -EIO, -ENOMEM, -EDEADLK. */
IOASID_API int ioasid_alloc(struct ioasid_space* space, ioasid_set_t set, ioasid_t min,
                            ioasid_t max, void* priv, ioasid_t* out);
/* The owner frees an ID (FREE_PENDING while referenced). Returns 0, -ERANGE, -ENOENT, -EBUSY,
 * -EDEADLK. */
IOASID_API int ioasid_free(struct ioasid_space* space, ioasid_set_t set, ioasid_t id);
/* Returns 0, -ERANGE, -ENOENT, -EBUSY, -EOVERFLOW, -EDEADLK. */
IOASID_API int ioasid_get(struct ioasid_space* space, ioasid_set_t set, ioasid_t id);
/* *released (may be NULL) tells whether the ID was released. Returns 0, -ERANGE, -ENOENT,
 * -EDEADLK. */
IOASID_API int ioasid_put(struct ioasid_space* space, ioasid_set_t set, ioasid_t id,
                          bool* released);

/* Runs inside find's read-side critical section; return false to make find fail with -ENOENT. */
typedef bool (*ioasid_validator_fn)(void* opaque, void* priv);
/* Lock-free lookup. validator may be NULL. Returns 0, -ERANGE, -ENOENT. */
IOASID_API int ioasid_find(const struct ioasid_space* space, ioasid_set_t set, ioasid_t id,
                           ioasid_validator_fn validator, void* opaque, void** out);
/* Replaces the private data; returns once no reader can see the old one. Returns 0, -ERANGE,
 * -ENOENT, -EDEADLK. */
IOASID_API int ioasid_set_data(struct ioasid_space* space, ioasid_t id, void* priv);

/* Binds (takes a reference, optional guest PASID spid; IOASID_INVALID for none).
 * Returns 0, -ERANGE, -ENOENT, -EBUSY, -EEXIST, -EOVERFLOW, -ENOMEM, -EDEADLK. */
IOASID_API int ioasid_bind(struct ioasid_space* space, ioasid_set_t set, ioasid_t id,
                           ioasid_t spid);
/* Returns 0, -ERANGE, -ENOENT, -EDEADLK. */
IOASID_API int ioasid_unbind(struct ioasid_space* space, ioasid_set_t set, ioasid_t id);
/* Returns 0, -ENOENT. */
IOASID_API int ioasid_find_by_spid(const struct ioasid_space* space, ioasid_set_t set,
                                   ioasid_t spid, ioasid_t* out);

/* ---- notifiers -------------------------------------------------------------------------- */

enum ioasid_event_type {
  IOASID_EVENT_ALLOC = 1,
  IOASID_EVENT_FREE = 2,
  IOASID_EVENT_BIND = 3,
  IOASID_EVENT_UNBIND = 4
};
#define IOASID_EVENT_MASK(type) (1u << ((type)-1))
#define IOASID_EVENT_MASK_ALL 0xFu

struct ioasid_event {
  uint32_t type; /* enum ioasid_event_type */
  ioasid_t id;
  ioasid_t spid; /* IOASID_INVALID when none */
  uint32_t reserved0;
  ioasid_set_t set;
  uint64_t owner_token;
  void* priv;
};
typedef void (*ioasid_notifier_fn)(void* opaque, const struct ioasid_event* event);

/* Global notifier (every set). Returns 0, -EINVAL, -ENOMEM, -EDEADLK. */
IOASID_API int ioasid_notifier_register(struct ioasid_space* space, uint32_t event_mask,
                                        ioasid_notifier_fn fn, void* opaque, uint64_t* out);
/* Notifier for the set of owner_token, which may not exist yet. Same returns. */
IOASID_API int ioasid_notifier_register_owner(struct ioasid_space* space, uint64_t owner_token,
                                              uint32_t event_mask, ioasid_notifier_fn fn,
                                              void* opaque, uint64_t* out);
/* Returns 0, -ENOENT, -EDEADLK. */
IOASID_API int ioasid_notifier_unregister(struct ioasid_space* space, uint64_t notifier);

/* ---- custom allocators ------------------------------------------------------------------ */

struct ioasid_allocator_ops {
  /* Allocate in [min, max]: store the ID in *out, return 0 or a negative errno. */
  int (*alloc)(void* pdata, ioasid_t min, ioasid_t max, ioasid_t* out);
  void (*free)(void* pdata, ioasid_t id);
  void* pdata;
};
/* *ops must stay valid until unregistered. Returns 0, -EINVAL, -EAGAIN, -EEXIST, -ENOMEM,
 * -EDEADLK. */
IOASID_API int ioasid_allocator_register(struct ioasid_space* space,
                                         const struct ioasid_allocator_ops* ops);
/* Never fails; unknown ops are logged and ignored. */
IOASID_API void ioasid_allocator_unregister(struct ioasid_space* space,
                                            const struct ioasid_allocator_ops* ops);

/* ---- host backend ----------------------------------------------------------------------- */

/* The host backend a device model calls for one VM: here, the set `set` of an in-process space,
 * which must outlive it. Returns 0, -ENOENT (no such set), -ENOMEM. */
IOASID_API int ioasid_backend_local_create(struct ioasid_space* space, ioasid_set_t set,
                                           struct ioasid_backend** out);
IOASID_API void ioasid_backend_destroy(struct ioasid_backend* backend);
IOASID_API int ioasid_backend_alloc(struct ioasid_backend* backend, ioasid_t min, ioasid_t max,
                                    ioasid_t* out);
IOASID_API int ioasid_backend_free(struct ioasid_backend* backend, ioasid_t id);
IOASID_API int ioasid_backend_bind(struct ioasid_backend* backend, ioasid_t id, ioasid_t spid);
IOASID_API int ioasid_backend_unbind(struct ioasid_backend* backend, ioasid_t id);

/* ---- VT-d virtual command device model -------------------------------------------------- */
/*
 * The register-level model of the Intel VT-d virtual command registers (VCCAP / VCMD / VCRSP)
 * that a VMM calls from its MMIO trap handlers, so that a guest VT-d driver (Linux 5.8-6.3)
 * allocates PASIDs from the host through a backend. docs/vtd.md describes the registers, both
 * layouts and every decision; the C++ class is ioasid::VtdVcmdDevice (ioasid/vtd_device.hpp).
 *
 * Lifetime: the backend must outlive every device created over it (destroy the devices first).
 * Several devices (vIOMMUs) of one VM share one backend, hence one set. Destroying a device frees
 * nothing: the PASIDs it handed out stay in the VM's set until the guest frees them or the set is
 * destroyed.
 */

enum ioasid_vtd_layout {
  IOASID_VTD_LAYOUT_LEGACY = 0, /* VT-d 3.0 §10.4.43-45: VCCAP 0xE00, VCMD 0xE10, VCRSP 0xE20 */
  IOASID_VTD_LAYOUT_REV3_3 = 1  /* VT-d 3.3 §10.4.43-46: VCMD 0xE00, VCRSP 0xE10, VCCAP 0xE30 */
};
enum ioasid_vtd_completion {
  IOASID_VTD_COMPLETION_IMMEDIATE = 0, /* the command completes inside the VCMD write */
  IOASID_VTD_COMPLETION_ASYNC = 1      /* a worker thread completes it; the guest polls IP */
};

struct ioasid_vtd_config {
  uint32_t size;       /* sizeof(struct ioasid_vtd_config) */
  uint32_t layout;     /* enum ioasid_vtd_layout */
  uint32_t completion; /* enum ioasid_vtd_completion */
  uint32_t reserved0;  /* must be 0 */
  /* Register values the model reads back at CAP (0x08), ECAP (0x10) and VCCAP; 0 means the
   * default: CAP.CM (bit 7); ECAP.PASID | ECAP.SMTS | ECAP.VCS (bits 40, 43, 44); VCCAP.PAS
   * (bit 0). Commands are accepted only when ECAP.VCS and VCCAP.PAS are set. */
  uint64_t cap;
  uint64_t ecap;
  uint64_t vccap;
  /* The host PASIDs ALLOC asks the backend for, inclusive, within [1, 0xFFFFF]; 0 means 1 for
   * pasid_min and 0xFFFFF for pasid_max. The range must lie in the backend's space (a space
   * narrower than 20 bits needs pasid_max set), else every ALLOC answers NO_PASID. */
  ioasid_t pasid_min;
  ioasid_t pasid_max;
  /* Where guest-triggered anomalies are reported (NULL: nowhere); rate-limiting is the sink's
   * business. Called from the thread that runs the command (a vCPU or the worker). */
  ioasid_log_fn log_fn;
  void* log_opaque;
};

/* Creates a device model over backend (the VM's set), which must outlive it; config may be NULL
 * for all defaults (VT-d 3.3 layout, immediate completion). The asynchronous mode starts a worker
 * thread. Returns 0, -EINVAL (NULL backend or out, size too small, reserved0, layout, completion
 * or pasid range invalid), -E2BIG (unknown nonzero bytes), -ENOMEM, -EIO (no worker thread).
 * Context: any thread. */
IOASID_API int ioasid_vtd_device_create(struct ioasid_backend* backend,
                                        const struct ioasid_vtd_config* config,
                                        struct ioasid_vtd_device** out);
/* Destroys a device (NULL is ignored). In asynchronous mode a command in progress completes
 * first. Frees no PASID. Context: no MMIO call on this device may run or follow. */
IOASID_API void ioasid_vtd_device_destroy(struct ioasid_vtd_device* device);
/* A guest read of size bytes (4 or 8) at offset in the VT-d register window. Returns the register
 * value (the addressed half for a 4-byte read), or 0 for an ignored access: NULL device, another
 * size, unaligned, or an offset outside the registers of the layout (counted by the device).
 * Context: any thread (several vCPUs at once); never blocks. */
IOASID_API uint64_t ioasid_vtd_mmio_read(struct ioasid_vtd_device* device, uint64_t offset,
                                         unsigned size);
/* A guest write of size bytes (4 or 8) at offset. Never fails: ignored accesses (NULL device,
 * bad size or alignment, read-only or unknown registers, a VCMD write while VCRSP.IP is set) are
 * counted. A VCMD command runs on an 8-byte write or when its high half (offset + 4) lands after
 * the low half. Context: any thread; in immediate mode the backend call runs inside this write. */
IOASID_API void ioasid_vtd_mmio_write(struct ioasid_vtd_device* device, uint64_t offset,
                                      unsigned size, uint64_t value);
/* The CAP / ECAP bits the VMM must advertise in its own VT-d capability registers (the configured
 * values). Returns 0 for a NULL device. Context: any thread. */
IOASID_API uint64_t ioasid_vtd_cap_bits(const struct ioasid_vtd_device* device);
IOASID_API uint64_t ioasid_vtd_ecap_bits(const struct ioasid_vtd_device* device);

#ifdef __cplusplus
}
#endif

#endif /* IOASID_IOASID_H */
