// SPDX-License-Identifier: Apache-2.0
// vm.cc: one simulated VM, its VMM's device models and its guest (vm.hpp).
#include "sim/vm.hpp"

#include <algorithm>
#include <thread>

namespace ioasid::sim {
namespace {

constexpr std::uint64_t kGuestRamGpa = 0x8000'0000;
constexpr std::uint32_t kEndpointBase = 8;  // virtio-iommu endpoint IDs: 8, 9, ...

constexpr std::array<const char*, kOps> kOpNames = {"alloc", "free", "bind", "unbind",
                                                    "free_bound"};

virtio::VirtioIommuGuestDriverOptions virtio_driver_options() {
  virtio::VirtioIommuGuestDriverOptions o;
  // In-process requests complete inside the kick; only a device that is gone (a fault) waits.
  o.timeout = std::chrono::seconds(2);
  return o;
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

const char* to_string(Op op) noexcept { return kOpNames[static_cast<unsigned>(op)]; }

void Vm::PortProxy::read_config(std::uint32_t offset, std::span<std::byte> out) noexcept {
  if (t_) {
    t_->read_config(offset, out);
  } else {
    std::fill(out.begin(), out.end(), std::byte{0xFF});
  }
}
void Vm::PortProxy::wait_interrupt(unsigned q,
                                   std::chrono::steady_clock::time_point deadline) noexcept {
  if (t_) {
    t_->wait_interrupt(q, deadline);
    return;
  }
  // Nobody will answer: do not spin until the driver's deadline.
  std::this_thread::sleep_until(
      std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)));
}

Vm::Vm(SimContext& ctx, int index)
    : ctx_(ctx), index_(index), spec_(ctx.scenario.vms[static_cast<std::size_t>(index)]) {
  stats_.allocs_by_viommu.assign(spec_.viommus.size(), 0);
  const std::uint64_t area =
      align_up(virtio::VirtioIommuGuestDriver::area_bytes(virtio_driver_options()), 4096);
  slots_.resize(spec_.viommus.size());  // never resized again: drivers point into the slots
  ram_.assign(area * slots_.size(), std::byte{0});
  if (!mem_.add_region({kGuestRamGpa, ram_.size(), ram_.data()})) {
    throw RunFailure(spec_.name + ": cannot lay out guest memory");
  }
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    slots_[i].spec = &spec_.viommus[i];
    slots_[i].gpa = kGuestRamGpa + area * i;
  }
}

Vm::~Vm() {
  // A run that stopped early (a violation, a failure): guest first, then the device models (which
  // drop their binds), then the session is abandoned, not closed (the host keeps it as after a
  // crash).
  for (Slot& s : slots_) {
    s.vtd_drv.reset();
    s.vdrv.reset();
  }
  guest_.reset();
  for (Slot& s : slots_) {
    s.mmio.target_ = nullptr;
    s.port.t_ = nullptr;
    s.vtrans.reset();
    s.vdev.reset();
    s.vtd_mmio.reset();
    s.vtd_dev.reset();
  }
  if (session_) session_->abandon();
}

VmView Vm::view() const {
  return VmView{spec_.name, spec_.token, spec_.quota, running(), &pasids_};
}

void Vm::failure(const std::string& what) const { throw RunFailure(spec_.name + ": " + what); }

void Vm::note(std::string what) { ctx_.history.add(ctx_.step, spec_.name + ": " + what); }

std::string Vm::slot_name(int slot) const {
  return slot < 0 ? std::string("no vIOMMU") : spec_.viommus[static_cast<std::size_t>(slot)].name;
}

HostBackend& Vm::backend() { return session_->backend(); }

// ---- VMM ----------------------------------------------------------------------------------

