"""MobileFace's 118-parameter BFM face: shape and perspective projection (METHODS.md C).

p = [alpha_id (80), alpha_exp (29), t (3), angles (3), f, Px, Py]:
- alpha_id, alpha_exp: coefficients in units of each mode's standard deviation;
- t: camera-frame translation in metres (cv convention: x right, y down, z forward);
- angles: model-space [yaw, pitch, roll] in radians (facemodels.rotations, R_model =
  Ry Rx Rz), the camera rotation is R_cv = diag(1, -1, -1) R_model (docs/ARCHITECTURE.md);
- f, Px, Py: intrinsics in crop px.
S = M + A_id alpha_id + A_exp alpha_exp (metres, model space); u = f x_c / z_c + Px.
The network regresses p normalised by `param_mean` / `param_std` (buffers; default_param_stats,
or the training split's per-parameter mean / std via `set_param_stats`).

300W-LP / 3DDFA -> p (`BFM118.from_3ddfa`, vectorised over a batch). 3DDFA: v = mu + PC Shape_Para
+ w_exp Exp_Para (um), 2D = s R3 v + t orthographic, image y = H - 1 - y, then the crop's similarity.
- alpha_id: least squares of the 199-mode identity onto the first 80 modes (the truncation
  Shape_Para[:80] / shapeEV for orthonormal PCs, as in the real and the procedural BFM);
  alpha_exp = Exp_Para / sigma_exp as-is. Horizontally flipped samples: the mirrored face
  (x -> -x, vertices re-paired by the nearest mirrored mean vertex) fitted by least squares
  on the 109 modes (a fixed affine map of the 228 3DDFA coefficients, precomputed).
- camera: perspective made ~ the weak-perspective crop projection. f is fixed (`focal`, crop px,
  default 50 x the crop side: a ~1 deg field of view); with k = the crop's px per metre, the face's
  mean camera depth is f / k (tz = f / k - mean_z of the rotated face), Px = Py = the crop centre
  (S - 1) / 2, (tx, ty) = (origin's crop position - (Px, Py)) / k; angles from R_cv = Rz(in-plane
  crop rotation) diag(1, -1, -1) R3. The residual is second order in depth / distance: measured
  < 0.3 px on the procedural 96 px crops (tests/lifting/test_mobileface_convert.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from facemodels.bfm import LinearBFM
from facemodels.cameras import model_to_cv_rotation
from facemodels.rotations import euler_3ddfa_to_matrix, euler_to_matrix, matrix_to_euler
from facemodels.world import default_bfm_dir

N_ID, N_EXP, N_PARAMS = 80, 29, 118
N_3DDFA = 235  # Shape_Para 199, Exp_Para 29, Pose_Para 7
FOCAL_PER_CROP = 50.0  # default fixed focal length of the converted camera, in crop sides
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
                 id_ev: Tensor | None = None, exp_ev: Tensor | None = None, n_keypoints: int = 0,
                 id_rest: Tensor | None = None, mirror_map: Tensor | None = None,
                 mirror_offset: Tensor | None = None, focal: float | None = None) -> None:
        """id_rest: (N, 3, S - 80) metres per unit of 3DDFA Shape_Para[80:] (the identity modes the
        118-parameter model drops; for the full ground-truth mesh). mirror_map (109, 228) and
        mirror_offset (109,): alpha' = mirror_map [Shape_Para, Exp_Para] + mirror_offset, the 109
        coefficients of the mirrored face. focal: the converted camera's f in crop px."""
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
        self.image_size = int(image_size)
        self.focal = float(FOCAL_PER_CROP * image_size if focal is None else focal)
        self.register_buffer("id_rest", torch.zeros(n, 3, 0) if id_rest is None else id_rest.float())
        self.has_mirror = mirror_map is not None
        self.register_buffer("mirror_map", torch.zeros(N_ID + N_EXP, N_3DDFA - 7) if mirror_map is None
                             else mirror_map.float())
        self.register_buffer("mirror_offset", torch.zeros(N_ID + N_EXP) if mirror_offset is None
                             else mirror_offset.float())

    def coefficients_from_3ddfa(self, params: Tensor, flipped: Tensor | None = None) -> Tensor:
        """300W-LP / 3DDFA parameters (B, 235) = [Shape_Para 199, Exp_Para 29, Pose_Para 7] -> the
        109 MobileFace shape coefficients (B, 109) in units of each mode's std. The BFM's PCs are
        orthonormal, so the least-squares fit of 80 id modes to the 199-mode shape is the truncation.
        flipped (B,) bool: those rows get the coefficients of the mirrored face (needs from_bfm)."""
        if params.dim() != 2 or params.shape[1] != N_3DDFA:
            raise ValueError(f"BFM118.coefficients_from_3ddfa: need (B, 235) 3DDFA parameters, got {tuple(params.shape)}")
        out = torch.cat([params[:, :N_ID] / self.id_ev, params[:, 199 : 199 + N_EXP] / self.exp_ev], 1)
        if flipped is not None and bool(flipped.any()):
            if not self.has_mirror:
                raise ValueError("BFM118.coefficients_from_3ddfa: flipped samples need the mirror map (BFM118.from_bfm)")
            mirrored = params[:, : N_3DDFA - 7].double() @ self.mirror_map.double().T + self.mirror_offset.double()
            out = torch.where(flipped.view(-1, 1).bool(), mirrored.to(out), out)
        return out

    def shape_3ddfa(self, params: Tensor) -> Tensor:
        """(B, 235) 3DDFA parameters -> (B, N, 3) the full-model ground-truth mesh (all 199 identity
        modes), metres, model space (unflipped samples only)."""
        if params.dim() != 2 or params.shape[1] != N_3DDFA:
            raise ValueError(f"BFM118.shape_3ddfa: need (B, 235) 3DDFA parameters, got {tuple(params.shape)}")
        p = self.param_mean.expand(params.shape[0], -1).clone().to(params)
        p[:, : N_ID + N_EXP] = torch.cat([params[:, :N_ID] / self.id_ev, params[:, 199 : 199 + N_EXP] / self.exp_ev], 1)
        k = self.id_rest.shape[-1]
        rest = torch.einsum("nck,bk->bnc", self.id_rest.to(p), params[:, N_ID : N_ID + k].to(p))
        return self.shape(p) + rest

    def from_3ddfa(self, params: Tensor, crop_matrix: Tensor, source_height: Tensor,
                   flipped: Tensor | None = None) -> Tensor:
        """Convert 3DDFA parameters to MobileFace's p for a crop (module docstring; vectorised).

        params (B, 235): [Shape_Para, Exp_Para, Pose_Para] with the pose in the source image;
        crop_matrix (B, 3, 3): source px -> crop px, a similarity with positive determinant;
        source_height (B,): the source image height H (3DDFA's y = H - 1 - y);
        flipped (B,) bool: the crop shows the mirrored face (shape coefficients mirrored; the pose
        and crop_matrix already describe the mirrored image). Returns (B, 118) raw parameters.
        """
        if crop_matrix.dim() != 3 or crop_matrix.shape[1:] != (3, 3) or crop_matrix.shape[0] != params.shape[0]:
            raise ValueError(f"BFM118.from_3ddfa: crop_matrix must be (B, 3, 3) with B = {params.shape[0]}, "
                             f"got {tuple(crop_matrix.shape)}")
        dt = torch.float64
        coeff = self.coefficients_from_3ddfa(params, flipped).to(dt)
        pose = params[:, N_3DDFA - 7 :].to(dt)
        lin, off = crop_matrix[:, :2, :2].to(dt), crop_matrix[:, :2, 2].to(dt)
        det = torch.linalg.det(lin)
        if bool((det <= 0).any()):
            raise ValueError("BFM118.from_3ddfa: crop_matrix must keep orientation (det > 0); pass flips as "
                             "`flipped` with the mirrored pose and source")
        scale = det.sqrt()  # crop px per source px
        c, s = lin[:, 0, 0] / scale, lin[:, 1, 0] / scale  # lin = scale [[c, -s], [s, c]]
        o, one = torch.zeros_like(c), torch.ones_like(c)
        rz = torch.stack([c, -s, o, s, c, o, o, o, one], -1).view(-1, 3, 3)
        r_cv = rz @ model_to_cv_rotation(euler_3ddfa_to_matrix(pose[:, :3]))  # model -> cv camera
        k = scale * pose[:, 6] * 1e6  # crop px per metre (3DDFA's s maps um -> source px)
        origin_src = torch.stack([pose[:, 3], source_height.reshape(-1).to(dt) - 1.0 - pose[:, 4]], -1)
        origin = (lin @ origin_src.unsqueeze(-1)).squeeze(-1) + off  # (B, 2) crop px of the model origin
        p = torch.zeros(params.shape[0], N_PARAMS, dtype=dt, device=params.device)
        p[:, : N_ID + N_EXP] = coeff
        p[:, SLICES["angles"]] = torch.deg2rad(matrix_to_euler(model_to_cv_rotation(r_cv)))  # diag(1,-1,-1) is its own inverse
        centre = (self.image_size - 1) / 2.0
        p[:, SLICES["f"]] = self.focal
        p[:, SLICES["pp"]] = centre
        verts = (self.mean.to(dt) + torch.einsum("nck,bk->bnc", self.id_basis.to(dt), coeff[:, :N_ID])
                 + torch.einsum("nck,bk->bnc", self.exp_basis.to(dt), coeff[:, N_ID:]))
        mean_z = torch.einsum("bnc,bc->bn", verts, r_cv[:, 2]).mean(1)
        p[:, SLICES["t"]] = torch.stack([(origin[:, 0] - centre) / k, (origin[:, 1] - centre) / k,
                                         self.focal / k - mean_z], -1)
        return p.to(params.dtype if params.is_floating_point() else torch.float32)

    def set_param_stats(self, p: Tensor, min_rel_std: float = 1e-6) -> None:
        """Per-parameter mean / std of (M, 118) raw parameters (e.g. the training split's converted
        targets) become the normalisation; a parameter that is (nearly) constant there (the fixed f,
        the principal point) keeps its default std."""
        if p.dim() != 2 or p.shape[1] != N_PARAMS or p.shape[0] < 2:
            raise ValueError(f"BFM118.set_param_stats: need (M >= 2, {N_PARAMS}) parameters, got {tuple(p.shape)}")
        mean, std = p.double().mean(0), p.double().std(0)
        _, default_std = default_param_stats(self.image_size)
        const = std <= min_rel_std * mean.abs().clamp_min(1.0)
        std = torch.where(const, default_std.to(std), std)
        self.param_mean.copy_(mean.to(self.param_mean))
        self.param_std.copy_(std.to(self.param_std))

    @classmethod
    def from_bfm(cls, folder: str | None = None, n_vertices: int | None = 2000, image_size: int = 96,
                 focal: float | None = None) -> BFM118:
        """Build from a BFM-format folder (facemodels.bfm.LinearBFM, micrometres -> metres).

        Keeps the 68 iBUG keypoints (as vertices 0..67) plus an even sub-sample of `n_vertices`
        vertices (None: all); the dropped identity modes (for the full ground-truth mesh) and the
        mirror map (for flipped samples) come with it.
        """

        bfm = LinearBFM(folder or default_bfm_dir(), dtype=torch.float64)
        mean, id_b, exp_b = bfm_bases(bfm)
        idx = torch.arange(mean.shape[0])
        if n_vertices is not None and n_vertices < mean.shape[0]:
            idx = torch.linspace(0, mean.shape[0] - 1, n_vertices).long()
        kp = bfm.keypoints68.long()
        idx = torch.cat([kp, idx[~torch.isin(idx, kp)]])  # the 68 keypoints first
        n = bfm.mean.shape[0]
        id_rest = bfm.shape_pc[:, N_ID:].view(n, 3, -1)[idx] * 1e-6
        mirror_map, mirror_offset = mirror_coefficient_map(bfm)
        return cls(mean[idx], id_b[idx], exp_b[idx], image_size, id_ev=bfm.shape_std, exp_ev=bfm.exp_std,
                   n_keypoints=kp.numel(), id_rest=id_rest, mirror_map=mirror_map, mirror_offset=mirror_offset,
                   focal=focal)

    def mode_weights(self) -> Tensor:
        """(109,) mm^2 per vertex per unit of each shape coefficient (alpha_id 80, alpha_exp 29, in units
        of the mode's std): ||A_k||^2 / N in mm^2, the mean squared vertex displacement of one std of mode k
        on the decoder's vertices. For orthogonal modes sum_k w_k da_k^2 = mean_n ||dS_n||^2 (mm^2)."""
        basis = torch.cat([self.id_basis, self.exp_basis], -1).double() * 1e3  # (N, 3, 109) mm
        return ((basis**2).sum((0, 1)) / basis.shape[0]).to(self.param_std)

    def normalise(self, p: Tensor) -> Tensor:
        return (p - self.param_mean) / self.param_std

    def denormalise(self, p_norm: Tensor) -> Tensor:
        return p_norm * self.param_std + self.param_mean

    def shape(self, p: Tensor) -> Tensor:
        """(B, 118) raw parameters -> (B, N, 3) model-space vertices, metres."""
        dt = p.dtype
        return (
            self.mean.to(dt)
            + torch.einsum("nck,bk->bnc", self.id_basis.to(dt), p[:, SLICES["id"]])
            + torch.einsum("nck,bk->bnc", self.exp_basis.to(dt), p[:, SLICES["exp"]])
        )

    def project(self, p: Tensor, vertices: Tensor | None = None) -> Tensor:
        """(B, 118) -> (B, N, 2) crop px of the perspective projection of S(p)."""
        v = self.shape(p) if vertices is None else vertices
        r_model = euler_to_matrix(torch.rad2deg(p[:, SLICES["angles"]][:, [0, 1, 2]]))
        r_cv = model_to_cv_rotation(r_model)
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


