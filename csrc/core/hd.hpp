// hd.hpp: RANSFORM_HD marks core functions that also compile as CUDA device code, so the
// GPU table builders (csrc/cuda/tables.cu) run the very code the CPU runs and give its bits.
#pragma once

#if defined(__CUDACC__)
#define RANSFORM_HD __host__ __device__
#else
#define RANSFORM_HD
#endif
