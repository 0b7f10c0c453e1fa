// SPDX-License-Identifier: Apache-2.0
// simulator.cc: the run loop, fault injection, and the report's assembly (simulator.hpp).
#include "sim/simulator.hpp"

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "sim/checker.hpp"
#include "sim/host.hpp"
#include "sim/progress.hpp"
#include "sim/report.hpp"
#include "sim/timeline.hpp"
#include "sim/vm.hpp"

namespace ioasid::sim {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "ioasid-sim: %s\n", message.c_str());
  return kExitUsage;
}

std::string describe(const Scenario& s, const TimedEvent& e) {
  std::string out = to_string(e.kind);
  if (e.vm >= 0) out += " " + s.vms[static_cast<std::size_t>(e.vm)].name;
  if (e.viommu >= 0) {
    out += " " +
           s.vms[static_cast<std::size_t>(e.vm)].viommus[static_cast<std::size_t>(e.viommu)].name;
  }
  if (e.kind == EventKind::vmm_crash) out += e.resume ? " (resume)" : " (restart after grace)";
  if (e.kind == EventKind::daemon_restart) out += " (kill -9, restart)";
  return out;
}

bool timeline_has(const std::vector<TimedEvent>& t, EventKind k) {
  for (const TimedEvent& e : t) {
    if (e.kind == k) return true;
  }
  return false;
}

// A temporary state directory for a daemon the user gave no --state-dir for.
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

