// SPDX-License-Identifier: Apache-2.0
// virtio_c.cc: the virtio-iommu part of the C ABI (include/ioasid/ioasid.h): the device model
// (ioasid::virtio::IommuDevice), guest memory (GuestMemory, MemfdRegion), the transport
// (VirtioTransport over an IommuDeviceModel) and the remote device (VirtioRemoteDevice).
//
// Every function is extern "C" and runs inside guarded() or calls only noexcept C++ members: no
// exception crosses. Out-parameters are written only on success.
//
// Handles:
//  - struct ioasid_virtio_iommu owns the IommuDevice and its C callbacks. The device's fault
//    notifier is set once, at creation (IommuDevice wants it before translate() runs), to a
//    trampoline that calls the C fault callback and then, under notify_mu, the notifier of the
//    transport over the device (if any): a transport connects and disconnects through
//    CapiIommuModel::set_event_notifier instead of replacing the device's notifier.
//  - struct ioasid_guest_memory owns the GuestMemory and the memfd mappings it made; `users`
//    counts the transports over it, which freeze its regions (-EBUSY on add).
//  - struct ioasid_virtio_transport owns the model adapter and the VirtioTransport.
//  - struct ioasid_virtio_remote owns the VirtioRemoteDevice; destroying it gives the transport
//    back its C interrupt callback.
// Lock order: notify_mu, then the transport's queue locks, then the device's lock.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <span>
#include <vector>

#include "capi/backend_handle.hpp"
#include "capi/capi_util.hpp"
#include "ioasid/guest_memory.hpp"
#include "ioasid/ioasid.h"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/virtio_remote.hpp"
#include "ioasid/virtqueue.hpp"
#include "virtio/request_parser.hpp"

