// Decimal integers in a closed range as a grammar: exactly the canonical spellings (no leading
// zeros, no "-0") of the values in [lo, hi]. Used for JSON Schema integer minimum/maximum.
#pragma once

#include <cstdint>

#include "server/structured/grammar.h"

namespace longbow::structured {

// |lo|, |hi| <= kMaxIntegerMagnitude; lo <= hi.
inline constexpr int64_t kMaxIntegerMagnitude = 999'999'999'999'999'999;  // 18 digits

ExprPtr integer_range(int64_t lo, int64_t hi);

}  // namespace longbow::structured
