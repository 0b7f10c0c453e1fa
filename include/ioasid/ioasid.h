/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ioasid.h: the C ABI of libioasid, for VMMs and tools written in C (or bound from Rust).
 *
 * It covers the whole IOASID space of include/ioasid/space.hpp: sets, quotas, IDs, references,
 * private data with lock-free lookup, guest PASIDs (SPIDs), notifiers and custom allocators; the
 * host backend a vIOMMU device model calls for one VM (every ioasid::HostBackend call, over an
 * in-process space or, with ioasid/client.h, over the host daemon); and the two device models a
 * VMM wires to its guest: the VT-d virtual command registers (ioasid/vtd_device.hpp, docs/vtd.md)
 * and the virtio-iommu device with the PASID extension (ioasid/virtio_iommu_device.hpp,
 * docs/virtio-iommu-pasid.md §8), either fed by the VMM's own virtqueue code or run over the
 * library's split-virtqueue transport in guest memory, in-process or for a guest process that
 * shares a memfd (ioasid/virtio_transport.hpp, virtio_remote.hpp, docs/virtqueue.md).
 * Not here: the guest drivers (C++ only: a C VMM is the device side), the ioasidd admin calls.
 *
 * Conventions
 *  - Handles are opaque pointers (struct ioasid_space) or 64-bit values (ioasid_set_t).
 *  - Every function returning int returns 0 on success or a negative errno; results go to
 *    out-parameters, which are written only on success. No exception crosses this ABI.
 *  - Ranges are inclusive: [min, max].
 *  - An ID owned by another set is reported as -ENOENT, like an ID that does not exist.
 *  - Argument structs begin with `uint32_t size` (set it to sizeof the struct you were built
 *    with); bytes the library does not know must be zero (else -E2BIG).
 *  - Context: all space functions are thread-safe. Space callbacks (allocator ops, notifiers,
 *    its log sink) run under the space's writer lock and may only call ioasid_find() /
 *    ioasid_find_by_spid() (and queries); other calls from them return -EDEADLK. Each device
 *    section says what may run concurrently and what its callbacks may do.
 *  - Output structs that begin with `uint32_t size` (counters) are written up to that size; bytes
 *    past the fields the library knows are zeroed; a size below the first version is -EINVAL.
 *  - Functions returning a value (features, status, register reads) return 0 for a NULL handle;
 *    void functions ignore it.
 *
 * Errors (the meaning is the same in every function; each function lists the ones it returns):
 *   -EINVAL bad argument or handle   -ERANGE outside the space / allocator answer out of range /
 *                                            no mapping for a DMA address
 *   -ENOENT no such ID, set, SPID,   -ENOSPC no free ID, or capacity short for a quota, or no
 *           fault or pairing                 region slot left
 *   -EDQUOT set quota reached        -EBUSY FREE_PENDING ID, dying set, or a state that does not
 *                                           allow the call now (a device in use, a bound scope)
 *   -EEXIST duplicate                -EAGAIN custom allocator while the default one holds IDs
 *   -ENOMEM out of memory            -EDEADLK called from a callback
 *   -EOVERFLOW refcount overflow     -E2BIG unknown nonzero bytes in an argument struct
 *   -EOPNOTSUPP feature not offered  -EPERM access the mapping (or the daemon's policy) refuses
 *              or not negotiated     -ETIMEDOUT a bounded wait expired
 *   -EBADF not an open descriptor    -EIO a custom allocator, the backend or the system failed
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

enum ioasid_id_state {
  IOASID_ID_FREE = 0,
  IOASID_ID_ACTIVE = 1,
  IOASID_ID_FREE_PENDING = 2, /* freed by its owner, still referenced */
  IOASID_ID_RESERVED = 3
};
/* What a set's owner may learn about one of its IDs (C++: ioasid::IdInfo). */
struct ioasid_id_info {
  ioasid_t id;
  uint32_t state; /* enum ioasid_id_state */
  uint32_t refs;  /* references, the allocation's and every bind's included */
  uint32_t binds;
  ioasid_t spid; /* guest PASID, IOASID_INVALID when none */
  uint32_t reserved0;
};
/* What the owner may learn about one ID; set may be IOASID_SET_ANY. Returns 0, -EINVAL (NULL
 * space or out), -ERANGE, -ENOENT. */
IOASID_API int ioasid_query(const struct ioasid_space* space, ioasid_set_t set, ioasid_t id,
                            struct ioasid_id_info* out);

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
/*
 * The host backend a device model calls for one VM (C++: ioasid::HostBackend): the VM's set of the
 * host's space, either in this process (ioasid_backend_local_create) or in the host daemon
 * (ioasid_backend_daemon_create, ioasid/client.h). Every ioasid_backend_* function below works on
 * both kinds of handle. IDs of another set read as -ENOENT, like IDs that do not exist.
 *
 * Errors common to every call below: -EINVAL (NULL backend or out-parameter). Over the daemon
 * also: -ETIMEDOUT, -EIO (daemon unreachable), -ENOENT (the session is gone), -EPERM. A local
 * backend called from a callback of its space (a notifier, an allocator op) gets -EDEADLK from
 * every call that changes the space (alloc, free, get, put, bind, unbind).
 * Context: any thread; several threads may share one backend.
 */

/* Creates the backend of the set `set` of an in-process space, which must outlive it.
 * Returns 0, -EINVAL (NULL space or out), -ENOENT (no such set, or IOASID_SET_ANY), -ENOMEM. */
IOASID_API int ioasid_backend_local_create(struct ioasid_space* space, ioasid_set_t set,
                                           struct ioasid_backend** out);
/* Destroys a backend handle (NULL is ignored). Frees nothing of the set. Destroy every device
 * model created over it first. */
IOASID_API void ioasid_backend_destroy(struct ioasid_backend* backend);
/* Allocates an ID in [min, max] for the VM's set.
 * Returns 0, -EINVAL (min > max), -ERANGE (max outside the space, or a custom allocator answered
 * outside [min, max]), -ENOENT (the set was destroyed), -EBUSY (the set is dying), -EDQUOT,
 * -ENOSPC, -EEXIST (a custom allocator answered a live ID), -ENOMEM, -EIO or the errno a custom
 * allocator returned. */
IOASID_API int ioasid_backend_alloc(struct ioasid_backend* backend, ioasid_t min, ioasid_t max,
                                    ioasid_t* out);
/* Frees an ID of the set (FREE_PENDING while other references remain).
 * Returns 0, -ERANGE (outside the space), -ENOENT, -EBUSY (already FREE_PENDING). */
IOASID_API int ioasid_backend_free(struct ioasid_backend* backend, ioasid_t id);
/* Takes a reference on an ACTIVE ID of the set.
 * Returns 0, -ERANGE, -ENOENT, -EBUSY (FREE_PENDING), -EOVERFLOW. */
IOASID_API int ioasid_backend_get(struct ioasid_backend* backend, ioasid_t id);
/* Drops a reference; *released (may be NULL) tells whether that released the ID.
 * Returns 0, -ERANGE, -ENOENT. */
IOASID_API int ioasid_backend_put(struct ioasid_backend* backend, ioasid_t id, bool* released);
/* Binds an ID of the set to a device: takes a reference and, unless spid is IOASID_INVALID,
 * records spid as its guest PASID (unique in the set).
 * Returns 0, -ERANGE (id or spid outside the space), -ENOENT, -EBUSY (FREE_PENDING), -EEXIST (spid
 * maps another ID, or the ID maps another spid), -EOVERFLOW, -ENOMEM. */
IOASID_API int ioasid_backend_bind(struct ioasid_backend* backend, ioasid_t id, ioasid_t spid);
/* Drops one bind; the spid goes with the last one. Returns 0, -ERANGE, -ENOENT (also: not
 * bound). */
IOASID_API int ioasid_backend_unbind(struct ioasid_backend* backend, ioasid_t id);

/* Returns 0, -ERANGE, -ENOENT. */
IOASID_API int ioasid_backend_query(struct ioasid_backend* backend, ioasid_t id,
                                    struct ioasid_id_info* out);
/* The host ID bound to guest PASID spid in the set. Returns 0, -ENOENT. */
IOASID_API int ioasid_backend_find_by_spid(struct ioasid_backend* backend, ioasid_t spid,
                                           ioasid_t* out);
/* The VM's set: owner token, quota, count, binds, state. Returns 0, -ENOENT (the set is gone). */
IOASID_API int ioasid_backend_set_info(struct ioasid_backend* backend, struct ioasid_set_info* out);

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
/* The VCCAP value the device reads back (the configured one). Returns 0 for a NULL device.
 * Context: any thread. */
IOASID_API uint64_t ioasid_vtd_vccap_bits(const struct ioasid_vtd_device* device);

/* Counters since creation (C++: ioasid::VtdVcmdStats); each is exact, the set is not one
 * snapshot. */
struct ioasid_vtd_counters {
  uint32_t size; /* in: sizeof(struct ioasid_vtd_counters); fields beyond it are not written */
  uint32_t reserved0;
  uint64_t reads;               /* accepted reads */
  uint64_t writes;              /* accepted writes, any register */
  uint64_t commands;            /* commands run */
  uint64_t allocs;              /* ALLOC answered with a PASID */
  uint64_t alloc_no_pasid;      /* ALLOC answered NO_PASID */
  uint64_t frees;               /* FREE that freed */
  uint64_t free_invalid_pasid;  /* FREE answered INVALID_PASID */
  uint64_t undefined_cmds;      /* command codes answered UNDEFINED_CMD */
  uint64_t ignored_busy;        /* VCMD writes while VCRSP.IP was set */
  uint64_t ignored_disabled;    /* VCMD writes without ECAP.VCS and VCCAP.PAS */
  uint64_t bad_accesses;        /* odd-sized or unaligned accesses */
  uint64_t unknown_accesses;    /* offsets outside the registers of the layout */
  uint64_t ro_writes;           /* writes to CAP, ECAP, VCCAP or VCRSP */
  uint64_t reserved_bits;       /* commands with reserved bits set (run on the defined fields) */
  uint64_t split_orphans;       /* high-half VCMD writes without a latched low half */
  uint64_t backend_errors;      /* backend failures other than exhausted, quota, not found */
  uint64_t backend_bad_answers; /* ALLOC answers outside [pasid_min, pasid_max], freed back */
};
/* Returns 0, -EINVAL (NULL device or out, size too small). Context: any thread. */
IOASID_API int ioasid_vtd_stats(const struct ioasid_vtd_device* device,
                                struct ioasid_vtd_counters* out);

/* Waits until no command is in progress (VCRSP.IP clear) or timeout_ns passes. In immediate mode
 * it returns at once. Returns 0 (idle), -ETIMEDOUT, -EINVAL (NULL device).
 * Context: any thread but the device's worker: not from the log sink or from the backend's
 * custom allocator while the worker runs a command. */
IOASID_API int ioasid_vtd_wait_idle(struct ioasid_vtd_device* device, uint64_t timeout_ns);

/* ---- virtio-iommu device model ---------------------------------------------------------- */
/*
 * The host side of a virtio-iommu device with the project's PASID extension (C++:
 * ioasid::virtio::IommuDevice, ioasid/virtio_iommu_device.hpp; the behaviour and every decision:
 * docs/virtio-iommu-pasid.md §4-§8). Two ways to use it:
 *  - a VMM with its own virtqueue code (QEMU, crosvm) gathers each request-queue chain and calls
 *    ioasid_virtio_iommu_handle_request(), and drains ioasid_virtio_iommu_pop_fault() into its
 *    event queue (the fault callback says when);
 *  - a VMM without one creates an ioasid_virtio_transport over the device and guest memory
 *    (below): the library walks the split virtqueues itself.
 * Either way the VMM's DMA path calls ioasid_virtio_iommu_translate() and, in per-endpoint PASID
 * scope, ioasid_virtio_iommu_host_pasid().
 *
 * Requests and replies are the wire structs of the virtio spec (§5.13.6, <linux/virtio_iommu.h>)
 * and of the extension (docs/virtio-iommu-pasid.md §4): little endian, no padding.
 *
 * Lifetime: the backend outlives the device; a transport over the device is destroyed before it.
 * Destroying the device drops its binds (host references); PASIDs allocated through it stay in the
 * VM's set. Context: handle_request, translate, host_pasid, pop_fault, stats, features,
 * negotiated_features, pasid_scope and config_read may run concurrently from any threads;
 * set_driver_features, config_write and reset belong to the control path (safe against the others,
 * but not meaningful while requests are in flight). The backend must not call back into the
 * device.
 */

struct ioasid_virtio_iommu;

/* Feature bit numbers (virtio 1.2 §5.13.3; 56-59: the project's extension). */
#define IOASID_VIRTIO_IOMMU_F_INPUT_RANGE 0
#define IOASID_VIRTIO_IOMMU_F_DOMAIN_RANGE 1
#define IOASID_VIRTIO_IOMMU_F_MAP_UNMAP 2
#define IOASID_VIRTIO_IOMMU_F_BYPASS 3
#define IOASID_VIRTIO_IOMMU_F_PROBE 4
#define IOASID_VIRTIO_IOMMU_F_MMIO 5
#define IOASID_VIRTIO_IOMMU_F_BYPASS_CONFIG 6
#define IOASID_VIRTIO_IOMMU_F_PASID_ALLOC 56
#define IOASID_VIRTIO_IOMMU_F_PASID_MAX_REQ 57
#define IOASID_VIRTIO_IOMMU_F_PASID_BIND 58
#define IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT 59
/* Transport feature bit numbers (virtio 1.2 §6). */
#define IOASID_VIRTIO_F_INDIRECT_DESC 28
#define IOASID_VIRTIO_F_EVENT_IDX 29
#define IOASID_VIRTIO_F_VERSION_1 32
#define IOASID_VIRTIO_FEATURE(bit) (UINT64_C(1) << (bit))

/* Request types of the PASID extension (the standard ones are 1-5). */
#define IOASID_VIRTIO_IOMMU_T_ALLOC_PASID 0x80
#define IOASID_VIRTIO_IOMMU_T_FREE_PASID 0x81
#define IOASID_VIRTIO_IOMMU_T_BIND_PASID 0x82
#define IOASID_VIRTIO_IOMMU_T_UNBIND_PASID 0x83

/* The config space: struct virtio_iommu_config (40 bytes) then le32 max_pasid, 4 reserved. */
#define IOASID_VIRTIO_IOMMU_CONFIG_SIZE 48
#define IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET 36

enum ioasid_virtio_iommu_resv_subtype {
  IOASID_VIRTIO_IOMMU_RESV_RESERVED = 0, /* translate() faults there; MAP over it is refused */
  IOASID_VIRTIO_IOMMU_RESV_MSI = 1       /* translate() passes it through (the MSI doorbell) */
};
/* A reserved region of an endpoint, reported by PROBE. */
struct ioasid_virtio_iommu_resv {
  uint64_t start;     /* inclusive */
  uint64_t end;       /* inclusive */
  uint32_t subtype;   /* enum ioasid_virtio_iommu_resv_subtype */
  uint32_t reserved0; /* must be 0 */
};
/* An endpoint the VMM puts behind the vIOMMU (its ID is the one the guest names in requests). */
struct ioasid_virtio_iommu_endpoint {
  uint32_t id;
  uint32_t resv_count;
  const struct ioasid_virtio_iommu_resv* resv; /* may be NULL when resv_count is 0 */
};

/* ioasid_virtio_iommu_config.flags */
#define IOASID_VIRTIO_IOMMU_CFG_ALLOW_UNDECLARED (1u << 0) /* any endpoint ID exists */
#define IOASID_VIRTIO_IOMMU_CFG_PER_ENDPOINT (1u << 1)     /* offer bit 59 (per-endpoint scope) */
#define IOASID_VIRTIO_IOMMU_CFG_BOOT_BYPASS (1u << 2)      /* config.bypass starts at 1 */

/* Called (outside the device's lock, on the thread whose translate() faulted) each time a fault
 * is queued. It may call ioasid_virtio_iommu_pop_fault() and _stats(), nothing else of the
 * device. */
typedef void (*ioasid_virtio_fault_fn)(void* opaque);

/* The device's configuration (C++: IommuDeviceConfig). 0 in a field means its default. */
struct ioasid_virtio_iommu_config {
  uint32_t size;  /* sizeof(struct ioasid_virtio_iommu_config) */
  uint32_t flags; /* IOASID_VIRTIO_IOMMU_CFG_* */
  /* Offered device-type features, IOASID_VIRTIO_FEATURE() of bits 0-6 and 56-58 (59 follows the
   * PER_ENDPOINT flag). 0: INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO, BYPASS_CONFIG and
   * 56-58. The device drops BYPASS when BYPASS_CONFIG is offered, and bits 57-58 without 56. */
  uint64_t features;
  uint64_t page_size_mask; /* lowest set bit: the MAP granule. 0: every size from 4 KiB */
  uint64_t input_start;    /* MAP outside [input_start, input_end]: S_RANGE */
  uint64_t input_end;      /* 0: UINT64_MAX */
  uint32_t domain_start;   /* ATTACH outside [domain_start, domain_end]: S_RANGE */
  uint32_t domain_end;     /* 0: UINT32_MAX */
  uint32_t probe_size;     /* 0: 512; grows to fit the largest endpoint's reserved regions */
  uint32_t max_pasid;      /* config.max_pasid, at most 0xFFFFF; 0: 0xFFFFF */
  /* Caps on what a guest can grow (S_NOMEM when reached). 0: 1024, 256, 1 << 20, 4096. */
  uint32_t max_domains;
  uint32_t max_endpoints;     /* endpoint records, declared ones included */
  uint64_t max_mappings;      /* over all domains */
  uint32_t max_binds;         /* (endpoint, PASID) binds */
  uint32_t fault_queue_depth; /* faults kept for pop_fault, more are dropped; 0: 256 */
  /* Guest-triggerable log lines: a token bucket of log_burst lines refilled at log_per_second.
   * 0: 16 and 10. */
  uint32_t log_burst;
  uint32_t log_per_second;
  const struct ioasid_virtio_iommu_endpoint* endpoints; /* may be NULL when endpoint_count is 0 */
  uint32_t endpoint_count;
  uint32_t reserved0;   /* must be 0 */
  ioasid_log_fn log_fn; /* NULL: no log. Called from the thread that runs the request */
  void* log_opaque;
  ioasid_virtio_fault_fn fault_fn; /* NULL: none */
  void* fault_opaque;
};

/* Creates a device over backend (the VM's set). config may be NULL for every default (no
 * endpoint: pass endpoints or ALLOW_UNDECLARED for ATTACH to find any). Flags and counts the C++
 * device would silently clamp or merge (max_pasid, duplicate endpoints) are refused here.
 * Returns 0, -EINVAL (NULL backend or out; size too small; unknown flag; reserved0 or a region's
 * reserved0 nonzero; features outside bits 0-6 and 56-58; input or domain range inverted;
 * max_pasid above 0xFFFFF; endpoints or resv NULL with a nonzero count; unknown region subtype or
 * inverted region; an endpoint ID declared twice), -E2BIG (unknown nonzero bytes), -ENOMEM.
 * Context: any thread. */
IOASID_API int ioasid_virtio_iommu_create(struct ioasid_backend* backend,
                                          const struct ioasid_virtio_iommu_config* config,
                                          struct ioasid_virtio_iommu** out);
/* Destroys a device (NULL is ignored): drops its binds. Context: nothing else may use it. */
IOASID_API void ioasid_virtio_iommu_destroy(struct ioasid_virtio_iommu* device);

/* The device-type feature bits offered (0 for a NULL device). */
IOASID_API uint64_t ioasid_virtio_iommu_features(const struct ioasid_virtio_iommu* device);
/* The driver's accepted features (FEATURES_OK); bits outside the device-type ranges (24-49, the
 * transport's) are ignored. Refused features change nothing.
 * Returns 0, -EINVAL (NULL device; inconsistent: bits 57-59 without 56, 59 without 58),
 * -EOPNOTSUPP (a bit that is not offered), -EBUSY (bit 59 would change while binds exist: reset
 * first). */
IOASID_API int ioasid_virtio_iommu_set_driver_features(struct ioasid_virtio_iommu* device,
                                                       uint64_t features);
/* The features accepted last (0 after reset or for a NULL device). */
IOASID_API uint64_t
ioasid_virtio_iommu_negotiated_features(const struct ioasid_virtio_iommu* device);
/* 1 when the per-endpoint PASID scope is in force (bit 59 negotiated), 0 otherwise. */
IOASID_API int ioasid_virtio_iommu_pasid_scope(const struct ioasid_virtio_iommu* device);

/* A driver read of size bytes at offset in the config space; bytes past the 48 read 0.
 * Returns 0, -EINVAL (NULL device, NULL out with size > 0). */
IOASID_API int ioasid_virtio_iommu_config_read(const struct ioasid_virtio_iommu* device,
                                               uint32_t offset, void* out, size_t size);
/* A driver write: only bypass (one byte at offset 36, value 0 or 1) is writable, and only with
 * BYPASS_CONFIG negotiated. A refused write changes nothing (counted).
 * Returns 0, -EINVAL (NULL device or in; another offset, size or value), -EOPNOTSUPP (a valid
 * bypass write without BYPASS_CONFIG negotiated). */
IOASID_API int ioasid_virtio_iommu_config_write(struct ioasid_virtio_iommu* device, uint32_t offset,
                                                const void* in, size_t size);

/* One request-queue chain: req = the device-readable bytes (head first), resp = the
 * device-writable buffer. *used gets the used length: the reply's size ([payload][tail] written at
 * the start of resp), or 0 when the request is returned unwritten (a malformed head, an unknown
 * type, resp too small for the reply). Guest errors are statuses in the reply, not errors here.
 * Returns 0, -EINVAL (NULL device or used; req or resp NULL with a nonzero length).
 * Context: any thread, concurrently; ALLOC/FREE_PASID in global scope take no lock. */
IOASID_API int ioasid_virtio_iommu_handle_request(struct ioasid_virtio_iommu* device,
                                                  const void* req, size_t req_len, void* resp,
                                                  size_t resp_len, size_t* used);

enum ioasid_virtio_access {
  IOASID_VIRTIO_ACCESS_READ = 1,
  IOASID_VIRTIO_ACCESS_WRITE = 2,
  IOASID_VIRTIO_ACCESS_EXEC = 4 /* needs a READ mapping */
};
/* MAP flags (struct virtio_iommu_req_map), as translations report them. */
#define IOASID_VIRTIO_IOMMU_MAP_F_READ (1u << 0)
#define IOASID_VIRTIO_IOMMU_MAP_F_WRITE (1u << 1)
#define IOASID_VIRTIO_IOMMU_MAP_F_MMIO (1u << 2)

struct ioasid_virtio_translation {
  uint64_t phys;      /* where iova goes */
  uint64_t iova_last; /* the same rule translates up to here (inclusive) */
  uint32_t flags;     /* IOASID_VIRTIO_IOMMU_MAP_F_* of the mapping; READ | WRITE in bypass */
  uint32_t bypass;    /* 1: identity (bypass, a bypass domain, an MSI region) */
};
/* Translates one DMA access (enum ioasid_virtio_access) of endpoint at iova. A failure queues a
 * fault event (and calls the fault callback) unless the fault queue is full.
 * Returns 0, -EINVAL (NULL device or out; access not one of the enum), -ENOENT (endpoint unknown
 * or not attached: fault reason DOMAIN), -ERANGE (no mapping, or a RESERVED region: MAPPING),
 * -EPERM (the mapping lacks the access's flag: MAPPING). Context: any thread, concurrently. */
IOASID_API int ioasid_virtio_iommu_translate(struct ioasid_virtio_iommu* device, uint32_t endpoint,
                                             uint64_t iova, uint32_t access,
                                             struct ioasid_virtio_translation* out);
/* The host PASID to program for the endpoint's DMA tagged with pasid: pasid itself in global
 * scope, the one BIND_PASID allocated in per-endpoint scope.
 * Returns 0, -EINVAL (NULL device or out), -ENOENT (the pair is not bound). */
IOASID_API int ioasid_virtio_iommu_host_pasid(const struct ioasid_virtio_iommu* device,
                                              uint32_t endpoint, uint32_t pasid, ioasid_t* out);

/* Fault reasons and flags (struct virtio_iommu_fault). */
#define IOASID_VIRTIO_IOMMU_FAULT_R_UNKNOWN 0
#define IOASID_VIRTIO_IOMMU_FAULT_R_DOMAIN 1
#define IOASID_VIRTIO_IOMMU_FAULT_R_MAPPING 2
#define IOASID_VIRTIO_IOMMU_FAULT_F_READ (1u << 0)
#define IOASID_VIRTIO_IOMMU_FAULT_F_WRITE (1u << 1)
#define IOASID_VIRTIO_IOMMU_FAULT_F_EXEC (1u << 2)
#define IOASID_VIRTIO_IOMMU_FAULT_F_ADDRESS (1u << 8) /* address is valid */

struct ioasid_virtio_iommu_fault {
  uint32_t reason; /* IOASID_VIRTIO_IOMMU_FAULT_R_* */
  uint32_t flags;  /* IOASID_VIRTIO_IOMMU_FAULT_F_* */
  uint32_t endpoint;
  uint32_t reserved0;
  uint64_t address; /* valid with FAULT_F_ADDRESS */
};
/* Takes the oldest queued fault event. With a transport over the device, the transport drains the
 * queue into the event virtqueue: do not call this then.
 * Returns 0, -EINVAL (NULL device or out), -ENOENT (no fault queued). Context: any thread. */
IOASID_API int ioasid_virtio_iommu_pop_fault(struct ioasid_virtio_iommu* device,
                                             struct ioasid_virtio_iommu_fault* out);

/* Device reset: features, domains, attachments, mappings, binds (host references dropped,
 * per-endpoint host PASIDs freed) and queued faults go; config.bypass stays. With a transport,
 * the driver's status write of 0 does this (ioasid_virtio_transport_set_status). NULL is
 * ignored. */
IOASID_API void ioasid_virtio_iommu_reset(struct ioasid_virtio_iommu* device);

/* Parse failures, the index of ioasid_virtio_iommu_counters.malformed (docs/virtio-iommu-pasid.md
 * §6). */
enum ioasid_virtio_parse_error {
  IOASID_VIRTIO_PARSE_NO_HEAD = 1,
  IOASID_VIRTIO_PARSE_UNKNOWN_TYPE = 2,
  IOASID_VIRTIO_PARSE_PROBE_NOT_OFFERED = 3,
  IOASID_VIRTIO_PARSE_TOO_SHORT = 4,
  IOASID_VIRTIO_PARSE_TOO_LONG = 5,
  IOASID_VIRTIO_PARSE_NOT_NEGOTIATED = 6,
  IOASID_VIRTIO_PARSE_RESERVED_NONZERO = 7,
  IOASID_VIRTIO_PARSE_UNKNOWN_FLAGS = 8,
  IOASID_VIRTIO_PARSE_INVERTED_RANGE = 9,
  IOASID_VIRTIO_PARSE_RANGE_OVERFLOW = 10
};
#define IOASID_VIRTIO_PARSE_ERROR_SLOTS 16

/* Counters since creation (relaxed snapshots, each exact) and the live sizes. */
struct ioasid_virtio_iommu_counters {
  uint32_t size; /* in: sizeof(struct ioasid_virtio_iommu_counters); later fields not written */
  uint32_t reserved0;
  uint64_t requests, ok, failed, used_zero, reply_small;
  uint64_t malformed[IOASID_VIRTIO_PARSE_ERROR_SLOTS]; /* by enum ioasid_virtio_parse_error */
  uint64_t attaches, detaches, maps, unmaps, probes;   /* S_OK only */
  uint64_t pasid_allocs, pasid_alloc_fails, pasid_frees, pasid_free_fails;
  uint64_t pasid_binds, pasid_unbinds;
  uint64_t cap_refusals, backend_errors, backend_bad_answers;
  uint64_t translations, faults, faults_dropped, config_writes_refused, log_lines, log_dropped;
  uint64_t domains, endpoints_attached, mappings, binds; /* live */
};
/* Returns 0, -EINVAL (NULL device or out, size too small). Context: any thread. */
IOASID_API int ioasid_virtio_iommu_stats(const struct ioasid_virtio_iommu* device,
                                         struct ioasid_virtio_iommu_counters* out);

/* ---- guest memory ----------------------------------------------------------------------- */
/*
 * A guest's physical memory as the virtio transport sees it (C++: ioasid::virtio::GuestMemory):
 * up to 16 non-overlapping regions, each a host mapping of [gpa, gpa + size). Every guest address
 * the transport follows is bounds-checked against them.
 * Context: regions are added before any transport uses the memory (-EBUSY while one does);
 * destroy it after every transport over it.
 */
struct ioasid_guest_memory;

/* Returns 0, -EINVAL (NULL out), -ENOMEM. */
IOASID_API int ioasid_guest_memory_create(struct ioasid_guest_memory** out);
/* Unmaps and closes the memfd regions it made or mapped (NULL is ignored). */
IOASID_API void ioasid_guest_memory_destroy(struct ioasid_guest_memory* memory);
/* Adds [gpa, gpa + size) backed by the caller's host memory at host, which must stay mapped while
 * the memory is used. Returns 0, -EINVAL (NULL memory or host, size 0, gpa + size past 2^64,
 * overlap with a region), -ENOSPC (16 regions), -EBUSY (a transport uses the memory), -ENOMEM. */
IOASID_API int ioasid_guest_memory_add(struct ioasid_guest_memory* memory, uint64_t gpa,
                                       uint64_t size, void* host);
/* Adds [gpa, gpa + size) as a shared mapping of bytes [0, size) of the file fd (a memfd the guest
 * or VMM process maps too). The library duplicates fd; the caller keeps its own. *host (may be
 * NULL) gets the mapping's address. Returns as ioasid_guest_memory_add, plus -EINVAL (fd shorter
 * than size), -EBADF (fd not open), -EIO (mmap failed). */
IOASID_API int ioasid_guest_memory_add_fd(struct ioasid_guest_memory* memory, uint64_t gpa,
                                          uint64_t size, int fd, void** host);
/* Adds [gpa, gpa + size) backed by a new memfd (size rounded up to the page size), for a guest in
 * another process (ioasid_virtio_remote). *fd (may be NULL) gets its descriptor, owned by the
 * memory (close-on-exec; dup it to keep it), *host (may be NULL) the mapping. Returns as
 * ioasid_guest_memory_add, plus -EIO (memfd_create, ftruncate or mmap failed). */
IOASID_API int ioasid_guest_memory_add_memfd(struct ioasid_guest_memory* memory, uint64_t gpa,
                                             uint64_t size, int* fd, void** host);

/* ---- virtio transport (split virtqueues) ------------------------------------------------- */
/*
 * The device front end of a virtio-iommu device for a VMM that does not walk virtqueues itself
 * (C++: ioasid::virtio::VirtioTransport over IommuDeviceModel; docs/virtqueue.md): the device
 * status state machine, feature negotiation (the device's bits plus VERSION_1, INDIRECT_DESC,
 * EVENT_IDX), queue setup and processing of split virtqueues in guest memory. Queue 0 is the
 * request queue, queue 1 the event queue (24-byte struct virtio_iommu_fault events, filled from
 * the device's fault queue as faults happen). The VMM forwards the guest's virtio-pci common
 * config / virtio-mmio register accesses: status, features, queue addresses, notifications;
 * config space accesses go to ioasid_virtio_iommu_config_read/_write.
 *
 * Status rules (virtio 1.2 §2.1, §3.1.1): writing 0 resets the transport and the device; the
 * driver only adds bits and never sets NEEDS_RESET; FEATURES_OK sticks only for features that are
 * a subset of the offer, include VERSION_1 and that the device accepts; queues are set up between
 * FEATURES_OK and DRIVER_OK and run while DRIVER_OK is set and FAILED is not. A broken virtqueue
 * (a descriptor outside guest memory, a loop, ...) sets NEEDS_RESET, raises a configuration
 * interrupt and stops that queue until the driver resets the device.
 *
 * Context: every function is safe from any thread. Queues are processed under a per-queue lock,
 * control calls under a control lock. The interrupt and kick callbacks run on the processing
 * thread under the queue's lock: they must not call into the transport or the device (a VMM
 * typically writes an irqfd / eventfd there). One transport per device; the device and the guest
 * memory outlive it. While a transport exists, the device's faults go to its event queue.
 */
struct ioasid_virtio_transport;

#define IOASID_VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define IOASID_VIRTIO_STATUS_DRIVER 0x02
#define IOASID_VIRTIO_STATUS_DRIVER_OK 0x04
#define IOASID_VIRTIO_STATUS_FEATURES_OK 0x08
#define IOASID_VIRTIO_STATUS_NEEDS_RESET 0x40
#define IOASID_VIRTIO_STATUS_FAILED 0x80

#define IOASID_VIRTIO_REQUEST_QUEUE 0u
#define IOASID_VIRTIO_EVENT_QUEUE 1u
/* The queue number interrupt callbacks get for a configuration change (NEEDS_RESET set). */
#define IOASID_VIRTIO_CONFIG_INTERRUPT UINT32_MAX

/* ioasid_virtio_transport_config.flags */
#define IOASID_VIRTIO_TRANSPORT_NO_INDIRECT (1u << 0)  /* do not offer VIRTIO_F_INDIRECT_DESC */
#define IOASID_VIRTIO_TRANSPORT_NO_EVENT_IDX (1u << 1) /* do not offer VIRTIO_F_EVENT_IDX */
/* notify() only records the kick and calls kick_fn; the VMM's I/O thread then calls
 * ioasid_virtio_transport_process_pending(). Without it notify() processes the queue. */
#define IOASID_VIRTIO_TRANSPORT_DEFERRED (1u << 2)

/* queue: the queue that wants an interrupt (or was kicked), or IOASID_VIRTIO_CONFIG_INTERRUPT. */
typedef void (*ioasid_virtio_queue_fn)(void* opaque, uint32_t queue);

struct ioasid_virtio_transport_config {
  uint32_t size;           /* sizeof(struct ioasid_virtio_transport_config) */
  uint32_t flags;          /* IOASID_VIRTIO_TRANSPORT_* */
  uint32_t max_queue_size; /* a power of 2 up to 32768; 0: 256 */
  uint32_t max_readable;   /* device-readable bytes gathered per chain; 0: 4096 */
  uint32_t max_writable;   /* device-writable bytes offered to the device per chain; 0: 4096 */
  uint32_t reserved0;      /* must be 0 */
  ioasid_virtio_queue_fn interrupt_fn; /* NULL: none (the guest polls its used rings) */
  void* interrupt_opaque;
  ioasid_virtio_queue_fn kick_fn; /* deferred mode: a kick or an event is pending; NULL: none */
  void* kick_opaque;
};

/* Creates the transport of device over memory; config may be NULL for every default.
 * Returns 0, -EINVAL (NULL device, memory or out; size too small; unknown flag; reserved0;
 * max_queue_size not a power of 2 or above 32768), -E2BIG, -EBUSY (the device has a transport),
 * -ENOMEM. */
IOASID_API int ioasid_virtio_transport_create(struct ioasid_virtio_iommu* device,
                                              struct ioasid_guest_memory* memory,
                                              const struct ioasid_virtio_transport_config* config,
                                              struct ioasid_virtio_transport** out);
/* Destroys a transport (NULL is ignored). Context: no call on it may run or follow; destroy its
 * remote device first. */
IOASID_API void ioasid_virtio_transport_destroy(struct ioasid_virtio_transport* transport);

/* The device status register (0 for a NULL transport). */
IOASID_API uint8_t ioasid_virtio_transport_get_status(struct ioasid_virtio_transport* transport);
/* A driver write of the status register, with the rules above (a refused part is ignored and
 * counted; the driver sees it by reading the status back). Returns 0, -EINVAL (NULL). */
IOASID_API int ioasid_virtio_transport_set_status(struct ioasid_virtio_transport* transport,
                                                  uint8_t status);
/* The offered features: the device's and the transport's bits (0 for a NULL transport). */
IOASID_API uint64_t
ioasid_virtio_transport_device_features(struct ioasid_virtio_transport* transport);
/* The driver's features, taken while DRIVER is set and FEATURES_OK is not (checked when the
 * driver sets FEATURES_OK). Returns 0, -EINVAL (NULL), -EBUSY (the status does not allow it: the
 * write is ignored and counted). */
IOASID_API int ioasid_virtio_transport_set_driver_features(
    struct ioasid_virtio_transport* transport, uint64_t features);
/* The features in force since FEATURES_OK (0 before, or for a NULL transport). */
IOASID_API uint64_t
ioasid_virtio_transport_negotiated_features(struct ioasid_virtio_transport* transport);
/* The largest size the driver may give queue (its QUEUE_SIZE_MAX); 0 for another queue. */
IOASID_API uint16_t
ioasid_virtio_transport_queue_max_size(struct ioasid_virtio_transport* transport, uint32_t queue);
/* Sets queue's size and the guest-physical addresses of its descriptor table (16-byte aligned),
 * avail ring (2) and used ring (4), and enables it.
 * Returns 0, -EINVAL (NULL; queue not 0 or 1; size not a power of 2 or above the maximum; a
 * misaligned part or one outside guest memory), -EBUSY (not between FEATURES_OK and DRIVER_OK). */
IOASID_API int ioasid_virtio_transport_set_queue(struct ioasid_virtio_transport* transport,
                                                 uint32_t queue, uint16_t size, uint64_t desc,
                                                 uint64_t avail, uint64_t used);
/* The driver's notification (kick) of queue. Processes the queue before returning, unless the
 * transport is DEFERRED. Returns 0, -EINVAL (NULL, queue not 0 or 1). */
IOASID_API int ioasid_virtio_transport_notify(struct ioasid_virtio_transport* transport,
                                              uint32_t queue);
/* Processes queue now: drains the request queue, or fills event buffers while faults are queued.
 * *done (may be NULL) gets the chains completed. Nothing runs unless DRIVER_OK is set, FAILED is
 * not and the queue is enabled and unbroken. Returns 0, -EINVAL (NULL, queue not 0 or 1). */
IOASID_API int ioasid_virtio_transport_process(struct ioasid_virtio_transport* transport,
                                               uint32_t queue, size_t* done);
/* Deferred mode: processes every queue with a recorded kick or event. Returns 0, -EINVAL. */
IOASID_API int ioasid_virtio_transport_process_pending(struct ioasid_virtio_transport* transport,
                                                       size_t* done);

/* Why a queue stopped (C++: ioasid::virtio::QueueFault, docs/virtqueue.md §2). */
enum ioasid_virtqueue_fault {
  IOASID_VIRTQUEUE_OK = 0,
  IOASID_VIRTQUEUE_BAD_LAYOUT = 1,
  IOASID_VIRTQUEUE_AVAIL_IDX_JUMP = 2,
  IOASID_VIRTQUEUE_DESC_INDEX = 3,
  IOASID_VIRTQUEUE_CHAIN_TOO_LONG = 4,
  IOASID_VIRTQUEUE_DESC_ADDRESS = 5,
  IOASID_VIRTQUEUE_ZERO_LENGTH = 6,
  IOASID_VIRTQUEUE_WRITE_BEFORE_READ = 7,
  IOASID_VIRTQUEUE_INDIRECT_NESTED = 8,
  IOASID_VIRTQUEUE_INDIRECT_BAD = 9,
  IOASID_VIRTQUEUE_CHAIN_BYTES = 10,
  IOASID_VIRTQUEUE_USED_OVERFLOW = 11
};
/* The fault that stopped queue (enum ioasid_virtqueue_fault), IOASID_VIRTQUEUE_OK while it works.
 * Returns 0, -EINVAL (NULL transport or out, queue not 0 or 1). */
IOASID_API int ioasid_virtio_transport_queue_fault(struct ioasid_virtio_transport* transport,
                                                   uint32_t queue, uint32_t* out);
/* A static name for an enum ioasid_virtqueue_fault value ("desc_address"); "unknown" otherwise. */
IOASID_API const char* ioasid_virtqueue_fault_name(uint32_t fault);

struct ioasid_virtio_transport_counters {
  uint32_t size; /* in: sizeof(struct ioasid_virtio_transport_counters); later fields not written */
  uint32_t reserved0;
  uint64_t kicks;            /* notify() calls */
  uint64_t requests;         /* request chains handled by the device */
  uint64_t events;           /* event buffers filled */
  uint64_t oversized;        /* chains answered with used length 0 without the device */
  uint64_t interrupts;       /* interrupts raised (queue and configuration) */
  uint64_t resets;           /* status writes of 0 */
  uint64_t status_refused;   /* status, feature or queue writes (or parts) ignored */
  uint64_t features_refused; /* FEATURES_OK refused */
};
/* Returns 0, -EINVAL (NULL transport or out, size too small). */
IOASID_API int ioasid_virtio_transport_stats(struct ioasid_virtio_transport* transport,
                                             struct ioasid_virtio_transport_counters* out);

struct ioasid_virtqueue_counters {
  uint32_t size; /* in: sizeof(struct ioasid_virtqueue_counters); later fields not written */
  uint32_t reserved0;
  uint64_t chains;    /* chains popped */
  uint64_t used;      /* used entries pushed */
  uint64_t oversized; /* chains whose readable part exceeded max_readable */
  uint64_t interrupts;
  uint64_t interrupts_suppressed; /* NO_INTERRUPT or used_event said no */
};
/* Counters of one queue since it was last set up. Returns 0, -EINVAL (NULL transport or out,
 * queue not 0 or 1, size too small). */
IOASID_API int ioasid_virtio_transport_queue_stats(struct ioasid_virtio_transport* transport,
                                                   uint32_t queue,
                                                   struct ioasid_virtqueue_counters* out);

/* ---- virtio device for a guest in another process ---------------------------------------- */
/*
 * Serves a transport to a guest driver running in another process (C++:
 * ioasid::virtio::VirtioRemoteDevice, docs/virtqueue.md §5): the guest maps the guest memory's
 * memfd (ioasid_guest_memory_add_memfd), kicks through one eventfd per queue, gets interrupts on
 * one eventfd, and reaches status, features, config and queue addresses through fixed-size
 * messages on a SOCK_SEQPACKET socket pair. The guest side is the C++ VirtioRemotePort (no C
 * version: the C ABI is the VMM's side).
 *
 * Context: run() on one thread; stop() from any thread. The remote device replaces the
 * transport's interrupt callback (interrupts go to the eventfd). Destroy it before the transport.
 */
struct ioasid_virtio_remote;

#define IOASID_VIRTIO_MAX_QUEUES 8
/* The guest's descriptors (inherit them across fork, or send them with SCM_RIGHTS). Owned by the
 * remote device: valid until it is destroyed. */
struct ioasid_virtio_remote_fds {
  int32_t control;   /* the guest's end of the socket pair */
  int32_t interrupt; /* eventfd the device writes for each interrupt */
  uint32_t num_queues;
  uint32_t reserved0;
  int32_t kick[IOASID_VIRTIO_MAX_QUEUES]; /* eventfd per queue, -1 past num_queues */
};

/* Creates the socket pair and eventfds for transport, which must not be DEFERRED.
 * Returns 0, -EINVAL (NULL transport or out, DEFERRED transport), -EBUSY (the transport has a
 * remote device), -EIO (socketpair or eventfd failed), -ENOMEM. */
IOASID_API int ioasid_virtio_remote_create(struct ioasid_virtio_transport* transport,
                                           struct ioasid_virtio_remote** out);
/* Destroys it and closes every descriptor (NULL is ignored). Context: run() has returned. */
IOASID_API void ioasid_virtio_remote_destroy(struct ioasid_virtio_remote* remote);
/* Returns 0, -EINVAL (NULL remote or out). */
IOASID_API int ioasid_virtio_remote_guest_fds(const struct ioasid_virtio_remote* remote,
                                              struct ioasid_virtio_remote_fds* out);
/* After fork, the device process closes the guest's control end, so that the guest's exit is
 * seen as end of file. NULL is ignored. */
IOASID_API void ioasid_virtio_remote_close_guest_control(struct ioasid_virtio_remote* remote);
/* Serves control messages and kicks until the guest closes its control socket or stop() is called
 * (both 0), or nothing happens for idle_timeout_ms (0: no limit).
 * Returns 0, -EINVAL (NULL), -ETIMEDOUT, -EIO (socket error). */
IOASID_API int ioasid_virtio_remote_run(struct ioasid_virtio_remote* remote,
                                        uint32_t idle_timeout_ms);
/* Makes run() return (now, or at once when it next starts). NULL is ignored. Context: any
 * thread. */
IOASID_API void ioasid_virtio_remote_stop(struct ioasid_virtio_remote* remote);

#ifdef __cplusplus
}
#endif

#endif /* IOASID_IOASID_H */
