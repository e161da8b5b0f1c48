"""The only code that touches the kernel: raw sockets, AF_PACKET, netlink, processes."""
