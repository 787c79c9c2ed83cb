"""A small progress bar for long loops (training, evaluation): one line, rewritten in place
on a terminal, a plain line every ``every`` items otherwise (logs stay readable)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str = "", stream=None, every: int = 0, enabled: bool = True):
        self.total, self.desc, self.n = int(total), desc, 0
        self.stream = sys.stderr if stream is None else stream
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.every = every or max(1, self.total // 10)
        self.enabled = enabled
        self.start = time.perf_counter()
        self.postfix = ""

    def update(self, n: int = 1, **postfix) -> None:
        self.n += n
        if postfix:
            self.postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in postfix.items())
        if self.enabled and (self.tty or self.n % self.every == 0 or self.n == self.total):
            self._draw()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.start
        frac = self.n / self.total if self.total else 1.0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        line = f"{self.desc} [{bar}] {self.n}/{self.total} {elapsed:.0f}s<{eta:.0f}s {self.postfix}"
        self.stream.write(("\r" + line.ljust(100)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
