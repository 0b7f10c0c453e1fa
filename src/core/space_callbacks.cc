// SPDX-License-Identifier: Apache-2.0
// space_callbacks.cc: what other code plugs into ioasid::Space: notifiers (global and per owner
// token) and the custom allocator list (DOMAIN.md §1.4 rules: first-active, groups of identical
// callbacks, standby order, unregister never fails, orphans counted).
#include <new>

#include "core/internal/space_impl.hpp"

namespace ioasid {

using internal::Binding;
using internal::ColdEntry;
using internal::Group;
using internal::HotEntry;
using internal::impl;
using internal::Leaf;
using internal::SetRec;
using internal::SpaceImpl;
namespace meta = internal::meta;

// ============================================================================================
// Space: notifiers
// ============================================================================================

Result<NotifierId> Space::register_global_notifier(NotifierFn fn, void* opaque,
                                                   std::uint32_t event_mask) noexcept {
  return impl(this)->add_notifier(true, 0, fn, opaque, event_mask);
}

Result<NotifierId> Space::register_set_notifier(std::uint64_t owner_token, NotifierFn fn,
                                                void* opaque, std::uint32_t event_mask) noexcept {
  return impl(this)->add_notifier(false, owner_token, fn, opaque, event_mask);
}

Result<void> Space::unregister_notifier(NotifierId id) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  auto drop = [id](auto& vec) {
    for (auto it = vec.begin(); it != vec.end(); ++it) {
      if (it->id == id) {
        vec.erase(it);
        return true;
      }
    }
    return false;
  };
  bool found = drop(s->global_notifiers_);
  for (auto it = s->owner_notifiers_.begin(); !found && it != s->owner_notifiers_.end(); ++it) {
    if (drop(it->second)) {
      if (it->second.empty()) s->owner_notifiers_.erase(it);
      found = true;
      break;  // `it` is gone when the vector was the token's last
    }
  }
  if (!found) return fail(Errc::not_found);
  s->has_notifiers_ = !s->global_notifiers_.empty() || !s->owner_notifiers_.empty();
  return {};
}

// ============================================================================================
// Space: custom allocators
// ============================================================================================

Result<void> Space::register_allocator(const AllocatorOps* ops) noexcept {
  SpaceImpl* s = impl(this);
  if (ops == nullptr || ops->alloc == nullptr || ops->free == nullptr) {
    return fail(Errc::invalid_argument);
  }
  if (s->held_by_me()) return fail(Errc::would_deadlock);
  SpaceImpl::WriteLock lock(*s);
  if (s->find_group_of(ops, nullptr) != nullptr) return fail(Errc::exists);
  if (s->groups_.empty() && s->default_live_ != 0) {
    s->log(LogLevel::warning, "custom allocator refused: default allocator holds %llu IDs",
           static_cast<unsigned long long>(s->default_live_));
    return fail(Errc::try_again);
  }
  for (Group* g : s->groups_) {
    if (g->alloc == ops->alloc && g->free == ops->free) {
      try {
        g->members.push_back(ops);
      } catch (const std::bad_alloc&) {
        return fail(Errc::no_memory);
      }
      return {};
    }
  }
  std::uint8_t slot = 0;
  for (unsigned i = 1; i <= internal::kMaxGroupSlot; ++i) {
    if (s->slots_[i] == nullptr) {
      slot = static_cast<std::uint8_t>(i);
      break;
    }
  }
  if (slot == 0) return fail(Errc::exhausted);
  void* mem = internal::mem_alloc(sizeof(Group), alignof(Group));
  if (mem == nullptr) return fail(Errc::no_memory);
  Group* g = new (mem) Group();
  g->alloc = ops->alloc;
  g->free = ops->free;
  g->slot = slot;
  try {
    g->members.push_back(ops);
    s->groups_.push_back(g);
  } catch (const std::bad_alloc&) {
    g->~Group();
    internal::mem_free(g);
    return fail(Errc::no_memory);
  }
  s->slots_[slot] = g;
  if (s->groups_.size() == 1) s->log(LogLevel::info, "custom allocator active");
  return {};
}

void Space::unregister_allocator(const AllocatorOps* ops) noexcept {
  SpaceImpl* s = impl(this);
  if (s->held_by_me()) {
    s->log(LogLevel::error, "unregister_allocator called from a callback: ignored");
    return;
  }
  SpaceImpl::WriteLock lock(*s);
  std::size_t pos = 0;
  Group* g = s->find_group_of(ops, &pos);
  if (g == nullptr) {
    s->log(LogLevel::warning, "unregister_allocator: ops %p not registered",
           static_cast<const void*>(ops));
    return;
  }
  if (g->members.size() > 1) {
    // Unlike Linux, the group never calls a departed member again: front() is always current.
    g->members.erase(g->members.begin() + static_cast<std::ptrdiff_t>(pos));
    return;
  }
  const bool was_active = s->groups_.front() == g;
  for (auto it = s->groups_.begin(); it != s->groups_.end(); ++it) {
    if (*it == g) {
      s->groups_.erase(it);
      break;
    }
  }
  if (g->live != 0) {
    g->removed = true;
    g->members.clear();
    s->stats_.orphaned_ids += g->live;
    s->stats_.orphaned_total += g->live;
    s->log(LogLevel::warning, "custom allocator removed with %llu live IDs: orphaned",
           static_cast<unsigned long long>(g->live));
  } else {
    s->slots_[g->slot] = nullptr;
    g->~Group();
    internal::mem_free(g);
  }
  if (was_active) {
    s->log(LogLevel::info,
           s->groups_.empty() ? "default allocator active again" : "next custom allocator active");
  }
}

}  // namespace ioasid