void Vm::vmm_create(Slot& s) {
  if (s.spec->kind == ViommuKind::vtd) {
    VtdVcmdDeviceOptions o;
    o.layout = s.spec->layout;
    o.completion = s.spec->completion;
    auto dev = VtdVcmdDevice::create(backend(), o);
    if (!dev) failure("cannot create the VT-d device model " + s.spec->name);
    s.vtd_dev = std::move(*dev);
    s.vtd_mmio = std::make_unique<internal::DeviceMmio>(*s.vtd_dev);
    s.mmio.target_ = s.vtd_mmio.get();
  } else {
    virtio::IommuDeviceConfig c;
    for (std::uint32_t e = 0; e < s.spec->endpoints; ++e) {
      c.endpoints.push_back({.id = kEndpointBase + e, .resv = {}});
    }
    c.max_pasid = s.spec->max_pasid != 0 ? s.spec->max_pasid : kMaxPasid;
    s.vdev = std::make_unique<virtio::IommuDevice>(backend(), std::move(c));
    s.vtrans = std::make_unique<virtio::VirtioIommuTransport>(*s.vdev, mem_);
    s.port.t_ = &s.vtrans->port();
  }
  s.plugged = true;
}

void Vm::vmm_destroy(int slot, bool guest_alive) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  s.mmio.target_ = nullptr;
  s.port.t_ = nullptr;
  // VFIO releases a device's PASID binds when the device goes; so does this VMM for VT-d, and
  // ~IommuDevice drops the binds of a virtio-iommu device.
  for (const auto& [id, endpoint] : s.vtd_binds) {
    if (auto r = backend().unbind(id); !r) {
      failure("releasing the VT-d bind of PASID " + hex(id) + " (" + s.spec->name +
              ") failed: " + to_string(r.error()));
    }
  }
  s.vtd_binds.clear();
  s.vtrans.reset();
  s.vdev.reset();
  s.vtd_mmio.reset();
  s.vtd_dev.reset();
  s.plugged = false;
  if (!guest_alive) return;
  // The guest's binds through that device are gone; PASIDs it had freed while bound go with them.
  std::vector<Id> touched;
  for (auto& [id, rec] : pasids_) {
    if (rec.bound_slot == slot) touched.push_back(id);
  }
  for (Id id : touched) {
    GuestPasid& rec = pasids_.at(id);
    rec.bound_slot = -1;
    const bool released = rec.freed;
    ctx_.checker.ack_unbind(index_, id, released);
    if (released) erase_record(id);
    check(id);
  }
}

// ---- guest --------------------------------------------------------------------------------

void Vm::guest_create() {
  std::fill(ram_.begin(), ram_.end(), std::byte{0});
  auto g = Space::create({});
  if (!g) failure("cannot create the guest space");
  guest_ = std::move(*g);
  auto set = guest_->create_set(/*owner_token=*/1, /*quota=*/kMaxPasid);
  if (!set) failure("cannot create the guest's set");
  gset_ = *set;
}

void Vm::guest_destroy() {
  for (Slot& s : slots_) {
    s.vtd_drv.reset();
    s.vdrv.reset();
  }
  guest_.reset();
}

void Vm::guest_attach(int slot) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  Result<void> r;
  if (s.spec->kind == ViommuKind::vtd) {
    VtdGuestDriverOptions o;
    o.layout = s.spec->layout;
    // In-process commands complete at once (or within microseconds in async mode); only a
    // device that is gone (a fault) leaves the driver polling.
    o.poll_timeout = std::chrono::seconds(1);
    s.vtd_drv = std::make_unique<VtdGuestDriver>(s.mmio, o);
    r = s.vtd_drv->register_allocator(*guest_);
  } else {
    s.vdrv = std::make_unique<virtio::VirtioIommuGuestDriver>(s.port, mem_, s.gpa,
                                                              virtio_driver_options());
    r = s.vdrv->register_allocator(*guest_);
  }
  if (!r) failure("the guest cannot register " + s.spec->name + ": " + to_string(r.error()));
  s.seen_allocs = driver_allocs(s);
}

