// SPDX-License-Identifier: Apache-2.0
// device_mmio.hpp: internal::DeviceMmio, the MmioAccessor that wires a VtdGuestDriver straight to
// an in-process VtdVcmdDevice (the "registers" path of tests, fuzzers and benchmarks): every
// read64 / write32 / write64 becomes one mmio_read / mmio_write of that size.
// Thread-safety: as the device. Not installed (src/ is private).
#pragma once

#include <cstdint>

#include "ioasid/vtd_device.hpp"
#include "ioasid/vtd_guest_driver.hpp"

namespace ioasid::internal {

class DeviceMmio final : public MmioAccessor {
 public:
  explicit DeviceMmio(VtdVcmdDevice& device) noexcept : device_(device) {}
  std::uint64_t read64(std::uint64_t offset) noexcept override {
    return device_.mmio_read(offset, 8);
  }
  void write32(std::uint64_t offset, std::uint32_t value) noexcept override {
    device_.mmio_write(offset, 4, value);
  }
  void write64(std::uint64_t offset, std::uint64_t value) noexcept override {
    device_.mmio_write(offset, 8, value);
  }

 private:
  VtdVcmdDevice& device_;
};

}  // namespace ioasid::internal
