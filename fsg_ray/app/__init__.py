"""The ``fsg`` command: one module per subcommand, wiring config, io, core and distributed."""
