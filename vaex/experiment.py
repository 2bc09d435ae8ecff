"""Opt-in experiment runner: configs, the training loop with checkpoints and metrics, artifacts.

`experiments/train.py` is a thin command line around `train_and_evaluate`.
"""

from vaex._src.experiment import (
    ConfigError,
    MetricsLog,
    build_model,
    default_config,
    evaluate_checkpoint,
    iwae_protocol_config,
    load_datasets,
    restore_latest,
    train_and_evaluate,
    validate_config,
    write_images,
)

__all__ = [
    "ConfigError",
    "MetricsLog",
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
