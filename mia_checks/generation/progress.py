"""How generation reports progress: a bar with rate and ETA on a terminal, a plain line every 30 s in a log
(CI), or nothing; on the process's real stderr, so that it shows without -s."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from .shards import Shard

LOG_INTERVAL = 30.0  # progress in a log (not a terminal): seconds between lines


@dataclass(frozen=True)
class Progress:
    """How generation reports progress: auto (a bar on a terminal, a line every `interval` seconds in a log
    such as CI's), bar, log or off; on `stream` (default: the process's real stderr, sys.__stderr__)."""

    mode: str = "auto"
    stream: Any = field(default=None, compare=False)
    interval: float = LOG_INTERVAL

    @staticmethod
    def of(progress: "bool | str | Progress | None") -> "Progress":
        if isinstance(progress, Progress):
            return progress
        if progress is True:
            return Progress()
        if progress is False or progress is None:
            return Progress("off")
        return Progress(str(progress))

    def bar(self, total: int, shard: Shard):
        from tqdm.auto import tqdm

        stream = self.stream if self.stream is not None else sys.__stderr__
        mode = self.mode
        if mode == "auto":
            mode = "bar" if _isatty(stream) else "log"
        desc = "mia-checks: generating" + (f" [{shard.label}]" if shard.label else "")
        if mode == "off" or stream is None or total == 0:
            return tqdm(total=total, disable=True)
        if mode == "bar":  # a terminal that reports no width (some CI pseudo-terminals) gets 100 columns
            width = {"dynamic_ncols": True} if _columns(stream) > 0 else {"ncols": 100}
            return tqdm(total=total, desc=desc, unit="img", file=stream, leave=True,
                        position=shard.rank if shard.world > 1 else None, **width)
        # A log keeps every write: one plain line per update, at most one every `interval` seconds.
        return tqdm(total=total, desc=desc, unit="img", file=_Lines(stream), ascii=True, ncols=100,
                    mininterval=self.interval, maxinterval=max(self.interval, 10.0), leave=True)


def _isatty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines (for CI logs)."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""
        self.encoding = getattr(stream, "encoding", "utf-8")

    def write(self, text: str) -> None:
        for line in text.replace("\r", "\n").split("\n"):
            line = line.strip()
            if line and line != self.last:
                self.stream.write(line + "\n")
                self.last = line

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass
