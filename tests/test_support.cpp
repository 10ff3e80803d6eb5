#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tern::test {

std::string shared_dir() { return TERN_SHARED_DIR; }
std::string model_dir(const std::string& name) { return shared_dir() + "/models/" + name; }
std::string tiny_arch_dir(const std::string& arch) { return shared_dir() + "/models/tiny-archs/" + arch; }

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "tern-test-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

static std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandResult run_tern(const std::string& args, const std::string& stdin_text) {
  TempDir tmp;
  write_file(tmp.file("stdin"), stdin_text);
  const std::string cmd = std::string("'") + TERN_BINARY + "' " + args + " <'" + tmp.file("stdin") + "' >'" +
                          tmp.file("stdout") + "' 2>'" + tmp.file("stderr") + "'";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(tmp.file("stdout"));
  r.err = slurp(tmp.file("stderr"));
  return r;
}

}  // namespace tern::test
