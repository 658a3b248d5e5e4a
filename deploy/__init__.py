"""attnx deploy: CLI, backends, parity."""
