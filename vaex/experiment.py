"""Opt-in experiment runner: configs, the training loop with checkpoints and metrics, artifacts.

`experiments/train.py` is a thin command line around `train_and_evaluate`.
"""

from vaex._src.builders import build_model, load_datasets
from vaex._src.config import ConfigError, default_config, iwae_protocol_config, validate_config
from vaex._src.experiment import train_and_evaluate
from vaex._src.run_evaluation import evaluate_checkpoint, restore_latest, write_images
from vaex._src.workdir import MetricsLog, WorkdirInUseError, WorkdirLock

__all__ = [
    "ConfigError",
    "MetricsLog",
    "WorkdirInUseError",
    "WorkdirLock",
    "build_model",
    "default_config",
    "evaluate_checkpoint",
    "iwae_protocol_config",
    "load_datasets",
    "restore_latest",
    "train_and_evaluate",
    "validate_config",
    "write_images",
]
