// SPDX-License-Identifier: Apache-2.0
// scenario.cc: the scenario JSON parser (strict: unknown and duplicate keys, wrong types, ranges,
// missing keys and dangling references are errors that name the JSON path), the writer that
// prints a scenario back with every default, and --steps rescaling.
#include "sim/scenario.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace ioasid::sim {
namespace {

using json = nlohmann::json;

constexpr std::array<const char*, kEventKinds> kEventNames = {
    "hot_unplug", "hot_plug", "vmm_crash", "vm_shutdown", "vm_boot", "daemon_restart"};

struct FaultName {
  Fault fault;
  const char* name;
  const char* invariant;
};
constexpr std::array<FaultName, 6> kFaults = {{
    {Fault::double_owner, "double_owner", "single_owner"},
    {Fault::keep_freed, "keep_freed", "guest_pasid_owned"},
    {Fault::quota_backdoor, "quota_backdoor", "quota"},
    {Fault::skip_teardown, "skip_teardown", "no_leak"},
    {Fault::stale_driver, "stale_driver", "allocator_after_unplug"},
    {Fault::alter_record, "alter_record", "durable_ack"},
}};

std::string in_quotes(std::string_view s) {
  std::string out = "\"";
  out += s;
  out += '"';
  return out;
}

// "a", "b" or "c" -> "\"a\", \"b\" or \"c\"".
std::string alternatives(std::initializer_list<const char*> names) {
  std::string out;
  std::size_t i = 0;
  for (const char* n : names) {
    if (i > 0) out += (i + 1 == names.size()) ? " or " : ", ";
    out += in_quotes(n);
    ++i;
  }
  return out;
}

std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return v.dump();
    case json::value_t::string: {
      std::string s = v.get<std::string>();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return "the string " + json(s).dump();
    }
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a value";
  }
}

// Where we are, for messages: "vms[2].viommus[0]".
std::string child(const std::string& where, std::string_view key) {
  if (where.empty()) return std::string(key);
  return where + "." + std::string(key);
}
std::string element(const std::string& where, std::size_t i) {
  return where + "[" + std::to_string(i) + "]";
}

class Parser {
 public:
  explicit Parser(std::string* error) : error_(error) {}

  bool failed() const { return failed_; }

  bool fail(const std::string& where, const std::string& what) {
    if (!failed_) {
      failed_ = true;
      *error_ = where.empty() ? what : where + ": " + what;
    }
    return false;
  }

  // The object at where, checked for unknown keys against allowed.
  bool object(const json& v, const std::string& where, std::initializer_list<const char*> allowed) {
    if (!v.is_object())
      return fail(where.empty() ? "scenario" : where, "expected an object, got " + describe(v));
    for (auto it = v.begin(); it != v.end(); ++it) {
      bool known = false;
      for (const char* a : allowed) known = known || it.key() == a;
      if (!known)
        return fail(where.empty() ? "scenario" : where, "unknown key " + in_quotes(it.key()));
    }
    return true;
  }

  const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  bool required(const json& obj, const std::string& where, const char* key) {
    if (obj.contains(key)) return true;
    return fail(where.empty() ? "scenario" : where, "missing required key " + in_quotes(key));
  }

  template <class T>
  bool uint(const json& obj, const std::string& where, const char* key, std::uint64_t min,
            std::uint64_t max, T* out) {
    const json* v = find(obj, key);
    if (v == nullptr) return true;
    const std::string at = child(where, key);
    if (v->is_number_unsigned()) {
      const std::uint64_t x = v->get<std::uint64_t>();
      if (x < min || x > max) {
        return fail(at, std::to_string(x) + " is out of range [" + std::to_string(min) + ", " +
                            std::to_string(max) + "]");
      }
      *out = static_cast<T>(x);
      return true;
    }
    if (v->is_number_integer()) {  // negative
      return fail(at, v->dump() + " is out of range [" + std::to_string(min) + ", " +
                          std::to_string(max) + "]");
    }
    return fail(at, "expected an unsigned integer, got " + describe(*v));
  }

