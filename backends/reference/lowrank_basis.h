#pragma once
// The prefill key basis of low-rank plans (BasisSource::Prefill): the top `rank`
// right singular vectors of the keys, i.e. the eigenvectors of K^T K with the
// largest eigenvalues. This is the only translation unit that includes Eigen.
#include <cstdint>
#include <vector>

namespace kvc::reference {

// keys [n][head_dim] -> basis [head_dim][rank] (orthonormal columns, column r has
// the r-th largest eigenvalue; each column's largest-magnitude entry is made
// positive so the result is deterministic). Throws kvc::Error for rank outside
// [1, head_dim] or n < 0.
std::vector<float> principal_key_basis(const float* keys, std::int64_t n, int head_dim, int rank);

}  // namespace kvc::reference
