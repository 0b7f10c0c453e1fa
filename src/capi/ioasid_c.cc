// SPDX-License-Identifier: Apache-2.0
// ioasid_c.cc: the C ABI of libioasid (include/ioasid/ioasid.h) over ioasid::Space,
// ioasid::HostBackend (LocalBackend here; the daemon's in client/client_c.cc) and
// ioasid::VtdVcmdDevice. The virtio-iommu part is capi/virtio_c.cc.
//
// Every function is extern "C" and cannot throw: each body calls only noexcept Space methods or
// runs inside guarded() (capi/capi_util.hpp), which catches everything (ioasid.h declares them
// without noexcept, and a definition must match its declaration). Results become 0 or -errno
// through guest_visible() (another set's ID reads as -ENOENT). Out-parameters are written only on
// success; a NULL handle or out-parameter is -EINVAL (void functions ignore a NULL handle).
//
// struct ioasid_space wraps the Space plus what the C side owns: a heap copy of each registered
// struct ioasid_allocator_ops (keyed by the caller's pointer: the identity C callers register and
// unregister with), a trampoline for each notifier, and the log sink's (fn, opaque).
//
// Locking: the wrapper's mutex guards only its own maps and is never held while calling into the
// Space, so a callback that re-enters this ABI (under the Space's writer lock) cannot deadlock
// against it: the Space answers -EDEADLK. Allocator (un)registration first asks the Space whether
// the calling thread runs one of its callbacks (in_callback()), because unregistering from there
// is refused by the Space without telling us, and the copy must then stay.
//
// struct ioasid_vtd_device wraps a VtdVcmdDevice plus the C log sink; it holds a reference to the
// backend's HostBackend, so the backend must outlive it (documented in ioasid.h, not checked).
//
// Not done here: no validation of handles beyond NULL (a destroyed handle is undefined behaviour).
#include "ioasid/ioasid.h"

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "capi/backend_handle.hpp"
#include "capi/capi_util.hpp"
#include "ioasid/errc.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/types.hpp"
#include "ioasid/vtd_device.hpp"
#include "ioasid/wire/vtd_vcmd.hpp"

namespace {

// One registered C notifier: what the C++ NotifierFn gets as its opaque.
struct NotifierTrampoline {
  ioasid_notifier_fn fn;
  void* opaque;
};

// One registered C allocator: the copy the Space holds a pointer to. ready is false while
// ioasid_allocator_register() is between inserting it and the Space's answer.
struct AllocatorEntry {
  ioasid::AllocatorOps ops;
  bool ready;
};

}  // namespace

struct ioasid_space {
  ioasid_log_fn log_fn = nullptr;
  void* log_opaque = nullptr;
  std::mutex mu;  // guards the two maps below
  std::map<const ioasid_allocator_ops*, std::unique_ptr<AllocatorEntry>> allocators;
  std::map<std::uint64_t, std::unique_ptr<NotifierTrampoline>> notifiers;
  std::unique_ptr<ioasid::Space> space;  // reset first in ioasid_space_destroy()
};

// struct ioasid_backend: capi/backend_handle.hpp (the ioasidd client creates them too).

struct ioasid_vtd_device {
  ioasid_log_fn log_fn = nullptr;
  void* log_opaque = nullptr;
  std::unique_ptr<ioasid::VtdVcmdDevice> device;
};

