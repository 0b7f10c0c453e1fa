// SPDX-License-Identifier: Apache-2.0
// vtd_vcmd_fuzz.cc: libFuzzer target for VtdVcmdDevice (VT-d 3.0 §10.4.43-45 and 3.3
// §10.4.43-46): arbitrary sequences of MMIO accesses (offset, size, value), decoded from the fuzz
// bytes, against two device models (one per layout) of one VM on a small host space, interleaved
// with another VM allocating and freeing on the same host. Guest input is hostile: the model must
// never crash, and afterwards
//   - the host space's invariants hold (Space::check_invariants);
//   - the VM's set holds exactly the PASIDs the devices handed out minus those they freed;
//   - every command counted ends in exactly one outcome counter;
//   - VCRSP has IP clear (immediate mode) and no reserved bit set.
// Input: byte 0 = VM quota; then 11-byte records {control, offset lo, offset hi, value[8]}.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/vtd_device.hpp"

namespace {

using namespace ioasid;  // NOLINT(build/namespaces)

// Offsets worth hitting: every register and half of both layouts, and their neighbours.
constexpr std::uint64_t kOffsets[] = {0x08,  0x0C,  0x10,  0x14,  0xE00, 0xE04, 0xE08,
                                      0xE0C, 0xE10, 0xE14, 0xE18, 0xE20, 0xE24, 0xE28,
                                      0xE30, 0xE34, 0xE38, 0x00,  0x18,  0xF00};
constexpr unsigned kSizes[] = {8, 4, 8, 4, 8, 1, 2, 16};

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "vtd_vcmd_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  auto host = Space::create({.width_bits = 6}).value();  // PASIDs [1, 63]
  const std::uint32_t quota = 1 + data[0] % 16;
  const SetId vm = host->create_set(1, quota).value();
  const SetId other = host->create_set(2, 16).value();
  LocalBackend backend(*host, vm);
  std::unique_ptr<VtdVcmdDevice> devs[2] = {
      VtdVcmdDevice::create(backend, {.layout = wire::vtd::VcmdLayout::legacy, .pasid_max = 63})
          .value(),
      VtdVcmdDevice::create(backend, {.layout = wire::vtd::VcmdLayout::rev3_3, .pasid_max = 63})
          .value()};

  for (std::size_t pos = 1; pos + 11 <= size; pos += 11) {
    const std::uint8_t control = data[pos];
    std::uint64_t value = 0;
    std::memcpy(&value, data + pos + 3, sizeof(value));
    if (control == 0xFF) {
      // The other VM on the same host: alloc, or free the PASID named by the value.
      if (value & 1) {
        (void)host->alloc(other, 1, host->max_id(), nullptr);
      } else {
        (void)host->free(other, static_cast<Id>(value >> 1) & host->max_id());
      }
      continue;
    }
    VtdVcmdDevice& dev = *devs[control & 1];
    const bool write = (control & 2) != 0;
    const unsigned sz = kSizes[(control >> 2) & 7];
    std::uint64_t offset;
    if ((control & 0x20) == 0) {
      offset = kOffsets[data[pos + 1] % (sizeof(kOffsets) / sizeof(kOffsets[0]))];
    } else {
      offset = std::uint64_t{data[pos + 1]} | (std::uint64_t{data[pos + 2]} << 8);
    }
    if ((control & 0xC0) == 0x40) {
      // Steer the value towards real commands: ALLOC/FREE/undefined with a small operand.
      value = wire::vtd::encode_vcmd(dev.layout(), static_cast<std::uint8_t>(value & 3),
                                     static_cast<std::uint32_t>(value >> 8) & 0x3F);
    }
    if (write) {
      dev.mmio_write(offset, sz, value);
    } else {
      (void)dev.mmio_read(offset, sz);
    }
  }

  check(bool(host->check_invariants()), "host invariants");
  std::uint64_t allocs = 0, frees = 0;
  for (auto& d : devs) {
    const VtdVcmdStats s = d->stats();
    check(s.commands ==
              s.allocs + s.alloc_no_pasid + s.frees + s.free_invalid_pasid + s.undefined_cmds,
          "every command has one outcome");
    allocs += s.allocs;
    frees += s.frees;
    const auto& l = d->layout();
    const std::uint64_t rsp = d->mmio_read(l.vcrsp_offset, 8);
    check((rsp & wire::vtd::kVcrspIp) == 0, "IP clear after an immediate command");
    check(wire::vtd::decode_vcrsp(l, rsp).reserved == 0, "no reserved VCRSP bit");
  }
  const SetInfo info = host->set_info(vm).value();
  check(info.count == allocs - frees, "VM set == device allocs - frees");
  check(info.count <= quota, "quota");
  return 0;
}