  bool string(const json& obj, const std::string& where, const char* key, std::string* out,
              std::size_t max_len) {
    const json* v = find(obj, key);
    if (v == nullptr) return true;
    const std::string at = child(where, key);
    if (!v->is_string()) return fail(at, "expected a string, got " + describe(*v));
    const std::string& s = v->get_ref<const std::string&>();
    if (s.size() > max_len) {
      return fail(at, "longer than " + std::to_string(max_len) + " bytes");
    }
    *out = s;
    return true;
  }

  // A name: 1-32 characters of [A-Za-z0-9_.-].
  bool name(const json& obj, const std::string& where, const char* key, std::string* out) {
    if (!string(obj, where, key, out, 32)) return false;
    if (!obj.contains(key)) return true;
    const bool ok = !out->empty() && std::all_of(out->begin(), out->end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-' || c == '.';
    });
    if (!ok) {
      return fail(child(where, key),
                  "expected a name of 1 to 32 characters from [A-Za-z0-9_.-], got " +
                      describe(obj.at(key)));
    }
    return true;
  }

  bool boolean(const json& obj, const std::string& where, const char* key, bool* out) {
    const json* v = find(obj, key);
    if (v == nullptr) return true;
    if (!v->is_boolean()) {
      return fail(child(where, key), "expected true or false, got " + describe(*v));
    }
    *out = v->get<bool>();
    return true;
  }

  // One of names; *out = its index.
  bool choice(const json& obj, const std::string& where, const char* key,
              std::initializer_list<const char*> names, unsigned* out) {
    const json* v = find(obj, key);
    if (v == nullptr) return true;
    const std::string at = child(where, key);
    if (v->is_string()) {
      unsigned i = 0;
      for (const char* n : names) {
        if (v->get_ref<const std::string&>() == n) {
          *out = i;
          return true;
        }
        ++i;
      }
    }
    return fail(at, "expected " + alternatives(names) + ", got " + describe(*v));
  }

  bool event_kind(const json& v, const std::string& at, EventKind* out) {
    if (v.is_string()) {
      for (unsigned i = 0; i < kEventKinds; ++i) {
        if (v.get_ref<const std::string&>() == kEventNames[i]) {
          *out = static_cast<EventKind>(i);
          return true;
        }
      }
    }
    return fail(at, "expected " +
                        alternatives({"hot_unplug", "hot_plug", "vmm_crash", "vm_shutdown",
                                      "vm_boot", "daemon_restart"}) +
                        ", got " + describe(v));
  }

  bool workload(const json& v, const std::string& where, WorkloadMix* w) {
    if (!object(v, where, {"alloc", "free", "bind", "unbind", "free_bound"})) return false;
    if (!uint(v, where, "alloc", 0, kMaxWeight, &w->alloc) ||
        !uint(v, where, "free", 0, kMaxWeight, &w->free) ||
        !uint(v, where, "bind", 0, kMaxWeight, &w->bind) ||
        !uint(v, where, "unbind", 0, kMaxWeight, &w->unbind) ||
        !uint(v, where, "free_bound", 0, kMaxWeight, &w->free_bound)) {
      return false;
    }
    return true;
  }

  bool check_mix(const WorkloadMix& w, const std::string& where) {
    if (w.alloc == 0) return fail(where, "alloc weight is 0: the guests would never allocate");
    return true;
  }

  bool viommu(const json& v, const std::string& where, ViommuSpec* out) {
    if (!object(v, where,
                {"name", "type", "layout", "completion", "max_pasid", "endpoints", "plugged"})) {
      return false;
    }
    if (!required(v, where, "name") || !required(v, where, "type")) return false;
    unsigned kind = 0;
    if (!name(v, where, "name", &out->name) ||
        !choice(v, where, "type", {"vtd", "virtio-iommu"}, &kind)) {
      return false;
    }
    out->kind = static_cast<ViommuKind>(kind);
    if (out->kind == ViommuKind::vtd) {
      if (v.contains("max_pasid")) {
        return fail(child(where, "max_pasid"), "only for \"virtio-iommu\" vIOMMUs");
      }
      unsigned layout = 1;
      if (!choice(v, where, "layout", {"original", "v3.3"}, &layout)) return false;
      out->layout = layout == 0 ? wire::vtd::VcmdLayout::legacy : wire::vtd::VcmdLayout::rev3_3;
      unsigned completion = 0;
      if (!choice(v, where, "completion", {"immediate", "async"}, &completion)) return false;
      out->completion = completion == 0 ? VtdCompletion::immediate : VtdCompletion::asynchronous;
    } else {
      for (const char* k : {"layout", "completion"}) {
        if (v.contains(k)) return fail(child(where, k), "only for \"vtd\" vIOMMUs");
      }
      if (!uint(v, where, "max_pasid", 1, kMaxPasid, &out->max_pasid)) return false;
    }
    return uint(v, where, "endpoints", 1, kMaxEndpoints, &out->endpoints) &&
           boolean(v, where, "plugged", &out->plugged);
  }

  bool vm(const json& v, const std::string& where, const WorkloadMix& defaults, VmSpec* out) {
    if (!object(v, where, {"name", "token", "quota", "weight", "viommus", "workload"})) {
      return false;
    }
    for (const char* k : {"name", "token", "quota", "viommus"}) {
      if (!required(v, where, k)) return false;
    }
    if (!name(v, where, "name", &out->name) ||
        !uint(v, where, "token", 1, ~std::uint64_t{0}, &out->token) ||
        !uint(v, where, "quota", 1, kMaxQuota, &out->quota) ||
        !uint(v, where, "weight", 1, kMaxWeight, &out->weight)) {
      return false;
    }
    out->workload = defaults;
    if (const json* w = find(v, "workload")) {
      if (!workload(*w, child(where, "workload"), &out->workload)) return false;
      if (!check_mix(out->workload, child(where, "workload"))) return false;
    }
    const json& list = v.at("viommus");
    const std::string lw = child(where, "viommus");
    if (!list.is_array()) return fail(lw, "expected an array, got " + describe(list));
    if (list.empty() || list.size() > kMaxViommusPerVm) {
      return fail(lw, "expected 1 to " + std::to_string(kMaxViommusPerVm) + " vIOMMUs, got " +
                          std::to_string(list.size()));
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      ViommuSpec spec;
      if (!viommu(list[i], element(lw, i), &spec)) return false;
      for (std::size_t j = 0; j < out->viommus.size(); ++j) {
        if (out->viommus[j].name == spec.name) {
          return fail(child(element(lw, i), "name"),
                      in_quotes(spec.name) + " is already the name of " + element(lw, j));
        }
      }
      out->viommus.push_back(std::move(spec));
    }
    return true;
  }

  int vm_index(const Scenario& s, const std::string& name) {
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
      if (s.vms[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }

  bool event(const json& v, const std::string& where, const Scenario& s, EventSpec* out) {
    if (!object(v, where, {"at", "type", "vm", "viommu", "resume", "repeat_every"})) return false;
    if (!required(v, where, "at") || !required(v, where, "type")) return false;
    if (!uint(v, where, "at", 0, kMaxSteps, &out->at)) return false;
    if (out->at >= s.steps) {
      return fail(child(where, "at"), std::to_string(out->at) + " is not below steps (" +
                                          std::to_string(s.steps) + ")");
    }
    if (!event_kind(v.at("type"), child(where, "type"), &out->kind)) return false;
    if (!uint(v, where, "repeat_every", 1, kMaxSteps, &out->repeat_every)) return false;
    const bool needs_vm = out->kind != EventKind::daemon_restart;
    const bool needs_viommu =
        out->kind == EventKind::hot_unplug || out->kind == EventKind::hot_plug;
    const std::string kind = in_quotes(kEventNames[static_cast<unsigned>(out->kind)]);
    if (!needs_vm && v.contains("vm")) return fail(child(where, "vm"), "not used by " + kind);
    if (!needs_viommu && v.contains("viommu")) {
      return fail(child(where, "viommu"), "not used by " + kind);
    }
    if (out->kind != EventKind::vmm_crash && v.contains("resume")) {
      return fail(child(where, "resume"), "only for \"vmm_crash\"");
    }
    if (needs_vm && !required(v, where, "vm")) return false;
    if (needs_viommu && !required(v, where, "viommu")) return false;
    if (!boolean(v, where, "resume", &out->resume)) return false;
    if (needs_vm) {
      std::string vm_name;
      if (!string(v, where, "vm", &vm_name, 64)) return false;
      out->vm = vm_index(s, vm_name);
      if (out->vm < 0) return fail(child(where, "vm"), "no VM is named " + in_quotes(vm_name));
    }
    if (needs_viommu) {
      std::string vi_name;
      if (!string(v, where, "viommu", &vi_name, 64)) return false;
      const VmSpec& vm = s.vms[static_cast<std::size_t>(out->vm)];
      for (std::size_t i = 0; i < vm.viommus.size(); ++i) {
        if (vm.viommus[i].name == vi_name) out->viommu = static_cast<int>(i);
      }
      if (out->viommu < 0) {
        return fail(child(where, "viommu"),
                    "VM " + in_quotes(vm.name) + " has no vIOMMU named " + in_quotes(vi_name));
      }
    }
    if (out->kind == EventKind::daemon_restart && s.host.mode != HostMode::ioasidd) {
      return fail(child(where, "type"), "\"daemon_restart\" needs host.mode \"ioasidd\"");
    }
    return true;
  }

  bool host(const json& v, const std::string& where, HostSpec* out) {
    if (!object(v, where, {"mode", "socket", "grace_seconds"})) return false;
    if (!required(v, where, "mode")) return false;
    unsigned mode = 0;
    if (!choice(v, where, "mode", {"in-process", "ioasidd"}, &mode)) return false;
    out->mode = static_cast<HostMode>(mode);
    if (out->mode == HostMode::in_process && v.contains("socket")) {
      return fail(child(where, "socket"), "only for mode \"ioasidd\"");
    }
    if (!string(v, where, "socket", &out->socket, 107)) return false;
    if (v.contains("socket") && out->socket.empty()) {
      return fail(child(where, "socket"), "empty path");
    }
    return uint(v, where, "grace_seconds", 0, kMaxGraceSeconds, &out->grace_seconds);
  }

  bool random_events(const json& v, const std::string& where, const Scenario& s,
                     RandomEvents* out) {
    if (!object(v, where, {"count", "types", "resume"})) return false;
    if (!required(v, where, "count") || !required(v, where, "types")) return false;
    if (!uint(v, where, "count", 0, kMaxEvents, &out->count)) return false;
    const json& types = v.at("types");
    const std::string tw = child(where, "types");
    if (!types.is_array()) return fail(tw, "expected an array, got " + describe(types));
    if (types.empty()) return fail(tw, "expected at least one event type");
    for (std::size_t i = 0; i < types.size(); ++i) {
      EventKind k{};
      if (!event_kind(types[i], element(tw, i), &k)) return false;
      if (std::find(out->kinds.begin(), out->kinds.end(), k) != out->kinds.end()) {
        return fail(element(tw, i),
                    in_quotes(kEventNames[static_cast<unsigned>(k)]) + " is listed twice");
      }
      if (k == EventKind::daemon_restart && s.host.mode != HostMode::ioasidd) {
        return fail(element(tw, i), "\"daemon_restart\" needs host.mode \"ioasidd\"");
      }
      out->kinds.push_back(k);
    }
    unsigned resume = 0;
    if (!choice(v, where, "resume", {"always", "never", "random"}, &resume)) return false;
    out->resume = static_cast<CrashResume>(resume);
    return true;
  }

  bool scenario(const json& root, Scenario* s) {
    if (!object(root, "",
                {"name", "description", "seed", "steps", "check_every", "history", "host",
                 "workload", "vms", "events", "random_events", "inject_fault", "inject_at"})) {
      return false;
    }
    for (const char* k : {"name", "steps", "host", "vms"}) {
      if (!required(root, "", k)) return false;
    }
    if (!name(root, "", "name", &s->name) ||
        !string(root, "", "description", &s->description, 4096) ||
        !uint(root, "", "seed", 0, ~std::uint64_t{0}, &s->seed) ||
        !uint(root, "", "steps", 1, kMaxSteps, &s->steps) ||
        !uint(root, "", "check_every", 1, kMaxSteps, &s->check_every) ||
        !uint(root, "", "history", 1, kMaxHistory, &s->history) ||
        !host(root.at("host"), "host", &s->host)) {
      return false;
    }
    if (const json* w = find(root, "workload")) {
      if (!workload(*w, "workload", &s->workload) || !check_mix(s->workload, "workload")) {
        return false;
      }
    }
    const json& vms = root.at("vms");
    if (!vms.is_array()) return fail("vms", "expected an array, got " + describe(vms));
    if (vms.empty() || vms.size() > kMaxVms) {
      return fail("vms", "expected 1 to " + std::to_string(kMaxVms) + " VMs, got " +
                             std::to_string(vms.size()));
    }
    std::uint64_t quotas = 0;
    for (std::size_t i = 0; i < vms.size(); ++i) {
      VmSpec vm;
      const std::string where = element("vms", i);
      if (!this->vm(vms[i], where, s->workload, &vm)) return false;
      for (std::size_t j = 0; j < s->vms.size(); ++j) {
        if (s->vms[j].name == vm.name) {
          return fail(child(where, "name"),
                      in_quotes(vm.name) + " is already the name of " + element("vms", j));
        }
        if (s->vms[j].token == vm.token) {
          return fail(child(where, "token"),
                      std::to_string(vm.token) + " is already the token of " + element("vms", j));
        }
      }
      quotas += vm.quota;
      s->vms.push_back(std::move(vm));
    }
    if (quotas > kMaxPasid) {
      return fail("vms", "the quotas add up to " + std::to_string(quotas) +
                             ", more than the host's " + std::to_string(kMaxPasid) + " PASIDs");
    }
    if (const json* events = find(root, "events")) {
      if (!events->is_array()) return fail("events", "expected an array, got " + describe(*events));
      if (events->size() > kMaxEvents) {
        return fail("events", "more than " + std::to_string(kMaxEvents) + " events");
      }
      for (std::size_t i = 0; i < events->size(); ++i) {
        EventSpec e;
        if (!event((*events)[i], element("events", i), *s, &e)) return false;
        e.file_at = e.at;
        e.file_repeat_every = e.repeat_every;
        s->events.push_back(e);
      }
    }
    if (const json* r = find(root, "random_events")) {
      if (!random_events(*r, "random_events", *s, &s->random_events)) return false;
    }
    if (const json* f = find(root, "inject_fault")) {
      std::optional<Fault> fault;
      if (f->is_string()) fault = parse_fault(f->get_ref<const std::string&>());
      if (!fault) {
        return fail("inject_fault",
                    "expected " +
                        alternatives({"double_owner", "keep_freed", "quota_backdoor",
                                      "skip_teardown", "stale_driver", "alter_record"}) +
                        ", got " + describe(*f));
      }
      s->inject_fault = *fault;
    }
    if (root.contains("inject_at")) {
      if (!root.contains("inject_fault")) {
        return fail("inject_at", "only with \"inject_fault\"");
      }
      std::uint64_t at = 0;
      if (!uint(root, "", "inject_at", 0, kMaxSteps, &at)) return false;
      if (at >= s->steps) {
        return fail("inject_at",
                    std::to_string(at) + " is not below steps (" + std::to_string(s->steps) + ")");
      }
      s->inject_at = at;
    }
    return true;
  }

 private:
  std::string* error_;
  bool failed_ = false;
};

// Rejects duplicate keys (nlohmann keeps the last one silently), naming the object's path.
struct DuplicateKeyFinder {
  struct Frame {
    bool object = false;
    std::string key;        // object: the key whose value is being parsed
    std::size_t index = 0;  // array: the element being parsed
    std::set<std::string> keys;
  };
  std::vector<Frame> frames;
  std::string duplicate;  // set on the first duplicate: "path: duplicate key "k""

  std::string path(std::size_t upto) const {
    std::string p;
    for (std::size_t i = 0; i < upto; ++i) {
      if (frames[i].object) {
        p = child(p, frames[i].key);
      } else {
        p = element(p, frames[i].index);
      }
    }
    return p;
  }
  void element_done() {
    if (!frames.empty() && !frames.back().object) ++frames.back().index;
  }
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames.push_back(Frame{true, {}, 0, {}});
        break;
      case json::parse_event_t::array_start:
        frames.push_back(Frame{false, {}, 0, {}});
        break;
      case json::parse_event_t::key: {
        Frame& f = frames.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second && duplicate.empty()) {
          const std::string where = path(frames.size() - 1);
          duplicate = (where.empty() ? std::string("scenario") : where) + ": duplicate key " +
                      in_quotes(f.key);
        }
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames.pop_back();
        element_done();
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  }
};

