// Whether a replica whose health check failed is hung, busy or dead: the rule health.cpp applies, a pure
// function of durations so it is tested without a clock (tests/unit/test_router_liveness.cpp).
//
// A hung process (SIGSTOP, a deadlock, a machine that froze) still has its kernel accept connections and
// take requests in, so nothing but silence tells it apart from a busy one. The rule: a replica is hung
// when a health check got no answer within the timeout AND nothing else came from it either (no byte on
// any connection: no other check's answer, no token of a stream, no response head) since that check was
// sent. A busy replica that is slow to answer /health but still streams tokens is therefore never taken
// out, and a hung one is out one timeout after the first check it left unanswered: checks go out every
// interval even while earlier ones are pending, so that is at most interval + timeout after it hung.
#pragma once

namespace tern::router {

struct CheckFailure {
  bool timed_out = false;      // no answer within the timeout (else the connection was refused, reset or closed)
  double waited_s = 0;         // from sending the check to noticing its failure
  double silent_s = 0;         // since the last byte from the replica, on any connection
  double timeout_s = 1;        // --health-timeout
  bool healthy = false;        // the replica is in the rotation
  bool confirming = false;     // this check was itself sent to confirm an earlier failure
};

enum class CheckVerdict {
  kDown,     // out of the rotation (its requests in flight move)
  kConfirm,  // check again at once before deciding (one refusal may be a restart's race; a late look is
             // stale); a confirming check is judged as it is
  kAlive,    // busy, not hung: it sent something after this check went out
};

// The router saw the timeout this much later than it was due: it was not running (a starved machine),
// so the replica's answer may be waiting unread in the socket; such a look is confirmed, not trusted
// (once: a router that is always late still takes a silent replica out, one timeout later).
inline constexpr double kLateLookS = 0.1;

CheckVerdict judge_failed_check(const CheckFailure& f);

}  // namespace tern::router
