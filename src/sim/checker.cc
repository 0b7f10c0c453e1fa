// SPDX-License-Identifier: Apache-2.0
// checker.cc: the invariant checks and the acknowledged record (checker.hpp).
#include "sim/checker.hpp"

#include <array>
#include <cstdio>
#include <set>

namespace ioasid::sim {
namespace {

constexpr std::array<const char*, kInvariants> kNames = {
    "single_owner", "guest_pasid_owned",      "quota",
    "no_leak",      "allocator_after_unplug", "durable_ack"};

const char* state_name(IdState s) {
  switch (s) {
    case IdState::free:
      return "free";
    case IdState::active:
      return "active";
    case IdState::free_pending:
      return "FREE_PENDING";
    case IdState::reserved:
      return "reserved";
  }
  return "?";
}

std::string describe(const IdInfo& i) {
  std::string s = state_name(i.state);
  s += ", " + std::to_string(i.binds) + " bind" + (i.binds == 1 ? "" : "s");
  if (i.spid != kInvalidId) s += ", guest PASID " + hex(i.spid);
  return s;
}
std::string describe(const AckedPasid& a) {
  IdInfo i;
  i.state = a.state;
  i.binds = a.binds;
  i.spid = a.spid;
  return describe(i);
}

[[noreturn]] void host_failure(const std::string& what, Errc e) {
  throw RunFailure(what + ": " + to_string(e));
}

}  // namespace

const char* to_string(Invariant i) noexcept {
  const auto n = static_cast<unsigned>(i);
  return n < kInvariants ? kNames[n] : "unknown";
}

std::string hex(Id id) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", id);
  return buf;
}

void History::add(std::uint64_t step, std::string what) {
  ++total_;
  entries_.emplace_back(step, std::move(what));
  while (entries_.size() > capacity_) entries_.pop_front();
}

void Checker::violate(Invariant inv, const std::string& detail) { throw Violation(inv, detail); }

void Checker::ack_alloc(int vm, Id id) { acked_[static_cast<std::size_t>(vm)][id] = AckedPasid{}; }
void Checker::ack_free(int vm, Id id, bool released) {
  auto& m = acked_[static_cast<std::size_t>(vm)];
  if (released) {
    m.erase(id);
  } else if (auto it = m.find(id); it != m.end()) {
    it->second.state = IdState::free_pending;
  }
}
void Checker::ack_bind(int vm, Id id, Id spid) {
  auto& m = acked_[static_cast<std::size_t>(vm)];
  if (auto it = m.find(id); it != m.end()) {
    ++it->second.binds;
    if (spid != kInvalidId) it->second.spid = spid;
  }
}
void Checker::ack_unbind(int vm, Id id, bool released) {
  auto& m = acked_[static_cast<std::size_t>(vm)];
  auto it = m.find(id);
  if (it == m.end()) return;
  if (released) {
    m.erase(it);
    return;
  }
  if (it->second.binds > 0) --it->second.binds;
  if (it->second.binds == 0) it->second.spid = kInvalidId;
}
void Checker::ack_gone(int vm) {
  acked_[static_cast<std::size_t>(vm)].clear();
  for (auto it = claims_.begin(); it != claims_.end();) {
    it = it->second == vm ? claims_.erase(it) : std::next(it);
  }
}

void Checker::claim(int vm, Id id) {
  auto [it, fresh] = claims_.emplace(id, vm);
  if (!fresh && it->second != vm) {
    violate(Invariant::single_owner, "PASID " + hex(id) + " is held by the guests of " +
                                         s_.vms[static_cast<std::size_t>(it->second)].name +
                                         " and " + s_.vms[static_cast<std::size_t>(vm)].name);
  }
}
void Checker::unclaim(int vm, Id id) {
  auto it = claims_.find(id);
  if (it != claims_.end() && it->second == vm) claims_.erase(it);
}

void Checker::check_pasid(int vm, Id id, const GuestPasid* rec, const Result<IdInfo>& host) {
  ++counts_.incremental;
  const std::string& name = s_.vms[static_cast<std::size_t>(vm)].name;
  if (!host && host.error() != Errc::not_found) {
    host_failure(name + ": QUERY of PASID " + hex(id), host.error());
  }
  if (rec == nullptr) {
    if (host) {
      violate(Invariant::no_leak, name + " released PASID " + hex(id) +
                                      ", but the host still holds it for the VM (" +
                                      describe(*host) + ")");
    }
    return;
  }
  if (!host) {
    violate(Invariant::guest_pasid_owned,
            name + " holds PASID " + hex(id) + (rec->freed ? " (freed, still bound)" : "") +
                ", but its VM does not own it on the host (not_found)");
  }
  const IdState want = rec->freed ? IdState::free_pending : IdState::active;
  const std::uint32_t binds = rec->bound() ? 1 : 0;
  if (host->state != want || host->binds != binds) {
    violate(Invariant::guest_pasid_owned, name + " holds PASID " + hex(id) + " as " +
                                              state_name(want) + " with " + std::to_string(binds) +
                                              " bind(s); the host says " + describe(*host));
  }
}

void Checker::check_quota(int vm) {
  ++counts_.incremental;
  const VmSpec& spec = s_.vms[static_cast<std::size_t>(vm)];
  const std::size_t held = acked_[static_cast<std::size_t>(vm)].size();
  if (held > spec.quota) {
    violate(Invariant::quota, spec.name + " holds " + std::to_string(held) +
                                  " PASIDs acknowledged by the host; its quota is " +
                                  std::to_string(spec.quota));
  }
}

