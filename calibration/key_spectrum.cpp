#include "calibration/key_spectrum.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

namespace kvc::calibration {

std::vector<double> gram_eigenvalues(const std::vector<double>& gram, int n) {
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> m(gram.data(), n, n);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(m, Eigen::EigenvaluesOnly);
  std::vector<double> out(n);
  for (int i = 0; i < n; ++i) out[i] = std::max(0.0, solver.eigenvalues()[n - 1 - i]);  // ascending -> descending
  return out;
}

std::vector<double> rank_errors(const std::vector<double>& eig) {
  const std::size_t n = eig.size();
  std::vector<double> tail(n + 1, 0.0);  // tail[r] = sum_{i>=r}, summed from the smallest for accuracy
  for (std::size_t i = n; i-- > 0;) tail[i] = tail[i + 1] + eig[i];
  std::vector<double> err(n + 1, 0.0);
  if (tail[0] <= 0.0) return err;
  for (std::size_t r = 0; r <= n; ++r) err[r] = std::sqrt(std::max(0.0, tail[r] / tail[0]));
  return err;
}

}  // namespace kvc::calibration
