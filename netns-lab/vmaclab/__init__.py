"""vmaclab: network-namespace lab for VRRP implementations (vmacd, keepalived, FRR)."""
