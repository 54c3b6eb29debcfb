#pragma once
// Eigenvalues of symmetric Gram matrices (the squared singular values of the token
// matrices they were accumulated from). The only translation unit that includes Eigen.
#include <vector>

namespace kvc::calibration {

// gram: n x n row-major, symmetric. Returns the n eigenvalues in descending order,
// negative round-off clamped to 0.
std::vector<double> gram_eigenvalues(const std::vector<double>& gram, int n);

// For eigenvalues lambda (descending): error[r] = sqrt(sum_{i>=r} lambda_i / sum_i lambda_i),
// the relative Frobenius error of the best rank-r approximation, r = 0..n (error[n] = 0).
// All zeros give error 0 at every rank.
std::vector<double> rank_errors(const std::vector<double>& eigenvalues_desc);

}  // namespace kvc::calibration