namespace {

namespace vio = ::ioasid::virtio;
namespace vi = ::ioasid::wire::virtio_iommu;
using ioasid::Errc;
using ioasid::capi::check_in_size;
using ioasid::capi::guarded;
using ioasid::capi::write_sized_out;

// ---- the C constants are the C++ ones ----------------------------------------------------------

static_assert(IOASID_VIRTIO_IOMMU_F_INPUT_RANGE == vi::kFInputRange &&
              IOASID_VIRTIO_IOMMU_F_DOMAIN_RANGE == vi::kFDomainRange &&
              IOASID_VIRTIO_IOMMU_F_MAP_UNMAP == vi::kFMapUnmap &&
              IOASID_VIRTIO_IOMMU_F_BYPASS == vi::kFBypass &&
              IOASID_VIRTIO_IOMMU_F_PROBE == vi::kFProbe &&
              IOASID_VIRTIO_IOMMU_F_MMIO == vi::kFMmio &&
              IOASID_VIRTIO_IOMMU_F_BYPASS_CONFIG == vi::kFBypassConfig &&
              IOASID_VIRTIO_IOMMU_F_PASID_ALLOC == vi::kFPasidAlloc &&
              IOASID_VIRTIO_IOMMU_F_PASID_MAX_REQ == vi::kFPasidMaxReq &&
              IOASID_VIRTIO_IOMMU_F_PASID_BIND == vi::kFPasidBind &&
              IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT == vi::kFPasidPerEndpoint);
static_assert(IOASID_VIRTIO_F_INDIRECT_DESC == vio::kFIndirectDesc &&
              IOASID_VIRTIO_F_EVENT_IDX == vio::kFEventIdx &&
              IOASID_VIRTIO_F_VERSION_1 == vio::kFVersion1);
static_assert(IOASID_VIRTIO_IOMMU_T_ALLOC_PASID == vi::to_u8(vi::ReqType::alloc_pasid) &&
              IOASID_VIRTIO_IOMMU_T_FREE_PASID == vi::to_u8(vi::ReqType::free_pasid) &&
              IOASID_VIRTIO_IOMMU_T_BIND_PASID == vi::to_u8(vi::ReqType::bind_pasid) &&
              IOASID_VIRTIO_IOMMU_T_UNBIND_PASID == vi::to_u8(vi::ReqType::unbind_pasid));
static_assert(IOASID_VIRTIO_IOMMU_CONFIG_SIZE == vio::IommuDevice::kConfigSize &&
              IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET == offsetof(vi::Config, bypass));
static_assert(IOASID_VIRTIO_IOMMU_RESV_RESERVED == vi::kResvMemTReserved &&
              IOASID_VIRTIO_IOMMU_RESV_MSI == vi::kResvMemTMsi);
static_assert(IOASID_VIRTIO_ACCESS_READ == static_cast<int>(vio::Access::read) &&
              IOASID_VIRTIO_ACCESS_WRITE == static_cast<int>(vio::Access::write) &&
              IOASID_VIRTIO_ACCESS_EXEC == static_cast<int>(vio::Access::exec));
static_assert(IOASID_VIRTIO_IOMMU_MAP_F_READ == vi::kMapFRead &&
              IOASID_VIRTIO_IOMMU_MAP_F_WRITE == vi::kMapFWrite &&
              IOASID_VIRTIO_IOMMU_MAP_F_MMIO == vi::kMapFMmio);
static_assert(IOASID_VIRTIO_IOMMU_FAULT_R_UNKNOWN == vi::kFaultRUnknown &&
              IOASID_VIRTIO_IOMMU_FAULT_R_DOMAIN == vi::kFaultRDomain &&
              IOASID_VIRTIO_IOMMU_FAULT_R_MAPPING == vi::kFaultRMapping &&
              IOASID_VIRTIO_IOMMU_FAULT_F_READ == vi::kFaultFRead &&
              IOASID_VIRTIO_IOMMU_FAULT_F_WRITE == vi::kFaultFWrite &&
              IOASID_VIRTIO_IOMMU_FAULT_F_EXEC == vi::kFaultFExec &&
              IOASID_VIRTIO_IOMMU_FAULT_F_ADDRESS == vi::kFaultFAddress);
static_assert(IOASID_VIRTIO_PARSE_NO_HEAD == static_cast<int>(vio::ParseError::no_head) &&
              IOASID_VIRTIO_PARSE_RANGE_OVERFLOW == static_cast<int>(vio::kLastParseError) &&
              IOASID_VIRTIO_PARSE_TOO_LONG == static_cast<int>(vio::ParseError::too_long) &&
              IOASID_VIRTIO_PARSE_NOT_NEGOTIATED ==
                  static_cast<int>(vio::ParseError::not_negotiated) &&
              IOASID_VIRTIO_PARSE_ERROR_SLOTS > vio::kParseErrorCount);
static_assert(IOASID_VIRTIO_STATUS_ACKNOWLEDGE == vio::kStatusAcknowledge &&
              IOASID_VIRTIO_STATUS_DRIVER == vio::kStatusDriver &&
              IOASID_VIRTIO_STATUS_DRIVER_OK == vio::kStatusDriverOk &&
              IOASID_VIRTIO_STATUS_FEATURES_OK == vio::kStatusFeaturesOk &&
              IOASID_VIRTIO_STATUS_NEEDS_RESET == vio::kStatusNeedsReset &&
              IOASID_VIRTIO_STATUS_FAILED == vio::kStatusFailed);
static_assert(IOASID_VIRTIO_REQUEST_QUEUE == vi::kRequestQueue &&
              IOASID_VIRTIO_EVENT_QUEUE == vi::kEventQueue &&
              IOASID_VIRTIO_CONFIG_INTERRUPT == vio::kConfigInterrupt &&
              IOASID_VIRTIO_MAX_QUEUES == vio::VirtioTransport::kMaxQueues);
static_assert(IOASID_VIRTQUEUE_OK == static_cast<int>(vio::QueueFault::none) &&
              IOASID_VIRTQUEUE_BAD_LAYOUT == static_cast<int>(vio::QueueFault::bad_layout) &&
              IOASID_VIRTQUEUE_DESC_ADDRESS == static_cast<int>(vio::QueueFault::desc_address) &&
              IOASID_VIRTQUEUE_CHAIN_BYTES == static_cast<int>(vio::QueueFault::chain_bytes) &&
              IOASID_VIRTQUEUE_USED_OVERFLOW == static_cast<int>(vio::QueueFault::used_overflow));

// The first (and so far only) versions of the sized structs.
constexpr std::size_t kDeviceConfigV1 = sizeof(ioasid_virtio_iommu_config);
constexpr std::size_t kDeviceStatsV1 = sizeof(ioasid_virtio_iommu_counters);
constexpr std::size_t kTransportConfigV1 = sizeof(ioasid_virtio_transport_config);
constexpr std::size_t kTransportStatsV1 = sizeof(ioasid_virtio_transport_counters);
constexpr std::size_t kQueueStatsV1 = sizeof(ioasid_virtqueue_counters);
// ABI: no padding, fixed offsets on LP64.
static_assert(sizeof(void*) != 8 || kDeviceConfigV1 == 136, "struct ioasid_virtio_iommu_config");
static_assert(sizeof(void*) != 8 || kTransportConfigV1 == 56,
              "struct ioasid_virtio_transport_config");
static_assert(offsetof(ioasid_virtio_iommu_config, features) == 8 &&
                  offsetof(ioasid_virtio_iommu_config, max_mappings) == 64 &&
                  offsetof(ioasid_virtio_iommu_config, endpoints) == 88,
              "struct ioasid_virtio_iommu_config layout");
static_assert(sizeof(ioasid_virtio_iommu_resv) == 24 && sizeof(ioasid_virtio_iommu_fault) == 24 &&
              sizeof(ioasid_virtio_translation) == 24 && sizeof(ioasid_virtio_remote_fds) == 48);

constexpr std::uint32_t kDeviceFlags = IOASID_VIRTIO_IOMMU_CFG_ALLOW_UNDECLARED |
                                       IOASID_VIRTIO_IOMMU_CFG_PER_ENDPOINT |
                                       IOASID_VIRTIO_IOMMU_CFG_BOOT_BYPASS;
// The feature bits a C caller may offer (59 follows IOASID_VIRTIO_IOMMU_CFG_PER_ENDPOINT).
constexpr std::uint64_t kOfferable = vi::kStandardFeatures | vi::feature_bit(vi::kFPasidAlloc) |
                                     vi::feature_bit(vi::kFPasidMaxReq) |
                                     vi::feature_bit(vi::kFPasidBind);
constexpr std::uint32_t kTransportFlags = IOASID_VIRTIO_TRANSPORT_NO_INDIRECT |
                                          IOASID_VIRTIO_TRANSPORT_NO_EVENT_IDX |
                                          IOASID_VIRTIO_TRANSPORT_DEFERRED;

constexpr bool valid_queue(std::uint32_t q) noexcept { return q < 2; }

}  // namespace

