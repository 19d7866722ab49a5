from __future__ import annotations

from experiments.harness import resolvers


def test_short_hash_is_stable_and_short():
    assert resolvers.short_hash("model=tiny") == resolvers.short_hash("model=tiny")
    assert resolvers.short_hash("model=tiny") != resolvers.short_hash("model=tinz")
    assert len(resolvers.short_hash("x")) == 8


def test_wandb_run_id_is_created_once_per_run_dir(tmp_path):
    first = resolvers.wandb_run_id(str(tmp_path / "run"))
    assert first == resolvers.wandb_run_id(str(tmp_path / "run"))
    assert first != resolvers.wandb_run_id(str(tmp_path / "other"))


def test_wandb_offline_reasons(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert "WANDB_MODE" in resolvers.wandb_offline_reason()
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert "API key" in resolvers.wandb_offline_reason()
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert "unreachable" in resolvers.wandb_offline_reason()
    assert resolvers.wandb_offline() is True


def test_auto_precision_on_cpu():
    import torch

    expected = "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    assert resolvers.auto_precision() == expected
