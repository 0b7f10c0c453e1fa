// SPDX-License-Identifier: Apache-2.0
// report.cc: the renderings of a run's report (report.hpp).
#include "sim/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace ioasid::sim {
namespace {

using json = nlohmann::json;

std::string transports(const VmReport& vm) {
  std::string out;
  for (const auto& [name, n] : vm.allocs_by_transport) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {}", name, n);
  }
  return out.empty() ? "-" : out;
}

std::string restarts(const VmReport& vm) {
  const auto crashes = vm.stats.events[static_cast<unsigned>(EventKind::vmm_crash)];
  if (crashes == 0) return "-";
  return fmt::format("{} ({} resumed, {} rebooted)", crashes, vm.stats.resumed, vm.stats.rebooted);
}

std::string result_line(const Report& r) {
  if (r.result == "ok") {
    return fmt::format(
        "every invariant held ({} per-operation checks, {} full scans of the host, {} after a "
        "daemon restart)",
        r.checks.incremental, r.checks.full_scans, r.checks.restart_checks);
  }
  if (r.result == "violation") {
    return fmt::format("INVARIANT VIOLATED at step {}: {}: {}", r.steps_done, r.invariant,
                       r.message);
  }
  return fmt::format("FAILED at step {}: {}", r.steps_done, r.message);
}

std::string event_summary(const Report& r) {
  std::string out;
  for (unsigned k = 0; k < kEventKinds; ++k) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {}", to_string(static_cast<EventKind>(k)), r.events[k]);
  }
  return out;
}

std::string timing_line(const Report& r) {
  const double rate = r.workload_seconds > 0 ? r.operations / r.workload_seconds : 0;
  return fmt::format("Wall time {:.2f} s; workload {:.2f} s, {:.0f} operations per second",
                     r.wall_seconds, r.workload_seconds, rate);
}

// A table with aligned columns (text) or pipes (markdown).
struct Table {
  std::vector<std::string> head;
  std::vector<std::vector<std::string>> rows;
  std::string text() const {
    std::vector<std::size_t> w(head.size());
    for (std::size_t c = 0; c < head.size(); ++c) {
      w[c] = head[c].size();
      for (const auto& row : rows) w[c] = std::max(w[c], row[c].size());
    }
    auto line = [&](const std::vector<std::string>& cells) {
      std::string s;
      for (std::size_t c = 0; c < cells.size(); ++c) {
        s += cells[c];
        if (c + 1 < cells.size()) s += std::string(w[c] - cells[c].size() + 2, ' ');
      }
      return s + "\n";
    };
    std::string out = line(head);
    for (const auto& row : rows) out += line(row);
    return out;
  }
  std::string markdown() const {
    auto line = [](const std::vector<std::string>& cells) {
      std::string s = "|";
      for (const auto& c : cells) s += " " + c + " |";
      return s + "\n";
    };
    std::string out = line(head);
    out += "|";
    for (std::size_t c = 0; c < head.size(); ++c) out += "---|";
    out += "\n";
    for (const auto& row : rows) out += line(row);
    return out;
  }
};

