// SPDX-License-Identifier: Apache-2.0
// ctl_test.cc: ioasidctl, the built program run as a subprocess against the built ioasidd (a real
// daemon process over its real socket, state in a temporary directory), with the VMs and PASIDs
// set up through the client library (DaemonBackend): every subcommand in both output forms (the
// JSON parsed and checked against what was set up), the Prometheus exposition and its atomic
// textfile (parsed: names, types, labels, values), every error path with its exit status (no
// daemon, a stale socket, a socket we may not connect to, not an admin per the policy file,
// unknown VM or PASID, a refused or malformed quota, bad arguments), and the value parsers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "ctl/args.hpp"
#include "daemon/test_daemon.hpp"
#include "ioasid/client.hpp"

namespace ioasid::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kRuntime = 1;
constexpr int kUsage = 2;
constexpr int kNotFound = 3;
constexpr int kPermission = 4;
constexpr int kUnavailable = 5;
constexpr int kRefused = 6;

// One sample of a parsed exposition.
struct Sample {
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Family {
  std::string type;
  std::string help;
  std::vector<Sample> samples;
};

// A strict parser of the Prometheus text format (0.0.4) as ioasidctl writes it: every family has
// HELP then TYPE then its samples, names and label names are valid, label values are quoted with
// the three escapes, values are numbers. Fails the test (and returns what it has) otherwise.
std::map<std::string, Family> parse_exposition(const std::string& text) {
  static const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex label_re("[a-zA-Z_][a-zA-Z0-9_]*");
  std::map<std::string, Family> out;
  std::istringstream in(text);
  std::string line;
  std::string current;
  bool typed = false;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "the last line has no newline";
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto sp = rest.find(' ');
      current = rest.substr(0, sp);
      EXPECT_TRUE(std::regex_match(current, name_re)) << line;
      EXPECT_EQ(out.count(current), 0u) << "family twice: " << current;
      out[current].help = sp == std::string::npos ? "" : rest.substr(sp + 1);
      typed = false;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto sp = rest.find(' ');
      EXPECT_EQ(rest.substr(0, sp), current) << "TYPE without its HELP: " << line;
      const std::string type = rest.substr(sp + 1);
      EXPECT_TRUE(type == "gauge" || type == "counter") << line;
      out[current].type = type;
      typed = true;
      continue;
    }
    EXPECT_NE(line.rfind('#', 0), 0u) << "unknown comment: " << line;
    // name{labels} value
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const std::string name = line.substr(0, i);
    EXPECT_EQ(name, current) << "sample outside its family: " << line;
    EXPECT_TRUE(typed) << line;
    Sample s;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos) return out;
        const std::string key = line.substr(i, eq - i);
        EXPECT_TRUE(std::regex_match(key, label_re)) << line;
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        EXPECT_LT(j, line.size()) << "unterminated label value: " << line;
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    const std::string v = line.substr(i + 1);
    std::size_t used = 0;
    s.value = std::stod(v, &used);
    EXPECT_EQ(used, v.size()) << "not a number: " << line;
    out[name].samples.push_back(s);
  }
  return out;
}