json workload_json(const WorkloadMix& w) {
  return json{{"alloc", w.alloc},
              {"free", w.free},
              {"bind", w.bind},
              {"unbind", w.unbind},
              {"free_bound", w.free_bound}};
}

std::uint64_t scale(std::uint64_t x, std::uint64_t to, std::uint64_t from) {
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(x) * to / from);
}

}  // namespace

const char* to_string(HostMode m) noexcept {
  return m == HostMode::in_process ? "in-process" : "ioasidd";
}
const char* to_string(ViommuKind k) noexcept {
  return k == ViommuKind::vtd ? "vtd" : "virtio-iommu";
}
const char* to_string(EventKind k) noexcept {
  const auto i = static_cast<unsigned>(k);
  return i < kEventKinds ? kEventNames[i] : "unknown";
}
const char* to_string(Fault f) noexcept {
  for (const auto& n : kFaults) {
    if (n.fault == f) return n.name;
  }
  return "none";
}
const char* to_string(CrashResume r) noexcept {
  switch (r) {
    case CrashResume::always:
      return "always";
    case CrashResume::never:
      return "never";
    case CrashResume::random:
      return "random";
  }
  return "always";
}
const char* layout_name(wire::vtd::VcmdLayout l) noexcept {
  return l == wire::vtd::VcmdLayout::legacy ? "original" : "v3.3";
}
std::optional<Fault> parse_fault(std::string_view name) noexcept {
  for (const auto& n : kFaults) {
    if (name == n.name) return n.fault;
  }
  return std::nullopt;
}
const char* fault_invariant(Fault f) noexcept {
  for (const auto& n : kFaults) {
    if (n.fault == f) return n.invariant;
  }
  return "";
}

