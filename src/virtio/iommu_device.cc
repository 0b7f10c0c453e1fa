// SPDX-License-Identifier: Apache-2.0
// iommu_device.cc: IommuDevice, the host-side virtio-iommu device model core (virtio 1.2/1.3
// §5.13; the PASID extension and the device's decisions: docs/virtio-iommu-pasid.md §5-§8).
//
// State: domains (id -> bypass flag, endpoint count, IntervalMap of mappings), endpoints (declared
// ones from the config, undeclared ones created by ATTACH when allowed), binds ((endpoint, PASID)
// -> host PASID), the fault ring. All of it lives under mu. ALLOC_PASID and FREE_PASID in global
// scope read only the negotiated features (an atomic) and call the backend, which is thread-safe:
// they take no lock and allocate nothing. Counters are relaxed atomics read by stats().
// Every request is checked completely before anything changes, so a refused request leaves the
// device as it was (ATTACH allocates the new domain / endpoint record before detaching).
#include "ioasid/virtio_iommu_device.hpp"

#include "ioasid/virtio_iommu_transport.hpp"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>

#include "common/internal/futex_mutex.hpp"
#include "virtio/internal/interval_map.hpp"
#include "virtio/request_parser.hpp"

namespace ioasid::virtio {

namespace {

using Mutex = ::ioasid::internal::FutexMutex;

struct Counter {
  std::atomic<std::uint64_t> v{0};
  void inc(std::uint64_t n = 1) noexcept { v.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

constexpr bool has(std::uint64_t features, unsigned bit) noexcept {
  return (features & vi::feature_bit(bit)) != 0;
}

constexpr std::size_t kTail = sizeof(vi::ReqTail);
constexpr std::size_t kAllocReply = sizeof(vi::ReqAllocPasid) - offsetof(vi::ReqAllocPasid, pasid);

constexpr std::uint64_t bind_key(std::uint32_t endpoint, std::uint32_t pasid) noexcept {
  return (std::uint64_t{endpoint} << 32) | pasid;
}

}  // namespace

struct IommuDevice::Impl {
  struct Endpoint {
    bool declared = false;
    bool attached = false;
    std::uint32_t domain = 0;
    std::vector<ResvMemRegion> resv;
  };
  struct Domain {
    bool bypass = false;
    std::uint32_t endpoints = 0;
    internal::IntervalMap map;
  };
  struct Bind {
    Id host = kInvalidId;
    bool owned = false;  // per-endpoint scope: the device allocated host and frees it on UNBIND
  };

  Impl(HostBackend& b, IommuDeviceConfig c) : backend(b), cfg(std::move(c)) {
    cfg.max_pasid = std::min(cfg.max_pasid, vi::kPasidMaxLimit);
    if (cfg.page_size_mask == 0) cfg.page_size_mask = ~std::uint64_t{0xFFF};
    granule_mask = (cfg.page_size_mask & (~cfg.page_size_mask + 1)) - 1;
    cfg.bypass = cfg.bypass != 0 ? 1 : 0;
    bypass.store(cfg.bypass, std::memory_order_relaxed);

    std::uint64_t f = cfg.features & (vi::kStandardFeatures | vi::kPasidFeatures);
    if (has(f, vi::kFBypassConfig)) f &= ~vi::feature_bit(vi::kFBypass);
    f &= ~vi::feature_bit(vi::kFPasidPerEndpoint);
    if (cfg.pasid_scope == PasidScope::per_endpoint && has(f, vi::kFPasidBind)) {
      f |= vi::feature_bit(vi::kFPasidPerEndpoint);
    }
    if (cfg.max_pasid == 0 || !has(f, vi::kFPasidAlloc)) f &= ~vi::kPasidFeatures;
    offered = f;

    // PROBE must be able to report every region: grow probe_size to fit the largest list.
    std::size_t need = 0;
    for (const EndpointConfig& e : cfg.endpoints) {
      need = std::max(need, e.resv.size() * sizeof(vi::ProbeResvMem));
      Endpoint& ep = eps[e.id];
      ep.declared = true;
      ep.resv = e.resv;
      if (!e.resv.empty()) resv_eps.push_back(e.id);
    }
    if (need > cfg.probe_size) cfg.probe_size = static_cast<std::uint32_t>(need);
    std::sort(resv_eps.begin(), resv_eps.end());
    resv_eps.erase(std::unique(resv_eps.begin(), resv_eps.end()), resv_eps.end());
    faults.resize(std::max<std::uint32_t>(cfg.fault_queue_depth, 1));
    log_tokens = cfg.log_burst;
    log_last = std::chrono::steady_clock::now();
  }

