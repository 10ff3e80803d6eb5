#include "parallel/pp_layout.h"

#include <fmt/format.h>

#include <algorithm>

namespace tern {

Result<PpLayout> pp_layout(int n_layers, int world_rank, int world_size, int stages, int micro_batches,
                           int steps_in_flight) {
  if (stages < 1 || world_size < 1 || world_size % stages != 0) {
    return Status::error(fmt::format("--pp {}: the job's {} ranks do not divide into {} stages", stages, world_size, stages));
  }
  if (world_rank < 0 || world_rank >= world_size) {
    return Status::error(fmt::format("rank {} of {} is not a rank", world_rank, world_size));
  }
  if (n_layers < stages) {
    return Status::error(fmt::format("--pp {}: config.json num_hidden_layers = {} is fewer than the stages", stages, n_layers));
  }
  if (micro_batches < 1) return Status::error(fmt::format("--pp-micro-batches {} must be at least 1", micro_batches));
  if (steps_in_flight < 0) return Status::error(fmt::format("--pp-steps-in-flight {} must be at least 1", steps_in_flight));
  PpLayout p;
  p.stages = stages;
  p.tp = world_size / stages;
  p.stage = world_rank / p.tp;
  p.tp_rank = world_rank % p.tp;
  p.layer0 = int(int64_t(p.stage) * n_layers / stages);
  p.layers = int(int64_t(p.stage + 1) * n_layers / stages) - p.layer0;
  p.micro_batches = micro_batches;
  p.steps_in_flight = steps_in_flight > 0 ? steps_in_flight : stages;
  return p;
}

}  // namespace tern
