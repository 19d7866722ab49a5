"""fitting.config.fitter_config: OmegaConf-validated FitterConfig from a mapping + overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fitting.config import fitter_config
from fitting.flame_fit import FitterConfig
from fitting.sanitize import SanitizeConfig

ROOT = Path(__file__).resolve().parents[2]


def test_good_override_wins_and_types_are_the_dataclass_ones():
    cfg = OmegaConf.create({"w_shape": 2, "rigid_iterations": 7, "sanitize": {"min_landmarks": 3}})
    out = fitter_config(cfg, image_size=[128, 96], rigid_iterations=3)
    assert isinstance(out, FitterConfig) and isinstance(out.sanitize, SanitizeConfig)
    assert out.image_size == (128, 96) and isinstance(out.image_size, tuple)
    assert out.rigid_iterations == 3  # the override beats the mapping
    assert out.w_shape == 2.0 and isinstance(out.w_shape, float)  # int -> float field
    assert out.sanitize.min_landmarks == 3 and out.sanitize.far_margin == SanitizeConfig().far_margin
    assert out.nonrigid_iterations == FitterConfig().nonrigid_iterations  # untouched default
    assert fitter_config(None) == FitterConfig()
    assert fitter_config({"w_pose_per_joint": [100.0, 10.0]}).w_pose_per_joint == (100.0, 10.0)


def test_shipped_fitting_config_validates():
    block = OmegaConf.load(ROOT / "configs" / "fitting" / "default.yaml").config
    out = fitter_config(block, image_size=(256, 256))
    assert out.w_pose == 10.0 and out.sanitize == SanitizeConfig()


def test_unknown_key_names_it_and_the_known_keys():
    with pytest.raises(ValueError, match=r"x\.yaml: unknown FitterConfig key 'w_shap'; expected one of .*'w_shape'"):
        fitter_config({"w_shap": 1.0}, origin="x.yaml")
    with pytest.raises(ValueError, match=r"unknown FitterConfig key 'sanitize\.foo'.*'min_landmarks'"):
        fitter_config({"sanitize": {"foo": 1}})
    with pytest.raises(ValueError, match="unknown FitterConfig key 'bogus'"):
        fitter_config(bogus=1)


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ValueError, match=r"key 'rigid_iterations' expected int, got 'many'"):
        fitter_config({"rigid_iterations": "many"})
    with pytest.raises(ValueError, match=r"key 'free_rigid_in_nonrigid' expected bool"):
        fitter_config({"free_rigid_in_nonrigid": "maybe"})
    with pytest.raises(ValueError, match=r"key 'image_size' expected tuple\[int, int\], got None"):
        fitter_config({"image_size": None})  # the yaml's null must be filled in by the caller
    with pytest.raises(ValueError, match=r"key 'image_size' expected tuple\[int, int\] \(2 values\)"):
        fitter_config(image_size=[1, 2, 3])