  HostBackend& backend;
  IommuDeviceConfig cfg;
  std::uint64_t offered = 0;
  std::uint64_t granule_mask = 0;
  std::atomic<std::uint64_t> negotiated{0};
  std::atomic<std::uint8_t> bypass{0};

  mutable Mutex mu;
  std::unordered_map<std::uint32_t, Endpoint> eps;
  std::vector<std::uint32_t> resv_eps;  // declared endpoints with reserved regions
  std::unordered_map<std::uint32_t, Domain> domains;
  std::uint64_t mapping_count = 0;
  std::uint64_t attached_count = 0;
  std::unordered_map<std::uint64_t, Bind> binds;
  std::vector<FaultEvent> faults;  // ring
  std::size_t fault_head = 0, fault_count = 0;
  std::function<void()> notifier;

  Mutex log_mu;
  double log_tokens = 0;
  std::chrono::steady_clock::time_point log_last;

  struct {
    // requests and ok are derived (one atomic add per request on the ALLOC/FREE path).
    Counter failed, used_zero, reply_small;
    std::array<Counter, kParseErrorCount + 1> malformed;
    Counter attaches, detaches, maps, unmaps, probes;
    Counter pasid_allocs, pasid_alloc_fails, pasid_frees, pasid_free_fails, pasid_binds,
        pasid_unbinds;
    Counter cap_refusals, backend_errors, backend_bad_answers;
    Counter translations, faults, faults_dropped, config_writes_refused, log_lines, log_dropped;
  } st;

  // ---- logging ----------------------------------------------------------------------------

  bool log_allowed() noexcept {
    std::lock_guard<Mutex> lock(log_mu);
    const auto now = std::chrono::steady_clock::now();
    if (cfg.log_per_second != 0) {
      const double secs = std::chrono::duration<double>(now - log_last).count();
      log_tokens = std::min<double>(cfg.log_burst, log_tokens + secs * cfg.log_per_second);
    }
    log_last = now;
    if (log_tokens < 1.0) return false;
    log_tokens -= 1.0;
    return true;
  }

  // A guest-triggerable line: rate-limited by the token bucket, drops counted.
  [[gnu::format(printf, 3, 4)]] void log(LogLevel level, const char* fmt, ...) noexcept {
    if (cfg.log_sink == nullptr) return;
    if (!log_allowed()) {
      st.log_dropped.inc();
      return;
    }
    st.log_lines.inc();
    char buf[192];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cfg.log_sink(cfg.log_opaque, level, buf);
  }

  // ---- replies ----------------------------------------------------------------------------

  std::size_t reply_size(vi::ReqType type) const noexcept {
    if (type == vi::ReqType::alloc_pasid) return kAllocReply;
    if (type == vi::ReqType::probe) return std::size_t{cfg.probe_size} + kTail;
    return kTail;
  }

  // Writes a failure (or a payload-less success) reply for type; writable holds reply_size(type).
  std::size_t reply(vi::ReqType type, std::span<std::byte> w, vi::Status status) noexcept {
    if (status != vi::Status::ok) st.failed.inc();  // successes: the per-type counters
    if (type == vi::ReqType::alloc_pasid) {
      (void)encode_alloc_pasid_reply(w, status, vi::kPasidInvalid);
      return kAllocReply;
    }
    const std::size_t n = reply_size(type);
    std::fill(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(n - kTail), std::byte{0});
    (void)encode_tail(w.subspan(n - kTail), status);
    return n;
  }

  std::size_t fail(vi::ReqType type, std::span<std::byte> w, Errc e) noexcept {
    return reply(type, w, to_virtio_status(guest_visible(e)));
  }

  std::size_t used_zero() noexcept {
    st.used_zero.inc();
    return 0;
  }

  std::size_t parse_failure(std::span<const std::byte> readable, std::span<std::byte> w,
                            ParseError e) noexcept {
    st.malformed[static_cast<std::size_t>(e)].inc();
    const std::uint8_t type = readable.empty() ? 0 : std::to_integer<std::uint8_t>(readable[0]);
    log(LogLevel::debug, "virtio-iommu: request type %#x refused: %s (%zu readable bytes)", type,
        to_string(e), readable.size());
    const std::optional<vi::Status> status = status_for(e);
    if (!status) return used_zero();
    const auto t = static_cast<vi::ReqType>(type);
    if (w.size() < reply_size(t)) {
      st.reply_small.inc();
      return used_zero();
    }
    return reply(t, w, *status);
  }

