// SPDX-License-Identifier: Apache-2.0
// sim_run_test.cc: the real ioasid-sim binary (IOASID_SIM_PATH) run as a child process, in-process
// and against real ioasidd daemons it starts (IOASIDD_PATH): every shipped scenario in bounded
// form; every fault-injection hook caught by its invariant, with the event history printed and a
// non-zero exit; two runs of one seed giving identical reports; the JSON document; command-line
// and scenario errors; an ioasidd the simulator did not start (--socket); progress as a bar on a
// terminal and as lines otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "sim/daemon_process.hpp"

namespace ioasid::sim {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct RunResult {
  int status = -1;  // exit status, or -1 when killed
  std::string out;
  std::string err;
};

std::string scenario(const std::string& name) {
  return (fs::path(IOASID_SOURCE_DIR) / "scenarios" / (name + ".json")).string();
}

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "ioasid-sim-test-XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs ioasid-sim with args; stdout and stderr captured apart.
RunResult run_sim(std::vector<std::string> args) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) std::abort();
  args.insert(args.begin(), IOASID_SIM_PATH);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  RunResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<std::string> daemon_args(const TempDir& dir) {
  return {"--ioasidd",      IOASIDD_PATH,   "--state-dir",
          dir.sub("state"), "--report-dir", dir.sub("report")};
}

// ---- shipped scenarios, bounded --------------------------------------------------------------

struct Shipped {
  const char* name;
  const char* steps;  // "" = as shipped
  std::size_t vms;
};

void PrintTo(const Shipped& s, std::ostream* os) { *os << s.name; }

class ShippedScenario : public ::testing::TestWithParam<Shipped> {};

