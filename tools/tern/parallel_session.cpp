#include "parallel_session.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "parallel/group_communicator.h"
#include "parallel/pp_layout.h"
#include "model/prefault.h"
#include "text/model_tokenizer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/step_message.h"
#include "parallel/tp_worker.h"

namespace tern::cli {

void ParallelOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--tp", tp, "tensor-parallel ranks: launch with mpirun -np (tp × pp); see docs/parallel.md")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--pp", pp, "pipeline-parallel stages: contiguous layer ranges per stage; see docs/parallel.md")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--pp-micro-batches", pp_micro_batches,
                 "with --pp: a step's token rows go through the stages in this many pipelined chunks (default: --pp)")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--pp-steps-in-flight", pp_steps_in_flight,
                 "with --pp: engine steps kept in the pipeline at once, one per group of requests (default: --pp; "
                 "1: one step at a time)")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--pp-layers", pp_layers,
                 "with --pp: each stage's layer count, e.g. 5,3 (default: the stages split by weight bytes)");
  cmd.add_option("--ep", ep,
                 "expert groups: the routed experts of a mixture-of-experts model split over them (in each stage, "
                 "ep groups of tp ranks)")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--tp-comm", tp_comm, "tensor-parallel all-reduce: auto (the activation dtype) or int8 (per-row "
                                       "scales; docs/parallel.md)");
}

std::unique_ptr<ParallelSession> ParallelSession::start(const ParallelOptions& o, const RuntimeOptions& rt) {
  const Result<TpCommMode> mode = parse_tp_comm(o.tp_comm);
  if (o.tp == 1 && !mode.is_ok()) fail(mode.status().message());
  if (o.tp == 1 && *mode != TpCommMode::Activation) {
    fail("--tp-comm " + o.tp_comm + " compresses the tensor-parallel all-reduce: it needs --tp 2 or more");
  }
  const std::string no_pp = "--pp-layers " + o.pp_layers + " sets the layers of pipeline stages: it needs --pp 2 or more";
  if (o.tp == 1 && o.pp == 1 && o.ep == 1) {
    if (!o.pp_layers.empty()) fail(no_pp);
    return nullptr;
  }
  const std::string layout = fmt::format("--tp {} --pp {}", o.tp, o.pp) + (o.ep > 1 ? fmt::format(" --ep {}", o.ep) : "");
  const int ranks = o.tp * o.pp * o.ep;
  if (rt.device == "cuda") fail(layout + ": tensor parallelism runs on the CPU only so far (--device cuda)");
  auto comm = open_mpi_communicator();
  if (!comm.is_ok()) fail(layout + ": " + comm.status().message());
  std::unique_ptr<ParallelSession> s(new ParallelSession(std::move(comm).value(), o));
  const int n = s->comm_->size();
  if (n != ranks) {
    s->idle_ = true;
    if (s->comm_->rank() != 0) return s;  // rank 0 reports it, once
    fail(fmt::format("{} needs {} ranks but this job has {} (launch with mpirun -np {})", layout, ranks, n, ranks));
  }
  if (!mode.is_ok()) {
    s->idle_ = true;
    if (s->comm_->rank() != 0) return s;  // rank 0 reports it, once
    fail(mode.status().message());
  }
  s->tp_comm_ = *mode;
  if (!o.pp_layers.empty()) {  // every rank parses the same text; rank 0 reports it, once
    auto parsed = o.pp > 1 ? parse_pp_layers(o.pp_layers, o.pp) : Result<std::vector<int>>(Status::error(no_pp));
    if (!parsed.is_ok()) {
      s->idle_ = true;
      if (s->comm_->rank() != 0) return s;
      fail(parsed.status().message());
    }
    s->pp_layers_ = std::move(parsed).value();
  }
  // World rank r: stage r / (T·E), expert group (r % (T·E)) / T, tensor-parallel index r % T
  // (parallel/pp_layout.h). The rank's T tensor-parallel peers, when they are not the whole job; and
  // under --ep with --pp its stage's T·E ranks, over which each MoE layer's outputs are summed.
  const RankGroups groups = rank_groups(s->comm_->rank(), o.tp, o.ep);
  if ((o.pp > 1 || o.ep > 1) && o.tp > 1) {
    auto g = make_group_communicator(*s->comm_, groups.tp);
    if (!g.is_ok()) fail(layout + ": " + g.status().message());
    s->group_ = std::move(g).value();
  }
  if (o.pp > 1 && o.ep > 1) {
    auto g = make_group_communicator(*s->comm_, groups.stage);
    if (!g.is_ok()) fail(layout + ": " + g.status().message());
    s->stage_ = std::move(g).value();
  }
  auto watch = RankWatch::start(*s->comm_);
  if (watch.is_ok()) {
    s->watch_ = std::move(watch).value();  // armed once the model is loaded (load_model)
  } else if (s->comm_->rank() == 0) {
    std::fprintf(stderr, "[tern] warning: a rank that dies will not be noticed before mpirun ends the job: %s\n",
                 watch.status().message().c_str());
  }
  return s;
}