void Vm::guest_detach(int slot) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  s.vtd_drv.reset();  // unregisters: another vIOMMU of the group takes over
  s.vdrv.reset();     // the same, and resets its device
  bool kind_left = false;
  for (const Slot& o : slots_) {
    kind_left = kind_left || (o.spec->kind == s.spec->kind && (o.vtd_drv || o.vdrv));
  }
  if (kind_left) return;
  // The group is gone: what it handed out is orphaned in the guest Space.
  std::size_t n = 0;
  for (auto& [id, rec] : pasids_) {
    if (rec.via >= 0 && rec.kind == s.spec->kind && !rec.orphaned) {
      rec.orphaned = true;
      ++n;
    }
  }
  if (n > 0)
    note(std::to_string(n) + " PASIDs orphaned (the last " + to_string(s.spec->kind) +
         " vIOMMU left)");
}

bool Vm::any_registered() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) {
    return (s.vtd_drv && s.vtd_drv->registered()) || (s.vdrv && s.vdrv->registered());
  });
}

std::uint64_t Vm::driver_allocs(const Slot& s) const {
  if (s.vtd_drv) return s.vtd_drv->stats().allocs;
  if (s.vdrv) return s.vdrv->stats().allocs;
  return 0;
}

void Vm::erase_record(Id id) {
  pasids_.erase(id);
  ctx_.checker.unclaim(index_, id);
}

void Vm::check(Id id) {
  auto it = pasids_.find(id);
  ctx_.checker.check_pasid(index_, id, it == pasids_.end() ? nullptr : &it->second,
                           backend().query(id));
}

// ---- events -------------------------------------------------------------------------------

void Vm::boot() {
  auto s = ctx_.host.open(spec_.token, spec_.quota, std::nullopt);
  if (!s) failure("cannot open its session with the host: " + std::string(to_string(s.error())));
  session_ = std::move(*s);
  resume_ = session_->resume_token();
  guest_create();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].spec->plugged) continue;
    vmm_create(slots_[i]);
    guest_attach(static_cast<int>(i));
  }
  note("booted (session opened, quota " + std::to_string(spec_.quota) + ")");
}

void Vm::hot_unplug(int slot) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  note("hot-unplug of " + s.spec->name);
  // The guest is asked first (an eject request): it unbinds what it bound through the device.
  std::vector<Id> bound;
  for (const auto& [id, rec] : pasids_) {
    if (rec.bound_slot == slot) bound.push_back(id);
  }
  for (Id id : bound) op_unbind(id);
  if (ctx_.fault.take(Fault::stale_driver, ctx_.step)) {
    note("FAULT INJECTED (stale_driver): the guest keeps the driver of " + s.spec->name +
         " registered");
  } else {
    guest_detach(slot);
  }
  vmm_destroy(slot, true);
  ++stats_.events[static_cast<unsigned>(EventKind::hot_unplug)];
}

void Vm::hot_plug(int slot) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  note("hot-plug of " + s.spec->name);
  vmm_create(s);
  guest_attach(slot);
  ++stats_.events[static_cast<unsigned>(EventKind::hot_plug)];
}

void Vm::crash_and_restart(bool resume) {
  note(std::string("VMM crash (") +
       (resume ? "restart within the grace period" : "restart after the grace period") + ")");
  ++stats_.events[static_cast<unsigned>(EventKind::vmm_crash)];
  std::vector<bool> was_plugged;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    was_plugged.push_back(slots_[i].plugged);
    if (slots_[i].plugged) vmm_destroy(static_cast<int>(i), true);
  }
  session_->abandon();
  session_.reset();
  if (!resume) {
    if (auto r = ctx_.host.wait_reclaimed(spec_.token); !r) {
      failure("the host did not reclaim the crashed VMM's set: " +
              std::string(to_string(r.error())));
    }
    note("grace period over: the host reclaimed the set; the guest reboots");
    guest_destroy();
    for (auto& [id, rec] : pasids_) ctx_.checker.unclaim(index_, id);
    pasids_.clear();
    ctx_.checker.ack_gone(index_);
    ctx_.checker.check_gone(spec_.name, spec_.token);
    ++stats_.rebooted;
    boot();
    return;
  }
  auto s = ctx_.host.open(spec_.token, spec_.quota, resume_);
  if (!s)
    failure("the restarted VMM cannot open its session: " + std::string(to_string(s.error())));
  session_ = std::move(*s);
  resume_ = session_->resume_token();
  if (session_->resumed()) ++stats_.resumed;
  // Resumed or not, the guest goes on as it was: if the host lost the set within the grace
  // period, the checks find the guest's PASIDs missing.
  note(std::string("VMM restarted: session ") + (session_->resumed() ? "resumed" : "NOT resumed") +
       ", the guest holds " + std::to_string(pasids_.size()) + " PASIDs");
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& sl = slots_[i];
    if (!was_plugged[i]) continue;
    vmm_create(sl);
    // The devices are new: the guest drivers find them again (a device reset for the guest).
    if (sl.vtd_drv && !sl.vtd_drv->probe()) failure("the guest cannot probe " + sl.spec->name);
    if (sl.vdrv) {
      if (auto r = sl.vdrv->probe(); !r) {
        failure("the guest cannot probe " + sl.spec->name + ": " + to_string(r.error()));
      }
    }
    sl.seen_allocs = driver_allocs(sl);
  }
}

