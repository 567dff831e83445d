"""The sampan-supervisor process: one select loop owning every container's stdio, logs and
exit status (containerd + shim's role). Stdlib only, no asyncio, single-threaded."""
