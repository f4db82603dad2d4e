"""Real-server test infrastructure: redis-server, cluster, sentinel, TLS material, fault proxy."""

from ._common import ServerError, async_wait_until, reserve_port, wait_until
from .cluster import ClusterFailover, ClusterNodeInfo, RedisCluster, parse_cluster_nodes, slot_of
from .proxy import FaultProxy, ProxyMode, ProxyStats
from .redis_server import Persistence, RedisServer, redis_server_available
from .sentinel import RedisSentinel, SentinelFailover
from .tls import TlsMaterial, make_tls_material

__all__ = [
    "ClusterFailover",
    "ClusterNodeInfo",
    "FaultProxy",
    "Persistence",
    "ProxyMode",
    "ProxyStats",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "SentinelFailover",
    "ServerError",
    "TlsMaterial",
    "async_wait_until",
    "make_tls_material",
    "parse_cluster_nodes",
    "redis_server_available",
    "reserve_port",
    "slot_of",
    "wait_until",
]
