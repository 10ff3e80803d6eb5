// ScratchVector: resize() leaves pages untouched (not resident until written), and the value forms
// still construct.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "core/scratch_vector.h"

namespace tern {
namespace {

// Resident set of this process in bytes (/proc/self/statm's second field, in pages).
long resident_bytes() {
  long size = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * sysconf(_SC_PAGESIZE);
}

TEST(ScratchVector, ResizeDoesNotMakeThePagesResident) {
  constexpr size_t kFloats = size_t(64) << 20 >> 2;  // 64 MiB, far above malloc's mmap threshold
  const long before = resident_bytes();
  ScratchVector<float> v;
  v.resize(kFloats);
  const long after_resize = resident_bytes();
  // A std::vector<float> would have zero-filled all 64 MiB here.
  EXPECT_LT(after_resize - before, long(8) << 20) << "resize made " << (after_resize - before) << " bytes resident";
  for (size_t i = 0; i < kFloats; i += 1024) v[i] = 1.f;  // writing brings them in
  EXPECT_GT(resident_bytes() - before, long(48) << 20);
}

TEST(ScratchVector, ValueFormsStillConstruct) {
  ScratchVector<int> v;
  v.resize(4, 7);
  v.push_back(9);
  EXPECT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0], 7);
  EXPECT_EQ(v[3], 7);
  EXPECT_EQ(v[4], 9);
  ScratchVector<int> w(3, 2);
  EXPECT_EQ(w[2], 2);
}

}  // namespace
}  // namespace tern
