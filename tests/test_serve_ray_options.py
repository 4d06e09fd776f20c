"""`serve --ray` options, checked before anything starts (no Ray needed): without the `ray` extra it says what to
install; replica counts out of range name the option."""
from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(argv: list[str], hide_ray: bool) -> subprocess.CompletedProcess:
    code = ("import sys\n"
            + ("for m in ('ray', 'ray.serve'):\n    sys.modules[m] = None  # not installed\n" if hide_ray else "")
            + "from engine.commands.main import main\n"
            f"sys.exit(main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_without_ray_serve_ray_says_what_to_install():
    r = run_cli(["serve", "--ray", "--replicas", "2"], hide_ray=True)
    assert r.returncode == 2, r.stderr
    assert "pip install 'sampling-engine[ray]'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv, message", [
    (["--replicas", "0"], "--replicas must be >= 1, got 0"),
    (["--max-replicas", "0"], "--max-replicas must be >= 1, got 0"),
    (["--min-replicas", "-1"], "--min-replicas must be >= 0, got -1"),
    (["--min-replicas", "3", "--max-replicas", "2"], "--min-replicas (3) must be <= --max-replicas (2)"),
    (["--replicas", "5", "--min-replicas", "1", "--max-replicas", "4"], "must lie in [--min-replicas, --max-replicas]"),
])
def test_replica_counts_out_of_range_name_the_option(argv, message):
    pytest.importorskip("ray.serve")
    r = run_cli(["serve", "--ray", *argv], hide_ray=False)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def engine_deployment(argv: list[str]):
    """The engine deployment of the application `serve --ray ARGV` would run (built, not started: no Ray)."""
    pytest.importorskip("ray.serve")
    from engine.commands.main import build_parser
    from engine.commands.serve import replica_counts, serve_engine_kwargs, server_config
    from engine.ray import serve_app

    args = build_parser().parse_args(["serve", "--ray", *argv])
    app = serve_app.build(args.model, serve_engine_kwargs(args), server_config(args), routing=args.routing,
                          **replica_counts(args))
    return app._bound_deployment.init_args[0]._bound_deployment


def test_min_max_replicas_autoscale_on_ongoing_requests_per_replica():
    d = engine_deployment(["--min-replicas", "1", "--max-replicas", "3", "--slots", "4", "--n-threads", "2"])
    auto = d._deployment_config.autoscaling_config
    assert (auto.min_replicas, auto.initial_replicas, auto.max_replicas) == (1, 1, 3)
    assert auto.target_ongoing_requests == 4  # a replica's slots: scale out once they are all busy
    assert d.ray_actor_options["num_cpus"] == 2 and "num_gpus" not in d.ray_actor_options


def test_fixed_replicas_hold_their_queue_and_a_gpu_each_when_offloading():
    d = engine_deployment(["--replicas", "2", "--slots", "4", "--max-queue", "16", "--n-gpu-layers", "99"])
    cfg = d._deployment_config
    assert cfg.autoscaling_config is None and d.num_replicas == 2
    # the engine queues --max-queue itself (503 past it), and Serve holds at most as many again (503 past that)
    assert (cfg.max_ongoing_requests, cfg.max_queued_requests) == (4 + 16, 16)
    assert d.ray_actor_options["num_gpus"] == 1
