// SPDX-License-Identifier: Apache-2.0
// scenario_test.cc: the scenario parser and the timeline builder: a valid scenario with its
// defaults, the round trip through scenario_to_json, and one test per malformed case (syntax,
// duplicate and unknown keys, wrong types, out-of-range values, missing keys, references that
// name nothing, keys that do not belong to the type, events that do not apply when they happen),
// each checking the exact message; random events; --steps rescaling; every shipped scenario.
#include "sim/scenario.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/timeline.hpp"

namespace ioasid::sim {
namespace {

using json = nlohmann::json;

json base() {
  return json::parse(R"({
    "name": "t",
    "steps": 1000,
    "host": {"mode": "ioasidd"},
    "vms": [
      {"name": "a", "token": 10, "quota": 8,
       "viommus": [{"name": "vtd0", "type": "vtd", "layout": "original"},
                   {"name": "virtio0", "type": "virtio-iommu", "max_pasid": 4095}]},
      {"name": "b", "token": 11, "quota": 8,
       "viommus": [{"name": "vtd0", "type": "vtd"}]}
    ],
    "events": [
      {"at": 100, "type": "hot_unplug", "vm": "a", "viommu": "vtd0"},
      {"at": 200, "type": "hot_plug", "vm": "a", "viommu": "vtd0"},
      {"at": 300, "type": "vmm_crash", "vm": "b", "resume": false},
      {"at": 400, "type": "daemon_restart"}
    ]
  })");
}

// The parse error of j (empty when it parses).
std::string error_of(const std::string& text) {
  std::string error;
  auto s = parse_scenario(text, "scenario.json", &error);
  return s ? std::string() : error;
}
std::string error_of(const json& j) { return error_of(j.dump()); }

std::string timeline_error(const json& j) {
  std::string error;
  auto s = parse_scenario(j.dump(), "scenario.json", &error);
  if (!s) return "parse: " + error;
  Rng rng(s->seed);
  auto t = build_timeline(*s, rng, &error);
  return t ? std::string() : error;
}

TEST(ScenarioParser, ValidScenarioWithDefaults) {
  std::string error;
  auto s = parse_scenario(base().dump(), "scenario.json", &error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->name, "t");
  EXPECT_EQ(s->seed, 1u);
  EXPECT_EQ(s->steps, 1000u);
  EXPECT_EQ(s->check_every, 250u);
  EXPECT_EQ(s->host.mode, HostMode::ioasidd);
  EXPECT_EQ(s->host.grace_seconds, 30u);
  EXPECT_TRUE(s->host.socket.empty());
  ASSERT_EQ(s->vms.size(), 2u);
  EXPECT_EQ(s->vms[0].token, 10u);
  EXPECT_EQ(s->vms[0].weight, 1u);
  EXPECT_EQ(s->vms[0].workload, WorkloadMix{});
  ASSERT_EQ(s->vms[0].viommus.size(), 2u);
  EXPECT_EQ(s->vms[0].viommus[0].kind, ViommuKind::vtd);
  EXPECT_EQ(s->vms[0].viommus[0].layout, wire::vtd::VcmdLayout::legacy);
  EXPECT_EQ(s->vms[0].viommus[1].kind, ViommuKind::virtio);
  EXPECT_EQ(s->vms[0].viommus[1].max_pasid, 4095u);
  EXPECT_EQ(s->vms[1].viommus[0].layout, wire::vtd::VcmdLayout::rev3_3);
  EXPECT_TRUE(s->vms[1].viommus[0].plugged);
  ASSERT_EQ(s->events.size(), 4u);
  EXPECT_EQ(s->events[0].vm, 0);
  EXPECT_EQ(s->events[0].viommu, 0);
  EXPECT_EQ(s->events[2].kind, EventKind::vmm_crash);
  EXPECT_FALSE(s->events[2].resume);
  EXPECT_EQ(s->events[3].vm, -1);
  EXPECT_EQ(s->inject_fault, Fault::none);
}

TEST(ScenarioParser, WorkloadDefaultsAndPerVmOverrides) {
  json j = base();
  j["workload"] = {{"alloc", 7}, {"free_bound", 1}};
  j["vms"][1]["workload"] = {{"bind", 0}};
  std::string error;
  auto s = parse_scenario(j.dump(), "scenario.json", &error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->vms[0].workload.alloc, 7u);
  EXPECT_EQ(s->vms[0].workload.free_bound, 1u);
  EXPECT_EQ(s->vms[0].workload.bind, 2u);
  EXPECT_EQ(s->vms[1].workload.alloc, 7u);  // the VM's own object overrides key by key
  EXPECT_EQ(s->vms[1].workload.bind, 0u);
}

TEST(ScenarioParser, RoundTripThroughTheWriter) {
  json j = base();
  j["description"] = "round trip";
  j["seed"] = 18446744073709551615ull;
  j["random_events"] = {{"count", 3}, {"types", {"hot_unplug", "vmm_crash"}}, {"resume", "random"}};
  j["inject_fault"] = "keep_freed";
  j["inject_at"] = 5;
  j["events"][0]["repeat_every"] = 400;
  std::string error;
  auto s = parse_scenario(j.dump(), "scenario.json", &error);
  ASSERT_TRUE(s) << error;
  const std::string once = scenario_to_json(*s);
  auto again = parse_scenario(once, "again.json", &error);
  ASSERT_TRUE(again) << error << "\n" << once;
  EXPECT_EQ(scenario_to_json(*again), once);
  EXPECT_EQ(again->seed, 18446744073709551615ull);
  EXPECT_EQ(again->inject_fault, Fault::keep_freed);
  EXPECT_EQ(again->random_events.resume, CrashResume::random);
}

TEST(ScenarioParser, SyntaxErrorsSayLineAndColumn) {
  const std::string e = error_of(std::string("{\n  \"name\": \"t\",\n  \"steps\": }"));
  EXPECT_EQ(e.rfind("scenario.json: parse error at line 3, column 12: syntax error", 0), 0u) << e;
  EXPECT_EQ(error_of(std::string("")).rfind("scenario.json: parse error at line 1, column 1", 0),
            0u);
  EXPECT_NE(error_of(std::string("{\"name\": \"\xff\"}")).find("parse error"), std::string::npos);
  EXPECT_EQ(error_of(std::string("[]")),
            "scenario.json: scenario: expected an object, got an array");
}

TEST(ScenarioParser, DuplicateKeysNameTheObject) {
  EXPECT_EQ(error_of(std::string(R"({"name": "t", "name": "u"})")),
            "scenario.json: scenario: duplicate key \"name\"");
  std::string text = base().dump();
  const std::string from = "\"quota\":8,";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.rfind(from), from.size(), "\"quota\":8,\"quota\":9,");
  EXPECT_EQ(error_of(text), "scenario.json: vms[1]: duplicate key \"quota\"");
}

