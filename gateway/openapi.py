"""The OpenAPI 3.1 document of every route, built from the same msgspec Structs that validate requests and
shape responses (the handlers parse bodies themselves, so the framework cannot infer them)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway import __version__
from gateway.errors import ErrorBody
from gateway.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    TextCompletion,
)
from gateway.tenants.records import CreatedKey, KeyCreate, KeyList, KeyUpdate, KeyView
from gateway.tenants.usage import UsageReport
from routing.experiments import ModelReport

REF = "#/components/schemas/{name}"
ERRORS = {400: "Invalid request (the field is named in `param`)", 401: "Missing or wrong API key",
          404: "Unknown model or route", 408: "Request body not received in time", 409: "Read-only key",
          413: "Body too large", 429: "Queue full or rate limited (see Retry-After)", 500: "Internal error",
          502: "The engine failed", 503: "No backend available", 504: "No first token in time"}
RATE_HEADERS = {name: {"description": text, "schema": {"type": "string"}} for name, text in (
    ("x-ratelimit-limit-requests", "The key's requests per minute"),
    ("x-ratelimit-remaining-requests", "Requests left now"),
    ("x-ratelimit-reset-requests", "Time until the request budget is full again (e.g. 1s, 6m0s)"),
    ("x-ratelimit-limit-tokens", "The key's tokens per minute"),
    ("x-ratelimit-remaining-tokens", "Tokens left now"),
    ("x-ratelimit-reset-tokens", "Time until the token budget is full again"))}


def _ref(t: type[Any]) -> dict[str, str]:
    return {"$ref": REF.format(name=t.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(_ref(ErrorBody), ERRORS[c]) for c in codes}


def _completion_op(summary: str, request: type[Any], response: type[Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "security": [{"bearer": []}],
        "description": "Keys with limits get OpenAI's x-ratelimit-* headers on every answer, 429s included.",
        "parameters": [{"name": "X-Request-Id", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {
            "200": {"description": "The completion; with `stream: true` an SSE stream of chunks ending in "
                                   "`data: [DONE]`", "headers": RATE_HEADERS,
                    "content": {"application/json": {"schema": _ref(response)},
                                "text/event-stream": {"schema": {"type": "string"}}}},
            **_errors(400, 401, 404, 408, 413, 429, 500, 502, 503, 504)}}}


def _key_paths() -> dict[str, Any]:
    admin: dict[str, Any] = {"security": [{"bearer": []}]}
    key_id = [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]

    def body(t: type[Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _ref(t)}}}

    return {
        "/v1/lockgate/keys": {
            "post": {**admin, "summary": "Create an inference key (admin key); the secret is in this answer only",
                     "requestBody": body(KeyCreate),
                     "responses": {"201": _json(_ref(CreatedKey), "The key and its secret"),
                                   **_errors(400, 401, 404, 413, 503)}},
            "get": {**admin, "summary": "List keys (admin key)",
                    "responses": {"200": _json(_ref(KeyList), "Every key, never a secret"), **_errors(401, 503)}}},
        "/v1/lockgate/keys/{key_id}": {
            "get": {**admin, "summary": "A key (admin key)", "parameters": key_id,
                    "responses": {"200": _json(_ref(KeyView), "The key"), **_errors(401, 404, 503)}},
            "patch": {**admin, "summary": "Change a key (admin key); null removes a limit", "parameters": key_id,
                      "requestBody": body(KeyUpdate),
                      "responses": {"200": _json(_ref(KeyView), "The key as changed"),
                                    **_errors(400, 401, 404, 409, 413, 503)}},
            "delete": {**admin, "summary": "Revoke a key (admin key)", "parameters": key_id,
                       "responses": {"200": _json(_ref(KeyView), "The revoked key"), **_errors(401, 404, 409, 503)}}},
        "/v1/lockgate/keys/{key_id}/usage": {
            "get": {**admin, "summary": "A key's usage per day and model (admin key)",
                    "parameters": [*key_id, {"name": "days", "in": "query", "required": False,
                                             "schema": {"type": "integer", "minimum": 1}}],
                    "responses": {"200": _json(_ref(UsageReport), "Requests, tokens, errors"),
                                  **_errors(400, 401, 404, 503)}}},
    }


def build_openapi() -> dict[str, Any]:
    types = [ChatCompletionRequest, CompletionRequest, ChatCompletion, TextCompletion, ModelList, ModelCard,
             ErrorBody, ModelReport, KeyCreate, KeyUpdate, KeyView, CreatedKey, KeyList, UsageReport]
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    experiments = {"type": "object", "properties": {
        "object": {"type": "string"}, "generated_at": {"type": "integer"},
        "models": {"type": "object", "additionalProperties": _ref(ModelReport)}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "lockgate", "version": __version__,
                 "description": "OpenAI-compatible serving gateway. Errors use OpenAI's shape."},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/v1/chat/completions": _completion_op("Create a chat completion", ChatCompletionRequest,
                                                   ChatCompletion),
            "/v1/completions": _completion_op("Create a text completion", CompletionRequest, TextCompletion),
            "/v1/models": {"get": {"summary": "List models", "security": [{"bearer": []}],
                                   "responses": {"200": _json(_ref(ModelList), "The served models"),
                                                 **_errors(401)}}},
            "/v1/models/{model_id}": {"get": {
                "summary": "Retrieve a model", "security": [{"bearer": []}],
                "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref(ModelCard), "The model"), **_errors(401, 404)}}},
            "/v1/lockgate/experiments": {"get": {
                "summary": "Experiment readout (admin key)", "security": [{"bearer": []}],
                "responses": {"200": _json(experiments, "Per-arm and per-shadow-pair statistics"),
                              **_errors(401)}}},
            **_key_paths(),
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(
                {"type": "object", "properties": {"status": {"type": "string"}}}, "Alive")}}},
            "/readyz": {"get": {"summary": "Readiness", "responses": {
                code: _json({"type": "object", "properties": {
                    "status": {"type": "string"},
                    "backends": {"type": "object", "additionalProperties": {"type": "string"}}}}, text)
                for code, text in (("200", "Ready"), ("503", "Not ready"))}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {
                    "type": "string"}}}}, **_errors(404)}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json(
                {"type": "object"}, "OpenAPI 3.1")}}},
        },
    }
