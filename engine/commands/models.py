"""`sampling-engine models [list | fetch NAME]`: the registry's models and whether each is present; fetch one.
Loads no model (nor llama.cpp)."""
from __future__ import annotations

from ..errors import CompletionError


def add_parser(sub) -> None:
    m = sub.add_parser("models", help="list known models, or fetch one")
    m.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    m.add_argument("name", nargs="?")
    m.set_defaults(func=run)


def run(args) -> int:
    from ..fetch import fetch
    from ..registry import load_registry

    default, entries = load_registry()
    if args.action == "fetch":
        if not args.name:
            raise CompletionError("models fetch: give a model name", param="model")
        if args.name not in entries:
            raise CompletionError(f"unknown model {args.name!r}; known: {', '.join(entries)}", param="model")
        print(fetch(entries[args.name]))
        return 0
    for name, e in entries.items():
        mark = "present" if e.is_present() else "absent"
        flag = " (default)" if name == default else ""
        print(f"{name:16} {mark:8} vocab {e.vocab:>7}  {e.size / 1e6:6.1f} MB  {e.path}{flag}")
    return 0