void Checker::check_gone(const std::string& name, std::uint64_t token) {
  ++counts_.incremental;
  auto sets = host_.list_sets();
  if (!sets) host_failure("LIST_SETS", sets.error());
  for (const HostSet& h : *sets) {
    if (h.token == token) {
      violate(Invariant::no_leak, name + " is gone, but the host still has its set (token " +
                                      std::to_string(token) + ", " + std::to_string(h.count) +
                                      " PASIDs, quota " + std::to_string(h.quota) + ")");
    }
  }
}

void Checker::full_scan(const std::vector<VmView>& vms, bool after_restart) {
  ++counts_.full_scans;
  if (after_restart) ++counts_.restart_checks;
  auto sets = host_.list_sets();
  if (!sets) host_failure("LIST_SETS", sets.error());
  std::map<std::uint64_t, HostSet> by_token;
  std::map<std::uint64_t, std::map<Id, IdInfo>> ids;
  std::map<Id, std::uint64_t> owner;
  for (const HostSet& h : *sets) {
    by_token[h.token] = h;
    auto list = host_.list_ids(h.token);
    if (!list) host_failure("LIST_IDS " + std::to_string(h.token), list.error());
    for (const IdInfo& i : *list) {
      auto [it, fresh] = owner.emplace(i.id, h.token);
      if (!fresh) {
        violate(Invariant::single_owner, "PASID " + hex(i.id) + " is owned by the sets of VM " +
                                             std::to_string(it->second) + " and VM " +
                                             std::to_string(h.token) + " on the host");
      }
      ids[h.token][i.id] = i;
    }
  }
  // The guests' holdings, against each other.
  std::map<Id, const VmView*> held_by;
  for (const VmView& v : vms) {
    if (!v.running) continue;
    for (const auto& [id, rec] : *v.guest) {
      auto [it, fresh] = held_by.emplace(id, &v);
      if (!fresh) {
        violate(Invariant::single_owner, "PASID " + hex(id) + " is held by the guests of " +
                                             it->second->name + " and " + v.name);
      }
    }
  }
  for (std::size_t n = 0; n < vms.size(); ++n) {
    const VmView& v = vms[n];
    auto set = by_token.find(v.token);
    if (!v.running) {
      if (set != by_token.end()) {
        violate(Invariant::no_leak, v.name + " is gone, but the host still has its set (" +
                                        std::to_string(set->second.count) + " PASIDs)");
      }
      continue;
    }
    const std::map<Id, IdInfo> none;
    const std::map<Id, IdInfo>& host_ids = set == by_token.end() ? none : ids[v.token];
    if (after_restart) {
      const auto& acked = acked_[n];
      for (const auto& [id, a] : acked) {
        auto h = host_ids.find(id);
        if (h == host_ids.end()) {
          violate(Invariant::durable_ack, "after the daemon restart the host does not hold PASID " +
                                              hex(id) + ", acknowledged to " + v.name + " (" +
                                              describe(a) + ")");
        }
        const AckedPasid got{h->second.state, h->second.binds, h->second.spid};
        if (!(got == a)) {
          violate(Invariant::durable_ack, "after the daemon restart " + v.name + "'s PASID " +
                                              hex(id) + " is " + describe(h->second) +
                                              "; acknowledged: " + describe(a));
        }
      }
      for (const auto& [id, info] : host_ids) {
        if (acked.count(id) == 0) {
          violate(Invariant::durable_ack, "after the daemon restart the host holds PASID " +
                                              hex(id) + " for " + v.name + " (" + describe(info) +
                                              "), which it never acknowledged (or acknowledged "
                                              "as freed)");
        }
      }
    }
    if (set != by_token.end()) {
      const HostSet& h = set->second;
      if (h.quota != v.quota) {
        violate(Invariant::quota, "the host's quota for " + v.name + " is " +
                                      std::to_string(h.quota) + "; the scenario's is " +
                                      std::to_string(v.quota));
      }
      if (h.count > v.quota) {
        violate(Invariant::quota, v.name + " holds " + std::to_string(h.count) +
                                      " PASIDs on the host; its quota is " +
                                      std::to_string(v.quota));
      }
    }
    for (const auto& [id, rec] : *v.guest) {
      auto h = host_ids.find(id);
      if (h == host_ids.end()) {
        violate(Invariant::guest_pasid_owned,
                v.name + " holds PASID " + hex(id) + ", but its VM does not own it on the host");
      }
      const IdState want = rec.freed ? IdState::free_pending : IdState::active;
      const std::uint32_t binds = rec.bound() ? 1 : 0;
      if (h->second.state != want || h->second.binds != binds) {
        violate(Invariant::guest_pasid_owned,
                v.name + " holds PASID " + hex(id) + " as " + state_name(want) + " with " +
                    std::to_string(binds) + " bind(s); the host says " + describe(h->second));
      }
    }
    for (const auto& [id, info] : host_ids) {
      if (v.guest->count(id) == 0) {
        violate(Invariant::no_leak, "the host holds PASID " + hex(id) + " for " + v.name + " (" +
                                        describe(info) + "), which its guest does not hold");
      }
    }
  }
}

}  // namespace ioasid::sim
