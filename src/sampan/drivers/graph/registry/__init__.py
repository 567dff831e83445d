"""The OCI distribution-spec client: pull, push and login against registries.

Modules, bottom up: ``hosts`` (endpoints, insecure registries, certs.d TLS), ``auth``
(credentials, challenges, tokens), ``session`` (one repository through ``httpx``: auth and
retries), ``manifests`` (media types, platform choice), ``blobcache`` (downloads and the
diff id -> blob map), ``progress`` (Docker's JSON messages), then the verbs ``pull``,
``push`` and ``login``, and ``distribution`` which holds them together for the daemon.

Nothing here is imported by the daemon until the first registry operation: ``httpx`` costs
~90 ms of start-up.
"""
