// tern quantize --format gguf / tern gguf quantize / gguf info, and the run command on the written file (tokenizer from the metadata).
#include <gtest/gtest.h>

#include "core/mapped_file.h"
#include "test_support.h"

namespace tern::test {
namespace {

TEST(CliGguf, QuantizeThenRunAndInfo) {
  TempDir dir;
  const std::string out = dir.file("m.gguf"), model = model_dir("docs-llama-28m");
  auto q = run_tern("gguf quantize -q -m " + model + " -o " + out + " --type Q8_0");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto info = run_tern("gguf info " + out);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(info.out.find("Q8_0"), std::string::npos);
  EXPECT_NE(info.out.find("tokenizer.ggml.merges"), std::string::npos);
  const std::string prompt = " -p 'The kernel scheduler decides' -n 12 --temp 0 -q -t 1";
  auto a = run_tern("run -m " + out + prompt), b = run_tern("run -m " + model + prompt);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);  // Q8_0 keeps these 12 greedy tokens (as llama.cpp's own Q8_0 does)
}

TEST(CliGguf, BadInputIsAOneLineError) {
  TempDir dir;
  write_file(dir.file("bad.gguf"), std::string("GGUF\x03\0\0\0", 8) + std::string(8, '\xff'));
  auto r = run_tern("run -m " + dir.file("bad.gguf") + " -p hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.gguf"), std::string::npos) << r.err;
  auto t = run_tern("gguf quantize -m " + model_dir("docs-llama-28m") + " -o " + dir.file("x.gguf") + " --type IQ4_NL");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.err.find("unknown GGUF type"), std::string::npos) << t.err;
}

TEST(CliGguf, QuantizeFormatGgufWritesTheSameFileAsGgufQuantize) {
  TempDir dir;
  const std::string model = model_dir("docs-llama-28m");
  auto a = run_tern("quantize -m " + model + " -o " + dir.file("a.gguf") + " --format gguf --type Q4_0");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("ETA"), std::string::npos) << "progress with ETA on stderr";
  auto b = run_tern("gguf quantize -q -m " + model + " -o " + dir.file("b.gguf") + " --type Q4_0");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(*read_text_file(dir.file("a.gguf")), *read_text_file(dir.file("b.gguf")));
  auto wrong = run_tern("quantize -m " + model + " -o " + dir.file("c.gguf") + " --format gguf --type Q4_0 --group 32");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("give only --type"), std::string::npos) << wrong.err;
  auto no_format = run_tern("quantize -m " + model + " -o " + dir.file("d") + " --type Q4_K");
  EXPECT_EQ(no_format.exit_code, 1);
  EXPECT_NE(no_format.err.find("--format gguf"), std::string::npos) << no_format.err;
}

}  // namespace
}  // namespace tern::test
