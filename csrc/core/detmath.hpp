// detmath.hpp: exp, log and erfc built only from correctly rounded IEEE-754 double
// operations (+ - * /, floor, frexp, ldexp).
//
// READ ME FIRST
// Encoder and decoder must build bit-identical CDF tables, possibly on different machines
// (x86 and ARM, libstdc++ and MSVC, CPU and GPU). std::exp and std::erfc are not specified to
// the last bit, so a table built through them can differ by one count between platforms,
// and one count is enough to mis-decode a stream. Every function here uses a fixed sequence
// of basic operations, so it returns the same bits wherever IEEE doubles are available and
// contraction to FMA is off (CMake passes -ffp-contract=off; CUDA code must use -fmad=false).
// Accuracy is about 1e-15 relative, which is far below what a 16-bit CDF can see.
#pragma once

#include <cmath>

#include "core/hd.hpp"

namespace ransform::detmath {

// ln 2 split so that k * kLn2Hi is exact for |k| < 2^20 (kLn2Hi has 32 significant bits).
inline constexpr double kLn2Hi = 6.93147180369123816490e-01;
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;
inline constexpr double kInvLn2 = 1.44269504088896338700e+00;
inline constexpr double kInvSqrtPi = 5.64189583547756286948e-01;
inline constexpr double kSqrt2 = 1.41421356237309504880e+00;
// Usable in device code, unlike std::numeric_limits.
inline constexpr double kInf = __builtin_huge_val();
inline constexpr double kNaN = __builtin_nan("");

// e^x. x = k ln2 + r with |r| <= ln2/2, then e^r by its Taylor series to degree 15
// (remainder below 1e-18) in Horner form, then an exact scaling by 2^k.
RANSFORM_HD inline double exp(double x) {
  if (x != x) return x;
  if (x > 709.78) return kInf;
  if (x < -745.2) return 0.0;
  const double k = ::floor(x * kInvLn2 + 0.5);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  double p = 1.0;
  for (int n = 15; n >= 1; --n) p = 1.0 + p * r / n;  // 1 + r/1 (1 + r/2 (1 + r/3 (...)))
  return ::ldexp(p, static_cast<int>(k));
}

// ln x for x > 0. x = m 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.1716, by its odd series to s^25 (remainder below 1e-19).
RANSFORM_HD inline double log(double x) {
  if (!(x > 0.0)) return x == 0.0 ? -kInf : kNaN;
  if (x == kInf) return x;
  int e = 0;
  double m = ::frexp(x, &e);  // m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double series = 1.0 / 25.0;
  for (int n = 23; n >= 1; n -= 2) series = 1.0 / n + s2 * series;
  const double ln_m = 2.0 * s * series;
  return e * kLn2Hi + (e * kLn2Lo + ln_m);
}

RANSFORM_HD inline double log2(double x) { return log(x) * kInvLn2; }

// erfc(x). For |x| < 2: 1 - erf(x) with erf by its Maclaurin series (terms x^(2n+1)/n!/(2n+1),
// alternating, summed until they stop changing the sum). For x >= 2: the continued fraction
//   erfc(x) = e^(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
// evaluated bottom-up from a fixed depth, which gives full precision from x = 2 on.
RANSFORM_HD inline double erfc(double x) {
  if (x != x) return x;
  if (x < 0.0) return 2.0 - erfc(-x);
  if (x < 2.0) {
    const double x2 = x * x;
    double term = x;  // (-1)^n x^(2n+1) / n!
    double sum = x;
    for (int n = 1; n < 60; ++n) {
      term = -term * x2 / n;
      const double next = sum + term / (2 * n + 1);
      if (next == sum) break;
      sum = next;
    }
    return 1.0 - 2.0 * kInvSqrtPi * sum;
  }
  if (x > 27.3) return 0.0;  // below the smallest subnormal
  const int depth = x < 3.0 ? 120 : x < 5.0 ? 60 : 30;
  double cf = x;
  for (int n = depth; n >= 1; --n) cf = x + (0.5 * n) / cf;
  return exp(-x * x) * kInvSqrtPi / cf;
}

}  // namespace ransform::detmath
