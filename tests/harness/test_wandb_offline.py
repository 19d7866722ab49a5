"""W&B never blocks a run: without network or key it writes an offline run that `make sync` uploads."""

from __future__ import annotations

from omegaconf import OmegaConf

from experiments.harness.loggers import instantiate_loggers


def test_wandb_logs_offline_with_network_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")  # not forced offline: the harness must decide
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # unreachable
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    cfg = OmegaConf.create({
        "wandb": {"_target_": "pytorch_lightning.loggers.wandb.WandbLogger", "project": "test",
                  "name": "offline-test", "id": "abc12345", "save_dir": str(tmp_path), "offline": False},
        "csv": {"_target_": "pytorch_lightning.loggers.csv_logs.CSVLogger", "save_dir": str(tmp_path),
                "name": "csv", "version": ""},
    })
    loggers = instantiate_loggers(cfg)
    assert [type(lg).__name__ for lg in loggers] == ["WandbLogger", "CSVLogger"]
    wandb_logger = loggers[0]
    wandb_logger.log_metrics({"train/loss": 1.0}, step=0)
    wandb_logger.experiment.finish()
    runs = list(tmp_path.rglob("offline-run-*abc12345"))
    assert runs, f"no offline run under {tmp_path}: {sorted(p.name for p in tmp_path.rglob('*'))[:20]}"
    assert any(p.suffix == ".wandb" for p in runs[0].iterdir())
