"""The commands room: `sampling-engine` and its subcommands, the top layer of the package.

It holds the parser and exit codes (`main.py`), the one definition of the engine's options that every command
loading a model takes under the same names, defaults and help (`engine_options.py`), and one module per
command: `complete` (with its request options and output), `models`, `bench`, `doctor`, `serve` (one process,
or Ray Serve replicas), `batch` (local or on Ray).

It imports everything below it (the core, engine/server, engine/batch, engine/ray, engine/bench, engine/doctor)
and nothing imports it but `engine/__main__.py` (`python -m engine`): the layers below take plain values (a
model name, Engine keyword arguments, a ServerConfig), never an argparse namespace. Whatever a command needs
beyond argparse (the server extra, Ray, llama.cpp) is imported when that command runs, so `sampling-engine
models` loads none of it.
"""
