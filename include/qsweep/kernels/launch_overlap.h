#pragma once
// Whether qsweep's kernels launch overlapped with the kernel before them (programmatic dependent
// launch, src/kernels/kernel_util.cuh): on a device of compute capability 9.0 or later, unless
// QSWEEP_PDL=0. Read per call, so that one process can measure both ways; benchmark records
// say which way they ran.
namespace qsweep::cuda {

bool overlapped_launches();

}  // namespace qsweep::cuda
