#pragma once
// Seeded random plan modules for the IR property tests.
#include <random>
#include <string>

#include "ir/plan.h"

namespace kvc::ir::testing {

// A module every verifier rule accepts, spread over all formats, policies and sharing modes.
Module random_valid_module(std::mt19937& rng);

// Any field any value its C++ type holds (enums: named values only; doubles: never NaN),
// layer count unrelated to model.layers: what the printer and parser must carry unchanged.
Module random_arbitrary_module(std::mt19937& rng);

// A name mixing ASCII, quotes, backslashes, control bytes, UTF-8 and stray high bytes.
std::string random_name(std::mt19937& rng);

}  // namespace kvc::ir::testing
