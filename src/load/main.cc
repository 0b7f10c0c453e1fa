// SPDX-License-Identifier: Apache-2.0
// main.cc: ioasid-load, the load generator for ioasidd (issue 5 "Performance"): N concurrent
// clients, each with its own VM session, doing alloc+free round trips against a real daemon it
// starts (or one that runs: --connect), reporting allocs/s, requests/s and latency percentiles as
// a table or JSON; durable (the default) or --no-sync; --echo, a raw echo round trip over the
// same socket type as the floor; the cost of one durable write per request on the same file
// system (--fsync-baseline); and --goals, every run the two goals need, checked in one
// invocation. bench/README.md "ioasidd round trips and group commit" has the figures.
//
// Exit status: 0 when every run completed (goals met or not: timings are reported, not judged,
// unless --require-goals), 1 on a runtime failure or a missed goal under --require-goals, 2 on a
// bad command line.
#include <fmt/core.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ioasid/client.hpp"
#include "load/daemon_process.hpp"
#include "load/echo_server.hpp"
#include "load/fsync_baseline.hpp"
#include "load/workload.hpp"

namespace {

using ioasid::load::ClientKind;
using ioasid::load::DurableWriteCost;
using ioasid::load::LatencyHistogram;
using ioasid::load::WorkloadConfig;
using ioasid::load::WorkloadResult;
using Json = nlohmann::ordered_json;

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

template <class... Args>
int error(int code, fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "ioasid-load: {}\n", fmt::format(f, std::forward<Args>(args)...));
  return code;
}

struct Options {
  unsigned clients = 1;
  double duration = 5;
  double warmup = 0.5;
  bool no_sync = false;
  bool echo = false;
  unsigned pipeline = 0;  // 0: the client library
  unsigned threads = 1;   // threads per library client
  std::string connect;
  std::string ioasidd;
  std::string dir;
  bool fsync_baseline = false;
  bool goals = false;
  unsigned goal_clients = 16;
  unsigned goal_pipeline = 16;
  unsigned goal_threads = 16;
  bool require_goals = false;
  bool json = false;
  bool verbose = false;
  bool pin = false;
  int server_cpu = -1;           // with --pin: the daemon's (or echo server's) CPU
  std::vector<int> client_cpus;  // with --pin: the others
};

enum class Mode { echo, no_sync, durable, external };

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::echo:
      return "echo";
    case Mode::no_sync:
      return "no-sync";
    case Mode::durable:
      return "durable";
    case Mode::external:
      return "external";
  }
  return "?";
}

struct RunSpec {
  Mode mode;
  unsigned clients;
  unsigned depth;        // 0: the client library
  unsigned threads = 1;  // the client library: threads per client (one in flight each)
  // Requests in flight per client.
  [[nodiscard]] unsigned in_flight() const { return depth > 0 ? depth : threads; }
};

struct RunResult {
  RunSpec spec;
  WorkloadResult w;
  bool have_journal = false;
  std::uint64_t commits = 0;    // STATS journal_commits during the run (warm-up included)
  std::uint64_t requests = 0;   // STATS requests during the run
  std::uint64_t commit_ns = 0;  // STATS journal_commit_ns during the run
  [[nodiscard]] double requests_per_commit() const {
    return commits == 0 ? 0 : static_cast<double>(requests) / static_cast<double>(commits);
  }
  [[nodiscard]] std::string name() const {
    if (spec.depth > 0) return std::string(mode_name(spec.mode)) + " (pipelined)";
    if (spec.threads > 1) return std::string(mode_name(spec.mode)) + " (threads)";
    return mode_name(spec.mode);
  }
};

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

// The ioasidd next to this program: bin/../sbin (installed) or src/load/../daemon (build tree),
// else "ioasidd" from PATH.
std::string find_ioasidd() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const char* rel : {"../sbin/ioasidd", "../daemon/ioasidd"}) {
      const auto p = (self.parent_path() / rel).lexically_normal();
      if (::access(p.c_str(), X_OK) == 0) return p.string();
    }
  }
  if (const char* path = std::getenv("PATH")) {
    std::string all = path;
    std::size_t at = 0;
    while (at <= all.size()) {
      const std::size_t colon = std::min(all.find(':', at), all.size());
      const std::string p = all.substr(at, colon - at) + "/ioasidd";
      if (::access(p.c_str(), X_OK) == 0) return p;
      at = colon + 1;
    }
  }
  return "ioasidd";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