  // ---- PASID requests -----------------------------------------------------------------------

  bool per_endpoint(std::uint64_t feats) const noexcept {
    return has(feats, vi::kFPasidPerEndpoint);
  }

  // The success path of ALLOC_PASID / FREE_PASID in line; every failure goes to the out-of-line
  // *_failed functions (logging, the error reply), which keeps the hot function small.
  std::size_t alloc_pasid(const AllocPasidRequest& r, std::span<std::byte> w,
                          std::uint64_t feats) noexcept {
    if (per_endpoint(feats)) return alloc_failed(w, Errc::unsupported);
    Id limit = cfg.max_pasid;
    if (r.max_pasid != 0 && r.max_pasid < limit) limit = r.max_pasid;
    Id id = kInvalidId;
    const Errc e = backend.alloc_raw(1, limit, &id);
    if (e != Errc{} || id < 1 || id > limit) return alloc_backend_failed(w, e, id, limit);
    st.pasid_allocs.inc();
    (void)encode_alloc_pasid_reply(w, vi::Status::ok, id);
    return kAllocReply;
  }

  [[gnu::noinline, gnu::cold]] std::size_t alloc_backend_failed(std::span<std::byte> w, Errc e,
                                                                Id id, Id limit) noexcept {
    if (e == Errc{}) {  // an answer outside [1, limit]
      st.backend_bad_answers.inc();
      log(LogLevel::warning, "virtio-iommu: backend answered PASID %u outside [1, %u], handed back",
          id, limit);
      (void)backend.free_raw(id);
      e = Errc::io_error;
    }
    if (e != Errc::exhausted && e != Errc::quota_exceeded) st.backend_errors.inc();
    log(LogLevel::info, "virtio-iommu: ALLOC_PASID failed: %s", to_string(e));
    return alloc_failed(w, e);
  }

  [[gnu::noinline, gnu::cold]] std::size_t alloc_failed(std::span<std::byte> w, Errc e) noexcept {
    st.pasid_alloc_fails.inc();
    return fail(vi::ReqType::alloc_pasid, w, e);
  }

  std::size_t free_pasid(const FreePasidRequest& r, std::span<std::byte> w,
                         std::uint64_t feats) noexcept {
    if (per_endpoint(feats)) return free_failed(w, r.pasid, Errc::unsupported);
    if (r.pasid == 0 || r.pasid > vi::kPasidMaxLimit) {
      return free_failed(w, r.pasid, Errc::not_found);  // never allocatable: not this VM's
    }
    const Errc e = backend.free_raw(r.pasid);
    if (e != Errc{}) return free_backend_failed(w, r.pasid, e);
    st.pasid_frees.inc();
    (void)encode_tail(w, vi::Status::ok);  // FREE_PASID's reply is the tail alone
    return kTail;
  }

  [[gnu::noinline, gnu::cold]] std::size_t free_backend_failed(std::span<std::byte> w, Id pasid,
                                                               Errc e) noexcept {
    if (e == Errc::out_of_range) e = Errc::not_found;
    if (e != Errc::not_found && e != Errc::not_owner && e != Errc::busy) st.backend_errors.inc();
    return free_failed(w, pasid, e);
  }

  [[gnu::noinline, gnu::cold]] std::size_t free_failed(std::span<std::byte> w, Id pasid,
                                                       Errc e) noexcept {
    st.pasid_free_fails.inc();
    log(LogLevel::info, "virtio-iommu: FREE_PASID %u refused: %s", pasid, to_string(e));
    return fail(vi::ReqType::free_pasid, w, e);
  }

  // Everything but the hot pair's success path (IommuDevice::handle_request's fast path).
  [[gnu::noinline]] std::size_t handle_general(std::span<const std::byte> readable,
                                               std::span<std::byte> writable,
                                               std::uint64_t feats) noexcept;

  // Under mu.
  bool endpoint_exists(std::uint32_t id) const noexcept {
    return cfg.allow_undeclared_endpoints || eps.count(id) != 0;
  }