class Run {
 public:
  Run(const Scenario& s, const SimOptions& o, std::vector<TimedEvent> timeline, Host& host,
      Rng& rng)
      : s_(s),
        rng_(rng),
        timeline_(std::move(timeline)),
        host_(host),
        checker_(s, host),
        history_(s.history),
        ctx_{s, host, checker_, history_, fault_, 0},
        progress_(s.steps, Progress::detect(o.quiet)) {
    fault_.fault = s.inject_fault;
    fault_.at = s.inject_at.value_or(s.steps / 4);
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
      vms_.push_back(std::make_unique<Vm>(ctx_, static_cast<int>(i)));
    }
    sample_every_ = std::max<std::uint64_t>(1, s.steps / 200);
    held_.resize(s.vms.size());
  }

  // Runs everything; fills r. Returns the exit status.
  int go(Report& r) {
    const auto start = Clock::now();
    int status = kExitOk;
    try {
      for (auto& vm : vms_) vm->boot();
      scan(false);
      sample(0);
      for (std::uint64_t step = 0; step < s_.steps; ++step) {
        ctx_.step = step;
        while (next_ < timeline_.size() && timeline_[next_].at == step) apply(timeline_[next_++]);
        inject_step_faults();
        workload_step();
        if ((step + 1) % s_.check_every == 0) scan(false);
        if ((step + 1) % sample_every_ == 0) sample(step + 1);
        steps_done_ = step + 1;
        progress_.update(step + 1, next_, timeline_.size(), held_total());
      }
      ctx_.step = s_.steps;
      scan(false);
      if (sample_steps_.empty() || sample_steps_.back() != s_.steps) sample(s_.steps);
      for (auto& vm : vms_) held_at_end_.push_back(vm->held());
      history_.add(s_.steps, "end of the workload: every running VM shuts down");
      for (auto& vm : vms_) {
        if (vm->running()) vm->shutdown();
      }
      scan(false);
    } catch (const Violation& v) {
      r.result = "violation";
      r.invariant = to_string(v.invariant);
      r.message = v.what();
      status = kExitViolation;
    } catch (const RunFailure& f) {
      r.result = "failure";
      r.message = f.what();
      status = kExitFailure;
    }
    progress_.finish();
    r.workload_seconds = seconds_since(start);
    fill(r);
    // The VMs go before the host (their sessions point into it).
    vms_.clear();
    return status;
  }

 private:
  void apply(const TimedEvent& e) {
    const std::string what = describe(s_, e);
    history_.add(ctx_.step, "EVENT " + e.origin + ": " + what);
    ++events_[static_cast<unsigned>(e.kind)];
    done_.push_back(EventLine{e.at, what, e.origin});
    Vm* vm = e.vm >= 0 ? vms_[static_cast<std::size_t>(e.vm)].get() : nullptr;
    switch (e.kind) {
      case EventKind::hot_unplug:
        vm->hot_unplug(e.viommu);
        scan(false);
        vm->check_allocator_after_unplug();
        return;
      case EventKind::hot_plug:
        vm->hot_plug(e.viommu);
        break;
      case EventKind::vmm_crash:
        vm->crash_and_restart(e.resume);
        break;
      case EventKind::vm_shutdown:
        vm->shutdown();
        break;
      case EventKind::vm_boot:
        vm->boot();
        break;
      case EventKind::daemon_restart: {
        if (std::string err = host_.kill_and_restart(); !err.empty()) {
          throw RunFailure("daemon restart: " + err);
        }
        history_.add(ctx_.step, "ioasidd killed with SIGKILL and restarted on its store");
        if (fault_.take(Fault::alter_record, ctx_.step)) alter_record();
        scan(true);
        return;
      }
    }
    scan(false);
  }

  void alter_record() {
    for (std::size_t v = 0; v < vms_.size(); ++v) {
      auto& acked = checker_.acked_for_fault(static_cast<int>(v));
      if (acked.empty()) continue;
      const auto first = acked.begin();
      const Id from = first->first;
      Id to = from + 0x1000;
      while (acked.count(to) != 0) ++to;
      acked[to] = first->second;
      acked.erase(from);
      history_.add(ctx_.step, "FAULT INJECTED (alter_record): the record of " + s_.vms[v].name +
                                  "'s acknowledged PASID " + hex(from) + " now says " + hex(to));
      return;
    }
    history_.add(ctx_.step, "alter_record: no acknowledged PASID to alter yet");
    fault_.fired = false;  // try again at the next restart
  }

  void inject_step_faults() {
    if (fault_.fault == Fault::quota_backdoor && !fault_.fired && ctx_.step >= fault_.at) {
      for (auto& vm : vms_) {
        if (!vm->running()) continue;
        fault_.fired = true;
        const std::uint32_t q = vm->spec().quota + 16;
        if (auto r = host_.backdoor_set_quota(vm->spec().token, q); !r) {
          throw RunFailure("quota_backdoor: set_quota failed: " +
                           std::string(to_string(r.error())));
        }
        history_.add(ctx_.step, "FAULT INJECTED (quota_backdoor): the host quota of " +
                                    vm->spec().name + " raised to " + std::to_string(q) +
                                    " behind the scenario's back");
        return;
      }
    }
    if (fault_.fault == Fault::double_owner && !fault_.fired && ctx_.step >= fault_.at) {
      // Another running VM's guest takes a PASID this one holds.
      for (auto& a : vms_) {
        if (!a->running() || a->pasids().empty()) continue;
        for (auto& b : vms_) {
          if (b.get() == a.get() || !b->running()) continue;
          fault_.fired = true;
          b->adopt_for_fault(a->pasids().begin()->first);
          return;
        }
      }
    }
  }

  void workload_step() {
    std::uint64_t total = 0;
    for (auto& vm : vms_) total += vm->running() ? vm->spec().weight : 0;
    if (total == 0) return;
    std::uint64_t pick = rng().below(total);
    for (auto& vm : vms_) {
      if (!vm->running()) continue;
      if (pick < vm->spec().weight) {
        vm->step(rng());
        return;
      }
      pick -= vm->spec().weight;
    }
  }

  void scan(bool after_restart) {
    std::vector<VmView> views;
    for (auto& vm : vms_) views.push_back(vm->view());
    checker_.full_scan(views, after_restart);
  }

  void sample(std::uint64_t step) {
    sample_steps_.push_back(step);
    for (std::size_t i = 0; i < vms_.size(); ++i) held_[i].push_back(vms_[i]->held());
  }

  std::uint64_t held_total() const {
    std::uint64_t n = 0;
    for (const auto& vm : vms_) n += vm->held();
    return n;
  }

  void fill(Report& r) {
    r.steps_done = steps_done_;
    r.events = events_;
    r.timeline = done_;
    r.checks = checker_.counts();
    r.daemon_restarts = host_.restarts();
    r.sample_steps = sample_steps_;
    r.held = held_;
    for (const auto& [step, what] : history_.entries()) r.history.emplace_back(step, what);
    for (std::size_t i = 0; i < vms_.size(); ++i) {
      const Vm& vm = *vms_[i];
      VmReport v;
      v.name = vm.spec().name;
      v.token = vm.spec().token;
      v.quota = vm.spec().quota;
      for (std::size_t k = 0; k < vm.spec().viommus.size(); ++k) {
        const ViommuSpec& vi = vm.spec().viommus[k];
        std::string t;
        if (vi.kind == ViommuKind::vtd) {
          t = std::string("VT-d ") + layout_name(vi.layout);
        } else {
          t = "virtio-iommu";
          if (vi.max_pasid != 0) t += " max_pasid " + hex(vi.max_pasid);
        }
        std::string d = vi.name + " (" + t;
        if (vi.kind == ViommuKind::vtd && vi.completion == VtdCompletion::asynchronous) {
          d += ", async";
        }
        if (!vi.plugged) d += ", unplugged at boot";
        v.viommus.push_back(d + ")");
        const std::uint64_t n = vm.stats().allocs_by_viommu[k];
        v.allocs_by.emplace_back(vi.name, n);
        auto it = std::find_if(v.allocs_by_transport.begin(), v.allocs_by_transport.end(),
                               [&](const auto& e) { return e.first == t; });
        if (it == v.allocs_by_transport.end()) {
          v.allocs_by_transport.emplace_back(t, n);
        } else {
          it->second += n;
        }
      }
      v.held_at_end = i < held_at_end_.size() ? held_at_end_[i] : vm.held();
      v.stats = vm.stats();
      for (std::uint64_t n : v.stats.ops) r.operations += n;
      r.vms.push_back(std::move(v));
    }
  }

  Rng& rng() { return rng_; }

  const Scenario& s_;
  Rng& rng_;
  std::vector<TimedEvent> timeline_;
  Host& host_;
  Checker checker_;
  History history_;
  FaultPlan fault_;
  SimContext ctx_;
  Progress progress_;
  std::vector<std::unique_ptr<Vm>> vms_;
  std::size_t next_ = 0;
  std::uint64_t steps_done_ = 0;
  std::array<std::uint64_t, kEventKinds> events_{};
  std::vector<EventLine> done_;
  std::uint64_t sample_every_ = 1;
  std::vector<std::uint64_t> sample_steps_;
  std::vector<std::vector<std::uint64_t>> held_;
  std::vector<std::uint64_t> held_at_end_;
};

