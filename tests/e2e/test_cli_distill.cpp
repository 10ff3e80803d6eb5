// tern distill as a user runs it with docs-llama-28m as the teacher: a student equal to the teacher
// starts at KL 0, a small random student trains and writes a checkpoint tern evaluates, a run stopped
// and resumed ends with the weights of an uninterrupted one, and every bad input is one
// "tern: error:" line with exit code 1.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/mapped_file.h"
#include "formats/safetensors.h"
#include "test_support.h"

namespace tern::test {
namespace {

const std::string kDocs = model_dir("docs-llama-28m");

// Training text: the start of docs-val's first half (the tests evaluate nothing on it).
class CliDistill : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto text = read_text_file(shared_dir() + "/data/docs-val.txt");
    ASSERT_TRUE(text.is_ok());
    write_file(dir_->file("train.txt"), text->substr(0, 20000));
    write_file(dir_->file("short.txt"), "a few words");
    write_file(dir_->file("small.json"), small_config(8192, "LlamaForCausalLM", "llama"));
    write_file(dir_->file("vocab.json"), small_config(4096, "LlamaForCausalLM", "llama"));
    write_file(dir_->file("family.json"), small_config(8192, "MistralForCausalLM", "mistral"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string small_config(int vocab, const std::string& arch, const std::string& type) {
    return R"({"architectures": [")" + arch + R"("], "model_type": ")" + type + R"(", "vocab_size": )" +
           std::to_string(vocab) + R"(, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-05,
      "max_position_embeddings": 512, "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu",
      "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "float32"})";
  }
  static std::string data() { return " --data '" + dir_->file("train.txt") + "'"; }
  static inline TempDir* dir_ = nullptr;
};

// The KL of the first step's progress line.
double first_kl(const std::string& err) {
  std::smatch m;
  if (!std::regex_search(err, m, std::regex(R"(step 1/\d+  loss \S+ \(kl ([0-9.e+-]+))"))) return NAN;
  return std::stod(m[1]);
}

TEST_F(CliDistill, AStudentEqualToTheTeacherStartsAtZeroKl) {
  TempDir out;
  auto r = run_tern("distill --teacher '" + kDocs + "' --student '" + kDocs + "' -o '" + out.path() + "'" + data() +
                    " --tokens 64 --seq 32 --batch 2 --lr 1e-5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(first_kl(r.err), 1e-3) << r.err;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << r.err;
  auto ppl = run_tern("eval ppl -m '" + out.path() + "' -f '" + shared_dir() + "/data/docs-val.txt' --ctx 64 --windows 2 --json");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(ppl.out)["ppl"].get<double>()));
  auto gen = run_tern("run -m '" + out.path() + "' -p 'The' -n 4");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
}

TEST_F(CliDistill, ARandomStudentLearnsAndAResumedRunEndsWhereAStraightOneDoes) {
  TempDir straight, resumed;
  const std::string common = " --teacher '" + kDocs + "' --student-config '" + dir_->file("small.json") +
                             "' --init random --seed 3 --tokens 256 --seq 32 --batch 2 --lr 3e-3 --topk 16 --alpha 0.7" + data();
  auto a = run_tern("distill -o '" + straight.path() + "'" + common);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("step 4/4"), std::string::npos) << a.err;
  auto b1 = run_tern("distill -o '" + resumed.path() + "'" + common + " --stop-after 2");
  ASSERT_EQ(b1.exit_code, 0) << b1.err;
  EXPECT_NE(b1.err.find("--resume continues"), std::string::npos) << b1.err;
  EXPECT_EQ(b1.err.find("step 3/4"), std::string::npos) << b1.err;
  auto b2 = run_tern("distill -o '" + resumed.path() + "' --resume --teacher '" + kDocs +
                     "' --tokens 256 --seq 32 --batch 2 --lr 3e-3 --topk 16 --alpha 0.7" + data());
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  EXPECT_NE(b2.err.find("resuming at step 2"), std::string::npos) << b2.err;
  auto sa = SafetensorsStore::open_dir(straight.path());
  auto sb = SafetensorsStore::open_dir(resumed.path());
  ASSERT_TRUE(sa.is_ok() && sb.is_ok());
  ASSERT_EQ(sa->tensors().size(), sb->tensors().size());
  for (const auto& t : sa->tensors()) {
    const TensorInfo* u = sb->find(t.name);
    ASSERT_TRUE(u != nullptr && u->bytes == t.bytes) << t.name;
    const float* x = static_cast<const float*>(t.data);
    const float* y = static_cast<const float*>(u->data);
    for (size_t i = 0; i < t.bytes / 4; ++i) ASSERT_NEAR(x[i], y[i], 1e-6) << t.name << "[" << i << "]";
  }
  auto cfg = nlohmann::json::parse(*read_text_file(straight.file("config.json")));
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_TRUE(read_text_file(straight.file("tokenizer.json")).is_ok());
  auto ppl = run_tern("eval ppl -m '" + straight.path() + "' -f '" + shared_dir() + "/data/docs-val.txt' --ctx 64 --windows 2 --json");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  // Four steps from random: far from good, but below the uniform distribution's 8192.
  EXPECT_LT(nlohmann::json::parse(ppl.out)["ppl"].get<double>(), 8192.0);
}

TEST_F(CliDistill, CrossEntropyAloneRunsWithoutATeacher) {
  TempDir out;
  auto r = run_tern("distill --no-teacher --student-config '" + dir_->file("small.json") + "' --init random -o '" +
                    out.path() + "' --tokens 64 --seq 32 --batch 2 --recompute" + data());
  // small.json's directory has no tokenizer: the error names it.
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no tokenizer.json"), std::string::npos) << r.err;
  write_file(out.file("tokenizer.json"), *read_text_file(kDocs + "/tokenizer.json"));
  write_file(out.file("config.json"), small_config(8192, "LlamaForCausalLM", "llama"));
  TempDir run;
  r = run_tern("distill --no-teacher --student-config '" + out.file("config.json") + "' --init random -o '" + run.path() +
               "' --tokens 64 --seq 32 --batch 2 --recompute" + data());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cross-entropy alone"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kl 0.0000"), std::string::npos) << r.err;
}

