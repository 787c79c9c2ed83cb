"""The ``ransform`` command line. ``ransform demo`` codes generated hyperprior latents and
prints sizes, rate overhead and speed; later commands (compress, eval, train...) join it."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

import ransform
from ransform import batch, container, zoo
from ransform.files import output_path, write_atomic


def _latent(shape, scale_range, seed):
    """A latent like a hyperprior model's: scales log-uniform in scale_range, values drawn from
    the discretized Gaussian of that scale."""
    rng = np.random.default_rng(seed)
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    scales = np.exp(rng.uniform(lo, hi, shape)).astype(np.float32)
    values = np.rint(scales * rng.standard_normal(shape)).astype(np.int32)
    return scales, values


def _best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench(args) -> int:
    """The coder alone on generated hyperprior latents: size, overhead against -log2 p, speed."""
    table = ransform.GaussianTable()
    print(f"table: {table}")
    cases = [
        ("one latent, low rate", (192, 32, 48), (0.11, 1.0)),
        ("one latent, high rate", (192, 32, 48), (0.11, 8.0)),
        ("16 latents (W1)", (16, 192, 32, 48), (0.11, 20.0)),
    ]
    print(f"{'case':<24}{'symbols':>10}{'bytes':>10}{'ideal':>10}{'overhead':>10}{'enc Msym/s':>12}{'dec Msym/s':>12}")
    for name, shape, scale_range in cases:
        scales, values = _latent(shape, scale_range, seed=1)
        t_enc, data = _best_time(lambda: ransform.encode(values, table.index(scales), table, threads=args.threads), 3)
        t_dec, out = _best_time(lambda: ransform.decode(data, table.index(scales), table, threads=args.threads), 3)
        if not np.array_equal(out, values):
            print(f"{name}: ROUND TRIP FAILED", file=sys.stderr)
            return 1
        ideal = ransform.ideal_bits(values, table.index(scales), table) / 8
        print(f"{name:<24}{values.size:>10}{len(data):>10}{ideal:>10.0f}{(len(data) / ideal - 1) * 100:>9.3f}%"
              f"{values.size / t_enc / 1e6:>12.1f}{values.size / t_dec / 1e6:>12.1f}")
    outliers = np.array([0, 1000, -1000, 100000, 2**31 - 1, -2**31], dtype=np.int64)
    idx = np.zeros(outliers.shape, np.int32)
    data = ransform.encode(outliers, idx, table)
    assert np.array_equal(ransform.decode(data, idx, table), outliers)
    print(f"outliers {outliers.tolist()} with the smallest scale: {len(data)} bytes, round trip exact")
    print("ideal = -log2 p under the quantized table; speeds are end to end from Python, index included")
    return 0


# argparse types: a bad number is refused while parsing, with the option's name, before any work.
def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _float_type(positive: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be a finite number {'above' if positive else 'at least'} 0, "
                                             f"got {text}")
        return value
    return parse


_positive_float, _non_negative_float = _float_type(True), _float_type(False)


def _qualities(text: str) -> list[int]:
    """"1,2,3" -> [1, 2, 3]."""
    return [_positive_int(part) for part in text.split(",")]


def _sizes(text: str) -> dict:
    """"64,96" -> {"N": 64, "M": 96} (one number for single-size models like cheng2020)."""
    values = [_positive_int(part) for part in text.split(",")]
    if len(values) > 2:
        raise argparse.ArgumentTypeError(f"expected N or N,M, got {text!r}")
    return dict(zip(("N", "M"), values))


def _check_device(name: str) -> None:
    """Refuses a device this machine lacks before any data is loaded (torch would fail only at
    the first tensor moved there, with an AssertionError)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device; give cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {name}: {why}; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: ransform runs on cpu or cuda")


def _check_train_args(args) -> None:
    """What would otherwise fail only after the images are loaded, or deep inside torch."""
    from ransform import models
    from ransform.files import check_writable

    models.sizes(args.model, args.quality)  # an unknown model, or a quality it does not have
    factor = models.MODELS[args.model].downsampling_factor
    if args.patch % factor:
        raise ValueError(f"--patch {args.patch}: {args.model} takes crops whose side is a multiple of {factor} px")
    _check_device(args.device)
    check_writable(os.path.join(args.out, "checkpoint.pth.tar"))  # not a file, not read-only


