// families.hpp: discretised location-scale distributions centred at 0.
//
// A family is given by its upper tail T(x) = P(X > x) at scale s (x >= 0):
//   gaussian  T(x) = erfc(x / (s sqrt 2)) / 2        (s = standard deviation)
//   laplace   T(x) = exp(-x / s) / 2                 (s = diversity b)
//   logistic  T(x) = 1 / (1 + exp(x / s))            (s = scale, std = s pi / sqrt 3)
// The integer k gets the mass of [k - 1/2, k + 1/2): P(0) = 1 - 2 T(1/2) and
// P(k) = T(|k| - 1/2) - T(|k| + 1/2) otherwise, a difference of two small tails, so the far
// tails keep their relative precision (no 1 - (1 - eps) cancellation).
#pragma once

#include <cstdint>
#include <iterator>
#include <string>

#include "core/detmath.hpp"
#include "core/error.hpp"
#include "core/hd.hpp"

namespace ransform {

// The one definition of the families: their names and the codes the kernels take. The CUDA
// kernels include this header and ransform._core.families() exports this list to Python, so
// adding a family here is the only place its name and code are written.
enum class Family : int { kGaussian = 0, kLaplace = 1, kLogistic = 2 };

struct FamilyName {
  const char* name;
  Family family;
};

inline constexpr FamilyName kFamilies[] = {
    {"gaussian", Family::kGaussian}, {"laplace", Family::kLaplace}, {"logistic", Family::kLogistic}};

// "'gaussian', 'laplace' or 'logistic'", for error messages.
inline std::string family_choices() {
  std::string out;
  const size_t n = std::size(kFamilies);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += i + 1 < n ? ", " : " or ";
    out += std::string("'") + kFamilies[i].name + "'";
  }
  return out;
}

inline Family family_from_name(const std::string& name) {
  for (const FamilyName& f : kFamilies)
    if (name == f.name) return f.family;
  throw InputError("family must be " + family_choices() + ", got '" + name + "'");
}

// Kernels take the family as its integer code (what crosses from Python as a plain int).
inline Family family_from_code(int code) {
  for (const FamilyName& f : kFamilies)
    if (code == static_cast<int>(f.family)) return f.family;
  throw InputError("family code " + std::to_string(code) + " is not one of ransform._core.families()");
}

inline const char* family_name(Family f) {
  for (const FamilyName& e : kFamilies)
    if (e.family == f) return e.name;
  return "?";  // unreachable: every enumerator is listed in kFamilies
}

// A Gaussian's upper tail is 0.5 erfc(gaussian_tail_argument(x, scale)).
RANSFORM_HD inline double gaussian_tail_argument(double x, double scale) { return x / (scale * detmath::kSqrt2); }

RANSFORM_HD inline double upper_tail(Family f, double x, double scale) {
  switch (f) {
    case Family::kGaussian: return 0.5 * detmath::erfc(gaussian_tail_argument(x, scale));
    case Family::kLaplace: return 0.5 * detmath::exp(-x / scale);
    default: {
      const double e = detmath::exp(-x / scale);
      return e / (1.0 + e);
    }
  }
}

// Smallest R >= 0 with 2 T(R + 1/2) <= tail_mass, but at most r_max.
RANSFORM_HD inline int32_t support_radius(Family f, double scale, double tail_mass, int32_t r_max) {
  auto outside = [&](int32_t r) { return 2.0 * upper_tail(f, r + 0.5, scale) > tail_mass; };
  int32_t hi = 1;
  while (hi < r_max && outside(hi)) hi = hi > r_max / 2 ? r_max : 2 * hi;
  if (outside(hi)) return r_max;
  int32_t lo = -1;  // outside(lo) is "true" by convention; outside(hi) is false
  while (hi - lo > 1) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (mid >= 0 && outside(mid))
      lo = mid;
    else
      hi = mid;
  }
  return hi;
}

// tail[k] = T(k + 1/2) for k = 0..R.
RANSFORM_HD inline void half_integer_tails_into(Family f, double scale, int32_t radius, double* tail) {
  for (int32_t k = 0; k <= radius; ++k) tail[k] = upper_tail(f, k + 0.5, scale);
}

// Probabilities of -R..R followed by the escape mass 2 T(R + 1/2) (2R + 2 entries), from
// the tails T(k + 1/2), k = 0..R.
RANSFORM_HD inline void pmf_from_tails_into(const double* tail, int32_t radius, double* p) {
  p[radius] = 1.0 - 2.0 * tail[0];
  for (int32_t k = 1; k <= radius; ++k) p[radius + k] = p[radius - k] = tail[k - 1] - tail[k];
  p[2 * radius + 1] = 2.0 * tail[radius];
}

// Bits of the exp-Golomb part of an escape d + 1 symbols past the support (escape.hpp).
RANSFORM_HD inline double escape_payload_bits(int64_t d) {
  int k = 0;
  while ((d + 1) >> (k + 1)) ++k;
  return 2.0 * k + 2.0;
}

}  // namespace ransform
