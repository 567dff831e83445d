"""Volume drivers: where a volume's data lives and how it is mounted (Docker's ``local``)."""
