// The activations of backend.h's Activation, in double: shared by gated_activation and moe_experts.
#pragma once

#include <cmath>

#include "model/backend/backend.h"

namespace longbow::cpu {

inline double activate(Activation act, double x) {
  switch (act) {
    case Activation::kSilu: return x / (1.0 + std::exp(-x));
    case Activation::kGeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kGelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::kSigmoid: return 1.0 / (1.0 + std::exp(-x));
  }
  return 0.0;
}

}  // namespace longbow::cpu
