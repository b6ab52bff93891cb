"""Value sets the chart is rendered with throughout the tests: the defaults and each way to store the spool."""

import pytest

VALUE_SETS = {
    "defaults": {},
    "pvc-existing-claim": {"replicas": 1, "spool": {"type": "pvc", "pvc": {"existingClaim": "spool", "size": "50Gi"}}},
    "pvc-statefulset": {"spool": {"type": "pvc", "pvc": {"size": "20Gi", "storageClassName": "fast"}}},
    "memory-spool": {"spool": {"emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
                     "dataplane": {"resources": {"limits": {"memory": "3Gi"}}}},
    "one-namespace-nodeport": {"replicas": 1, "controller": {"watchNamespace": "apps"},
                               "service": {"type": "NodePort", "externalTrafficPolicy": "Local", "nodePort": 30080},
                               "ingressClass": {"default": True}},
    "metrics-exposed": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True},
                                    "grafanaDashboard": {"enabled": True}},
                        "controller": {"publishStatusAddress": ["203.0.113.7"],
                                       "defaults": {"maxBodySize": "1Gi", "mode": "Tee", "maxAttempts": 3,
                                                    "upstreamWaitTimeout": "2m", "tunnelIdleTimeout": "30m"}},
                        "dataplane": {"upstreamIdleTimeout": "3s", "headerReadTimeout": "10s", "workers": 4}},
}


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(request):
    """(name, values) for every value set."""
    return request.param, VALUE_SETS[request.param]
