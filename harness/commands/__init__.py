"""CLI subcommands, one module each; `harness.cli` registers them."""
