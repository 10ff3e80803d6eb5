#include "model/model.h"

#include <fmt/format.h>
#include <malloc.h>

#include <chrono>
#include <optional>

#include "formats/quant/pack_weights.h"
#include "model/archs/architectures.h"
#include "model/bf16_weights.h"
#include "model/blocks/mla_attention.h"
#include "model/blocks/moe.h"
#include "formats/gguf/gguf_config.h"
#include "formats/gguf/gguf_hf_view.h"
#include "model/ep_shard.h"
#include "model/pp_shard.h"
#include "model/tp_shard.h"
#include "model/weight_binder.h"
#include "ops/rope.h"

namespace tern {

Result<LmHeadFormat> parse_lm_head_format(const std::string& s) {
  if (s == "auto") return LmHeadFormat::Auto;
  if (s == "dense") return LmHeadFormat::Dense;
  if (s == "int8") return LmHeadFormat::Int8;
  if (s == "int4") return LmHeadFormat::Int4;
  return Status::error(fmt::format("LM head format '{}' is not one of auto, dense, int8, int4", s));
}

Result<WeightCacheMode> parse_weight_cache_mode(const std::string& s) {
  if (s == "auto") return WeightCacheMode::Auto;
  if (s == "off") return WeightCacheMode::Off;
  return Status::error(fmt::format("weight cache mode '{}' is not one of auto, off", s));
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

LmHeadFormat resolve_lm_head(LmHeadFormat f, bool quantized_checkpoint) {
  return f == LmHeadFormat::Auto ? (quantized_checkpoint ? LmHeadFormat::Int8 : LmHeadFormat::Dense) : f;
}

// The bound dense LM head replaced by its quantized form (a separate copy: a tied embedding keeps
// its dense rows for the lookup), from the packed-weight cache when it holds it. A head the
// checkpoint already stores quantized is left alone.
Result<WeightMatrix> quantize_lm_head(const WeightMatrix& head, LmHeadFormat f, WeightArena& arena, ThreadPool* pool,
                                      const PackedCache* cache, PackedCacheWriter* record, bool* derived) {
  if (f == LmHeadFormat::Dense || f == LmHeadFormat::Auto || !head.dense()) return head;
  const std::string name = f == LmHeadFormat::Int8 ? "lm_head#int8" : "lm_head#int4";
  if (const WeightMatrix* cached = cache ? cache->find(name, head.rows, head.cols) : nullptr) {
    if (record) record->add(name, *cached);
    return *cached;
  }
  int group = 0;
  if (f == LmHeadFormat::Int4) {
    group = 128;
    while (group > 32 && head.cols % group != 0) group /= 2;
  }
  TERN_ASSIGN_OR_RETURN(WeightMatrix q, quantize_dense_for_kernels(head, f == LmHeadFormat::Int8 ? 8 : 4, group, arena,
                                                                   "lm_head", pool));
  *derived = true;
  if (record) record->add(name, q);
  return q;
}

// The load's thread pool: the caller's (options.pool), else one of the default size, made on first use
// (a load that derives nothing never starts threads).
class LoadPool {
 public:
  explicit LoadPool(ThreadPool* given) : given_(given) {}
  ThreadPool* get() {
    if (given_) return given_;
    if (!own_) own_.emplace(default_thread_count());
    return &*own_;
  }

 private:
  ThreadPool* given_;
  std::optional<ThreadPool> own_;
};

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::string& dir, const ModelLoadOptions& options) {
  const bool tp = options.tp && options.tp->size() > 1;
  const bool pp = options.pp && options.pp_stages > 1;
  if (is_gguf_file(dir)) {
    if (options.ep && options.ep->size() > 1) {
      return Status::error(fmt::format("{}: expert parallelism supports safetensors checkpoints only, not GGUF", dir));
    }
    return load_gguf(dir, options);
  }
  const auto t_open = Clock::now();
  auto m = std::make_unique<Model>();
  m->dir_ = dir;
  TERN_ASSIGN_OR_RETURN(m->config_, load_model_config(dir));
  const ArchEntry* arch = find_architecture(m->config_.architecture);
  if (!arch) {
    std::string known;
    for (const auto& e : architecture_table()) known += std::string(known.empty() ? "" : ", ") + e.hf_name;
    return Status::error(fmt::format("{}/config.json: architecture '{}' is not supported (supported: {})", dir,
                                     m->config_.architecture, known));
  }
  TERN_ASSIGN_OR_RETURN(m->quant_, load_quant_config(dir));
  TERN_ASSIGN_OR_RETURN(m->store_, SafetensorsStore::open_dir(dir));
  LoadReport local_report;
  LoadReport& report = options.report ? *options.report : local_report;
  report = LoadReport();
  report.open_s = seconds_since(t_open);
  const bool ep = options.ep && options.ep->size() > 1;
  const LmHeadFormat head_format = resolve_lm_head(options.lm_head, m->quant_.quantized());
  LoadPool pool(options.pool);
  // The packed-weight cache: a whole quantized model on one process (it repacks every layer at load).
  const bool cacheable = options.weight_cache == WeightCacheMode::Auto && !tp && !pp && !ep && m->quant_.quantized();
  const std::string cache_path = dir + "/" + kPackedCacheFile;
  uint64_t cache_key = 0;
  PackedCacheWriter cache_record;
  if (cacheable) {
    const auto t0 = Clock::now();
    TERN_ASSIGN_OR_RETURN(cache_key, packed_cache_key(dir, m->store_, fmt::format("lm_head {}", int(head_format))));
    auto cache = PackedCache::open(cache_path, cache_key, pool.get());
    if (cache.is_ok()) {
      m->packed_cache_ = std::make_shared<const PackedCache>(std::move(cache).value());
      report.cache = "used";
      report.cache_hashed = m->packed_cache_->hashed();
    } else {
      report.cache = "miss: " + cache.status().message();
    }
    report.cache_read_s = seconds_since(t0);
  }
  const auto t_bind = Clock::now();
  // Under tensor parallelism the binder repacks (quantized layers) into an arena of its own: the rank
  // keeps copies of its slices and frees the rest with it (model/tp_shard.h).
  WeightArena bind_arena;
  // So does a pipeline stage of a quantized checkpoint: it keeps copies of its layers' repacked weights
  // only (MoE layers cannot be copied out whole yet: they keep the old way, everything repacked).
  const bool pp_copy = pp && !tp && m->quant_.quantized() && !m->config_.moe.enabled();
  WeightBinder binder(m->store_, m->quant_, tp || pp_copy ? bind_arena : m->arena_);
  if (cacheable) binder.use_packed_cache(m->packed_cache_.get(), &cache_record);
  // yarn's attention factor scales the rotated q/k dims; only the MLA block applies it so far.
  if (!m->config_.mla.enabled() && rope_attention_factor(m->config_.rope) != 1.0) {
    return Status::error(fmt::format("{}/config.json: rope_scaling: yarn with attention factor {} is supported for "
                                     "multi-head latent attention (DeepSeek) only",
                                     dir, rope_attention_factor(m->config_.rope)));
  }
  TERN_ASSIGN_OR_RETURN(m->weights_, arch->build(binder, m->config_));
  report.bind_s = seconds_since(t_bind);
  if (pp) TERN_RETURN_IF_ERROR(m->take_stage(options));
  if (ep) {
    // Alone: E ranks, one expert group each. With --tp T: options.ep is all T·E ranks, group = rank / T
    // (model/ep_shard.h); the group's experts are dropped here, before the tensor-parallel cut copies any.
    // With --pp: options.ep is this stage's T·E ranks, which take_stage kept the same layers for.
    const int T = tp ? options.tp->size() : 1;
    if (options.ep->size() % T != 0) {
      return Status::error(fmt::format("--ep: {} ranks do not form groups of --tp {}", options.ep->size(), T));
    }
    const int group = options.ep->rank() / T, groups = options.ep->size() / T;
    TERN_ASSIGN_OR_RETURN(m->ep_experts_, ep_expert_range(m->config_, group, groups));
    m->weights_ = ep_shard(m->weights_, m->ep_experts_, /*keep_shared=*/!tp || group == 0);
    m->ep_comm_ = options.ep;
  }
  if (tp) {
    TERN_RETURN_IF_ERROR(m->shard(options, &bind_arena));
    bind_arena = WeightArena();  // the other ranks' parts of the repacked layers
    malloc_trim(0);
  } else if (pp_copy) {
    // The whole-matrix "slices" of one rank: what the stage keeps of the repacked layers is copied
    // out of the bind arena, which goes with the other stages' layers.
    TERN_ASSIGN_OR_RETURN(const TpLayout whole, tp_layout(m->config_, 0, 1));
    TERN_ASSIGN_OR_RETURN(m->weights_, shard_weights(m->weights_, m->config_, whole, m->arena_, &bind_arena));
    bind_arena = WeightArena();
    malloc_trim(0);
  }
  // Expert parallelism: rank 0 alone computes logits (with --tp: its group, whose ranks hold the
  // vocabulary slices).
  if (ep && options.ep->rank() >= (tp ? options.tp->size() : 1)) m->weights_.lm_head = {};
  if (pp) pp_drop_ends(m->weights_, m->pp_);
  const WeightMatrix stored_head = m->weights_.lm_head;
  bool head_derived = false;
  if (m->weights_.lm_head.data) {  // a pipeline stage before the last has none
    const auto t0 = Clock::now();
    TERN_ASSIGN_OR_RETURN(m->weights_.lm_head,
                          quantize_lm_head(m->weights_.lm_head, head_format, m->arena_, pool.get(),
                                           m->packed_cache_.get(), cacheable ? &cache_record : nullptr, &head_derived));
    report.derive_s = seconds_since(t0);
  }
  if (cacheable && (binder.cache_misses() > 0 || head_derived) && cache_record.entries() > 0) {
    const auto t0 = Clock::now();
    const Status written = cache_record.write(cache_path, cache_key);
    const std::string why = report.cache == "off" ? "" : " (" + report.cache + ")";  // the miss that led here
    report.cache = (written.is_ok() ? "written" : "not written: " + written.message()) + why;
    report.cache_write_s = seconds_since(t0);
  }
  // Pages read once at load and not again: a quantized checkpoint's layers were unpacked from every
  // page of it (or not read at all: the cache held them), and a dense head quantized here was read to
  // round it. They are read-only file pages (whatever is still read, the embedding rows looked up,
  // faults back in), so the process does not hold the checkpoint and its repacked copy both.
  if (m->quant_.quantized()) {
    for (const auto& t : m->store_.tensors()) release_pages(t.data, t.bytes);
  } else if (stored_head.data && stored_head.dense() && stored_head.data != m->weights_.lm_head.data &&
             !m->arena_.owns(stored_head.data)) {
    release_pages(stored_head.data, data_bytes(stored_head));
  }
  if (options.bf16_dot_layers) {
    // Dense layers point into the mapped shards (or, under tensor parallelism, into copies of slices
    // the arena keeps, which stay): only the shards' pages are released.
    const auto t0 = Clock::now();
    pack_layers_for_bf16_dot(m->weights_, m->arena_, *pool.get(), [&](const void* p, size_t bytes) {
      if (!m->arena_.owns(p)) release_pages(p, bytes);
    });
    report.derive_s += seconds_since(t0);
  }
  m->inv_freq_ = tern::rope_inv_freq(m->config_.rope);
  return m;
}

Status Model::take_stage(const ModelLoadOptions& options) {
  const int tp = options.tp && options.tp->size() > 1 ? options.tp->size() : 1;
  // The stages split by the bytes they read (parallel/pp_layout.h), the LM head as it will be held:
  // a dense head rounded at load weighs what its copy will (--lm-head int8: a byte per weight and an
  // f32 scale per row; int4: half a byte per weight and an f32 scale per group of about 128).
  // GGUF heads stay as stored; a safetensors head is rounded per --lm-head (auto: int8 when quantized).
  const LmHeadFormat head = gguf_ ? LmHeadFormat::Dense : resolve_lm_head(options.lm_head, quant_.quantized());
  const WeightMatrix& h = weights_.lm_head;
  double head_bytes = double(h.bytes());
  if (h.data && h.dense() && (head == LmHeadFormat::Int8 || head == LmHeadFormat::Int4)) {
    const double rows = double(h.rows), cols = double(h.cols);
    head_bytes = head == LmHeadFormat::Int8 ? rows * (cols + 4) : rows * (cols / 2 + cols / 128 * 4);
  }
  TERN_ASSIGN_OR_RETURN(pp_, pp_layout(pp_stage_bytes(weights_, head_bytes), options.pp->rank(), options.pp->size(), options.pp_stages,
                                       options.pp_micro_batches, options.pp_steps_in_flight, options.pp_layers));
  // A stage is T ranks, or with expert parallelism the T·E ranks of its expert groups (options.ep).
  const int stage_ranks = options.ep && options.ep->size() > 1 ? options.ep->size() : tp;
  if (pp_.tp != stage_ranks) {
    return Status::error(fmt::format("pipeline parallelism: stages of {} ranks but {} ranks per stage ({})", pp_.tp,
                                     stage_ranks, stage_ranks == tp ? "the tensor-parallel group" : "the expert groups"));
  }
  weights_ = pp_stage_layers(weights_, pp_);
  config_ = pp_local_config(config_, pp_);
  pp_comm_ = options.pp;
  pp_stats_ext_ = options.pp_stats;
  return Status::ok();
}

Status Model::shard(const ModelLoadOptions& options, const WeightArena* bind_arena) {
  TERN_ASSIGN_OR_RETURN(tp_, tp_layout(config_, options.tp->rank(), options.tp->size()));
  TERN_ASSIGN_OR_RETURN(tp_, tp_align_layout(tp_, weights_, config_));
  TERN_ASSIGN_OR_RETURN(weights_, shard_weights(weights_, config_, tp_, arena_, bind_arena));
  config_ = tp_local_config(config_, tp_);
  tp_comm_ = options.tp;
  tp_comm_mode_ = options.tp_comm;
  return Status::ok();
}

Result<std::unique_ptr<Model>> Model::load_gguf(const std::string& path, const ModelLoadOptions& options) {
  auto m = std::make_unique<Model>();
  m->dir_ = path;
  if (options.gguf) {
    if (options.gguf->path() != path) {
      return Status::error(fmt::format("{}: loaded with the GGUF file opened from {}", path, options.gguf->path()));
    }
    m->gguf_ = options.gguf;
  } else {
    TERN_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
    m->gguf_ = std::make_shared<const GgufFile>(std::move(file));
  }
  TERN_ASSIGN_OR_RETURN(const GgufArch* gguf_arch, gguf_file_arch(*m->gguf_));
  TERN_ASSIGN_OR_RETURN(m->config_, gguf_model_config(*m->gguf_));
  const ArchEntry* arch = find_architecture(m->config_.architecture);
  if (!arch) return m->gguf_->error(fmt::format("architecture {} has no builder", m->config_.architecture));
  // The file under Hugging Face names: the architecture's own builder binds it.
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<GgufHfView> view, GgufHfView::open(*m->gguf_, *gguf_arch, m->config_));
  WeightBinder binder(*view);
  TERN_ASSIGN_OR_RETURN(m->weights_, arch->build(binder, m->config_));
  // GGUF blocks are used in place from the mmap (or the view's un-permuted q/k copies): a pipeline
  // stage keeps its layers' views (the others' blocks are never read, so never resident); row slices
  // are views, column slices copies (model/tp_shard.h).
  const bool pp = options.pp && options.pp_stages > 1;
  if (pp) TERN_RETURN_IF_ERROR(m->take_stage(options));
  if (options.tp && options.tp->size() > 1) TERN_RETURN_IF_ERROR(m->shard(options, nullptr));
  if (pp) pp_drop_ends(m->weights_, m->pp_);
  if (options.bf16_dot_layers) {
    // The source leaves the process: the view's un-permuted q/k copies are freed, the file's pages
    // dropped (tensor-parallel column slices, copies in the arena, stay).
    LoadPool pool(options.pool);
    pack_layers_for_bf16_dot(m->weights_, m->arena_, *pool.get(), [&](const void* p, size_t bytes) {
      if (view->release_copy(p) || m->arena_.owns(p)) return;
      if (m->gguf_->mapped()) release_pages(p, bytes);
    });
  }
  m->inv_freq_ = tern::rope_inv_freq(m->config_.rope);
  // llama3-style scaling stored as per-frequency divisors (rope_freqs.weight).
  const std::vector<float>& divisors = view->rope_divisors();
  for (size_t i = 0; i < divisors.size() && i < m->inv_freq_.size(); ++i) m->inv_freq_[i] /= divisors[i];
  m->gguf_view_ = std::move(view);
  return m;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The tensors of a quantized linear layer that hold no parameters of their own.
bool is_quant_aux(const std::string& name) {
  for (std::string_view s : {".qzeros", ".scales", ".g_idx", ".weight_scale", ".weight_zero_point", ".weight_shape",
                             ".weight_g_idx", ".input_scale"}) {
    if (ends_with(name, s)) return true;
  }
  return false;
}

}  // namespace