TEST(ScenarioParser, UnknownKeys) {
  json j = base();
  j["stpes"] = 3;
  EXPECT_EQ(error_of(j), "scenario.json: scenario: unknown key \"stpes\"");
  j = base();
  j["vms"][1]["quotaa"] = 3;
  EXPECT_EQ(error_of(j), "scenario.json: vms[1]: unknown key \"quotaa\"");
  j = base();
  j["vms"][0]["viommus"][1]["pasid_bits"] = 3;
  EXPECT_EQ(error_of(j), "scenario.json: vms[0].viommus[1]: unknown key \"pasid_bits\"");
  j = base();
  j["events"][2]["when"] = 3;
  EXPECT_EQ(error_of(j), "scenario.json: events[2]: unknown key \"when\"");
  j = base();
  j["host"]["grace"] = 3;
  EXPECT_EQ(error_of(j), "scenario.json: host: unknown key \"grace\"");
  j = base();
  j["workload"] = {{"allocate", 1}};
  EXPECT_EQ(error_of(j), "scenario.json: workload: unknown key \"allocate\"");
  j = base();
  j["random_events"] = {{"count", 1}, {"types", {"vm_boot"}}, {"every", 3}};
  EXPECT_EQ(error_of(j), "scenario.json: random_events: unknown key \"every\"");
}