void Vm::shutdown() {
  note("shutdown");
  ++stats_.events[static_cast<unsigned>(EventKind::vm_shutdown)];
  guest_destroy();
  for (auto& [id, rec] : pasids_) ctx_.checker.unclaim(index_, id);
  pasids_.clear();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].plugged) vmm_destroy(static_cast<int>(i), false);
  }
  if (ctx_.fault.take(Fault::skip_teardown, ctx_.step)) {
    note("FAULT INJECTED (skip_teardown): the VM's set is not torn down");
    session_->abandon();
  } else if (auto r = session_->close(); !r) {
    failure("closing its session failed: " + std::string(to_string(r.error())));
  }
  session_.reset();
  ctx_.checker.ack_gone(index_);
  ctx_.checker.check_gone(spec_.name, spec_.token);
}

// ---- workload -----------------------------------------------------------------------------

bool Vm::step(Rng& rng) {
  std::array<std::vector<Id>, kOps> candidates;
  const bool can_alloc = any_registered();
  bool any_plugged = false;
  for (const Slot& s : slots_) any_plugged = any_plugged || s.plugged;
  for (const auto& [id, rec] : pasids_) {
    const bool freeable = !rec.orphaned || can_alloc;
    if (!rec.bound() && !rec.freed) {
      if (freeable) candidates[static_cast<unsigned>(Op::free)].push_back(id);
      if (any_plugged) candidates[static_cast<unsigned>(Op::bind)].push_back(id);
    }
    if (rec.bound()) {
      candidates[static_cast<unsigned>(Op::unbind)].push_back(id);
      if (!rec.freed && freeable) candidates[static_cast<unsigned>(Op::free_bound)].push_back(id);
    }
  }
  const WorkloadMix& w = spec_.workload;
  const std::array<std::uint64_t, kOps> weights = {
      can_alloc ? w.alloc : 0,
      candidates[1].empty() ? 0 : w.free,
      candidates[2].empty() ? 0 : w.bind,
      candidates[3].empty() ? 0 : w.unbind,
      candidates[4].empty() ? 0 : w.free_bound,
  };
  std::uint64_t total = 0;
  for (auto x : weights) total += x;
  if (total == 0) return false;
  std::uint64_t pick = rng.below(total);
  unsigned op = 0;
  while (pick >= weights[op]) pick -= weights[op++];
  if (static_cast<Op>(op) == Op::alloc) {
    Id id = kInvalidId;
    op_alloc(false, &id);
    return true;
  }
  const std::vector<Id>& c = candidates[op];
  const Id id = c[rng.below(c.size())];
  switch (static_cast<Op>(op)) {
    case Op::free:
      op_free(id);
      break;
    case Op::bind:
      op_bind(rng, id);
      break;
    case Op::unbind:
      op_unbind(id);
      break;
    case Op::free_bound:
      op_free_bound(id);
      break;
    case Op::alloc:
      break;
  }
  return true;
}

