"""Redis Streams dispatch: gateways and workers as separate processes sharing one Redis.

See docs/dispatch-redis.md for the keys and the flow, docs/delivery.md for the delivery guarantee.
"""

from dispatch.redis.gateway import RedisDispatcher
from dispatch.redis.keys import Keys
from dispatch.redis.worker import RedisWorker
from gateway.config.redis_target import RedisTarget, RedisTargetError, redis_url, resolve

__all__ = ["Keys", "RedisDispatcher", "RedisTarget", "RedisTargetError", "RedisWorker", "redis_url", "resolve"]
