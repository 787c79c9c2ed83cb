// error.hpp: the two exception types the core throws. The bindings map InputError to
// ValueError and StreamError to ransform.StreamError (a ValueError subclass).
#pragma once

#include <stdexcept>
#include <string>

namespace ransform {

// A caller passed something the contract rejects: bad table, out-of-range index, NaN scale.
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A byte stream is not one this library wrote with the given table and indexes:
// truncated, corrupted, wrong version, or decoded with the wrong table.
struct StreamError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ransform