namespace {

using ioasid::Errc;

using ioasid::capi::check_in_size;
using ioasid::capi::guarded;
using ioasid::capi::neg;
using ioasid::capi::status;
using ioasid::capi::write_sized_out;

ioasid::SetId set_of(ioasid_set_t set) noexcept {
  return set == IOASID_SET_ANY ? ioasid::SetId::any() : ioasid::SetId::from_raw(set);
}

bool in_callback(const ioasid::Space& space) noexcept { return space.in_callback(); }

void log_trampoline(void* opaque, ioasid::LogLevel level, const char* message) {
  const auto* s = static_cast<const ioasid_space*>(opaque);
  if (s->log_fn != nullptr) s->log_fn(s->log_opaque, static_cast<int>(level), message);
}

void notifier_trampoline(void* opaque, const ioasid::Event& ev) {
  const auto* t = static_cast<const NotifierTrampoline*>(opaque);
  ioasid_event out{};
  out.type = static_cast<std::uint32_t>(ev.type);
  out.id = ev.id;
  out.spid = ev.spid;
  out.reserved0 = 0;
  out.set = ev.set.raw();
  out.owner_token = ev.owner_token;
  out.priv = ev.priv;
  t->fn(t->opaque, &out);
}

void vtd_log_trampoline(void* opaque, ioasid::LogLevel level, const char* message) {
  const auto* d = static_cast<const ioasid_vtd_device*>(opaque);
  if (d->log_fn != nullptr) d->log_fn(d->log_opaque, static_cast<int>(level), message);
}

ioasid_id_info id_info_of(const ioasid::IdInfo& i) noexcept {
  ioasid_id_info v{};
  v.id = i.id;
  v.state = static_cast<std::uint32_t>(i.state);
  v.refs = i.refs;
  v.binds = i.binds;
  v.spid = i.spid;
  v.reserved0 = 0;
  return v;
}

ioasid_set_info set_info_of(const ioasid::SetInfo& r) noexcept {
  ioasid_set_info v{};
  v.set = r.set.raw();
  v.owner_token = r.owner_token;
  v.quota = r.quota;
  v.count = r.count;
  v.bound = r.bound;
  v.peak = r.peak;
  v.quota_refusals = r.quota_refusals;
  v.dying = r.state == ioasid::SetState::dying ? 1 : 0;
  v.reserved0 = 0;
  return v;
}

static_assert(IOASID_ID_FREE == static_cast<int>(ioasid::IdState::free) &&
                  IOASID_ID_ACTIVE == static_cast<int>(ioasid::IdState::active) &&
                  IOASID_ID_FREE_PENDING == static_cast<int>(ioasid::IdState::free_pending) &&
                  IOASID_ID_RESERVED == static_cast<int>(ioasid::IdState::reserved),
              "enum ioasid_id_state");

// The first (and so far only) versions of the sized structs.
constexpr std::size_t kSpaceConfigV1 = sizeof(ioasid_space_config);
constexpr std::size_t kStatsV1 = sizeof(ioasid_stats);
constexpr std::size_t kVtdConfigV1 = sizeof(ioasid_vtd_config);
constexpr std::size_t kVtdStatsV1 = sizeof(ioasid_vtd_counters);
// The VT-d config is ABI: no padding, fixed offsets on LP64.
static_assert(sizeof(void*) != 8 || kVtdConfigV1 == 64, "struct ioasid_vtd_config layout");
static_assert(offsetof(ioasid_vtd_config, cap) == 16 &&
                  offsetof(ioasid_vtd_config, pasid_min) == 40,
              "struct ioasid_vtd_config layout");

int register_notifier(ioasid_space* space, bool global, std::uint64_t owner_token,
                      std::uint32_t event_mask, ioasid_notifier_fn fn, void* opaque,
                      std::uint64_t* out) noexcept {
  if (space == nullptr || fn == nullptr || out == nullptr) return -EINVAL;
  if (event_mask == 0 || (event_mask & ~std::uint32_t{IOASID_EVENT_MASK_ALL}) != 0) return -EINVAL;
  return guarded([&] {
    auto t = std::make_unique<NotifierTrampoline>(NotifierTrampoline{fn, opaque});
    auto r = global
                 ? space->space->register_global_notifier(notifier_trampoline, t.get(), event_mask)
                 : space->space->register_set_notifier(owner_token, notifier_trampoline, t.get(),
                                                       event_mask);
    if (!r) return neg(r.error());
    try {
      std::lock_guard<std::mutex> lock(space->mu);
      space->notifiers.emplace(*r, std::move(t));
    } catch (...) {
      (void)space->space->unregister_notifier(*r);  // before t goes
      return -ENOMEM;
    }
    *out = *r;
    return 0;
  });
}

}  // namespace

