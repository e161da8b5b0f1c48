"""vmacd: a VRRP virtual-MAC failover daemon for Linux."""

__version__ = "0.1.0"
