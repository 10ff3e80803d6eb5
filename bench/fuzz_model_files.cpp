// The full mutated-model-file run of issue 14 ("2,400 mutated model files: 0 crashes, 0 hangs"); the CI-sized run
// is tests/e2e/test_fuzz_model_files.cpp. Each case loads a mutated file in a child process (tests/fuzz_model_files.h).
//   build/fuzz_model_files [--cases 2400] [--seed 1] [--first 0] [--timeout 60] [--keep DIR] [--shared DIR] [-v]
// Prints one line per crash or hang (with the case number to rerun: --first K --cases 1) and a summary; exits 1 if
// any case crashed or hung.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "../tests/fuzz_model_files.h"

int main(int argc, char** argv) {
  tern::fuzz::Options o;
  o.shared_dir = TERN_SHARED_DIR;
  o.cases = 2400;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fuzz_model_files: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cases") o.cases = std::atoi(next().c_str());
    else if (a == "--seed") o.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--first") o.first_case = std::atoi(next().c_str());
    else if (a == "--timeout") o.timeout_s = std::atof(next().c_str());
    else if (a == "--keep") o.keep_dir = next();
    else if (a == "--shared") o.shared_dir = next();
    else if (a == "-v") verbose = true;
    else {
      std::fprintf(stderr, "fuzz_model_files: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  char tmpl[] = "/tmp/tern_fuzz_XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  o.work_dir = tmpl;
  const auto t0 = std::chrono::steady_clock::now();
  const char* names[] = {"loaded", "clean error", "CRASH", "HANG"};
  const tern::fuzz::Report rep = tern::fuzz::run(o, [&](const tern::fuzz::Case& c, tern::fuzz::Outcome out,
                                                       const std::string& detail) {
    const bool bad = out == tern::fuzz::Outcome::kCrash || out == tern::fuzz::Outcome::kHang;
    if (verbose || bad)
      std::printf("case %d: %s, %s: %s%s%s\n", c.index, c.base.c_str(), c.mutation.c_str(), names[int(out)],
                  detail.empty() ? "" : ": ", detail.c_str());
    std::fflush(stdout);
  });
  std::filesystem::remove_all(o.work_dir);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d cases (seed %llu, from %d): %d loaded, %d clean errors, %d crashes, %d hangs; %.0f s\n", rep.cases,
              static_cast<unsigned long long>(o.seed), o.first_case, rep.loaded, rep.clean_errors, rep.crashes,
              rep.hangs, s);
  return rep.crashes + rep.hangs > 0 ? 1 : 0;
}
