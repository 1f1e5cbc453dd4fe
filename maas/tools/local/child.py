"""`python -m maas.tools.local.child MODULE ARGS...`: run `python -m MODULE ARGS` as a child that dies with its
parent. The parent (`maas serve`) holds the other end of the child's stdin; when the parent exits for any reason,
kill -9 included, the pipe closes and the child exits at once instead of living on as an orphan (the heavy-model
endpoint process holds ~200 MB). A pipe rather than Linux's PR_SET_PDEATHSIG: that signal follows the thread that
started the child, not the process, and it does not exist elsewhere."""

from __future__ import annotations

import os
import runpy
import sys
import threading


def exit_with_parent() -> threading.Thread:
    """Exit the process when stdin reaches end of file (the parent closed it or is gone)."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass  # the parent never writes; anything read is ignored
        finally:
            os._exit(0)

    watcher = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    watcher.start()
    return watcher


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m maas.tools.local.child MODULE [ARGS...]")
    exit_with_parent()
    sys.argv = argv
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
