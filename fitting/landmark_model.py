"""A FLAME-like linear-blend-skinning model restricted to the landmark vertices, with
analytic Jacobians.

The fitter never evaluates the 5023-vertex mesh inside the LM loop: the blendshapes,
pose correctives and skinning weights are cut down to the ``U`` *support* vertices the
landmarks need (``U = L`` for vertex landmarks; ``U <= 3L`` for barycentric embeddings
such as the iBUG-68 ones), and the full mesh is rebuilt once at the end.

Model (FLAME / smplx ``lbs`` with the root joint held at the identity; the rigid head
motion lives outside, in the camera extrinsics ``X_cam = R X + t``)::

    v_shaped = T + D c                      c = [shape, expression]        (K,)
    J        = Jreg v_shaped                joints                         (NJ, 3)
    pf       = vec(R_j - I), j = 1..NJ-1    pose feature                   (9 (NJ-1),)
    v_posed  = v_shaped + P pf
    v_i      = sum_k w_ik (G_k^R v_posed_i + A_k^t)   (rigid chain, A_k^t = G_k^t - G_k^R J_k)

Everything is in model space (metres for FLAME). ``c`` enters linearly for a fixed pose,
so ``dv/dc`` is exact and cheap; ``dv/dpose`` (a handful of axis-angle entries) is a
hand-written forward-mode pass through the kinematic chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from facemodels.rotations import axis_angle_to_matrix, hat

from .so3 import so3_right_jacobian

__all__ = ["LBSArrays", "LandmarkSelection", "LandmarkLBS"]


@dataclass
class LBSArrays:
    """The arrays of a FLAME-format model that fitting needs (numpy or torch, float).

    Attributes:
        v_template: (V, 3) metres.
        shapedirs: (V, 3, S) identity blendshapes (columns 0..S-1 are used as ``shape``).
        exprdirs: (V, 3, E) expression blendshapes (may have E = 0).
        posedirs: (V, 3, 9 (NJ - 1)) pose correctives (may be all zero).
        J_regressor: (NJ, V) joint regressor (dense).
        weights: (V, NJ) skinning weights.
        parents: (NJ,) int, parents[0] = -1.
        faces: (F, 3) int triangles (only used to write meshes).
    """

    v_template: np.ndarray | Tensor
    shapedirs: np.ndarray | Tensor
    exprdirs: np.ndarray | Tensor
    posedirs: np.ndarray | Tensor
    J_regressor: np.ndarray | Tensor
    weights: np.ndarray | Tensor
    parents: np.ndarray | Tensor
    faces: np.ndarray | Tensor | None = None

    @classmethod
    def from_flame(cls, flame, n_shape: int = 100, n_expr: int = 100) -> LBSArrays:
        """From ``facemodels.flame.load_flame_arrays`` output (shapedirs (V, 3, 300 + 100)).

        Args:
            flame: object with v_template, shapedirs, posedirs, J_regressor, weights,
                parents and faces (or f) attributes.
            n_shape, n_expr: coefficients kept (<= 300, <= 100).
        """
        sd = np.asarray(flame.shapedirs)
        n_id = int(
            getattr(flame, "n_shape", min(300, sd.shape[2]))
        )  # FLAME: 300 shape, then expression
        if n_shape > n_id or n_expr > sd.shape[2] - n_id:
            raise ValueError(
                f"LBSArrays.from_flame: shapedirs has {n_id} shape + {sd.shape[2] - n_id} "
                f"expression columns; asked for {n_shape} + {n_expr}"
            )
        faces = getattr(flame, "faces", None)
        if faces is None:
            faces = getattr(flame, "f", None)
        jreg = flame.J_regressor
        if hasattr(jreg, "toarray"):
            jreg = jreg.toarray()
        return cls(
            v_template=np.asarray(flame.v_template),
            shapedirs=sd[:, :, :n_shape],
            exprdirs=sd[:, :, n_id : n_id + n_expr],
            posedirs=np.asarray(flame.posedirs),
            J_regressor=np.asarray(jreg),
            weights=np.asarray(flame.weights),
            parents=np.asarray(flame.parents).astype(np.int64),
            faces=None if faces is None else np.asarray(faces).astype(np.int64),
        )


@dataclass
class LandmarkSelection:
    """Which model points are the landmarks.

    Either plain vertex indices ``(L,)`` or a barycentric embedding: ``face_idx`` (L,)
    into ``faces`` with ``bary`` (L, 3) weights.
    """

    vertex_idx: np.ndarray | None = None
    face_idx: np.ndarray | None = None
    bary: np.ndarray | None = None

    def corner_vertices(self, faces: np.ndarray) -> np.ndarray:
        """(L, 3) vertex ids of each barycentric landmark's triangle."""
        return np.asarray(faces, dtype=np.int64)[np.asarray(self.face_idx, dtype=np.int64)]

    def support_and_interp(self, faces: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Returns the support vertex indices (U,) and an (L, U) interpolation matrix
        (None when the landmarks are the support vertices themselves)."""
        if self.vertex_idx is not None:
            return np.asarray(self.vertex_idx, dtype=np.int64).reshape(-1), None
        if self.face_idx is None or self.bary is None or faces is None:
            raise ValueError(
                "LandmarkSelection: give vertex_idx, or face_idx + bary with model faces"
            )
        tri = self.corner_vertices(faces)  # (L, 3)
        support, inv = np.unique(tri.reshape(-1), return_inverse=True)
        L = tri.shape[0]
        interp = np.zeros((L, support.shape[0]), dtype=np.float64)
        np.add.at(
            interp, (np.repeat(np.arange(L), 3), inv), np.asarray(self.bary, np.float64).reshape(-1)
        )
        return support, interp


def _t(x, dtype) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(dtype)


class LandmarkLBS(nn.Module):
    """LBS evaluated on the landmark support vertices only, with Jacobians.

    Args:
        arrays: the model arrays.
        selection: the landmark set.
        free_joints: joint indices (>= 1) whose axis-angle is a fitting parameter, e.g.
            (1, 2) = FLAME neck and jaw. Other joints stay at the identity.
        dtype: computation dtype.

    Parameters at call time: ``coeffs`` (B, K) = [shape (S), expression (E)], ``pose``
    (B, 3 * len(free_joints)) axis-angle radians.
    """

    def __init__(
        self,
        arrays: LBSArrays,
        selection: LandmarkSelection,
        free_joints: tuple[int, ...] = (1, 2),
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        faces = None if arrays.faces is None else np.asarray(arrays.faces)
        support, interp = selection.support_and_interp(faces)
        V = np.asarray(arrays.v_template).shape[0]
        if support.size == 0 or support.min() < 0 or support.max() >= V:
            raise ValueError(
                f"LandmarkLBS: landmark vertex indices must lie in [0, {V}), got "
                f"range [{support.min() if support.size else None}, "
                f"{support.max() if support.size else None}]"
            )
        parents = np.asarray(arrays.parents).astype(np.int64).reshape(-1)
        nj = parents.shape[0]
        if any(j <= 0 or j >= nj for j in free_joints):
            raise ValueError(f"LandmarkLBS: free_joints must be in [1, {nj}), got {free_joints}")
        self.parents = [int(p) for p in parents]
        self.free_joints = tuple(int(j) for j in free_joints)
        self.n_shape = np.asarray(arrays.shapedirs).shape[2]
        self.n_expr = np.asarray(arrays.exprdirs).shape[2] if arrays.exprdirs is not None else 0
        sup = torch.as_tensor(support)
        dirs = torch.cat(
            [_t(arrays.shapedirs, torch.float64), _t(arrays.exprdirs, torch.float64)], 2
        )
        jreg = _t(arrays.J_regressor, torch.float64)  # (NJ, V)
        tmpl = _t(arrays.v_template, torch.float64)
        posedirs = _t(arrays.posedirs, torch.float64)
        if posedirs.shape[-1] != 9 * (nj - 1):
            raise ValueError(
                f"LandmarkLBS: posedirs must be (V, 3, {9 * (nj - 1)}), got {tuple(posedirs.shape)}"
            )
        self.register_buffer("T", tmpl[sup].to(dtype))  # (U, 3)
        self.register_buffer("D", dirs[sup].to(dtype))  # (U, 3, K)
        self.register_buffer(
            "D_cols",
            dirs[sup].permute(1, 0, 2)[:, None, :, None, :].contiguous().to(dtype),
            persistent=False,
        )  # (3, 1, U, 1, K): D[:, j] contiguous per j
        self.register_buffer("P", posedirs[sup].to(dtype))  # (U, 3, 9 (NJ-1))
        # decided once here, so the LM loop never asks the device whether P is zero
        self.has_pose_correctives = bool(posedirs[sup].any())
        self.register_buffer("W", _t(arrays.weights, torch.float64)[sup].to(dtype))  # (U, NJ)
        self.register_buffer("JT", (jreg @ tmpl).to(dtype))  # (NJ, 3)
        self.register_buffer("JD", torch.einsum("jv,vdk->jdk", jreg, dirs).to(dtype))  # (NJ, 3, K)
        self.register_buffer(
            "interp", None if interp is None else torch.as_tensor(interp).to(dtype)
        )  # (L, U)
        if interp is not None:
            # barycentric landmark l = sum_k b_lk v(u_lk) over its triangle's C = 3 corners: the
            # per-landmark basis of :meth:`coeff_normal`, rows (k, i) = b_lk D[u_lk, i] (L, 3 C, K),
            # and the landmark's skinning weights interp @ W (L, NJ)
            corner = torch.as_tensor(np.searchsorted(support, selection.corner_vertices(faces)))  # (L, C)
            b = torch.as_tensor(np.asarray(selection.bary, np.float64))  # (L, C)
            Dc = b[:, :, None, None] * dirs[sup][corner]  # (L, C, 3, K)
            self.register_buffer("corner", corner, persistent=False)
            self.register_buffer("D_corner", Dc.reshape(Dc.shape[0], -1, Dc.shape[-1]).to(dtype), persistent=False)
            self.register_buffer("W_land", (self.interp.double() @ self.W.double()).to(dtype), persistent=False)
        self.register_buffer("support", sup)
        self.n_landmarks = support.shape[0] if interp is None else interp.shape[0]

    @property
    def n_coeffs(self) -> int:
        return self.n_shape + self.n_expr

    @property
    def n_pose(self) -> int:
        return 3 * len(self.free_joints)

    # ------------------------------------------------------------------ helpers
    def _rotations(self, pose: Tensor) -> Tensor:
        """(B, 3 F) axis-angle -> (B, NJ, 3, 3) joint rotations (root and fixed joints = I)."""
        B = pose.shape[0]
        nj = len(self.parents)
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        rots = [eye.expand(B, 3, 3)] * nj
        if self.free_joints:
            Rf = axis_angle_to_matrix(pose.reshape(B, len(self.free_joints), 3))  # (B, F, 3, 3)
            for i, j in enumerate(self.free_joints):
                rots[j] = Rf[:, i]
        return torch.stack(rots, 1)

    def _chain(self, rots: Tensor, joints: Tensor) -> tuple[Tensor, Tensor]:
        """World rotations (B, NJ, 3, 3) and skinning translations A^t (B, NJ, 3)."""
        GR, Gt = [rots[:, 0]], [joints[:, 0]]
        for k in range(1, len(self.parents)):
            p = self.parents[k]
            GR.append(GR[p] @ rots[:, k])
            Gt.append(Gt[p] + (GR[p] @ (joints[:, k] - joints[:, p])[..., None])[..., 0])
        GR_t, Gt_t = torch.stack(GR, 1), torch.stack(Gt, 1)
        At = Gt_t - (GR_t @ joints[..., None])[..., 0]
        return GR_t, At

    def _translation_coeffs(self, GR: Tensor) -> Tensor:
        """C (B, NJ, NJ, 3, 3) with A^t_k = sum_m C[k, m] J_m (A^t is linear in J for fixed rotations)."""
        B, nj = GR.shape[0], len(self.parents)
        eye = torch.eye(3, dtype=GR.dtype, device=GR.device).expand(B, 3, 3)
        zero = torch.zeros_like(eye)
        CG = [[eye if m == 0 else zero for m in range(nj)]]
        for k in range(1, nj):
            p = self.parents[k]
            row = []
            for m in range(nj):
                c = CG[p][m]
                if m == k:
                    c = c + GR[:, p]
                if m == p:
                    c = c - GR[:, p]
                row.append(c)
            CG.append(row)
        C = [[CG[k][m] - (GR[:, k] if m == k else 0) for m in range(nj)] for k in range(nj)]
        return torch.stack([torch.stack(r, 1) for r in C], 1)

    def _support_points(self, coeffs: Tensor, pose: Tensor) -> dict[str, Tensor]:
        """Support vertices v (B, U, 3) plus the intermediate quantities the Jacobians reuse."""
        v_shaped = self.T + torch.einsum("udk,bk->bud", self.D, coeffs)  # (B, U, 3)
        joints = self.JT + torch.einsum("jdk,bk->bjd", self.JD, coeffs)  # (B, NJ, 3)
        rots = self._rotations(pose)
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        pf = (rots[:, 1:] - eye).reshape(pose.shape[0], -1)  # (B, 9 (NJ-1))
        v_posed = v_shaped + torch.einsum("udp,bp->bud", self.P, pf)
        GR, At = self._chain(rots, joints)
        Rw = (self.W @ GR.reshape(GR.shape[0], -1, 9)).view(GR.shape[0], -1, 3, 3)  # (B, U, 3, 3)
        tw = torch.einsum("uk,bki->bui", self.W, At)  # (B, U, 3)
        v = (Rw * v_posed[:, :, None, :]).sum(-1) + tw  # per-vertex 3x3 @ 3: no tiny bmm
        return {"v": v, "GR": GR, "Rw": Rw, "rots": rots, "joints": joints, "v_posed": v_posed}

    def _pose_tangents(self, pose: Tensor, st: dict[str, Tensor]) -> Tensor:
        """Forward-mode derivative of the support vertices w.r.t. the free-joint
        axis-angles, by hand through the chain: (B, U, 3, T = 3F)."""
        B, F = pose.shape[0], len(self.free_joints)
        T = 3 * F
        rots, joints, GR = st["rots"], st["joints"], st["GR"]
        w = pose.reshape(B * F, 3)
        # dR/dw_a = R hat(J_r(w) e_a): (B, F, a, 3, 3)
        Jr = so3_right_jacobian(w)  # (B F, 3, 3)
        Rf = torch.stack([rots[:, j] for j in self.free_joints], 1).reshape(B * F, 3, 3)  # no list index (a host->device copy)
        dRf = Rf[:, None] @ hat(Jr.transpose(1, 2))  # (B F, a, 3, 3): column a of J_r
        dRf = dRf.reshape(B, F, 3, 3, 3)
        nj = len(self.parents)
        zero = rots.new_zeros(B, T, 3, 3)
        dR = [zero] * nj  # per joint: (B, T, 3, 3)
        for i, j in enumerate(self.free_joints):
            d = rots.new_zeros(B, F, 3, 3, 3)
            d[:, i] = dRf[:, i]
            dR[j] = d.reshape(B, T, 3, 3)
        dGR, dGt = [zero], [rots.new_zeros(B, T, 3)]
        for k in range(1, nj):
            p = self.parents[k]
            dGR.append(dGR[p] @ rots[:, None, k] + GR[:, None, p] @ dR[k])
            dGt.append(dGt[p] + (dGR[p] @ (joints[:, k] - joints[:, p])[:, None, :, None])[..., 0])
        dGR_t, dGt_t = torch.stack(dGR, 2), torch.stack(dGt, 2)  # (B, T, NJ, 3, 3), (B, T, NJ, 3)
        dAt = dGt_t - (dGR_t @ joints[:, None, :, :, None])[..., 0]
        # dv[b, u, i, t] = sum_k W[u, k] (sum_j dGR[b, t, k, i, j] v_posed[b, u, j] + dAt[b, t, k, i])
        # = one bmm: (W[u, k] [v_posed_u, 1]_j) (B, U, NJ*4) @ [dGR | dAt] (B, NJ*4, 3 T)
        U = st["v_posed"].shape[1]
        vh = torch.cat([st["v_posed"], st["v_posed"].new_ones(B, U, 1)], -1)  # (B, U, 4)
        Pv = (self.W[None, :, :, None] * vh[:, :, None, :]).reshape(B, U, nj * 4)
        Gt = torch.cat([dGR_t, dAt[..., None]], -1)  # (B, T, NJ, 3 (i), 4 (j))
        Gt = Gt.permute(0, 2, 4, 3, 1).reshape(B, nj * 4, 3 * T)  # rows (k, j), cols (i, t)
        dv = (Pv @ Gt).reshape(B, U, 3, T)
        if self.has_pose_correctives:  # + Rw_u (P_u dpf)
            dpf = torch.stack(dR[1:], 2).reshape(B, T, -1)  # (B, T, 9 (NJ-1))
            dv_posed = torch.einsum("udp,btp->budt", self.P, dpf)  # (B, U, 3, T)
            dv = dv + st["Rw"] @ dv_posed
        return dv

    def _coeff_translation_derivative(self, GR: Tensor) -> Tensor:
        """d A^t / d coeffs: (B, NJ, 3, K)."""
        C = self._translation_coeffs(GR)  # (B, NJ, NJ, 3, 3)
        return torch.einsum("bkmij,mjK->bkiK", C, self.JD)

    def _to_landmarks(self, x: Tensor) -> Tensor:
        """Support-vertex quantity (B, U, ...) -> landmark quantity (B, L, ...)."""
        if self.interp is None:
            return x
        shp = x.shape
        return (self.interp @ x.reshape(shp[0], shp[1], -1)).reshape(shp[0], -1, *shp[2:])

    # ------------------------------------------------------------------ public
    def forward(self, coeffs: Tensor, pose: Tensor) -> Tensor:
        """Landmarks in model space.

        Args:
            coeffs: (B, K) [shape, expression].
            pose: (B, 3 F) axis-angle of the free joints, radians.
        Returns:
            (B, L, 3) metres (model units).
        """
        return self._to_landmarks(self._support_points(coeffs, pose)["v"])

    def evaluate(self, coeffs: Tensor, pose: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Landmarks (B, L, 3) and a state for :meth:`contract`."""
        st = self._support_points(coeffs, pose)
        st["pose"] = pose
        return self._to_landmarks(st["v"]), st

    def jacobians(self, coeffs: Tensor, pose: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Landmarks and their exact Jacobians.

        Returns:
            points (B, L, 3), d points / d coeffs (B, L, 3, K), d points / d pose (B, L, 3, 3F).
        """
        st = self._support_points(coeffs, pose)
        dAt = self._coeff_translation_derivative(st["GR"])
        dv_dc = torch.einsum("buij,ujK->buiK", st["Rw"], self.D) + torch.einsum(
            "uk,bkiK->buiK", self.W, dAt
        )
        if self.free_joints:
            dv_dp = self._pose_tangents(pose, st)  # (B, U, 3, T)
        else:
            dv_dp = st["v"].new_zeros(*st["v"].shape, 0)
        return self._to_landmarks(st["v"]), self._to_landmarks(dv_dc), self._to_landmarks(dv_dp)

    def contract(
        self, M: Tensor, st: dict[str, Tensor], wrt_coeffs: bool, wrt_pose: bool
    ) -> tuple[Tensor | None, Tensor | None]:
        """Left-multiply the landmark Jacobians by M without forming d points / d coeffs.

        Args:
            M: (B, L, R, 3) derivative of R residual rows per landmark w.r.t. the landmark.
            st: from :meth:`evaluate`.
        Returns:
            (B, L, R, K) and (B, L, R, 3F) (or None where not requested).
        """
        Jc = Jp = None
        B = M.shape[0]
        if wrt_coeffs:
            dAt = self._coeff_translation_derivative(st["GR"])  # (B, NJ, 3, K)
            if self.interp is None:
                G = M @ st["Rw"]  # (B, L, R, 3)
                L, R = M.shape[1], M.shape[2]
                # T1[b, l, r] = sum_j G[b, l, r, j] D[l, j]: three broadcast multiply-adds into one
                # contiguous (B, L, R, K) buffer (faster on CPU than a bmm over l + transpose copy)
                Dc = self.D_cols  # (3, 1, L, 1, K)
                T1 = torch.mul(G[..., 0, None], Dc[0])
                T1.addcmul_(G[..., 1, None], Dc[1]).addcmul_(G[..., 2, None], Dc[2])
                Hm = M[:, :, :, None, :] * self.W[None, :, None, :, None]  # (B, L, R, NJ, 3)
                # + Hm @ dAt (the joint-location term), in place
                Jc = T1.reshape(B, L * R, -1).baddbmm_(
                    Hm.reshape(B, L * R, -1), dAt.reshape(B, -1, dAt.shape[-1])
                )
                Jc = Jc.reshape(B, L, R, -1)
            else:
                dv_dc = torch.einsum("buij,ujK->buiK", st["Rw"], self.D) + torch.einsum(
                    "uk,bkiK->buiK", self.W, dAt
                )
                dv_dc = self._to_landmarks(dv_dc)  # (B, L, 3, K)
                Jc = torch.einsum("blij,bljk->blik", M, dv_dc)
        if wrt_pose:
            if self.free_joints:
                dv = self._to_landmarks(self._pose_tangents(st["pose"], st))  # (B, L, 3, T)
                Jp = M @ dv
            else:
                Jp = M.new_zeros(*M.shape[:3], 0)
        return Jc, Jp

    def coeff_normal(
        self, M: Tensor, st: dict[str, Tensor], Y: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Normal-equation blocks of the coefficient Jacobian, from its structure.

        With ``Jc = M (d points / d coeffs)`` (B, L R, K) the residual rows' derivative
        w.r.t. the coefficients and Y (B, L R, m) other columns (small Jacobians, the
        residual), returns ``Jc^T Jc`` (B, K, K), ``Jc^T Y`` (B, K, m) and ``Y^T Y``
        (B, m, m).

        For vertex landmarks ``Jc = J1 + Hm dAt``: J1 (rows ``M_l Rw_l D_l``, one batched
        product over the landmarks) is the only (B, L R, K)-sized tensor, written once next
        to ``Hm`` (B, L R, 3 NJ) and Y, and one batched product ``J1^T [J1 | Hm | Y]``
        plus ``[Hm | Y]^T [Hm | Y]`` gives everything (the joint term enters through
        ``dAt`` (B, 3 NJ, K) in small products). So the big Jacobian is written once and
        read once, not once per block. Without gradients on the CPU the
        (L, B, R, K + 3 NJ + m) buffer is reused between calls (fresh 100-MB allocations
        cost page faults every LM iteration there).
        Barycentric landmarks take the same path with the triangle's corners side by side:
        ``J1`` rows ``sum_k (M_l Rw_{u_lk}) (b_lk D_{u_lk})``, one (B R, 3 C) @ (3 C, K)
        product per landmark, and skinning weights ``interp @ W``.

        Args:
            M: (B, L, R, 3) derivative of R residual rows per landmark w.r.t. the landmark.
            st: from :meth:`evaluate`.
            Y: (B, L R, m) extra columns.
        """
        B, L, R = M.shape[:3]
        K = self.n_coeffs
        nj = self.W.shape[1]
        h, m = 3 * nj, Y.shape[2]
        dAt = self._coeff_translation_derivative(st["GR"]).reshape(B, h, K)  # (B, 3 NJ, K)
        if self.interp is None:
            G, D, W = M @ st["Rw"], self.D, self.W  # (B, L, R, 3), (L, 3, K), (L, NJ)
        else:  # corners side by side: (B, L, C, R, 3) -> (B, L, R, 3 C)
            G = (M[:, :, None] @ st["Rw"][:, self.corner]).transpose(2, 3).reshape(B, L, R, -1)
            D, W = self.D_corner, self.W_land
        Hm = M[:, :, :, None, :] * W[None, :, None, :, None]  # (B, L, R, NJ, 3)
        Z = torch.cat([Hm.reshape(B, L, R, h), Y.reshape(B, L, R, m)], -1)  # (B, L, R, h + m)
        # J1 landmark by landmark: (L, B R, 3 C) @ D (L, 3 C, K), one batched product, written
        # landmark-major next to Z: Wl (L, B, R, K + h + m)
        Gl = G.permute(1, 0, 2, 3).reshape(L, B * R, G.shape[-1])
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in (M, Y, st["Rw"]))
        if grad or M.device.type != "cpu":
            Wl = torch.cat([torch.bmm(Gl, D).view(L, B, R, K), Z.permute(1, 0, 2, 3)], -1)
        else:  # same numbers, written into a reused buffer
            Wl = self._workspace("W", (L, B, R, K + h + m), M)
            torch.bmm(Gl, D, out=Wl.view(L, B * R, K + h + m)[..., :K])
            Wl[..., K:].copy_(Z.permute(1, 0, 2, 3))
        # P = J1^T [J1 | Hm | Y] (B, K, K + h + m): per residual row r a batched product over
        # the faces whose rows are the landmarks (row stride B R (K + h + m), no transposed copy)
        P = None
        for r in range(R):
            Wr = Wl[:, :, r, :].transpose(0, 1)  # (B, L, K + h + m)
            Jr = Wr[..., :K].transpose(1, 2)
            P = Jr @ Wr if P is None else P.baddbmm_(Jr, Wr)
        Zf = Z.view(B, L * R, h + m)
        Q = Zf.transpose(1, 2) @ Zf  # (B, h + m, h + m)
        # Jc^T Jc = J1^T J1 + T + T^T with T = (J1^T Hm + dAt^T Hm^T Hm / 2) dAt
        Xh = torch.baddbmm(P[:, :, K : K + h], dAt.transpose(1, 2), Q[:, :h, :h], alpha=0.5)
        U = torch.baddbmm(P[:, :, :K], Xh, dAt, beta=0.5)  # J1^T J1 / 2 + T
        CC = U + U.transpose(1, 2)
        CY = torch.baddbmm(P[:, :, K + h :], dAt.transpose(1, 2), Q[:, :h, h:])
        return CC, CY, Q[:, h:, h:]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_ws", None)  # copies / pickles do not carry the scratch buffer
        return state

    def trim_workspace(self, max_bytes: int) -> None:
        """Drop the reused buffers of :meth:`coeff_normal` if together above ``max_bytes``."""
        pool = self.__dict__.get("_ws", {})
        if sum(t.numel() * t.element_size() for t in pool.values()) > max_bytes:
            pool.clear()

    def _workspace(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A reusable uninitialised buffer ``name`` of ``shape`` (grown when needed), no autograd."""
        n = int(np.prod(shape))
        pool = self.__dict__.setdefault("_ws", {})
        ws = pool.get(name)
        if ws is None or ws.numel() < n or ws.dtype != like.dtype or ws.device != like.device:
            ws = pool[name] = torch.empty(n, dtype=like.dtype, device=like.device)
        return ws[:n].view(shape)

