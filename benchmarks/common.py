"""Shared helpers of the bench_* modules: robust summaries, thread settings, the machine load,
models from their configs and random training batches."""

from __future__ import annotations

import os
import re

import numpy as np

from experiments.harness.resolvers import REPO_ROOT, register_resolvers
from experiments.train import instantiate_model


def spread(values: list[float], ndigits: int = 2) -> dict[str, float | list[float]]:
    """{"median": m, "p10_p90": [p10, p90]} of repeated measurements (numpy linear percentiles)."""
    if not values:
        raise ValueError("benchmarks.stats.spread: no measurements")
    v = np.asarray(values, np.float64)
    return {
        "median": round(float(np.median(v)), ndigits),
        "p10_p90": [round(float(np.percentile(v, 10)), ndigits), round(float(np.percentile(v, 90)), ndigits)],
    }


def set_threads(n: int) -> int:
    """torch intra-op threads (0: leave torch's default, which follows OMP_NUM_THREADS); returns the count."""
    import torch

    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def load_avg() -> float:
    """1-minute load average of the machine (other jobs compete on a shared machine)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def build_model(name: str, image_size: int | None = None, overrides: tuple[str, ...] = ()):
    """The LightningModule of configs/model/<name>.yaml (composed as `experiments.train` does,
    with data=synthetic for the interpolations), optionally at another input size (px)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf


    register_resolvers()
    GlobalHydra.instance().clear()
    ov = [f"model={name}", "data=synthetic", *overrides]
    if image_size is not None:
        ov.append(f"model.image_size={int(image_size)}")
    with initialize_config_dir(config_dir=str(REPO_ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=ov)
    GlobalHydra.instance().clear()
    return instantiate_model(OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True)))


def random_batch(model, batch_size: int, device, seed: int = 0) -> dict:
    """A training batch in the batch contract for `model` (random image, landmarks in the crop):
    image (B, 3, S, S), landmarks (B, L, 2) normalised, landmarks_px, landmarks3d (B, L, 3) px,
    visibility (B, L), landmarks68_px (B, 68, 2), yaw (B,) degrees."""
    import torch

    g = torch.Generator().manual_seed(seed)
    B, S, L = batch_size, int(model.image_size), int(model.num_landmarks)
    lm = torch.rand(B, L, 2, generator=g) * 0.6 - 0.3
    px = (lm + 0.5) * S
    b = {
        "image": torch.randn(B, 3, S, S, generator=g),
        "landmarks": lm,
        "landmarks_px": px,
        "landmarks3d": torch.cat([px, torch.randn(B, L, 1, generator=g) * S * 0.1], -1),
        "visibility": torch.ones(B, L),
        "landmarks68_px": px[:, :68].clone() if L >= 68 else (torch.rand(B, 68, 2, generator=g) * S),
        "yaw": torch.rand(B, generator=g) * 180 - 90,
    }
    return {k: v.to(device) for k, v in b.items()}


def replace_section(path, title: str, lines: list[str], append: bool = True) -> None:
    """Replace the ``## <title>`` section of the markdown file ``path`` with ``lines`` (its own
    heading included); a missing section is appended when ``append``. The rest stays as it is."""
    from pathlib import Path

    p = Path(path)
    sections = re.split(r"(?m)^(?=## )", p.read_text() if p.exists() else "")
    head = f"## {title}\n"
    new = "\n".join(lines) + "\n"
    found = any(sec.startswith(head) for sec in sections)
    sections = [new if sec.startswith(head) else sec for sec in sections]
    if not found and append:
        sections.append(new)
    p.write_text("".join(sections))