void ParallelSession::on_rank_lost(std::function<void(int rank)> f) const {
  if (!watch_) return;
  if (!f) {
    f = [size = comm_->size()](int rank) {
      std::fprintf(stderr, "tern: error: rank %d of %d stopped (its process ended); the job cannot go on\n", rank, size);
      std::_Exit(1);
    };
  }
  watch_->arm(std::move(f));
}

ParallelSession::~ParallelSession() {
  if (watch_) watch_->disarm();  // the ranks exit when told to stop: that is no loss
  if (!idle_ && comm_->rank() == 0) (void)broadcast_stop(*comm_);
  // Each pipeline stage's share of the run spent waiting (docs/parallel.md, "Pipeline parallelism").
  const PpLayout& p = pp_layout_;
  const PpStats& st = pp_stats_;
  if (idle_ || !p.enabled() || st.calls == 0) return;
  const double busy = double(st.busy_ns) * 1e-9, wall = double(st.last_ns - st.first_ns) * 1e-9;
  std::fprintf(stderr, "[tern] pp stage %d/%d rank %d (layers %d..%d): busy %.3f s of %.3f s, idle %.1f%%\n", p.stage,
               p.stages, comm_->rank(), p.layer0, p.layer0 + p.layers - 1, busy, wall,
               wall > 0 ? 100.0 * (1.0 - busy / wall) : 0.0);
}

void ParallelSession::run_worker(const std::string& model, const RuntimeOptions& rt) {
  if (idle_) return;
  Runtime runtime(rt);
  auto m = load_model(model, rt, this);
  const Status s = run_tp_worker(*m, runtime.ctx, *comm_);
  if (!s.is_ok()) fail(fmt::format("rank {}: {}", comm_->rank(), s.message()));
}

std::unique_ptr<Model> load_model(const std::string& dir, const RuntimeOptions& rt, const ParallelSession* par,
                                  std::shared_ptr<const GgufFile> gguf) {
  ModelLoadOptions lo = rt.load_options();
  lo.gguf = std::move(gguf);
  if (par) {
    const ParallelOptions& o = par->options();
    lo.tp = par->tp_group();
    lo.tp_comm = par->tp_comm();
    lo.ep = par->ep_group();
    if (o.pp > 1) {
      lo.pp = par->comm();
      lo.pp_stages = o.pp;
      lo.pp_layers = par->pp_layers_;
      lo.pp_micro_batches = o.pp_micro_batches > 0 ? o.pp_micro_batches : o.pp;
      lo.pp_steps_in_flight = o.pp_steps_in_flight;
      lo.pp_stats = &par->pp_stats_;
    }
  }
  auto m = Model::load(dir, lo);
  if (!m.is_ok()) {
    // Every rank fails the same way at load; rank 0 says it.
    if (par && par->comm()->rank() != 0) fail(fmt::format("rank {}: {}", par->comm()->rank(), m.status().message()));
    fail(m.status().message());
  }
  if (par) par->pp_layout_ = m.value()->pp();
  // Armed only now: a load error is every rank's, and rank 0 says it (a rank that ended first is no news).
  if (par) par->on_rank_lost(nullptr);
  return std::move(m).value();
}

ModelAndTokenizer load_model_and_tokenizer(const std::string& path, const RuntimeOptions& rt, const ParallelSession* par) {
  std::shared_ptr<const GgufFile> gguf;
  if (is_gguf_file(path)) gguf = std::make_shared<const GgufFile>(unwrap(GgufFile::open(path)));
  // A load error throws past `tokenizer`, whose destructor waits for its thread.
  auto tokenizer = load_model_tokenizer_async(path, gguf);
  ModelAndTokenizer out;
  out.model = load_model(path, rt, par, std::move(gguf));
  // While the tokenizer is still building: the weights' pages, which the first forward would fault in.
  prefault_weights(*out.model);
  out.tokenizer = unwrap(tokenizer.get());
  return out;
}

}  // namespace tern::cli
