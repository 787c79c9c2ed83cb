"""ransform train: one epoch runs, checkpoints resume, bad data is reported, DDP under torchrun."""
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from conftest import write_images  # noqa: E402
from ransform import cli  # noqa: E402
from ransform.training import RandomCrops, TrainConfig, image_files, train  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    write_images(root / "sub", 6, 80, 96)  # found recursively
    (root / "notes.txt").write_text("not an image")
    return root


def config(folder, out, **kw):
    base = dict(model="bmshj2018-factorized", quality=1, data=str(folder), out=str(out), sizes={"N": 8, "M": 12},
                epochs=1, batch_size=2, patch=64, crops_per_image=1, val_fraction=0.34, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_crops_are_patches_with_flips(folder):
    ds = RandomCrops(image_files(folder), 64, crops_per_image=3, train=True, seed=1)
    assert len(ds) == 18
    crops = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        crops.append(ds[0])
        assert torch.equal(ds[0], crops[-1])  # one crop per item and epoch, however often it is read
    assert all(c.shape == (3, 64, 64) and 0 <= c.min() and c.max() <= 1 for c in crops)
    assert len({c.sum().item() for c in crops}) > 1  # random positions / flips
    val = RandomCrops(image_files(folder), 64, train=False)
    assert torch.equal(val[0], val[0])


def crops_by_epoch(dataset, workers, epochs=5, persistent=False):
    """(epochs, items, 3, patch, patch): every epoch's crops in item order, read through a
    DataLoader with that many worker processes, as training reads them."""
    loader = DataLoader(dataset, batch_size=4, num_workers=workers, persistent_workers=persistent)
    out = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        out.append(torch.cat(list(loader)))
    return torch.stack(out)


def distinct(crops) -> int:
    return len({c.numpy().tobytes() for c in crops.flatten(0, 1)})


@pytest.mark.parametrize("persistent", [False, True])
def test_crops_differ_across_epochs_and_items_whatever_the_workers(folder, persistent):
    # 6 images x 2 crops x 5 epochs = 60 crops, each of 49 x 65 positions x 4 flips: a few may
    # coincide by chance. Workers that each replay one random stream (the bug this guards
    # against) repeat every epoch's crops, and one another's: at most 12 distinct.
    dataset = RandomCrops(image_files(folder), 32, crops_per_image=2, seed=3)
    alone = crops_by_epoch(dataset, workers=0)
    assert distinct(alone) >= 57
    workers = crops_by_epoch(dataset, workers=2, persistent=persistent)
    assert distinct(workers) >= 57
    assert torch.equal(workers, alone)  # the same crops for any worker count
    again = crops_by_epoch(RandomCrops(image_files(folder), 32, crops_per_image=2, seed=3), workers=0, epochs=1)
    assert torch.equal(again[0], alone[0])  # reproducible from the seed
    other = crops_by_epoch(RandomCrops(image_files(folder), 32, crops_per_image=2, seed=4), workers=0, epochs=1)
    assert distinct(torch.cat([other, alone[:1]])) >= 22  # another seed, other crops


def test_one_epoch_then_resume(folder, tmp_path, monkeypatch):
    epochs = []  # the crops' epochs the loop asks for
    set_epoch = RandomCrops.set_epoch
    monkeypatch.setattr(RandomCrops, "set_epoch", lambda self, epoch: (epochs.append(epoch), set_epoch(self, epoch)))
    logs = []
    best = train(config(folder, tmp_path), log=logs.append)
    assert best.exists() and (tmp_path / "checkpoint.pth.tar").exists()
    state = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert state["epoch"] == 0 and state["model"] == "bmshj2018-factorized"
    logs.clear()
    train(config(folder, tmp_path, epochs=2), log=logs.append)
    assert any("resumed" in line and "epoch 1" in line for line in logs)
    state = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert state["epoch"] == 1
    assert epochs == [0, 1]  # a resumed run draws the crops an uninterrupted one would
    # The checkpoint loads into a model and codes.
    from ransform import models
    net = models.from_state_dict("bmshj2018-factorized", state).eval()
    net.update()
    x = torch.rand(1, 3, 64, 64)
    c = net.compress(x)
    assert torch.equal(net.decompress(c["strings"], c["shape"])["x_hat"], net(x)["x_hat"].clamp(0, 1))


def test_init_from_another_run(folder, tmp_path):
    first = train(config(folder, tmp_path / "a"))
    logs = []
    train(config(folder, tmp_path / "b", quality=2, init=str(first)), log=logs.append)
    assert any("initialised from" in line for line in logs)
    a = torch.load(first, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "checkpoint.pth.tar", weights_only=True)["state_dict"]
    # One epoch of training moved the weights, but from the first run's, not from scratch.
    assert not torch.equal(a["g_a.0.weight"], b["g_a.0.weight"])
    assert torch.allclose(a["g_a.0.weight"], b["g_a.0.weight"], atol=0.05)


def test_time_budget_stops_and_resumes(folder, tmp_path):
    logs = []
    train(config(folder, tmp_path, epochs=50, max_minutes=1e-6), log=logs.append)
    assert any("stopping after" in line for line in logs)
    assert torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)["epoch"] == 0


