// SPDX-License-Identifier: Apache-2.0
// load_test.cc: ioasid-load, the built program run as a subprocess for short bounded runs (no
// timing is judged: only that every run completes and reports sane, consistent, non-zero
// figures): --goals with every mode (echo, --no-sync, durable, pipelined) and the fsync baseline,
// a single run's table, a run against a daemon the test started (--connect) that must leave no
// session behind, the command-line errors; and the latency histogram against a sorted-vector
// oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "daemon/test_daemon.hpp"
#include "ioasid/client.hpp"
#include "load/latency_histogram.hpp"

namespace ioasid::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

ProgramResult load(std::vector<std::string> args) {
  const std::string dir = make_temp_dir();
  args.insert(args.begin(), {"--dir", dir, "--ioasidd", IOASIDD_PATH});
  ProgramResult r = run_program(IOASID_LOAD_PATH, args);
  std::error_code ec;
  // Every run's directory is removed by the program itself: only the parent remains.
  EXPECT_TRUE(std::filesystem::is_empty(dir, ec)) << dir;
  std::filesystem::remove_all(dir, ec);
  return r;
}

// The checks every run's figures must pass, whatever the machine's speed.
void expect_sane_run(const json& run) {
  SCOPED_TRACE(run["name"].get<std::string>() + " x" + std::to_string(run["clients"].get<int>()));
  const auto pairs = run["pairs"].get<std::uint64_t>();
  const auto requests = run["requests"].get<std::uint64_t>();
  EXPECT_GT(pairs, 0u);
  EXPECT_GT(run["seconds"].get<double>(), 0.0);
  EXPECT_GT(run["allocs_per_second"].get<double>(), 0.0);
  EXPECT_NEAR(run["requests_per_second"].get<double>(),
              static_cast<double>(requests) / run["seconds"].get<double>(), 1e-6 * requests);
  if (run["client"] == "pipelined") {
    // A pair counts when its FREE is answered: at either end of the measured period, at most
    // one request per slot in flight belongs to a pair counted on the other side of the boundary.
    const auto slots = run["clients"].get<std::uint64_t>() * run["depth"].get<std::uint64_t>();
    EXPECT_LE(requests, 2 * pairs + slots);
    EXPECT_LE(2 * pairs, requests + slots);
  } else {
    EXPECT_EQ(requests, 2 * pairs);
    EXPECT_EQ(run["latency_us"]["pair"]["count"], pairs);
  }
  const json& l = run["latency_us"]["request"];
  EXPECT_EQ(l["count"], requests);
  EXPECT_GT(l["p50"].get<double>(), 0.0);
  EXPECT_LE(l["p50"].get<double>(), l["p90"].get<double>());
  EXPECT_LE(l["p90"].get<double>(), l["p99"].get<double>());
  EXPECT_LE(l["p99"].get<double>(), l["p99.9"].get<double>());
  EXPECT_LE(l["p99.9"].get<double>(), l["max"].get<double>());
  if (run["mode"] == "echo") {
    EXPECT_FALSE(run.contains("journal"));
  } else {
    EXPECT_EQ(run["latency_us"]["alloc"]["count"].get<std::uint64_t>() +
                  run["latency_us"]["free"]["count"].get<std::uint64_t>(),
              requests);
    // The daemon's own counters: at least the measured requests, at least one per commit.
    ASSERT_TRUE(run.contains("journal"));
    EXPECT_GE(run["journal"]["requests"].get<std::uint64_t>(), requests);
    EXPECT_GT(run["journal"]["commits"].get<std::uint64_t>(), 0u);
    EXPECT_GE(run["journal"]["requests_per_commit"].get<double>(), 1.0);
  }
}

