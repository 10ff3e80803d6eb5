// The router's rule for a failed health check (src/router/liveness.h): hung (silent) replicas are out
// after one timed-out check, busy ones (slow /health, but bytes still coming) stay, refusals are confirmed
// once, and a look the router took late (a starved machine) is confirmed before it is trusted.
#include <gtest/gtest.h>

#include "router/liveness.h"

namespace tern::router {
namespace {

CheckFailure timeout(double waited, double silent, bool confirming = false) {
  CheckFailure f;
  f.timed_out = true;
  f.waited_s = waited;
  f.silent_s = silent;
  f.timeout_s = 1;
  f.healthy = true;
  f.confirming = confirming;
  return f;
}

TEST(RouterLiveness, ASilentReplicaIsOutAfterOneTimedOutCheck) {
  // Nothing came from it since the check went out (silent for longer than the check waited).
  EXPECT_EQ(judge_failed_check(timeout(1.0, 1.0)), CheckVerdict::kDown);
  EXPECT_EQ(judge_failed_check(timeout(1.02, 3.5)), CheckVerdict::kDown);
}

TEST(RouterLiveness, ABusyReplicaThatStillSendsIsNotOut) {
  // Its /health answer is late, but a stream's token (or another check's answer) came 0.3 s ago.
  EXPECT_EQ(judge_failed_check(timeout(1.0, 0.3)), CheckVerdict::kAlive);
  EXPECT_EQ(judge_failed_check(timeout(1.0, 0.999)), CheckVerdict::kAlive);
  EXPECT_EQ(judge_failed_check(timeout(1.05, 0.0, true)), CheckVerdict::kAlive);
}

TEST(RouterLiveness, ALateLookIsConfirmedOnce) {
  // The router noticed the timeout 0.9 s after it was due: it was not running, the answer may be unread.
  EXPECT_EQ(judge_failed_check(timeout(1.9, 5.0)), CheckVerdict::kConfirm);
  // A confirming check is judged as it is, late or not: a router that is always late still decides.
  EXPECT_EQ(judge_failed_check(timeout(1.9, 5.0, true)), CheckVerdict::kDown);
  // Within the slack it is not late.
  EXPECT_EQ(judge_failed_check(timeout(1.0 + kLateLookS * 0.5, 5.0)), CheckVerdict::kDown);
}

TEST(RouterLiveness, ARefusalIsConfirmedThenOut) {
  CheckFailure f;
  f.timed_out = false;
  f.healthy = true;
  f.silent_s = 0;  // it answered a moment ago: a refusal is still a dead (or restarting) process
  EXPECT_EQ(judge_failed_check(f), CheckVerdict::kConfirm);
  f.confirming = true;
  EXPECT_EQ(judge_failed_check(f), CheckVerdict::kDown);
}

TEST(RouterLiveness, AReplicaAlreadyOutStaysOut) {
  CheckFailure f = timeout(1.0, 0.0);
  f.healthy = false;
  EXPECT_EQ(judge_failed_check(f), CheckVerdict::kDown);
  f.timed_out = false;
  EXPECT_EQ(judge_failed_check(f), CheckVerdict::kDown);
}

}  // namespace
}  // namespace tern::router
