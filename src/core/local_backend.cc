// SPDX-License-Identifier: Apache-2.0
// local_backend.cc: LocalBackend, the HostBackend of one set of an in-process Space. Every error
// goes out through guest_visible(): another set's ID looks exactly like a missing one.
#include "ioasid/local_backend.hpp"

namespace ioasid {
namespace {
template <class T>
Result<T> visible(Result<T> r) {
  if (!r) return fail(guest_visible(r.error()));
  return r;
}
}  // namespace

Errc LocalBackend::alloc_raw(Id min, Id max, Id* out) noexcept {
  return guest_visible(space_.alloc_raw(set_, min, max, nullptr, out));
}
Errc LocalBackend::free_raw(Id id) noexcept {
  auto r = space_.free(set_, id);
  return r ? Errc{} : guest_visible(r.error());
}
Result<void> LocalBackend::get(Id id) noexcept { return visible(space_.get(set_, id)); }
Result<bool> LocalBackend::put(Id id) noexcept { return visible(space_.put(set_, id)); }
Result<void> LocalBackend::bind(Id id, Id spid) noexcept {
  return visible(space_.bind(set_, id, spid));
}
Result<void> LocalBackend::unbind(Id id) noexcept { return visible(space_.unbind(set_, id)); }
Result<IdInfo> LocalBackend::query(Id id) noexcept { return visible(space_.query(set_, id)); }
Result<Id> LocalBackend::find_by_spid(Id spid) noexcept {
  return visible(space_.find_by_spid(set_, spid));
}
Result<SetInfo> LocalBackend::set_info() noexcept { return visible(space_.set_info(set_)); }

}  // namespace ioasid
