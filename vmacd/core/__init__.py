"""The pure protocol core: codec, timers, state machine. No sockets, no clock, no asyncio."""
