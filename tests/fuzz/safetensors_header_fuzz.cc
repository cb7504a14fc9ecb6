// libFuzzer target: a whole safetensors file (8-byte header length, JSON header, data) ->
// Checkpoint::open_file (header parsing and validation: dtypes, shapes, offsets, overlaps), then
// every tensor it accepted is read back (to_float32 for the float dtypes), so an accepted header
// whose offsets lie about the data is caught by ASan.
#include <cstddef>
#include <cstdint>

#include "model/weights/safetensors.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  longbow::fuzz::MemoryFile file(data, size);
  if (!file.ok()) return 0;
  auto checkpoint = longbow::Checkpoint::open_file(file.path());
  if (!checkpoint.ok()) return 0;
  for (const std::string& name : (*checkpoint)->tensor_names()) {
    auto view = (*checkpoint)->tensor(name);
    if (!view.ok()) continue;
    if (view->num_elements() > (1 << 16)) continue;  // reading is linear; keep iterations fast
    (void)longbow::to_float32(*view);
  }
  return 0;
}
