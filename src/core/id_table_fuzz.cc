// SPDX-License-Identifier: Apache-2.0
// id_table_fuzz.cc: differential fuzz target for the ID table's lowest-free search (as tcmalloc's
// range_tracker_fuzz): the same operations on IdTable and on a std::set oracle must agree on every
// find_free(first, last), and the bitmap summaries must stay consistent.
//
// Input: byte 0 picks the width (1-32 bits); then 9-byte records {op, a (le32), b (le32)}.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>

#include "core/internal/id_table.hpp"

namespace {

std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

// Concentrates fuzz values near interesting places (leaf and mid edges, the top) so that records
// interact instead of scattering over 4 billion IDs.
ioasid::Id shape(std::uint32_t raw, ioasid::Id max_id) {
  const std::uint32_t region = raw >> 28;
  const std::uint32_t low = raw & 0x3FF;
  std::uint64_t v;
  switch (region % 4) {
    case 0:
      v = low;
      break;  // near 0
    case 1:
      v = (std::uint64_t{raw >> 12 & 0xF} << 21) + low - 512;
      break;  // around a mid edge
    case 2:
      v = std::uint64_t{max_id} - low;
      break;  // near the top
    default:
      v = raw;
      break;  // anywhere
  }
  return static_cast<ioasid::Id>(v % (std::uint64_t{max_id} + 1));
}

ioasid::Id oracle_find(const std::set<ioasid::Id>& used, ioasid::Id first, ioasid::Id last) {
  std::uint64_t id = first;
  for (auto it = used.lower_bound(first); id <= last; ++it, ++id) {
    if (it == used.end() || *it != id) return static_cast<ioasid::Id>(id);
  }
  return ioasid::kInvalidId;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const unsigned width = 1 + data[0] % 32;
  ioasid::internal::IdTable table;
  if (!table.init(width)) return 0;
  const ioasid::Id max_id = table.max_id();
  std::set<ioasid::Id> used;
  for (std::size_t off = 1; off + 9 <= size && used.size() < 20000; off += 9) {
    const std::uint8_t op = data[off] % 4;
    ioasid::Id a = shape(le32(data + off + 1), max_id);
    ioasid::Id b = shape(le32(data + off + 5), max_id);
    if (width == 32 && (a == ioasid::kInvalidId || b == ioasid::kInvalidId)) continue;
    switch (op) {
      case 0:  // mark used
      case 1: {
        if (table.is_used(a) != (used.count(a) != 0)) std::abort();
        if (used.count(a) != 0) break;
        if (!table.ensure_leaf(a)) std::abort();
        table.mark_used(a);
        used.insert(a);
        break;
      }
      case 2: {  // free the lowest used ID >= a
        auto it = used.lower_bound(a);
        if (it == used.end()) break;
        table.mark_free(*it);
        used.erase(it);
        break;
      }
      default: {  // fill a run: used bits over [a, a + (b & 1023)] via find_free
        if (a > b) std::swap(a, b);
        const ioasid::Id got = table.find_free(a, b);
        if (got != oracle_find(used, a, b)) std::abort();
        break;
      }
    }
  }
  if (!table.check_bitmaps()) std::abort();
  return 0;
}
