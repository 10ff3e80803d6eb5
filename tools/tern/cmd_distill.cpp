// tern distill: trains a student (a pruned teacher, or any Llama-family config from its weights or from
// scratch) on the teacher's next-token distributions over a text file, on the CPU (docs/distill.md).
// The training path is src/train/; this file checks the options, assembles the pieces and writes the
// checkpoints (OUT: config.json, model.safetensors in f32, tokenizer files; trainer_state.bin for --resume).
#include <fmt/format.h>

#include <filesystem>

#include "cli_common.h"
#include "core/mapped_file.h"
#include "formats/model_config.h"
#include "train/distill.h"
#include "train/train_state.h"

namespace tern::cli {

namespace {

struct DistillCliOptions {
  RuntimeOptions runtime;
  std::string teacher, student, student_config, init = "weights", out, data;
  int64_t tokens = 0, seq = 256, batch = 8, accum = 1, warmup = -1, top_k = 0, save_every = 0, log_every = 1, stop_after = 0;
  double lr = 3e-4, min_lr_ratio = 0.1, weight_decay = 0.05, clip = 1.0, alpha = 1.0, init_std = 0.02;
  bool no_teacher = false, recompute = false, resume = false;
  uint64_t seed = 0;
  CLI::Option *teacher_opt = nullptr, *alpha_opt = nullptr, *topk_opt = nullptr, *init_opt = nullptr,
              *init_std_opt = nullptr, *seed_opt = nullptr;
};

std::string hms(double s) {
  const int64_t t = int64_t(s + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60);
}

bool has_file(const std::string& dir, const char* name) {
  std::error_code ec;
  return !dir.empty() && std::filesystem::is_regular_file(std::filesystem::path(dir) / name, ec);
}

void check_options(const DistillCliOptions& o) {
  if (o.tokens <= 0) fail(fmt::format("--tokens {}: must be > 0 (training tokens)", o.tokens));
  if (o.no_teacher) {
    if (o.teacher_opt->count() > 0) fail("--no-teacher trains on cross-entropy alone: drop --teacher");
    if (o.alpha_opt->count() > 0) fail("--alpha weighs the teacher's KL term: it does not apply with --no-teacher");
    if (o.topk_opt->count() > 0) fail("--topk selects the teacher's tokens: it does not apply with --no-teacher");
  } else if (o.teacher.empty()) {
    fail("give --teacher DIR (or --no-teacher to train on cross-entropy alone)");
  }
  if (!o.student.empty() && !o.student_config.empty()) fail("give --student DIR or --student-config FILE, not both");
  if (o.student.empty() && o.student_config.empty() && !o.resume)
    fail("give --student DIR (a checkpoint, e.g. from tern prune) or --student-config config.json --init random");
  if (o.init != "weights" && o.init != "random") fail(fmt::format("--init {}: expected weights or random", o.init));
  if (!o.student_config.empty() && o.init != "random")
    fail("--student-config gives a shape without weights: add --init random");
  if (o.init_std_opt->count() > 0 && o.init != "random") fail("--init-std applies to --init random");
  if (o.seed_opt->count() > 0 && o.init != "random") fail("--seed applies to --init random");
  if (!(o.alpha >= 0.0 && o.alpha <= 1.0)) fail(fmt::format("--alpha {}: must be in [0, 1]", o.alpha));
  if (!(o.lr > 0.0 && o.lr < 1.0)) fail(fmt::format("--lr {}: must be in (0, 1)", o.lr));
  if (!(o.min_lr_ratio >= 0.0 && o.min_lr_ratio <= 1.0)) fail(fmt::format("--min-lr-ratio {}: must be in [0, 1]", o.min_lr_ratio));
  if (!(o.weight_decay >= 0.0 && o.weight_decay < 1.0)) fail(fmt::format("--weight-decay {}: must be in [0, 1)", o.weight_decay));
  if (!(o.clip >= 0.0)) fail(fmt::format("--clip {}: must be >= 0 (0 = off)", o.clip));
}

struct Student {
  std::string config_text, config_source, weights_dir, tokenizer_dir;
};

Student pick_student(const DistillCliOptions& o) {
  Student s;
  if (o.resume) {
    if (!o.student.empty() || !o.student_config.empty() || o.init_opt->count() > 0)
      fail("--resume continues from the checkpoint in --out: drop --student / --student-config / --init");
    if (!has_file(o.out, "trainer_state.bin"))
      fail(fmt::format("--resume: {}/trainer_state.bin does not exist (no checkpoint to resume from)", o.out));
    s.config_source = o.out + "/config.json";
    s.weights_dir = o.out;
  } else if (!o.student.empty()) {
    s.config_source = o.student + "/config.json";
    if (o.init == "weights") s.weights_dir = o.student;
  } else {
    s.config_source = o.student_config;
  }
  s.config_text = unwrap(read_text_file(s.config_source));
  const std::string own = o.resume ? o.out : !o.student.empty() ? o.student
                                                               : std::filesystem::path(o.student_config).parent_path().string();
  if (has_file(own, "tokenizer.json")) s.tokenizer_dir = own;
  else if (!o.no_teacher && has_file(o.teacher, "tokenizer.json")) s.tokenizer_dir = o.teacher;
  else fail(fmt::format("no tokenizer.json beside {} (nor in the teacher) to tokenize --data", s.config_source));
  return s;
}

void run(const DistillCliOptions& o) {
  check_options(o);
  const Student st = pick_student(o);
  const ModelConfig scfg = unwrap(parse_model_config(st.config_text, st.config_source));
  const train::LlamaShape shape = unwrap(train::llama_shape(scfg, st.config_source));
  if (o.seq < 2) fail(fmt::format("--seq {}: at least 2", o.seq));
  if (scfg.max_position_embeddings > 0 && o.seq > scfg.max_position_embeddings)
    fail(fmt::format("--seq {} exceeds the student's max_position_embeddings {}", o.seq, scfg.max_position_embeddings));
  Runtime rt(o.runtime);
  std::unique_ptr<Model> teacher;
  if (!o.no_teacher) {
    teacher = unwrap(Model::load(o.teacher, o.runtime.load_options()));
    const ModelConfig& tc = teacher->config();
    if (tc.architecture != scfg.architecture || tc.model_type != scfg.model_type)
      fail(fmt::format("the student ({}, {}) and the teacher ({}, {}: {}) are not the same family", scfg.architecture,
                       st.config_source, tc.architecture, o.teacher, tc.model_type));
    if (tc.vocab_size != scfg.vocab_size)
      fail(fmt::format("the student's vocabulary ({} tokens, {}) differs from the teacher's ({} tokens, {})",
                       scfg.vocab_size, st.config_source, tc.vocab_size, o.teacher));
    if (tc.max_position_embeddings > 0 && o.seq > tc.max_position_embeddings)
      fail(fmt::format("--seq {} exceeds the teacher's max_position_embeddings {}", o.seq, tc.max_position_embeddings));
    if (o.top_k < 0 || o.top_k >= tc.vocab_size)
      fail(fmt::format("--topk {}: must be in [1, {}) (0 = the whole vocabulary)", o.top_k, tc.vocab_size));
  }
  auto tokenizer = load_tokenizer_if_present(st.tokenizer_dir);
  if (!tokenizer) fail(st.tokenizer_dir + ": cannot load tokenizer.json");
  const std::string text = unwrap(read_text_file(o.data));
  std::vector<int32_t> tokens = tokenizer->encode(text, true);
  const uint64_t tokens_hash = train::hash_token_ids(tokens);
  const int64_t n_tokens = int64_t(tokens.size());
  train::TokenStream data = unwrap(train::TokenStream::make(std::move(tokens), shape.vocab, o.batch, o.seq));

  train::DistillOptions d;
  d.batch = o.batch;
  d.seq = o.seq;
  d.accum = o.accum;
  const int64_t per_step = o.batch * o.seq * o.accum;
  d.steps = (o.tokens + per_step - 1) / per_step;
  d.schedule.lr = o.lr;
  d.schedule.total = d.steps;
  d.schedule.warmup = o.warmup >= 0 ? std::min(o.warmup, d.steps) : std::max<int64_t>(1, d.steps / 20);
  d.schedule.min_ratio = o.min_lr_ratio;
  d.clip = o.clip;
  d.alpha = o.alpha;
  d.top_k = o.top_k;
  d.recompute = o.recompute;
  d.save_every = o.save_every;

  train::ParamLayout layout(shape);
  std::vector<float> params(size_t(layout.total()));
  train::AdamWOptions ao;
  ao.weight_decay = o.weight_decay;
  train::AdamW opt(layout, ao);
  int64_t first = 0;
  if (!st.weights_dir.empty()) {
    auto store = unwrap(SafetensorsStore::open_dir(st.weights_dir));
    check(train::load_params(layout, store, params.data()));
  } else {
    train::init_params_random(layout, o.seed, o.init_std, params.data());
  }
  if (o.resume) {
    train::TrainState s = unwrap(train::load_train_state(o.out + "/trainer_state.bin"));
    if (s.params != uint64_t(layout.total())) fail(fmt::format("--resume: {}/trainer_state.bin holds {} parameters, the checkpoint {}", o.out, s.params, layout.total()));
    if (s.tokens_hash != tokens_hash) fail(fmt::format("--resume: {} is not the text the checkpoint was trained on (its tokens differ)", o.data));
    if (s.batch != uint64_t(o.batch) || s.seq != uint64_t(o.seq) || s.accum != uint64_t(o.accum))
      fail(fmt::format("--resume: the checkpoint ran --batch {} --seq {} --accum {}; give the same", s.batch, s.seq, s.accum));
    if (s.steps != uint64_t(d.steps)) fail(fmt::format("--resume: the checkpoint's run has {} steps, --tokens {} gives {}", s.steps, o.tokens, d.steps));
    opt.m() = std::move(s.m);
    opt.v() = std::move(s.v);
    opt.set_step(int64_t(s.step));
    data.seek(int64_t(s.data_pos), int64_t(s.epoch));
    first = int64_t(s.step);
  }
  if (o.stop_after > 0) d.stop_at = std::min(d.steps, first + o.stop_after);

  fmt::print(stderr,
             "[tern] distill: student {} ({:.2f}M parameters: {} layers, hidden {}, {} heads / {} KV, intermediate {}){}; "
             "{} {}\n",
             st.config_source, double(layout.total()) / 1e6, shape.layers, shape.hidden, shape.heads, shape.kv_heads,
             shape.inter, st.weights_dir.empty() ? ", random init" : "",
             o.no_teacher ? "cross-entropy alone (--no-teacher)" : fmt::format("teacher {}", o.teacher),
             o.no_teacher ? "" : o.top_k > 0 ? fmt::format("(KL over its top {}, alpha {})", o.top_k, o.alpha)
                                             : fmt::format("(KL over the whole vocabulary, alpha {})", o.alpha));
  fmt::print(stderr, "[tern] distill: {} text tokens; {} steps of {} x {} tokens x {} (= {} tokens){}, threads {}\n",
             n_tokens, d.steps, o.batch, o.seq, o.accum, d.steps * per_step,
             first > 0 ? fmt::format(", resuming at step {}", first) : "", rt.pool.size());

  auto report = [&](const train::StepReport& r) {
    if (r.step % o.log_every != 0 && r.step != r.steps) return;
    fmt::print(stderr, "[tern] distill step {}/{}  loss {:.4f} (kl {:.4f}, ce {:.4f})  lr {:.2e}  |g| {:.3f}  {:.0f} tok/s  ETA {}\n",
               r.step, r.steps, r.loss, r.kl, r.ce, r.lr, r.grad_norm, r.tokens_per_s, hms(r.eta_s));
  };
  auto save = [&](int64_t step) -> Status {
    TERN_RETURN_IF_ERROR(train::save_checkpoint(layout, params.data(), o.out, st.config_text, st.tokenizer_dir));
    train::TrainState s;
    s.step = uint64_t(step);
    s.steps = uint64_t(d.steps);
    s.data_pos = uint64_t(data.position());
    s.epoch = uint64_t(data.epoch());
    s.tokens_hash = tokens_hash;
    s.params = uint64_t(layout.total());
    s.batch = uint64_t(o.batch);
    s.seq = uint64_t(o.seq);
    s.accum = uint64_t(o.accum);
    s.m = opt.m();
    s.v = opt.v();
    return train::save_train_state(s, o.out + "/trainer_state.bin");
  };
  if (first >= d.steps) {
    fmt::print(stderr, "[tern] distill: {} already finished all {} steps\n", o.out, d.steps);
    return;
  }
  check(train::run_distill(rt.ctx, layout, params.data(), teacher.get(), data, d, opt, first, report, save));
  if (d.stop_at > 0 && d.stop_at < d.steps)
    fmt::print(stderr, "[tern] wrote {} (stopped after step {} of {}; --resume continues)\n", o.out, d.stop_at, d.steps);
  else
    fmt::print(stderr, "[tern] wrote {} ({} steps, epoch {} of the text)\n", o.out, d.steps, data.epoch());
}

}  // namespace

void register_distill(CLI::App& app) {
  auto o = std::make_shared<DistillCliOptions>();
  CLI::App* cmd = app.add_subcommand("distill",
                                     "train a student on a teacher's next-token distributions (KL, optionally mixed with "
                                     "cross-entropy) over a text file, on the CPU; --no-teacher: cross-entropy alone");
  o->teacher_opt = cmd->add_option("--teacher", o->teacher, "teacher model directory")->check(model_path_check());
  cmd->add_option("--student", o->student, "student checkpoint directory (e.g. from tern prune)")->check(CLI::ExistingDirectory);
  cmd->add_option("--student-config", o->student_config, "student config.json (with --init random)")->check(CLI::ExistingFile);
  o->init_opt = cmd->add_option("--init", o->init, "weights (the student's, default) or random");
  o->init_std_opt = cmd->add_option("--init-std", o->init_std, "--init random: standard deviation of the matrices (0.02)");
  o->seed_opt = cmd->add_option("--seed", o->seed, "--init random: seed");
  cmd->add_option("-o,--out", o->out, "output directory (checkpoints, and what --resume reads)")->required();
  cmd->add_option("--data", o->data, "training text file (never the evaluation text)")->required();
  cmd->add_option("--tokens", o->tokens, "training tokens (rounded up to whole steps)")->required();
  cmd->add_option("--seq", o->seq, "tokens per packed sequence (256)")->check(CLI::Range(int64_t(2), int64_t(1) << 16));
  cmd->add_option("--batch", o->batch, "sequences per micro-batch (8)")->check(CLI::Range(int64_t(1), int64_t(1) << 12));
  cmd->add_option("--accum", o->accum, "micro-batches per optimizer step (gradient accumulation, 1)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 12));
  cmd->add_option("--lr", o->lr, "peak learning rate (3e-4)");
  cmd->add_option("--min-lr-ratio", o->min_lr_ratio, "the cosine ends at this fraction of --lr (0.1)");
  cmd->add_option("--warmup", o->warmup, "warm-up steps (default: 5% of the steps, at least 1)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW weight decay on matrices and embeddings, not norms (0.05)");
  cmd->add_option("--clip", o->clip, "max global gradient norm (1.0; 0 = off)");
  o->alpha_opt = cmd->add_option("--alpha", o->alpha, "weight of the KL term; 1 - alpha goes to cross-entropy (1.0)");
  o->topk_opt = cmd->add_option("--topk", o->top_k, "KL over the teacher's top k tokens plus the rest (0 = whole vocabulary)");
  cmd->add_flag("--no-teacher", o->no_teacher, "train on cross-entropy alone (the control)");
  cmd->add_flag("--recompute", o->recompute, "keep only each layer's input and recompute its activations in the backward");
  cmd->add_option("--save-every", o->save_every, "steps between checkpoints (0 = at the end)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--resume", o->resume, "continue the run whose checkpoint is in --out");
  cmd->add_option("--stop-after", o->stop_after, "stop (with a checkpoint) after this many steps of this invocation; "
                  "--resume continues (0 = run to the end)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--log-every", o->log_every, "steps between progress lines (1)")->check(CLI::PositiveNumber);
  o->runtime.add_to(*cmd);
  cmd->callback([o] { run(*o); });
}

}  // namespace tern::cli