std::string kernel() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release;
}

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

// A fresh directory under base for one run's daemon (or echo server).
std::optional<std::string> fresh_dir(const std::string& base, std::string* why) {
  std::string tmpl = base + "/ioasid-load-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    *why = fmt::format("cannot create a directory in {}: {}", base, std::strerror(errno));
    return std::nullopt;
  }
  return tmpl;
}

bool stats_of(const std::string& socket, ioasid::DaemonStats* out) {
  auto a = ioasid::DaemonAdmin::open(socket, std::chrono::seconds(10));
  if (!a) return false;
  auto s = (*a)->stats();
  if (!s) return false;
  *out = *s;
  return true;
}

// One run: start what it needs, run the clients, stop.
bool run_one(const Options& o, const RunSpec& spec, const std::string& base, RunResult* out,
             std::string* why) {
  WorkloadConfig cfg;
  cfg.clients = spec.clients;
  cfg.depth = std::max(1u, spec.depth);
  cfg.threads = spec.threads;
  cfg.kind = spec.mode == Mode::echo ? ClientKind::echo
             : spec.depth > 0        ? ClientKind::pipelined
                                     : ClientKind::library;
  cfg.warmup = ms(o.warmup);
  cfg.duration = ms(o.duration);
  cfg.client_cpus = o.client_cpus;
  // VM tokens unique to this process and run, so that a shared daemon (--connect) never sees two
  // runs or two processes open the same VM.
  static unsigned run_number = 0;
  cfg.vm_base = (std::uint64_t{0x10AD} << 48) |
                (static_cast<std::uint64_t>(::getpid() & 0xFFFFFF) << 24) |
                (std::uint64_t{++run_number & 0xFF} << 16);
  out->spec = spec;

  std::optional<std::string> dir;
  std::unique_ptr<ioasid::load::DaemonProcess> daemon;
  std::unique_ptr<ioasid::load::EchoServer> echo;
  if (spec.mode == Mode::external) {
    cfg.socket = o.connect;
    // Nothing listening is reported at once (the clients would retry until their timeout).
    ioasid::AdminOptions probe;
    probe.socket_path = o.connect;
    probe.timeout = cfg.timeout;
    probe.wait_for_daemon = false;
    if (auto a = ioasid::DaemonAdmin::open(probe); !a) {
      *why = fmt::format("cannot connect to {}: {}", o.connect, ioasid::to_string(a.error()));
      return false;
    }
  } else {
    dir = fresh_dir(base, why);
    if (!dir) return false;
    if (spec.mode == Mode::echo) {
      cfg.socket = *dir + "/echo.sock";
      echo = std::make_unique<ioasid::load::EchoServer>(
          cfg.socket, ioasid::load::echo_request_size(), ioasid::load::echo_reply_size());
      echo->pin_to(o.server_cpu);
      if (!echo->start(why)) return false;
    } else {
      std::vector<std::string> extra = {"--grace", "0", "--max-sessions-per-client",
                                        std::to_string(std::max(64u, spec.clients))};
      if (spec.mode == Mode::no_sync) extra.push_back("--no-sync");
      daemon = std::make_unique<ioasid::load::DaemonProcess>(o.ioasidd, *dir, extra, o.verbose);
      daemon->pin_to(o.server_cpu);
      if (!daemon->start(std::chrono::seconds(30), why)) return false;
      cfg.socket = daemon->socket();
    }
  }
  ioasid::DaemonStats before{};
  const bool journal = spec.mode != Mode::echo && stats_of(cfg.socket, &before);
  const bool ok = ioasid::load::run_workload(cfg, &out->w, why);
  ioasid::DaemonStats after{};
  if (ok && journal && stats_of(cfg.socket, &after)) {
    out->have_journal = true;
    out->commits = after.journal_commits - before.journal_commits;
    // The two STATS requests themselves are not load.
    out->requests = after.requests - before.requests - 1;
    out->commit_ns = after.journal_commit_ns - before.journal_commit_ns;
  }
  if (daemon) daemon->stop();
  if (echo) echo->stop();
  daemon.reset();
  echo.reset();
  if (dir) std::filesystem::remove_all(*dir);
  return ok;
}

