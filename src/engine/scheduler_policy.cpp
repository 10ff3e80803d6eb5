#include "engine/scheduler_policy.h"

#include <fmt/format.h>

#include "engine/slo_policy.h"

namespace tern {

const Sequence* SchedulingPolicy::victim(const std::vector<Sequence*>& running) const {
  const Sequence* worst = nullptr;
  for (const Sequence* s : running) {
    if (!worst || before(*worst, *s)) worst = s;
  }
  return worst;
}

Result<std::unique_ptr<SchedulingPolicy>> make_scheduling_policy(const std::string& name) {
  if (name == "fcfs") return std::unique_ptr<SchedulingPolicy>(new FcfsPolicy());
  if (name == "priority") return std::unique_ptr<SchedulingPolicy>(new PriorityPolicy());
  if (name == "slo") return std::unique_ptr<SchedulingPolicy>(new SloPolicy());
  return Status::error(fmt::format("unknown scheduling policy '{}' (expected fcfs, priority or slo)", name));
}

}  // namespace tern
