"""A dense Cholesky solver that never raises for one bad batch item.

Theseus' ``CholeskyDenseSolver`` calls ``torch.linalg.cholesky`` on the whole batch: one
(numerically) indefinite normal matrix aborts the iteration for every image. Here
``cholesky_ex`` flags the failing items, which are retried with a diagonal jitter and,
if that fails too, get a zero step (LM then rejects it and raises their damping).
"""

from __future__ import annotations

import theseus as th
import torch
from torch import Tensor
from torch.profiler import record_function

from .costs import UnitCostWeight

__all__ = ["BlockDenseLinearization", "RobustCholeskyDenseSolver", "LevenbergMarquardtStop"]


class BlockDenseLinearization(th.DenseLinearization):
    """Dense normal equations assembled block by block, without the stacked Jacobian.

    Theseus' ``DenseLinearization`` zero-fills a (B, rows, cols) matrix A, copies every
    Jacobian block into it and multiplies ``A^T A``; for the landmark fit A is ~3400 x 212
    per image and mostly one block (d residual / d coefficients). Here ``A^T A`` and
    ``A^T b`` are summed from the per-cost blocks directly (``J_i^T J_j`` for the variables
    of each cost; diagonal prior Jacobians cost nothing), which skips the fill, the copy
    and the prior rows. The result is identical; ``A`` itself is not available.
    """

    def _linearize_jacobian_impl(self):
        raise NotImplementedError("BlockDenseLinearization never forms the stacked Jacobian")

    def _linearize_hessian_impl(self, _detach_hessian: bool = False):
        B = self.objective.batch_size
        kw = dict(device=self.objective.device, dtype=self.objective.dtype)
        AtA = torch.zeros(B, self.num_cols, self.num_cols, **kw)
        Atb = torch.zeros(B, self.num_cols, 1, **kw)
        for cost in self.objective._get_jacobians_iter():
            cols = []
            for i in range(cost.num_optim_vars()):
                var = cost.optim_var_at(i)
                k = self.ordering.index_of(var.name)
                cols.append(slice(self.var_start_cols[k], self.var_start_cols[k] + var.dof()))
            if hasattr(cost, "normal_equations") and isinstance(cost.weight, UnitCostWeight):
                self._add_normal(AtA, Atb, cols, *cost.normal_equations())
                continue
            jacs, err = cost.weighted_jacobians_error()
            # (narrow^T wide) products: torch's CPU bmm copies a transposed wide operand
            for i, Ji in enumerate(jacs):
                Atb[:, cols[i]] = Atb[:, cols[i]] - (err.unsqueeze(1) @ Ji).transpose(1, 2)
                for j in range(i, len(jacs)):
                    Jj = jacs[j]
                    if Ji.shape[2] <= Jj.shape[2]:
                        blk = Ji.transpose(1, 2) @ Jj
                    else:
                        blk = (Jj.transpose(1, 2) @ Ji).transpose(1, 2)
                    AtA[:, cols[i], cols[j]] = AtA[:, cols[i], cols[j]] + blk
                    if j != i:
                        AtA[:, cols[j], cols[i]] = AtA[:, cols[j], cols[i]] + blk.transpose(1, 2)
        self._AtA = AtA.detach() if _detach_hessian else AtA
        self._Atb = Atb

    @staticmethod
    def _add_normal(AtA: Tensor, Atb: Tensor, cols: list[slice], H: Tensor, g: Tensor) -> None:
        """Scatter one cost's normal equations into the objective's: H (B, n, n), or (B, n)
        for a diagonal one, and g (B, n) = ``-J^T e``, both in the cost's variable order."""
        offs = [0]
        for c in cols:
            offs.append(offs[-1] + c.stop - c.start)
        for i, ci in enumerate(cols):
            li = slice(offs[i], offs[i + 1])
            Atb[:, ci, 0] = Atb[:, ci, 0] + g[:, li]
            if H.dim() == 2:
                AtA[:, ci, ci].diagonal(dim1=1, dim2=2).add_(H[:, li])
                continue
            for j, cj in enumerate(cols):
                AtA[:, ci, cj] = AtA[:, ci, cj] + H[:, li, slice(offs[j], offs[j + 1])]

    def Av(self, v: Tensor) -> Tensor:
        raise NotImplementedError("BlockDenseLinearization does not keep A (use LM / Gauss-Newton)")


