// SPDX-License-Identifier: Apache-2.0
// vm.hpp: sim::Vm, one simulated virtual machine: its VMM (the session with the host and one
// device model per plugged vIOMMU: VtdVcmdDevice, or IommuDevice behind a split-virtqueue
// VirtioIommuTransport) and its guest (a guest Space whose custom allocators are the vIOMMUs'
// guest drivers, and the guest's own record of the PASIDs it holds and binds), wired exactly as
// the end-to-end tests of both transports wire them. Every PASID goes guest Space -> guest
// driver -> registers / virtqueue -> device model -> the VM's HostBackend -> host.
//
// Decisions (docs/simulator.md "The VM model"):
//   - Binds: virtio-iommu binds with its BIND_PASID request; for VT-d, which has no bind command,
//     the VMM binds on the host backend on behalf of the device (as VFIO would), with the PASID
//     itself as the guest PASID (global scope: guest and host PASIDs are the same number).
//   - A guest allocates only while it has a registered vIOMMU driver (with none, a guest Space
//     falls back to its default allocator, whose PASIDs the host never saw).
//   - When the last vIOMMU of a kind goes, the PASIDs its allocator group handed out are orphaned
//     in the guest Space (releasing them calls no allocator); the guest frees those through a
//     remaining vIOMMU explicitly (global scope: any vIOMMU of the VM may free any of its
//     PASIDs), or keeps them while it has none.
//   - Device models going away (hot-unplug, VMM crash) release their devices' binds, as the
//     kernel does when a VFIO device is closed; a PASID the guest had freed while bound is then
//     released. A VMM crash keeps the VM frozen until the VMM is back: no guest operation runs in
//     between.
//
// Thread-safety: one simulation thread (VT-d devices in "async" completion use a worker).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ioasid/client.hpp"
#include "ioasid/guest_memory.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/vtd_device.hpp"
#include "ioasid/vtd_guest_driver.hpp"
#include "sim/checker.hpp"
#include "sim/host.hpp"
#include "sim/rng.hpp"
#include "sim/scenario.hpp"
#include "vtd/internal/device_mmio.hpp"

namespace ioasid::sim {

// The fault to inject, if any, and whether it fired (it fires once).
struct FaultPlan {
  Fault fault = Fault::none;
  std::uint64_t at = 0;
  bool fired = false;
  // True (once) when f is the planned fault and its step has come; marks it fired.
  bool take(Fault f, std::uint64_t step) {
    if (fault != f || fired || step < at) return false;
    fired = true;
    return true;
  }
};

// What the VMs share: the scenario, the host, the checker, the history, the current step.
struct SimContext {
  const Scenario& scenario;
  Host& host;
  Checker& checker;
  History& history;
  FaultPlan& fault;
  std::uint64_t step = 0;
};

enum class Op : std::uint8_t { alloc = 0, free, bind, unbind, free_bound };
inline constexpr unsigned kOps = 5;
const char* to_string(Op op) noexcept;

struct VmStats {
  std::array<std::uint64_t, kOps> ops{};  // operations done (successful allocations for alloc)
  std::uint64_t quota_refusals = 0;       // alloc refused while the VM held its quota
  std::uint64_t other_refusals = 0;       // alloc refused below the quota (a max_pasid range)
  std::uint64_t orphan_frees = 0;         // orphaned PASIDs freed through another vIOMMU
  std::uint64_t peak = 0;                 // most PASIDs held at once (guest view)
  std::array<std::uint64_t, kEventKinds> events{};
  std::uint64_t resumed = 0;   // VMM restarts that resumed the session
  std::uint64_t rebooted = 0;  // VMM restarts after the grace period (guest rebooted)
  std::vector<std::uint64_t> allocs_by_viommu;  // per vIOMMU of the spec
};

class Vm {
 public:
  Vm(SimContext& ctx, int index);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  [[nodiscard]] const VmSpec& spec() const noexcept { return spec_; }
  [[nodiscard]] int index() const noexcept { return index_; }
  [[nodiscard]] bool running() const noexcept { return session_ != nullptr; }
  [[nodiscard]] const std::map<Id, GuestPasid>& pasids() const noexcept { return pasids_; }
  [[nodiscard]] std::size_t held() const noexcept { return pasids_.size(); }
  [[nodiscard]] const VmStats& stats() const noexcept { return stats_; }
  [[nodiscard]] VmView view() const;

  // ---- events ----
  void boot();  // a new session and a fresh guest (at the start, and for vm_boot)
  void hot_unplug(int viommu);
  void hot_plug(int viommu);
  void crash_and_restart(bool resume);
  void shutdown();  // vm_shutdown, and every running VM at the end of the run

