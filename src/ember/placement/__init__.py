"""Where work goes and how much of it, as plain decisions (no Ray): pool sizes by demand, the
resources one worker asks for, the standing request to an autoscaler, and the node a model
host fits on. The Ray side carries the decisions out."""

from ember.placement.bundles import worker_resources
from ember.placement.requests import Bundle, ResourceRequests
from ember.placement.room import NodeCapacity, Placement, Slot, place
from ember.placement.scaling import ScalingPolicy

__all__ = [
    "Bundle",
    "NodeCapacity",
    "Placement",
    "ResourceRequests",
    "ScalingPolicy",
    "Slot",
    "place",
    "worker_resources",
]