def _train_options(p) -> None:
    """``ransform train``'s options, from TrainConfig's fields (their defaults, bounds and help)."""
    from dataclasses import MISSING

    from ransform.train_config import options
    bounded = {("int", "positive"): _positive_int, ("int", "non-negative"): _non_negative_int,
               ("float", "positive"): _positive_float, ("float", "non-negative"): _non_negative_float}
    for f in options():
        kind = str(f.type).split(" ")[0]  # "int", "float | None" -> "float", "bool", "dict", "str"
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        if kind == "bool":
            p.add_argument(flag, dest=f.name, action="store_true", help=f.metadata["help"])
            continue
        default = None if f.default is MISSING else f.default
        plain = {"int": int, "float": float}.get(kind, str)
        kw = {"type": _sizes, "metavar": "N,M"} if kind == "dict" else {"type": bounded.get((kind, f.metadata["bound"]), plain)}
        if f.metadata["choices"]:
            kw["choices"] = f.metadata["choices"]
        required = f.default is MISSING and f.default_factory is MISSING
        p.add_argument(flag, dest=f.name, required=required, default=default, help=f.metadata["help"] + (
            f" (default {default})" if default not in (None, "") else ""), **kw)


def train(args) -> int:
    from dataclasses import fields

    from ransform.training import TrainConfig
    from ransform.training import train as run_training

    _check_train_args(args)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    cfg = TrainConfig(**{k: v for k, v in given.items() if v is not None})  # None: the field's default
    best = run_training(cfg)
    print(f"best checkpoint: {best}")
    return 0


def _force_option(p, what: str = "an existing output file") -> None:
    p.add_argument("-f", "--force", action="store_true", help=f"replace {what} (never the input)")


def _model_args(p, checkpoint_help: str) -> None:
    p.add_argument("--model", help="registry name (shipped weights with --quality, or the kind of a CompressAI checkpoint)")
    p.add_argument("--quality", type=_positive_int, help="quality of the shipped weights")
    p.add_argument("--checkpoint", help=checkpoint_help)
    _pretrained_options(p)
    _threads_option(p)


def _pretrained_options(p) -> None:
    p.add_argument("--pretrained", choices=("ransform", "compressai"), default="ransform",
                   help="whose weights --model names: ransform's shipped ones (default) or CompressAI's published "
                   "ones (downloaded once into the torch hub cache)")
    p.add_argument("--metric", choices=("mse", "ms-ssim"), default="mse",
                   help="with --pretrained compressai: the weights trained for MSE (default) or MS-SSIM")


def _resolve_pretrained(args) -> None:
    """--pretrained compressai: --model names CompressAI's published weights of that architecture."""
    if getattr(args, "pretrained", "ransform") != "compressai":
        return
    from ransform import published
    if not args.model:
        raise ValueError("--pretrained compressai needs --model ARCHITECTURE (e.g. mbt2018-mean)")
    if args.checkpoint:
        raise ValueError("give --pretrained compressai or --checkpoint, not both")
    args.model = published.name(args.model, args.metric)


def _notes(notes, source=None) -> None:
    """What a file could not keep: one line each on stderr, never silently."""
    for note in notes:
        print(f"note: {source}: {note}" if source else f"note: {note}", file=sys.stderr)


def _threads_option(p) -> None:
    p.add_argument("--threads", type=_non_negative_int, help="threads for the networks and the coder (0 = one per "
                   "core; default: torch's setting for the networks, 1 for the coder); files are the same for any count")
    p.add_argument("--device", default="cpu", help="where the networks run: cpu (default), cuda or cuda:N; files "
                   "written in portable mode decode on either")


def _configured(model, args):
    """The loaded model on --device, with --threads applied to torch's networks and to every
    entropy model's coder."""
    if args.device != "cpu":
        _check_device(args.device)
        model.net.to(args.device)
    if args.threads is None:
        return model
    import torch

    from ransform.entropy_models import EntropyModel
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    for module in model.net.modules():
        if isinstance(module, EntropyModel):
            module.threads = args.threads
    return model


def _existing_file(path) -> None:
    """Refuses a missing, unreadable or folder input before torch is imported (about a second),
    so the commonest mistakes answer at once."""
    with open(path, "rb"):
        pass


