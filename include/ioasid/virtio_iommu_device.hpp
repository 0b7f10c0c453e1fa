// SPDX-License-Identifier: Apache-2.0
// virtio_iommu_device.hpp: ioasid::virtio::IommuDevice, the host-side core of a virtio-iommu
// device model: feature negotiation, config space, every request of the request queue (base
// requests and the project's PASID extension), the VMM's DMA translation path and fault events.
// Transport-agnostic: a virtqueue layer gathers one descriptor chain into a readable and a
// writable span and calls handle_request; it drains pop_fault() into the event queue.
//
// Spec: virtio 1.2/1.3 §5.13 "IOMMU Device" (oasis-tcs/virtio-spec device-types/iommu/
// description.tex @ b1cf73e9); the PASID extension and every choice where the spec leaves room:
// docs/virtio-iommu-pasid.md (§5 scopes, §6 malformed requests, §7 statuses, §8 device model).
//
// Synopsis
//   LocalBackend vm(host_space, vm_set);
//   IommuDeviceConfig cfg;
//   cfg.endpoints = {{.id = 8, .resv = {{vi::kResvMemTMsi, 0xFEE00000, 0xFEEFFFFF}}}};
//   IommuDevice dev(vm, cfg);
//   dev.set_driver_features(dev.device_features());          // FEATURES_OK
//   std::size_t used = dev.handle_request(readable, writable);  // one request-queue chain
//   auto t = dev.translate(8, iova, Access::write);           // the VMM's DMA path
//   while (auto f = dev.pop_fault()) { /* encode_fault into an eventq buffer */ }
//
// Behaviour in short (details and decisions: docs/virtio-iommu-pasid.md §8):
//   - Requests whose parse fails answer as parse_request says (used length 0 or a status); a
//     writable buffer too small for the reply gives used length 0 and changes nothing. Replies are
//     written at the start of the writable span: [payload][tail]; the used length is that size.
//   - Statuses come from the error table (to_virtio_status): device-side conditions are expressed
//     as Errc (unknown domain/endpoint -> not_found -> S_NOENT, caps -> exhausted -> S_NOMEM, ...).
//   - ALLOC_PASID / FREE_PASID in global scope touch no device state: no lock, no allocation.
//   - Nothing a guest sends stops the device; guest-triggerable log lines are rate-limited.
//
// Thread-safety: handle_request, translate, pop_fault, stats, read_config and host_pasid may run
// concurrently from any threads (one internal mutex; ALLOC/FREE in global scope take none).
// set_driver_features, write_config and reset are meant for the transport's control path; they
// are safe against the others but not meaningful while requests are in flight. set_fault_notifier
// must be called before translate is used. The backend must not call back into the device.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"
#include "ioasid/host_backend.hpp"
#include "ioasid/types.hpp"
#include "ioasid/virtio_iommu_types.hpp"
#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::virtio {

// What a guest PASID value names (docs/virtio-iommu-pasid.md §5).
enum class PasidScope : std::uint8_t {
  // One PASID space per VM (the VM's set), shared by every vIOMMU of the VM. Bit 59 not offered.
  global = 0,
  // Bit 59 offered: when the driver accepts it, every endpoint has its own PASID space; BIND
  // allocates a host PASID for (endpoint, PASID), UNBIND frees it; ALLOC/FREE are S_UNSUPP.
  per_endpoint = 1,
};

// One access of the VMM's DMA path.
enum class Access : std::uint8_t { read = 1, write = 2, exec = 4 };

// An endpoint the VMM puts behind this vIOMMU.
struct EndpointConfig {
  std::uint32_t id = 0;
  // Reported by PROBE as RESV_MEM properties. MAP over any of them is refused (S_INVAL);
  // translate() passes MSI regions through unchanged and faults on RESERVED ones.
  std::vector<ResvMemRegion> resv;
};

struct IommuDeviceConfig {
  struct Range64 {
    std::uint64_t start = 0;
    std::uint64_t end = ~std::uint64_t{0};
  };
  struct Range32 {
    std::uint32_t start = 0;
    std::uint32_t end = ~std::uint32_t{0};
  };