  // ---- workload ----
  // One guest operation, chosen with the VM's weights among those that apply. False: none did.
  bool step(Rng& rng);
  // allocator_after_unplug: when a vIOMMU is still plugged, the guest Space must have an active
  // custom allocator and an allocation (freed again at once) must succeed through a plugged one.
  void check_allocator_after_unplug();
  // Fault injection only (double_owner): the guest takes a PASID it was never given.
  void adopt_for_fault(Id id);

 private:
  // A proxy between a guest driver and the device model of the VMM currently running: the VMM
  // may die and come back under a driver that stays. Detached, reads are all ones (as a PCI
  // read nobody answers) and nothing else happens.
  class MmioProxy final : public MmioAccessor {
   public:
    std::uint64_t read64(std::uint64_t offset) noexcept override {
      return target_ != nullptr ? target_->read64(offset) : ~std::uint64_t{0};
    }
    void write32(std::uint64_t offset, std::uint32_t value) noexcept override {
      if (target_ != nullptr) target_->write32(offset, value);
    }
    void write64(std::uint64_t offset, std::uint64_t value) noexcept override {
      if (target_ != nullptr) target_->write64(offset, value);
    }
    MmioAccessor* target_ = nullptr;
  };
  class PortProxy final : public virtio::VirtioDriverPort {
   public:
    std::uint8_t get_status() noexcept override { return t_ ? t_->get_status() : 0; }
    void set_status(std::uint8_t s) noexcept override {
      if (t_) t_->set_status(s);
    }
    std::uint64_t get_device_features() noexcept override {
      return t_ ? t_->get_device_features() : 0;
    }
    void set_driver_features(std::uint64_t f) noexcept override {
      if (t_) t_->set_driver_features(f);
    }
    void read_config(std::uint32_t offset, std::span<std::byte> out) noexcept override;
    unsigned num_queues() noexcept override { return t_ ? t_->num_queues() : 0; }
    std::uint16_t queue_max_size(unsigned q) noexcept override {
      return t_ ? t_->queue_max_size(q) : 0;
    }
    bool set_queue(unsigned q, const virtio::VirtqueueLayout& l) noexcept override {
      return t_ ? t_->set_queue(q, l) : false;
    }
    void notify(unsigned q) noexcept override {
      if (t_) t_->notify(q);
    }
    void wait_interrupt(unsigned q,
                        std::chrono::steady_clock::time_point deadline) noexcept override;
    virtio::VirtioDriverPort* t_ = nullptr;
  };

  struct Slot {
    const ViommuSpec* spec = nullptr;
    bool plugged = false;   // the VMM has its device model (and the guest its driver)
    std::uint64_t gpa = 0;  // virtio: the driver's rings and buffers
    // VMM
    std::unique_ptr<VtdVcmdDevice> vtd_dev;
    std::unique_ptr<internal::DeviceMmio> vtd_mmio;
    std::map<Id, std::uint32_t> vtd_binds;  // VFIO-style binds the VMM made: PASID -> endpoint
    std::unique_ptr<virtio::IommuDevice> vdev;
    std::unique_ptr<virtio::VirtioIommuTransport> vtrans;
    // guest
    MmioProxy mmio;
    PortProxy port;
    std::unique_ptr<VtdGuestDriver> vtd_drv;
    std::unique_ptr<virtio::VirtioIommuGuestDriver> vdrv;
    std::uint64_t seen_allocs = 0;  // the driver's allocation counter at the last look
  };

  [[noreturn]] void failure(const std::string& what) const;
  void note(std::string what);  // history entry
  std::string slot_name(int slot) const;
  HostBackend& backend();

  void vmm_create(Slot& s);
  // The device model of slot goes. guest_alive: the guest's records learn that its binds through
  // the device are gone (false when the guest is gone too).
  void vmm_destroy(int slot, bool guest_alive);
  void guest_create();
  void guest_destroy();
  void guest_attach(int slot);
  void guest_detach(int slot);
  [[nodiscard]] bool any_registered() const;
  [[nodiscard]] std::uint64_t driver_allocs(const Slot& s) const;

  // Operations. Each returns false when it did nothing (not applicable).
  bool op_alloc(bool probe, Id* out);
  void op_free(Id id);
  void op_bind(Rng& rng, Id id);
  void op_unbind(Id id);
  void op_free_bound(Id id);
  void release_local(Id id, GuestPasid& rec);  // guest Space free (+ explicit one if orphaned)
  void check(Id id);
  void erase_record(Id id);

  SimContext& ctx_;
  const int index_;
  const VmSpec& spec_;
  std::unique_ptr<VmSession> session_;
  std::optional<ResumeToken> resume_;
  std::vector<Slot> slots_;
  std::vector<std::byte> ram_;
  virtio::GuestMemory mem_;
  std::unique_ptr<Space> guest_;
  SetId gset_;
  std::map<Id, GuestPasid> pasids_;
  VmStats stats_;
};

}  // namespace ioasid::sim
