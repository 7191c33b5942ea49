// Internal to services/config: strict YAML scalar parsing and formatting.
//
// The job spec reads plain scalars itself instead of yaml-cpp's as<T>(),
// which accepts YAML 1.1 booleans (yes/no/on/off) and wraps or throws on big
// numbers. The grammar here is the YAML 1.2 core schema, minus hex/octal.
#ifndef FAPO_SERVICES_CONFIG_SCALARS_H_
#define FAPO_SERVICES_CONFIG_SCALARS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fapo::config::internal {

enum class NumberParse {
  kOk,
  kMalformed,   // not a number of the requested kind
  kOutOfRange,  // well-formed, but beyond int64 / double
};

// Decimal integers: [-+]?[0-9]+. "1.0", "1e3", "0x10", " 1" are malformed.
NumberParse ParseYamlInt(absl::string_view text, int64_t* value);

// Integers and floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?,
// and .inf/-.inf/.nan in their YAML spellings (these give inf and NaN, which
// every range check of the spec rejects). Values beyond a double's range or
// below its smallest subnormal are kOutOfRange.
NumberParse ParseYamlFloat(absl::string_view text, double* value);

// The shortest text that parses back to exactly `value`: fixed notation for
// magnitudes in [1e-4, 1e16), scientific outside, always with a '.' so that
// YAML 1.1 readers see a float too: 100.0, 0.28, 1.0e-06, 1.0e+20, .inf.
std::string FormatYamlFloat(double value);

// A number for humans, in messages: integral values without ".0" or an
// exponent (3600000), others the shortest round-trip form (0.28, 1e-06).
std::string FormatNumber(double value);

// The offset of the first byte of `text` that is not part of well-formed
// UTF-8 (overlong forms, surrogates and code points past U+10FFFF included),
// or absl::string_view::npos when all of it is.
size_t FindInvalidUtf8(absl::string_view text);

// Optimal-string-alignment distance: insertions, deletions, substitutions
// and transpositions of adjacent characters each cost 1.
int EditDistance(absl::string_view a, absl::string_view b);

// The candidate nearest to `word` within `max_distance` edits (the first in
// order on ties), or "" when none is that close.
std::string NearestWord(absl::string_view word,
                        absl::Span<const std::string> candidates,
                        int max_distance);

}  // namespace fapo::config::internal

#endif  // FAPO_SERVICES_CONFIG_SCALARS_H_
