"""The OpenAI-compatible HTTP server (`sampling-engine serve`); needs the `server` extra. Built on the core's
public API only (Engine.acreate_completion, its model's tokenizer, stats); started by engine/commands/serve.py
(`run.py`: bind, serve, drain) and reused by Ray Serve's replicas (engine/ray/serve_app.py)."""