// ---- handles ---------------------------------------------------------------------------------

struct ioasid_virtio_iommu {
  ioasid_log_fn log_fn = nullptr;
  void* log_opaque = nullptr;
  ioasid_virtio_fault_fn fault_fn = nullptr;
  void* fault_opaque = nullptr;
  std::mutex notify_mu;
  std::function<void()> transport_notify;  // under notify_mu: the transport's event notifier
  std::atomic<bool> has_transport{false};
  std::unique_ptr<vio::IommuDevice> dev;
};

struct ioasid_guest_memory {
  vio::GuestMemory mem;
  std::vector<vio::MemfdRegion> memfds;  // capacity kMaxRegions: push_back never reallocates
  std::atomic<unsigned> users{0};        // transports over this memory
};

namespace {

// IommuDeviceModel with the event notifier routed through the C device handle (see the top).
class CapiIommuModel final : public vio::VirtioDeviceModel {
 public:
  explicit CapiIommuModel(ioasid_virtio_iommu& h) noexcept : h_(h), inner_(*h.dev) {}
  unsigned num_queues() const noexcept override { return inner_.num_queues(); }
  bool is_event_queue(unsigned queue) const noexcept override {
    return inner_.is_event_queue(queue);
  }
  std::uint64_t device_features() const noexcept override { return inner_.device_features(); }
  bool set_driver_features(std::uint64_t f) noexcept override {
    return inner_.set_driver_features(f);
  }
  void read_config(std::uint32_t offset, std::span<std::byte> out) const noexcept override {
    inner_.read_config(offset, out);
  }
  bool write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept override {
    return inner_.write_config(offset, in);
  }
  std::size_t handle_request(unsigned queue, std::span<const std::byte> readable,
                             std::span<std::byte> writable) noexcept override {
    return inner_.handle_request(queue, readable, writable);
  }
  std::optional<std::size_t> next_event(unsigned queue,
                                        std::span<std::byte> out) noexcept override {
    return inner_.next_event(queue, out);
  }
  void set_event_notifier(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(h_.notify_mu);
    h_.transport_notify = std::move(fn);
  }
  void reset() noexcept override { inner_.reset(); }

 private:
  ioasid_virtio_iommu& h_;
  vio::IommuDeviceModel inner_;
};

}  // namespace

struct ioasid_virtio_transport {
  ioasid_virtio_iommu* device = nullptr;
  ioasid_guest_memory* memory = nullptr;
  ioasid_virtio_queue_fn interrupt_fn = nullptr;
  void* interrupt_opaque = nullptr;
  ioasid_virtio_queue_fn kick_fn = nullptr;
  void* kick_opaque = nullptr;
  bool deferred = false;
  std::atomic<bool> has_remote{false};
  std::unique_ptr<CapiIommuModel> model;
  std::unique_ptr<vio::VirtioTransport> t;
};

struct ioasid_virtio_remote {
  ioasid_virtio_transport* transport = nullptr;
  std::unique_ptr<vio::VirtioRemoteDevice> remote;
};