TEST(ScenarioParser, WrongTypes) {
  json j = base();
  j["steps"] = "1000";
  EXPECT_EQ(error_of(j),
            "scenario.json: steps: expected an unsigned integer, got the string \"1000\"");
  j = base();
  j["vms"][0]["quota"] = 8.5;
  EXPECT_EQ(error_of(j), "scenario.json: vms[0].quota: expected an unsigned integer, got 8.5");
  j = base();
  j["vms"][0]["viommus"][0]["plugged"] = "yes";
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[0].viommus[0].plugged: expected true or false, got the string "
            "\"yes\"");
  j = base();
  j["vms"] = json::object();
  EXPECT_EQ(error_of(j), "scenario.json: vms: expected an array, got an object");
  j = base();
  j["vms"][1]["viommus"] = "vtd";
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[1].viommus: expected an array, got the string \"vtd\"");
  j = base();
  j["vms"][1]["name"] = "my vm";
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[1].name: expected a name of 1 to 32 characters from "
            "[A-Za-z0-9_.-], got the string \"my vm\"");
  j = base();
  j["host"] = "ioasidd";
  EXPECT_EQ(error_of(j), "scenario.json: host: expected an object, got the string \"ioasidd\"");
  j = base();
  j["events"][0]["vm"] = 0;
  EXPECT_EQ(error_of(j), "scenario.json: events[0].vm: expected a string, got 0");
  j = base();
  j["events"][3]["type"] = "daemon_kill";
  EXPECT_EQ(error_of(j),
            "scenario.json: events[3].type: expected \"hot_unplug\", \"hot_plug\", "
            "\"vmm_crash\", \"vm_shutdown\", \"vm_boot\" or \"daemon_restart\", got the string "
            "\"daemon_kill\"");
}

TEST(ScenarioParser, EnumerationsListTheirValues) {
  json j = base();
  j["vms"].push_back(j["vms"][1]);
  j["vms"][2]["name"] = "c";
  j["vms"][2]["token"] = 12;
  j["vms"][2]["viommus"][0]["layout"] = "v4";
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[2].viommus[0].layout: expected \"original\" or \"v3.3\", got the "
            "string \"v4\"");
  j = base();
  j["vms"][0]["viommus"][0]["type"] = "amd-vi";
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[0].viommus[0].type: expected \"vtd\" or \"virtio-iommu\", got the "
            "string \"amd-vi\"");
  j = base();
  j["host"]["mode"] = "remote";
  EXPECT_EQ(error_of(j),
            "scenario.json: host.mode: expected \"in-process\" or \"ioasidd\", got the string "
            "\"remote\"");
  j = base();
  j["vms"][0]["viommus"][0]["completion"] = true;
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[0].viommus[0].completion: expected \"immediate\" or \"async\", "
            "got true");
  j = base();
  j["inject_fault"] = "everything";
  EXPECT_EQ(error_of(j),
            "scenario.json: inject_fault: expected \"double_owner\", \"keep_freed\", "
            "\"quota_backdoor\", \"skip_teardown\", \"stale_driver\" or \"alter_record\", got "
            "the string \"everything\"");
}