def _many_options(p, what: str) -> None:
    p.add_argument("-r", "--recursive", action="store_true", help=f"also the {what} in sub-folders of a folder given")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _compress_one(model, image, out, args) -> tuple[str, tuple[int, int]]:
    """One image into one .rfm file: (the line to print, (file bytes, pixels))."""
    from ransform import codec, imagefile

    output_path(out, args.force, [image])  # before the work
    picture = imagefile.read(image)
    _notes(picture.notes, image if args.many else None)
    t0 = time.perf_counter()
    data = codec.compress(model, picture, portable=False if args.float else None)
    t1 = time.perf_counter()
    write_atomic(output_path(out, args.force, [image]), data)
    h, w = picture.pixels.shape[-2:]
    mode = "float entropy parameters" if args.float or not model.net.is_portable else "portable"
    line = f"{out}: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp, {mode}, encode {t1 - t0:.2f} s"
    if not args.no_psnr:
        line += f", PSNR {imagefile.psnr(picture, codec.decompress_picture(model, data)):.2f} dB"
    return line, (len(data), h * w)


def compress_cmd(args) -> int:
    args.many = batch.is_batch(args.image, args.output)
    if args.many:
        jobs = batch.plan(args.image, args.output, batch.IMAGE_SUFFIXES, lambda name: name + ".rfm", args.recursive)
    else:
        _existing_file(args.image[0])
        jobs = [batch.Job(args.image[0], output_path(args.output or args.image[0] + ".rfm", args.force, args.image))]
    zoo.check_choice(args.model, args.quality, args.checkpoint)
    from ransform import codec

    t0 = time.perf_counter()
    model = _configured(codec.load_model(args.model, args.quality, args.checkpoint), args)
    load = time.perf_counter() - t0
    if not args.many:
        line, _ = _compress_one(model, jobs[0].source, jobs[0].output, args)
        print(f"{line} (model load {load:.2f} s)")
        return 0
    outcome = batch.run(jobs, lambda job: _compress_one(model, job.source, job.output, args), _reason,
                        progress=not args.quiet)
    nbytes, pixels = (sum(column) for column in zip((0, 0), *(value for _, value in outcome.done)))
    rate = f" ({8 * nbytes / pixels:.4f} bpp over all their pixels)" if pixels else ""
    return _summary(f"compressed {len(outcome.done)} of {len(jobs)} images into {nbytes:,} bytes{rate}", outcome,
                    load)


def _summary(what: str, outcome, load: float) -> int:
    """The last line of a many-files command, and its exit status: 2 when a file failed."""
    count = len(outcome.done) + len(outcome.failed)
    print(f"{what} in {outcome.seconds:.2f} s ({outcome.seconds / max(count, 1):.3f} s per file; model load "
          f"{load:.2f} s)" + (f"; {len(outcome.failed)} failed" if outcome.failed else ""))
    return 2 if outcome.failed else 0


class _Decoders:
    """The models files name, each loaded once (a folder may hold files of several models)."""

    def __init__(self, args):
        self.args, self.models, self.seconds = args, {}, 0.0

    def __call__(self, data: bytes):
        from ransform import codec
        from ransform.container import unpack

        item = unpack(data)
        key = (item.model, item.quality)
        if key not in self.models:
            t0 = time.perf_counter()
            self.models[key] = _configured(codec.model_for(data, self.args.checkpoint), self.args)
            self.seconds += time.perf_counter() - t0
        return self.models[key]


def _decompress_one(decoder_for, rfm, out, args) -> tuple[str, None]:
    """One .rfm file into one image: (the line to print, nothing)."""
    from ransform import codec, imagefile

    output_path(out, args.force, [rfm, args.original])
    with open(rfm, "rb") as f:
        data = f.read()
    original = imagefile.read(args.original) if args.original else None  # a bad one fails before writing
    loaded = decoder_for.seconds
    model = decoder_for(data)
    loaded = decoder_for.seconds - loaded
    t0 = time.perf_counter()
    picture = codec.decompress_picture(model, data)
    t1 = time.perf_counter()
    _notes(imagefile.write(picture, out), rfm if args.many else None)
    h, w = picture.pixels.shape[-2:]
    line = f"{out}: {w}x{h}, {8 * len(data) / (h * w):.4f} bpp, decode {t1 - t0:.2f} s"
    if not args.many:
        line += f" (model load {loaded:.2f} s)"
    if original is not None:
        line += f", PSNR {imagefile.psnr(original, picture):.2f} dB"
    return line, None


def _decompressed_name(name: str) -> str:
    """x.png.rfm -> x.png.png: the decoded image beside its file never replaces the original."""
    return name.removesuffix(".rfm") + ".png"