namespace {

void device_log_trampoline(void* opaque, ioasid::LogLevel level, const char* message) {
  const auto* d = static_cast<const ioasid_virtio_iommu*>(opaque);
  if (d->log_fn != nullptr) d->log_fn(d->log_opaque, static_cast<int>(level), message);
}

// The device's fault notifier: the C callback, then the transport's.
void on_fault(ioasid_virtio_iommu* h) noexcept {
  if (h->fault_fn != nullptr) h->fault_fn(h->fault_opaque);
  std::lock_guard<std::mutex> lock(h->notify_mu);
  if (h->transport_notify) h->transport_notify();
}

// Installs the transport's C interrupt callback (none when NULL). May throw (std::function).
void install_interrupt_handler(ioasid_virtio_transport* h) {
  if (h->interrupt_fn == nullptr) {
    h->t->set_interrupt_handler(nullptr);
    return;
  }
  h->t->set_interrupt_handler([h](unsigned q) { h->interrupt_fn(h->interrupt_opaque, q); });
}

int device_config_of(const ioasid_virtio_iommu_config* c, ioasid_virtio_iommu* h,
                     vio::IommuDeviceConfig& o) {
  if (int rc = check_in_size(c, c->size, kDeviceConfigV1, sizeof(*c)); rc != 0) return rc;
  if ((c->flags & ~kDeviceFlags) != 0 || c->reserved0 != 0) return -EINVAL;
  if ((c->features & ~kOfferable) != 0) return -EINVAL;
  const std::uint64_t input_end = c->input_end == 0 ? ~std::uint64_t{0} : c->input_end;
  const std::uint32_t domain_end = c->domain_end == 0 ? ~std::uint32_t{0} : c->domain_end;
  if (c->input_start > input_end || c->domain_start > domain_end) return -EINVAL;
  if (c->max_pasid > vi::kPasidMaxLimit) return -EINVAL;
  if (c->endpoints == nullptr && c->endpoint_count != 0) return -EINVAL;

  if (c->features != 0) o.features = c->features;
  if (c->page_size_mask != 0) o.page_size_mask = c->page_size_mask;
  o.input_range = {c->input_start, input_end};
  o.domain_range = {c->domain_start, domain_end};
  if (c->probe_size != 0) o.probe_size = c->probe_size;
  if (c->max_pasid != 0) o.max_pasid = c->max_pasid;
  if (c->max_domains != 0) o.max_domains = c->max_domains;
  if (c->max_endpoints != 0) o.max_endpoints = c->max_endpoints;
  if (c->max_mappings != 0) o.max_mappings = c->max_mappings;
  if (c->max_binds != 0) o.max_binds = c->max_binds;
  if (c->fault_queue_depth != 0) o.fault_queue_depth = c->fault_queue_depth;
  if (c->log_burst != 0) o.log_burst = c->log_burst;
  if (c->log_per_second != 0) o.log_per_second = c->log_per_second;
  o.allow_undeclared_endpoints = (c->flags & IOASID_VIRTIO_IOMMU_CFG_ALLOW_UNDECLARED) != 0;
  o.pasid_scope = (c->flags & IOASID_VIRTIO_IOMMU_CFG_PER_ENDPOINT) != 0
                      ? vio::PasidScope::per_endpoint
                      : vio::PasidScope::global;
  o.bypass = (c->flags & IOASID_VIRTIO_IOMMU_CFG_BOOT_BYPASS) != 0 ? 1 : 0;

  std::set<std::uint32_t> ids;
  o.endpoints.reserve(c->endpoint_count);
  for (std::uint32_t i = 0; i < c->endpoint_count; ++i) {
    const ioasid_virtio_iommu_endpoint& e = c->endpoints[i];
    if (!ids.insert(e.id).second) return -EINVAL;  // declared twice
    if (e.resv == nullptr && e.resv_count != 0) return -EINVAL;
    vio::EndpointConfig ec;
    ec.id = e.id;
    ec.resv.reserve(e.resv_count);
    for (std::uint32_t j = 0; j < e.resv_count; ++j) {
      const ioasid_virtio_iommu_resv& r = e.resv[j];
      if (r.reserved0 != 0 || r.start > r.end || r.subtype > IOASID_VIRTIO_IOMMU_RESV_MSI) {
        return -EINVAL;
      }
      ec.resv.push_back({static_cast<std::uint8_t>(r.subtype), r.start, r.end});
    }
    o.endpoints.push_back(std::move(ec));
  }
  if (c->log_fn != nullptr) {
    h->log_fn = c->log_fn;
    h->log_opaque = c->log_opaque;
    o.log_sink = device_log_trampoline;
    o.log_opaque = h;
  }
  h->fault_fn = c->fault_fn;
  h->fault_opaque = c->fault_opaque;
  return 0;
}

int transport_config_of(const ioasid_virtio_transport_config* c, ioasid_virtio_transport* h,
                        vio::VirtioTransportOptions& o) noexcept {
  if (int rc = check_in_size(c, c->size, kTransportConfigV1, sizeof(*c)); rc != 0) return rc;
  if ((c->flags & ~kTransportFlags) != 0 || c->reserved0 != 0) return -EINVAL;
  if (c->max_queue_size != 0) {
    const std::uint32_t m = c->max_queue_size;
    if (m > vio::kMaxQueueSize || (m & (m - 1)) != 0) return -EINVAL;
    o.max_queue_size = static_cast<std::uint16_t>(m);
  }
  o.offer_indirect = (c->flags & IOASID_VIRTIO_TRANSPORT_NO_INDIRECT) == 0;
  o.offer_event_idx = (c->flags & IOASID_VIRTIO_TRANSPORT_NO_EVENT_IDX) == 0;
  o.deferred_notify = (c->flags & IOASID_VIRTIO_TRANSPORT_DEFERRED) != 0;
  if (c->max_readable != 0) o.max_readable = c->max_readable;
  if (c->max_writable != 0) o.max_writable = c->max_writable;
  h->deferred = o.deferred_notify;
  h->interrupt_fn = c->interrupt_fn;
  h->interrupt_opaque = c->interrupt_opaque;
  h->kick_fn = c->kick_fn;
  h->kick_opaque = c->kick_opaque;
  return 0;
}

// Adds a memfd mapping to the memory: the mapping is kept only when the region is accepted.
int add_memfd_region(ioasid_guest_memory* m, std::uint64_t gpa, vio::MemfdRegion region, int* fd,
                     void** host) {
  m->memfds.push_back(std::move(region));  // capacity reserved: cannot throw
  const vio::MemfdRegion& r = m->memfds.back();
  if (auto ok = m->mem.add_region(r.at(gpa)); !ok) {
    m->memfds.pop_back();  // unmaps
    return ioasid::capi::neg(ok.error());
  }
  if (fd != nullptr) *fd = r.fd();
  if (host != nullptr) *host = r.data();
  return 0;
}

int memory_add_checks(const ioasid_guest_memory* m, std::uint64_t gpa, std::uint64_t size) {
  if (m == nullptr || size == 0 || gpa > ~std::uint64_t{0} - (size - 1)) return -EINVAL;
  if (m->users.load(std::memory_order_acquire) != 0) return -EBUSY;
  return 0;
}

}  // namespace