Json latency_json(const LatencyHistogram& h) {
  if (h.count() == 0) return nullptr;
  return Json{
      {"count", h.count()},          {"p50", us(h.quantile(0.5))},     {"p90", us(h.quantile(0.9))},
      {"p99", us(h.quantile(0.99))}, {"p99.9", us(h.quantile(0.999))}, {"max", us(h.max())}};
}

struct Goal {
  std::string name;
  double value;
  double limit;
  bool at_most;  // met when value <= limit (else when value >= limit)
  std::string detail;
  // Why the run is reported against the goal but not judged by it (empty: judged).
  std::string not_checked = {};
  [[nodiscard]] bool met() const { return at_most ? value <= limit : value >= limit; }
  [[nodiscard]] bool checked() const { return not_checked.empty(); }
};

const RunResult* find_run(const std::vector<RunResult>& runs, Mode m, unsigned clients,
                          unsigned depth, unsigned threads = 1) {
  for (const RunResult& r : runs) {
    if (r.spec.mode == m && r.spec.clients == clients && r.spec.depth == depth &&
        r.spec.threads == threads) {
      return &r;
    }
  }
  return nullptr;
}

std::vector<Goal> check_goals(const Options& o, const std::vector<RunResult>& runs,
                              const std::vector<DurableWriteCost>& fsync) {
  std::vector<Goal> goals;
  const RunResult* echo = find_run(runs, Mode::echo, 1, 0);
  const RunResult* nosync = find_run(runs, Mode::no_sync, 1, 0);
  if (echo != nullptr && nosync != nullptr && echo->w.pair.count() > 0 &&
      nosync->w.pair.count() > 0) {
    const double e = us(echo->w.pair.quantile(0.5));
    const double n = us(nosync->w.pair.quantile(0.5));
    goals.push_back(
        {"no-sync alloc+free round trip within 2.5x of the echo round trip (p50, one "
         "client)",
         n / e, 2.5, true,
         fmt::format("alloc+free {:.1f} us vs two echo round trips {:.1f} us; by "
                     "throughput {:.2f}x",
                     n, e, echo->w.pairs_per_second() / nosync->w.pairs_per_second())});
  }
  const DurableWriteCost* overwrite = nullptr;
  for (const auto& f : fsync) {
    if (f.method == "overwrite") overwrite = &f;
  }
  if (overwrite != nullptr && overwrite->per_second() > 0) {
    const unsigned n = o.goals ? o.goal_clients : o.clients;
    for (const RunResult& run : runs) {
      if (run.spec.mode != Mode::durable || run.spec.clients != n) continue;
      const RunResult* d = &run;
      const unsigned depth = run.spec.depth;
      std::string others;
      for (const auto& f : fsync) {
        if (&f == overwrite) continue;
        others += fmt::format("{}vs {} ({:.0f}/s): {:.1f}x", others.empty() ? "" : "; ", f.method,
                              f.per_second(), d->w.requests_per_second() / f.per_second());
      }
      // One request in flight per client: a commit carries at most n requests and costs at least
      // one flush, so this run's ratio is bounded by ~n whatever the daemon does.
      std::string bound;
      if (depth == 0 && run.spec.threads <= 1 && n < 20) {
        bound = fmt::format(
            "one request in flight per client: a commit carries at most {} requests and costs at "
            "least one flush, so this run cannot reach 20x; the goal is judged with requests in "
            "flight",
            n);
      }
      goals.push_back(
          {fmt::format("durable throughput with {} clients{} >= 20x one fsync per request "
                       "(overwrite + fdatasync)",
                       n,
                       depth > 0              ? fmt::format(", {} in flight each", depth)
                       : run.spec.threads > 1 ? fmt::format(", {} threads each", run.spec.threads)
                                              : ""),
           d->w.requests_per_second() / overwrite->per_second(), 20, false,
           fmt::format("{:.0f} requests/s vs {:.0f}/s, {:.1f} requests per commit; {}",
                       d->w.requests_per_second(), overwrite->per_second(),
                       d->requests_per_commit(), others),
           bound});
    }
  }
  return goals;
}

