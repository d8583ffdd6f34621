"""Redis Streams dispatch: gateways and workers as separate processes sharing one Redis.

See docs/dispatch-redis.md for the keys and the flow, docs/delivery.md for the delivery guarantee.
"""

from dispatch.redis.connection import redis_url
from dispatch.redis.gateway import RedisDispatcher
from dispatch.redis.keys import Keys
from dispatch.redis.worker import RedisWorker

__all__ = ["Keys", "RedisDispatcher", "RedisWorker", "redis_url"]