extern "C" {

// ---- device model ------------------------------------------------------------------------------

int ioasid_virtio_iommu_create(ioasid_backend* backend, const ioasid_virtio_iommu_config* config,
                               ioasid_virtio_iommu** out) {
  if (backend == nullptr || out == nullptr) return -EINVAL;
  return guarded([&] {
    auto h = std::make_unique<ioasid_virtio_iommu>();
    vio::IommuDeviceConfig cfg;
    if (config != nullptr) {
      if (int rc = device_config_of(config, h.get(), cfg); rc != 0) return rc;
    }
    h->dev = std::make_unique<vio::IommuDevice>(backend->backend, std::move(cfg));
    ioasid_virtio_iommu* raw = h.get();
    h->dev->set_fault_notifier([raw] { on_fault(raw); });
    *out = h.release();
    return 0;
  });
}

void ioasid_virtio_iommu_destroy(ioasid_virtio_iommu* device) { delete device; }

uint64_t ioasid_virtio_iommu_features(const ioasid_virtio_iommu* device) {
  return device == nullptr ? 0 : device->dev->device_features();
}

int ioasid_virtio_iommu_set_driver_features(ioasid_virtio_iommu* device, uint64_t features) {
  if (device == nullptr) return -EINVAL;
  if (device->dev->set_driver_features(features)) return 0;
  // Why it was refused, in the order IommuDevice checks.
  const std::uint64_t f = features & vi::kDeviceTypeFeatureMask;
  if ((f & ~device->dev->device_features()) != 0) return -EOPNOTSUPP;
  if (!vio::features_consistent(f) || ((f & vi::feature_bit(vi::kFPasidPerEndpoint)) != 0 &&
                                       (f & vi::feature_bit(vi::kFPasidBind)) == 0)) {
    return -EINVAL;
  }
  return -EBUSY;  // the scope of live binds cannot change
}

uint64_t ioasid_virtio_iommu_negotiated_features(const ioasid_virtio_iommu* device) {
  return device == nullptr ? 0 : device->dev->negotiated_features();
}

int ioasid_virtio_iommu_pasid_scope(const ioasid_virtio_iommu* device) {
  if (device == nullptr) return 0;
  return device->dev->pasid_scope() == vio::PasidScope::per_endpoint ? 1 : 0;
}

int ioasid_virtio_iommu_config_read(const ioasid_virtio_iommu* device, uint32_t offset, void* out,
                                    size_t size) {
  if (device == nullptr || (out == nullptr && size != 0)) return -EINVAL;
  if (size == 0) return 0;
  device->dev->read_config(offset, std::span<std::byte>(static_cast<std::byte*>(out), size));
  return 0;
}

int ioasid_virtio_iommu_config_write(ioasid_virtio_iommu* device, uint32_t offset, const void* in,
                                     size_t size) {
  if (device == nullptr || in == nullptr) return -EINVAL;
  const std::span<const std::byte> bytes(static_cast<const std::byte*>(in), size);
  if (device->dev->write_config(offset, bytes)) return 0;
  const bool bypass_write = offset == IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET && size == 1 &&
                            std::to_integer<std::uint8_t>(bytes[0]) <= 1;
  return bypass_write ? -EOPNOTSUPP : -EINVAL;  // valid write, BYPASS_CONFIG not negotiated
}

int ioasid_virtio_iommu_handle_request(ioasid_virtio_iommu* device, const void* req, size_t req_len,
                                       void* resp, size_t resp_len, size_t* used) {
  if (device == nullptr || used == nullptr || (req == nullptr && req_len != 0) ||
      (resp == nullptr && resp_len != 0)) {
    return -EINVAL;
  }
  const std::span<const std::byte> readable(static_cast<const std::byte*>(req), req_len);
  const std::span<std::byte> writable(static_cast<std::byte*>(resp), resp_len);
  *used = device->dev->handle_request(readable, writable);
  return 0;
}

int ioasid_virtio_iommu_translate(ioasid_virtio_iommu* device, uint32_t endpoint, uint64_t iova,
                                  uint32_t access, ioasid_virtio_translation* out) {
  if (device == nullptr || out == nullptr) return -EINVAL;
  if (access != IOASID_VIRTIO_ACCESS_READ && access != IOASID_VIRTIO_ACCESS_WRITE &&
      access != IOASID_VIRTIO_ACCESS_EXEC) {
    return -EINVAL;
  }
  auto r = device->dev->translate(endpoint, iova, static_cast<vio::Access>(access));
  if (!r) return ioasid::capi::neg(r.error());
  ioasid_virtio_translation v{};
  v.phys = r->phys;
  v.iova_last = r->iova_last;
  v.flags = r->flags;
  v.bypass = r->bypass ? 1 : 0;
  *out = v;
  return 0;
}

int ioasid_virtio_iommu_host_pasid(const ioasid_virtio_iommu* device, uint32_t endpoint,
                                   uint32_t pasid, ioasid_t* out) {
  if (device == nullptr || out == nullptr) return -EINVAL;
  auto r = device->dev->host_pasid(endpoint, pasid);
  if (!r) return ioasid::capi::neg(r.error());
  *out = *r;
  return 0;
}

int ioasid_virtio_iommu_pop_fault(ioasid_virtio_iommu* device, ioasid_virtio_iommu_fault* out) {
  if (device == nullptr || out == nullptr) return -EINVAL;
  const std::optional<vio::FaultEvent> f = device->dev->pop_fault();
  if (!f) return -ENOENT;
  ioasid_virtio_iommu_fault v{};
  v.reason = f->reason;
  v.flags = f->flags & ~vi::kFaultFAddress;
  if (f->address) {
    v.flags |= vi::kFaultFAddress;
    v.address = *f->address;
  }
  v.endpoint = f->endpoint;
  *out = v;
  return 0;
}

void ioasid_virtio_iommu_reset(ioasid_virtio_iommu* device) {
  if (device != nullptr) device->dev->reset();
}

int ioasid_virtio_iommu_stats(const ioasid_virtio_iommu* device,
                              ioasid_virtio_iommu_counters* out) {
  if (device == nullptr || out == nullptr) return -EINVAL;
  const std::uint32_t size = out->size;
  if (size < kDeviceStatsV1) return -EINVAL;
  const vio::Stats s = device->dev->stats();
  ioasid_virtio_iommu_counters v{};
  v.size = size;
  v.requests = s.requests;
  v.ok = s.ok;
  v.failed = s.failed;
  v.used_zero = s.used_zero;
  v.reply_small = s.reply_small;
  for (std::size_t i = 0; i < s.malformed.size(); ++i) v.malformed[i] = s.malformed[i];
  v.attaches = s.attaches;
  v.detaches = s.detaches;
  v.maps = s.maps;
  v.unmaps = s.unmaps;
  v.probes = s.probes;
  v.pasid_allocs = s.pasid_allocs;
  v.pasid_alloc_fails = s.pasid_alloc_fails;
  v.pasid_frees = s.pasid_frees;
  v.pasid_free_fails = s.pasid_free_fails;
  v.pasid_binds = s.pasid_binds;
  v.pasid_unbinds = s.pasid_unbinds;
  v.cap_refusals = s.cap_refusals;
  v.backend_errors = s.backend_errors;
  v.backend_bad_answers = s.backend_bad_answers;
  v.translations = s.translations;
  v.faults = s.faults;
  v.faults_dropped = s.faults_dropped;
  v.config_writes_refused = s.config_writes_refused;
  v.log_lines = s.log_lines;
  v.log_dropped = s.log_dropped;
  v.domains = s.domains;
  v.endpoints_attached = s.endpoints_attached;
  v.mappings = s.mappings;
  v.binds = s.binds;
  return write_sized_out(out, size, v, kDeviceStatsV1);
}

// ---- guest memory ------------------------------------------------------------------------------

int ioasid_guest_memory_create(ioasid_guest_memory** out) {
  if (out == nullptr) return -EINVAL;
  return guarded([&] {
    auto m = std::make_unique<ioasid_guest_memory>();
    m->memfds.reserve(vio::GuestMemory::kMaxRegions);
    *out = m.release();
    return 0;
  });
}

void ioasid_guest_memory_destroy(ioasid_guest_memory* memory) { delete memory; }

int ioasid_guest_memory_add(ioasid_guest_memory* memory, uint64_t gpa, uint64_t size, void* host) {
  if (host == nullptr) return -EINVAL;
  if (int rc = memory_add_checks(memory, gpa, size); rc != 0) return rc;
  return guarded([&] {
    return ioasid::capi::status(memory->mem.add_region({gpa, size, static_cast<std::byte*>(host)}));
  });
}

int ioasid_guest_memory_add_fd(ioasid_guest_memory* memory, uint64_t gpa, uint64_t size, int fd,
                               void** host) {
  if (int rc = memory_add_checks(memory, gpa, size); rc != 0) return rc;
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) return -EBADF;
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < size) return -EINVAL;
  return guarded([&] {
    auto r = vio::MemfdRegion::map(fd, size);
    if (!r) return ioasid::capi::neg(r.error());
    return add_memfd_region(memory, gpa, std::move(*r), nullptr, host);
  });
}

