"""BFM landmark fitting (MobileFace E1) on the procedural BFM-format model."""

from __future__ import annotations

import numpy as np
import torch

from facemodels.bfm import LinearBFM, load_bfm_arrays
from facemodels.world import default_bfm_dir
from fitting.bfm_fit import UM_TO_M, build_bfm_fitter, to_3ddfa_params
from fitting.flame_fit import FitterConfig
from fitting.mesh_metrics import mve
from fitting.reprojection import reprojection


def test_bfm_e1_fit_recovers_keypoint_faces_and_matches_linear_bfm():
    bfm_dir = default_bfm_dir()
    fitter = build_bfm_fitter(bfm_dir, "ibug68", FitterConfig(), n_shape=20, n_expr=10)
    assert fitter.lmk.n_pose == 0
    B = 3
    g = torch.Generator().manual_seed(0)
    dt = torch.float64
    coeffs = torch.randn(B, 30, generator=g, dtype=dt) * 0.5
    rot = (torch.rand(B, 3, generator=g, dtype=dt) - 0.5) * torch.tensor([0.4, 1.0, 0.2], dtype=dt)
    transl = torch.tensor([[0.0, 0.0, 0.5]], dtype=dt).repeat(B, 1)
    lmk64 = fitter.lmk.double()
    K = fitter.config.camera(B, dtype=dt)
    pose = torch.zeros(B, 0, dtype=dt)
    uv = reprojection(
        lmk64,
        rot,
        transl,
        coeffs,
        pose,
        K,
        torch.zeros(B, 68, 2, dtype=dt),
        torch.ones(B, 68, dtype=dt),
    ).uv
    fitter.float()
    res = fitter.fit(uv.float())
    assert res.valid.all()
    # E1 = E_lands + r_id |a_id|^2 + r_exp |a_exp|^2 and our cost is 0.5 * E1
    e_lands = (res.landmarks2d.double() - uv).pow(2).sum((-1, -2))
    e1 = (
        e_lands + 0.001 * res.shape.double().pow(2).sum(-1) + 0.1 * res.expr.double().pow(2).sum(-1)
    )
    torch.testing.assert_close(res.cost.double(), 0.5 * e1, rtol=1e-3, atol=1e-3)
    assert (e_lands / 68 < 0.5).all()  # landmarks reproduced to well under a pixel
    # the fitted mesh == LinearBFM evaluated on the converted 3DDFA parameters (um -> m)
    bfm = load_bfm_arrays(bfm_dir)
    shape_para, exp_para = to_3ddfa_params(res, bfm)
    lin = LinearBFM(bfm_dir, dtype=torch.float64)
    want = lin(shape_para.double(), exp_para.double()) * UM_TO_M
    torch.testing.assert_close(res.vertices.double(), want, atol=1e-6, rtol=0)
    # 68 keypoints with 30 modes: the keypoint geometry is recovered to ~a millimetre
    gt = (
        lin(
            coeffs[:, :20] * torch.as_tensor(bfm.shape_ev[:20]),
            coeffs[:, 20:] * torch.as_tensor(bfm.exp_ev[:10]),
        )
        * UM_TO_M
    )
    kp = np.asarray(bfm.keypoints)
    assert (mve(res.vertices.double(), gt, kp, align=True) < 1.5).all()
