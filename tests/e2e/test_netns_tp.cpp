// Two "machines" on one (issue 17 item 5): scripts/netns makes two network namespaces joined by a
// tc-tbf-shaped veth pair and runs mpirun with one rank in each. These tests need root (CI runs as
// root); where `ip netns add` is not permitted the script exits 77 and the tests skip, saying so. The
// namespaces are always removed (a guard runs `scripts/netns down`), and `down` is idempotent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>
#include <string>

#include "model_test_util.h"
#include "mpi_test_util.h"

namespace tern::test {
namespace {

std::string netns_script() { return std::string(TERN_SOURCE_DIR) + "/scripts/netns"; }

// A name of this process's own (tests may run in parallel: ctest -j), removed on scope exit.
class Namespaces {
 public:
  Namespaces() : name_("t" + std::to_string(getpid() % 100000000)) {}
  ~Namespaces() { (void)run_shell(netns(" down")); }
  Namespaces(const Namespaces&) = delete;
  Namespaces& operator=(const Namespaces&) = delete;
  std::string netns(const std::string& sub_and_args) const {
    std::istringstream in(sub_and_args);
    std::string sub, rest;
    in >> sub;
    std::getline(in, rest);
    return "'" + netns_script() + "' " + sub + " --name " + name_ + rest;
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Brings the link up or says why the test skips (not root, or namespaces not permitted here).
#define TERN_NETNS_UP_OR_SKIP(ns, rate)                                                                \
  do {                                                                                                 \
    if (geteuid() != 0) GTEST_SKIP() << "scripts/netns needs root (CI runs as root)";                  \
    const CommandResult up = run_shell((ns).netns("up --rate " rate));                                 \
    if (up.exit_code == 77) GTEST_SKIP() << "network namespaces not permitted here: " << up.err;       \
    ASSERT_EQ(up.exit_code, 0) << up.err << up.out;                                                    \
  } while (0)

// "tx_a rx_a tx_b rx_b".
std::vector<int64_t> counters(const Namespaces& ns) {
  const CommandResult c = run_shell(ns.netns("counters"));
  std::istringstream in(c.out);
  std::vector<int64_t> v(4, -1);
  for (auto& x : v) in >> x;
  return v;
}

TEST(Netns, UpShapesTheLinkAndDownRemovesEverythingTwice) {
  Namespaces ns;
  TERN_NETNS_UP_OR_SKIP(ns, "1gbit");
  const CommandResult st = run_shell(ns.netns("status"));
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find(ns.name() + ": up"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("tbf"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("rate 1Gbit"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("10.77.0.1/24"), std::string::npos) << st.out;
  // Reshaping in place.
  ASSERT_EQ(run_shell(ns.netns("up --rate 10gbit")).exit_code, 0);
  EXPECT_NE(run_shell(ns.netns("status")).out.find("rate 10Gbit"), std::string::npos);
  for (int64_t c : counters(ns)) EXPECT_GE(c, 0);
  // A bad rate is refused by name.
  const CommandResult bad = run_shell(ns.netns("up --rate fast"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--rate 'fast'"), std::string::npos) << bad.err;

  for (int i = 0; i < 2; ++i) {
    const CommandResult down = run_shell(ns.netns("down"));
    EXPECT_EQ(down.exit_code, 0) << down.err;
  }
  EXPECT_NE(run_shell(ns.netns("status")).out.find(ns.name() + ": down"), std::string::npos);
  const CommandResult list = run_shell("ip netns list");
  EXPECT_EQ(list.out.find(ns.name() + "-a"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(ns.name() + "-b"), std::string::npos) << list.out;
}

// Tensor parallelism with one rank in each namespace, over OpenMPI's TCP transport on the shaped
// veth: the greedy tokens are the single process's, and the all-reduces crossed the veth (its byte
// counters grew by at least what the ranks' all-reduces sent: 2 × 8 layers × 512 × 4 bytes per token).
TEST(Netns, TensorParallelAcrossTwoNamespacesMatchesTheSingleProcess) {
  TERN_SKIP_WITHOUT_MPI();
  if (!std::filesystem::exists(bench_tp_path())) GTEST_SKIP() << "bench_tp not built (TERN_BUILD_BENCH=OFF)";
  Namespaces ns;
  TERN_NETNS_UP_OR_SKIP(ns, "1gbit");
  const std::string args = "'" + model_dir("docs-llama-28m") + "' --ids 1,450,3081,934 --greedy 8 --threads 1";
  const CommandResult one = run_shell("'" + bench_tp_path() + "' " + args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const std::vector<int64_t> before = counters(ns);
  const CommandResult two = run_shell(ns.netns("mpirun -- -np 2 '" + bench_tp_path() + "' " + args));
  ASSERT_EQ(two.exit_code, 0) << two.err << two.out;
  const std::vector<int64_t> after = counters(ns);
  const size_t at = one.out.find("tokens:");
  ASSERT_NE(at, std::string::npos) << one.out;
  const std::string tokens = one.out.substr(at, one.out.find('\n', at) - at);
  EXPECT_NE(two.out.find(tokens), std::string::npos) << two.out;
  const int64_t all_reduce_bytes = 8 * 2 * 8 * 512 * 4;  // ≥ 8 forwards, each rank's share
  EXPECT_GE(after[0] - before[0], all_reduce_bytes);  // rank 0 → rank 1
  EXPECT_GE(after[2] - before[2], all_reduce_bytes);  // rank 1 → rank 0
}

}  // namespace
}  // namespace tern::test