bool Vm::op_alloc(bool probe, Id* out) {
  Id id = kInvalidId;
  const Errc e = guest_->alloc_raw(gset_, 1, kMaxPasid, nullptr, &id);
  int served = -1;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.vtd_drv && !s.vdrv) continue;  // no driver: it served nothing
    const std::uint64_t now = driver_allocs(s);
    if (now != s.seen_allocs) served = static_cast<int>(i);
    s.seen_allocs = now;
  }
  if (e != Errc{}) {
    if (probe) {
      ctx_.checker.violate(Invariant::allocator_after_unplug,
                           spec_.name +
                               " still has a plugged vIOMMU, but an allocation through "
                               "its guest space failed: " +
                               to_string(e));
    }
    if (e == Errc::exhausted) {
      if (ctx_.checker.acked(index_).size() >= spec_.quota) {
        ++stats_.quota_refusals;
        note("alloc refused: at the quota of " + std::to_string(spec_.quota));
      } else {
        ++stats_.other_refusals;
        note("alloc refused below the quota (" + slot_name(served) + ")");
      }
      return false;
    }
    failure("alloc through the guest space failed: " + std::string(to_string(e)));
  }
  if (served >= 0 && !slots_[static_cast<std::size_t>(served)].plugged) {
    ctx_.checker.violate(Invariant::allocator_after_unplug,
                         spec_.name + "'s PASID " + hex(id) + " was allocated through " +
                             slot_name(served) + ", which was hot-unplugged");
  }
  GuestPasid rec;
  rec.via = served;
  if (served >= 0) rec.kind = slots_[static_cast<std::size_t>(served)].spec->kind;
  pasids_[id] = rec;
  note(std::string(probe ? "probe alloc " : "alloc ") + hex(id) + " via " + slot_name(served));
  ctx_.checker.claim(index_, id);
  ctx_.checker.ack_alloc(index_, id);
  if (served >= 0) ++stats_.allocs_by_viommu[static_cast<std::size_t>(served)];
  if (!probe) ++stats_.ops[static_cast<unsigned>(Op::alloc)];
  stats_.peak = std::max<std::uint64_t>(stats_.peak, pasids_.size());
  check(id);
  ctx_.checker.check_quota(index_);
  if (served >= 0) {
    const ViommuSpec& vs = *slots_[static_cast<std::size_t>(served)].spec;
    if (vs.kind == ViommuKind::virtio && vs.max_pasid != 0 && id > vs.max_pasid) {
      failure(vs.name + " (max_pasid " + hex(vs.max_pasid) + ") handed out PASID " + hex(id));
    }
  }
  *out = id;
  return true;
}

void Vm::adopt_for_fault(Id id) {
  note("FAULT INJECTED (double_owner): the guest takes PASID " + hex(id));
  pasids_[id] = GuestPasid{};
  ctx_.checker.claim(index_, id);
}

void Vm::release_local(Id id, GuestPasid& rec) {
  if (auto r = guest_->free(gset_, id); !r) {
    failure("free of " + hex(id) + " in the guest space failed: " + to_string(r.error()));
  }
  if (!rec.orphaned) return;
  // Nobody was asked by the guest Space: free it on the host through a vIOMMU still registered.
  for (Slot& s : slots_) {
    if (s.vtd_drv && s.vtd_drv->registered()) {
      const std::uint64_t before = s.vtd_drv->stats().frees;
      s.vtd_drv->vcmd_free(id);
      if (s.vtd_drv->stats().frees == before) {
        failure("VCMD FREE of orphaned PASID " + hex(id) + " through " + s.spec->name + " failed");
      }
    } else if (s.vdrv && s.vdrv->registered()) {
      if (auto r = s.vdrv->free_pasid(id); !r) {
        failure("FREE_PASID of orphaned PASID " + hex(id) + " through " + s.spec->name +
                " failed: " + to_string(r.error()));
      }
    } else {
      continue;
    }
    ++stats_.orphan_frees;
    note("orphaned " + hex(id) + " freed through " + s.spec->name);
    return;
  }
  failure("no vIOMMU left to free orphaned PASID " + hex(id));
}

