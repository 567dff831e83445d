"""A small Engine API client: HTTP/1.1 over a unix (or tcp) socket, plus hijacked raw streams.

Start-up matters here (every CLI command pays for it), so this package imports only
``socket`` and ``json``: see ``http11.py`` for why it does not use ``http.client``.
"""
