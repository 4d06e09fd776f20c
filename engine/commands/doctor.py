"""`sampling-engine doctor`: what this install is and whether its guarantees hold (engine/doctor.py)."""
from __future__ import annotations

from .engine_options import add_engine_options, engine_kwargs


def add_parser(sub) -> None:
    d = sub.add_parser("doctor", allow_abbrev=False,
                       description="The invariance check loads --model (default: the registry default, if "
                                   "downloaded; doctor never fetches) with the engine options given.",
                       help="what this install is, whether batch invariance holds, and what to fix (a bug "
                            "report is `sampling-engine doctor --json`)")
    d.add_argument("--json", action="store_true", help="the report as one JSON object")
    d.add_argument("--no-check", action="store_true", help="skip loading a model for the invariance check")
    add_engine_options(d)
    d.set_defaults(func=run)


def run(args) -> int:
    from ..doctor import run as doctor

    return doctor(args.model, args.json, check=not args.no_check, engine_kwargs=engine_kwargs(args))
