// SPDX-License-Identifier: Apache-2.0
// ioasid_demo.cc: a short tour of the IOASID space, run by the README's first command until the
// whole-host simulator (ioasid-sim) takes over that role.
//
// It builds one host space and two VMs. Each VM's guest runs its own space whose active allocator
// is a custom allocator forwarding to the host through that VM's HostBackend (two "vIOMMUs" per
// guest, one allocator group), and shows: system-wide uniqueness, ownership, quotas, the range
// check on allocator answers, hot-unplug of a vIOMMU, FREE_PENDING, and VM teardown. Every step
// checks its result; the program exits non-zero if anything is not as described.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"

namespace {

using ioasid::AllocatorOps;
using ioasid::Errc;
using ioasid::Id;
using ioasid::LocalBackend;
using ioasid::SetId;
using ioasid::Space;

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what);
  if (!ok) ++failures;
}

// One guest vIOMMU: the custom allocator's pdata. All vIOMMUs of a guest share the callbacks
// below, so they form one allocator group, as every vIOMMU of a Linux guest did.
struct VIommu {
  const char* name;
  LocalBackend* host;  // the VM's host backend (in a real VMM: behind VCMD or a virtqueue)
  unsigned calls = 0;
};

int forward_alloc(void* pdata, Id min, Id max, Id* out) {
  auto* v = static_cast<VIommu*>(pdata);
  ++v->calls;
  // Like VT-d virtual commands, the host picks from the whole PASID range; the guest space
  // checks the answer against [min, max].
  auto id = v->host->alloc(1, 0xFFFFF);
  if (!id) return -ioasid::to_errno(id.error());
  (void)min;
  (void)max;
  *out = *id;
  return 0;
}

void forward_free(void* pdata, Id id) {
  auto* v = static_cast<VIommu*>(pdata);
  ++v->calls;
  (void)v->host->free(id);
}

struct Guest {
  const char* name;
  std::unique_ptr<Space> space;
  SetId set;  // the guest's own set (one process)
  std::vector<VIommu> viommus;
  std::vector<AllocatorOps> ops;
};

std::unique_ptr<Space> must(ioasid::Result<std::unique_ptr<Space>> r) {
  if (!r) {
    std::fprintf(stderr, "space creation failed: %s\n", ioasid::to_string(r.error()));
    std::exit(1);
  }
  return std::move(*r);
}

}  // namespace

