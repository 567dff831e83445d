"""The network driver: bridge networks, IPAM, nftables NAT and port publishing, embedded DNS,
and a CNI driver.

Planning code describes what to change (:mod:`.plan` returns links, addresses and routes;
:mod:`.firewall` renders the whole ``sampan`` nftables table as text) and a few executors
act: :class:`.executor.NetlinkExecutor` (pyroute2, imported only when a network changes),
:class:`.firewall.NftFirewall` (``nft -f``), :mod:`.netns` (namespace files), and
:class:`.cni.CniRunner` (CNI plugins as programs). State lives in SQLite (:mod:`.state`).
"""
