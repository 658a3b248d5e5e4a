"""The bottom layer: what every other attnx package may use, and which imports nothing of attnx above it."""
