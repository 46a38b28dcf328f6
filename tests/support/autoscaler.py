"""What Ray's GCS holds as the standing autoscaler request (``request_resources``)."""

from __future__ import annotations

import json


def standing_request() -> list[dict[str, float]]:
    """The autoscaler request as Ray's GCS holds it: the internal KV key the v1 autoscaler
    reads (a local cluster's default), or the cluster resource constraint of v2."""
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    if is_autoscaler_v2():
        from ray.autoscaler.v2.sdk import get_cluster_resource_state
        from ray.experimental.internal_kv import internal_kv_get_gcs_client

        state = get_cluster_resource_state(internal_kv_get_gcs_client())
        return [
            dict(request.request.resources_bundle)
            for constraint in state.cluster_resource_constraints[-1:]
            for request in constraint.resource_requests
            for _ in range(request.count)
        ]
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return list(json.loads(raw)) if raw else []