int ioasid_guest_memory_add_memfd(ioasid_guest_memory* memory, uint64_t gpa, uint64_t size, int* fd,
                                  void** host) {
  if (int rc = memory_add_checks(memory, gpa, size); rc != 0) return rc;
  return guarded([&] {
    auto r = vio::MemfdRegion::create(size);
    if (!r) return ioasid::capi::neg(r.error());
    return add_memfd_region(memory, gpa, std::move(*r), fd, host);
  });
}

// ---- transport ---------------------------------------------------------------------------------

int ioasid_virtio_transport_create(ioasid_virtio_iommu* device, ioasid_guest_memory* memory,
                                   const ioasid_virtio_transport_config* config,
                                   ioasid_virtio_transport** out) {
  if (device == nullptr || memory == nullptr || out == nullptr) return -EINVAL;
  return guarded([&] {
    auto h = std::make_unique<ioasid_virtio_transport>();
    vio::VirtioTransportOptions o;
    if (config != nullptr) {
      if (int rc = transport_config_of(config, h.get(), o); rc != 0) return rc;
    }
    bool expected = false;
    if (!device->has_transport.compare_exchange_strong(expected, true)) return -EBUSY;
    try {
      h->device = device;
      h->memory = memory;
      h->model = std::make_unique<CapiIommuModel>(*device);
      h->t = std::make_unique<vio::VirtioTransport>(*h->model, memory->mem, o);
      install_interrupt_handler(h.get());
      if (h->kick_fn != nullptr) {
        ioasid_virtio_transport* raw = h.get();
        h->t->set_kick_handler([raw](unsigned q) { raw->kick_fn(raw->kick_opaque, q); });
      }
    } catch (...) {
      h->t.reset();  // disconnects the model from the device
      device->has_transport.store(false);
      throw;
    }
    memory->users.fetch_add(1, std::memory_order_acq_rel);
    *out = h.release();
    return 0;
  });
}