def decompress_cmd(args) -> int:
    args.many = batch.is_batch(args.file, args.output)
    if args.many:
        if args.original:
            raise ValueError("--original goes with a single .rfm file")
        jobs = batch.plan(args.file, args.output, batch.RFM_SUFFIXES, _decompressed_name, args.recursive)
    else:
        source = args.file[0]
        out = output_path(args.output or _decompressed_name(source), args.force, [source, args.original])
        with open(source, "rb") as f:
            container.unpack(f.read())  # not an .rfm file, or a damaged one: said before torch loads
        if args.original:
            _existing_file(args.original)
        jobs = [batch.Job(source, out)]
    from ransform import codec  # noqa: F401  (torch: imported before the clock starts)

    decoders = _Decoders(args)
    if not args.many:
        print(_decompress_one(decoders, jobs[0].source, jobs[0].output, args)[0])
        return 0
    outcome = batch.run(jobs, lambda job: _decompress_one(decoders, job.source, job.output, args), _reason,
                        progress=not args.quiet)
    return _summary(f"decompressed {len(outcome.done)} of {len(jobs)} files", outcome, decoders.seconds)


def _write_json(data, path) -> None:
    import json

    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
    print(f"wrote {path}")


def _print_summary(summary) -> None:
    r = summary["results"]
    print(f"{summary['name']}:")
    print(f"  {'quality':>8}{'bpp':>9}{'PSNR dB':>9}{'MS-SSIM':>9}{'enc s':>8}{'dec s':>8}")
    for i, q in enumerate(r["quality"]):
        print(f"  {q:>8}{r['bpp'][i]:>9.4f}{r['psnr-rgb'][i]:>9.2f}{r['ms-ssim-rgb'][i]:>9.4f}"
              f"{r['encoding_time'][i]:>8.3f}{r['decoding_time'][i]:>8.3f}")


def eval_cmd(args) -> int:
    if args.output:
        output_path(args.output, args.force)  # before an evaluation that may take minutes
    files = batch.image_files(args.directory)
    qualities = args.quality or []  # parsed by _qualities
    checkpoints = args.checkpoint.split(",") if args.checkpoint else []
    if checkpoints and qualities and len(checkpoints) != len(qualities):
        raise ValueError(f"{len(checkpoints)} checkpoints for {len(qualities)} qualities")
    choices = [(args.model, qualities[i] if qualities else None, checkpoints[i] if checkpoints else None)
               for i in range(max(len(checkpoints), len(qualities)))]
    if not choices:
        raise ValueError("give --quality (shipped weights) and/or --checkpoint")
    for choice in choices:
        zoo.check_choice(*choice)
    from ransform import codec, evaluation

    runs = [_configured(codec.load_model(*choice), args) for choice in choices]
    keys = [model.quality or i + 1 for i, model in enumerate(runs)]
    if len(set(keys)) != len(keys):  # every checkpoint keeps its row
        keys = list(range(1, len(runs) + 1))
        print(f"checkpoints share a quality: their rows are numbered 1..{len(runs)} in the order given")
    per_quality, failed = {}, set()

    def report(image, exc):  # one bad image is skipped, with its reason, and the rest go on
        failed.add(image)
        print(f"{image}: {_reason(exc)}", file=sys.stderr)

    for key, model in zip(keys, runs):
        per_quality[key] = evaluation.evaluate_model(model, files, progress=not args.quiet, on_error=report)
        if not per_quality[key]:
            raise ValueError(f"none of the {len(files)} images under {args.directory} could be evaluated")
        files = [f for f in files if f not in failed]
    gone = {Path(f).name for f in failed}  # the same images at every quality
    per_quality = {key: [r for r in records if r["image"] not in gone] for key, records in per_quality.items()}
    name = args.name or f"ransform {runs[0].name}"
    summary = evaluation.summarize(name, f"ransform {ransform.__version__}, .rfm files, {len(files)} images "
                                   f"from {args.directory}", per_quality, args.per_image)
    _print_summary(summary)
    if args.output:
        _write_json(summary, args.output)
    if failed:
        print(f"{len(failed)} of {len(files) + len(failed)} images failed and are not in the results", file=sys.stderr)
        return 2
    return 0


