// Runs a list of independent attention work items (a query tile × key range of one sequence) over the
// context's pool: items are taken one at a time from a shared counter, so uneven items balance; each
// thread gets its own scratch of `scratch_bytes` (ctx.scratch), asked for only when it takes an item.
// threads == 1 or a single item runs inline on the calling thread. Shared by paged_attention and
// latent_attention.
#pragma once

#include <cstdint>
#include <vector>

#include "core/exec_context.h"

namespace tern {

// run(scratch, item) for every item.
template <class Item, class Run>
void run_work_items(ExecContext& ctx, int threads, size_t scratch_bytes, const std::vector<Item>& items, Run&& run) {
  const int64_t n_items = int64_t(items.size());
  if (threads == 1 || n_items == 1) {
    void* scratch = ctx.scratch(0, scratch_bytes);
    for (const Item& it : items) run(scratch, it);
    return;
  }
  // ThreadPool::for_each_item: a worker that has not started by the time the items run out is not
  // waited for.
  ctx.pool().for_each_item(n_items, [&](int t, int64_t i) { run(ctx.scratch(t, scratch_bytes), items[size_t(i)]); });
}

}  // namespace tern