class RobustCholeskyDenseSolver(th.CholeskyDenseSolver):
    """Batched dense Cholesky solve of ``(A^T A + damping) x = A^T b`` (B, n, n), on the
    block-assembled normal equations of :class:`BlockDenseLinearization` by default."""

    def __init__(
        self, objective, linearization_cls=None, linearization_kwargs=None, check_singular=False
    ):
        # Theseus' DenseSolver insists on exactly DenseLinearization: build that, then swap in
        # the block-assembled subclass on the same variable ordering.
        super().__init__(
            objective, linearization_cls, linearization_kwargs, check_singular=check_singular
        )
        if linearization_cls is None:
            self.linearization = BlockDenseLinearization(
                objective, ordering=self.linearization.ordering
            )

    #: relative jitter (times mean diagonal) added to items whose factorisation fails
    JITTER = 1e-5
    #: run the jitter retry without asking whether an item failed (no host read); None:
    #: on every device but the CPU (True on the CPU reproduces the GPU path's host syncs)
    ALWAYS_RETRY: bool | None = None

    def _solve_sytem(self, Atb: Tensor, AtA: Tensor) -> Tensor:
        with record_function("fit/linear_solve"):
            return self._robust_solve(Atb, AtA)

    def _robust_solve(self, Atb: Tensor, AtA: Tensor, always_retry: bool | None = None) -> Tensor:
        """Batched Cholesky solve; failed items retry with jitter, then get a zero step.

        On the CPU the retry runs only when some item failed (asking is free there); on any
        other device it always runs, selected per item with ``where``, so the solve never
        waits for the device (no host sync inside the LM iteration from here)."""
        lower, info = torch.linalg.cholesky_ex(AtA)
        bad = info > 0  # (B,)
        if always_retry is None:
            always_retry = self.ALWAYS_RETRY
        if always_retry is None:
            always_retry = AtA.device.type != "cpu"
        if always_retry or bool(bad.any()):
            n = AtA.shape[-1]
            scale = AtA.diagonal(dim1=1, dim2=2).abs().mean(-1).clamp_min(1e-12)  # (B,)
            eye = torch.eye(n, dtype=AtA.dtype, device=AtA.device)
            jitter = torch.where(bad, scale * self.JITTER, torch.zeros_like(scale))
            lower2, info2 = torch.linalg.cholesky_ex(AtA + jitter[:, None, None] * eye)
            lower = torch.where(bad[:, None, None], lower2, lower)
            still_bad = bad & (info2 > 0)
            lower = torch.where(still_bad[:, None, None], eye.expand_as(lower), lower)
            Atb = torch.where(still_bad[:, None, None], torch.zeros_like(Atb), Atb)
        sol = torch.cholesky_solve(Atb, lower).squeeze(2)
        return torch.nan_to_num(sol, nan=0.0, posinf=0.0, neginf=0.0)