void ioasid_virtio_transport_destroy(ioasid_virtio_transport* transport) {
  if (transport == nullptr) return;
  transport->t.reset();
  transport->model.reset();
  transport->device->has_transport.store(false);
  transport->memory->users.fetch_sub(1, std::memory_order_acq_rel);
  delete transport;
}

uint8_t ioasid_virtio_transport_get_status(ioasid_virtio_transport* transport) {
  return transport == nullptr ? 0 : transport->t->get_status();
}

int ioasid_virtio_transport_set_status(ioasid_virtio_transport* transport, uint8_t status) {
  if (transport == nullptr) return -EINVAL;
  transport->t->set_status(status);
  return 0;
}

uint64_t ioasid_virtio_transport_device_features(ioasid_virtio_transport* transport) {
  return transport == nullptr ? 0 : transport->t->get_device_features();
}

int ioasid_virtio_transport_set_driver_features(ioasid_virtio_transport* transport,
                                                uint64_t features) {
  if (transport == nullptr) return -EINVAL;
  const vio::VirtioTransportStats before = transport->t->stats();
  transport->t->set_driver_features(features);
  // Refused writes are counted; the control path is serialized by the driver, so a change of
  // the counter across the call is this call's refusal.
  return transport->t->stats().status_refused != before.status_refused ? -EBUSY : 0;
}

uint64_t ioasid_virtio_transport_negotiated_features(ioasid_virtio_transport* transport) {
  return transport == nullptr ? 0 : transport->t->negotiated_features();
}

uint16_t ioasid_virtio_transport_queue_max_size(ioasid_virtio_transport* transport,
                                                uint32_t queue) {
  if (transport == nullptr || !valid_queue(queue)) return 0;
  return transport->t->queue_max_size(queue);
}

int ioasid_virtio_transport_set_queue(ioasid_virtio_transport* transport, uint32_t queue,
                                      uint16_t size, uint64_t desc, uint64_t avail, uint64_t used) {
  if (transport == nullptr || !valid_queue(queue)) return -EINVAL;
  const vio::VirtqueueLayout l{size, desc, avail, used};
  if (size > transport->t->queue_max_size(queue) || !vio::layout_valid(l)) return -EINVAL;
  const std::uint8_t s = transport->t->get_status();
  if ((s & vio::kStatusFeaturesOk) == 0 || (s & vio::kStatusDriverOk) != 0) {
    transport->t->set_queue(queue, l);  // refused and counted, as a guest's write would be
    return -EBUSY;
  }
  return transport->t->set_queue(queue, l) ? 0 : -EINVAL;  // a part outside guest memory
}

int ioasid_virtio_transport_notify(ioasid_virtio_transport* transport, uint32_t queue) {
  if (transport == nullptr || !valid_queue(queue)) return -EINVAL;
  transport->t->notify(queue);
  return 0;
}

int ioasid_virtio_transport_process(ioasid_virtio_transport* transport, uint32_t queue,
                                    size_t* done) {
  if (transport == nullptr || !valid_queue(queue)) return -EINVAL;
  const std::size_t n = transport->t->process_queue(queue);
  if (done != nullptr) *done = n;
  return 0;
}

int ioasid_virtio_transport_process_pending(ioasid_virtio_transport* transport, size_t* done) {
  if (transport == nullptr) return -EINVAL;
  const std::size_t n = transport->t->process_pending();
  if (done != nullptr) *done = n;
  return 0;
}

