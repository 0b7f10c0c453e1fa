// SPDX-License-Identifier: Apache-2.0
// local_backend.hpp: ioasid::LocalBackend, the HostBackend served by an in-process Space.
//
// Use it when the VMM itself owns the host's PASID space (tests, single-VMM hosts, the
// simulator's fast mode). It acts on one set of the space; several device models of one VM share
// one LocalBackend (or several over the same set). The set is not owned: destroying the backend
// frees nothing, destroying the VM's set (Space::destroy_set) frees everything it held.
#pragma once

#include "ioasid/export.h"
#include "ioasid/host_backend.hpp"
#include "ioasid/space.hpp"

namespace ioasid {

class IOASID_API LocalBackend final : public HostBackend {
 public:
  // space must outlive the backend.
  LocalBackend(Space& space, SetId set) noexcept : space_(space), set_(set) {}

  Errc alloc_raw(Id min, Id max, Id* out) noexcept override;
  Errc free_raw(Id id) noexcept override;
  Result<void> get(Id id) noexcept override;
  Result<bool> put(Id id) noexcept override;
  Result<void> bind(Id id, Id spid) noexcept override;
  Result<void> unbind(Id id) noexcept override;
  Result<IdInfo> query(Id id) noexcept override;
  Result<Id> find_by_spid(Id spid) noexcept override;
  Result<SetInfo> set_info() noexcept override;

  SetId set() const noexcept { return set_; }
  Space& space() const noexcept { return space_; }

 private:
  Space& space_;
  SetId set_;
};

}  // namespace ioasid
