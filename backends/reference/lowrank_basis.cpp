#include "backends/reference/lowrank_basis.h"

#include <Eigen/Eigenvalues>
#include <cmath>
#include <string>

#include "support/diagnostics.h"

namespace kvc::reference {

std::vector<float> principal_key_basis(const float* keys, std::int64_t n, int head_dim, int rank) {
  if (head_dim <= 0 || rank < 1 || rank > head_dim)
    throw Error("principal_key_basis: rank " + std::to_string(rank) + " outside [1, " + std::to_string(head_dim) +
                "]");
  if (n < 0) throw Error("principal_key_basis: negative token count");
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(head_dim, head_dim);
  for (std::int64_t t = 0; t < n; ++t) {
    const float* k = keys + t * head_dim;
    for (int i = 0; i < head_dim; ++i)
      for (int j = 0; j < head_dim; ++j) gram(i, j) += static_cast<double>(k[i]) * k[j];
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(gram);
  if (solver.info() != Eigen::Success) throw Error("principal_key_basis: eigendecomposition failed");
  // Eigenvalues come in increasing order: the last `rank` columns, reversed.
  std::vector<float> basis(static_cast<std::size_t>(head_dim) * static_cast<std::size_t>(rank));
  for (int r = 0; r < rank; ++r) {
    Eigen::VectorXd col = solver.eigenvectors().col(head_dim - 1 - r);
    Eigen::Index arg = 0;
    col.cwiseAbs().maxCoeff(&arg);
    if (col(arg) < 0) col = -col;
    for (int d = 0; d < head_dim; ++d)
      basis[static_cast<std::size_t>(d) * static_cast<std::size_t>(rank) + static_cast<std::size_t>(r)] =
          static_cast<float>(col(d));
  }
  return basis;
}

}  // namespace kvc::reference
