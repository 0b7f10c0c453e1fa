// SPDX-License-Identifier: Apache-2.0
// main.cc: the ioasid-sim command line (docs/simulator.md "Running it"): reads the scenario file,
// applies the overrides, runs it (simulator.hpp) and exits with its status.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "sim/scenario.hpp"
#include "sim/simulator.hpp"

namespace {

// The ioasidd built beside this ioasid-sim (the build tree: src/sim/ and src/daemon/; an install:
// bin/ and sbin/), else the one this binary was built with, else ioasidd from PATH.
std::string default_ioasidd() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& p :
         {self.parent_path().parent_path() / "daemon" / "ioasidd",
          self.parent_path().parent_path() / "sbin" / "ioasidd", self.parent_path() / "ioasidd"}) {
      if (fs::exists(p, ec)) return p.string();
    }
  }
#ifdef IOASID_SIM_BUILT_IOASIDD
  if (fs::exists(IOASID_SIM_BUILT_IOASIDD, ec)) return IOASID_SIM_BUILT_IOASIDD;
#endif
  return "ioasidd";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ioasid-sim: whole-host simulation of ioasid (VMs with VT-d and virtio-iommu vIOMMUs on an "
      "in-process host or a real ioasidd) with continuous invariant checking"};
  std::string file;
  ioasid::sim::SimOptions o;
  std::uint64_t seed = 0, steps = 0;
  std::uint32_t history = 0;
  std::string inject;
  bool no_report = false;
  app.add_option("scenario", file, "Scenario file (JSON; see docs/simulator.md)")->required();
  auto* seed_opt = app.add_option("--seed", seed, "Seed of the run (default: the scenario's)");
  auto* steps_opt = app.add_option(
      "--steps", steps, "Run this many steps instead; event times scale along (bounded runs)");
  steps_opt->check(CLI::Range(std::uint64_t{1}, ioasid::sim::kMaxSteps));
  app.add_flag("--json", o.json, "Print the report as one JSON document on stdout");
  app.add_option("--report-dir", o.report_dir, "Where report.md and pasids.svg go")
      ->capture_default_str();
  app.add_flag("--no-report", no_report, "Write no report files");
  app.add_option("--ioasidd", o.ioasidd, "The ioasidd to start (default: the one built beside)");
  app.add_option("--state-dir", o.state_dir,
                 "The started ioasidd's store (kept afterwards; default: a temporary directory)");
  app.add_option("--socket", o.socket, "Use the ioasidd listening on this socket (starts none)");
  app.add_flag("--in-process", o.in_process, "Run the host in-process whatever the scenario says");
  app.add_flag("--quiet,-q", o.quiet, "No progress output");
  auto* history_opt =
      app.add_option("--history", history, "Entries of history kept for a violation")
          ->check(CLI::Range(1u, ioasid::sim::kMaxHistory));
  // Fault injection is for the test suite: it makes the simulator itself misbehave.
  auto* inject_opt = app.add_option("--inject", inject, "")->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : ioasid::sim::kExitUsage;
  }
  if (*seed_opt) o.seed = seed;
  if (*steps_opt) o.steps = steps;
  if (*history_opt) o.history = history;
  if (*inject_opt) {
    o.inject = ioasid::sim::parse_fault(inject);
    if (!o.inject) {
      std::fprintf(stderr, "ioasid-sim: --inject: unknown fault \"%s\"\n", inject.c_str());
      return ioasid::sim::kExitUsage;
    }
  }
  o.write_report = !no_report;
  if (o.in_process && !o.socket.empty()) {
    std::fprintf(stderr, "ioasid-sim: --in-process and --socket exclude each other\n");
    return ioasid::sim::kExitUsage;
  }
  if (o.ioasidd.empty()) o.ioasidd = default_ioasidd();

  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "ioasid-sim: cannot read %s\n", file.c_str());
    return ioasid::sim::kExitUsage;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string error;
  auto scenario = ioasid::sim::parse_scenario(text.str(), file, &error);
  if (!scenario) {
    std::fprintf(stderr, "ioasid-sim: %s\n", error.c_str());
    return ioasid::sim::kExitUsage;
  }
  return ioasid::sim::run_simulation(std::move(*scenario), o);
}
