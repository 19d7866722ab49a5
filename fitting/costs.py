"""Theseus cost functions of the landmark fit, with analytic Jacobians.

* :class:`ReprojectionCost`: ``c_l * (Pi(K, R v_l + t) - y_l)`` over all landmarks (2L
  rows); optimisation variables are any subset of rot, transl, coeffs, pose, the rest
  are auxiliary (held fixed).
* :class:`L2PriorCost`: ``sqrt(w) * x`` (so the objective gains ``0.5 * sum w x^2``).

Theseus' objective is ``0.5 * sum(error^2)``; the weights live in the errors (conf) and
in the prior scales, the cost weights are 1.
"""

from __future__ import annotations

import theseus as th
import torch
from torch import Tensor
from torch.profiler import record_function

from .reprojection import reprojection, reprojection_normal

__all__ = ["PARAM_NAMES", "UnitCostWeight", "ReprojectionCost", "L2PriorCost"]

#: The fitted quantities, in Jacobian column order inside the reprojection cost.
PARAM_NAMES = ("rot", "transl", "coeffs", "pose")


class UnitCostWeight(th.CostWeight):
    """Weight 1 without touching the tensors (the weights live inside the errors)."""

    def is_zero(self) -> Tensor:
        return torch.zeros(1, dtype=torch.bool)

    def weight_error(self, error: Tensor) -> Tensor:
        return error

    def weight_jacobians_and_error(
        self, jacobians: list[Tensor], error: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        return jacobians, error

    def _copy_impl(self, new_name: str | None = None) -> UnitCostWeight:
        return UnitCostWeight(name=new_name)


class _Evaluated:
    """A landmark model whose :meth:`evaluate` returns a stored result (fixed coeffs / pose)."""

    def __init__(self, model, points: Tensor, state: dict[str, Tensor]) -> None:
        self._model, self._points, self._state = model, points, state

    def evaluate(self, coeffs: Tensor, pose: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self._points, dict(self._state)

    def __getattr__(self, name: str):
        return getattr(self._model, name)


class ReprojectionCost(th.CostFunction):
    """Confidence-weighted landmark re-projection residual (B, 2L).

    Args:
        model: :class:`fitting.landmark_model.LandmarkLBS` (landmark-restricted model).
        params: dict name -> th.Vector for all of :data:`PARAM_NAMES`.
        optim: names (subset of PARAM_NAMES) optimised in this objective.
        target: th.Variable (B, 2L) landmarks px, interleaved x, y.
        conf: th.Variable (B, L) confidences.
        K: th.Variable (B, 9) intrinsics, row-major, px.
    """

    def __init__(
        self,
        model,
        params: dict[str, th.Vector],
        optim: tuple[str, ...],
        target: th.Variable,
        conf: th.Variable,
        K: th.Variable,
        name: str | None = None,
    ) -> None:
        super().__init__(UnitCostWeight(), name=name)
        self.model = model
        self.optim = tuple(n for n in PARAM_NAMES if n in optim)
        self.fixed = tuple(n for n in PARAM_NAMES if n not in optim)
        for n in PARAM_NAMES:
            setattr(self, n, params[n])
        self.target, self.conf, self.K = target, conf, K
        self.register_optim_vars(list(self.optim))
        self.register_aux_vars(list(self.fixed) + ["target", "conf", "K"])

    def _args(self) -> tuple[Tensor, ...]:
        """rot, transl, coeffs, pose, K (B, 3, 3), target (B, L, 2), conf (B, L), broadcast."""
        B = self.target.tensor.shape[0]
        t = {n: getattr(self, n).tensor for n in PARAM_NAMES}
        B = max(B, *(v.shape[0] for v in t.values()))
        t = {n: v.expand(B, -1) for n, v in t.items()}
        target = self.target.tensor.expand(B, -1).reshape(B, -1, 2)
        K = self.K.tensor.expand(B, -1).reshape(B, 3, 3)
        return (*(t[n] for n in PARAM_NAMES), K, target, self.conf.tensor.expand(B, -1))

    def _model_for(self, coeffs: Tensor, pose: Tensor):
        """The model, or, when coeffs and pose are held fixed (the rigid stage) and need no
        gradient, a view of it whose landmark evaluation is computed once and reused for as
        long as those two tensors are the same (unmodified) objects."""
        if "coeffs" in self.optim or "pose" in self.optim:
            return self.model
        if torch.is_grad_enabled() and (coeffs.requires_grad or pose.requires_grad):
            return self.model
        c, p = self.coeffs.tensor, self.pose.tensor
        key = (c, p, c._version, p._version, coeffs.shape[0])
        cached = getattr(self, "_fixed_eval", None)
        if cached is None or any(
            a is not b if torch.is_tensor(a) else a != b
            for a, b in zip(cached[0], key, strict=True)
        ):
            cached = (key, _Evaluated(self.model, *self.model.evaluate(coeffs, pose)))
            self._fixed_eval = cached
        return cached[1]

    def _terms(self, wrt: tuple[str, ...]):
        args = self._args()
        return reprojection(self._model_for(args[2], args[3]), *args, wrt=wrt)

    def normal_equations(self) -> tuple[Tensor, Tensor]:
        """``J^T J`` (B, n, n) and ``-J^T e`` (B, n) over the optimisation variables (in
        :attr:`optim` order), from the model's structure without the stacked Jacobian
        (:func:`fitting.reprojection.reprojection_normal`)."""
        with record_function("fit/normal_equations"):
            args = self._args()
            H, g, _ = reprojection_normal(self._model_for(args[2], args[3]), *args, wrt=self.optim)
        return H, g

    def error(self) -> Tensor:
        with record_function("fit/error"):
            return self._terms(()).error

    def jacobians(self) -> tuple[list[Tensor], Tensor]:
        terms = self._terms(self.optim)
        return [terms.J[n] for n in self.optim], terms.error

    def dim(self) -> int:
        return self.conf.tensor.shape[1] * 2

    def _copy_impl(self, new_name: str | None = None) -> ReprojectionCost:
        params = {n: getattr(self, n).copy() for n in PARAM_NAMES}
        return ReprojectionCost(
            self.model,
            params,
            self.optim,
            self.target.copy(),
            self.conf.copy(),
            self.K.copy(),
            name=new_name,
        )


class L2PriorCost(th.CostFunction):
    """``error = sqrt_w * x`` for a vector variable x (B, n); sqrt_w (n,) constant."""

    def __init__(self, var: th.Vector, sqrt_w: Tensor, name: str | None = None) -> None:
        super().__init__(UnitCostWeight(), name=name)
        self.var = var
        self.sqrt_w = sqrt_w.to(var.dtype)
        self.register_optim_vars(["var"])

    def error(self) -> Tensor:
        return self.var.tensor * self.sqrt_w.to(self.var.device)

    def jacobians(self) -> tuple[list[Tensor], Tensor]:
        x = self.var.tensor
        J = torch.diag_embed(self.sqrt_w.to(x.device).expand(x.shape[0], -1))
        return [J], self.error()

    def normal_equations(self) -> tuple[Tensor, Tensor]:
        """Diagonal ``J^T J = w`` as (B, n) and ``-J^T e = -w x`` (B, n)."""
        x = self.var.tensor
        w = self.sqrt_w.to(x.device).pow(2)
        return w.expand(x.shape[0], -1), -(w * x)

    def dim(self) -> int:
        return self.var.dof()

    def _copy_impl(self, new_name: str | None = None) -> L2PriorCost:
        return L2PriorCost(self.var.copy(), self.sqrt_w, name=new_name)