void print_table(const Options& o, const std::string& fs, const std::string& base,
                 const std::vector<RunResult>& runs, const std::vector<DurableWriteCost>& fsync,
                 const std::vector<Goal>& goals) {
  fmt::print(
      "ioasid-load: {} CPUs ({}), {}, state on {} ({}), {:.1f} s per run after {:.1f} s "
      "warm-up{}\n\n",
      std::thread::hardware_concurrency(), cpu_model(), kernel(), fs, base, o.duration, o.warmup,
      o.pin ? fmt::format(", server on CPU {}, clients on the others", o.server_cpu) : "");
  fmt::print("{:<20} {:>7} {:>5} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}\n", "run",
             "clients", "depth", "allocs/s", "req/s", "p50", "p90", "p99", "p99.9", "max",
             "pair p50", "req/cmt");
  for (const RunResult& r : runs) {
    const LatencyHistogram& h = r.w.request;
    fmt::print(
        "{:<20} {:>7} {:>5} {:>10.0f} {:>10.0f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f} "
        "{:>8.1f} {:>9} {:>8}\n",
        r.name(), r.spec.clients, r.spec.in_flight(), r.w.pairs_per_second(),
        r.w.requests_per_second(), us(h.quantile(0.5)), us(h.quantile(0.9)), us(h.quantile(0.99)),
        us(h.quantile(0.999)), us(h.max()),
        r.w.pair.count() > 0 ? fmt::format("{:.1f}", us(r.w.pair.quantile(0.5))) : "-",
        r.have_journal ? fmt::format("{:.1f}", r.requests_per_commit()) : "-");
  }
  fmt::print(
      "(latencies in microseconds per request; allocs/s counts alloc+free pairs; req/cmt: "
      "requests per journal commit)\n");
  if (!fsync.empty()) {
    fmt::print(
        "\none durable write per request, same file system (the faster of {} "
        "measurements, before and after the durable runs):\n",
        fsync.front().rates.size());
    for (const auto& f : fsync) {
      std::string all;
      for (double r : f.rates) all += fmt::format("{}{:.0f}", all.empty() ? "" : ", ", r);
      fmt::print("  {:<10} {:<56} {:>8.0f}/s  p50 {:>7.1f} us  p99 {:>7.1f} us  ({}/s)\n", f.method,
                 f.what, f.per_second(), us(f.latency.quantile(0.5)), us(f.latency.quantile(0.99)),
                 all);
    }
  }
  if (!goals.empty()) {
    fmt::print("\ngoals:\n");
    for (const Goal& g : goals) {
      fmt::print("  {}: {:.2f}x (limit {}{}) {}\n    {}\n", g.name, g.value,
                 g.at_most ? "<= " : ">= ", g.limit,
                 !g.checked() ? "not judged"
                 : g.met()    ? "met"
                              : "MISSED",
                 g.detail);
      if (!g.checked()) fmt::print("    not judged: {}\n", g.not_checked);
    }
  }
}

