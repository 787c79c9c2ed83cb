"""Training: random crops of an image folder, the rate-distortion loss with the lambda of a
quality, a separate optimizer for the EntropyBottleneck quantiles, gradient clipping, a
plateau LR schedule, validation, checkpoints that resume, and DistributedDataParallel when
launched by ``torchrun`` (gloo on CPU, nccl on GPU) with no change to the command.

    ransform train --model mbt2018-mean --quality 3 --data ../shared/data/train --out runs/q3
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ransform import imagefile, models
from ransform.files import load_checkpoint, save_atomic
from ransform.losses import RateDistortionLoss, lambda_for
from ransform.progress import Progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def image_files(root) -> list[Path]:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder (give a folder of images)")
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return files


class RandomCrops(Dataset):
    """``crops_per_image`` random (or, for validation, centre) square crops per image, with
    random horizontal / vertical flips when training. Images are decoded once and kept.

    The crop and flips of item ``i`` are a function of (seed, epoch, i) alone: new ones every
    epoch (:meth:`set_epoch`), the same ones for any number of DataLoader workers."""

    def __init__(self, files, patch: int, crops_per_image: int = 1, train: bool = True, seed: int = 0):
        self.images = [imagefile.read(f).pixels for f in files]
        small = [str(f) for f, im in zip(files, self.images) if min(im.shape[-2:]) < patch]
        if small:
            raise ValueError(f"{len(small)} images are smaller than the {patch}px patch, e.g. {small[0]}")
        self.patch, self.crops, self.train, self.seed = patch, crops_per_image, train, seed
        # In shared memory, so that set_epoch also reaches DataLoader workers that are already
        # running (persistent_workers=True); workers started per epoch copy it when they start.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Crops of this epoch from now on (call it before iterating over the epoch)."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.images) * self.crops

    def __getitem__(self, i):
        im = self.images[i // self.crops]
        h, w = im.shape[-2:]
        if not self.train:
            top, left = (h - self.patch) // 2, (w - self.patch) // 2
            return im[:, top:top + self.patch, left:left + self.patch].contiguous()
        # A generator per item, not one stream carried across calls: each DataLoader worker
        # holds its own copy of the dataset, so one stream would replay in every worker and in
        # every epoch. A string seed is hashed (SHA-512) into the generator's whole state.
        rng = random.Random(f"{self.seed}:{int(self._epoch)}:{i}")
        top, left = rng.randrange(h - self.patch + 1), rng.randrange(w - self.patch + 1)
        crop = im[:, top:top + self.patch, left:left + self.patch]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < 0.5:
            crop = crop.flip(-2)
        return crop.contiguous()


@dataclass
class TrainConfig:
    model: str
    quality: int
    data: str
    out: str
    metric: str = "mse"
    lmbda: float | None = None          # default: the quality's lambda
    sizes: dict = field(default_factory=dict)  # e.g. {"N": 64, "M": 96}: smaller than the zoo's
    epochs: int = 100
    batch_size: int = 8
    patch: int = 256
    crops_per_image: int = 4
    lr: float = 1e-4
    aux_lr: float = 1e-3
    clip: float = 1.0
    patience: int = 10                   # epochs without validation gain before the LR halves
    min_lr: float = 1e-6
    val_fraction: float = 0.1            # every 1/val_fraction-th image is held out
    device: str = "cpu"
    threads: int = 0                     # torch CPU threads (0: torch's default)
    seed: int = 0
    workers: int = 0
    init: str | None = None              # start from these weights (e.g. another quality's run)
    max_minutes: float = 0.0             # stop (with a checkpoint) after this long; 0: no limit
    portable: bool = False               # fine-tune through portable entropy parameters, convert each epoch


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("RANSFORM_DEVICE", "") != "cpu" else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def build_model(cfg: TrainConfig) -> models.CompressionModel:
    sizes = models.sizes(cfg.model, cfg.quality)
    sizes.update(cfg.sizes)
    return models.MODELS[cfg.model](**sizes)


def parameter_groups(net):
    """(main, aux): the quantiles learn only from the aux loss, with their own optimizer."""
    main = [p for n, p in net.named_parameters() if not n.endswith("quantiles") and p.requires_grad]
    aux = [p for n, p in net.named_parameters() if n.endswith("quantiles")]
    return main, aux


def _split(files, fraction):
    step = max(2, round(1 / fraction)) if fraction > 0 else 0
    val = files[::step] if step else []
    held_out = set(val)
    train = [f for f in files if f not in held_out]
    return train, val or files[:1]


def train(cfg: TrainConfig, log=print) -> Path:
    """Trains (or resumes) into ``cfg.out``; returns the path of the best checkpoint."""
    rank, world = _distributed()
    device = torch.device(cfg.device if cfg.device != "cuda" or world == 1 else f"cuda:{rank % torch.cuda.device_count()}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    lmbda = cfg.lmbda if cfg.lmbda is not None else lambda_for(cfg.quality, cfg.metric)

    train_files, val_files = _split(image_files(cfg.data), cfg.val_fraction)
    # One seed on every rank: the DistributedSampler hands each rank other items, and item i's
    # crop is then the same whatever the number of processes.
    train_set = RandomCrops(train_files, cfg.patch, cfg.crops_per_image, train=True, seed=cfg.seed)
    val_set = RandomCrops(val_files, cfg.patch, 1, train=False)
    sampler = DistributedSampler(train_set, world, rank, seed=cfg.seed) if world > 1 else None
    loader = DataLoader(train_set, cfg.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers)
    if len(loader) == 0:
        raise ValueError(f"{len(train_set)} training crops make no batch of {cfg.batch_size}")

    net = build_model(cfg).to(device)
    criterion = RateDistortionLoss(lmbda, metric=cfg.metric)
    main_params, aux_params = parameter_groups(net)
    optimizer = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=cfg.aux_lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=cfg.patience,
                                                           min_lr=cfg.min_lr)
    start_epoch, best = 0, math.inf
    last_path, best_path = out / "checkpoint.pth.tar", out / "best.pth.tar"
    if last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        net.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        aux_optimizer.load_state_dict(state["aux_optimizer"])
        scheduler.load_state_dict(state["lr_scheduler"])
        start_epoch, best = state["epoch"] + 1, state["best_loss"]
        if rank == 0:
            log(f"resumed from {last_path} at epoch {start_epoch}")
    elif cfg.init:
        net.load_state_dict(load_checkpoint(cfg.init, map_location=device))
        if rank == 0:
            log(f"weights initialised from {cfg.init}")
    if world > 1:
        # The quantiles learn only from the aux loss, outside DDP's forward: DDP must not
        # track them (their gradients are averaged by hand below).
        ignored = [n for n, _ in net.named_parameters() if n.endswith("quantiles")]
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(net, ignored)
    # Portable networks (asked for, or loaded with the weights) are calibrated on a few training
    # images and again after every epoch, so a checkpoint never holds stale ones.
    portable = cfg.portable or net.portable is not None
    if portable:
        calibration = [im[:, :512, :512] for im in train_set.images[:8]]
        net.make_portable(calibration)
        net.portable_finetune = cfg.portable
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    if rank == 0:
        log(f"{cfg.model} q{cfg.quality} "
            f"lambda={lmbda:g} ({cfg.metric}); {len(train_files)} training images x {cfg.crops_per_image} crops of "
            f"{cfg.patch}px, {len(val_files)} validation images; {world} process(es) on {device}")

    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes > 0 else math.inf
    for epoch in range(start_epoch, cfg.epochs):
        train_set.set_epoch(epoch)  # before iter(loader), which hands the dataset to the workers
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        bar = Progress(len(loader), f"epoch {epoch}", enabled=rank == 0)
        for x in loader:
            x = x.to(device)
            optimizer.zero_grad()
            aux_optimizer.zero_grad()
            result = criterion(model(x), x)
            result["loss"].backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(main_params, cfg.clip)
            optimizer.step()
            aux = net.aux_loss()
            aux.backward()
            if world > 1:  # the aux loss is outside DDP's forward: average its gradients by hand
                for p in aux_params:
                    dist.all_reduce(p.grad)
                    p.grad /= world
            aux_optimizer.step()
            bar.update(loss=result["loss"].item(), bpp=result["bpp_loss"].item(), aux=aux.item())
        bar.close()
        if portable:
            net.make_portable(calibration)
        val = evaluate_loss(net, criterion, val_set, device)
        scheduler.step(val["loss"])
        if rank == 0:
            lr = optimizer.param_groups[0]["lr"]
            log(f"epoch {epoch}: val loss {val['loss']:.4f} bpp {val['bpp']:.4f} psnr {val['psnr']:.2f} dB lr {lr:g}")
            state = {"epoch": epoch, "state_dict": net.state_dict(), "optimizer": optimizer.state_dict(),
                     "aux_optimizer": aux_optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
                     "best_loss": min(best, val["loss"]), "config": asdict(cfg), "model": cfg.model,
                     "quality": cfg.quality}
            save_atomic(state, last_path)  # a kill leaves the previous checkpoint, never half of one
            if val["loss"] < best:
                save_atomic(state, best_path)
        best = min(best, val["loss"])
        stop = torch.tensor([time.monotonic() >= deadline], dtype=torch.int32, device=device)  # nccl: on the GPU
        if world > 1:  # rank 0's clock decides, so every rank leaves after the same epoch
            dist.broadcast(stop, 0)
        if stop.item() and epoch + 1 < cfg.epochs:
            if rank == 0:
                log(f"stopping after {cfg.max_minutes:g} minutes; rerun the same command to resume at epoch "
                    f"{epoch + 1}")
            break
    if world > 1:
        dist.barrier()
    return best_path


@torch.no_grad()
def evaluate_loss(net, criterion, dataset, device) -> dict:
    """Mean validation loss, bpp (forward estimate) and PSNR over centre crops, in eval mode."""
    was_training = net.training
    net.eval()
    totals = {"loss": 0.0, "bpp": 0.0, "psnr": 0.0}
    for i in range(len(dataset)):
        x = dataset[i][None].to(device)
        out = net(x)
        r = criterion(out, x)
        totals["loss"] += r["loss"].item()
        totals["bpp"] += r["bpp_loss"].item()
        mse = torch.mean((out["x_hat"].clamp(0, 1) - x) ** 2).item()
        totals["psnr"] += 10 * math.log10(1 / max(mse, 1e-12))
    net.train(was_training)
    return {k: v / len(dataset) for k, v in totals.items()}
