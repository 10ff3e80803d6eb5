// The serving engine (EngineCore over the CpuModelRunner and a paged f32 KV pool) driven step by step,
// with a runner in between that records, for the requests a test watches, every chunk the scheduler
// gave them (position, length, what else was in the batch) and every logits row the model produced
// for them. The rows are the engine's own: the full-vocabulary logits it sampled from, so a test can
// hold them against a reference, not only the tokens. Used by test_tiny_archs_engine.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/cpu_model_runner.h"
#include "engine/engine_core.h"
#include "unit/engine_test_util.h"

namespace tern::test {

// One scheduled chunk of a watched request, as the runner saw it.
struct WatchedChunk {
  RequestId id = 0;
  int64_t pos0 = 0, n_tokens = 0;
  bool prompt = false;            // a chunk of the prompt (or of its recompute), not a decode token
  int64_t others_decoding = 0;    // other sequences of the same batch that decode one token
  int64_t batch_sequences = 0;
};

// The logits row of a watched request's position `pos` (the last of its chunk).
struct WatchedRow {
  RequestId id = 0;
  int64_t pos = 0;
  std::vector<float> logits;
};

// Forwards to the CPU runner; identifies each batch sequence by its block table (the engine hands the
// runner kv().table(id).data(), one vector per live sequence, so the pointer names the request).
class RecordingRunner final : public ModelRunner {
 public:
  explicit RecordingRunner(ModelRunner& inner) : inner_(inner) {}
  void attach(const EngineCore* core) { core_ = core; }
  void watch(RequestId id) { watched_.insert(id); }

  int64_t vocab_size() const override { return inner_.vocab_size(); }
  int64_t max_context() const override { return inner_.max_context(); }
  size_t kv_block_bytes(int block_size, KvDType dtype) const override { return inner_.kv_block_bytes(block_size, dtype); }
  Status allocate_kv(const KvPoolSpec& spec) override { return inner_.allocate_kv(spec); }
  int64_t max_logits_per_sequence() const override { return inner_.max_logits_per_sequence(); }

  Status forward(const StepBatch& batch, float* logits) override {
    TERN_RETURN_IF_ERROR(inner_.forward(batch, logits));
    if (!core_) return Status::ok();
    std::vector<const Sequence*> who(batch.seqs.size(), nullptr);
    int64_t decoding = 0;
    for (size_t j = 0; j < batch.seqs.size(); ++j) {
      for (const Sequence* s : core_->scheduler().running()) {
        if (core_->kv().has(s->id) && core_->kv().table(s->id).data() == batch.seqs[j].block_table) who[j] = s;
      }
      decoding += who[j] && who[j]->decoding();
    }
    const int64_t vocab = inner_.vocab_size();
    int64_t row = 0;
    for (size_t j = 0; j < batch.seqs.size(); ++j) {
      const BatchSequence& b = batch.seqs[j];
      const Sequence* s = who[j];
      const bool watched = s && watched_.count(s->id);
      if (watched) {
        const bool dec = s->decoding();
        chunks.push_back({s->id, b.pos0, b.n_tokens, !dec, decoding - (dec ? 1 : 0), int64_t(batch.seqs.size())});
      }
      if (!b.want_logits) continue;
      for (int64_t i = 0; i < b.n_logits; ++i, ++row) {  // speculative steps: one row per verified position
        if (!watched) continue;
        const float* r = logits + row * vocab;
        rows.push_back({s->id, b.pos0 + b.n_tokens - b.n_logits + i, std::vector<float>(r, r + vocab)});
      }
    }
    return Status::ok();
  }

  std::vector<WatchedChunk> chunks;
  std::vector<WatchedRow> rows;

 private:
  ModelRunner& inner_;
  const EngineCore* core_ = nullptr;
  std::set<RequestId> watched_;
};

struct EngineSetup {
  int64_t num_blocks = 128;
  int block_size = 16;
  int64_t max_step_tokens = 512;
  bool prefix_caching = false;
  SpeculativeConfig speculative;  // with method draft: `drafter` (not owned)
  Drafter* drafter = nullptr;
};

// One engine core over a model: add requests, step, and read what happened.
struct EngineHarness {
  EngineHarness(const Model& model, ExecContext& ctx, const EngineSetup& setup)
      : cpu(model, ctx, setup.max_step_tokens), rec(cpu) {
    const Status st = rec.allocate_kv({setup.num_blocks, setup.block_size, KvDType::F32});
    EXPECT_TRUE(st.is_ok()) << st.message();
    EngineCoreConfig cfg;
    cfg.num_blocks = setup.num_blocks;
    cfg.block_size = setup.block_size;
    cfg.prefix_caching = setup.prefix_caching;
    cfg.scheduler.max_step_tokens = setup.max_step_tokens;
    cfg.speculative = setup.speculative;
    auto c = EngineCore::create(rec, nullptr, cfg, setup.drafter);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    if (c.is_ok()) core = std::move(*c);
    rec.attach(core.get());
  }

  // Adds a request; watched ones have their chunks and logits recorded.
  RequestId add(EngineRequest r, bool watch) {
    const RequestId id = next++;
    if (watch) rec.watch(id);
    const Status st = core->add(id, std::move(r), collector.callback());
    EXPECT_TRUE(st.is_ok()) << st.message();
    return id;
  }
  void step() {
    core->step();
    for (const auto* q : {&core->scheduler().running(), &core->scheduler().waiting()}) {
      for (const Sequence* s : *q) {
        int64_t& n = preemptions_of[s->id];
        n = std::max(n, s->num_preemptions);
      }
    }
    EXPECT_EQ(core->kv().check_invariants(), "");
  }
  void steps(int n) {
    for (int i = 0; i < n && core->has_work(); ++i) step();
  }
  void drain() {
    for (int i = 0; i < 100000 && core->has_work(); ++i) step();
    EXPECT_FALSE(core->has_work());
  }
  int64_t preemptions(RequestId id) const {
    auto it = preemptions_of.find(id);
    return it == preemptions_of.end() ? 0 : it->second;
  }
  std::vector<WatchedChunk> chunks_of(RequestId id) const {
    std::vector<WatchedChunk> out;
    for (const auto& c : rec.chunks) {
      if (c.id == id) out.push_back(c);
    }
    return out;
  }

  CpuModelRunner cpu;
  RecordingRunner rec;
  std::unique_ptr<EngineCore> core;
  Collector collector;
  std::map<RequestId, int64_t> preemptions_of;
  RequestId next = 1;
};

}  // namespace tern::test