TEST_F(CliDistill, BadInputIsOneErrorLine) {
  TempDir out;
  const std::string o = " -o '" + out.path() + "'";
  const std::string t = " --teacher '" + kDocs + "'";
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {t + " --student '" + kDocs + "'" + o + data() + " --tokens 0", "--tokens 0"},
      {t + " --student '" + kDocs + "'" + o + data() + " --tokens -5", "--tokens -5"},
      {t + " --student '" + kDocs + "'" + o + " --data '" + dir_->file("missing.txt") + "' --tokens 64", "missing.txt"},
      {t + " --student '" + kDocs + "'" + o + " --data '" + dir_->file("short.txt") + "' --tokens 64", "fewer than one batch"},
      {t + " --student-config '" + dir_->file("vocab.json") + "' --init random" + o + data() + " --tokens 64", "vocabulary"},
      {t + " --student-config '" + dir_->file("family.json") + "' --init random" + o + data() + " --tokens 64", "same family"},
      {t + " --student-config '" + dir_->file("small.json") + "'" + o + data() + " --tokens 64", "--init random"},
      {" --no-teacher --alpha 0.5 --student '" + kDocs + "'" + o + data() + " --tokens 64", "--alpha"},
      {t + " --student '" + kDocs + "'" + o + data() + " --tokens 64 --topk 9000", "--topk 9000"},
      {t + o + data() + " --tokens 64 --resume", "trainer_state.bin"},
      {t + " --student '" + kDocs + "'" + o + data() + " --tokens 64 --resume", "drop --student"},
      {" --student '" + kDocs + "'" + o + data() + " --tokens 64", "--teacher"},
  };
  for (const Case& c : cases) {
    auto r = run_tern("distill" + c.args + " --seq 32 --batch 2");
    EXPECT_EQ(r.exit_code, 1) << c.args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("tern: error:", 0), 0u) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
}

}  // namespace
}  // namespace tern::test