def bench_codecs_cmd(args) -> int:
    import os

    from ransform import evaluation

    codecs = args.codecs.split(",") if args.codecs else evaluation.available_codecs()
    unknown = [c for c in codecs if c not in evaluation.CODEC_QUALITIES]
    if unknown:
        raise ValueError(f"unknown codec {unknown[0]!r}; known: {', '.join(evaluation.CODEC_QUALITIES)}")
    have = evaluation.available_codecs()
    if any(c not in have for c in codecs):
        raise ValueError(f"this Pillow cannot write {', '.join(c for c in codecs if c not in have)} "
                         f"(it has {', '.join(have)})")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise ValueError(f"-o {args.output_dir} is not a folder (one JSON per codec is written there)")
    files = batch.image_files(args.directory)
    os.makedirs(args.output_dir, exist_ok=True)
    for name in codecs:
        output_path(os.path.join(args.output_dir, f"{name}.json"), args.force)
    for name in codecs:
        per_quality = {q: evaluation.evaluate_codec(name, q, files, progress=not args.quiet)
                       for q in evaluation.CODEC_QUALITIES[name]}
        from PIL import __version__ as pillow_version
        summary = evaluation.summarize(name.upper() if name != "jpeg2000" else "JPEG 2000",
                                       f"Pillow {pillow_version} defaults, {len(files)} images from {args.directory}",
                                       per_quality, args.per_image)
        _print_summary(summary)
        _write_json(summary, os.path.join(args.output_dir, f"{name}.json"))
    return 0


def plot_cmd(args) -> int:
    from ransform import rdplot

    output_path(args.output, args.force, args.results)
    results = [rdplot.load_results(p) for p in args.results]
    metric = "psnr-rgb" if args.metric == "psnr" else "ms-ssim-rgb"
    for path, r in zip(args.results, results):
        if metric not in r["results"]:
            raise ValueError(f"{path}: no {metric!r} results to plot (--metric {args.metric})")
    rdplot.plot(results, args.output, metric, args.title)
    print(f"wrote {args.output}")
    if len(results) > 1:
        print(rdplot.bd_table(results, metric, args.bd_method))
    return 0


def bitmap_cmd(args) -> int:
    output_path(args.output, args.force, [args.image])
    zoo.check_choice(args.model, args.quality, args.checkpoint)
    from ransform import codec
    from ransform.bitmaps import bitmap, plot_bitmap

    model = _configured(codec.load_model(args.model, args.quality, args.checkpoint), args)
    x = codec.read_image(args.image)
    bm = bitmap(model.net, x)
    plot_bitmap(bm, args.output, image=x, log=args.log)
    parts = ", ".join(f"{k}: {v / 8:.0f} B" for k, v in bm.bits_by_latent.items())
    print(f"{args.output}: {bm.total_bits / 8:.0f} bytes estimated ({parts}), {bm.bpp:.4f} bpp")
    return 0


def convert_cmd(args) -> int:
    import hashlib
    import io
    import os

    import torch

    from ransform import codec

    if args.device != "cpu":
        _check_device(args.device)  # before the checkpoint is read
    model = codec.load_model(args.model, None, args.checkpoint)
    weights = model.net.state_dict()
    if args.half:  # parameters only: buffers (scale table, coder tables) must stay exact
        params = {name for name, _ in model.net.named_parameters()}
        halved = {k: v.half() if k in params and v.is_floating_point() else v for k, v in weights.items()}
        model.net.load_state_dict(halved)  # the float32 model that loading the file gives...
        model.net.update(force=True)       # ...and the tables of exactly that model
        weights = {k: halved[k] if k in params else v for k, v in model.net.state_dict().items()}
    if args.portable:  # after halving: calibrate the float model that loading the file gives
        images = codec.calibration_images(args.calibration, args.calibration_images)
        _configured(model, args).net.make_portable(images)  # on --device, with --threads
        weights.update({k: v.cpu() for k, v in model.net.state_dict().items() if k.startswith("portable.")})
    state = {"model": model.name, "quality": model.quality, "state_dict": weights}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
    stem, dot, suffix = os.path.basename(args.output).partition(".")
    final = output_path(os.path.join(os.path.dirname(args.output), f"{stem}-{digest}{dot}{suffix}"), args.force,
                        [args.checkpoint])
    write_atomic(final, buffer.getvalue())
    print(f"{final}: {model.name} quality {model.quality}, coder tables filled"
          + (", portable entropy parameters" if args.portable else "")
          + (", parameters in float16" if args.half else f", weights fingerprint {model.fingerprint.hex()}"))
    return 0


DEMO_IMAGE = "coffee.png"


