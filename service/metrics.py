"""Prometheus metrics of one worker, in their own registry (exposed at ``/metrics``)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("mdsdx_http_requests_total", "HTTP requests", ["method", "endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("mdsdx_http_request_seconds", "Request latency", ["endpoint"], registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.smears = Counter("mdsdx_smears_total", "Smears diagnosed", ["call"], registry=self.registry)
        self.cells = Counter("mdsdx_cells_total", "Cells classified", registry=self.registry)