void Vm::op_free(Id id) {
  GuestPasid& rec = pasids_.at(id);
  release_local(id, rec);
  ++stats_.ops[static_cast<unsigned>(Op::free)];
  ctx_.checker.ack_free(index_, id, /*released=*/true);
  if (ctx_.fault.take(Fault::keep_freed, ctx_.step)) {
    note("free " + hex(id) + "; FAULT INJECTED (keep_freed): the guest keeps it");
  } else {
    note("free " + hex(id));
    erase_record(id);
  }
  check(id);
}

void Vm::op_bind(Rng& rng, Id id) {
  std::vector<int> plugged;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].plugged) plugged.push_back(static_cast<int>(i));
  }
  const int slot = plugged[rng.below(plugged.size())];
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  const auto endpoint = static_cast<std::uint32_t>(rng.below(s.spec->endpoints));
  Id spid = kInvalidId;
  if (s.spec->kind == ViommuKind::vtd) {
    // VFIO-style: the VMM binds on behalf of the device; guest PASID = host PASID.
    if (auto r = backend().bind(id, id); !r) {
      failure("VMM bind of " + hex(id) + " for " + s.spec->name +
              " failed: " + to_string(r.error()));
    }
    s.vtd_binds[id] = endpoint;
    spid = id;
  } else if (auto r = s.vdrv->bind_pasid(kEndpointBase + endpoint, id); !r) {
    failure("BIND_PASID of " + hex(id) + " through " + s.spec->name +
            " failed: " + to_string(r.error()));
  }
  GuestPasid& rec = pasids_.at(id);
  rec.bound_slot = slot;
  rec.endpoint = endpoint;
  ++stats_.ops[static_cast<unsigned>(Op::bind)];
  note("bind " + hex(id) + " to " + s.spec->name + " device " + std::to_string(endpoint));
  ctx_.checker.ack_bind(index_, id, spid);
  check(id);
}

void Vm::op_unbind(Id id) {
  GuestPasid& rec = pasids_.at(id);
  Slot& s = slots_[static_cast<std::size_t>(rec.bound_slot)];
  if (s.spec->kind == ViommuKind::vtd) {
    if (auto r = backend().unbind(id); !r) {
      failure("VMM unbind of " + hex(id) + " for " + s.spec->name +
              " failed: " + to_string(r.error()));
    }
    s.vtd_binds.erase(id);
  } else if (auto r = s.vdrv->unbind_pasid(kEndpointBase + rec.endpoint, id); !r) {
    failure("UNBIND_PASID of " + hex(id) + " through " + s.spec->name +
            " failed: " + to_string(r.error()));
  }
  ++stats_.ops[static_cast<unsigned>(Op::unbind)];
  const bool released = rec.freed;
  note("unbind " + hex(id) + " from " + s.spec->name + (released ? " (released)" : ""));
  ctx_.checker.ack_unbind(index_, id, released);
  if (released) {
    erase_record(id);
  } else {
    rec.bound_slot = -1;
  }
  check(id);
}

void Vm::op_free_bound(Id id) {
  GuestPasid& rec = pasids_.at(id);
  release_local(id, rec);
  rec.freed = true;
  ++stats_.ops[static_cast<unsigned>(Op::free_bound)];
  note("free " + hex(id) + " while bound (FREE_PENDING until the unbind)");
  ctx_.checker.ack_free(index_, id, /*released=*/false);
  check(id);
}

void Vm::check_allocator_after_unplug() {
  const bool any_plugged =
      std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.plugged; });
  if (!any_plugged) return;  // no vIOMMU left: the guest allocates nothing until a hot-plug
  if (!guest_->stats().custom_allocator_active) {
    ctx_.checker.violate(Invariant::allocator_after_unplug,
                         spec_.name +
                             " still has a plugged vIOMMU, but no custom allocator is "
                             "active in its guest space");
  }
  if (ctx_.checker.acked(index_).size() >= spec_.quota) {
    note("allocator probe skipped: at the quota");
    return;
  }
  Id id = kInvalidId;
  op_alloc(/*probe=*/true, &id);
  GuestPasid& rec = pasids_.at(id);
  release_local(id, rec);
  ctx_.checker.ack_free(index_, id, true);
  note("probe free " + hex(id));
  erase_record(id);
  check(id);
}

}  // namespace ioasid::sim