def demo(args) -> int:
    """Compress the bundled photograph with the shipped model; write the file, the
    reconstruction and the bit map; compare with JPEG at the same size."""
    import io
    import os

    from PIL import Image

    from ransform import codec, evaluation
    from ransform.bitmaps import bitmap, plot_bitmap

    if args.model or args.checkpoint:
        name, quality = args.model, args.quality
    elif zoo.shipped():
        name, quality = zoo.shipped()[0]
    else:
        raise ValueError("no shipped model in this installation; use --checkpoint")
    image = args.image or str(Path(__file__).parent / "data" / DEMO_IMAGE)
    names = [Path(image).stem + suffix for suffix in (".rfm", "-decoded.png", "-bits.png")]
    output_dir = args.output_dir
    if output_dir is None:  # a fresh folder: ransform-demo, else ransform-demo-2, ...
        output_dir = next(d for d in ("ransform-demo", *(f"ransform-demo-{i}" for i in range(2, 10**6)))
                          if not any(os.path.exists(os.path.join(d, n)) for n in names))
    for n in names:
        output_path(os.path.join(output_dir, n), args.force, [image])
    stem = os.path.join(output_dir, Path(image).stem)
    t0 = time.perf_counter()
    model = _configured(codec.load_model(name, quality, args.checkpoint), args)
    x = codec.read_image(image)
    t1 = time.perf_counter()
    os.makedirs(output_dir, exist_ok=True)  # once the model and image are good: no empty folder left
    data, x_hat, t_enc, t_dec = evaluation.round_trip(model, x)
    write_atomic(stem + ".rfm", data)
    codec.write_image(x_hat, stem + "-decoded.png")
    bm = bitmap(model.net, x)
    plot_bitmap(bm, stem + "-bits.png", image=x)
    h, w = x.shape[-2:]
    ours = evaluation.quality_metrics(codec.to_uint8(x), codec.to_uint8(x_hat))
    print(f"model: {model.name} quality {model.quality} (loaded in {t1 - t0:.2f} s)")
    print(f"image: {image} ({w}x{h})")
    print(f"ransform: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp, PSNR {ours['psnr-rgb']:.2f} dB, "
          f"MS-SSIM {ours['ms-ssim-rgb']:.4f}, encode {t_enc:.2f} s, decode {t_dec:.2f} s")
    # JPEG (Pillow) at the largest quality whose file is not bigger.
    pil = Image.fromarray(codec.to_uint8(x).permute(1, 2, 0).numpy())
    best = None
    for q in range(1, 96):
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q)
        if buf.tell() > len(data):
            break
        best = (q, buf.getvalue())
    if best:
        import numpy as np
        import torch
        y8 = torch.from_numpy(np.asarray(Image.open(io.BytesIO(best[1])).convert("RGB")).copy()).permute(2, 0, 1)
        jpeg = evaluation.quality_metrics(codec.to_uint8(x), y8)
        print(f"JPEG q{best[0]}: {len(best[1])} bytes, {8 * len(best[1]) / (h * w):.4f} bpp, "
              f"PSNR {jpeg['psnr-rgb']:.2f} dB, MS-SSIM {jpeg['ms-ssim-rgb']:.4f}")
    else:
        print("JPEG: even quality 1 is larger than the ransform file")
    print(f"wrote {stem}.rfm, {stem}-decoded.png, {stem}-bits.png (where the bits go)")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error (the usage is one --help away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _reason(exc: Exception) -> str:
    """One line saying what stopped a command, for bad input or a file system that said no; the
    error of a bug says so (RANSFORM_DEBUG=1 shows where)."""
    import pickle

    if isinstance(exc, BrokenPipeError):
        # The reader of stdout left (`ransform bench | head -1`). Point stdout at /dev/null, or
        # the interpreter's last flush at exit fails again and prints a traceback.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no real stdout (tests)
            pass
        message = "error: output closed before the command finished (broken pipe)"
    elif isinstance(exc, ImportError):  # the coder alone installs without torch
        message = f"needs {exc.name or 'a missing package'}: pip install 'ransform[torch]'"
    elif isinstance(exc, OSError):  # not found, a directory, permission denied, disk full...: name the file
        message = f"error: {exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else f"error: {exc}"
    elif isinstance(exc, (ValueError, pickle.UnpicklingError)):  # bad input; ransform's own errors are ValueErrors
        message = f"error: {exc}"
    elif isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch's is a RuntimeError
        message = f"error: out of memory ({str(exc) or 'MemoryError'}); try a smaller image or batch"
    else:
        message = (f"internal error: {type(exc).__name__}: {exc} (a bug in ransform: rerun with RANSFORM_DEBUG=1 "
                   "for the traceback, and please report it)")
    return " ".join(message.split())  # one line, always


def _report(command: str, exc: Exception) -> int:
    """The one line on stderr for what stopped a command, and the exit status: 2 for bad input
    or a file system that said no, 1 for anything else (a bug)."""
    message = _reason(exc)
    print(f"ransform {command}: {message}", file=sys.stderr)
    return 1 if message.startswith("internal error") else 2


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="compress the bundled photo with the shipped model, write the results, compare "
                       "with JPEG", description="Compresses a bundled CC0 photograph (or --image) with the shipped "
                       "model; writes the .rfm file, the reconstruction and the bit map to --output-dir.")
    p.add_argument("--image", help="another image instead of the bundled one")
    p.add_argument("--output-dir", help="where to write (default: ransform-demo, or the next free ransform-demo-N)")
    _force_option(p, "the demo's files in --output-dir")
    _model_args(p, "a checkpoint instead of the shipped model")
    p.set_defaults(run=demo)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="the coder alone: generated hyperprior latents, size, overhead and speed")
    p.add_argument("--threads", type=_non_negative_int, default=1, help="coding threads (0 = one per core; default 1)")
    p.set_defaults(run=bench)


