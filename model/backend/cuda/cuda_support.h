// What the CUDA backend's kernels can run, as a pure function of the model config, so that an
// unsupported model fails at load (CudaBackend::check_supported, called by Transformer::load and
// `longbow serve`) instead of at its first step. Plain C++ with no CUDA header: it is built in every
// configuration and unit-tested on the CPU (tests/unit/backend/cuda_support_test.cc).
//
// The sets below restate what the launchers in kernels/ accept (each is named where it is checked);
// a kernel that learns a new shape must widen its set here too.
#pragma once

#include "common/status.h"
#include "model/config/model_config.h"

namespace longbow {

// OK, or UNIMPLEMENTED / INVALID_ARGUMENT naming the config field, its value and the supported set.
Status check_cuda_supported(const ModelConfig& config);

}  // namespace longbow
