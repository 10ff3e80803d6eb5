// safetensors checkpoints, read through mmap and fully validated before any tensor is used:
// header length, header JSON, dtype, dtype × shape = bytes, offsets inside the file, no overlaps
// and no gaps in the data section, and (sharded) every tensor of the index in the shard it names.
// Every failure is a one-line Status naming the file and the tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "formats/tensor_source.h"

namespace tern {

class SafetensorsStore : public TensorSource {
 public:
  // DIR/model.safetensors.index.json (sharded) if present, else DIR/model.safetensors.
  static Result<SafetensorsStore> open_dir(const std::string& dir);
  // One .safetensors file.
  static Result<SafetensorsStore> open_file(const std::string& path);

  const TensorInfo* find(const std::string& name) const override;
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }  // sorted by name
  // "__metadata__" string map of the (first) file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t total_bytes() const;
  // What it was opened from (model.safetensors, or the shard index): errors about the checkpoint
  // as a whole (a tensor it lacks) name it.
  const std::string& source() const override { return source_; }

 private:
  std::string source_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: bytes must equal numel × dtype size. The bytes come from `data`, or, when
// `data` is null, from `fill`, which the writer calls chunk by chunk (fill(offset, n, dst) writes
// bytes [offset, offset + n) of the tensor to dst) so that checkpoints larger than memory can be
// generated without ever holding a whole tensor.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
  std::function<void(size_t offset, size_t n, void* dst)> fill = nullptr;
};

// Writes one safetensors file (header padded to 8 bytes, tensors in the given order).
Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

// Writes DIR/model-0000i-of-0000n.safetensors shards of at most `max_shard_bytes` each plus
// DIR/model.safetensors.index.json; with one shard, writes DIR/model.safetensors and no index.
Status write_safetensors_sharded(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                 size_t max_shard_bytes);

}  // namespace tern
