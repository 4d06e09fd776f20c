"""The sampling engine: OpenAI Completions on local GGUF models."""
