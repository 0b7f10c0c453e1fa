// SPDX-License-Identifier: Apache-2.0
// client_c.cc: the C ABI of the ioasidd client library (include/ioasid/client.h) over
// ioasid::DaemonBackend; the handles are ioasid.h's struct ioasid_backend.
#include "ioasid/client.h"

#include <cerrno>
#include <cstring>
#include <new>

#include "capi/backend_handle.hpp"
#include "ioasid/client.hpp"

namespace {

constexpr std::size_t kConfigV1 = sizeof(ioasid_daemon_config);
constexpr std::size_t kSessionV1 = sizeof(ioasid_daemon_session);

int status(ioasid::Errc e) noexcept { return e == ioasid::Errc{} ? 0 : -ioasid::to_errno(e); }

ioasid::DaemonBackend* daemon_of(ioasid_backend* b) noexcept {
  return b == nullptr ? nullptr : dynamic_cast<ioasid::DaemonBackend*>(&b->backend);
}

}  // namespace

extern "C" {

int ioasid_backend_daemon_create(const ioasid_daemon_config* config, ioasid_backend** out) {
  if (config == nullptr || out == nullptr) return -EINVAL;
  if (config->size < kConfigV1) return -EINVAL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(config);
  for (std::size_t i = kConfigV1; i < config->size; ++i) {
    if (bytes[i] != 0) return -E2BIG;
  }
  if ((config->flags & ~IOASID_DAEMON_F_RESUME) != 0 || config->socket_path == nullptr) {
    return -EINVAL;
  }
  try {
    ioasid::DaemonOptions o;
    o.socket_path = config->socket_path;
    o.vm_token = config->vm_token;
    o.quota = config->quota;
    o.timeout = std::chrono::milliseconds(config->timeout_ms);
    if ((config->flags & IOASID_DAEMON_F_RESUME) != 0) {
      ioasid::ResumeToken t{};
      std::memcpy(t.data(), config->resume_token, t.size());
      o.resume_token = t;
    }
    auto b = ioasid::DaemonBackend::open(o);
    if (!b) return status(b.error());
    *out = new ioasid_backend(std::unique_ptr<ioasid::HostBackend>(std::move(*b)));
    return 0;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

int ioasid_backend_daemon_session(ioasid_backend* backend, ioasid_daemon_session* out) {
  ioasid::DaemonBackend* d = daemon_of(backend);
  if (d == nullptr || out == nullptr || out->size < kSessionV1) return -EINVAL;
  ioasid_daemon_session s{};
  s.size = out->size;
  s.resumed = d->resumed() ? 1 : 0;
  s.grace_seconds = d->grace_seconds();
  const ioasid::ResumeToken t = d->resume_token();
  std::memcpy(s.resume_token, t.data(), t.size());
  std::memcpy(out, &s, sizeof s);
  return 0;
}

int ioasid_backend_daemon_close_session(ioasid_backend* backend) {
  ioasid::DaemonBackend* d = daemon_of(backend);
  if (d == nullptr) return -EINVAL;
  auto r = d->close_session();
  return r ? 0 : status(r.error());
}

int ioasid_backend_get(ioasid_backend* backend, ioasid_t id) {
  if (backend == nullptr) return -EINVAL;
  auto r = backend->backend.get(id);
  return r ? 0 : status(ioasid::guest_visible(r.error()));
}

int ioasid_backend_put(ioasid_backend* backend, ioasid_t id, bool* released) {
  if (backend == nullptr) return -EINVAL;
  auto r = backend->backend.put(id);
  if (!r) return status(ioasid::guest_visible(r.error()));
  if (released != nullptr) *released = *r;
  return 0;
}

int ioasid_backend_find_by_spid(ioasid_backend* backend, ioasid_t spid, ioasid_t* out) {
  if (backend == nullptr || out == nullptr) return -EINVAL;
  auto r = backend->backend.find_by_spid(spid);
  if (!r) return status(ioasid::guest_visible(r.error()));
  *out = *r;
  return 0;
}

}  // extern "C"