TEST(ScenarioParser, OutOfRangeValues) {
  struct Case {
    const char* pointer;
    json value;
    const char* message;
  };
  const Case cases[] = {
      {"/steps", 0, "steps: 0 is out of range [1, 1000000000]"},
      {"/steps", 1000000001, "steps: 1000000001 is out of range [1, 1000000000]"},
      {"/check_every", 0, "check_every: 0 is out of range [1, 1000000000]"},
      {"/history", 10001, "history: 10001 is out of range [1, 10000]"},
      {"/vms/0/quota", 0, "vms[0].quota: 0 is out of range [1, 65536]"},
      {"/vms/0/quota", 65537, "vms[0].quota: 65537 is out of range [1, 65536]"},
      {"/vms/0/token", 0, "vms[0].token: 0 is out of range [1, 18446744073709551615]"},
      {"/vms/0/token", -5, "vms[0].token: -5 is out of range [1, 18446744073709551615]"},
      {"/vms/0/weight", 0, "vms[0].weight: 0 is out of range [1, 1000]"},
      {"/vms/0/viommus/1/max_pasid", 0,
       "vms[0].viommus[1].max_pasid: 0 is out of range [1, "
       "1048575]"},
      {"/vms/0/viommus/1/max_pasid", 0x100000,
       "vms[0].viommus[1].max_pasid: 1048576 is out of range [1, 1048575]"},
      {"/vms/0/viommus/0/endpoints", 17,
       "vms[0].viommus[0].endpoints: 17 is out of range [1, "
       "16]"},
      {"/host/grace_seconds", 3601, "host.grace_seconds: 3601 is out of range [0, 3600]"},
      {"/events/0/at", 1000, "events[0].at: 1000 is not below steps (1000)"},
      {"/events/0/repeat_every", 0, "events[0].repeat_every: 0 is out of range [1, 1000000000]"},
      {"/workload", json{{"alloc", 1001}}, "workload.alloc: 1001 is out of range [0, 1000]"},
      {"/workload", json{{"alloc", 0}},
       "workload: alloc weight is 0: the guests would never "
       "allocate"},
  };
  for (const Case& c : cases) {
    json j = base();
    j[json::json_pointer(c.pointer)] = c.value;
    EXPECT_EQ(error_of(j), std::string("scenario.json: ") + c.message) << c.pointer;
  }
  json j = base();
  j["vms"][0]["viommus"] = json::array();
  EXPECT_EQ(error_of(j), "scenario.json: vms[0].viommus: expected 1 to 8 vIOMMUs, got 0");
  j = base();
  j["vms"] = json::array();
  EXPECT_EQ(error_of(j), "scenario.json: vms: expected 1 to 256 VMs, got 0");
  j = base();
  j["vms"][0]["quota"] = 65536;
  for (int i = 0; i < 16; ++i) {
    json vm = j["vms"][0];
    vm["name"] = "x" + std::to_string(i);
    vm["token"] = 100 + i;
    j["vms"].push_back(vm);
  }
  EXPECT_EQ(error_of(j),
            "scenario.json: vms: the quotas add up to 1114120, more than the host's 1048575 "
            "PASIDs");
  j = base();
  j["inject_fault"] = "keep_freed";
  j["inject_at"] = 1000;
  EXPECT_EQ(error_of(j), "scenario.json: inject_at: 1000 is not below steps (1000)");
}

TEST(ScenarioParser, MissingRequiredKeys) {
  const char* top[] = {"name", "steps", "host", "vms"};
  for (const char* k : top) {
    json j = base();
    j.erase(k);
    EXPECT_EQ(error_of(j),
              std::string("scenario.json: scenario: missing required key \"") + k + "\"");
  }
  for (const char* k : {"name", "token", "quota", "viommus"}) {
    json j = base();
    j["vms"][1].erase(k);
    EXPECT_EQ(error_of(j),
              std::string("scenario.json: vms[1]: missing required key \"") + k + "\"");
  }
  for (const char* k : {"name", "type"}) {
    json j = base();
    j["vms"][0]["viommus"][1].erase(k);
    EXPECT_EQ(error_of(j),
              std::string("scenario.json: vms[0].viommus[1]: missing required key \"") + k + "\"");
  }
  for (const char* k : {"at", "type", "vm", "viommu"}) {
    json j = base();
    j["events"][0].erase(k);
    EXPECT_EQ(error_of(j),
              std::string("scenario.json: events[0]: missing required key \"") + k + "\"");
  }
  json j = base();
  j["host"].erase("mode");
  EXPECT_EQ(error_of(j), "scenario.json: host: missing required key \"mode\"");
  j = base();
  j["random_events"] = {{"count", 1}};
  EXPECT_EQ(error_of(j), "scenario.json: random_events: missing required key \"types\"");
}

