// --tp / --pp for the commands that run one model over several processes (issue 17): `mpirun -np N
// tern run|serve|eval ppl|bench offline -m DIR --tp T [--pp P]` with T × P = N. Rank 0 runs the
// command as usual on its shard; every other rank loads its shard and serves rank 0's decoder calls
// (parallel/tp_worker.h) until rank 0 is done.
//
//   auto par = ParallelSession::start(o.parallel);          // null when --tp 1 --pp 1
//   if (par && par->worker()) return par->run_worker(o.model, o.runtime);
//   ModelLoadOptions lo = o.runtime.load_options(); lo.tp = par ? par->comm() : nullptr;
//
// Declare the session before the model and the engine: its destructor tells the workers to stop.
#pragma once

#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.h"
#include "parallel/communicator.h"
#include "parallel/compressed_all_reduce.h"
#include "parallel/rank_watch.h"

namespace tern::cli {

struct ParallelOptions {
  int tp = 1;  // tensor-parallel ranks per stage
  int pp = 1;  // pipeline stages (contiguous layer ranges; docs/parallel.md)
  int pp_micro_batches = 0;  // a step's rows pipelined in this many chunks (0: --pp)
  int pp_steps_in_flight = 0;  // engine steps in the pipeline at once (0: --pp; 1: one at a time)
  int ep = 1;  // expert groups (mixture-of-experts models): each stage is ep groups of tp ranks
  std::string pp_layers;  // --pp-layers A,B,...: each stage's layer count (empty: split by bytes)
  std::string tp_comm = "auto";  // the all-reduce's wire format: auto (activation dtype) or int8
  void add_to(CLI::App& cmd);
};

class ParallelSession {
 public:
  // Null for a single process. Fails with one line when MPI is missing from the build, when the job's
  // rank count is not tp × pp × ep (rank 0 says so; the others end quietly), or for a bad --pp-layers.
  static std::unique_ptr<ParallelSession> start(const ParallelOptions& o, const RuntimeOptions& rt);
  ~ParallelSession();

  bool worker() const { return comm_->rank() != 0; }
  // The whole job (rank 0 announces each decoder call over it; /metrics counts it).
  Communicator* comm() const { return comm_.get(); }
  // This rank's tensor-parallel group: the job when --pp 1, its stage's ranks otherwise (null: T = 1).
  Communicator* tp_group() const { return opt_.tp > 1 ? (group_ ? group_.get() : comm_.get()) : nullptr; }
  const ParallelOptions& options() const { return opt_; }
  TpCommMode tp_comm() const { return tp_comm_; }
  // A rank other than 0: loads its shard and serves until rank 0 stops; fails with the rank's error.
  void run_worker(const std::string& model, const RuntimeOptions& rt);
  // The ranks that hold this rank's layers with the other experts (--ep): the job when --pp 1, its
  // stage's T·E ranks otherwise (null: E = 1).
  Communicator* ep_group() const { return opt_.ep > 1 ? (stage_ ? stage_.get() : comm_.get()) : nullptr; }
  // Rank 0: what to do when another rank's process ends (parallel/rank_watch.h), called once on the
  // watch's thread. From the end of load_model() until set, such a loss is one `tern: error:` line and
  // exit 1 (mpirun would otherwise leave rank 0 blocked in a collective for a second and then kill it
  // without a word); null: back to that. A loss during the load is reported when the load ends.
  void on_rank_lost(std::function<void(int rank)> f) const;

 private:
  ParallelSession(std::unique_ptr<Communicator> comm, const ParallelOptions& o) : comm_(std::move(comm)), opt_(o) {}
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Communicator> group_;  // TP × PP or TP × EP: this rank's T tensor-parallel peers (over comm_)
  std::unique_ptr<Communicator> stage_;  // EP × PP: this stage's T·E ranks (over comm_)
  std::vector<int> pp_layers_;           // --pp-layers, parsed
  std::unique_ptr<RankWatch> watch_;     // null when the ranks could not reach rank 0 over TCP
  ParallelOptions opt_;
  // Pipeline parallelism: this rank's stage and timings, reported on stderr when the session ends.
  mutable PpStats pp_stats_;
  mutable PpLayout pp_layout_;
  friend std::unique_ptr<Model> load_model(const std::string&, const RuntimeOptions&, const ParallelSession*,
                                           std::shared_ptr<const GgufFile>);
  bool idle_ = false;  // a rank of a job that will not run (wrong rank count): nothing to stop
  TpCommMode tp_comm_ = TpCommMode::Activation;
};

// Loads the model (this rank's shard under a session) with the runtime's options. `gguf`: the GGUF file
// at `dir` already parsed (null: parsed by the load).
std::unique_ptr<Model> load_model(const std::string& dir, const RuntimeOptions& rt, const ParallelSession* par,
                                  std::shared_ptr<const GgufFile> gguf = nullptr);

// The model and its tokenizer (std::nullopt: a directory without tokenizer.json), the tokenizer built on a
// thread of its own while the weights load (text/model_tokenizer.h); a GGUF file is parsed once for both.
struct ModelAndTokenizer {
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tokenizer;
};
ModelAndTokenizer load_model_and_tokenizer(const std::string& path, const RuntimeOptions& rt, const ParallelSession* par);

}  // namespace tern::cli
