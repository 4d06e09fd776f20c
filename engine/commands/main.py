"""Command line: `sampling-engine complete`, `sampling-engine models [fetch NAME]`, `sampling-engine bench`,
`sampling-engine serve` (the HTTP server, engine/server/; `--ray`: Ray Serve replicas, engine/ray/),
`sampling-engine batch` (engine/batch/; `--ray`: on Ray Data), `sampling-engine doctor` (engine/doctor.py).
Every command that loads a model takes the same engine options (engine_options.py).

Exit codes: 0 done, 2 a bad request or option (`error: <param>: <message>`, the API's own message),
1 a failure of llama.cpp or of the download (one line on stderr, no traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ..errors import CompletionError
from ..wire import dumps
from . import batch, bench, complete, doctor, models, serve

COMMANDS = (complete, models, bench, doctor, serve, batch)  # each adds its parser: argparse only


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sampling-engine", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CompletionError as e:
        where = f"{e.param}: " if e.param else ""
        print(f"error: {where}{e.message}", file=sys.stderr)
        if getattr(args, "json", False):  # --json: the error is also the API's own body, as the server sends it
            sys.stdout.buffer.write(dumps(e.body()) + b"\n")
            sys.stdout.flush()
        return 2
    except RuntimeError as e:  # llama.cpp: context creation, decode
        print(f"error: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"error: downloading the model failed ({' '.join(map(str, e.cmd[:6]))} ... exited {e.returncode})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sampling-engine ... | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail
        return 1


if __name__ == "__main__":
    sys.exit(main())