class LevenbergMarquardtStop(th.LevenbergMarquardt):
    """Theseus LM whose convergence test ignores rejected steps.

    Theseus marks a batch item converged when its error did not change, which is also
    what a rejected (damped-away) step looks like; the item is then frozen for the rest of
    the solve, and un-frozen again at the next test. Here an item converges

    * on an accepted step whose relative decrease is below ``rel_err_tolerance`` (or whose
      error, or its change, is below ``abs_err_tolerance``: per item, where Theseus compares
      the batch mean, which needs a host sync), or
    * on a rejected step whose *predicted* relative decrease (the LM model's, at the
      current damping) is below ``rel_err_tolerance`` too: MINPACK's ``ftol`` test on the
      predicted reduction. Without it an item sitting at its float32 noise floor (the
      actual change is rounding, so every step is rejected) runs all iterations and keeps
      its batch alive;

    and then stays converged until the solve ends.
    """

    _last_reject: Tensor | None = None
    _done: Tensor | None = None
    _pred: Tensor | None = None

    def reset(self, **kwargs) -> None:
        super().reset(**kwargs)
        self._last_reject = None
        self._done = None
        self._pred = None

    def _check_accept(
        self,
        delta: Tensor,
        err: Tensor,
        previous_err: Tensor,
        damping_accept: float,
        down_damping_ratio: float,
        up_damping_ratio: float,
        ellipsoidal_damping: bool,
    ) -> Tensor:
        with torch.no_grad():  # the model's predicted decrease, as Theseus computes it
            lin = self.linear_solver.linearization
            damping = self._damping.view(-1, 1)
            if ellipsoidal_damping:
                damping = lin.diagonal_scaling(damping)
            self._pred = (delta * (damping * delta + lin.Atb.squeeze(2))).sum(dim=1) / 2
        return super()._check_accept(
            delta,
            err,
            previous_err,
            damping_accept,
            down_damping_ratio,
            up_damping_ratio,
            ellipsoidal_damping,
        )

    def _step(
        self,
        delta: Tensor,
        previous_err: Tensor,
        converged_indices: Tensor,
        force_update: bool,
        delta_forced_to_gn: bool,
        **kwargs,
    ) -> tuple[Tensor, bool]:
        """Theseus' step, minus its second residual evaluation and its per-variable host syncs.

        After a partly rejected step Theseus recomputes the whole batch's error; the rejected
        (and frozen) items kept their variables, so their error is ``previous_err`` exactly,
        the others' is the trial one. Theseus' masked updates (``Variable.update`` with a
        batch mask) ask ``mask.any()`` on the host for every variable; here the frozen and the
        rejected items are selected with ``where`` on the device (the same values). The one
        host read left is ``reject.all()``: Theseus' loop needs it as a Python bool (an
        all-rejected iteration is not counted)."""
        self._update_tmp_optim_vars()
        current = {v.name: v.tensor for v in self.ordering}
        self.objective.retract_vars_sequence(delta, self._tmp_optim_vars)
        tensor_dict = {v.name: v.tensor for v in self._tmp_optim_vars}
        if not force_update:  # converged items stay frozen
            tensor_dict = _keep_where(converged_indices, current, tensor_dict)
        err = self.objective.error_metric(tensor_dict, also_update=False)
        reject = (
            None if delta_forced_to_gn else self._complete_step(delta, err, previous_err, **kwargs)
        )
        if reject is not None and reject.all():
            return previous_err, True
        if reject is not None:
            tensor_dict = _keep_where(reject, current, tensor_dict)
            err = torch.where(reject, previous_err, err)
        self.objective.update(tensor_dict)
        return err, False

    def _complete_step(self, delta, new_err, previous_err, **kwargs):
        reject = super()._complete_step(delta, new_err, previous_err, **kwargs)
        self._last_reject = reject
        return reject

    @torch.no_grad()
    def _check_convergence(self, err: Tensor, last_err: Tensor) -> Tensor:
        # Theseus' test per item, but without its batch-wide ``if err.abs().mean() < abs_tol``
        # (a host sync every iteration): an item is done when its own error is below abs_tol
        abs_tol, rel_tol = self.params.abs_err_tolerance, self.params.rel_err_tolerance
        change = (last_err - err).abs()
        done = (err.abs() < abs_tol) | (change < abs_tol) | (change / last_err).abs().lt(rel_tol)
        if self._last_reject is not None and self._last_reject.shape == done.shape:
            flat = torch.zeros_like(done)
            if self._pred is not None and self._pred.shape == done.shape:
                flat = self._pred.abs() <= rel_tol * err.abs()
            done = done & ~self._last_reject | (self._last_reject & flat)
        if self._done is not None and self._done.shape == done.shape:
            done = done | self._done  # sticky: a converged item stays frozen
        self._done = done
        return done


def _keep_where(mask: Tensor, old: dict[str, Tensor], new: dict[str, Tensor]) -> dict[str, Tensor]:
    """``new`` with the batch items where ``mask`` (B,) is True taken from ``old``, on the
    device (what Theseus' ``Variable.update(tensor, batch_ignore_mask=mask)`` computes)."""
    out = {}
    for name, t in new.items():
        out[name] = torch.where(mask.view((-1,) + (1,) * (t.dim() - 1)), old[name], t)
    return out