  Errc bind_locked(const BindPasidRequest& r, std::uint64_t feats) noexcept {
    if (!endpoint_exists(r.endpoint)) return Errc::not_found;
    const bool pe = per_endpoint(feats);
    if (r.pasid == 0 || r.pasid > (pe ? cfg.max_pasid : vi::kPasidMaxLimit)) {
      return pe ? Errc::out_of_range : Errc::not_found;
    }
    const std::uint64_t key = bind_key(r.endpoint, r.pasid);
    if (binds.count(key) != 0) return Errc::exists;  // already bound: S_INVAL
    if (binds.size() >= cfg.max_binds) {
      st.cap_refusals.inc();
      return Errc::exhausted;
    }
    Bind b{r.pasid, false};
    if (pe) {
      if (Errc e = backend.alloc_raw(1, vi::kPasidMaxLimit, &b.host); e != Errc{}) return e;
      b.owned = true;
    }
    if (Result<void> ok = backend.bind(b.host, kInvalidId); !ok) {
      if (b.owned) (void)backend.free_raw(b.host);
      return ok.error();
    }
    try {
      binds.emplace(key, b);
    } catch (const std::bad_alloc&) {
      (void)backend.unbind(b.host);
      if (b.owned) (void)backend.free_raw(b.host);
      return Errc::no_memory;
    }
    return Errc{};
  }

  // Drops one bind's host reference (and the host PASID the device allocated for it).
  // An owned host PASID is freed first (FREE_PENDING while bound), then unbound (released): it
  // is never free in between, so it cannot be handed to someone else and then freed by us.
  Errc release_bind(const Bind& b) noexcept {
    if (b.owned) (void)backend.free_raw(b.host);  // busy / not_found: already freed by the VM
    Result<void> r = backend.unbind(b.host);
    if (!r) return r.error();
    return Errc{};
  }

  Errc unbind_locked(const UnbindPasidRequest& r) noexcept {
    if (!endpoint_exists(r.endpoint)) return Errc::not_found;
    auto it = binds.find(bind_key(r.endpoint, r.pasid));
    if (it == binds.end()) return Errc::not_found;
    if (Errc e = release_bind(it->second); e != Errc{}) {
      st.backend_errors.inc();
      return e;
    }
    binds.erase(it);
    return Errc{};
  }

  // ---- base requests (under mu) -------------------------------------------------------------

  void detach_locked(std::uint32_t ep_id, Endpoint& ep) noexcept {
    auto d = domains.find(ep.domain);
    ep.attached = false;
    --attached_count;
    if (d != domains.end() && --d->second.endpoints == 0) {
      mapping_count -= d->second.map.size();
      domains.erase(d);  // the last endpoint left: the domain ceases to exist (§5.13.6.4)
    }
    if (!ep.declared) eps.erase(ep_id);
  }

  Errc attach_locked(const AttachRequest& r) noexcept {
    if (has(offered, vi::kFDomainRange) &&
        (r.domain < cfg.domain_range.start || r.domain > cfg.domain_range.end)) {
      return Errc::out_of_range;
    }
    auto e = eps.find(r.endpoint);
    if (e == eps.end() && !cfg.allow_undeclared_endpoints) return Errc::not_found;
    const bool want_bypass = (r.flags & vi::kAttachFBypass) != 0;
    auto d = domains.find(r.domain);
    if (d != domains.end() && d->second.bypass != want_bypass) return Errc::invalid_argument;
    if (e != eps.end() && e->second.attached && e->second.domain == r.domain) return Errc{};
    bool new_domain = false;
    if (d == domains.end()) {
      // Moving the domain's last endpoint frees the old domain: count that slot as free.
      const bool frees_old =
          e != eps.end() && e->second.attached && domains.at(e->second.domain).endpoints == 1;
      if (domains.size() - (frees_old ? 1 : 0) >= cfg.max_domains) {
        st.cap_refusals.inc();
        return Errc::exhausted;
      }
      try {
        d = domains.try_emplace(r.domain).first;
      } catch (const std::bad_alloc&) {
        return Errc::no_memory;
      }
      d->second.bypass = want_bypass;
      new_domain = true;
    }
    if (e == eps.end()) {
      if (eps.size() >= cfg.max_endpoints) {
        if (new_domain) domains.erase(d);
        st.cap_refusals.inc();
        return Errc::exhausted;
      }
      try {
        e = eps.try_emplace(r.endpoint).first;
      } catch (const std::bad_alloc&) {
        if (new_domain) domains.erase(d);
        return Errc::no_memory;
      }
    }
    Endpoint& ep = e->second;
    if (ep.attached) {
      // Re-attach implies detach (§5.13.6.3); keep the record even if undeclared.
      const bool declared = ep.declared;
      ep.declared = true;
      detach_locked(r.endpoint, ep);
      ep.declared = declared;
    }
    ep.attached = true;
    ep.domain = r.domain;
    ++attached_count;
    ++d->second.endpoints;
    return Errc{};
  }

