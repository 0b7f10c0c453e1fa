// SPDX-License-Identifier: Apache-2.0
// policy_test.cc: ioasidd's access policy: the parser's accepted and refused files (each with its
// precise message), rule evaluation, and enforcement by a running daemon: credentials the policy
// does not name are refused (-EPERM) for sessions and administration, and a bad policy file stops
// the daemon at startup with exit status 2 and the reason. Tests run as one uid, so the refused
// cases use a policy that names other uids and gids.
#include "daemon/policy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "daemon/test_daemon.hpp"

namespace ioasid::daemon {
namespace {

using ioasid::testing::DaemonProcess;
using ioasid::testing::RawConn;
namespace b = ioasid::broker;

std::string parse_error(const std::string& text) {
  std::string error;
  auto p = parse_policy(text, &error);
  EXPECT_FALSE(p.has_value()) << text;
  return error;
}

TEST(PolicyParse, RefusesEveryBadShapeWithWhereAndWhat) {
  EXPECT_EQ(parse_error(""), "not valid JSON");
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[1]"), "not valid JSON");
  EXPECT_EQ(parse_error("[]"), "the top level must be an object with a \"rules\" array");
  EXPECT_EQ(parse_error("{}"), "missing \"rules\"");
  EXPECT_EQ(parse_error("{\"rules\":{}}"), "rules: expected an array");
  EXPECT_EQ(parse_error("{\"rules\":[],\"x\":1}"), "x: unknown key (expected rules)");
  EXPECT_EQ(parse_error("{\"rules\":[1]}"), "rules[0]: expected an object");
  EXPECT_EQ(parse_error("{\"rules\":[{\"vms\":[\"*\"]}]}"),
            "rules[0]: a rule needs a nonempty \"uids\" or \"gids\"");
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[-1]}]}"),
            "rules[0].uids[0]: expected an unsigned 32-bit integer");
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[4294967295]}]}"),
            "rules[0].uids[0]: expected an unsigned 32-bit integer");
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[1.5]}]}"),
            "rules[0].uids[0]: expected an unsigned 32-bit integer");
  EXPECT_EQ(parse_error("{\"rules\":[{\"gids\":7}]}"),
            "rules[0].gids: expected an array of unsigned 32-bit integers");
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[1],\"admin\":1}]}"),
            "rules[0].admin: expected true or false");
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[1],\"vms\":\"*\"}]}"),
            "rules[0].vms: expected an array of VM names or patterns");
  EXPECT_NE(parse_error("{\"rules\":[{\"uids\":[1],\"vms\":[\"vm-a\"]}]}").find("rules[0].vms[0]"),
            std::string::npos);
  EXPECT_NE(parse_error("{\"rules\":[{\"uids\":[1],\"vms\":[-3]}]}").find("rules[0].vms[0]"),
            std::string::npos);
  EXPECT_EQ(parse_error("{\"rules\":[{\"uids\":[1]},{\"uid\":[1]}]}"),
            "rules[1].uid: unknown key (expected uids, gids, vms, admin)");
}

TEST(PolicyParse, EvaluatesUidsGidsNamesAndPatterns) {
  std::string error;
  auto p = parse_policy(
      R"({"rules":[{"uids":[1000],"vms":[42,"1??"]},{"gids":[36],"vms":["[7-8]*"]},
                  {"uids":[5],"admin":true}]})",
      &error);
  ASSERT_TRUE(p) << error;
  const PeerCred u1000{1, 1000, 1000};
  const PeerCred g36{1, 2000, 36};
  const PeerCred u5{1, 5, 5};
  EXPECT_TRUE(p->may_open(u1000, 42));
  EXPECT_TRUE(p->may_open(u1000, 123));
  EXPECT_FALSE(p->may_open(u1000, 1234));
  EXPECT_FALSE(p->may_open(u1000, 43));
  EXPECT_TRUE(p->may_open(g36, 7));
  EXPECT_TRUE(p->may_open(g36, 8123));
  EXPECT_FALSE(p->may_open(g36, 42));
  EXPECT_FALSE(p->may_open(u5, 42));  // an admin rule without vms opens nothing
  EXPECT_TRUE(p->is_admin(u5));
  EXPECT_FALSE(p->is_admin(u1000));
  const Policy d = Policy::allow_uid(1000);
  EXPECT_TRUE(d.may_open(u1000, ~std::uint64_t{0}));
  EXPECT_TRUE(d.may_open(PeerCred{1, 0, 0}, 3));
  EXPECT_FALSE(d.may_open(g36, 3));
  EXPECT_TRUE(d.is_admin(u1000));
}