  // Offered device-type feature bits (standard 0-6, extension 56-58). Adjusted by the device:
  // the extension is dropped when max_pasid is 0, bit 59 follows pasid_scope, F_BYPASS is dropped
  // when F_BYPASS_CONFIG is offered (the spec's "SHOULD NOT offer both").
  std::uint64_t features = vi::feature_bit(vi::kFInputRange) | vi::feature_bit(vi::kFDomainRange) |
                           vi::feature_bit(vi::kFMapUnmap) | vi::feature_bit(vi::kFProbe) |
                           vi::feature_bit(vi::kFMmio) | vi::feature_bit(vi::kFBypassConfig) |
                           vi::feature_bit(vi::kFPasidAlloc) | vi::feature_bit(vi::kFPasidMaxReq) |
                           vi::feature_bit(vi::kFPasidBind);
  // Page sizes; the lowest set bit is the granule of MAP (0 is treated as 4 KiB).
  std::uint64_t page_size_mask = ~std::uint64_t{0xFFF};
  Range64 input_range;   // MAP outside it: S_RANGE
  Range32 domain_range;  // ATTACH outside it: S_RANGE
  std::uint32_t probe_size = 512;
  std::uint8_t bypass = 0;  // initial config.bypass (boot bypass); kept across reset()

  // Caps on what a guest can grow (S_NOMEM when full).
  std::uint32_t max_domains = 1024;
  std::uint32_t max_endpoints = 256;      // endpoint records, declared ones included
  std::uint64_t max_mappings = 1u << 20;  // mappings over all domains
  std::uint32_t max_binds = 4096;         // (endpoint, PASID) binds

  // Endpoints that exist (ATTACH/PROBE/BIND of any other: S_NOENT), unless
  // allow_undeclared_endpoints, where any ID exists (with no reserved region).
  std::vector<EndpointConfig> endpoints;
  bool allow_undeclared_endpoints = false;

  // config.max_pasid: the largest PASID ALLOC_PASID returns, clamped to 0xFFFFF. 0 = no PASID
  // extension (bits 56-59 not offered, the field reads 0).
  std::uint32_t max_pasid = vi::kPasidMaxLimit;
  PasidScope pasid_scope = PasidScope::global;

  // Fault events kept for pop_fault(); more are dropped (counted).
  std::uint32_t fault_queue_depth = 256;

  // Guest-triggerable log lines: a token bucket of log_burst lines refilled at log_per_second
  // (0: never refilled). Lines over the budget are dropped and counted.
  LogSinkFn log_sink = nullptr;
  void* log_opaque = nullptr;
  std::uint32_t log_burst = 16;
  std::uint32_t log_per_second = 10;
};

// A successful translation: iova maps to phys; the same mapping continues up to iova_last.
struct Translation {
  std::uint64_t phys = 0;
  std::uint64_t iova_last = 0;  // last IOVA (inclusive) translated by the same rule
  std::uint32_t flags = 0;      // kMapF* of the mapping; READ|WRITE in bypass
  bool bypass = false;          // identity (bypass mode or an MSI region)
};

// Counters since construction (relaxed snapshots; each exact). Live sizes are current values.
struct Stats {
  std::uint64_t requests = 0;     // handle_request calls
  std::uint64_t ok = 0;           // answered S_OK
  std::uint64_t failed = 0;       // answered with another status
  std::uint64_t used_zero = 0;    // answered with used length 0
  std::uint64_t reply_small = 0;  // writable buffer too small for the reply (used length 0)
  // Parse failures by ParseError (index = the enum value; [0] unused).
  std::array<std::uint64_t, kParseErrorCount + 1> malformed{};
  std::uint64_t attaches = 0, detaches = 0, maps = 0, unmaps = 0, probes = 0;  // S_OK only
  std::uint64_t pasid_allocs = 0, pasid_alloc_fails = 0;
  std::uint64_t pasid_frees = 0, pasid_free_fails = 0;
  std::uint64_t pasid_binds = 0, pasid_unbinds = 0;
  std::uint64_t cap_refusals = 0;         // S_NOMEM because a device cap was reached
  std::uint64_t backend_errors = 0;       // backend failures other than ownership / exhaustion
  std::uint64_t backend_bad_answers = 0;  // ALLOC answers outside [1, limit], handed back
  std::uint64_t translations = 0, faults = 0, faults_dropped = 0;
  std::uint64_t config_writes_refused = 0;
  std::uint64_t log_lines = 0, log_dropped = 0;
  // Live state.
  std::uint64_t domains = 0, endpoints_attached = 0, mappings = 0, binds = 0;
};

