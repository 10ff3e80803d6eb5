#include "parallel_session.h"

#include <fmt/format.h>

#include "parallel/mpi_communicator.h"
#include "parallel/step_message.h"
#include "parallel/tp_worker.h"

namespace tern::cli {

void ParallelOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--tp", tp, "tensor-parallel ranks: launch with mpirun -np (tp × pp); see docs/parallel.md")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--pp", pp, "pipeline-parallel stages (not implemented yet)")->check(CLI::Range(1, 1024));
  cmd.add_option("--tp-comm", tp_comm, "tensor-parallel all-reduce: auto (the activation dtype) or int8 (per-row "
                                       "scales; docs/parallel.md)");
}

std::unique_ptr<ParallelSession> ParallelSession::start(const ParallelOptions& o, const RuntimeOptions& rt) {
  const Result<TpCommMode> mode = parse_tp_comm(o.tp_comm);
  if (o.tp == 1 && !mode.is_ok()) fail(mode.status().message());
  if (o.tp == 1 && *mode != TpCommMode::Activation) {
    fail("--tp-comm " + o.tp_comm + " compresses the tensor-parallel all-reduce: it needs --tp 2 or more");
  }
  if (o.tp == 1 && o.pp == 1) return nullptr;
  const std::string layout = fmt::format("--tp {} --pp {}", o.tp, o.pp);
  if (rt.device == "cuda") fail(layout + ": tensor parallelism runs on the CPU only so far (--device cuda)");
  auto comm = open_mpi_communicator();
  if (!comm.is_ok()) fail(layout + ": " + comm.status().message());
  std::unique_ptr<ParallelSession> s(new ParallelSession(std::move(comm).value()));
  const int n = s->comm_->size();
  if (n != o.tp * o.pp) {
    s->idle_ = true;
    if (s->comm_->rank() != 0) return s;  // rank 0 reports it, once
    fail(fmt::format("{} needs {} ranks but this job has {} (launch with mpirun -np {})", layout, o.tp * o.pp, n,
                     o.tp * o.pp));
  }
  if (!mode.is_ok()) {
    s->idle_ = true;
    if (s->comm_->rank() != 0) return s;  // rank 0 reports it, once
    fail(mode.status().message());
  }
  s->tp_comm_ = *mode;
  if (o.pp > 1) {
    s->idle_ = true;
    if (s->comm_->rank() != 0) return s;
    fail("--pp: pipeline parallelism is not implemented yet (use --tp)");
  }
  return s;
}

ParallelSession::~ParallelSession() {
  if (!idle_ && comm_->rank() == 0) (void)broadcast_stop(*comm_);
}

void ParallelSession::run_worker(const std::string& model, const RuntimeOptions& rt) {
  if (idle_) return;
  Runtime runtime(rt);
  auto m = load_model(model, rt, this);
  const Status s = run_tp_worker(*m, runtime.ctx, *comm_);
  if (!s.is_ok()) fail(fmt::format("rank {}: {}", comm_->rank(), s.message()));
}

std::unique_ptr<Model> load_model(const std::string& dir, const RuntimeOptions& rt, const ParallelSession* par) {
  ModelLoadOptions lo = rt.load_options();
  lo.tp = par ? par->comm() : nullptr;
  if (par) lo.tp_comm = par->tp_comm();
  auto m = Model::load(dir, lo);
  if (!m.is_ok()) {
    // Every rank fails the same way at load; rank 0 says it.
    if (par && par->comm()->rank() != 0) fail(fmt::format("rank {}: {}", par->comm()->rank(), m.status().message()));
    fail(m.status().message());
  }
  return std::move(m).value();
}

}  // namespace tern::cli
