// SPDX-License-Identifier: Apache-2.0
// backend_handle.hpp: struct ioasid_backend, the C ABI's host backend handle, shared by the C ABI
// (capi/ioasid_c.cc: the in-process LocalBackend) and the ioasidd client library
// (client/client_c.cc: DaemonBackend). The handle owns its backend; device models call it
// through `backend`.
#pragma once

#include <memory>

#include "ioasid/host_backend.hpp"
#include "ioasid/local_backend.hpp"

struct ioasid_backend {
  explicit ioasid_backend(ioasid::Space& space, ioasid::SetId set)
      : owned(std::make_unique<ioasid::LocalBackend>(space, set)), backend(*owned) {}
  explicit ioasid_backend(std::unique_ptr<ioasid::HostBackend> b)
      : owned(std::move(b)), backend(*owned) {}
  std::unique_ptr<ioasid::HostBackend> owned;
  ioasid::HostBackend& backend;
};