double value_of(const std::map<std::string, Family>& m, const std::string& name,
                const std::map<std::string, std::string>& labels = {}) {
  auto it = m.find(name);
  if (it == m.end()) {
    ADD_FAILURE() << "no family " << name;
    return -1;
  }
  for (const Sample& s : it->second.samples) {
    if (s.labels == labels) return s.value;
  }
  ADD_FAILURE() << "no sample of " << name << " with those labels";
  return -1;
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.start(extra_)); }

  // ioasidctl --socket <the daemon's> args...
  ProgramResult ctl(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--socket", d_.socket()});
    return run_program(IOASIDCTL_PATH, args, env);
  }
  // The same with --json, parsed; expects exit status 0.
  json ctl_json(std::vector<std::string> args) {
    args.push_back("--json");
    const ProgramResult r = ctl(args);
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    try {
      return json::parse(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what() << "\n" << r.out;
      return json();
    }
  }
  std::unique_ptr<DaemonBackend> vm(std::uint64_t token, std::uint32_t quota) {
    DaemonOptions o;
    o.socket_path = d_.socket();
    o.vm_token = token;
    o.quota = quota;
    o.timeout = 20s;
    auto b = DaemonBackend::open(o);
    EXPECT_TRUE(b);
    return b ? std::move(*b) : nullptr;
  }
  std::string write_file(const std::string& name, const std::string& text) {
    const std::string path = d_.dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  DaemonProcess d_;
  std::vector<std::string> extra_;
};

// Two VMs: 42 with three PASIDs (one bound to guest PASID 7, one FREE_PENDING), 43 with one.
class CtlSetupTest : public CtlTest {
 protected:
  void SetUp() override {
    CtlTest::SetUp();
    a_ = vm(42, 8);
    b_ = vm(43, 4);
    ASSERT_TRUE(a_ && b_);
    x_ = a_->alloc(1, 0xFFFFF).value();
    y_ = a_->alloc(1, 0xFFFFF).value();
    z_ = a_->alloc(1, 0xFFFFF).value();
    ASSERT_TRUE(a_->bind(y_, 7));
    ASSERT_TRUE(a_->bind(z_, kInvalidId));
    ASSERT_TRUE(a_->free(z_));  // still bound: FREE_PENDING
    w_ = b_->alloc(100, 200).value();
  }
  std::unique_ptr<DaemonBackend> a_;
  std::unique_ptr<DaemonBackend> b_;
  Id x_ = 0, y_ = 0, z_ = 0, w_ = 0;
};

TEST_F(CtlSetupTest, StatusJsonAndTable) {
  const json j = ctl_json({"status"});
  EXPECT_EQ(j["socket"], d_.socket());
  EXPECT_EQ(j["pid"], d_.pid());
  EXPECT_EQ(j["version"], "0.1.0");
  EXPECT_EQ(j["protocol_version"], 1);
  EXPECT_EQ(j["features"], json::array({"spid", "resume", "admin"}));
  EXPECT_EQ(j["durable"], true);
  EXPECT_EQ(j["id_bits"], 20);
  EXPECT_EQ(j["capacity"], 0xFFFFF);
  EXPECT_EQ(j["quota_reserved"], 12);
  EXPECT_EQ(j["sessions"], 2);
  EXPECT_EQ(j["detached_sessions"], 0);
  EXPECT_EQ(j["clients"], 3);  // two VMs and ioasidctl
  EXPECT_EQ(j["live_ids"], 4);
  EXPECT_EQ(j["free_pending_ids"], 1);
  EXPECT_EQ(j["grace_seconds"], 30);
  EXPECT_GE(j["uptime_seconds"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["journal_commits"].get<std::uint64_t>(), 0u);
  const ProgramResult t = ctl({"status"});
  EXPECT_EQ(t.exit_code(), 0);
  EXPECT_NE(t.out.find("pid " + std::to_string(d_.pid())), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("durable (SQLite WAL"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("4 live (1 free pending)"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("2 (0 detached, grace 30 s)"), std::string::npos) << t.out;
}

TEST_F(CtlSetupTest, ListJsonAndTable) {
  const json j = ctl_json({"list"});
  ASSERT_EQ(j["vms"].size(), 2u);
  const json& a = j["vms"][0];
  EXPECT_EQ(a["vm"], 42);
  EXPECT_EQ(a["state"], "alive");
  EXPECT_EQ(a["quota"], 8);
  EXPECT_EQ(a["count"], 3);
  EXPECT_EQ(a["free"], 5);
  EXPECT_EQ(a["bound"], 2);
  EXPECT_EQ(a["peak"], 3);
  EXPECT_EQ(a["quota_refusals"], 0);
  EXPECT_EQ(j["vms"][1]["vm"], 43);
  EXPECT_EQ(j["vms"][1]["count"], 1);
  const ProgramResult t = ctl({"list"});
  ASSERT_EQ(t.exit_code(), 0) << t.err;
  std::istringstream lines(t.out);
  std::string header, row1, row2, extra;
  std::getline(lines, header);
  std::getline(lines, row1);
  std::getline(lines, row2);
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_TRUE(std::regex_search(header, std::regex("^VM +STATE +QUOTA +COUNT +FREE +BOUND")))
      << header;
  EXPECT_TRUE(std::regex_match(row1, std::regex(" *42 +alive +8 +3 +5 +2 +3 +0"))) << row1;
  EXPECT_TRUE(std::regex_match(row2, std::regex(" *43 +alive +4 +1 +3 +0 +1 +0"))) << row2;
}

TEST_F(CtlSetupTest, ListIdsAndShowJsonAndTable) {
  const json ids = ctl_json({"list-ids", "42"});
  EXPECT_EQ(ids["vm"], 42);
  ASSERT_EQ(ids["pasids"].size(), 3u);
  std::map<Id, json> by_id;
  for (const json& p : ids["pasids"]) by_id[p["pasid"].get<Id>()] = p;
  EXPECT_EQ(by_id[x_]["state"], "active");
  EXPECT_EQ(by_id[x_]["refs"], 1);
  EXPECT_EQ(by_id[x_]["binds"], 0);
  EXPECT_TRUE(by_id[x_]["spid"].is_null());
  EXPECT_EQ(by_id[y_]["refs"], 2);
  EXPECT_EQ(by_id[y_]["binds"], 1);
  EXPECT_EQ(by_id[y_]["spid"], 7);
  EXPECT_EQ(by_id[z_]["state"], "free_pending");
  // Hexadecimal tokens are accepted.
  EXPECT_EQ(ctl_json({"list-ids", "0x2a"}), ids);

  const json show = ctl_json({"show", "42"});
  EXPECT_EQ(show["vm"], 42);
  EXPECT_EQ(show["quota"], 8);
  EXPECT_EQ(show["count"], 3);
  EXPECT_EQ(show["pasids"], ids["pasids"]);

  const ProgramResult t = ctl({"list-ids", "42"});
  ASSERT_EQ(t.exit_code(), 0) << t.err;
  EXPECT_TRUE(
      std::regex_search(t.out, std::regex("\\n *" + std::to_string(y_) + " +active +2 +1 +7\\n")))
      << t.out;
  EXPECT_TRUE(std::regex_search(
      t.out, std::regex("\\n *" + std::to_string(z_) + " +free_pending +1 +1 +-\\n")))
      << t.out;
  const ProgramResult s = ctl({"show", "43"});
  ASSERT_EQ(s.exit_code(), 0) << s.err;
  EXPECT_TRUE(std::regex_search(s.out, std::regex("quota +4 \\(3 free\\)"))) << s.out;
  EXPECT_TRUE(std::regex_search(s.out, std::regex("\\n *" + std::to_string(w_) + " +active")))
      << s.out;
}

TEST_F(CtlSetupTest, ShowPasidJsonAndTable) {
  json j = ctl_json({"show-pasid", std::to_string(y_)});
  EXPECT_EQ(j["pasid"], y_);
  EXPECT_EQ(j["vm"], 42);
  EXPECT_EQ(j["state"], "active");
  EXPECT_EQ(j["refs"], 2);
  EXPECT_EQ(j["binds"], 1);
  EXPECT_EQ(j["spid"], 7);
  j = ctl_json({"show-pasid", std::to_string(w_)});
  EXPECT_EQ(j["vm"], 43);
  EXPECT_TRUE(j["spid"].is_null());
  j = ctl_json({"show-pasid", std::to_string(z_)});
  EXPECT_EQ(j["state"], "free_pending");
  const ProgramResult t = ctl({"show-pasid", std::to_string(y_)});
  ASSERT_EQ(t.exit_code(), 0) << t.err;
  EXPECT_TRUE(std::regex_search(t.out, std::regex("(^|\\n)vm +42\\n"))) << t.out;
  EXPECT_TRUE(std::regex_search(t.out, std::regex("\\nspid +7\\n"))) << t.out;
}

TEST_F(CtlSetupTest, SetQuotaChangesItAndRefusalsChangeNothing) {
  ProgramResult r = ctl({"set-quota", "42", "5"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "VM 42: quota 5\n");
  EXPECT_EQ(a_->set_info().value().quota, 5u);
  EXPECT_EQ(ctl_json({"set-quota", "43", "9"}), json({{"vm", 43}, {"quota", 9}}));
  EXPECT_EQ(b_->set_info().value().quota, 9u);
  // Below the VM's count (3): refused, unchanged.
  r = ctl({"set-quota", "42", "2"});
  EXPECT_EQ(r.exit_code(), kRefused);
  EXPECT_NE(r.err.find("VM 42: refused"), std::string::npos) << r.err;
  EXPECT_EQ(a_->set_info().value().quota, 5u);
  // Above the capacity: refused.
  r = ctl({"set-quota", "42", "4000000000"});
  EXPECT_EQ(r.exit_code(), kRefused) << r.err;
  EXPECT_EQ(a_->set_info().value().quota, 5u);
  // No such VM.
  r = ctl({"set-quota", "44", "5"});
  EXPECT_EQ(r.exit_code(), kNotFound);
  EXPECT_EQ(r.err, "ioasidctl: VM 44: not found\n");
  // Malformed quotas: usage errors, the daemon is not asked.
  for (const char* bad : {"0", "-1", "abc", "4294967296", "1.5", "", " 5"}) {
    r = ctl({"set-quota", "42", bad});
    EXPECT_EQ(r.exit_code(), kUsage) << bad;
    EXPECT_NE(r.err.find("invalid quota"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_EQ(a_->set_info().value().quota, 5u);
}

TEST_F(CtlSetupTest, StatsJsonAndTableMatchTheClientLibrary) {
  auto admin = DaemonAdmin::open(d_.socket(), 20s);
  ASSERT_TRUE(admin);
  const DaemonStats want = (*admin)->stats().value();
  const json j = ctl_json({"stats"});
  EXPECT_EQ(j.size(), 20u);
  EXPECT_EQ(j["live_ids"], want.space.live_ids);
  EXPECT_EQ(j["free_pending_ids"], want.space.free_pending_ids);
  EXPECT_EQ(j["reserved_ids"], 1);
  EXPECT_EQ(j["capacity"], want.space.capacity);
  EXPECT_EQ(j["quota_reserved"], want.space.quota_reserved);
  EXPECT_EQ(j["sets"], 2);
  EXPECT_EQ(j["allocs"], 4);
  EXPECT_EQ(j["releases"], 0);
  EXPECT_EQ(j["sessions"], 2);
  EXPECT_EQ(j["clients"], 4);  // two VMs, the admin above and ioasidctl
  EXPECT_GE(j["requests"].get<std::uint64_t>(), want.requests);
  EXPECT_GE(j["journal_commits"].get<std::uint64_t>(), want.journal_commits);
  // Every commit was flushed (by the loop or the flusher thread, several at a time), and the
  // state rebuilt at start once.
  EXPECT_GE(j["journal_flushes"].get<std::uint64_t>(), want.journal_flushes);
  EXPECT_GE(want.journal_flushes, 1u);
  EXPECT_LE(want.journal_flushes, want.journal_commits + 1);
  const ProgramResult t = ctl({"stats"});
  ASSERT_EQ(t.exit_code(), 0);
  EXPECT_TRUE(std::regex_search(t.out, std::regex("\\nlive_ids +4\\n"))) << t.out;
  EXPECT_TRUE(std::regex_search(t.out, std::regex("\\nfree_pending_ids +1\\n"))) << t.out;
}

TEST_F(CtlSetupTest, MetricsExposition) {
  const ProgramResult r = ctl({"metrics"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  const auto m = parse_exposition(r.out);
  EXPECT_EQ(value_of(m, "ioasid_up"), 1);
  EXPECT_EQ(value_of(m, "ioasid_pasids"), 4);
  EXPECT_EQ(value_of(m, "ioasid_free_pending_pasids"), 1);
  EXPECT_EQ(value_of(m, "ioasid_capacity_pasids"), 0xFFFFF);
  EXPECT_EQ(value_of(m, "ioasid_quota_reserved_pasids"), 12);
  EXPECT_EQ(value_of(m, "ioasid_sets"), 2);
  EXPECT_EQ(value_of(m, "ioasid_allocs_total"), 4);
  EXPECT_EQ(value_of(m, "ioasid_sessions"), 2);
  EXPECT_EQ(value_of(m, "ioasid_info", {{"version", "0.1.0"}, {"durable", "true"}}), 1);
  EXPECT_EQ(value_of(m, "ioasid_vm_pasids", {{"vm", "42"}}), 3);
  EXPECT_EQ(value_of(m, "ioasid_vm_pasids", {{"vm", "43"}}), 1);
  EXPECT_EQ(value_of(m, "ioasid_vm_quota_pasids", {{"vm", "42"}}), 8);
  EXPECT_EQ(value_of(m, "ioasid_vm_bound_pasids", {{"vm", "42"}}), 2);
  EXPECT_EQ(value_of(m, "ioasid_vm_dying", {{"vm", "43"}}), 0);
  EXPECT_GT(value_of(m, "ioasid_journal_commits_total"), 0);
  EXPECT_GT(value_of(m, "ioasid_journal_commit_seconds_total"), 0);
  EXPECT_GT(value_of(m, "ioasid_journal_flushes_total"), 0);
  EXPECT_GT(value_of(m, "ioasid_start_time_seconds"), 1.6e9);
  for (const auto& [name, f] : m) {
    EXPECT_EQ(f.type == "counter", name.size() > 6 && name.ends_with("_total")) << name;
    EXPECT_FALSE(f.help.empty()) << name;
  }
  // --json carries the same figures.
  const json j = ctl_json({"metrics"});
  ASSERT_EQ(j["metrics"].size(), m.size());
  for (const json& f : j["metrics"]) {
    const std::string name = f["name"];
    ASSERT_EQ(m.count(name), 1u) << name;
    EXPECT_EQ(f["type"], m.at(name).type);
    EXPECT_EQ(f["samples"].size(), m.at(name).samples.size()) << name;
  }
}

TEST_F(CtlSetupTest, MetricsTextfileIsReplacedAtomically) {
  const std::string dir = d_.dir() + "/textfile";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string path = dir + "/ioasid.prom";
  std::ofstream(path) << "old contents\n";
  const ::mode_t old_umask = ::umask(077);
  const ProgramResult r = ctl({"metrics", "--prometheus-textfile", path});
  ::umask(old_umask);
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const auto m = parse_exposition(text.str());
  EXPECT_EQ(value_of(m, "ioasid_up"), 1);
  EXPECT_EQ(value_of(m, "ioasid_vm_pasids", {{"vm", "42"}}), 3);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);  // readable by the collector whatever the umask
  // Nothing else is left in the directory (the temporary file was renamed).
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
  // The short alias.
  EXPECT_EQ(ctl({"metrics", "--textfile", path}).exit_code(), 0);
}

TEST_F(CtlTest, EmptyDaemon) {
  const json list = ctl_json({"list"});
  EXPECT_EQ(list["vms"], json::array());
  const ProgramResult t = ctl({"list"});
  EXPECT_EQ(t.out.find('\n'), t.out.size() - 1) << "only the header: " << t.out;
  EXPECT_EQ(ctl_json({"status"})["sessions"], 0);
  const auto m = parse_exposition(ctl({"metrics"}).out);
  EXPECT_EQ(m.at("ioasid_vm_pasids").samples.size(), 0u);
}

TEST_F(CtlTest, UnknownVmAndPasid) {
  auto v = vm(5, 4);
  const Id id = v->alloc(1, 10).value();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"list-ids", "6"}, {"show", "6"}, {"set-quota", "6", "3"}}) {
    const ProgramResult r = ctl(args);
    EXPECT_EQ(r.exit_code(), kNotFound) << args[0];
    EXPECT_EQ(r.err, "ioasidctl: VM 6: not found\n");
    EXPECT_TRUE(r.out.empty());
  }
  ProgramResult r = ctl({"show-pasid", std::to_string(id + 1)});
  EXPECT_EQ(r.exit_code(), kNotFound);
  EXPECT_EQ(r.err, "ioasidctl: PASID " + std::to_string(id + 1) + ": not found\n");
  r = ctl({"show-pasid", "0"});  // reserved
  EXPECT_EQ(r.exit_code(), kNotFound);
  r = ctl({"show-pasid", "0x100000"});  // outside the 20-bit space
  EXPECT_EQ(r.exit_code(), kNotFound);
  EXPECT_NE(r.err.find("outside the daemon's PASID space"), std::string::npos) << r.err;
}

TEST_F(CtlTest, BadArguments) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"list-ids"},
      {"list-ids", "x"},
      {"list-ids", "-1"},
      {"list-ids", "18446744073709551616"},
      {"show"},
      {"show-pasid", "4294967296"},
      {"show-pasid", "0x"},
      {"set-quota", "1"},
      {"set-quota", "1", "2", "3"},
      {"status", "--no-such-option"},
      {"--timeout", "0", "status"},
      {"--timeout", "-1", "status"},
      {"--timeout", "1.0005", "status"},
      {"--timeout", "abc", "status"},
      {"metrics", "--textfile"},
  };
  for (const auto& args : bad) {
    const ProgramResult r = ctl(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code(), kUsage) << joined << ": " << r.err;
    EXPECT_EQ(r.err.rfind("ioasidctl: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << joined << ": " << r.out;
  }
  const ProgramResult help = run_program(IOASIDCTL_PATH, {"--help"});
  EXPECT_EQ(help.exit_code(), 0);
  for (const char* sub :
       {"status", "list", "list-ids", "show", "show-pasid", "set-quota", "stats", "metrics"}) {
    EXPECT_NE(help.out.find(sub), std::string::npos) << sub;
  }
}

TEST_F(CtlTest, SocketFromTheEnvironmentAndTimeout) {
  ProgramResult r =
      run_program(IOASIDCTL_PATH, {"--timeout", "2.5", "status"}, {"IOASID_SOCKET=" + d_.socket()});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  // --socket wins over the environment.
  r = run_program(IOASIDCTL_PATH, {"--socket", d_.socket(), "list"},
                  {"IOASID_SOCKET=" + d_.dir() + "/nothing"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  // Options may follow the subcommand.
  r = run_program(IOASIDCTL_PATH, {"list", "--json", "--socket", d_.socket()});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["vms"], json::array());
}

TEST_F(CtlTest, NotAnAdminPerThePolicy) {
  d_.stop();
  const std::string policy =
      write_file("policy.json",
                 "{\"rules\":[{\"uids\":[" + std::to_string(::getuid()) + "],\"vms\":[\"*\"]}]}");
  ASSERT_TRUE(d_.start({"--policy", policy}));
  auto v = vm(9, 4);  // allowed: the policy names this uid for every VM
  ASSERT_TRUE(v);
  const Id id = v->alloc(1, 10).value();
  for (const std::vector<std::string>& args : {std::vector<std::string>{"status"},
                                               {"list"},
                                               {"list-ids", "9"},
                                               {"show", "9"},
                                               {"show-pasid", std::to_string(id)},
                                               {"set-quota", "9", "8"},
                                               {"stats"}}) {
    const ProgramResult r = ctl(args);
    EXPECT_EQ(r.exit_code(), kPermission) << args[0];
    EXPECT_EQ(r.err,
              "ioasidctl: permission denied: the daemon's policy does not make this user an "
              "admin\n");
    EXPECT_TRUE(r.out.empty());
  }
  EXPECT_EQ(v->set_info().value().quota, 4u);  // set-quota changed nothing
  // metrics: ioasid_up 0 and the same status.
  const ProgramResult r = ctl({"metrics"});
  EXPECT_EQ(r.exit_code(), kPermission);
  const auto m = parse_exposition(r.out);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(value_of(m, "ioasid_up"), 0);
}

TEST(CtlNoDaemon, UnavailableAtOnceWithAOneLineReason) {
  const std::string dir = make_temp_dir();
  const std::string path = dir + "/broker.sock";
  ProgramResult r = run_program(IOASIDCTL_PATH, {"--socket", path, "status"});
  EXPECT_EQ(r.exit_code(), kUnavailable);
  EXPECT_EQ(r.err,
            "ioasidctl: cannot connect to " + path + ": no such socket (is ioasidd running?)\n");
  // A stale socket file: nobody listens.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  r = run_program(IOASIDCTL_PATH, {"--socket", path, "--timeout", "30", "list"});
  EXPECT_EQ(r.exit_code(), kUnavailable);
  EXPECT_EQ(r.err, "ioasidctl: cannot connect to " + path +
                       ": connection refused (is ioasidd running?)\n");
  // Not a socket at all.
  r = run_program(IOASIDCTL_PATH, {"--socket", dir, "stats"});
  EXPECT_EQ(r.exit_code(), kUnavailable);
  EXPECT_NE(r.err.find("not a socket"), std::string::npos) << r.err;
  // The default path without a daemon there (and nothing in the environment).
  if (!std::filesystem::exists("/run/ioasid/broker.sock")) {
    r = run_program(IOASIDCTL_PATH, {"status"}, {"IOASID_SOCKET"});
    EXPECT_EQ(r.exit_code(), kUnavailable);
    EXPECT_NE(r.err.find("/run/ioasid/broker.sock"), std::string::npos) << r.err;
  }
  // metrics to a textfile: ioasid_up 0, so that a scrape shows no stale figures.
  const std::string prom = dir + "/ioasid.prom";
  r = run_program(IOASIDCTL_PATH, {"--socket", path, "metrics", "--textfile", prom});
  EXPECT_EQ(r.exit_code(), kUnavailable);
  std::ifstream in(prom);
  std::stringstream text;
  text << in.rdbuf();
  const auto m = parse_exposition(text.str());
  EXPECT_EQ(value_of(m, "ioasid_up"), 0);
  // A textfile that cannot be written: a runtime error, the target untouched.
  r = run_program(IOASIDCTL_PATH,
                  {"--socket", path, "metrics", "--textfile", dir + "/missing/ioasid.prom"});
  EXPECT_EQ(r.exit_code(), kRuntime);
  EXPECT_NE(r.err.find("missing/ioasid.prom"), std::string::npos) << r.err;
  r = run_program(IOASIDCTL_PATH, {"--socket", path, "metrics", "--textfile", dir});
  EXPECT_EQ(r.exit_code(), kRuntime);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

// Runs in the child before exec: become nobody (the daemon's socket is 0660 root:root).
void become_nobody() {
  if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);
}

TEST_F(CtlTest, SocketModeRefusesOtherUsers) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run ioasidctl as another user";
  // Let nobody reach the socket's directory, so that the socket's own mode decides.
  ASSERT_EQ(::chmod(d_.dir().c_str(), 0755), 0);
  const ProgramResult r =
      run_program(IOASIDCTL_PATH, {"--socket", d_.socket(), "status"}, {}, become_nobody);
  EXPECT_EQ(r.exit_code(), kPermission) << r.err;
  EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.err;
}

// ---- the value parsers (args.hpp) -------------------------------------------------------------

TEST(CtlArgs, NumbersInDecimalAndHex) {
  std::string why;
  EXPECT_EQ(ctl::parse_vm("42", &why), 42u);
  EXPECT_EQ(ctl::parse_vm("0x2A", &why), 42u);
  EXPECT_EQ(ctl::parse_vm("0X2a", &why), 42u);
  EXPECT_EQ(ctl::parse_vm("010", &why), 10u);  // not octal
  EXPECT_EQ(ctl::parse_vm("18446744073709551615", &why), ~std::uint64_t{0});
  EXPECT_EQ(ctl::parse_pasid("4294967295", &why), 0xFFFFFFFFu);
  EXPECT_EQ(ctl::parse_quota("1", &why), 1u);
  for (const char* bad : {"", "x", "-1", "+1", " 1", "1 ", "0x", "0x-1", "1e3", "0b1", "١"}) {
    EXPECT_FALSE(ctl::parse_vm(bad, &why)) << bad;
    EXPECT_FALSE(why.empty());
  }
  EXPECT_FALSE(ctl::parse_vm("18446744073709551616", &why));
  EXPECT_EQ(why, "above 18446744073709551615");
  EXPECT_FALSE(ctl::parse_pasid("4294967296", &why));
  EXPECT_FALSE(ctl::parse_quota("0", &why));
  EXPECT_EQ(why, "a quota is at least 1");
}

TEST(CtlArgs, Seconds) {
  std::string why;
  EXPECT_EQ(ctl::parse_seconds("5", &why), 5000ms);
  EXPECT_EQ(ctl::parse_seconds("0.5", &why), 500ms);
  EXPECT_EQ(ctl::parse_seconds(".25", &why), 250ms);
  EXPECT_EQ(ctl::parse_seconds("0.001", &why), 1ms);
  EXPECT_EQ(ctl::parse_seconds("86400", &why), 86400000ms);
  for (const char* bad : {"", ".", "0", "0.0", "5.", "1.0001", "-1", "abc", "86400.001", "1e3",
                          "99999999999999999999"}) {
    EXPECT_FALSE(ctl::parse_seconds(bad, &why)) << bad;
  }
}

}  // namespace
}  // namespace ioasid::testing