extern "C" {

uint32_t ioasid_version(void) { return IOASID_VERSION; }

const char* ioasid_strerror(int err) {
  switch (err) {
    case 0:
      return "success";
    case -EINVAL:
      return "invalid argument or handle";
    case -ERANGE:
      return "out of range: ID outside the space, allocator answer, or unmapped address";
    case -ENOENT:
      return "no such ID, set, SPID or notifier";
    case -EBADF:
      return "bad file descriptor";
    case -ENOSPC:
      return "no free ID, or capacity short for a quota";
    case -EDQUOT:
      return "set quota reached";
    case -EBUSY:
      return "ID pending free, or set being destroyed";
    case -EEXIST:
      return "already exists";
    case -EAGAIN:
      return "custom allocator refused while the default allocator holds IDs";
    case -ENOMEM:
      return "out of memory";
    case -EDEADLK:
      return "called from a callback";
    case -EOVERFLOW:
      return "reference count overflow";
    case -E2BIG:
      return "unknown nonzero bytes in an argument struct";
    case -EIO:
      return "custom allocator or backend failed";
    case -EACCES:
      return "ID owned by another set";
    case -EOPNOTSUPP:
      return "operation or feature not supported";
    case -ETIMEDOUT:
      return "timed out";
    case -EPERM:
      return "operation not permitted";
    default:
      return "unknown error";
  }
}

// ---- space ---------------------------------------------------------------------------------

int ioasid_space_create(const ioasid_space_config* config, ioasid_space** out) {
  if (out == nullptr) return -EINVAL;
  return guarded([&] {
    ioasid::SpaceConfig cfg;
    auto s = std::make_unique<ioasid_space>();
    if (config != nullptr) {
      if (int rc = check_in_size(config, config->size, kSpaceConfigV1, sizeof(*config)); rc != 0) {
        return rc;
      }
      if (config->reserved0 != 0) return -EINVAL;
      if (config->policy > IOASID_POLICY_CYCLIC) return -EINVAL;
      if (config->log_level > IOASID_LOG_ERROR) return -EINVAL;
      if (config->reserved == nullptr && config->reserved_count != 0) return -EINVAL;
      cfg.width_bits = config->width_bits == 0 ? ioasid::kPasidBits : config->width_bits;
      cfg.policy = static_cast<ioasid::AllocPolicy>(config->policy);
      cfg.log_level = static_cast<ioasid::LogLevel>(config->log_level);
      if (config->reserved != nullptr) {
        cfg.reserved.clear();  // non-NULL with count 0: nothing reserved
        for (std::uint32_t i = 0; i < config->reserved_count; ++i) {
          cfg.reserved.push_back(
              ioasid::IdRange{config->reserved[i].first, config->reserved[i].last});
        }
      }
      cfg.capacity = config->capacity;
      if (config->log_fn != nullptr) {
        s->log_fn = config->log_fn;
        s->log_opaque = config->log_opaque;
        cfg.log_sink = log_trampoline;
        cfg.log_opaque = s.get();
      }
    }
    auto space = ioasid::Space::create(cfg);
    if (!space) return neg(space.error());
    s->space = std::move(*space);
    *out = s.release();
    return 0;
  });
}

void ioasid_space_destroy(ioasid_space* space) {
  if (space == nullptr) return;
  space->space.reset();  // it may still point at allocator copies and trampolines
  delete space;
}

int ioasid_space_stats(const ioasid_space* space, ioasid_stats* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  const std::uint32_t size = out->size;
  if (size < kStatsV1) return -EINVAL;
  const ioasid::SpaceStats st = space->space->stats();
  ioasid_stats v{};
  v.size = size;
  v.custom_allocator_active = st.custom_allocator_active ? 1 : 0;
  v.live_ids = st.live_ids;
  v.free_pending_ids = st.free_pending_ids;
  v.reserved_ids = st.reserved_ids;
  v.capacity = st.capacity;
  v.quota_reserved = st.quota_reserved;
  v.sets = st.sets;
  v.dying_sets = st.dying_sets;
  v.orphaned_ids = st.orphaned_ids;
  v.orphaned_total = st.orphaned_total;
  v.allocs = st.allocs;
  v.releases = st.releases;
  v.quota_refusals = st.quota_refusals;
  v.exhausted_refusals = st.exhausted_refusals;
  v.allocator_rejects = st.allocator_rejects;
  v.allocator_groups = st.allocator_groups;
  v.table_bytes = st.table_bytes;
  return write_sized_out(out, size, v, kStatsV1);
}

void ioasid_synchronize(const ioasid_space* space) {
  if (space == nullptr) return;
  space->space->synchronize();
}

uint64_t ioasid_space_trim(ioasid_space* space) {
  if (space == nullptr) return 0;
  return space->space->trim();
}

// ---- sets ----------------------------------------------------------------------------------

int ioasid_set_create(ioasid_space* space, uint64_t owner_token, uint32_t quota,
                      ioasid_set_t* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  auto r = space->space->create_set(owner_token, quota);
  if (!r) return neg(r.error());
  *out = r->raw();
  return 0;
}

int ioasid_set_destroy(ioasid_space* space, ioasid_set_t set, bool* gone) {
  if (space == nullptr) return -EINVAL;
  auto r = space->space->destroy_set(set_of(set));
  if (!r) return neg(r.error());
  if (gone != nullptr) *gone = *r;
  return 0;
}

int ioasid_set_quota(ioasid_space* space, ioasid_set_t set, uint32_t quota) {
  if (space == nullptr) return -EINVAL;
  return status(space->space->set_quota(set_of(set), quota));
}

int ioasid_set_query(const ioasid_space* space, ioasid_set_t set, ioasid_set_info* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  auto r = space->space->set_info(set_of(set));
  if (!r) return neg(r.error());
  *out = set_info_of(*r);
  return 0;
}

int ioasid_set_find(const ioasid_space* space, uint64_t owner_token, ioasid_set_t* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  auto r = space->space->find_set(owner_token);
  if (!r) return neg(r.error());
  *out = r->raw();
  return 0;
}

// ---- IDs -----------------------------------------------------------------------------------

int ioasid_alloc(ioasid_space* space, ioasid_set_t set, ioasid_t min, ioasid_t max, void* priv,
                 ioasid_t* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  auto r = space->space->alloc(set_of(set), min, max, priv);
  if (!r) return neg(r.error());
  *out = *r;
  return 0;
}

int ioasid_free(ioasid_space* space, ioasid_set_t set, ioasid_t id) {
  if (space == nullptr) return -EINVAL;
  return status(space->space->free(set_of(set), id));
}

int ioasid_get(ioasid_space* space, ioasid_set_t set, ioasid_t id) {
  if (space == nullptr) return -EINVAL;
  return status(space->space->get(set_of(set), id));
}

int ioasid_put(ioasid_space* space, ioasid_set_t set, ioasid_t id, bool* released) {
  if (space == nullptr) return -EINVAL;
  auto r = space->space->put(set_of(set), id);
  if (!r) return neg(r.error());
  if (released != nullptr) *released = *r;
  return 0;
}

int ioasid_query(const ioasid_space* space, ioasid_set_t set, ioasid_t id, ioasid_id_info* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  auto r = space->space->query(set_of(set), id);
  if (!r) return neg(r.error());
  *out = id_info_of(*r);
  return 0;
}

int ioasid_find(const ioasid_space* space, ioasid_set_t set, ioasid_t id,
                ioasid_validator_fn validator, void* opaque, void** out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  // ioasid_validator_fn and ioasid::ValidatorFn are the same function type.
  auto r = space->space->find(set_of(set), id, validator, opaque);
  if (!r) return neg(r.error());
  *out = *r;
  return 0;
}

int ioasid_set_data(ioasid_space* space, ioasid_t id, void* priv) {
  if (space == nullptr) return -EINVAL;
  return status(space->space->set_data(id, priv));
}

int ioasid_bind(ioasid_space* space, ioasid_set_t set, ioasid_t id, ioasid_t spid) {
  if (space == nullptr) return -EINVAL;
  return status(space->space->bind(set_of(set), id, spid));
}

int ioasid_unbind(ioasid_space* space, ioasid_set_t set, ioasid_t id) {
  if (space == nullptr) return -EINVAL;
  return status(space->space->unbind(set_of(set), id));
}

int ioasid_find_by_spid(const ioasid_space* space, ioasid_set_t set, ioasid_t spid, ioasid_t* out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  auto r = space->space->find_by_spid(set_of(set), spid);
  if (!r) return neg(r.error());
  *out = *r;
  return 0;
}

// ---- notifiers -----------------------------------------------------------------------------

int ioasid_notifier_register(ioasid_space* space, uint32_t event_mask, ioasid_notifier_fn fn,
                             void* opaque, uint64_t* out) {
  return register_notifier(space, true, 0, event_mask, fn, opaque, out);
}

int ioasid_notifier_register_owner(ioasid_space* space, uint64_t owner_token, uint32_t event_mask,
                                   ioasid_notifier_fn fn, void* opaque, uint64_t* out) {
  return register_notifier(space, false, owner_token, event_mask, fn, opaque, out);
}

int ioasid_notifier_unregister(ioasid_space* space, uint64_t notifier) {
  if (space == nullptr) return -EINVAL;
  return guarded([&] {
    auto r = space->space->unregister_notifier(notifier);
    if (!r) return neg(r.error());
    // The Space no longer calls it (callbacks run under the writer lock unregister took).
    std::unique_ptr<NotifierTrampoline> gone;
    {
      std::lock_guard<std::mutex> lock(space->mu);
      auto it = space->notifiers.find(notifier);
      if (it != space->notifiers.end()) {
        gone = std::move(it->second);
        space->notifiers.erase(it);
      }
    }
    return 0;
  });
}

// ---- custom allocators ---------------------------------------------------------------------

int ioasid_allocator_register(ioasid_space* space, const ioasid_allocator_ops* ops) {
  if (space == nullptr || ops == nullptr || ops->alloc == nullptr || ops->free == nullptr) {
    return -EINVAL;
  }
  return guarded([&] {
    ioasid::Space& sp = *space->space;
    if (in_callback(sp)) return -EDEADLK;
    AllocatorEntry* entry = nullptr;
    {
      std::lock_guard<std::mutex> lock(space->mu);
      if (space->allocators.count(ops) != 0) return -EEXIST;
      // The same function pointers make the Space group two C structs together.
      auto e = std::make_unique<AllocatorEntry>(
          AllocatorEntry{ioasid::AllocatorOps{ops->alloc, ops->free, ops->pdata}, false});
      entry = e.get();
      space->allocators.emplace(ops, std::move(e));
    }
    auto r = sp.register_allocator(&entry->ops);
    std::lock_guard<std::mutex> lock(space->mu);
    if (!r) {
      space->allocators.erase(ops);  // never seen by the Space: frees the copy
      return neg(r.error());
    }
    entry->ready = true;
    return 0;
  });
}

void ioasid_allocator_unregister(ioasid_space* space, const ioasid_allocator_ops* ops) {
  if (space == nullptr) return;
  try {
    ioasid::Space& sp = *space->space;
    // An unknown pointer: the Space logs it. It compares pointers only and never reads *ops.
    const auto* unknown = reinterpret_cast<const ioasid::AllocatorOps*>(ops);
    if (in_callback(sp)) {
      sp.unregister_allocator(unknown);  // refused and logged by the Space; nothing changes
      return;
    }
    std::unique_ptr<AllocatorEntry> entry;
    {
      std::lock_guard<std::mutex> lock(space->mu);
      auto it = space->allocators.find(ops);
      if (it != space->allocators.end() && it->second->ready) {
        entry = std::move(it->second);
        space->allocators.erase(it);
      }
    }
    sp.unregister_allocator(entry != nullptr ? &entry->ops : unknown);
    // entry (the copy) goes now: the Space holds no pointer to it any more.
  } catch (...) {
    // Nothing above allocates; keep the boundary closed anyway.
  }
}

// ---- host backend --------------------------------------------------------------------------

int ioasid_backend_local_create(ioasid_space* space, ioasid_set_t set, ioasid_backend** out) {
  if (space == nullptr || out == nullptr) return -EINVAL;
  return guarded([&] {
    const ioasid::SetId id = set_of(set);
    if (id.is_any() || !space->space->set_info(id)) return -ENOENT;
    *out = new ioasid_backend(*space->space, id);
    return 0;
  });
}

void ioasid_backend_destroy(ioasid_backend* backend) { delete backend; }

int ioasid_backend_alloc(ioasid_backend* backend, ioasid_t min, ioasid_t max, ioasid_t* out) {
  if (backend == nullptr || out == nullptr) return -EINVAL;
  auto r = backend->backend.alloc(min, max);
  if (!r) return neg(r.error());
  *out = *r;
  return 0;
}

int ioasid_backend_free(ioasid_backend* backend, ioasid_t id) {
  if (backend == nullptr) return -EINVAL;
  return status(backend->backend.free(id));
}

int ioasid_backend_bind(ioasid_backend* backend, ioasid_t id, ioasid_t spid) {
  if (backend == nullptr) return -EINVAL;
  return status(backend->backend.bind(id, spid));
}

int ioasid_backend_unbind(ioasid_backend* backend, ioasid_t id) {
  if (backend == nullptr) return -EINVAL;
  return status(backend->backend.unbind(id));
}

// ioasid_backend_get, _put and _find_by_spid are defined in client/client_c.cc (they were first
// declared by client.h); they go through the HostBackend interface like these.

int ioasid_backend_query(ioasid_backend* backend, ioasid_t id, ioasid_id_info* out) {
  if (backend == nullptr || out == nullptr) return -EINVAL;
  auto r = backend->backend.query(id);
  if (!r) return neg(r.error());
  *out = id_info_of(*r);
  return 0;
}

int ioasid_backend_set_info(ioasid_backend* backend, ioasid_set_info* out) {
  if (backend == nullptr || out == nullptr) return -EINVAL;
  auto r = backend->backend.set_info();
  if (!r) return neg(r.error());
  *out = set_info_of(*r);
  return 0;
}

// ---- VT-d virtual command device model ------------------------------------------------------

int ioasid_vtd_device_create(ioasid_backend* backend, const ioasid_vtd_config* config,
                             ioasid_vtd_device** out) {
  if (backend == nullptr || out == nullptr) return -EINVAL;
  return guarded([&] {
    ioasid::VtdVcmdDeviceOptions o;  // defaults: rev 3.3, immediate, CM / PASID+SMTS+VCS / PAS
    auto d = std::make_unique<ioasid_vtd_device>();
    if (config != nullptr) {
      if (int rc = check_in_size(config, config->size, kVtdConfigV1, sizeof(*config)); rc != 0) {
        return rc;
      }
      if (config->reserved0 != 0) return -EINVAL;
      if (config->layout > IOASID_VTD_LAYOUT_REV3_3) return -EINVAL;
      if (config->completion > IOASID_VTD_COMPLETION_ASYNC) return -EINVAL;
      o.layout = static_cast<ioasid::wire::vtd::VcmdLayout>(config->layout);
      o.completion = static_cast<ioasid::VtdCompletion>(config->completion);
      if (config->cap != 0) o.cap = config->cap;
      if (config->ecap != 0) o.ecap = config->ecap;
      if (config->vccap != 0) o.vccap = config->vccap;
      if (config->pasid_min != 0) o.pasid_min = config->pasid_min;
      if (config->pasid_max != 0) o.pasid_max = config->pasid_max;
      if (config->log_fn != nullptr) {
        d->log_fn = config->log_fn;
        d->log_opaque = config->log_opaque;
        o.log_sink = vtd_log_trampoline;
        o.log_opaque = d.get();
      }
    }
    auto dev = ioasid::VtdVcmdDevice::create(backend->backend, o);
    if (!dev) return neg(dev.error());
    d->device = std::move(*dev);
    *out = d.release();
    return 0;
  });
}

void ioasid_vtd_device_destroy(ioasid_vtd_device* device) { delete device; }

uint64_t ioasid_vtd_mmio_read(ioasid_vtd_device* device, uint64_t offset, unsigned size) {
  if (device == nullptr) return 0;
  return device->device->mmio_read(offset, size);
}

void ioasid_vtd_mmio_write(ioasid_vtd_device* device, uint64_t offset, unsigned size,
                           uint64_t value) {
  if (device == nullptr) return;
  device->device->mmio_write(offset, size, value);
}

uint64_t ioasid_vtd_cap_bits(const ioasid_vtd_device* device) {
  return device == nullptr ? 0 : device->device->cap_bits();
}

uint64_t ioasid_vtd_ecap_bits(const ioasid_vtd_device* device) {
  return device == nullptr ? 0 : device->device->ecap_bits();
}

uint64_t ioasid_vtd_vccap_bits(const ioasid_vtd_device* device) {
  return device == nullptr ? 0 : device->device->vccap();
}

int ioasid_vtd_stats(const ioasid_vtd_device* device, ioasid_vtd_counters* out) {
  if (device == nullptr || out == nullptr) return -EINVAL;
  const std::uint32_t size = out->size;
  if (size < kVtdStatsV1) return -EINVAL;
  const ioasid::VtdVcmdStats st = device->device->stats();
  ioasid_vtd_counters v{};
  v.size = size;
  v.reads = st.reads;
  v.writes = st.writes;
  v.commands = st.commands;
  v.allocs = st.allocs;
  v.alloc_no_pasid = st.alloc_no_pasid;
  v.frees = st.frees;
  v.free_invalid_pasid = st.free_invalid_pasid;
  v.undefined_cmds = st.undefined_cmds;
  v.ignored_busy = st.ignored_busy;
  v.ignored_disabled = st.ignored_disabled;
  v.bad_accesses = st.bad_accesses;
  v.unknown_accesses = st.unknown_accesses;
  v.ro_writes = st.ro_writes;
  v.reserved_bits = st.reserved_bits;
  v.split_orphans = st.split_orphans;
  v.backend_errors = st.backend_errors;
  v.backend_bad_answers = st.backend_bad_answers;
  return write_sized_out(out, size, v, kVtdStatsV1);
}

int ioasid_vtd_wait_idle(ioasid_vtd_device* device, uint64_t timeout_ns) {
  if (device == nullptr) return -EINVAL;
  // Clamped to 2^62 ns (146 years), so that the deadline (now + timeout) cannot overflow.
  constexpr std::uint64_t max = std::uint64_t{1} << 62;
  const std::chrono::nanoseconds t(static_cast<std::int64_t>(timeout_ns < max ? timeout_ns : max));
  return device->device->wait_idle(t) ? 0 : -ETIMEDOUT;
}

}  // extern "C"
