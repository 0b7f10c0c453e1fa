// SPDX-License-Identifier: Apache-2.0
// le.hpp: little-endian wire integers (le16, le32, le64) and bounds-checked helpers to read and
// write them, and whole wire structs, from byte spans.
//
// Every multi-byte field of a virtio structure is little endian (virtio 1.2 §1.4 "Structure
// Specifications": le16/le32/le64). A wire field declared le32 stores four bytes, least
// significant first, whatever the host order; the value is reached only through load()/store(),
// so a forgotten byte swap does not compile (the crosvm Le32 idea, ECOSYSTEM.md "Wire and register
// structs").
//
// Synopsis
//   wire::le32 f{};                          // zero
//   f.store(0x12345678);                     // bytes 78 56 34 12
//   std::uint32_t v = f.load();              // 0x12345678
//   auto x = wire::read_le<std::uint64_t>(bytes, 8);      // std::optional, nullopt if short
//   bool ok = wire::write_le<std::uint16_t>(out, 2, 7);   // false if out is too short
//   auto req = wire::read_struct<SomeWireStruct>(bytes);  // std::optional<SomeWireStruct>
//
// Invariants: sizeof(leN) == N/8, alignof(leN) == 1, trivially copyable, no padding, no implicit
// conversion to or from integers; a default-constructed value is zero.
// Thread-safety: plain values. Not here: big-endian types (nothing in this project needs them).
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

namespace ioasid::wire {

// A little-endian unsigned integer of sizeof(T) bytes stored as bytes (alignment 1).
template <std::unsigned_integral T>
class Le {
 public:
  using value_type = T;
  static constexpr std::size_t kSize = sizeof(T);

  constexpr Le() noexcept = default;
  constexpr explicit Le(T v) noexcept { store(v); }

  // The value, converted from little endian.
  [[nodiscard]] constexpr T load() const noexcept {
    T v = 0;
    for (std::size_t i = 0; i < kSize; ++i) {
      v = static_cast<T>(v | static_cast<T>(static_cast<T>(bytes_[i]) << (8 * i)));
    }
    return v;
  }

  // Stores v, least significant byte first.
  constexpr void store(T v) noexcept {
    for (std::size_t i = 0; i < kSize; ++i) {
      bytes_[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
    }
  }

  // The raw wire bytes.
  [[nodiscard]] constexpr const std::array<std::byte, kSize>& bytes() const noexcept {
    return bytes_;
  }

  friend constexpr bool operator==(const Le&, const Le&) = default;

 private:
  std::array<std::byte, kSize> bytes_{};
};

using le16 = Le<std::uint16_t>;
using le32 = Le<std::uint32_t>;
using le64 = Le<std::uint64_t>;

static_assert(sizeof(le16) == 2 && alignof(le16) == 1);
static_assert(sizeof(le32) == 4 && alignof(le32) == 1);
static_assert(sizeof(le64) == 8 && alignof(le64) == 1);
static_assert(std::is_trivially_copyable_v<le16> && std::is_trivially_copyable_v<le32> &&
              std::is_trivially_copyable_v<le64>);
static_assert(std::is_standard_layout_v<le64>);
static_assert(std::has_unique_object_representations_v<le64>);
static_assert(!std::is_convertible_v<std::uint32_t, le32> &&
              !std::is_convertible_v<le32, std::uint32_t>);
static_assert(le32(0x12345678u).bytes()[0] == std::byte{0x78});
static_assert(le64(0x0102030405060708u).load() == 0x0102030405060708u);

// The unsigned integer of sizeof(T) bytes at bytes[offset], little endian; nullopt when the span
// is too short (offset + sizeof(T) > bytes.size(), overflow-safe).
template <std::unsigned_integral T>
[[nodiscard]] constexpr std::optional<T> read_le(std::span<const std::byte> bytes,
                                                 std::size_t offset) noexcept {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return std::nullopt;
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    v = static_cast<T>(v | static_cast<T>(static_cast<T>(bytes[offset + i]) << (8 * i)));
  }
  return v;
}

// Writes v at bytes[offset], little endian. Returns false (and writes nothing) when the span is
// too short.
template <std::unsigned_integral T>
[[nodiscard]] constexpr bool write_le(std::span<std::byte> bytes, std::size_t offset,
                                      T v) noexcept {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    bytes[offset + i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
  }
  return true;
}

// A wire struct: trivially copyable, alignment 1 (only le*, u8 and arrays/structs of them), so any
// byte position holds one and memcpy is its only (de)serialisation.
template <class S>
concept WireStruct = std::is_trivially_copyable_v<S> && alignof(S) == 1;

// A copy of the S at the start of bytes; nullopt when fewer than sizeof(S) bytes are given.
template <WireStruct S>
[[nodiscard]] std::optional<S> read_struct(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < sizeof(S)) return std::nullopt;
  S s;
  std::memcpy(&s, bytes.data(), sizeof(S));
  return s;
}

// Copies s to the start of bytes. Returns false (and writes nothing) when it does not fit.
template <WireStruct S>
[[nodiscard]] bool write_struct(std::span<std::byte> bytes, const S& s) noexcept {
  if (bytes.size() < sizeof(S)) return false;
  std::memcpy(bytes.data(), &s, sizeof(S));
  return true;
}

// The bytes of a wire struct, as a read-only span.
template <WireStruct S>
[[nodiscard]] std::span<const std::byte, sizeof(S)> as_bytes(const S& s) noexcept {
  return std::span<const std::byte, sizeof(S)>(reinterpret_cast<const std::byte*>(&s), sizeof(S));
}

// True when every byte of a reserved field is zero.
template <std::size_t N>
[[nodiscard]] constexpr bool all_zero(const std::uint8_t (&reserved)[N]) noexcept {
  return std::all_of(reserved, reserved + N, [](std::uint8_t b) { return b == 0; });
}

}  // namespace ioasid::wire