std::map<std::string, int64_t> Model::parameters_by_format() const {
  std::map<std::string, int64_t> by;
  if (gguf_) {
    for (const auto& t : gguf_->tensors()) by[gguf_traits(t.type).name] += t.numel();
    return by;
  }
  for (const auto& t : store_.tensors()) {
    if (!quant_.quantized()) {
      by[dtype_name(t.dtype)] += t.numel();
      continue;
    }
    if (is_quant_aux(t.name)) continue;
    // AWQ / GPTQ qweight and compressed-tensors weight_packed: 32 / bits codes per int32 word.
    const bool packed = ends_with(t.name, ".qweight") || ends_with(t.name, ".weight_packed");
    if (!packed) {
      by[dtype_name(t.dtype)] += t.numel();
      continue;
    }
    const std::string module = t.name.substr(0, t.name.rfind('.'));
    const QuantConfig q = quant_.for_module(module);
    const int bits = q.bits > 0 && q.bits <= 32 ? q.bits : 32;
    by[fmt::format("int{} ({}, {})", bits, quant_method_name(q.method),
                   q.group > 0 ? fmt::format("group {}", q.group) : std::string("per channel"))] +=
        t.numel() * (32 / bits);
  }
  return by;
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const auto& [format, count] : parameters_by_format()) n += count;
  return n;
}

int64_t Model::weight_bytes_per_token() const {
  int64_t bytes = 0;
  auto add = [&](const WeightMatrix& w) { bytes += int64_t(w.bytes()); };
  for (const auto& l : weights_.layers) {
    add(l.attn.q), add(l.attn.k), add(l.attn.v), add(l.attn.o);
    if (l.mla) {  // kv_b_proj is read as its absorbed f32 per-head copies
      add(l.mla->q), add(l.mla->q_a), add(l.mla->q_b), add(l.mla->kv_a), add(l.mla->o);
      bytes += int64_t((l.mla->w_uk_t.size() + l.mla->w_uv.size()) * sizeof(float));
    }
    add(l.mlp.gate), add(l.mlp.up), add(l.mlp.down);
    if (l.moe) bytes += moe_bytes_per_token(*l.moe, config_.moe.top_k);
  }
  add(weights_.lm_head);
  return bytes;
}

}  // namespace tern