  Errc detach_req_locked(const DetachRequest& r) noexcept {
    auto e = eps.find(r.endpoint);
    if (e == eps.end()) {
      return cfg.allow_undeclared_endpoints ? Errc::invalid_argument : Errc::not_found;
    }
    if (!e->second.attached || e->second.domain != r.domain) return Errc::invalid_argument;
    detach_locked(r.endpoint, e->second);
    return Errc{};
  }

  bool overlaps_resv(std::uint32_t domain, std::uint64_t s, std::uint64_t t) const noexcept {
    for (std::uint32_t id : resv_eps) {
      const Endpoint& ep = eps.at(id);
      if (!ep.attached || ep.domain != domain) continue;
      for (const ResvMemRegion& reg : ep.resv) {
        if (reg.start <= t && s <= reg.end) return true;
      }
    }
    return false;
  }

  Errc map_locked(const MapRequest& r) noexcept {
    auto d = domains.find(r.domain);
    if (d == domains.end()) return Errc::not_found;
    if (d->second.bypass) return Errc::invalid_argument;
    if (((r.virt_start | r.phys_start | (r.virt_end + 1)) & granule_mask) != 0) {
      return Errc::out_of_range;
    }
    if (has(offered, vi::kFInputRange) &&
        (r.virt_start < cfg.input_range.start || r.virt_end > cfg.input_range.end)) {
      return Errc::out_of_range;
    }
    if (overlaps_resv(r.domain, r.virt_start, r.virt_end)) return Errc::invalid_argument;
    if (mapping_count >= cfg.max_mappings) {
      st.cap_refusals.inc();
      return Errc::exhausted;
    }
    switch (d->second.map.insert({r.virt_start, r.virt_end, r.phys_start, r.flags})) {
      case internal::IntervalMap::Insert::ok:
        ++mapping_count;
        return Errc{};
      case internal::IntervalMap::Insert::overlap:
        return Errc::invalid_argument;
      case internal::IntervalMap::Insert::no_memory:
        break;
    }
    return Errc::no_memory;
  }

  Errc unmap_locked(const UnmapRequest& r) noexcept {
    auto d = domains.find(r.domain);
    if (d == domains.end()) return Errc::not_found;
    if (d->second.bypass) return Errc::invalid_argument;
    std::size_t removed = 0;
    if (d->second.map.erase(r.virt_start, r.virt_end, &removed) ==
        internal::IntervalMap::Erase::split) {
      return Errc::out_of_range;
    }
    mapping_count -= removed;
    return Errc{};
  }

  std::size_t probe(const ProbeRequest& r, std::span<std::byte> w) noexcept {
    std::lock_guard<Mutex> lock(mu);
    auto e = eps.find(r.endpoint);
    std::span<const ResvMemRegion> regions;
    if (e != eps.end()) {
      regions = e->second.resv;
    } else if (!cfg.allow_undeclared_endpoints) {
      return fail(vi::ReqType::probe, w, Errc::not_found);
    }
    const std::optional<std::size_t> n = encode_probe_properties(w.first(cfg.probe_size), regions);
    if (!n) return fail(vi::ReqType::probe, w, Errc::io_error);  // cannot happen: sized in ctor
    st.probes.inc();
    (void)encode_tail(w.subspan(cfg.probe_size), vi::Status::ok);
    return std::size_t{cfg.probe_size} + kTail;
  }

  // PROBE whose writable part has room for a tail but not for probe_size properties: the spec
  // asks for S_INVAL without properties; the tail goes at the end of the buffer.
  std::size_t probe_short(std::span<std::byte> w) noexcept {
    std::fill(w.begin(), w.end() - kTail, std::byte{0});
    (void)encode_tail(w.last(kTail), vi::Status::inval);
    st.failed.inc();
    st.reply_small.inc();
    log(LogLevel::debug, "virtio-iommu: PROBE with %zu writable bytes, %zu needed", w.size(),
        std::size_t{cfg.probe_size} + kTail);
    return w.size();
  }