class PolicyDaemonTest : public ::testing::Test {
 protected:
  std::string write_policy(const std::string& text) {
    const std::string path = d_.dir() + "/policy.json";
    std::ofstream(path) << text;
    return path;
  }
  DaemonProcess d_;
};

TEST_F(PolicyDaemonTest, CredentialsThePolicyDoesNotNameAreRefused) {
  const unsigned uid = getuid();
  const unsigned gid = getgid();
  // Names other uids and gids only: this process may do nothing.
  const std::string other = "{\"rules\":[{\"uids\":[" + std::to_string(uid + 1) + "],\"gids\":[" +
                            std::to_string(gid + 1) + "],\"vms\":[\"*\"],\"admin\":true}]}";
  ASSERT_TRUE(d_.start({"--policy", write_policy(other)}));
  RawConn c(d_.socket());
  c.hello();
  b::OpenSessionRequest o;
  o.vm_token = 1;
  o.quota = 4;
  EXPECT_EQ(c.call(2, o).status, -EPERM);
  EXPECT_EQ(c.call(3, b::ResumeRequest{1, {1}}).status, -EPERM);
  EXPECT_EQ(c.call(4, b::StatsRequest{}).status, -EPERM);
  EXPECT_EQ(c.call(5, b::ListSetsRequest{0, 0}).status, -EPERM);
  EXPECT_EQ(c.call(6, b::SetQuotaRequest{1, 3}).status, -EPERM);
  EXPECT_EQ(c.call(7, b::StatusRequest{}).status, -EPERM);
  EXPECT_EQ(c.call(8, b::QueryIdRequest{1}).status, -EPERM);
  EXPECT_EQ(c.call(9, b::ListIdsRequest{1, 0, 0}).status, -EPERM);
  d_.stop();
}

TEST_F(PolicyDaemonTest, PolicyByGidAndVmPatternAllows) {
  const std::string mine =
      "{\"rules\":[{\"gids\":[" + std::to_string(getgid()) + "],\"vms\":[\"1*\", 77]}]}";
  ASSERT_TRUE(d_.start({"--policy", write_policy(mine)}));
  RawConn c(d_.socket());
  c.hello();
  b::OpenSessionRequest o;
  o.quota = 4;
  o.vm_token = 25;
  EXPECT_EQ(c.call(2, o).status, -EPERM);
  o.vm_token = 77;
  EXPECT_EQ(c.call(3, o).status, 0);
  RawConn c2(d_.socket());
  c2.hello();
  o.vm_token = 15;
  EXPECT_EQ(c2.call(4, o).status, 0);
  EXPECT_EQ(c2.call(5, b::StatsRequest{}).status, -EPERM);  // not an admin
  d_.stop();
}

TEST_F(PolicyDaemonTest, BadPolicyFileStopsTheDaemonWithTheReason) {
  struct Case {
    std::string text;
    std::string says;
  };
  const Case cases[] = {
      {"{", "not valid JSON"},
      {"{\"rules\":[{\"uids\":[\"root\"]}]}", "rules[0].uids[0]"},
      {"{\"rules\":[{\"uids\":[1],\"vms\":[\"*\"],\"admin\":\"yes\"}]}", "rules[0].admin"},
  };
  for (const Case& c : cases) {
    std::string err;
    const int st =
        ioasid::testing::run_daemon_to_exit({"--socket", d_.dir() + "/s", "--state-dir",
                                             d_.dir() + "/st", "--policy", write_policy(c.text)},
                                            &err);
    EXPECT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 2) << c.text;
    EXPECT_NE(err.find(c.says), std::string::npos) << err;
  }
  std::string err;
  const int st = ioasid::testing::run_daemon_to_exit(
      {"--socket", d_.dir() + "/s", "--policy", d_.dir() + "/missing.json"}, &err);
  EXPECT_EQ(WEXITSTATUS(st), 2);
  EXPECT_NE(err.find("cannot read"), std::string::npos) << err;
}

}  // namespace
}  // namespace ioasid::daemon
