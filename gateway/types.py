"""Type names shared by the HTTP layer."""

from typing import Any

from litestar import Request

AnyRequest = Request[Any, Any, Any]
