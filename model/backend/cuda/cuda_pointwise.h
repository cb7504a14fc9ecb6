// The CUDA backend's row-wise and element-wise ops that the local/global families added (contracts
// in model/backend/backend.h): gated activations, LayerNorm (plain and fused with the residual add),
// in-place scale and soft-cap. Argument checks on the host, then one launch of kernels/activation,
// kernels/norm or kernels/elementwise on the given stream: nothing allocates or synchronises, so
// every op can be captured in a CUDA graph. Called by CudaBackend (cuda_backend.cc).
#pragma once

#include "common/status.h"
#include "model/backend/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace longbow::cuda_pointwise {

// gate, up, out: [T, I] BF16.
Status gated_activation(cudaStream_t stream, Activation act, const Tensor& gate, const Tensor& up, Tensor& out);
// x, out: [R, C] BF16; weight, bias: [C] BF16 (bias empty: none).
Status layer_norm(cudaStream_t stream, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  Tensor& out);
Status add_layer_norm(cudaStream_t stream, Tensor& residual, const Tensor& delta, const Tensor& weight,
                      const Tensor& bias, float eps, Tensor& out);
// x: any shape, BF16 or F32.
Status scale(cudaStream_t stream, Tensor& x, float factor);
Status softcap(cudaStream_t stream, Tensor& x, float cap);

}  // namespace longbow::cuda_pointwise