std::string write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return "cannot write " + path.string();
  return {};
}

}  // namespace

int run_simulation(Scenario s, const SimOptions& o) {
  const auto wall_start = Clock::now();
  if (o.seed) s.seed = *o.seed;
  if (o.steps) s = rescale_steps(s, *o.steps);
  if (o.inject) {
    s.inject_fault = *o.inject;
    if (s.inject_at && *s.inject_at >= s.steps) s.inject_at.reset();
  }
  if (o.history) s.history = *o.history;
  if (o.in_process) {
    bool restarts = false;
    for (const EventSpec& e : s.events) restarts = restarts || e.kind == EventKind::daemon_restart;
    for (EventKind k : s.random_events.kinds) restarts = restarts || k == EventKind::daemon_restart;
    if (restarts) {
      return usage_error(s.source + ": --in-process: the scenario has daemon_restart events");
    }
    s.host.mode = HostMode::in_process;
    s.host.socket.clear();
  }
  if (!o.socket.empty()) {
    s.host.mode = HostMode::ioasidd;
    s.host.socket = o.socket;
  }

  Rng rng(s.seed);
  std::string error;
  auto timeline = build_timeline(s, rng, &error);
  if (!timeline) return usage_error(error);
  const Fault f = s.inject_fault;
  if (f == Fault::stale_driver && !timeline_has(*timeline, EventKind::hot_unplug)) {
    return usage_error("inject_fault stale_driver needs a hot_unplug event");
  }
  if (f == Fault::alter_record && !timeline_has(*timeline, EventKind::daemon_restart)) {
    return usage_error("inject_fault alter_record needs a daemon_restart event");
  }
  if (f == Fault::double_owner && s.vms.size() < 2) {
    return usage_error("inject_fault double_owner needs two VMs");
  }

  TempDir temp;
  std::unique_ptr<Host> host;
  if (s.host.mode == HostMode::in_process) {
    host = make_in_process_host();
  } else {
    DaemonHostOptions d;
    d.socket = s.host.socket;
    d.ioasidd = o.ioasidd;
    d.grace_seconds = s.host.grace_seconds;
    d.max_sessions = std::max<std::uint32_t>(64, 2 * static_cast<std::uint32_t>(s.vms.size()));
    d.state_dir = o.state_dir;
    if (d.socket.empty() && d.state_dir.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "ioasid-sim-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) {
        std::fprintf(stderr, "ioasid-sim: cannot create a temporary state directory\n");
        return kExitFailure;
      }
      temp.path = d.state_dir = tmpl;
    }
    host = make_daemon_host(d, &error);
    if (!host) {
      std::fprintf(stderr, "ioasid-sim: %s\n", error.c_str());
      return kExitFailure;
    }
  }
  if (timeline_has(*timeline, EventKind::daemon_restart) && !host->can_restart()) {
    host->stop();
    return usage_error(s.source +
                       ": daemon_restart events need a daemon the simulator starts (no --socket)");
  }

  Report r;
  r.scenario = s.name;
  r.source = s.source;
  r.seed = s.seed;
  r.steps = s.steps;
  r.host = host->describe();
  r.mode = to_string(s.host.mode);
  if (s.inject_fault != Fault::none) r.fault = to_string(s.inject_fault);
  int status = kExitOk;
  {
    Run run(s, o, std::move(*timeline), *host, rng);
    status = run.go(r);
  }
  if (std::string e = host->stop(); !e.empty() && status == kExitOk) {
    r.result = "failure";
    r.message = e;
    status = kExitFailure;
  }
  r.wall_seconds = seconds_since(wall_start);

  if (o.write_report) {
    std::error_code ec;
    fs::create_directories(o.report_dir, ec);
    const fs::path md = fs::path(o.report_dir) / "report.md";
    const fs::path svg = fs::path(o.report_dir) / "pasids.svg";
    r.report_path = md.string();
    r.svg_path = svg.string();
    std::string e =
        ec ? "cannot create " + o.report_dir + ": " + ec.message() : write_file(svg, render_svg(r));
    if (e.empty()) e = write_file(md, render_markdown(r, "pasids.svg"));
    if (!e.empty()) {
      std::fprintf(stderr, "ioasid-sim: %s\n", e.c_str());
      r.report_path.clear();
      r.svg_path.clear();
      if (status == kExitOk) status = kExitFailure;
    }
  }
  if (r.result != "ok") {
    std::string head = r.result == "violation" ? "INVARIANT VIOLATED: " + r.invariant : "FAILED";
    std::fprintf(stderr, "ioasid-sim: %s\n  at step %llu: %s\nevent history (oldest first):\n",
                 head.c_str(), static_cast<unsigned long long>(r.steps_done), r.message.c_str());
    for (const auto& [step, what] : r.history) {
      std::fprintf(stderr, "  step %7llu  %s\n", static_cast<unsigned long long>(step),
                   what.c_str());
    }
  }
  const std::string out = o.json ? render_json(r) : render_text(r);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return status;
}

}  // namespace ioasid::sim
