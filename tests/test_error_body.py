"""The one OpenAI error-body builder (engine.errors.error_body) and the one compact JSON encoder
(engine.wire.dumps): the server, batch output and Ray's failure answers send the same bytes from them."""
from __future__ import annotations

import json

from engine.batch.lines import BatchRequest, Ids, encode, refused
from engine.errors import CompletionError, clip, error_body
from engine.ray.asgi_bridge import failure_body
from engine.server.errors import ApiError
from engine.wire import dumps

LONG_MESSAGE = "temperature must be in [0, 2], got " + "9" * 1000  # 1035 characters
LONG_PARAM = "p" * 150

# message: its first 360 and last 120 characters; param: its first 100 (no tail)
CLIPPED = ('{"error":{"message":"temperature must be in [0, 2], got ' + "9" * 325 + "…[555 characters left out]…"
           + "9" * 120 + '","type":"invalid_request_error","param":"' + "p" * 100 + "…[50 characters left out]…"
           + '","code":"invalid_value"}}').encode("utf-8")


def test_a_clipped_body_byte_for_byte():
    assert dumps(error_body(LONG_MESSAGE, param=LONG_PARAM, code="invalid_value")) == CLIPPED


def test_short_fields_are_kept_whole_and_a_param_is_written_as_its_str():
    assert error_body("bad", "server_error", None, "x") == \
        {"error": {"message": "bad", "type": "server_error", "param": None, "code": "x"}}
    assert error_body("m" * 480)["error"]["message"] == "m" * 480  # head + tail: nothing left out
    assert error_body("m", param=7)["error"]["param"] == "7"
    assert clip("abcdefgh", 2, 0) == "ab…[6 characters left out]…"
    assert clip("abcdefgh", 2, 3) == "ab…[3 characters left out]…fgh"


def test_server_batch_and_completion_error_send_the_same_body():
    e = CompletionError(LONG_MESSAGE, param=LONG_PARAM, code="invalid_value")
    assert dumps(e.body()) == CLIPPED
    api = ApiError.from_completion_error(e)
    assert dumps(api.body()) == CLIPPED and api.response().body == CLIPPED
    assert api.message == json.loads(CLIPPED)["error"]["message"] and api.param == json.loads(CLIPPED)["error"]["param"]
    assert dumps(api.body()) == CLIPPED  # asking twice clips once
    req = BatchRequest(3, "c", {})
    line = refused(Ids(stable=True), req, e)
    assert line["response"]["status_code"] == 400 and dumps(line["response"]["body"]) == CLIPPED
    assert encode(line) == dumps(line) + b"\n"


def test_ray_failure_bodies():
    class BackPressureError(Exception):
        pass

    assert dumps(failure_body(BackPressureError())) == (
        b'{"error":{"message":"every replica\'s queue is full; retry later","type":"server_error","param":null,'
        b'"code":"engine_overloaded"}}')
    assert dumps(failure_body(KeyError())) == (
        b'{"error":{"message":"the replica serving this request failed (KeyError); retry","type":"server_error",'
        b'"param":null,"code":"replica_unavailable"}}')


def test_dumps_is_compact_keeps_unicode_and_writes_infinity():
    assert dumps({"a": [1, -float("inf")], "t": "é"}) == '{"a":[1,-Infinity],"t":"é"}'.encode("utf-8")
    assert dumps({"t": "\ud800"}) == b'{"t":"\\ud800"}'  # not UTF-8: ASCII escapes
