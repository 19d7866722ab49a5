"""OmegaConf resolvers used by the configs. `register_resolvers()` is idempotent."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import OmegaConf

from facemodels.landmark_sets import landmark_count

REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_root() -> str:
    """Absolute path of the checkout (where configs/ lives)."""
    return str(REPO_ROOT)


def short_hash(text: str | None, n: int = 8) -> str:
    """First `n` hex digits of sha1(text); the run directory's stable suffix."""
    return hashlib.sha1(str(text or "").encode()).hexdigest()[:n]


def wandb_run_id(output_dir: str) -> str:
    """A W&B run id stored in `<output_dir>/wandb_run_id.txt`: created once, reused on resume."""
    path = Path(output_dir) / "wandb_run_id.txt"
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def wandb_offline_reason() -> str | None:
    """Why W&B must run offline, or None when online logging can work.

    Offline when WANDB_MODE is offline/disabled, when there is no API key (env or ~/.netrc), or when
    the W&B server does not accept a TCP connection within 1.5 s. Never raises.
    """
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not has_key and netrc.is_file():
        try:
            has_key = "api.wandb.ai" in netrc.read_text() or "wandb" in netrc.read_text()
        except OSError:
            has_key = False
    if not has_key:
        return "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=1.5):
            return None
    except OSError as err:
        return f"W&B server {host}:{port} unreachable ({err.__class__.__name__})"


def wandb_offline() -> bool:
    return wandb_offline_reason() is not None


def auto_precision() -> str:
    """bf16 autocast on a CUDA device that supports it, full fp32 elsewhere."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def lmk_count(name: str) -> int:
    """Number of landmarks of a landmark set (ibug68 -> 68, face1609 -> 1609, kp520 -> 520, ...)."""

    return int(landmark_count(name))


_RESOLVERS = {
    "repo_root": repo_root,
    "short_hash": short_hash,
    "wandb_run_id": wandb_run_id,
    "wandb_offline": wandb_offline,
    "auto_precision": auto_precision,
    "lmk_count": lmk_count,
}


def register_resolvers() -> None:
    for name, fn in _RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=name in ("wandb_run_id", "wandb_offline"))
