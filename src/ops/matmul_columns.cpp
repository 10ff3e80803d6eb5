// The dynamic split of decode GEMV regions (matmul_columns.h).
#include "ops/matmul_columns.h"

#include <algorithm>
#include <vector>

namespace tern {

void run_column_tasks(ExecContext& ctx, std::span<const ColumnTask> tasks) {
  if (tasks.empty()) return;
  const int nt = ctx.threads();
  if (nt == 1) {
    for (const ColumnTask& task : tasks) {
      if (task.n > 0) task.run(0, 0, task.n);
    }
    return;
  }
  if (ctx.column_split() == ColumnSplit::kStatic) {
    ctx.pool().run([&](int t, int count) {
      for (const ColumnTask& task : tasks) {
        int64_t b, e;
        column_chunk(task.n, task.align, t, count, &b, &e);
        if (b < e) task.run(t, b, e);
      }
    });
    return;
  }
  // Task i's items are [first[i], first[i + 1]), each `cols[i]` columns (a multiple of its align).
  std::vector<int64_t> first(tasks.size() + 1, 0), cols(tasks.size(), 0);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const ColumnTask& task = tasks[i];
    const int64_t align = std::max<int64_t>(1, task.align);
    const int64_t units = (std::max<int64_t>(0, task.n) + align - 1) / align;
    // Unknown row size: a few items per thread.
    int64_t per = task.row_bytes > 0 ? kColumnItemBytes / (task.row_bytes * align)
                                     : (units + 4 * nt - 1) / (4 * nt);
    per = std::max<int64_t>(1, per);
    cols[i] = per * align;
    first[i + 1] = first[i] + (units + per - 1) / per;
  }
  ctx.pool().for_each_item(first.back(), [&](int t, int64_t item) {
    const size_t i = size_t(std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1);
    const ColumnTask& task = tasks[i];
    const int64_t b = (item - first[i]) * cols[i];
    task.run(t, b, std::min(task.n, b + cols[i]));
  });
}

}  // namespace tern
