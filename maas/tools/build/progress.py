"""Stage-by-stage progress for long builds, printed to stderr."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Progress:
    def __init__(self, total: int, stream=None, quiet: bool = False):
        self.total, self.step, self.quiet = total, 0, quiet
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"      {message}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, title: str):
        self.step += 1
        t0 = time.perf_counter()
        if not self.quiet:
            print(f"[{self.step}/{self.total}] {title} ...", file=self.stream, flush=True)
        yield self
        if not self.quiet:
            now = time.perf_counter()
            print(f"      done in {now - t0:.1f}s (total {now - self.started:.1f}s)", file=self.stream, flush=True)