def mirror_coefficient_map(bfm: nn.Module) -> tuple[Tensor, Tensor]:
    """The mirrored face's 109 MobileFace coefficients as an affine map of the 228 3DDFA ones.

    Mirror of a face v (N, 3): (v * (-1, 1, 1))[perm], perm the nearest mirrored mean-shape vertex
    (as datamodules.writers.threeddfa.MirrorFitter). Least squares over all model vertices on the
    109 modes A = [PC[:, :80] shapeEV[:80], w_exp sigma_exp]:
    alpha' = G^-1 A^T (mirror(mean + B c) - mean) = map @ c + offset, c = [Shape_Para, Exp_Para].
    Returns map (109, S + E) float64, offset (109,) float64.
    """
    from scipy.spatial import cKDTree

    n = bfm.mean.shape[0]
    mean = bfm.mean.double()  # (N, 3) um
    _, perm = cKDTree(mean.numpy()).query((mean * torch.tensor([-1.0, 1.0, 1.0], dtype=mean.dtype)).numpy())
    perm = torch.as_tensor(perm, dtype=torch.long)
    sign = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)

    def mirror(x: Tensor) -> Tensor:  # (3N, K) -> (3N, K): x -> (F x)[perm] per vertex
        return (x.view(n, 3, -1) * sign.view(1, 3, 1))[perm].reshape(3 * n, -1)

    basis = torch.cat([bfm.shape_pc.double(), bfm.exp_pc.double()], 1)  # (3N, S + E) um per unit
    a = torch.cat([bfm.shape_pc[:, :N_ID].double() * bfm.shape_std[:N_ID].double(),
                   bfm.exp_pc[:, :N_EXP].double() * bfm.exp_std[:N_EXP].double()], 1)  # (3N, 109)
    gram = a.T @ a
    rhs_map = a.T @ mirror(basis)  # (109, S + E)
    rhs_off = a.T @ (mirror(mean.reshape(-1, 1)) - mean.reshape(-1, 1))
    sol = torch.linalg.solve(gram, torch.cat([rhs_map, rhs_off], 1))
    return sol[:, :-1], sol[:, -1]