std::optional<Scenario> parse_scenario(std::string_view text, const std::string& source,
                                       std::string* error) {
  std::string message;
  Scenario s;
  s.source = source;
  try {
    DuplicateKeyFinder dups;
    const json root = json::parse(text.begin(), text.end(), std::ref(dups));
    if (!dups.duplicate.empty()) {
      message = dups.duplicate;
    } else {
      Parser p(&message);
      if (p.scenario(root, &s)) return s;
    }
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." without the tag.
    const char* what = e.what();
    const char* tail = std::strstr(what, "] ");
    message = tail != nullptr ? tail + 2 : what;
  } catch (const std::exception& e) {
    message = std::string("cannot read: ") + e.what();
  }
  *error = source + ": " + message;
  return std::nullopt;
}

std::string scenario_to_json(const Scenario& s) {
  json root;
  root["name"] = s.name;
  if (!s.description.empty()) root["description"] = s.description;
  root["seed"] = s.seed;
  root["steps"] = s.steps;
  root["check_every"] = s.check_every;
  root["history"] = s.history;
  json host{{"mode", to_string(s.host.mode)}, {"grace_seconds", s.host.grace_seconds}};
  if (!s.host.socket.empty()) host["socket"] = s.host.socket;
  root["host"] = host;
  root["workload"] = workload_json(s.workload);
  json vms = json::array();
  for (const VmSpec& vm : s.vms) {
    json v{{"name", vm.name},
           {"token", vm.token},
           {"quota", vm.quota},
           {"weight", vm.weight},
           {"workload", workload_json(vm.workload)}};
    json list = json::array();
    for (const ViommuSpec& vi : vm.viommus) {
      json j{{"name", vi.name},
             {"type", to_string(vi.kind)},
             {"endpoints", vi.endpoints},
             {"plugged", vi.plugged}};
      if (vi.kind == ViommuKind::vtd) {
        j["layout"] = layout_name(vi.layout);
        j["completion"] = vi.completion == VtdCompletion::immediate ? "immediate" : "async";
      } else if (vi.max_pasid != 0) {
        j["max_pasid"] = vi.max_pasid;
      }
      list.push_back(std::move(j));
    }
    v["viommus"] = std::move(list);
    vms.push_back(std::move(v));
  }
  root["vms"] = std::move(vms);
  json events = json::array();
  for (const EventSpec& e : s.events) {
    json j{{"at", e.at}, {"type", to_string(e.kind)}};
    if (e.vm >= 0) j["vm"] = s.vms[static_cast<std::size_t>(e.vm)].name;
    if (e.viommu >= 0) {
      j["viommu"] =
          s.vms[static_cast<std::size_t>(e.vm)].viommus[static_cast<std::size_t>(e.viommu)].name;
    }
    if (e.kind == EventKind::vmm_crash) j["resume"] = e.resume;
    if (e.repeat_every != 0) j["repeat_every"] = e.repeat_every;
    events.push_back(std::move(j));
  }
  root["events"] = std::move(events);
  if (!s.random_events.kinds.empty()) {
    json types = json::array();
    for (EventKind k : s.random_events.kinds) types.push_back(to_string(k));
    root["random_events"] = json{{"count", s.random_events.count},
                                 {"types", std::move(types)},
                                 {"resume", to_string(s.random_events.resume)}};
  }
  if (s.inject_fault != Fault::none) {
    root["inject_fault"] = to_string(s.inject_fault);
    if (s.inject_at) root["inject_at"] = *s.inject_at;
  }
  return root.dump(2) + "\n";
}

Scenario rescale_steps(const Scenario& s, std::uint64_t steps) {
  Scenario out = s;
  if (steps == 0 || steps == s.steps) return out;
  out.steps = steps;
  for (EventSpec& e : out.events) {
    e.at = std::min(scale(e.at, steps, s.steps), steps - 1);
    if (e.repeat_every != 0)
      e.repeat_every = std::max<std::uint64_t>(1, scale(e.repeat_every, steps, s.steps));
  }
  if (out.inject_at) out.inject_at = std::min(scale(*out.inject_at, steps, s.steps), steps - 1);
  // As many random events per step as before (at least one when there were any).
  if (s.random_events.count != 0) {
    out.random_events.count = static_cast<std::uint32_t>(
        std::clamp<std::uint64_t>(scale(s.random_events.count, steps, s.steps), 1, kMaxEvents));
  }
  out.check_every = std::max<std::uint64_t>(1, std::min(s.check_every, steps));
  return out;
}

}  // namespace ioasid::sim