int ioasid_virtio_transport_queue_fault(ioasid_virtio_transport* transport, uint32_t queue,
                                        uint32_t* out) {
  if (transport == nullptr || out == nullptr || !valid_queue(queue)) return -EINVAL;
  *out = static_cast<std::uint32_t>(transport->t->queue_fault(queue));
  return 0;
}

const char* ioasid_virtqueue_fault_name(uint32_t fault) {
  if (fault > IOASID_VIRTQUEUE_USED_OVERFLOW) return "unknown";
  return vio::to_string(static_cast<vio::QueueFault>(fault));
}

int ioasid_virtio_transport_stats(ioasid_virtio_transport* transport,
                                  ioasid_virtio_transport_counters* out) {
  if (transport == nullptr || out == nullptr) return -EINVAL;
  const std::uint32_t size = out->size;
  if (size < kTransportStatsV1) return -EINVAL;
  const vio::VirtioTransportStats s = transport->t->stats();
  ioasid_virtio_transport_counters v{};
  v.size = size;
  v.kicks = s.kicks;
  v.requests = s.requests;
  v.events = s.events;
  v.oversized = s.oversized;
  v.interrupts = s.interrupts;
  v.resets = s.resets;
  v.status_refused = s.status_refused;
  v.features_refused = s.features_refused;
  return write_sized_out(out, size, v, kTransportStatsV1);
}

int ioasid_virtio_transport_queue_stats(ioasid_virtio_transport* transport, uint32_t queue,
                                        ioasid_virtqueue_counters* out) {
  if (transport == nullptr || out == nullptr || !valid_queue(queue)) return -EINVAL;
  const std::uint32_t size = out->size;
  if (size < kQueueStatsV1) return -EINVAL;
  const vio::DeviceQueueStats s = transport->t->queue_stats(queue);
  ioasid_virtqueue_counters v{};
  v.size = size;
  v.chains = s.chains;
  v.used = s.used;
  v.oversized = s.oversized;
  v.interrupts = s.interrupts;
  v.interrupts_suppressed = s.interrupts_suppressed;
  return write_sized_out(out, size, v, kQueueStatsV1);
}

// ---- remote device -----------------------------------------------------------------------------

int ioasid_virtio_remote_create(ioasid_virtio_transport* transport, ioasid_virtio_remote** out) {
  if (transport == nullptr || out == nullptr || transport->deferred) return -EINVAL;
  return guarded([&] {
    auto h = std::make_unique<ioasid_virtio_remote>();
    bool expected = false;
    if (!transport->has_remote.compare_exchange_strong(expected, true)) return -EBUSY;
    // create() sets the transport's interrupt handler only once everything else succeeded.
    ioasid::Result<std::unique_ptr<vio::VirtioRemoteDevice>> r = ioasid::fail(Errc::io_error);
    try {
      r = vio::VirtioRemoteDevice::create(*transport->t);
    } catch (...) {
      transport->has_remote.store(false);
      throw;
    }
    if (!r) {
      transport->has_remote.store(false);
      return ioasid::capi::neg(r.error());
    }
    h->transport = transport;
    h->remote = std::move(*r);
    *out = h.release();
    return 0;
  });
}

void ioasid_virtio_remote_destroy(ioasid_virtio_remote* remote) {
  if (remote == nullptr) return;
  ioasid_virtio_transport* t = remote->transport;
  remote->remote.reset();  // clears the transport's interrupt handler
  try {
    install_interrupt_handler(t);
  } catch (...) {
    // A one-pointer lambda fits std::function's local storage: nothing allocates here.
  }
  t->has_remote.store(false);
  delete remote;
}

int ioasid_virtio_remote_guest_fds(const ioasid_virtio_remote* remote,
                                   ioasid_virtio_remote_fds* out) {
  if (remote == nullptr || out == nullptr) return -EINVAL;
  const vio::VirtioRemoteFds& g = remote->remote->guest_fds();
  ioasid_virtio_remote_fds v{};
  v.control = g.control;
  v.interrupt = g.interrupt;
  v.num_queues = g.num_queues;
  for (std::size_t q = 0; q < IOASID_VIRTIO_MAX_QUEUES; ++q) {
    v.kick[q] = q < g.num_queues ? g.kick[q] : -1;
  }
  *out = v;
  return 0;
}

void ioasid_virtio_remote_close_guest_control(ioasid_virtio_remote* remote) {
  if (remote != nullptr) remote->remote->close_guest_control();
}

int ioasid_virtio_remote_run(ioasid_virtio_remote* remote, uint32_t idle_timeout_ms) {
  if (remote == nullptr) return -EINVAL;
  // poll() takes an int: 0 (no limit) is -1, larger values are clamped.
  const long long ms = idle_timeout_ms == 0 ? -1 : std::min<long long>(idle_timeout_ms, INT_MAX);
  return ioasid::capi::status(remote->remote->run(std::chrono::milliseconds(ms)));
}

void ioasid_virtio_remote_stop(ioasid_virtio_remote* remote) {
  if (remote != nullptr) remote->remote->stop();
}

}  // extern "C"