int main() {
  std::printf("ioasid demo: one host PASID space, two VMs, two vIOMMUs each\n\n");

  auto host = must(Space::create({}));  // 20-bit PASIDs, PASID 0 (RID_PASID) reserved
  const SetId vm1 = *host->create_set(/*owner_token=*/1001, /*quota=*/8);
  const SetId vm2 = *host->create_set(/*owner_token=*/1002, /*quota=*/4);
  LocalBackend vm1_host(*host, vm1), vm2_host(*host, vm2);

  Guest guests[2] = {{"guest-1", must(Space::create({})), {}, {}, {}},
                     {"guest-2", must(Space::create({})), {}, {}, {}}};
  LocalBackend* backends[2] = {&vm1_host, &vm2_host};
  for (int g = 0; g < 2; ++g) {
    Guest& guest = guests[g];
    guest.set = *guest.space->create_set(1, 1000);
    guest.viommus = {{"viommu-a", backends[g]}, {"viommu-b", backends[g]}};
    guest.ops.reserve(2);
    for (VIommu& v : guest.viommus) {
      guest.ops.push_back(AllocatorOps{&forward_alloc, &forward_free, &v});
      if (!guest.space->register_allocator(&guest.ops.back())) return 1;
    }
  }

  std::printf("1. guests allocate; every PASID comes from the host's one namespace\n");
  std::vector<Id> held[2];
  for (int round = 0; round < 3; ++round) {
    for (int g = 0; g < 2; ++g) {
      auto id = guests[g].space->alloc(guests[g].set, 1, 0xFFFFF, nullptr);
      check(id.has_value(), "guest alloc forwarded to the host");
      if (id) held[g].push_back(*id);
    }
  }
  for (int g = 0; g < 2; ++g) {
    std::printf("  %s holds:", guests[g].name);
    for (Id id : held[g]) std::printf(" %u", id);
    std::printf("\n");
  }
  bool disjoint = true;
  for (Id a : held[0]) {
    for (Id b : held[1]) disjoint = disjoint && a != b;
  }
  check(disjoint, "no PASID is held by both guests");
  check(host->stats().live_ids == 6, "the host space holds all six");

  std::printf("2. ownership: VM 2 cannot free or see VM 1's PASID\n");
  check(vm2_host.free(held[0][0]).error() == Errc::not_found,
        "free of another VM's PASID: not_found");
  check(host->find(vm1, held[0][0]).has_value(), "and the PASID survives");

  std::printf(
      "3. the range check: the host answers from the whole range, the guest asked [1, 2]\n");
  auto narrow = guests[0].space->alloc(guests[0].set, 1, 2, nullptr);
  check(!narrow && narrow.error() == Errc::out_of_range,
        "answer outside [1, 2] refused: out_of_range");
  check(host->set_info(vm1)->count == 3, "and handed back to the host (VM 1 still holds 3)");

  std::printf("4. quotas: VM 2 may hold 4 PASIDs\n");
  auto fourth = guests[1].space->alloc(guests[1].set, 1, 0xFFFFF, nullptr);
  auto fifth = guests[1].space->alloc(guests[1].set, 1, 0xFFFFF, nullptr);
  check(fourth.has_value(), "the fourth fits");
  check(!fifth && fifth.error() == Errc::quota_exceeded, "the fifth: quota_exceeded");

  std::printf("5. hot-unplug: guest 1 loses viommu-a, viommu-b takes over, IDs stay valid\n");
  guests[0].space->unregister_allocator(&guests[0].ops[0]);
  const unsigned b_before = guests[0].viommus[1].calls;
  auto after = guests[0].space->alloc(guests[0].set, 1, 0xFFFFF, nullptr);
  check(after.has_value() && guests[0].viommus[1].calls == b_before + 1,
        "next allocation goes through viommu-b");
  check(guests[0].space->free(guests[0].set, held[0][0]).has_value() &&
            !host->find(SetId::any(), held[0][0]),
        "an ID allocated through viommu-a is freed on the host through viommu-b");
  check(guests[0].space->stats().orphaned_ids == 0, "nothing orphaned");

  std::printf("6. FREE_PENDING: a PASID still bound to a device outlives its free\n");
  const Id bound = held[0][1];
  check(host->bind(vm1, bound, /*guest PASID=*/77).has_value(), "host binds it (guest PASID 77)");
  check(host->free(vm1, bound).has_value(), "the owner frees it");
  check(host->query(vm1, bound)->state == ioasid::IdState::free_pending, "it is FREE_PENDING");
  check(!host->alloc(vm1, bound, bound, nullptr), "and cannot be handed out again");
  check(host->unbind(vm1, bound).has_value() && !host->query(vm1, bound),
        "the last unbind releases it");

  std::printf("7. VM teardown frees everything VM 2 held\n");
  const auto before = host->stats().live_ids;
  auto gone = host->destroy_set(vm2);
  check(gone.has_value() && *gone, "VM 2's set destroyed");
  check(host->stats().live_ids == before - 4, "its four PASIDs are free again");
  check(host->check_invariants().has_value(), "host invariants hold");

  const auto st = host->stats();
  std::printf(
      "\nhost space: %llu live PASIDs, %llu allocations, %llu releases, %llu quota refusals, "
      "%llu rejected allocator answers\n",
      static_cast<unsigned long long>(st.live_ids), static_cast<unsigned long long>(st.allocs),
      static_cast<unsigned long long>(st.releases),
      static_cast<unsigned long long>(st.quota_refusals),
      static_cast<unsigned long long>(guests[0].space->stats().allocator_rejects));
  std::printf("%s\n", failures == 0 ? "demo: all checks passed" : "demo: CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}
