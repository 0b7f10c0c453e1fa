// SPDX-License-Identifier: Apache-2.0
// rng.hpp: sim::Rng, the one pseudo-random generator of a simulation run (xoshiro256**, seeded
// through splitmix64). Every random choice of ioasid-sim (random events, which VM acts, which
// operation, which PASID) is drawn from one Rng in a fixed order, so that a seed names one run.
//
// Why not <random>: the engines are portable but the distributions are not (libstdc++ and libc++
// map the same engine output to different values); below() here is defined exactly.
// Thread-safety: none (one simulation thread).
#pragma once

#include <cstdint>

namespace ioasid::sim {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept {
    for (auto& s : s_) s = splitmix64(seed);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n), n >= 1 (Lemire's multiply-shift with rejection: exact, no modulo bias).
  std::uint64_t below(std::uint64_t n) noexcept {
    if (n <= 1) return 0;
    const std::uint64_t threshold = (0 - n) % n;
    while (true) {
      const unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
      if (static_cast<std::uint64_t>(m) >= threshold) return static_cast<std::uint64_t>(m >> 64);
    }
  }

  // True with probability num / den (den >= 1).
  bool chance(std::uint64_t num, std::uint64_t den) noexcept { return below(den) < num; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t s_[4];
};

}  // namespace ioasid::sim