TEST(ScenarioParser, ReferencesThatNameNothing) {
  json j = base();
  j["events"][2]["vm"] = "c";
  EXPECT_EQ(error_of(j), "scenario.json: events[2].vm: no VM is named \"c\"");
  j = base();
  j["events"][1]["viommu"] = "vtd1";
  EXPECT_EQ(error_of(j), "scenario.json: events[1].viommu: VM \"a\" has no vIOMMU named \"vtd1\"");
  j = base();
  j["vms"][1]["name"] = "a";
  EXPECT_EQ(error_of(j), "scenario.json: vms[1].name: \"a\" is already the name of vms[0]");
  j = base();
  j["vms"][1]["token"] = 10;
  EXPECT_EQ(error_of(j), "scenario.json: vms[1].token: 10 is already the token of vms[0]");
  j = base();
  j["vms"][0]["viommus"][1]["name"] = "vtd0";
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[0].viommus[1].name: \"vtd0\" is already the name of "
            "vms[0].viommus[0]");
}

TEST(ScenarioParser, KeysThatDoNotBelongToTheType) {
  json j = base();
  j["vms"][0]["viommus"][1]["layout"] = "v3.3";
  EXPECT_EQ(error_of(j), "scenario.json: vms[0].viommus[1].layout: only for \"vtd\" vIOMMUs");
  j = base();
  j["vms"][0]["viommus"][0]["max_pasid"] = 5;
  EXPECT_EQ(error_of(j),
            "scenario.json: vms[0].viommus[0].max_pasid: only for \"virtio-iommu\" vIOMMUs");
  j = base();
  j["events"][0]["resume"] = true;
  EXPECT_EQ(error_of(j), "scenario.json: events[0].resume: only for \"vmm_crash\"");
  j = base();
  j["events"][2]["viommu"] = "vtd0";
  EXPECT_EQ(error_of(j), "scenario.json: events[2].viommu: not used by \"vmm_crash\"");
  j = base();
  j["events"][3]["vm"] = "a";
  EXPECT_EQ(error_of(j), "scenario.json: events[3].vm: not used by \"daemon_restart\"");
  j = base();
  j["host"]["mode"] = "in-process";
  EXPECT_EQ(error_of(j),
            "scenario.json: events[3].type: \"daemon_restart\" needs host.mode \"ioasidd\"");
  j = base();
  j["host"] = {{"mode", "in-process"}, {"socket", "/run/x.sock"}};
  EXPECT_EQ(error_of(j), "scenario.json: host.socket: only for mode \"ioasidd\"");
  j = base();
  j["inject_at"] = 3;
  EXPECT_EQ(error_of(j), "scenario.json: inject_at: only with \"inject_fault\"");
  j = base();
  j["random_events"] = {{"count", 1}, {"types", {"vm_boot", "vm_boot"}}};
  EXPECT_EQ(error_of(j), "scenario.json: random_events.types[1]: \"vm_boot\" is listed twice");
}

