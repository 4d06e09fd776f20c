"""Say on stderr, once, when numba starts compiling one of our kernels (a cold cache: first run only)."""
import sys

from numba.core import event

NOTICE = "sampling-engine: compiling sampling kernels, first run only, ~30 s\n"


class _FirstCompileNotice(event.Listener):
    """Listens to numba's compile events (which fire on cache misses only) and prints NOTICE at the first
    one of a function in this package; other compilations in the process pass by untouched."""

    def __init__(self):
        self.said = False

    def on_start(self, ev):
        if self.said:
            return
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.partition(".")[0] == __name__.partition(".")[0]:
            self.said = True
            sys.stderr.write(NOTICE)
            sys.stderr.flush()

    def on_end(self, ev):
        pass


def announce_first_compile() -> None:
    event.register("numba:compile", _FirstCompileNotice())