TEST_P(ShippedScenario, RunsWithEveryInvariantHolding) {
  const Shipped& p = GetParam();
  TempDir dir;
  std::vector<std::string> args = daemon_args(dir);
  args.insert(args.begin(), scenario(p.name));
  if (*p.steps != '\0') {
    args.push_back("--steps");
    args.push_back(p.steps);
  }
  const RunResult r = run_sim(args);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("result: every invariant held"), std::string::npos) << r.out;
  // Not a terminal: plain progress lines.
  EXPECT_NE(r.err.find("ioasid-sim: 100% (step"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
  const std::string md = read_file(dir.sub("report/report.md"));
  EXPECT_NE(md.find("](pasids.svg)"), std::string::npos);
  EXPECT_NE(md.find("every invariant held"), std::string::npos);
  const std::string svg = read_file(dir.sub("report/pasids.svg"));
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  std::size_t polylines = 0;
  for (std::size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1)) {
    ++polylines;
  }
  EXPECT_EQ(polylines, p.vms);
  EXPECT_NE(svg.rfind("</svg>"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Bounded, ShippedScenario,
                         ::testing::Values(Shipped{"default", "", 4},
                                           Shipped{"in-process-stress", "30000", 8},
                                           Shipped{"hot-unplug-chain", "3000", 2},
                                           Shipped{"crash-past-grace", "", 3},
                                           Shipped{"soak", "3000", 12}),
                         [](const auto& param_info) {
                           std::string n = param_info.param.name;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// ---- fault injection: each hook must trip its invariant --------------------------------------

struct FaultCase {
  const char* fault;
  const char* invariant;
  const char* scenario;
  const char* steps;
};

void PrintTo(const FaultCase& f, std::ostream* os) { *os << f.fault << " on " << f.scenario; }

class FaultInjection : public ::testing::TestWithParam<FaultCase> {};

TEST_P(FaultInjection, IsCaughtByItsInvariant) {
  const FaultCase& p = GetParam();
  TempDir dir;
  std::vector<std::string> args = daemon_args(dir);
  args.insert(args.begin(), scenario(p.scenario));
  for (const char* a : {"--steps", p.steps, "--inject", p.fault, "--history", "400"}) {
    args.push_back(a);
  }
  const RunResult r = run_sim(args);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(std::string("INVARIANT VIOLATED: ") + p.invariant), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("event history (oldest first):"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::string("FAULT INJECTED (") + p.fault + ")"), std::string::npos)
      << r.err;
  // At most --history entries, each with its step (the fault is among them: a scan comes at
  // least every check_every steps).
  const std::string history = r.err.substr(r.err.find("event history"));
  std::size_t lines = 0;
  for (std::size_t at = history.find("\n  step "); at != std::string::npos;
       at = history.find("\n  step ", at + 1)) {
    ++lines;
  }
  EXPECT_GE(lines, 1u);
  EXPECT_LE(lines, 400u);
  EXPECT_NE(r.out.find(std::string("INVARIANT VIOLATED at step")), std::string::npos) << r.out;
  const std::string md = read_file(dir.sub("report/report.md"));
  EXPECT_NE(md.find(std::string("Fault injected: `") + p.fault + "`"), std::string::npos);
  EXPECT_NE(md.find("Event history that led there"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Hooks, FaultInjection,
    ::testing::Values(
        // Against a real ioasidd (the default scenario has every kind of event they need).
        FaultCase{"double_owner", "single_owner", "default", "1200"},
        FaultCase{"keep_freed", "guest_pasid_owned", "default", "1200"},
        FaultCase{"quota_backdoor", "quota", "default", "1200"},
        FaultCase{"skip_teardown", "no_leak", "default", "1200"},
        FaultCase{"stale_driver", "allocator_after_unplug", "default", "1200"},
        FaultCase{"alter_record", "durable_ack", "default", "1200"},
        // And in-process.
        FaultCase{"double_owner", "single_owner", "in-process-stress", "8000"},
        FaultCase{"keep_freed", "guest_pasid_owned", "in-process-stress", "8000"},
        FaultCase{"quota_backdoor", "quota", "in-process-stress", "8000"},
        FaultCase{"skip_teardown", "no_leak", "in-process-stress", "8000"},
        FaultCase{"stale_driver", "allocator_after_unplug", "in-process-stress", "8000"}),
    [](const auto& param_info) {
      std::string n = std::string(param_info.param.fault) + "_" + param_info.param.scenario;
      for (char& c : n) c = c == '-' ? '_' : c;
      return n;
    });

// ---- determinism -----------------------------------------------------------------------------

struct Outputs {
  json doc;
  std::string md;
  std::string svg;
};

Outputs run_for_determinism(const std::string& seed) {
  TempDir dir;
  const RunResult r = run_sim({scenario("in-process-stress"), "--steps", "20000", "--seed", seed,
                               "--json", "-q", "--report-dir", dir.sub("report")});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // --quiet
  Outputs o;
  o.doc = json::parse(r.out);
  o.doc.erase("timing");
  o.doc.erase("report");  // the directory differs
  // The markdown without its timing line.
  std::istringstream md(read_file(dir.sub("report/report.md")));
  for (std::string line; std::getline(md, line);) {
    if (line.rfind("Wall time", 0) != 0) o.md += line + "\n";
  }
  o.svg = read_file(dir.sub("report/pasids.svg"));
  return o;
}

TEST(Determinism, OneSeedOneReport) {
  const Outputs a = run_for_determinism("11");
  const Outputs b = run_for_determinism("11");
  EXPECT_EQ(a.doc, b.doc);
  EXPECT_EQ(a.md, b.md);
  EXPECT_EQ(a.svg, b.svg);
  EXPECT_EQ(a.doc["seed"], 11);
  EXPECT_GT(a.doc["operations"].get<std::uint64_t>(), 10000u);
  const Outputs c = run_for_determinism("12");
  EXPECT_NE(a.doc["vms"], c.doc["vms"]);
  EXPECT_NE(a.svg, c.svg);
}

// With ioasidd the same operations get the same answers: only timing (and the state directory,
// part of the host's description) differ.
TEST(Determinism, DaemonModeDiffersOnlyInTiming) {
  json docs[2];
  for (json& doc : docs) {
    TempDir dir;
    std::vector<std::string> args = daemon_args(dir);
    args.insert(args.begin(), scenario("default"));
    for (const char* a : {"--steps", "1500", "--json", "-q"}) args.push_back(a);
    const RunResult r = run_sim(args);
    ASSERT_EQ(r.status, 0) << r.err;
    doc = json::parse(r.out);
    for (const char* k : {"timing", "report", "host"}) doc.erase(k);
  }
  EXPECT_EQ(docs[0], docs[1]);
  EXPECT_EQ(docs[0]["daemon_restarts"], 1);
}

// ---- the JSON document -----------------------------------------------------------------------

TEST(JsonReport, DescribesTheRun) {
  TempDir dir;
  std::vector<std::string> args = daemon_args(dir);
  args.insert(args.begin(), scenario("default"));
  for (const char* a : {"--steps", "800", "--json"}) args.push_back(a);
  const RunResult r = run_sim(args);
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);  // stdout is exactly one JSON document
  EXPECT_EQ(j["result"], "ok");
  EXPECT_EQ(j["mode"], "ioasidd");
  EXPECT_EQ(j["steps"], 800);
  EXPECT_EQ(j["steps_done"], 800);
  EXPECT_EQ(j["events"]["daemon_restart"], 1);
  EXPECT_EQ(j["events"]["hot_unplug"], 1);
  EXPECT_EQ(j["events"]["vmm_crash"], 1);
  EXPECT_EQ(j["daemon_restarts"], 1);
  EXPECT_EQ(j["checks"]["after_restart"], 1);
  EXPECT_GT(j["timing"]["operations_per_second"].get<double>(), 0.0);
  ASSERT_EQ(j["vms"].size(), 4u);
  const std::size_t samples = j["sample_steps"].size();
  EXPECT_GT(samples, 100u);
  std::uint64_t ops = 0;
  for (const json& vm : j["vms"]) {
    EXPECT_EQ(vm["held"].size(), samples);
    EXPECT_LE(vm["peak"].get<std::uint64_t>(), vm["quota"].get<std::uint64_t>());
    for (const auto& [op, n] : vm["operations"].items()) ops += n.get<std::uint64_t>();
  }
  EXPECT_EQ(j["operations"].get<std::uint64_t>(), ops);
  EXPECT_EQ(j["vms"][2]["vmm_restarts_resumed"], 1);
  EXPECT_EQ(j["report"]["svg"], dir.sub("report") + "/pasids.svg");
}

// ---- errors ----------------------------------------------------------------------------------

TEST(CommandLine, ErrorsExitWithStatus2AndSayWhy) {
  TempDir dir;
  const std::string bad = dir.sub("bad.json");
  std::ofstream(bad) << R"({"name": "x", "steps": 10, "host": {"mode": "in-process"},
    "vms": [{"name": "a", "token": 1, "quota": 2,
             "viommus": [{"name": "v", "type": "vtd", "layout": "v4"}]}]})";
  RunResult r = run_sim({bad, "-q"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "ioasid-sim: " + bad +
                       ": vms[0].viommus[0].layout: expected \"original\" or \"v3.3\", got the "
                       "string \"v4\"\n");
  EXPECT_TRUE(r.out.empty());

  const std::string unplug = dir.sub("unplug.json");
  std::ofstream(unplug) << R"({"name": "x", "steps": 10, "host": {"mode": "in-process"},
    "vms": [{"name": "a", "token": 1, "quota": 2, "viommus": [{"name": "v", "type": "vtd"}]}],
    "events": [{"at": 2, "type": "hot_plug", "vm": "a", "viommu": "v"}]})";
  r = run_sim({unplug, "-q"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("events[0]: at step 2, vIOMMU \"v\" of VM \"a\" is plugged already"),
            std::string::npos)
      << r.err;

  r = run_sim({dir.sub("missing.json")});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos);
  r = run_sim({scenario("default"), "--inject", "everything"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--inject: unknown fault \"everything\""), std::string::npos);
  r = run_sim({scenario("default"), "--in-process"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--in-process: the scenario has daemon_restart events"), std::string::npos);
  r = run_sim({scenario("crash-past-grace"), "--inject", "stale_driver", "--in-process"});
  EXPECT_EQ(r.status, 2);
  r = run_sim({scenario("hot-unplug-chain"), "--in-process", "--inject", "alter_record"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("alter_record needs a daemon_restart event"), std::string::npos);
  r = run_sim({scenario("default"), "--steps", "0"});
  EXPECT_EQ(r.status, 2);
  r = run_sim({scenario("default"), "--no-such-option"});
  EXPECT_EQ(r.status, 2);
  r = run_sim({});
  EXPECT_EQ(r.status, 2);
  r = run_sim({scenario("default"), "--ioasidd", dir.sub("no-ioasidd"), "--state-dir",
               dir.sub("state"), "-q", "--no-report"});
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.err.find("cannot run ioasidd at " + dir.sub("no-ioasidd")), std::string::npos);
}

// ---- a daemon the simulator did not start ----------------------------------------------------

TEST(ExistingDaemon, SocketModeChecksItButCannotRestartIt) {
  TempDir dir;
  fs::create_directories(dir.sub("state"));
  DaemonProcess d(IOASIDD_PATH, {"--socket", dir.sub("sock"), "--state-dir", dir.sub("state")},
                  dir.sub("ioasidd.log"));
  ASSERT_EQ(d.start(), "");
  RunResult r = run_sim({scenario("hot-unplug-chain"), "--socket", dir.sub("sock"), "--steps",
                         "1500", "-q", "--report-dir", dir.sub("report")});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("host: ioasidd at " + dir.sub("sock")), std::string::npos) << r.out;
  r = run_sim({scenario("default"), "--socket", dir.sub("sock"), "-q", "--no-report"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("daemon_restart events need a daemon the simulator starts"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(d.stop(), "");  // the simulator left it running and healthy
}

// ---- progress --------------------------------------------------------------------------------

TEST(Progress, ABarOnATerminal) {
  TempDir dir;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<std::string> args = {IOASID_SIM_PATH, scenario("in-process-stress"),
                                     "--steps",       "20000",
                                     "--report-dir",  dir.sub("report")};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(master, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("\r["), std::string::npos) << out;
  EXPECT_NE(out.find("] 100%"), std::string::npos) << out;
  EXPECT_EQ(out.find("ioasid-sim:  10% (step"), std::string::npos);  // no plain lines
}

TEST(Progress, NothingWhenQuiet) {
  TempDir dir;
  const RunResult r = run_sim({scenario("in-process-stress"), "--steps", "5000", "--quiet",
                               "--report-dir", dir.sub("report")});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("every invariant held"), std::string::npos);
}

}  // namespace
}  // namespace ioasid::sim
