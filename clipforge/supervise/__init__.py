"""Process supervision: the private PostgreSQL/Redis, the Prefect server, work pool and
workers, and the local monitoring loop. Never imports prefect (it drives the CLI).

- :mod:`.services` (+ :mod:`.postgres`, :mod:`.redis_server`): private data servers;
- :mod:`.prefect_server`, :mod:`.prefect_stack`: ``clipforge up``/``down``/``status``;
- :mod:`.monitoring`: Prometheus + Pushgateway + the metrics server;
- :mod:`.proc`, :mod:`.paths`: the shared process and file helpers.
"""

from clipforge.supervise.services import (
    ServiceUrls,
    ensure_services,
    purge_services,
    services_status,
    stop_services,
)

__all__ = ["ServiceUrls", "ensure_services", "purge_services", "services_status",
           "stop_services"]
