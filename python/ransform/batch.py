"""Many files in one process (``ransform compress IMG... -o DIR/``, ``ransform decompress
FILE... -o DIR/``): the inputs, files and folders, become a list of jobs (a source and the path
to write) before any work; the jobs then run one after another, each reported on its own line,
a failing one reported without stopping the rest.

Torch-free on purpose: a mistake in the inputs is answered before ``import torch`` (a second).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
RFM_SUFFIXES = (".rfm",)


def files_under(folder, suffixes, recursive: bool = True) -> list[Path]:
    """The files of ``folder`` (and of its sub-folders when ``recursive``) whose suffix is one of
    ``suffixes`` (any case), sorted."""
    folder = Path(folder)
    walk = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in walk if p.suffix.lower() in suffixes and p.is_file())


def image_files(root) -> list[Path]:
    """Every image under a folder, sub-folders included (training, evaluation, calibration)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder (give a folder of images)")
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    files = files_under(root, IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return files


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path


def _ends_in_separator(path) -> bool:
    return str(path).endswith(("/", "\\"))


def is_batch(inputs, output) -> bool:
    """Several inputs, a folder among them, or an output that is a folder (an existing one, or
    a path ending in a separator): the many-files form of a command."""
    return (len(inputs) > 1 or any(Path(p).is_dir() for p in inputs)
            or (output is not None and (Path(output).is_dir() or _ends_in_separator(output))))


def plan(inputs, output, suffixes, name_for: Callable[[str], str], recursive: bool = False) -> list[Job]:
    """One job per input file and per matching file in an input folder (its sub-folders too with
    ``recursive``). The output is ``name_for(file name)`` next to the source, or under the folder
    ``output`` (an existing one, or a path ending in a separator; files from an input folder keep
    their place below it). A missing input stays a job: it fails on its own line when its turn
    comes. Raises ValueError when ``output`` is not a folder, when a folder holds no matching
    file, or when two jobs would write the same path."""
    out_dir = None if output is None else Path(output)
    if out_dir is not None and not out_dir.is_dir():
        if out_dir.exists():
            raise ValueError(f"{out_dir} is a file: several outputs go into a folder (give -o FOLDER/)")
        if not _ends_in_separator(output):  # a typo must not become a folder named like a file
            raise ValueError(f"several outputs go into a folder, and {out_dir} is none: give an existing folder, "
                             f"or {out_dir}/ to create it")
    jobs = []
    for given in inputs:
        given = Path(given)
        if given.is_dir():
            found = files_under(given, suffixes, recursive)
            if not found:
                where = "under" if recursive else "in"
                more = "" if recursive else " (sub-folders are searched with --recursive)"
                raise ValueError(f"no {'/'.join(suffixes)} files {where} {given}{more}")
            pairs = [(f, f.relative_to(given)) for f in found]
        else:
            pairs = [(given, Path(given.name))]
        for source, relative in pairs:
            base = source.parent if out_dir is None else out_dir / relative.parent
            jobs.append(Job(source, base / name_for(relative.name)))
    seen = {}
    for job in jobs:
        key = job.output.absolute()
        if key in seen:
            raise ValueError(f"{seen[key].source} and {job.source} would both be written to {job.output}")
        seen[key] = job
    return jobs


@dataclass
class Outcome:
    done: list        # (job, the value ``work`` returned)
    failed: list      # (job, one-line reason)
    seconds: float


def run(jobs, work: Callable[[Job], tuple[str, object]], describe_error: Callable[[Exception], str],
        progress: bool = True) -> Outcome:
    """Runs ``work(job) -> (line, value)`` for every job, printing its line on stdout, or the
    reason it failed on stderr, and going on; a progress bar on stderr when it is a terminal."""
    from tqdm import tqdm

    done, failed = [], []
    start = time.perf_counter()
    with tqdm(total=len(jobs), unit="file", disable=None if progress else True, file=sys.stderr,
              leave=False) as bar:
        for job in jobs:
            try:
                line, value = work(job)
            except Exception as exc:  # one bad file: say why, keep going (Ctrl-C still stops)
                reason = describe_error(exc)
                failed.append((job, reason))
                bar.write(f"{job.source}: {reason}", file=sys.stderr)
            else:
                done.append((job, value))
                bar.write(line, file=sys.stdout)
            bar.update()
    return Outcome(done, failed, time.perf_counter() - start)