Json to_json(const Options& o, const std::string& fs, const std::string& base,
             const std::vector<RunResult>& runs, const std::vector<DurableWriteCost>& fsync,
             const std::vector<Goal>& goals) {
  Json j;
  j["machine"] = Json{{"cpus", std::thread::hardware_concurrency()},
                      {"cpu_model", cpu_model()},
                      {"kernel", kernel()},
                      {"filesystem", fs},
                      {"dir", base},
                      {"server_cpu", o.pin ? Json(o.server_cpu) : Json(nullptr)},
                      {"client_cpus", o.client_cpus}};
  j["duration_seconds"] = o.duration;
  j["warmup_seconds"] = o.warmup;
  Json list = Json::array();
  for (const RunResult& r : runs) {
    Json run{{"name", r.name()},
             {"mode", mode_name(r.spec.mode)},
             {"client", r.spec.mode == Mode::echo ? "echo"
                        : r.spec.depth > 0        ? "pipelined"
                                                  : "library"},
             {"clients", r.spec.clients},
             {"depth", r.spec.in_flight()},
             {"threads", r.spec.threads},
             {"seconds", r.w.seconds},
             {"pairs", r.w.pairs},
             {"requests", r.w.requests},
             {"allocs_per_second", r.w.pairs_per_second()},
             {"requests_per_second", r.w.requests_per_second()},
             {"latency_us", Json{{"request", latency_json(r.w.request)},
                                 {"alloc", latency_json(r.w.alloc)},
                                 {"free", latency_json(r.w.free)},
                                 {"pair", latency_json(r.w.pair)}}}};
    if (r.have_journal) {
      run["journal"] =
          Json{{"commits", r.commits},
               {"requests", r.requests},
               {"requests_per_commit", r.requests_per_commit()},
               {"commit_mean_us",
                r.commits == 0 ? 0.0 : us(r.commit_ns) / static_cast<double>(r.commits)}};
    }
    list.push_back(std::move(run));
  }
  j["runs"] = std::move(list);
  Json f = Json::array();
  for (const auto& c : fsync) {
    f.push_back(Json{{"method", c.method},
                     {"what", c.what},
                     {"operations", c.operations},
                     {"seconds", c.seconds},
                     {"per_second", c.per_second()},
                     {"measured_per_second", c.rates},
                     {"latency_us", latency_json(c.latency)}});
  }
  j["fsync_baseline"] = std::move(f);
  Json g = Json::array();
  for (const Goal& x : goals) {
    g.push_back(Json{{"name", x.name},
                     {"value", x.value},
                     {"limit", x.limit},
                     {"at_most", x.at_most},
                     {"met", x.met()},
                     {"checked", x.checked()},
                     {"not_checked_because", x.not_checked},
                     {"detail", x.detail}});
  }
  j["goals"] = std::move(g);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ioasid-load: load generator for ioasidd (alloc+free round trips, N clients)"};
  Options o;
  app.add_option("--clients", o.clients, "Concurrent clients, each with its own VM session")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  app.add_option("--duration", o.duration, "Measured seconds per run")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--warmup", o.warmup, "Seconds before measuring")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  auto* no_sync = app.add_flag("--no-sync", o.no_sync,
                               "Start the daemon with --no-sync (not durable: for comparison)");
  auto* echo = app.add_flag("--echo", o.echo, "The floor: an in-process echo server, same frames");
  auto* pipeline =
      app.add_option("--pipeline", o.pipeline,
                     "Requests in flight per client through the protocol directly (default: the "
                     "client library, one in flight per thread)")
          ->check(CLI::Range(1u, 32u));
  auto* threads = app.add_option("--threads", o.threads,
                                 "Threads per client sharing its DaemonBackend (the library "
                                 "pipelines their requests on the one connection)")
                      ->capture_default_str()
                      ->check(CLI::Range(1u, 32u));
  auto* connect = app.add_option("--connect", o.connect,
                                 "Load a running daemon at this socket instead of starting one");
  app.add_option("--ioasidd", o.ioasidd, "The daemon program to start (default: next to this one)");
  app.add_option("--dir", o.dir,
                 "Where the started daemon keeps its socket and state (default $TMPDIR, else "
                 "/var/tmp); the fsync baseline runs there too");
  app.add_flag("--fsync-baseline", o.fsync_baseline,
               "Also measure one durable write per request on the same file system");
  auto* goals = app.add_flag("--goals", o.goals,
                             "Every run the issue's goals need (echo, --no-sync, durable with "
                             "--goal-clients: one thread each, --goal-threads each, and "
                             "--goal-pipeline in flight each) and the fsync baseline, checked");
  app.add_option("--goal-clients", o.goal_clients, "Clients of the durable goal runs")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  app.add_option("--goal-pipeline", o.goal_pipeline, "Depth of the pipelined durable goal run")
      ->capture_default_str()
      ->check(CLI::Range(1u, 32u));
  app.add_option("--goal-threads", o.goal_threads,
                 "Threads per client of the durable goal run through the library")
      ->capture_default_str()
      ->check(CLI::Range(1u, 32u));
  app.add_flag("--require-goals", o.require_goals, "Exit 1 when a checked goal is missed");
  app.add_flag("--json", o.json, "JSON instead of a table");
  app.add_flag("--verbose", o.verbose, "Show the daemon's log");
  app.add_flag("--pin", o.pin,
               "Run the daemon (or echo server) on the last allowed CPU and the clients on the "
               "others, so that every round trip crosses CPUs the same way");
  no_sync->excludes(echo);
  threads->excludes(echo)->excludes(pipeline);
  connect->excludes(no_sync)->excludes(echo)->excludes(goals);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return error(kExitUsage, "{} (see ioasid-load --help)", e.what());
  }

  if (o.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    o.dir = tmp != nullptr && *tmp != '\0' ? tmp : "/var/tmp";
  }
  if (o.ioasidd.empty()) o.ioasidd = find_ioasidd();
  char real[PATH_MAX];
  if (::realpath(o.dir.c_str(), real) == nullptr) {
    return error(kExitUsage, "--dir {}: {}", o.dir, std::strerror(errno));
  }
  o.dir = real;
  const std::string fs = ioasid::load::filesystem_type(o.dir);
  if (o.pin) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
      }
    }
    if (cpus.size() < 2) return error(kExitUsage, "--pin needs at least two CPUs");
    o.server_cpu = cpus.back();
    o.client_cpus.assign(cpus.begin(), cpus.end() - 1);
  }

  std::vector<RunSpec> specs;
  if (o.goals) {
    specs = {{Mode::echo, 1, 0},
             {Mode::no_sync, 1, 0},
             {Mode::durable, 1, 0},
             {Mode::durable, o.goal_clients, 0},
             {Mode::durable, o.goal_clients, 0, o.goal_threads},
             {Mode::durable, o.goal_clients, o.goal_pipeline}};
    o.fsync_baseline = true;
  } else {
    const Mode m = o.echo               ? Mode::echo
                   : !o.connect.empty() ? Mode::external
                   : o.no_sync          ? Mode::no_sync
                                        : Mode::durable;
    specs = {{m, o.clients, m == Mode::echo ? 0 : o.pipeline, o.pipeline > 0 ? 1 : o.threads}};
  }
  if (fs == "tmpfs" && o.fsync_baseline && !o.json) {
    fmt::print(stderr, "ioasid-load: warning: {} is tmpfs: fsync costs nothing there\n", o.dir);
  }

  // The baseline is measured just before the first durable run and again after the last (the
  // disk may be shared: its flush latency drifts); the faster measurement counts.
  std::vector<DurableWriteCost> fsync;
  auto measure_baseline = [&](std::string* why) {
    auto dir = fresh_dir(o.dir, why);
    if (!dir) return false;
    std::vector<DurableWriteCost> now;
    const bool ok =
        ioasid::load::measure_durable_writes(*dir, ms(std::min(o.duration, 2.0)), &now, why);
    std::filesystem::remove_all(*dir);
    if (ok) ioasid::load::keep_faster(&fsync, std::move(now));
    return ok;
  };
  std::vector<RunResult> runs;
  bool baseline_before = false;
  for (const RunSpec& s : specs) {
    std::string why;
    const bool durable = s.mode == Mode::durable || s.mode == Mode::external;
    if (o.fsync_baseline && durable && (s.clients > 1 || specs.size() == 1) && !baseline_before) {
      if (!measure_baseline(&why)) return error(kExitRuntime, "fsync baseline: {}", why);
      baseline_before = true;
    }
    RunResult r;
    if (!run_one(o, s, o.dir, &r, &why)) return error(kExitRuntime, "{}", why);
    runs.push_back(std::move(r));
  }
  if (o.fsync_baseline) {
    std::string why;
    if (!measure_baseline(&why)) return error(kExitRuntime, "fsync baseline: {}", why);
  }
  const std::vector<Goal> checked = check_goals(o, runs, fsync);
  if (o.json) {
    fmt::print("{}\n", to_json(o, fs, o.dir, runs, fsync, checked).dump(2));
  } else {
    print_table(o, fs, o.dir, runs, fsync, checked);
  }
  if (o.require_goals) {
    for (const Goal& g : checked) {
      if (g.checked() && !g.met()) return kExitRuntime;
    }
  }
  return 0;
}