TEST(LoadGenerator, GoalsRunEveryModeAndTheBaseline) {
  const ProgramResult r =
      load({"--goals", "--duration", "0.2", "--warmup", "0.05", "--goal-clients", "3",
            "--goal-pipeline", "2", "--goal-threads", "3", "--json"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_GT(j["machine"]["cpus"].get<int>(), 0);
  EXPECT_FALSE(j["machine"]["filesystem"].get<std::string>().empty());
  const json& runs = j["runs"];
  ASSERT_EQ(runs.size(), 6u);
  // mode, clients, requests in flight per client, threads per client
  const std::vector<std::tuple<std::string, int, int, int>> want = {
      {"echo", 1, 1, 1},    {"no-sync", 1, 1, 1}, {"durable", 1, 1, 1},
      {"durable", 3, 1, 1}, {"durable", 3, 3, 3}, {"durable", 3, 2, 1}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(runs[i]["mode"], std::get<0>(want[i]));
    EXPECT_EQ(runs[i]["clients"], std::get<1>(want[i]));
    EXPECT_EQ(runs[i]["depth"], std::get<2>(want[i]));
    EXPECT_EQ(runs[i]["threads"], std::get<3>(want[i]));
    expect_sane_run(runs[i]);
  }
  EXPECT_EQ(runs[5]["client"], "pipelined");
  EXPECT_EQ(runs[4]["client"], "library");
  EXPECT_EQ(runs[3]["client"], "library");
  ASSERT_EQ(j["fsync_baseline"].size(), 3u);
  for (const json& f : j["fsync_baseline"]) {
    EXPECT_GE(f["operations"].get<std::uint64_t>(), 20u) << f["method"];
    EXPECT_GT(f["per_second"].get<double>(), 0.0) << f["method"];
    // Measured before and after the durable runs; the faster one is reported.
    ASSERT_EQ(f["measured_per_second"].size(), 2u);
    EXPECT_DOUBLE_EQ(f["per_second"].get<double>(),
                     std::max(f["measured_per_second"][0].get<double>(),
                              f["measured_per_second"][1].get<double>()));
  }
  ASSERT_EQ(j["goals"].size(), 4u);
  // The durable run with one request in flight per client is reported, not judged: 3 clients
  // cannot make a commit of more than 3 requests. The other three are judged.
  std::vector<bool> judged;
  for (const json& g : j["goals"]) judged.push_back(g["checked"].get<bool>());
  EXPECT_EQ(judged, (std::vector<bool>{true, false, true, true}));
  EXPECT_NE(j["goals"][1]["not_checked_because"].get<std::string>().find("at most 3 requests"),
            std::string::npos);
  for (const json& g : j["goals"]) {
    EXPECT_GT(g["value"].get<double>(), 0.0) << g["name"];
    EXPECT_EQ(g["met"].get<bool>(), g["at_most"].get<bool>()
                                        ? g["value"].get<double>() <= g["limit"].get<double>()
                                        : g["value"].get<double>() >= g["limit"].get<double>());
  }
}

TEST(LoadGenerator, SingleRunTable) {
  const ProgramResult r =
      load({"--no-sync", "--clients", "2", "--duration", "0.2", "--warmup", "0.05"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_NE(r.out.find("\nno-sync "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("allocs/s"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("goals:"), std::string::npos) << r.out;  // no baseline: nothing to check
  const ProgramResult e = load({"--echo", "--duration", "0.1", "--warmup", "0", "--json"});
  ASSERT_EQ(e.exit_code(), 0) << e.err;
  expect_sane_run(json::parse(e.out)["runs"][0]);
  EXPECT_TRUE(json::parse(e.out)["machine"]["server_cpu"].is_null());
  if (std::thread::hardware_concurrency() >= 2) {
    // --pin: the server on the last CPU, the clients on the others.
    const ProgramResult p =
        load({"--no-sync", "--pin", "--clients", "2", "--duration", "0.1", "--json"});
    ASSERT_EQ(p.exit_code(), 0) << p.err;
    const json j = json::parse(p.out);
    expect_sane_run(j["runs"][0]);
    const int server = j["machine"]["server_cpu"].get<int>();
    ASSERT_FALSE(j["machine"]["client_cpus"].empty());
    for (const json& c : j["machine"]["client_cpus"]) EXPECT_LT(c.get<int>(), server);
  }
}

TEST(LoadGenerator, AgainstARunningDaemonLeavesNoSessionBehind) {
  DaemonProcess d;
  ASSERT_TRUE(d.start({"--no-sync"}));
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--pipeline", "3"}}) {
    std::vector<std::string> args = {"--connect", d.socket(), "--clients", "2",     "--duration",
                                     "0.2",       "--warmup", "0.05",      "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProgramResult r = load(args);
    ASSERT_EQ(r.exit_code(), 0) << r.err;
    const json run = json::parse(r.out)["runs"][0];
    EXPECT_EQ(run["mode"], "external");
    expect_sane_run(run);
  }
  auto admin = DaemonAdmin::open(d.socket(), 20s);
  ASSERT_TRUE(admin);
  const DaemonStats s = (*admin)->stats().value();
  EXPECT_EQ(s.sessions, 0u);  // every client closed its session
  EXPECT_EQ(s.space.live_ids, 0u);
  EXPECT_EQ(s.space.allocs, s.space.releases);
  EXPECT_GT(s.space.allocs, 0u);
  EXPECT_EQ(s.error_replies, 0u);
}

TEST(LoadGenerator, CommandLineAndStartupErrors) {
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--clients", "0"},
                                              {"--no-sync", "--echo"},
                                              {"--connect", "/x", "--no-sync"},
                                              {"--connect", "/x", "--goals"},
                                              {"--duration", "0"},
                                              {"--pipeline", "33"},
                                              {"--pipeline", "4", "--threads", "2"},
                                              {"--echo", "--threads", "2"},
                                              {"--threads", "0"},
                                              {"--frobnicate"}}) {
    const ProgramResult r = run_program(IOASID_LOAD_PATH, bad);
    EXPECT_EQ(r.exit_code(), 2) << bad[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("ioasid-load: ", 0), 0u) << r.err;
  }
  const std::string dir = make_temp_dir();
  ProgramResult r = run_program(
      IOASID_LOAD_PATH, {"--connect", dir + "/none.sock", "--duration", "0.1", "--warmup", "0"});
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("cannot connect to " + dir + "/none.sock"), std::string::npos) << r.err;
  r = run_program(IOASID_LOAD_PATH,
                  {"--dir", dir, "--ioasidd", dir + "/no-such-daemon", "--duration", "0.1"});
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("no-such-daemon"), std::string::npos) << r.err;
  r = run_program(IOASID_LOAD_PATH, {"--dir", dir + "/missing", "--duration", "0.1"});
  EXPECT_EQ(r.exit_code(), 2);
  std::filesystem::remove_all(dir);
}

// ---- the latency histogram ------------------------------------------------------------------

using load::LatencyHistogram;

TEST(LatencyHistogram, BucketsCoverEveryValueWithinTheirPrecision) {
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> values = {
      0, 1, 127, 128, 129, 255, 256, 1000, 123456789, ~std::uint64_t{0}, std::uint64_t{1} << 63};
  for (int i = 0; i < 100000; ++i) values.push_back(rng() >> (rng() % 64));
  for (std::uint64_t v : values) {
    const std::size_t i = LatencyHistogram::index(v);
    ASSERT_LT(i, std::size_t{LatencyHistogram::kPowers} * LatencyHistogram::kSub) << v;
    const std::uint64_t hi = LatencyHistogram::upper_edge(i);
    ASSERT_LE(v, hi) << v;
    if (i > 0) {
      ASSERT_GT(v, LatencyHistogram::upper_edge(i - 1)) << v;
    }
    // Within 1/128 of the value.
    ASSERT_LE(static_cast<double>(hi - v), static_cast<double>(v) / 128.0 + 1.0) << v;
  }
  for (std::size_t i = 1; i < std::size_t{LatencyHistogram::kPowers} * LatencyHistogram::kSub;
       ++i) {
    ASSERT_GT(LatencyHistogram::upper_edge(i), LatencyHistogram::upper_edge(i - 1)) << i;
    ASSERT_EQ(LatencyHistogram::index(LatencyHistogram::upper_edge(i)), i) << i;
  }
}

TEST(LatencyHistogram, QuantilesAgainstASortedOracle) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> latency(10.0, 1.0);  // ~22 us median, long tail
  LatencyHistogram a, b;
  std::vector<std::uint64_t> all;
  for (int i = 0; i < 200000; ++i) {
    const auto v = static_cast<std::uint64_t>(latency(rng));
    (i % 2 ? a : b).record(v);
    all.push_back(v);
  }
  a.merge(b);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(a.count(), all.size());
  EXPECT_EQ(a.min(), all.front());
  EXPECT_EQ(a.max(), all.back());
  for (double q : {0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const std::size_t rank = std::max<std::size_t>(
        1, static_cast<std::size_t>(std::ceil(q * static_cast<double>(all.size()))));
    const std::uint64_t truth = all[rank - 1];
    const std::uint64_t got = a.quantile(q);
    EXPECT_GE(got, truth) << q;  // the bucket's upper edge: never below
    EXPECT_LE(static_cast<double>(got), static_cast<double>(truth) * (1 + 1.0 / 128) + 1) << q;
  }
  EXPECT_EQ(LatencyHistogram().quantile(0.5), 0u);
}

}  // namespace
}  // namespace ioasid::testing
