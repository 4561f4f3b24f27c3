"""Sparse training inputs that become dense one batch at a time.

A scipy.sparse matrix of inputs stays sparse in host memory for the whole fit;
:class:`SparseRows` hands out dense float32 tensors of the rows a batch needs, so
memory grows with the batch, never with a dense copy of all of X.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["SparseRows", "dense_rows", "is_sparse"]


def is_sparse(X) -> bool:
    """Whether ``X`` is a scipy.sparse matrix or array."""
    return sp.issparse(X)


def dense_rows(X) -> np.ndarray:
    """Rows of a sparse matrix (or of an array) as a dense C-ordered float32 array."""
    if is_sparse(X):
        return X.toarray().astype(np.float32, copy=False)
    return np.ascontiguousarray(X, dtype=np.float32)


class SparseRows:
    """Rows of a CSR matrix, indexed like a tensor and densified per batch.

    Offers the part of the tensor interface that batching uses (``len``, indexing by
    an index tensor, ``index_select`` along rows, ``device``), so batches are
    gathered from it as from a tensor in host memory.

    Parameters
    ----------
    matrix : scipy.sparse matrix of shape (n_samples, n_features)
        Inputs; converted to float32 CSR once.

    Examples
    --------
    >>> import scipy.sparse as sp, torch
    >>> rows = SparseRows(sp.eye(4, format="csr"))
    >>> rows.index_select(0, torch.tensor([2, 0]))
    tensor([[0., 0., 1., 0.],
            [1., 0., 0., 0.]])
    """

    device = torch.device("cpu")

    def __init__(self, matrix):
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def __getitem__(self, index) -> SparseRows:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return SparseRows(self.matrix[index])

    def to(self, device: str) -> SparseRows:
        """The rows stay in host memory; each batch moves on its own."""
        return self

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` as a dense float32 tensor in host memory (``dim`` must be 0)."""
        if dim != 0:
            raise ValueError(f"SparseRows selects rows only (dim=0), not dim={dim}.")
        return torch.from_numpy(dense_rows(self.matrix[index.cpu().numpy()]))

    @property
    def n_bytes(self) -> int:
        m = self.matrix
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
