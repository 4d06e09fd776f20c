"""The one error type of the API (SPEC.md, Errors) and the model-file error."""
from __future__ import annotations


class CompletionError(Exception):
    """An invalid request: carries OpenAI's error fields. The server maps it to HTTP `status`."""

    type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ModelFileError(CompletionError):
    """A model file that is missing, corrupt, or not GGUF, found before llama.cpp touches it."""

    def __init__(self, message: str):
        super().__init__(message, param="model", code="model_file_invalid", status=400)
