"""Linear probes: a closed-form ridge-regression classifier from activations to several labels.

Definition (metric version 1 of the probe claims): features are centred on the training set's
mean; for each of k labels with c classes, one-hot targets are regressed on the features by ridge
least squares, W = (X'X + lam I)^-1 X'Y with lam = RIDGE * trace(X'X) / d, plus an intercept (the
target mean); the predicted class is the argmax of the k x c outputs. Closed form, so it has no
seed, no learning rate and no iteration count to drift, and costs two matmuls over the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from verify import timing

RIDGE = 1e-3


@dataclass(frozen=True)
class LinearProbe:
    mean: torch.Tensor  # (d,)
    weight: torch.Tensor  # (d, k * c)
    bias: torch.Tensor  # (k * c,)
    n_classes: int

    @timing.stage("forward")
    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) activations -> (..., k) predicted classes."""
        flat = x.reshape(-1, x.shape[-1]).double() - self.mean
        out = (flat @ self.weight + self.bias).reshape(len(flat), -1, self.n_classes)
        return out.argmax(-1).reshape(*x.shape[:-1], -1)


@timing.stage("forward")
@torch.inference_mode()
def fit_linear_probe(x: torch.Tensor, labels: torch.Tensor, n_classes: int) -> LinearProbe:
    """Fit on activations x (..., d) and integer labels (..., k) in [0, n_classes), in float64."""
    flat = x.reshape(-1, x.shape[-1]).double()
    y = labels.reshape(len(flat), -1).to(flat.device)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{int(y.min())}, {int(y.max())}]")
    targets = torch.nn.functional.one_hot(y, n_classes).reshape(len(flat), -1).double()
    mean = flat.mean(0)
    centred = flat - mean
    gram = centred.T @ centred
    lam = RIDGE * torch.trace(gram) / gram.shape[0]
    weight = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device), centred.T @ targets)
    return LinearProbe(mean, weight, targets.mean(0), n_classes)