def test_bad_data_is_reported(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="no images"):
        train(config(tmp_path, tmp_path / "out"))
    with pytest.raises(ValueError, match="smaller than the 128px patch"):
        train(config(folder, tmp_path / "out", patch=128))


def test_cli_train_help_and_run(folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "--quality" in capsys.readouterr().out
    assert cli.main(["train", "--model", "bmshj2018-factorized", "--quality", "1", "--channels", "8,12",
                     "--data", str(folder), "--out", str(tmp_path), "--epochs", "1", "--batch-size", "2",
                     "--patch", "64", "--crops-per-image", "1", "--threads", "1"]) == 0
    assert (tmp_path / "best.pth.tar").exists()


def test_torchrun_two_processes_gloo(folder, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ransform.cli",
           "train", "--model", "bmshj2018-factorized", "--quality", "1", "--channels", "8,12", "--data", str(folder),
           "--out", str(tmp_path), "--epochs", "1", "--batch-size", "1", "--patch", "64", "--crops-per-image", "1",
           "--threads", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es)" in run.stdout + run.stderr
    assert (tmp_path / "checkpoint.pth.tar").exists()


@pytest.mark.parametrize("model", ["mbt2018-mean", "mbt2018"])
def test_portable_fine_tuning_writes_portable_checkpoints(folder, tmp_path, model):
    from ransform import models
    cfg = config(folder, tmp_path / "run", portable=True, model=model)
    best = train(cfg, log=lambda *_: None)
    state = torch.load(best, weights_only=True)
    assert any(k.startswith("portable.") for k in state["state_dict"])
    net = models.from_state_dict(model, state["state_dict"]).eval()
    net.update()
    assert net.coding_mode == "portable"
    x = torch.rand(1, 3, 64, 64)
    c = net.compress(x)
    assert torch.equal(net.decompress(c["strings"], c["shape"])["x_hat"], net(x)["x_hat"].clamp(0, 1))


def test_straight_through_fine_tuning_sees_the_portable_parameters():
    from ransform import models
    torch.manual_seed(0)
    net = models.MeanScaleHyperprior(16, 24)
    net.make_portable([torch.rand(3, 64, 64)])
    net.train()
    net.portable_finetune = True
    z_hat = torch.randn(1, 16, 2, 2, requires_grad=True)
    out = net.hyper_synthesis(z_hat, coded=False)
    assert torch.allclose(out, net.portable(z_hat.detach()), rtol=0, atol=1e-6)  # the portable values
    out.sum().backward()
    assert net.h_s[0].weight.grad is not None and net.h_s[0].weight.grad.abs().sum() > 0   # the float h_s learns
