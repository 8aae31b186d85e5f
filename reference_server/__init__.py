"""The wsgauge reference server: the seed's WebSocket protocol, served exactly, authenticated and durable."""