def _add_compress(sub) -> None:
    p = sub.add_parser("compress", help="compress images into .rfm files",
                       description="Compress images with shipped weights (--model, --quality) or a checkpoint. "
                       "Several images, or folders of them, run in one process with one model load; a file that "
                       "fails is reported and the rest go on (exit status 2 at the end).")
    p.add_argument("image", nargs="+", help="input images (PNG, JPEG, ...) or folders of them")
    p.add_argument("-o", "--output", help="output .rfm file for one image (default: IMAGE.rfm beside it); for "
                   "several, or when it is a folder or ends in /, the folder to write IMAGE.rfm files into")
    _many_options(p, "images")
    _model_args(p, "checkpoint file (ransform training checkpoint, or CompressAI's with --model)")
    p.add_argument("--no-psnr", action="store_true", help="skip decoding the result to report its PSNR")
    p.add_argument("--float", action="store_true", help="code with the float entropy-parameter networks (as "
                   "CompressAI does; the file may not decode on another machine or thread count) instead of "
                   "the portable integer ones (the default when the model has them)")
    _force_option(p)
    p.set_defaults(run=compress_cmd)


def _add_decompress(sub) -> None:
    p = sub.add_parser("decompress", help="decompress .rfm files into PNGs",
                       description="Decompress .rfm files; the model is the one each file names (shipped, or "
                       "CompressAI's published weights, fetched once), or --checkpoint. Several files, or folders of "
                       "them, run in one process, each model loaded once; a file that fails is reported and the rest "
                       "go on (exit status 2 at the end).")
    p.add_argument("file", nargs="+", help="input .rfm files or folders of them")
    p.add_argument("-o", "--output", help="output image for one file (default: FILE without .rfm, as .png, beside "
                   "it); for several, or when it is a folder or ends in /, the folder to write them into")
    _many_options(p, ".rfm files")
    p.add_argument("--checkpoint", help="checkpoint the file was written with (when it is not a shipped model)")
    p.add_argument("--original", help="original image: print the PSNR against it")
    _threads_option(p)
    _force_option(p)
    p.set_defaults(run=decompress_cmd)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="rate-distortion of a model on an image folder (JSON, CompressAI's schema)",
                       description="Compress and decompress every image through real .rfm files; report bpp (file "
                       "bytes), PSNR and MS-SSIM on 8-bit RGB, and times, averaged per quality.")
    p.add_argument("directory", help="folder of images, e.g. ../shared/data/kodak")
    p.add_argument("--model", help="registry name (shipped weights, or the kind of CompressAI checkpoints)")
    p.add_argument("--quality", type=_qualities, help="qualities, comma separated (e.g. 1,2,3)")
    p.add_argument("--checkpoint", help="checkpoints, comma separated, one per quality")
    _pretrained_options(p)
    _threads_option(p)
    p.add_argument("--name", help="curve name in the JSON (default: ransform MODEL)")
    p.add_argument("--per-image", action="store_true", help="also store every image's numbers")
    p.add_argument("-o", "--output", help="write the results JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _force_option(p)
    p.set_defaults(run=eval_cmd)


def _add_bench_codecs(sub) -> None:
    p = sub.add_parser("bench-codecs", help="JPEG, WebP, JPEG 2000 (and AVIF) through Pillow, same JSON schema")
    p.add_argument("directory", help="folder of images")
    p.add_argument("--codecs", help="comma separated subset of jpeg,webp,jpeg2000,avif (default: all Pillow has)")
    p.add_argument("-o", "--output-dir", default="results", help="one JSON per codec (default: results/)")
    p.add_argument("--per-image", action="store_true")
    p.add_argument("--quiet", action="store_true")
    _force_option(p)
    p.set_defaults(run=bench_codecs_cmd)


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="RD curves of results JSON files, and BD-rate / BD-PSNR against the first")
    p.add_argument("results", nargs="+", help="results JSON files; the first is the BD anchor")
    p.add_argument("-o", "--output", default="rd.png")
    p.add_argument("--metric", choices=["psnr", "ms-ssim"], default="psnr")
    p.add_argument("--bd-method", choices=["pchip", "akima", "cubic"], default="pchip",
                   help="BD interpolation: pchip (default, JVET CTC), akima, or cubic (Bjøntegaard 2001, 4+ points)")
    p.add_argument("--title")
    _force_option(p)
    p.set_defaults(run=plot_cmd)


