"""The commands room (engine/commands/): every command that loads a model takes the engine's options under the
same names, defaults and help, and turns them into the same Engine keyword arguments; bad values name the
option and exit 2 before anything loads; the room is the top layer (nothing below imports it, and the server
and batch rooms do not reach up into Ray or a command module); the parser loads nothing heavy."""
from __future__ import annotations

import argparse
import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from engine.commands import batch, bench, complete, serve
from engine.commands.engine_options import DEFAULT_MAX_QUEUE, DEFAULT_SLOTS, GROUP, engine_kwargs
from engine.commands.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "engine"

# The commands that load a model, and the positional arguments each needs to parse.
LOADERS = {"complete": ["Hi"], "serve": [], "batch": ["in.jsonl", "out.jsonl"], "bench": []}
ENGINE_OPTIONS = {"--model", "--alias", "--n-ctx", "--n-gpu-layers", "--n-threads", "--slots", "--n-seq-max",
                  "--max-queue", "--flash-attn", "--repack-weights", "--kv-cache-type", "--numerics",
                  "--speculative", "--draft-max", "--verbose"}


def _subparser(name: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[name]


def _engine_actions(name: str, parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.Action]:
    (group,) = [g for g in (parser or _subparser(name))._action_groups if g.title == GROUP]
    return {option: a for a in group._group_actions for option in a.option_strings}


def _describe(a: argparse.Action) -> tuple:
    return (type(a).__name__, tuple(a.option_strings), a.dest, a.default, a.help, a.type, a.choices, a.nargs,
            a.const, a.metavar, a.required)


def test_complete_has_every_engine_option():
    assert set(_engine_actions("complete")) == ENGINE_OPTIONS


@pytest.mark.parametrize("command", ["serve", "batch", "bench", "doctor"])
def test_every_engine_option_of_complete_is_the_same_in(command):
    parser = _subparser(command)
    ours, theirs = _engine_actions("complete"), _engine_actions(command, parser)
    assert set(theirs) == set(ours)
    for option, action in ours.items():
        assert _describe(theirs[option]) == _describe(action), option
    # and no option of the command's own takes an engine option's place
    own = [a for a in parser._actions if all(a is not b for b in theirs.values())]
    assert not {a.dest for a in own} & {a.dest for a in ours.values()}


def test_n_seq_max_is_a_hidden_spelling_of_slots():
    actions = _engine_actions("complete")
    assert actions["--n-seq-max"].dest == actions["--slots"].dest == "slots"
    assert actions["--n-seq-max"].help == argparse.SUPPRESS
    assert "--n-seq-max" not in _subparser("complete").format_help()
    for command, positional in LOADERS.items():
        old = build_parser().parse_args([command, *positional, "--n-seq-max", "3"])
        new = build_parser().parse_args([command, *positional, "--slots", "3"])
        assert engine_kwargs(old) == engine_kwargs(new) and engine_kwargs(new)["n_seq_max"] == 3


EVERY_ENGINE_OPTION = ["--model", "m.gguf", "--alias", "a", "--alias", "b", "--n-ctx", "512", "--n-gpu-layers", "3",
                       "--n-threads", "2", "--slots", "4", "--max-queue", "5", "--flash-attn", "--repack-weights",
                       "--kv-cache-type", "q8_0", "--numerics", "fast", "--speculative", "prompt-lookup",
                       "--draft-max", "6", "--verbose"]


@pytest.mark.parametrize("argv", [[], EVERY_ENGINE_OPTION], ids=["defaults", "every-option"])
def test_every_command_maps_its_options_to_the_same_engine_kwargs(argv):
    kwargs = {c: engine_kwargs(build_parser().parse_args([c, *p, *argv])) for c, p in LOADERS.items()}
    assert all(kw == kwargs["complete"] for kw in kwargs.values()), kwargs
    models = {build_parser().parse_args([c, *p, *argv]).model for c, p in LOADERS.items()}
    assert len(models) == 1
    if argv:
        assert kwargs["complete"] == dict(
            n_ctx=512, n_gpu_layers=3, n_threads=2, n_seq_max=4, max_queue=5, flash_attn=True, repack_weights=True,
            kv_cache_type="q8_0", numerics="fast", speculative="prompt-lookup", draft_max=6, verbose=True,
            aliases=("a", "b"))
    else:  # left out: Engine's own defaults apply
        assert "n_seq_max" not in kwargs["complete"] and "max_queue" not in kwargs["complete"]


def test_the_engine_kwargs_are_engine_parameters_and_the_stated_defaults_are_engines():
    from engine.api import Engine

    params = inspect.signature(Engine.__init__).parameters
    kw = engine_kwargs(build_parser().parse_args(["complete", "Hi", *EVERY_ENGINE_OPTION]))
    assert set(kw) <= set(params)
    assert (params["n_seq_max"].default, params["max_queue"].default) == (DEFAULT_SLOTS, DEFAULT_MAX_QUEUE)
    defaults = engine_kwargs(build_parser().parse_args(["complete", "Hi"]))
    for name in ("n_gpu_layers", "n_threads", "flash_attn", "kv_cache_type", "numerics", "speculative",
                 "draft_max", "verbose", "repack_weights"):
        assert defaults[name] == params[name].default, name


def test_serve_holds_every_slot_with_its_stated_defaults():
    args = build_parser().parse_args(["serve"])
    kw = serve.serve_engine_kwargs(args)
    assert kw == dict(engine_kwargs(args), n_seq_max=8, max_queue=64, lazy_slots=False)
    kw = serve.serve_engine_kwargs(build_parser().parse_args(["serve", "--slots", "2", "--max-queue", "0"]))
    assert (kw["n_seq_max"], kw["max_queue"], kw["lazy_slots"]) == (2, 0, False)


def test_bench_takes_every_engine_option():
    from engine.bench import BenchConfig

    kw = engine_kwargs(build_parser().parse_args(["bench", *EVERY_ENGINE_OPTION]))
    cfg = BenchConfig(model="m.gguf", **kw)
    assert (cfg.n_seq_max, cfg.max_queue, cfg.aliases, cfg.verbose, cfg.kv_cache_type) == (4, 5, ("a", "b"), True,
                                                                                          "q8_0")


@pytest.mark.parametrize("command", list(LOADERS))
@pytest.mark.parametrize("flags, message", [
    (["--slots", "0"], "error: --slots must be >= 1, got 0"),
    (["--n-seq-max", "0"], "error: --slots must be >= 1, got 0"),
    (["--max-queue", "-1"], "error: --max-queue must be >= 0, got -1"),
    (["--speculative", "prompt-lookup", "--draft-max", "40"],
     "error: --draft-max must be an integer in 1..32, got 40"),
    (["--speculative", "ngram"], "error: --speculative must be one of 'prompt-lookup'"),
])
def test_bad_engine_options_exit_2_naming_the_option(capsys, tmp_path, command, flags, message):
    if command == "serve":
        pytest.importorskip("uvicorn")
    positional = [str(tmp_path / p) for p in LOADERS[command]]
    if command == "batch":
        Path(positional[0]).write_text("")
    assert main([command, *positional, *flags, "--model", "/nonexistent/model.gguf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err, err


def test_a_json_error_is_the_apis_own_error_body(capsys):
    """`complete --json`: a refused request prints OpenAI's error body on stdout (engine.errors.error_body, the
    same builder the server and batch output use) and the usual line on stderr; exit 2, nothing loaded."""
    import json

    from engine.errors import CompletionError

    assert main(["complete", "hi", "--temperature", "9", "--json", "--model", "/nonexistent/model.gguf"]) == 2
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert body == CompletionError("temperature must be in [0, 2], got 9.0", param="temperature",
                                   code="invalid_value").body()
    assert err.startswith("error: temperature: ")
    assert main(["complete", "hi", "--temperature", "9", "--model", "/nonexistent/model.gguf"]) == 2
    assert capsys.readouterr().out == ""  # without --json, stderr only


# ---- layers ---------------------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved to absolute names."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return names


def _under(names: set[str], prefix: str) -> set[str]:
    return {n for n in names if n == prefix or n.startswith(prefix + ".")}


def test_nothing_below_imports_the_commands_room():
    for path in ENGINE.rglob("*.py"):
        if "commands" not in path.relative_to(ENGINE).parts and path.name != "__main__.py":  # python -m engine
            assert not _under(_imports(path), "engine.commands"), path


@pytest.mark.parametrize("room", ["server", "batch"])
def test_server_and_batch_import_neither_ray_nor_a_command(room):
    for path in (ENGINE / room).rglob("*.py"):
        names = _imports(path)
        assert not _under(names, "engine.ray") and not _under(names, "engine.commands"), path
        assert not {n for n in names if n.rpartition(".")[2] == "cli"}, path


def test_the_old_cli_modules_are_gone():
    for old in ("cli.py", "cli_request.py", "cli_output.py", "server/cli.py", "batch/cli.py"):
        assert not (ENGINE / old).exists(), old
    assert "engine.commands.main:main" in (REPO / "pyproject.toml").read_text()


def test_server_run_and_serve_on_ray_take_values_not_options():
    names = {n.name for n in ast.parse((ENGINE / "server" / "run.py").read_text()).body
             if isinstance(n, ast.FunctionDef)}
    assert not names & {"config_from_args", "engine_kwargs"}
    pytest.importorskip("uvicorn")
    from engine.server.run import serve as serve_one

    assert list(inspect.signature(serve_one).parameters) == ["model", "engine_kwargs", "config", "host", "port"]


def test_the_parser_and_models_load_nothing_heavy():
    code = ("import sys\n"
            "from engine.commands.main import build_parser, main\n"
            "for argv in (['complete', 'x'], ['serve', '--ray'], ['batch', 'a', 'b'], ['bench'], ['doctor']):\n"
            "    build_parser().parse_args(argv)\n"
            "assert main(['models']) == 0\n"
            "heavy = ('llama_cpp', 'fastapi', 'uvicorn', 'ray', 'engine.api', 'engine.server.app')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_each_command_is_its_own_module():
    for module, name in ((complete, "complete"), (serve, "serve"), (batch, "batch"), (bench, "bench")):
        assert build_parser().parse_args([name, *LOADERS[name]]).func is module.run