TEST(Timeline, EventsMustApplyWhenTheyHappen) {
  EXPECT_EQ(timeline_error(base()), "");
  json j = base();
  j["events"][1]["type"] = "hot_unplug";
  EXPECT_EQ(timeline_error(j),
            "scenario.json: events[1]: at step 200, vIOMMU \"vtd0\" of VM \"a\" is not plugged "
            "(hot_unplug needs a plugged vIOMMU)");
  j = base();
  j["events"][0]["type"] = "hot_plug";
  EXPECT_EQ(timeline_error(j),
            "scenario.json: events[0]: at step 100, vIOMMU \"vtd0\" of VM \"a\" is plugged "
            "already (hot_plug needs an unplugged vIOMMU)");
  j = base();
  j["events"].push_back({{"at", 50}, {"type", "vm_boot"}, {"vm", "b"}});
  EXPECT_EQ(timeline_error(j),
            "scenario.json: events[4]: at step 50, VM \"b\" is running (vm_boot needs a VM that "
            "was shut down)");
  j = base();
  j["events"].push_back({{"at", 250}, {"type", "vm_shutdown"}, {"vm", "b"}});
  EXPECT_EQ(timeline_error(j),
            "scenario.json: events[2]: at step 300, VM \"b\" is shut down (vmm_crash needs a "
            "running VM)");
  // A repeated unplug without plugs in between fails on its second occurrence.
  j = base();
  j["events"] = {{{"at", 100},
                  {"type", "hot_unplug"},
                  {"vm", "a"},
                  {"viommu", "vtd0"},
                  {"repeat_every", 300}}};
  EXPECT_EQ(timeline_error(j),
            "scenario.json: events[0] repetition 2: at step 400, vIOMMU \"vtd0\" of VM \"a\" is "
            "not plugged (hot_unplug needs a plugged vIOMMU)");
  // Unplug and plug repeated in turn are fine; the file's order does not matter.
  j["events"] = {
      {{"at", 150}, {"type", "hot_plug"}, {"vm", "a"}, {"viommu", "vtd0"}, {"repeat_every", 300}},
      {{"at", 100},
       {"type", "hot_unplug"},
       {"vm", "a"},
       {"viommu", "vtd0"},
       {"repeat_every", 300}}};
  EXPECT_EQ(timeline_error(j), "");
  // A vIOMMU that starts unplugged may be plugged.
  j = base();
  j["vms"][1]["viommus"][0]["plugged"] = false;
  j["events"] = {{{"at", 10}, {"type", "hot_plug"}, {"vm", "b"}, {"viommu", "vtd0"}}};
  EXPECT_EQ(timeline_error(j), "");
  j = base();
  j["events"] = {{{"at", 0}, {"type", "daemon_restart"}, {"repeat_every", 1}}};
  j["steps"] = 2000000;
  EXPECT_EQ(timeline_error(j),
            "scenario.json: events[0]: the timeline would hold more than 1000000 events");
}

TEST(Timeline, OrderedByStepThenByTheFile) {
  json j = base();
  j["events"] = {{{"at", 200}, {"type", "hot_plug"}, {"vm", "a"}, {"viommu", "vtd0"}},
                 {{"at", 100}, {"type", "hot_unplug"}, {"vm", "a"}, {"viommu", "vtd0"}},
                 {{"at", 100}, {"type", "daemon_restart"}}};
  std::string error;
  auto s = parse_scenario(j.dump(), "s.json", &error);
  ASSERT_TRUE(s) << error;
  Rng rng(1);
  auto t = build_timeline(*s, rng, &error);
  ASSERT_TRUE(t) << error;
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].origin, "events[1]");
  EXPECT_EQ((*t)[1].origin, "events[2]");
  EXPECT_EQ((*t)[2].origin, "events[0]");
  // Rescaled to 2 steps everything lands on step 0 or 1, in the same order.
  const Scenario small = rescale_steps(*s, 2);
  Rng rng2(1);
  auto t2 = build_timeline(small, rng2, &error);
  ASSERT_TRUE(t2) << error;
  ASSERT_EQ(t2->size(), 3u);
  EXPECT_EQ((*t2)[0].origin, "events[1]");
  EXPECT_EQ((*t2)[0].at, 0u);
  EXPECT_EQ((*t2)[2].origin, "events[0]");
  EXPECT_EQ((*t2)[2].at, 0u);
}