def _add_bitmap(sub) -> None:
    p = sub.add_parser("bitmap", help="per-pixel bit heat map of an image next to the image (PNG)",
                       description="Where the bits go: -log2 p of every latent element under the model, summed over "
                       "channels and spread over the pixels each latent cell covers (totals preserved).")
    p.add_argument("image")
    p.add_argument("-o", "--output", default="bitmap.png")
    _model_args(p, "checkpoint file (ransform training checkpoint, or CompressAI's with --model)")
    p.add_argument("--log", action="store_true", help="logarithmic colour scale")
    _force_option(p)
    p.set_defaults(run=bitmap_cmd)


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="a CompressAI or ransform training checkpoint -> a ransform checkpoint",
                       description="Loads the checkpoint (CompressAI's key spellings, wrappers and prefixes accepted), "
                       "builds the coder tables and writes {model, quality, state_dict} with the first 8 hex digits "
                       "of its SHA-256 in the file name (OUT.pth.tar -> OUT-1a2b3c4d.pth.tar).")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="output path; the hash is added before the suffix")
    p.add_argument("--model", help="registry name (required for CompressAI checkpoints)")
    p.add_argument("--half", action="store_true", help="store parameters in float16 (half the size; they load as "
                   "float32, so the loaded model is what files are coded with)")
    p.add_argument("--portable", action="store_true", help="add portable (integer) entropy parameters, so files "
                   "decode on every machine (docs/guide/portable.md)")
    p.add_argument("--calibration", help="folder of images to calibrate --portable on (default: the bundled photo)")
    p.add_argument("--calibration-images", type=_positive_int, default=8, help="how many of its images (default 8)")
    _threads_option(p)
    _force_option(p)
    p.set_defaults(run=convert_cmd)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on an image folder (random crops; resumes from --out)",
                       description="Train a model with the rate-distortion loss. Resumes from OUT/checkpoint.pth.tar "
                       "when it exists; writes OUT/checkpoint.pth.tar every epoch and OUT/best.pth.tar at the best "
                       "validation loss. Under torchrun it runs DistributedDataParallel (gloo on CPU, nccl on GPU).")
    _train_options(p)
    p.set_defaults(run=train)


def build_parser() -> argparse.ArgumentParser:
    """The ``ransform`` command line: one sub-command per ``_add_*`` function below."""
    parser = _Parser(prog="ransform", description=ransform.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ransform {ransform.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_bench, _add_compress, _add_decompress, _add_eval, _add_bench_codecs, _add_plot,
                _add_bitmap, _add_convert, _add_train):
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _resolve_pretrained(args)
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl-C: files are written atomically, so nothing is left half done
        if os.environ.get("RANSFORM_DEBUG"):
            raise
        newline = "\n" if sys.stderr.isatty() else ""  # off the line of a progress bar or the ^C echo
        print(f"{newline}ransform {args.command}: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("RANSFORM_DEBUG"):  # the traceback, for a bug report
            raise
        return _report(args.command, exc)


if __name__ == "__main__":
    sys.exit(main())
