"""``sampan``: a docker-compatible command line over the Engine API (issue 7).

``main.py`` parses the global options and picks the command; each verb lives in its own
module under ``commands/<group>/`` and is imported only when it runs. Nothing here imports
daemon code (an import-linter contract forbids it): the CLI talks HTTP through ``client``.
"""