class IOASID_API IommuDevice {
 public:
  // backend = the VM's set; it must outlive the device. Several devices of one VM may share it.
  // The only call that may throw (std::bad_alloc, building the tables); probe_size grows to fit
  // the largest endpoint's reserved regions.
  IommuDevice(HostBackend& backend, IommuDeviceConfig cfg);
  // Drops this device's binds (host references); PASIDs allocated through it stay with the set.
  ~IommuDevice();
  IommuDevice(const IommuDevice&) = delete;
  IommuDevice& operator=(const IommuDevice&) = delete;

  // ---- feature negotiation and config space -----------------------------------------------

  // The device-type feature bits offered.
  std::uint64_t device_features() const noexcept;
  // The driver's accepted features (FEATURES_OK). Bits outside vi::kDeviceTypeFeatureMask belong
  // to the transport and are ignored. Returns false (and keeps the previous set) when the
  // device-type bits are not a subset of the offered ones, or are inconsistent
  // (features_consistent(), and bit 59 without bit 58), or when bit 59 would change while binds
  // exist (reset first).
  bool set_driver_features(std::uint64_t features) noexcept;
  std::uint64_t negotiated_features() const noexcept;

  // The size of the config space the device presents (struct ConfigPasid).
  static constexpr std::uint32_t kConfigSize = sizeof(vi::ConfigPasid);

  // struct ConfigPasid (48 bytes, little endian) at offset; bytes past it read 0.
  void read_config(std::uint32_t offset, std::span<std::byte> out) const noexcept;
  // Only bypass (offset 36, one byte, value 0 or 1, F_BYPASS_CONFIG negotiated) is writable;
  // anything else is refused (false, counted) and changes nothing.
  bool write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept;

  // ---- request queue ------------------------------------------------------------------------

  // One request: readable = the device-readable bytes (head first), writable = the
  // device-writable buffer. Returns the used length: the reply's size, or 0 when the request is
  // returned unwritten. Context: ALLOC/FREE_PASID in global scope take no device lock and
  // allocate nothing (a refusal that is logged takes the log bucket's lock and calls the sink).
  std::size_t handle_request(std::span<const std::byte> readable,
                             std::span<std::byte> writable) noexcept;

  // ---- the VMM's side ---------------------------------------------------------------------

  // Translates one DMA access of endpoint. Bypass (config bypass or F_BYPASS for an unattached
  // endpoint, a bypass domain, an MSI region of the endpoint) is the identity. Otherwise a
  // fault event is queued and: not_found (endpoint unknown or not attached: R_DOMAIN),
  // out_of_range (no mapping, or a RESERVED region: R_MAPPING), permission_denied (mapping
  // without the access's flag: R_MAPPING). Exec needs READ.
  Result<Translation> translate(std::uint32_t endpoint, std::uint64_t iova, Access access) noexcept;

  // The host PASID the endpoint's DMA tagged with pasid must use: the same value in global
  // scope, the one BIND allocated in per-endpoint scope. Returns: not_found (pair not bound).
  Result<Id> host_pasid(std::uint32_t endpoint, std::uint32_t pasid) const noexcept;

  // The oldest queued fault event, if any.
  std::optional<FaultEvent> pop_fault() noexcept;
  // Called (outside the device's lock) each time a fault is queued.
  void set_fault_notifier(std::function<void()> fn);

  // Device reset: features, domains, endpoints' attachments, mappings, binds (host references
  // dropped; per-endpoint host PASIDs freed) and queued faults go. config.bypass stays (spec).
  void reset() noexcept;

  Stats stats() const noexcept;
  // The PASID scope in force: per_endpoint only when bit 59 was negotiated.
  PasidScope pasid_scope() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ioasid::virtio
