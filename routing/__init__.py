"""Model name -> pool of backends: weights, health-aware picking, fallbacks."""

from routing.health import HealthBoard
from routing.router import RouteDecision, Router

__all__ = ["HealthBoard", "RouteDecision", "Router"]
