"""One module per ``attnx`` command; :mod:`attnx.deploy.cli.main` registers them.

Each command parses its options, calls the apis / serving function that does the work, and prints. Heavy or
numpy-importing attnx modules load inside the command functions, so ``attnx --help`` stays instant.
"""
