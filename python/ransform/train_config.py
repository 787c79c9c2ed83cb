"""What a training run is told: :class:`TrainConfig`, whose fields are also the options of
``ransform train`` (the CLI builds them from the metadata below: one place for each default,
bound and help text). Torch-free, so the CLI can describe training without importing torch."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields


def option(default=MISSING, help: str = "", *, bound: str | None = None, choices=None, flag: str | None = None):
    """A field that is also a ``ransform train`` option. ``bound``: "positive" or "non-negative",
    checked while parsing; ``flag``: the option's name when it is not the field's."""
    metadata = {"help": help, "bound": bound, "choices": choices, "flag": flag}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    model: str = option(help="registry name, e.g. mbt2018-mean")
    quality: int = option(help="1..8: sizes and lambda of CompressAI's zoo", bound="positive")
    data: str = option(help="folder of training images (searched recursively)")
    out: str = option(help="run folder: checkpoints, resumed from when present")
    metric: str = option("mse", "distortion the loss weighs", choices=("mse", "ms-ssim"))
    lmbda: float | None = option(None, "override the quality's lambda (CompressAI convention)", bound="positive")
    sizes: dict = option(dict, "N,M smaller than the zoo's, e.g. 64,96", flag="--channels")
    epochs: int = option(100, "epochs to run (a resumed run counts the earlier ones)", bound="positive")
    batch_size: int = option(8, "crops per step", bound="positive")
    patch: int = option(256, "crop side in pixels (a multiple of the model's stride: 16 for bmshj2018-factorized, "
                        "64 for the others)", bound="positive")
    crops_per_image: int = option(4, "random crops per image per epoch", bound="positive")
    lr: float = option(1e-4, "learning rate", bound="positive")
    aux_lr: float = option(1e-3, "learning rate of the entropy bottleneck's quantiles", bound="positive")
    clip: float = option(1.0, "gradient norm clip (0: off)", bound="non-negative")
    patience: int = option(10, "epochs without validation gain before the LR halves", bound="non-negative")
    min_lr: float = 1e-6
    val_fraction: float = 0.1            # every 1/val_fraction-th image is held out
    device: str = option("cpu", "cpu, cuda or cuda:N")
    threads: int = option(0, "torch CPU threads (0: torch's default)", bound="non-negative")
    seed: int = option(0, "seed of the crops, the split and the weights")
    workers: int = option(0, "data loader worker processes", bound="non-negative")
    init: str | None = option(None, "start from this checkpoint's weights (e.g. a run of another quality)")
    max_minutes: float = option(0.0, "stop at the first epoch end after this many minutes (resume by rerunning)",
                                bound="non-negative")
    portable: bool = option(False, "fine-tune through portable (integer) entropy parameters and convert at every "
                            "epoch, so checkpoints write files that decode anywhere (docs/guide/portable.md)")


def options():
    """The fields of :class:`TrainConfig` that are ``ransform train`` options."""
    return [f for f in fields(TrainConfig) if "help" in f.metadata]