  std::size_t locked_request(const Request& req, vi::ReqType type, std::span<std::byte> w,
                             std::uint64_t feats) noexcept {
    Errc e{};
    Counter* ok_counter = nullptr;
    {
      std::lock_guard<Mutex> lock(mu);
      if (const auto* a = std::get_if<AttachRequest>(&req)) {
        e = attach_locked(*a);
        ok_counter = &st.attaches;
      } else if (const auto* d = std::get_if<DetachRequest>(&req)) {
        e = detach_req_locked(*d);
        ok_counter = &st.detaches;
      } else if (const auto* m = std::get_if<MapRequest>(&req)) {
        e = map_locked(*m);
        ok_counter = &st.maps;
      } else if (const auto* u = std::get_if<UnmapRequest>(&req)) {
        e = unmap_locked(*u);
        ok_counter = &st.unmaps;
      } else if (const auto* b = std::get_if<BindPasidRequest>(&req)) {
        e = bind_locked(*b, feats);
        ok_counter = &st.pasid_binds;
      } else if (const auto* ub = std::get_if<UnbindPasidRequest>(&req)) {
        e = unbind_locked(*ub);
        ok_counter = &st.pasid_unbinds;
      }
    }
    if (e != Errc{}) {
      log(LogLevel::debug, "virtio-iommu: request type %#x failed: %s", vi::to_u8(type),
          to_string(e));
      return fail(type, w, e);
    }
    if (ok_counter != nullptr) ok_counter->inc();
    return reply(type, w, vi::Status::ok);
  }

  // ---- faults -----------------------------------------------------------------------------

  // Under mu. Returns true when the notifier should run.
  bool queue_fault(const FaultEvent& f) noexcept {
    st.faults.inc();
    if (fault_count == faults.size()) {
      st.faults_dropped.inc();
      return false;
    }
    faults[(fault_head + fault_count) % faults.size()] = f;
    ++fault_count;
    return true;
  }

  bool bypass_unattached() const noexcept {
    if (has(offered, vi::kFBypassConfig) && bypass.load(std::memory_order_relaxed) != 0) {
      return true;
    }
    return has(negotiated.load(std::memory_order_relaxed), vi::kFBypass);
  }