// The per-VM table; the markdown one also lists each VM's vIOMMUs.
Table vm_table(const Report& r, bool with_viommus) {
  Table t;
  t.head = {"VM", "token"};
  if (with_viommus) t.head.push_back("vIOMMUs");
  for (const char* h : {"transport used (allocations)", "held", "peak", "quota", "quota refusals",
                        "frees", "binds", "VMM crashes"}) {
    t.head.push_back(h);
  }
  for (const VmReport& vm : r.vms) {
    std::vector<std::string> row = {vm.name, std::to_string(vm.token)};
    if (with_viommus) {
      std::string vi;
      for (const auto& v : vm.viommus) vi += (vi.empty() ? "" : ", ") + v;
      row.push_back(vi);
    }
    for (std::string cell :
         {transports(vm), std::to_string(vm.held_at_end), std::to_string(vm.stats.peak),
          std::to_string(vm.quota), std::to_string(vm.stats.quota_refusals),
          std::to_string(vm.stats.ops[static_cast<unsigned>(Op::free)] +
                         vm.stats.ops[static_cast<unsigned>(Op::free_bound)]),
          std::to_string(vm.stats.ops[static_cast<unsigned>(Op::bind)]), restarts(vm)}) {
      row.push_back(std::move(cell));
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string history_text(const Report& r, const char* indent) {
  std::string out;
  for (const auto& [step, what] : r.history)
    out += fmt::format("{}step {:>7}  {}\n", indent, step, what);
  return out;
}

}  // namespace

std::string render_text(const Report& r) {
  std::string out = fmt::format("ioasid-sim: scenario \"{}\" ({}), seed {}, {} steps, host: {}\n",
                                r.scenario, r.source, r.seed, r.steps, r.host);
  if (!r.fault.empty()) out += fmt::format("fault injected: {}\n", r.fault);
  out += "result: " + result_line(r) + "\n\n";
  out += vm_table(r, false).text();
  out += fmt::format("\nevents: {} (the end of the run shuts every VM down)\n", event_summary(r));
  out += fmt::format("operations: {} guest operations, {} daemon restarts\n", r.operations,
                     r.daemon_restarts);
  out += timing_line(r) + "\n";
  if (!r.report_path.empty()) {
    out += fmt::format("report: {} (PASIDs over time: {})\n", r.report_path, r.svg_path);
  }
  return out;
}

std::string render_markdown(const Report& r, const std::string& svg_file_name) {
  std::string out = fmt::format("# ioasid-sim report: {}\n\n", r.scenario);
  out += fmt::format("Scenario `{}`, seed {}, {} steps ({} done), host: {}.\n\n", r.source, r.seed,
                     r.steps, r.steps_done, r.host);
  if (!r.fault.empty()) out += fmt::format("Fault injected: `{}`.\n\n", r.fault);
  out += "**Result:** " + result_line(r) + "\n\n";
  if (r.result != "ok") {
    out +=
        "Event history that led there (oldest first):\n\n```\n" + history_text(r, "") + "```\n\n";
  }
  out += "## VMs\n\n" + vm_table(r, true).markdown() + "\n";
  out += fmt::format("![PASIDs held per VM over time]({})\n\n", svg_file_name);
  out += "## Events\n\n";
  Table ev;
  ev.head = {"event", "count"};
  for (unsigned k = 0; k < kEventKinds; ++k) {
    ev.rows.push_back({to_string(static_cast<EventKind>(k)), std::to_string(r.events[k])});
  }
  out += ev.markdown() + "\n";
  Table tl;
  tl.head = {"step", "event", "from"};
  for (const EventLine& e : r.timeline) tl.rows.push_back({std::to_string(e.at), e.what, e.origin});
  if (!tl.rows.empty()) out += tl.markdown() + "\n";
  out += "## Operations\n\n";
  Table ops;
  ops.head = {"VM",         "alloc",          "free",           "bind",        "unbind",
              "free_bound", "quota refusals", "other refusals", "orphan frees"};
  for (const VmReport& vm : r.vms) {
    std::vector<std::string> row = {vm.name};
    for (unsigned o = 0; o < kOps; ++o) row.push_back(std::to_string(vm.stats.ops[o]));
    row.push_back(std::to_string(vm.stats.quota_refusals));
    row.push_back(std::to_string(vm.stats.other_refusals));
    row.push_back(std::to_string(vm.stats.orphan_frees));
    ops.rows.push_back(std::move(row));
  }
  out += ops.markdown() + "\n";
  out += fmt::format(
      "Checks: {} per-operation, {} full scans of the host state, {} after a daemon restart.\n\n",
      r.checks.incremental, r.checks.full_scans, r.checks.restart_checks);
  out += timing_line(r) + "\n";
  return out;
}

std::string render_json(const Report& r) {
  json j;
  j["scenario"] = r.scenario;
  j["source"] = r.source;
  j["seed"] = r.seed;
  j["steps"] = r.steps;
  j["steps_done"] = r.steps_done;
  j["mode"] = r.mode;
  j["host"] = r.host;
  if (!r.fault.empty()) j["inject_fault"] = r.fault;
  j["result"] = r.result;
  if (r.result != "ok") {
    json v{{"message", r.message}};
    if (!r.invariant.empty()) v["invariant"] = r.invariant;
    json h = json::array();
    for (const auto& [step, what] : r.history) h.push_back(json{{"step", step}, {"what", what}});
    v["history"] = std::move(h);
    j["violation"] = std::move(v);
  }
  json vms = json::array();
  for (std::size_t i = 0; i < r.vms.size(); ++i) {
    const VmReport& vm = r.vms[i];
    json ops;
    for (unsigned o = 0; o < kOps; ++o) ops[to_string(static_cast<Op>(o))] = vm.stats.ops[o];
    json by;
    for (const auto& [name, n] : vm.allocs_by) by[name] = n;
    json by_transport;
    for (const auto& [name, n] : vm.allocs_by_transport) by_transport[name] = n;
    json events;
    for (unsigned k = 0; k < kEventKinds; ++k) {
      events[to_string(static_cast<EventKind>(k))] = vm.stats.events[k];
    }
    vms.push_back(json{{"name", vm.name},
                       {"token", vm.token},
                       {"quota", vm.quota},
                       {"viommus", vm.viommus},
                       {"allocs_by_viommu", std::move(by)},
                       {"allocs_by_transport", std::move(by_transport)},
                       {"held_at_end", vm.held_at_end},
                       {"peak", vm.stats.peak},
                       {"quota_refusals", vm.stats.quota_refusals},
                       {"other_refusals", vm.stats.other_refusals},
                       {"orphan_frees", vm.stats.orphan_frees},
                       {"operations", std::move(ops)},
                       {"events", std::move(events)},
                       {"vmm_restarts_resumed", vm.stats.resumed},
                       {"vmm_restarts_rebooted", vm.stats.rebooted},
                       {"held", i < r.held.size() ? json(r.held[i]) : json::array()}});
  }
  j["vms"] = std::move(vms);
  json events;
  for (unsigned k = 0; k < kEventKinds; ++k) {
    events[to_string(static_cast<EventKind>(k))] = r.events[k];
  }
  j["events"] = std::move(events);
  json tl = json::array();
  for (const EventLine& e : r.timeline) {
    tl.push_back(json{{"step", e.at}, {"event", e.what}, {"origin", e.origin}});
  }
  j["timeline"] = std::move(tl);
  j["sample_steps"] = r.sample_steps;
  j["operations"] = r.operations;
  j["daemon_restarts"] = r.daemon_restarts;
  j["checks"] = json{{"incremental", r.checks.incremental},
                     {"full_scans", r.checks.full_scans},
                     {"after_restart", r.checks.restart_checks}};
  j["timing"] = json{
      {"wall_seconds", r.wall_seconds},
      {"workload_seconds", r.workload_seconds},
      {"operations_per_second", r.workload_seconds > 0 ? r.operations / r.workload_seconds : 0.0}};
  if (!r.report_path.empty()) j["report"] = json{{"markdown", r.report_path}, {"svg", r.svg_path}};
  return j.dump(2) + "\n";
}

std::string render_svg(const Report& r) {
  constexpr int kW = 760;
  constexpr int kLeft = 60, kTop = 40, kPlotW = 520, kPlotH = 290;
  // Tall enough for the legend (18 px per VM).
  const int kH = std::max(380, kTop + 30 + 18 * static_cast<int>(r.vms.size()));
  constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::uint64_t top = 1;
  for (const auto& series : r.held) {
    for (std::uint64_t v : series) top = std::max(top, v);
  }
  // A round upper bound: 1, 2 or 5 times a power of ten.
  std::uint64_t scale = 1;
  while (true) {
    if (top <= scale) break;
    if (top <= 2 * scale) {
      scale *= 2;
      break;
    }
    if (top <= 5 * scale) {
      scale *= 5;
      break;
    }
    scale *= 10;
  }
  const double xmax = static_cast<double>(std::max<std::uint64_t>(r.steps, 1));
  auto x = [&](std::uint64_t step) { return kLeft + kPlotW * (static_cast<double>(step) / xmax); };
  auto y = [&](std::uint64_t v) {
    return kTop + kPlotH * (1.0 - static_cast<double>(v) / static_cast<double>(scale));
  };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      kW, kH, kW, kH);
  s += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"white\"/>\n", kW, kH);
  s += fmt::format(
      "<text x=\"{}\" y=\"22\" font-size=\"14\">PASIDs held per VM: scenario {}, seed {}</text>\n",
      kLeft, r.scenario, r.seed);
  // Axes, ticks and grid.
  s += fmt::format("<g stroke=\"#444\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", kLeft,
                   kTop + kPlotH, kLeft + kPlotW, kTop + kPlotH);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/></g>\n", kLeft, kTop, kLeft,
                   kTop + kPlotH);
  for (int i = 0; i <= 5; ++i) {
    const std::uint64_t v = scale * static_cast<std::uint64_t>(i) / 5;
    const std::uint64_t st = r.steps * static_cast<std::uint64_t>(i) / 5;
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        kLeft, y(v), kLeft + kPlotW, y(v), kLeft - 6, y(v) + 4, v);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x(st),
                     kTop + kPlotH + 16, st);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
                   kLeft + kPlotW / 2, kTop + kPlotH + 34);
  s += fmt::format(
      "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">PASIDs "
      "held</text>\n",
      kTop + kPlotH / 2, kTop + kPlotH / 2);
  // Events: dashed markers, the event in a tooltip.
  for (const EventLine& e : r.timeline) {
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#999\" "
        "stroke-dasharray=\"4 3\"><title>step {}: {}</title></line>\n",
        x(e.at), kTop, x(e.at), kTop + kPlotH, e.at, e.what);
  }
  // One polyline per VM, and the legend.
  for (std::size_t i = 0; i < r.held.size() && i < r.vms.size(); ++i) {
    const char* color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    std::string points;
    for (std::size_t k = 0; k < r.held[i].size() && k < r.sample_steps.size(); ++k) {
      if (!points.empty()) points += ' ';
      points += fmt::format("{:.1f},{:.1f}", x(r.sample_steps[k]), y(r.held[i][k]));
    }
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                     color, points);
    const int ly = kTop + 10 + 18 * static_cast<int>(i);
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"/>"
        "<text x=\"{}\" y=\"{}\">{} (quota {})</text>\n",
        kLeft + kPlotW + 20, ly, kLeft + kPlotW + 40, ly, color, kLeft + kPlotW + 46, ly + 4,
        r.vms[i].name, r.vms[i].quota);
  }
  s += "</svg>\n";
  return s;
}

}  // namespace ioasid::sim
