"""Command modules: one verb per file (see ``sampan.cli.command_table``)."""