TEST(Timeline, RandomEventsAreDeterministicAndKeepTheScenarioValid) {
  json j = base();
  j["steps"] = 20000;
  j["random_events"] = {
      {"count", 300},
      {"types",
       {"hot_unplug", "hot_plug", "vmm_crash", "vm_shutdown", "vm_boot", "daemon_restart"}},
      {"resume", "random"}};
  std::string error;
  auto s = parse_scenario(j.dump(), "s.json", &error);
  ASSERT_TRUE(s) << error;
  Rng r1(s->seed), r2(s->seed), r3(s->seed + 1);
  auto a = build_timeline(*s, r1, &error);
  ASSERT_TRUE(a) << error;
  auto b = build_timeline(*s, r2, &error);
  auto c = build_timeline(*s, r3, &error);
  ASSERT_TRUE(b && c);
  ASSERT_EQ(a->size(), b->size());
  bool differs = a->size() != c->size();
  std::size_t randoms = 0, no_resume = 0;
  for (std::size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].at, (*b)[i].at);
    EXPECT_EQ((*a)[i].kind, (*b)[i].kind);
    EXPECT_EQ((*a)[i].vm, (*b)[i].vm);
    EXPECT_EQ((*a)[i].viommu, (*b)[i].viommu);
    if (i < c->size() && ((*a)[i].at != (*c)[i].at || (*a)[i].kind != (*c)[i].kind)) {
      differs = true;
    }
    if (i > 0) {
      EXPECT_LE((*a)[i - 1].at, (*a)[i].at);
    }
    if ((*a)[i].origin.rfind("random", 0) == 0) ++randoms;
    if ((*a)[i].kind == EventKind::vmm_crash && !(*a)[i].resume) ++no_resume;
  }
  EXPECT_TRUE(differs);
  EXPECT_GT(randoms, 100u);  // most draw something that applies
  EXPECT_GT(no_resume, 0u);
  // Every scenario event is there (build_timeline checked that each one applies).
  for (std::size_t e = 0; e < s->events.size(); ++e) {
    const std::string origin = "events[" + std::to_string(e) + "]";
    EXPECT_EQ(std::count_if(a->begin(), a->end(),
                            [&](const TimedEvent& t) { return t.origin == origin; }),
              1);
  }
}

TEST(Scenario, RescaleStepsMovesEventsAndTheInjection) {
  json j = base();
  j["inject_fault"] = "keep_freed";
  j["inject_at"] = 500;
  j["events"][0]["repeat_every"] = 600;
  j["check_every"] = 2000;  // above steps is fine: only the end's scan then
  std::string error;
  auto s = parse_scenario(j.dump(), "s.json", &error);
  ASSERT_TRUE(s) << error;
  const Scenario r = rescale_steps(*s, 100);
  EXPECT_EQ(r.steps, 100u);
  EXPECT_EQ(r.events[0].at, 10u);
  EXPECT_EQ(r.events[0].repeat_every, 60u);
  EXPECT_EQ(r.events[3].at, 40u);
  EXPECT_EQ(*r.inject_at, 50u);
  EXPECT_EQ(r.check_every, 100u);
  const Scenario same = rescale_steps(*s, 1000);
  EXPECT_EQ(scenario_to_json(same), scenario_to_json(*s));
  j["random_events"] = {{"count", 40}, {"types", {"vm_boot"}}};
  s = parse_scenario(j.dump(), "s.json", &error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(rescale_steps(*s, 100).random_events.count, 4u);
  EXPECT_EQ(rescale_steps(*s, 1).random_events.count, 1u);  // at least one
  EXPECT_EQ(rescale_steps(*s, 10000).random_events.count, 400u);
}

TEST(Scenario, ShippedScenariosParseAndBuildTheirTimelines) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(IOASID_SOURCE_DIR) / "scenarios")) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    std::string error;
    auto s = parse_scenario(text.str(), entry.path().filename().string(), &error);
    ASSERT_TRUE(s) << error;
    Rng rng(s->seed);
    EXPECT_TRUE(build_timeline(*s, rng, &error)) << error;
    ++n;
  }
  EXPECT_GE(n, 1u);
}

}  // namespace
}  // namespace ioasid::sim
