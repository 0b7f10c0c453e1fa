// SPDX-License-Identifier: Apache-2.0
// replay_main.cc: runs a libFuzzer target without libFuzzer, so that every build (g++ included)
// exercises it in ctest: each file of the corpus directories given on the command line, then
// IOASID_REPLAY_INPUTS (default 500) deterministic pseudo-random inputs of 0-4096 bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (!std::filesystem::is_directory(argv[i], ec)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i])) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++files;
    }
  }
  const char* env = std::getenv("IOASID_REPLAY_INPUTS");
  const long inputs = env != nullptr ? std::strtol(env, nullptr, 10) : 500;
  std::mt19937_64 rng(0x10a51d);
  std::vector<std::uint8_t> buf;
  for (long n = 0; n < inputs; ++n) {
    buf.resize(rng() % 4097);
    for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  std::printf("replayed %zu corpus files and %ld random inputs\n", files, inputs);
  return 0;
}
