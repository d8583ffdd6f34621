"""Engine errors in every shape they come in -> OpenAI errors."""

from __future__ import annotations

import httpx
import pytest

from backends.http.errors import connection_failure, failure_from_response, failure_in_stream


def test_vllm_context_overflow_maps_to_context_length_exceeded_naming_the_limit() -> None:
    body = (b'{"error":{"message":"This model\'s maximum context length is 512 tokens. However, your prompt '
            b'contains at least 513 input tokens.","type":"BadRequestError","param":"input_tokens","code":400}}')
    f = failure_from_response(400, body)
    assert (f.status, f.code, f.type, f.param, f.retryable) == (
        400, "context_length_exceeded", "invalid_request_error", "messages", False)
    assert "512" in f.message


def test_vllm_cpu_character_bound_is_a_context_overflow_too() -> None:
    body = (b'{"error":{"message":"This prompt contains 4817 characters (more than 4096 characters, which is the '
            b'upper bound for 512 input tokens).","type":"BadRequestError","param":"input_text","code":400}}')
    f = failure_from_response(400, body, prompt_param="prompt")
    assert f.code == "context_length_exceeded"
    assert f.param == "prompt"
    assert "maximum context length is 512 tokens" in f.message


def test_sglang_flat_context_error() -> None:
    body = (b'{"object":"error","message":"The input (600 tokens) is longer than the model\'s context length '
            b'(512 tokens).","type":"BadRequestError","param":null,"code":400}')
    f = failure_from_response(400, body)
    assert f.code == "context_length_exceeded"
    assert "512" in f.message


def test_trtllm_context_error() -> None:
    body = (b'{"object":"error","message":"The sum of prompt length (600), query length (0) should not exceed '
            b'max_num_tokens (512)","type":"BadRequestError","param":null,"code":400}')
    f = failure_from_response(400, body)
    assert f.code == "context_length_exceeded"
    assert "maximum context length is 512 tokens" in f.message


def test_max_tokens_over_the_model_length_blames_max_tokens() -> None:
    body = (b'{"error":{"message":"max_tokens=1000 cannot be greater than max_model_len=512.",'
            b'"type":"BadRequestError","param":"max_tokens","code":400}}')
    f = failure_from_response(400, body)
    assert f.param == "max_tokens"
    assert f.code == "context_length_exceeded"


def test_validation_error_keeps_the_engines_message() -> None:
    f = failure_from_response(400, b'{"error": "1 validation error for ChatCompletionRequest\\nfoo\\n  Extra"}')
    assert (f.status, f.type, f.retryable) == (400, "invalid_request_error", False)
    assert f.message.startswith("1 validation error")


@pytest.mark.parametrize("status", [429, 503])
def test_overload_is_retryable(status: int) -> None:
    f = failure_from_response(status, b'{"error":{"message":"The request queue is full."}}')
    assert f.retryable
    assert f.status == 503


def test_engine_500_is_retryable_before_tokens() -> None:
    f = failure_from_response(500, b"Internal Server Error")
    assert f.retryable
    assert f.status == 502


def test_unknown_model_at_the_engine_is_a_gateway_misconfiguration() -> None:
    f = failure_from_response(404, b'{"error":{"message":"The model `x` does not exist.","code":404}}')
    assert f.status == 502
    assert f.retryable


def test_connection_refused_is_retryable_503() -> None:
    f = connection_failure(httpx.ConnectError("refused"), "http://e:1/v1/completions")
    assert f.retryable
    assert f.status == 503
    assert "starting or restarting" in f.message


def test_error_inside_a_stream_after_tokens_is_not_retryable() -> None:
    f = failure_in_stream({"error": {"message": "boom", "code": 500}}, after_tokens=True)
    assert f is not None
    assert not f.retryable


def test_ordinary_chunk_is_not_an_error() -> None:
    assert failure_in_stream({"choices": []}, after_tokens=False) is None
