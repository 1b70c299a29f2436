"""longscribe's public Python API (placeholder until the client lands: the `cli` branch owns this package)."""
