"""The OpenAI-compatible HTTP server (`sampling-engine serve`); needs the `server` extra."""
