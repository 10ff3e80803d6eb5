// The planner tests' model shapes: tests/data/plan_configs/NAME.json (config.json files of real models),
// read through the planner's own loader. Shared by the test_plan_*.cpp files.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "plan/model_shape.h"

namespace tern::plan {

// NAME's shape; a failed load is a test failure and an empty shape.
inline ModelShape shape(const std::string& name) {
  auto s = load_model_shape(std::string(TERN_SOURCE_DIR) + "/tests/data/plan_configs/" + name + ".json");
  EXPECT_TRUE(s.is_ok()) << s.status().message();
  return s.is_ok() ? *s : ModelShape{};
}

}  // namespace tern::plan
