"""MobileFace's 118-parameter BFM face: shape and perspective projection (METHODS.md C).

p = [alpha_id (80), alpha_exp (29), t (3), angles (3), f, Px, Py]:
- alpha_id, alpha_exp: coefficients in units of each mode's standard deviation;
- t: camera-frame translation in metres (cv convention: x right, y down, z forward);
- angles: model-space [yaw, pitch, roll] in radians (facemodels.rotations, R_model =
  Ry Rx Rz), the camera rotation is R_cv = diag(1, -1, -1) R_model (docs/ARCHITECTURE.md);
- f, Px, Py: intrinsics in crop px.
S = M + A_id alpha_id + A_exp alpha_exp (metres, model space); u = f x_c / z_c + Px.
The network regresses p normalised by fixed `param_mean` / `param_std` (buffers).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from facemodels.rotations import euler_to_matrix

N_ID, N_EXP, N_PARAMS = 80, 29, 118
SLICES = {"id": slice(0, 80), "exp": slice(80, 109), "t": slice(109, 112), "angles": slice(112, 115),
          "f": slice(115, 116), "pp": slice(116, 118)}


def default_param_stats(image_size: int = 96) -> tuple[Tensor, Tensor]:
    """Mean / std used to normalise p: unit-std coefficients, a face ~1 m away, f ~ a 96 px
    crop of a 0.25 m wide head at 1 m, principal point at the crop centre."""
    mean = torch.zeros(N_PARAMS)
    std = torch.ones(N_PARAMS)
    mean[SLICES["t"]] = torch.tensor([0.0, 0.0, 1.0])
    std[SLICES["t"]] = torch.tensor([0.05, 0.05, 0.2])
    std[SLICES["angles"]] = math.radians(45.0)
    mean[SLICES["f"]] = 4.0 * image_size
    std[SLICES["f"]] = 1.0 * image_size
    mean[SLICES["pp"]] = image_size / 2
    std[SLICES["pp"]] = image_size / 16
    return mean, std


class BFM118(nn.Module):
    """Decoder of MobileFace parameters on a (sub-sampled) BFM-format mesh.

    mean: (N, 3) metres; id_basis: (N, 3, 80) and exp_basis: (N, 3, 29) metres per
    standard deviation (i.e. PCs already multiplied by their std).
    """

    def __init__(self, mean: Tensor, id_basis: Tensor, exp_basis: Tensor, image_size: int = 96,
                 id_ev: Tensor | None = None, exp_ev: Tensor | None = None, n_keypoints: int = 0) -> None:
        super().__init__()
        n = mean.shape[0]
        if mean.shape != (n, 3) or id_basis.shape != (n, 3, N_ID) or exp_basis.shape != (n, 3, N_EXP):
            raise ValueError(
                f"BFM118: need mean (N, 3), id_basis (N, 3, {N_ID}), exp_basis (N, 3, {N_EXP}); got "
                f"{tuple(mean.shape)}, {tuple(id_basis.shape)}, {tuple(exp_basis.shape)}"
            )
        self.register_buffer("mean", mean.float())  # (N, 3) metres
        self.register_buffer("id_basis", id_basis.float())  # (N, 3, 80)
        self.register_buffer("exp_basis", exp_basis.float())  # (N, 3, 29)
        pm, ps = default_param_stats(image_size)
        self.register_buffer("param_mean", pm)
        self.register_buffer("param_std", ps)
        # 3DDFA scale of the coefficients (um): Shape_Para = alpha_id * id_ev, Exp_Para = alpha_exp * exp_ev
        self.register_buffer("id_ev", torch.ones(N_ID) if id_ev is None else id_ev.reshape(-1)[:N_ID].float())
        self.register_buffer("exp_ev", torch.ones(N_EXP) if exp_ev is None else exp_ev.reshape(-1)[:N_EXP].float())
        self.n_keypoints = int(n_keypoints)  # vertices 0..n_keypoints-1 are the iBUG-68 keypoints (from_bfm)

    def coefficients_from_3ddfa(self, params: Tensor) -> Tensor:
        """300W-LP / 3DDFA parameters (B, 235) = [Shape_Para 199, Exp_Para 29, Pose_Para 7] -> the
        109 MobileFace shape coefficients (B, 109) in units of each mode's std. The BFM's PCs are
        orthonormal, so the least-squares fit of 80 id modes to the 199-mode shape is the truncation."""
        if params.dim() != 2 or params.shape[1] != 235:
            raise ValueError(f"BFM118.coefficients_from_3ddfa: need (B, 235) 3DDFA parameters, got {tuple(params.shape)}")
        return torch.cat([params[:, :N_ID] / self.id_ev, params[:, 199 : 199 + N_EXP] / self.exp_ev], 1)

    @classmethod
    def from_bfm(cls, folder: str | None = None, n_vertices: int | None = 2000, image_size: int = 96) -> BFM118:
        """Build from a BFM-format folder (facemodels.bfm.LinearBFM, micrometres -> metres).

        Keeps the 68 iBUG keypoints (as vertices 0..67) plus an even sub-sample of `n_vertices`
        vertices (None: all).
        """
        from facemodels.bfm import LinearBFM
        from facemodels.world import default_bfm_dir

        bfm = LinearBFM(folder or default_bfm_dir())
        mean, id_b, exp_b = bfm_bases(bfm)
        idx = torch.arange(mean.shape[0])
        if n_vertices is not None and n_vertices < mean.shape[0]:
            idx = torch.linspace(0, mean.shape[0] - 1, n_vertices).long()
        kp = bfm.keypoints68.long()
        idx = torch.cat([kp, idx[~torch.isin(idx, kp)]])  # the 68 keypoints first
        return cls(mean[idx], id_b[idx], exp_b[idx], image_size, id_ev=bfm.shape_std, exp_ev=bfm.exp_std,
                   n_keypoints=kp.numel())

    def normalise(self, p: Tensor) -> Tensor:
        return (p - self.param_mean) / self.param_std

    def denormalise(self, p_norm: Tensor) -> Tensor:
        return p_norm * self.param_std + self.param_mean

    def shape(self, p: Tensor) -> Tensor:
        """(B, 118) raw parameters -> (B, N, 3) model-space vertices, metres."""
        return (
            self.mean
            + torch.einsum("nck,bk->bnc", self.id_basis, p[:, SLICES["id"]])
            + torch.einsum("nck,bk->bnc", self.exp_basis, p[:, SLICES["exp"]])
        )

    def project(self, p: Tensor, vertices: Tensor | None = None) -> Tensor:
        """(B, 118) -> (B, N, 2) crop px of the perspective projection of S(p)."""
        v = self.shape(p) if vertices is None else vertices
        r_model = euler_to_matrix(torch.rad2deg(p[:, SLICES["angles"]][:, [0, 1, 2]]))
        r_cv = r_model * torch.tensor([1.0, -1.0, -1.0], device=p.device, dtype=p.dtype).view(1, 3, 1)
        cam = v @ r_cv.transpose(1, 2) + p[:, SLICES["t"]].unsqueeze(1)  # (B, N, 3)
        z = cam[..., 2:3].clamp_min(1e-3)
        return p[:, SLICES["f"]].unsqueeze(1) * cam[..., :2] / z + p[:, SLICES["pp"]].unsqueeze(1)


def bfm_bases(bfm: nn.Module) -> tuple[Tensor, Tensor, Tensor]:
    """(mean (N, 3), id (N, 3, 80), exp (N, 3, 29)) in metres per std from a
    facemodels.bfm.LinearBFM (buffers `mean` (N, 3) um, `shape_pc` (3N, S), `exp_pc` (3N, E)
    interleaved x, y, z rows, `shape_std` (S,), `exp_std` (E,) um)."""
    if bfm.n_shape < N_ID or bfm.n_exp < N_EXP:
        raise ValueError(
            f"BFM118: {getattr(bfm, 'folder', 'the BFM')} has {bfm.n_shape} identity / {bfm.n_exp} expression "
            f"modes, MobileFace needs {N_ID} / {N_EXP}"
        )
    n = bfm.mean.shape[0]
    um = 1e-6
    mean = bfm.mean.double() * um
    ids = (bfm.shape_pc[:, :N_ID].double() * bfm.shape_std[:N_ID].double()).view(n, 3, N_ID) * um
    exps = (bfm.exp_pc[:, :N_EXP].double() * bfm.exp_std[:N_EXP].double()).view(n, 3, N_EXP) * um
    return mean.float(), ids.float(), exps.float()