  void release_all_binds() noexcept {
    for (auto& [key, b] : binds) {
      if (release_bind(b) != Errc{}) st.backend_errors.inc();
    }
    binds.clear();
  }
};

// ---- IommuDevice ------------------------------------------------------------------------------

IommuDevice::IommuDevice(HostBackend& backend, IommuDeviceConfig cfg)
    : impl_(std::make_unique<Impl>(backend, std::move(cfg))) {}

IommuDevice::~IommuDevice() {
  std::lock_guard<Mutex> lock(impl_->mu);
  impl_->release_all_binds();
}

std::uint64_t IommuDevice::device_features() const noexcept { return impl_->offered; }

bool IommuDevice::set_driver_features(std::uint64_t features) noexcept {
  Impl& d = *impl_;
  const std::uint64_t f = features & vi::kDeviceTypeFeatureMask;
  if ((f & ~d.offered) != 0 || !features_consistent(f) ||
      (has(f, vi::kFPasidPerEndpoint) && !has(f, vi::kFPasidBind))) {
    d.log(LogLevel::info, "virtio-iommu: driver features %#llx refused (offered %#llx)",
          static_cast<unsigned long long>(f), static_cast<unsigned long long>(d.offered));
    return false;
  }
  std::lock_guard<Mutex> lock(d.mu);
  if (!d.binds.empty() && d.per_endpoint(f) != d.per_endpoint(d.negotiated.load())) {
    return false;  // the scope of live binds cannot change under them (reset first)
  }
  d.negotiated.store(f, std::memory_order_relaxed);
  return true;
}

std::uint64_t IommuDevice::negotiated_features() const noexcept {
  return impl_->negotiated.load(std::memory_order_relaxed);
}

void IommuDevice::read_config(std::uint32_t offset, std::span<std::byte> out) const noexcept {
  const Impl& d = *impl_;
  vi::ConfigPasid c{};
  c.base.page_size_mask.store(d.cfg.page_size_mask);
  c.base.input_range.start.store(d.cfg.input_range.start);
  c.base.input_range.end.store(d.cfg.input_range.end);
  c.base.domain_range.start.store(d.cfg.domain_range.start);
  c.base.domain_range.end.store(d.cfg.domain_range.end);
  c.base.probe_size.store(has(d.offered, vi::kFProbe) ? d.cfg.probe_size : 0);
  c.base.bypass = d.bypass.load(std::memory_order_relaxed);
  c.max_pasid.store(has(d.offered, vi::kFPasidAlloc) ? d.cfg.max_pasid : 0);
  static_assert(sizeof(c) == kConfigSize);
  std::byte raw[sizeof(c)];
  std::memcpy(raw, &c, sizeof(c));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::uint64_t at = std::uint64_t{offset} + i;
    out[i] = at < sizeof(raw) ? raw[at] : std::byte{0};
  }
}

bool IommuDevice::write_config(std::uint32_t offset, std::span<const std::byte> in) noexcept {
  Impl& d = *impl_;
  const std::uint8_t v = in.size() == 1 ? std::to_integer<std::uint8_t>(in[0]) : 0xFF;
  if (!has(d.negotiated.load(std::memory_order_relaxed), vi::kFBypassConfig) ||
      offset != offsetof(vi::Config, bypass) || in.size() != 1 || v > 1) {
    d.st.config_writes_refused.inc();
    d.log(LogLevel::debug, "virtio-iommu: config write of %zu bytes at %u refused", in.size(),
          offset);
    return false;
  }
  d.bypass.store(v, std::memory_order_relaxed);
  return true;
}

std::size_t IommuDevice::handle_request(std::span<const std::byte> readable,
                                        std::span<std::byte> writable) noexcept {
  Impl& d = *impl_;
  const std::uint64_t feats = d.negotiated.load(std::memory_order_relaxed);
  // The hot pair first: parsed in line (exactly what parse_request accepts for them), no lock, no
  // allocation in global scope. A reply buffer too small goes the general way (reply_small).
  const PasidParse fast = parse_pasid_request(readable, feats);
  if (fast.kind == PasidParse::Kind::alloc && writable.size() >= kAllocReply) {
    return d.alloc_pasid(AllocPasidRequest{fast.value}, writable, feats);
  }
  if (fast.kind == PasidParse::Kind::free && writable.size() >= kTail) {
    return d.free_pasid(FreePasidRequest{fast.value}, writable, feats);
  }
  return d.handle_general(readable, writable, feats);
}

std::size_t IommuDevice::Impl::handle_general(std::span<const std::byte> readable,
                                              std::span<std::byte> writable,
                                              std::uint64_t feats) noexcept {
  Impl& d = *this;
  const ParseResult r = parse_request(readable, feats);
  if (!r) return d.parse_failure(readable, writable, r.error());
  const vi::ReqType type = request_type(*r);
  if (writable.size() < d.reply_size(type)) {
    if (type == vi::ReqType::probe && writable.size() >= kTail) return d.probe_short(writable);
    d.st.reply_small.inc();
    d.log(LogLevel::debug, "virtio-iommu: request type %#x: %zu writable bytes, %zu needed",
          vi::to_u8(type), writable.size(), d.reply_size(type));
    return d.used_zero();
  }
  if (const auto* a = std::get_if<AllocPasidRequest>(&*r))
    return d.alloc_pasid(*a, writable, feats);
  if (const auto* f = std::get_if<FreePasidRequest>(&*r)) return d.free_pasid(*f, writable, feats);
  if (const auto* p = std::get_if<ProbeRequest>(&*r)) return d.probe(*p, writable);
  return d.locked_request(*r, type, writable, feats);
}

// The request queue of IommuDeviceModel (virtio_iommu_transport.hpp): here, so that the hot pair
// of IommuDevice::handle_request compiles into the model's virtual function.
std::size_t IommuDeviceModel::handle_request(unsigned queue, std::span<const std::byte> readable,
                                             std::span<std::byte> writable) noexcept {
  if (queue != wire::virtio_iommu::kRequestQueue) return 0;
  return dev_.handle_request(readable, writable);
}

Result<Translation> IommuDevice::translate(std::uint32_t endpoint, std::uint64_t iova,
                                           Access access) noexcept {
  Impl& d = *impl_;
  d.st.translations.inc();
  std::uint32_t fault_flags = 0;
  switch (access) {
    case Access::read:
      fault_flags = vi::kFaultFRead;
      break;
    case Access::write:
      fault_flags = vi::kFaultFWrite;
      break;
    case Access::exec:
      fault_flags = vi::kFaultFExec;
      break;
  }
  const std::uint32_t need = access == Access::write ? vi::kMapFWrite : vi::kMapFRead;
  const Translation identity{iova, ~std::uint64_t{0}, vi::kMapFRead | vi::kMapFWrite, true};

  FaultEvent fault{};
  fault.endpoint = endpoint;
  fault.flags = fault_flags;
  fault.address = iova;
  Errc err{};
  bool notify = false;
  {
    std::lock_guard<Mutex> lock(d.mu);
    auto e = d.eps.find(endpoint);
    if (e != d.eps.end()) {
      for (const ResvMemRegion& reg : e->second.resv) {
        if (iova < reg.start || iova > reg.end) continue;
        if (reg.subtype == vi::kResvMemTMsi) {
          return Translation{iova, reg.end, vi::kMapFWrite, true};  // the MSI doorbell
        }
        err = Errc::out_of_range;
        fault.reason = vi::kFaultRMapping;
        break;
      }
    }
    if (err == Errc{}) {
      if (e == d.eps.end() || !e->second.attached) {
        if (d.bypass_unattached()) return identity;
        err = Errc::not_found;
        fault.reason = vi::kFaultRDomain;
      } else {
        const Impl::Domain& dom = d.domains.at(e->second.domain);
        if (dom.bypass) return identity;
        internal::Mapping m;
        if (dom.map.find(iova, &m) == nullptr) {
          err = Errc::out_of_range;
          fault.reason = vi::kFaultRMapping;
        } else if ((m.flags & need) == 0) {
          err = Errc::permission_denied;
          fault.reason = vi::kFaultRMapping;
        } else {
          return Translation{m.phys + (iova - m.start), m.end, m.flags, false};
        }
      }
    }
    notify = d.queue_fault(fault);
  }
  if (notify && d.notifier) d.notifier();
  return ioasid::fail(err);
}

Result<Id> IommuDevice::host_pasid(std::uint32_t endpoint, std::uint32_t pasid) const noexcept {
  const Impl& d = *impl_;
  std::lock_guard<Mutex> lock(d.mu);
  auto it = d.binds.find(bind_key(endpoint, pasid));
  if (it == d.binds.end()) return ioasid::fail(Errc::not_found);
  return it->second.host;
}

std::optional<FaultEvent> IommuDevice::pop_fault() noexcept {
  Impl& d = *impl_;
  std::lock_guard<Mutex> lock(d.mu);
  if (d.fault_count == 0) return std::nullopt;
  FaultEvent f = d.faults[d.fault_head];
  d.fault_head = (d.fault_head + 1) % d.faults.size();
  --d.fault_count;
  return f;
}

void IommuDevice::set_fault_notifier(std::function<void()> fn) { impl_->notifier = std::move(fn); }

void IommuDevice::reset() noexcept {
  Impl& d = *impl_;
  std::lock_guard<Mutex> lock(d.mu);
  d.negotiated.store(0, std::memory_order_relaxed);
  d.release_all_binds();
  d.domains.clear();
  d.mapping_count = 0;
  d.attached_count = 0;
  for (auto it = d.eps.begin(); it != d.eps.end();) {
    if (!it->second.declared) {
      it = d.eps.erase(it);
    } else {
      it->second.attached = false;
      ++it;
    }
  }
  d.fault_head = 0;
  d.fault_count = 0;
}

PasidScope IommuDevice::pasid_scope() const noexcept {
  return impl_->per_endpoint(impl_->negotiated.load(std::memory_order_relaxed))
             ? PasidScope::per_endpoint
             : PasidScope::global;
}

Stats IommuDevice::stats() const noexcept {
  const Impl& d = *impl_;
  const auto& s = d.st;
  Stats o;
  o.failed = s.failed.get();
  o.used_zero = s.used_zero.get();
  o.reply_small = s.reply_small.get();
  for (std::size_t i = 0; i < o.malformed.size(); ++i) o.malformed[i] = s.malformed[i].get();
  o.attaches = s.attaches.get();
  o.detaches = s.detaches.get();
  o.maps = s.maps.get();
  o.unmaps = s.unmaps.get();
  o.probes = s.probes.get();
  o.pasid_allocs = s.pasid_allocs.get();
  o.pasid_alloc_fails = s.pasid_alloc_fails.get();
  o.pasid_frees = s.pasid_frees.get();
  o.pasid_free_fails = s.pasid_free_fails.get();
  o.pasid_binds = s.pasid_binds.get();
  o.pasid_unbinds = s.pasid_unbinds.get();
  o.cap_refusals = s.cap_refusals.get();
  o.backend_errors = s.backend_errors.get();
  o.backend_bad_answers = s.backend_bad_answers.get();
  o.translations = s.translations.get();
  o.faults = s.faults.get();
  o.faults_dropped = s.faults_dropped.get();
  o.config_writes_refused = s.config_writes_refused.get();
  o.log_lines = s.log_lines.get();
  o.log_dropped = s.log_dropped.get();
  o.ok = o.attaches + o.detaches + o.maps + o.unmaps + o.probes + o.pasid_allocs + o.pasid_frees +
         o.pasid_binds + o.pasid_unbinds;
  o.requests = o.ok + o.failed + o.used_zero;
  std::lock_guard<Mutex> lock(d.mu);
  o.domains = d.domains.size();
  o.endpoints_attached = d.attached_count;
  o.mappings = d.mapping_count;
  o.binds = d.binds.size();
  return o;
}

}  // namespace ioasid::virtio
