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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ransform import imagefile, models
from ransform.batch import image_files
from ransform.files import load_checkpoint, save_atomic
from ransform.losses import RateDistortionLoss, lambda_for, psnr
from ransform.train_config import TrainConfig


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


@dataclass
class _Optimizers:
    """Adam on the model's parameters, Adam on the entropy bottleneck's quantiles (trained by
    the aux loss alone), and the plateau schedule of the first."""
    main_params: list
    aux_params: list
    main: torch.optim.Optimizer
    aux: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau

    @classmethod
    def of(cls, net, cfg: TrainConfig) -> _Optimizers:
        main_params, aux_params = parameter_groups(net)
        main = torch.optim.Adam(main_params, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(main, factor=0.5, patience=cfg.patience,
                                                               min_lr=cfg.min_lr)
        return cls(main_params, aux_params, main, torch.optim.Adam(aux_params, lr=cfg.aux_lr), scheduler)

    def state_dict(self) -> dict:
        return {"optimizer": self.main.state_dict(), "aux_optimizer": self.aux.state_dict(),
                "lr_scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.main.load_state_dict(state["optimizer"])
        self.aux.load_state_dict(state["aux_optimizer"])
        self.scheduler.load_state_dict(state["lr_scheduler"])


def _device(cfg: TrainConfig, rank: int, world: int) -> torch.device:
    """The configured device; under torchrun with CUDA, one GPU per process."""
    if cfg.device == "cuda" and world > 1:
        return torch.device(f"cuda:{rank % torch.cuda.device_count()}")
    return torch.device(cfg.device)


def _loaders(cfg: TrainConfig, rank: int, world: int):
    """(training crops, validation crops, the sampler under torchrun or None, the loader)."""
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
    return train_set, val_set, sampler, loader


def _start(cfg: TrainConfig, net, optimizers: _Optimizers, last_path: Path, device, log) -> tuple[int, float]:
    """(first epoch, best validation loss so far): resumed from the run's last checkpoint when
    there is one, else from ``cfg.init``'s weights when given, else from scratch."""
    if last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        net.load_state_dict(state["state_dict"])
        optimizers.load_state_dict(state)
        log(f"resumed from {last_path} at epoch {state['epoch'] + 1}")
        return state["epoch"] + 1, state["best_loss"]
    if cfg.init:
        net.load_state_dict(load_checkpoint(cfg.init, map_location=device))
        log(f"weights initialised from {cfg.init}")
    return 0, math.inf


def _train_epoch(model, net, criterion, optimizers: _Optimizers, batches, device, cfg: TrainConfig, world: int) -> None:
    """One pass over the batches (a tqdm bar over the loader): the rate-distortion step, then
    the aux step on the quantiles."""
    for x in batches:
        x = x.to(device)
        optimizers.main.zero_grad()
        optimizers.aux.zero_grad()
        result = criterion(model(x), x)
        result["loss"].backward()
        if cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(optimizers.main_params, cfg.clip)
        optimizers.main.step()
        aux = net.aux_loss()
        aux.backward()
        if world > 1:  # the aux loss is outside DDP's forward: average its gradients by hand
            for p in optimizers.aux_params:
                dist.all_reduce(p.grad)
                p.grad /= world
        optimizers.aux.step()
        batches.set_postfix(loss=result["loss"].item(), bpp=result["bpp_loss"].item(), aux=aux.item(), refresh=False)


def _out_of_time(deadline: float, device, world: int) -> bool:
    """Rank 0's clock decides, so every rank leaves after the same epoch."""
    stop = torch.tensor([time.monotonic() >= deadline], dtype=torch.int32, device=device)  # nccl: on the GPU
    if world > 1:
        dist.broadcast(stop, 0)
    return bool(stop.item())


def train(cfg: TrainConfig, log=print) -> Path:
    """Trains (or resumes) into ``cfg.out``; returns the path of the best checkpoint."""
    rank, world = _distributed()
    log = log if rank == 0 else (lambda *_: None)  # one process speaks
    device = _device(cfg, rank, world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out / "checkpoint.pth.tar", out / "best.pth.tar"
    lmbda = cfg.lmbda if cfg.lmbda is not None else lambda_for(cfg.quality, cfg.metric)
    train_set, val_set, sampler, loader = _loaders(cfg, rank, world)

    net = build_model(cfg).to(device)
    criterion = RateDistortionLoss(lmbda, metric=cfg.metric)
    optimizers = _Optimizers.of(net, cfg)
    start_epoch, best = _start(cfg, net, optimizers, last_path, device, log)
    if world > 1:
        # The quantiles learn only from the aux loss, outside DDP's forward: DDP must not
        # track them (their gradients are averaged by hand in _train_epoch).
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
    log(f"{cfg.model} q{cfg.quality} lambda={lmbda:g} ({cfg.metric}); {len(train_set.images)} training images x "
        f"{cfg.crops_per_image} crops of {cfg.patch}px, {len(val_set.images)} validation images; {world} "
        f"process(es) on {device}")

    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes > 0 else math.inf
    for epoch in range(start_epoch, cfg.epochs):
        train_set.set_epoch(epoch)  # before iter(loader), which hands the dataset to the workers
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        with tqdm(loader, desc=f"epoch {epoch}", disable=rank != 0) as bar:
            _train_epoch(model, net, criterion, optimizers, bar, device, cfg, world)
        if portable:
            net.make_portable(calibration)
        val = evaluate_loss(net, criterion, val_set, device)
        optimizers.scheduler.step(val["loss"])
        log(f"epoch {epoch}: val loss {val['loss']:.4f} bpp {val['bpp']:.4f} psnr {val['psnr']:.2f} dB "
            f"lr {optimizers.main.param_groups[0]['lr']:g}")
        if rank == 0:
            state = {"epoch": epoch, "state_dict": net.state_dict(), **optimizers.state_dict(),
                     "best_loss": min(best, val["loss"]), "config": asdict(cfg), "model": cfg.model,
                     "quality": cfg.quality}
            save_atomic(state, last_path)  # a kill leaves the previous checkpoint, never half of one
            if val["loss"] < best:
                save_atomic(state, best_path)
        best = min(best, val["loss"])
        if _out_of_time(deadline, device, world) and epoch + 1 < cfg.epochs:
            log(f"stopping after {cfg.max_minutes:g} minutes; rerun the same command to resume at epoch {epoch + 1}")
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
        totals["psnr"] += psnr(out["x_hat"].clamp(0, 1), x).item()
    net.train(was_training)
    return {k: v / len(dataset) for k, v in totals.items()}
