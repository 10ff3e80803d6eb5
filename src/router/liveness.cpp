// The hung / busy / dead rule of failed health checks (liveness.h).
#include "router/liveness.h"

namespace tern::router {

CheckVerdict judge_failed_check(const CheckFailure& f) {
  if (!f.healthy) return CheckVerdict::kDown;  // already out: it stays out until a check passes
  if (!f.timed_out) {
    // Refused or reset: a dead process. Once more at once (not an interval later) to be sure.
    return f.confirming ? CheckVerdict::kDown : CheckVerdict::kConfirm;
  }
  if (!f.confirming && f.waited_s > f.timeout_s + kLateLookS) return CheckVerdict::kConfirm;
  // Heard from since the check went out (another check's answer, a stream's token): busy, not hung.
  if (f.silent_s < f.waited_s) return CheckVerdict::kAlive;
  return CheckVerdict::kDown;
}

}  // namespace tern::router
